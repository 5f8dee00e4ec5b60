//! Integration tests of the engine, called directly (no transport).

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod activity;
mod archive_export;
mod archive_import;
mod batch;
mod bounded_memory;
mod common;
mod crash;
mod foreign_trees;
mod fs_semantics;
mod gc;
mod git_parity;
mod large_files;
mod model;
mod mtimes;
mod names;
mod packing;
mod posix;
mod read_errors;
mod repair;
mod residual_sharing;
mod revisions;
mod session_eviction;
mod sessions;
mod stores;
mod tar_bytes;
mod usage;
mod versions;
mod walks;
