//! aetherd: the AetherFS server. HTTP API v1 over the engine, with bearer-token auth.
//! Handlers are thin: parse, one engine call, convert; errors map to HTTP in `error.rs` only.

pub mod api;
pub mod auth;
mod body;
mod body_timeout;
mod client_gone;
pub mod config;
pub mod data_lock;
pub mod dto;
pub mod error;
mod git;
pub mod grpc;
pub mod malloc;
pub mod metrics;
mod plain_errors;
pub mod request_id;
mod serve;
pub mod state;
mod stream_end;
mod wire_errors;
mod write_stall;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

use crate::config::{Config, Connections};
use crate::state::AppState;

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let metrics = metrics::Metrics::new();
    api::routes()
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(state.max_json_body))
        .layer(axum::middleware::from_fn(client_gone::cancel_when_client_leaves))
        .with_state(state.clone())
        // Git smart HTTP authenticates itself (basic auth challenges for git clients).
        .merge(git::routes(state.clone()))
        // gRPC after REST: its services authenticate from their metadata themselves.
        .merge(grpc::routes(state))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(grpc::unknown_service))
        .layer(axum::middleware::from_fn(plain_errors::json_errors))
        .layer(TraceLayer::new_for_http().make_span_with(request_id::span))
        .layer(axum::middleware::from_fn(request_id::assign))
        .layer(axum::Extension(metrics))
}

/// A server bound to its address, ready to run.
pub struct Bound {
    pub addr: SocketAddr,
    pub admin_token: String,
    pub admin_token_path: PathBuf,
    listener: tokio::net::TcpListener,
    app: Router,
    engine: aether_core::Engine,
    connections: Connections,
    closing: watch::Sender<bool>,
    admission: aether_service::Admission,
    /// The data directory's lock (see `data_lock`), held while this server lives.
    _lock: std::fs::File,
    /// Background garbage collections and packing, stopped with the server.
    _gc_schedule: Option<AbortOnDrop>,
    _pack_schedule: Option<AbortOnDrop>,
}

/// A background task that ends when its owner is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Open the data directory (creating it and the admin token on first start) and bind.
pub async fn bind(config: &Config) -> anyhow::Result<Bound> {
    let lock = data_lock::lock_data_dir(&config.data_dir)?;
    let engine = aether_core::Engine::open(config.engine_config()).await?;
    let (admin_token, created) = auth::ensure_admin_token(&config.data_dir)?;
    let admin_token_path = config.data_dir.join("admin.token");
    if created {
        tracing::info!(path = %admin_token_path.display(), "wrote a new admin token");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let mut state = AppState::new(
        engine.clone(),
        admin_token.clone(),
        config.max_json_body,
        config.connections.response_write_timeout,
        aether_service::ServiceConfig {
            max_batch_bytes: config.max_batch_bytes,
            max_list_tree_entries: config.max_list_tree_entries,
            git_import: config.git_import(),
            handoff_timeout: config.handoff_timeout,
            admission: config.admission.clone(),
            quotas: config.quotas.clone(),
            gc: config.gc.clone(),
            analytics: config.analytics.clone(),
            stale_mount: config.stale_mount,
        },
    );
    state.metrics_open = config.metrics_auth == config::MetricsAuth::None;
    let (closing, closing_rx) = watch::channel(false);
    let admission = state.service.admission().clone();
    let gc_schedule = state.service.spawn_gc_schedule().map(AbortOnDrop);
    let pack_schedule = state.service.spawn_pack_schedule().map(AbortOnDrop);
    let app = app(state)
        .layer(axum::middleware::from_fn_with_state(
            closing_rx,
            stream_end::end_watches_on_shutdown,
        ))
        .layer(axum::middleware::from_fn_with_state(
            config.connections.body_idle_timeout,
            body_timeout::limit_body_idle,
        ));
    Ok(Bound {
        addr,
        admin_token,
        admin_token_path,
        listener,
        app,
        engine,
        connections: config.connections,
        closing,
        admission,
        _lock: lock,
        _gc_schedule: gc_schedule,
        _pack_schedule: pack_schedule,
    })
}

impl Bound {
    /// The blocking-job admission every surface shares (how many jobs run, for tests).
    pub fn admission(&self) -> aether_service::Admission {
        self.admission.clone()
    }

    /// The engine served (for tests that look at what a request left behind).
    pub fn engine(&self) -> aether_core::Engine {
        self.engine.clone()
    }

    /// Serve until `shutdown` resolves. Then watch streams end at once, requests in flight get
    /// the configured drain time, and what is still open after it is closed (see `serve`).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, admin_token = %self.admin_token_path.display(), "aetherd listening");
        serve::run(self.listener, self.app, self.connections, shutdown, self.closing).await;
        drop(self._gc_schedule);
        drop(self._pack_schedule);
        drop(self.engine);
        tracing::info!("aetherd stopped");
        Ok(())
    }
}
