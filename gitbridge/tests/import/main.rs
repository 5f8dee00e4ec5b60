//! Sessions imported from real git repositories: a local path, file:// and smart HTTP
//! (`git http-backend` behind a test server), compared with what the real git says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod failures;
mod fixture;
mod history;
mod names;
