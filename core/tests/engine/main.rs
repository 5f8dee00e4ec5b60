//! Integration tests of the engine, called directly (no transport).

mod common;
mod crash;
mod fs_semantics;
mod git_parity;
mod large_files;
mod model;
mod sessions;
