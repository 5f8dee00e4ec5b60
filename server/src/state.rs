//! Shared state of the HTTP and gRPC codecs: the service they call, and the limits of framing
//! that only HTTP has.

use std::time::Duration;

use aether_service::{Service, ServiceConfig};

use crate::body::Feed;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    /// Largest JSON request body.
    pub max_json_body: usize,
    /// Longest a client may take nothing of a streamed response before it is given up.
    pub response_stall: Duration,
    /// `/metrics` answers without a token (`--metrics-auth none`), for a scraper on a private
    /// network; otherwise it needs the admin token.
    pub metrics_open: bool,
}

impl AppState {
    pub fn new(
        engine: aether_core::Engine,
        admin_token: String,
        max_json_body: usize,
        response_stall: Duration,
        config: ServiceConfig,
    ) -> Self {
        AppState {
            service: Service::new(engine, admin_token, config),
            max_json_body,
            response_stall,
            metrics_open: false,
        }
    }

    /// How a streamed response read from a blocking reader paces itself.
    pub(crate) fn feed(&self) -> Feed {
        Feed {
            jobs: self.service.admission().clone(),
            stall: self.response_stall,
        }
    }
}
