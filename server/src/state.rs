//! Shared state of the HTTP handlers.

use aether_core::Engine;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub admin_token: String,
    pub max_json_body: usize,
    /// Most bytes of inline content and paths in one gRPC batch.
    pub max_batch_bytes: usize,
    /// Most entries of a recursive gRPC `ListTree` (one message).
    pub max_list_tree_entries: usize,
    /// Limits of sessions imported from git repositories.
    pub git_import: aether_gitbridge::import::ImportConfig,
}
