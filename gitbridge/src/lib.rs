//! The git bridge: git's wire protocol over byte streams (upload-pack, protocol v2 and v0/v1),
//! and sessions imported from existing git repositories. Knows no HTTP framework: the server
//! routes requests here and copies bytes.

pub mod import;
pub mod serve;
