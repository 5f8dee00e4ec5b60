//! The `aether` binary against a real aetherd (in-process, ephemeral port), hermetic: a cleared
//! environment with only what each test sets, ids, times, paths and secrets redacted. Every
//! command's human and `--json` output is pinned with insta, as is the whole `--help` tree.
//! The `mount*` modules mount sessions with the kernel (`aether mount`) and compare what the
//! mount, the API and git see. End-to-end across the binaries, so it lives in `tests/` with the
//! integrity suite; the CLI crate keeps its unit tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod at_revision;
mod commands;
mod env;
mod errors;
mod help;
mod mount;
mod mount_barrier;
mod mount_cache_integrity;
mod mount_coherence;
mod mount_fsmonitor;
mod mount_git;
mod mount_harness;
mod mount_inodes;
mod mount_mtimes;
mod mount_peers;
mod mount_posix;
mod mount_prefetch;
mod mount_process;
mod mount_refusals;
mod mount_shared;
mod mount_untar;
mod mount_versions;
mod mount_workloads;
mod mount_written_stat;
mod pipes;
mod transfer_bytes;
