//! Helpers shared by the test suites of several crates, so no suite includes another's files.
//! Dev-dependency only: nothing here is built into a binary.

pub mod git_http;
pub mod prereq;
