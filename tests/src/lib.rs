//! Support for AetherFS's end-to-end integrity suite (`tests/integrity/`): the binaries under test
//! run as real processes (a server on an ephemeral port, the `aether` CLI, kernel mounts), real
//! `git` and GNU `tar` build the inputs, and every surface is read back into one comparable
//! [`snapshot::Snapshot`] so that a difference names the path, the surface and what differs.
//!
//! Nothing here may hide a failure: every external call has a time limit, a missing
//! prerequisite fails under `CI=true` ([`prereq`]), and a comparison reports every difference
//! ([`report::Differences`]), not the first.

pub mod bins;
pub mod corpus;
pub mod env;
pub mod git;
pub mod grpc;
pub mod mount;
pub use aether_test_support::prereq;
pub mod process;
pub mod readback;
pub mod report;
pub mod rest;
pub mod runtime;
pub mod seeded;
pub mod server;
pub mod snapshot;
pub mod tar_raw;
pub mod upload;
pub mod versions;
