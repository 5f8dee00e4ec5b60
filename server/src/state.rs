//! Shared state of the HTTP handlers.

use aether_core::Engine;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub admin_token: String,
    pub max_json_body: usize,
}
