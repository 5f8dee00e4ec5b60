//! Integration tests of the engine, called directly (no transport).

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod common;
mod crash;
mod fs_semantics;
mod git_parity;
mod large_files;
mod model;
mod names;
mod repair;
mod revisions;
mod sessions;
mod walks;
