//! Where the binaries under test are. Only an integration test knows their paths
//! (`CARGO_BIN_EXE_*` is set for test targets, not for this library), so the test binary hands
//! them over once.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Bins {
    /// `aether` (this package's `aether-under-test`).
    pub aether: PathBuf,
    /// `aetherd` (this package's `aetherd-under-test`).
    pub aetherd: PathBuf,
}
