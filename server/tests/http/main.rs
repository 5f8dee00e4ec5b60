//! End-to-end tests of aetherd over real HTTP on an ephemeral port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod activity;
mod admission;
mod analytics;
mod auth;
mod binary;
mod changes;
mod common;
mod connections;
mod errors;
mod files;
mod gc;
mod git;
mod git_import;
mod grpc;
mod grpc_batch;
mod handoff;
mod hostile;
mod imports;
mod json_errors;
mod metrics;
mod mtimes;
mod openapi;
mod posix;
mod process;
mod quotas;
mod read_race;
mod request_ids;
mod revisions;
mod same_code;
mod schemathesis;
mod session_quotas;
mod sessions;
mod soak;
mod stores;
