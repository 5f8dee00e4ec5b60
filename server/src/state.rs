//! Shared state of the HTTP and gRPC codecs: the service they call, and the limits of framing
//! that only HTTP has.

use aether_service::{Service, ServiceConfig};

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    /// Largest JSON request body.
    pub max_json_body: usize,
}

impl AppState {
    pub fn new(engine: aether_core::Engine, admin_token: String, max_json_body: usize, config: ServiceConfig) -> Self {
        AppState {
            service: Service::new(engine, admin_token, config),
            max_json_body,
        }
    }
}
