//! The gRPC API (`aether.v1`, see `proto/`), served by aetherd on the HTTP port (h2c).
//!
//! Every method authenticates from the `authorization` metadata with the same logic as HTTP
//! (`auth::principal_for`), makes one engine call and converts the result; errors become
//! statuses in `status.rs` only. The standard health service and server reflection need no token
//! (load balancers and `grpcurl describe` call them bare). Each service is routed under its own
//! `/package.Service/` prefix, so unknown paths still get the REST JSON 404.

mod batch;
mod convert;
mod files;
mod history;
mod mount;
mod sessions;
pub mod status;
mod streams;
mod tokens;

use std::convert::Infallible;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use tonic::server::NamedService;
use tonic::{Request as GrpcRequest, Status};

use aether_core::SessionId;
use aether_proto::v1 as pb;

use crate::auth::{Principal, principal_for};
use crate::state::AppState;

/// The state every service holds.
#[derive(Clone)]
pub(crate) struct Api {
    pub state: AppState,
}

impl Api {
    /// The caller of `req`, or `Unauthenticated`.
    pub(crate) async fn caller<T>(&self, req: &GrpcRequest<T>) -> Result<Principal, Status> {
        let headers = req.metadata().clone().into_headers();
        principal_for(&self.state, &headers).await.map_err(status::from_api)
    }

    /// The caller of `req`, who must have access to `session` (`write` to change it).
    pub(crate) async fn for_session<T>(
        &self,
        req: &GrpcRequest<T>,
        session: &str,
        write: bool,
    ) -> Result<SessionId, Status> {
        let principal = self.caller(req).await?;
        let id = session_id(session)?;
        principal.require(&id, write).map_err(status::from_api)?;
        Ok(id)
    }

    pub(crate) async fn admin<T>(&self, req: &GrpcRequest<T>) -> Result<(), Status> {
        self.caller(req).await?.require_admin().map_err(status::from_api)
    }
}

pub(crate) fn session_id(raw: &str) -> Result<SessionId, Status> {
    raw.parse().map_err(status::from_core)
}

fn route<S>(router: Router, svc: S) -> Router
where
    S: NamedService + tower::Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    router.route_service(&format!("/{}/{{*rest}}", S::NAME), svc)
}

/// Every gRPC service as axum routes, ready to merge after the REST routes.
pub fn routes(state: AppState) -> Router {
    let api = Api { state };
    let (health, health_svc) = tonic_health::server::health_reporter();
    // Everything is served by the one process: serving as soon as it is bound.
    tokio::spawn(async move {
        health
            .set_serving::<pb::session_service_server::SessionServiceServer<Api>>()
            .await;
        health
            .set_serving::<pb::file_service_server::FileServiceServer<Api>>()
            .await;
        health
            .set_serving::<pb::batch_service_server::BatchServiceServer<Api>>()
            .await;
        health
            .set_serving::<pb::history_service_server::HistoryServiceServer<Api>>()
            .await;
        health
            .set_serving::<pb::mount_service_server::MountServiceServer<Api>>()
            .await;
        health
            .set_serving::<pb::token_service_server::TokenServiceServer<Api>>()
            .await;
        health
            .set_serving::<pb::meta_service_server::MetaServiceServer<Api>>()
            .await;
    });
    let mut router = Router::new();
    router = route(
        router,
        pb::session_service_server::SessionServiceServer::new(api.clone()),
    );
    router = route(router, pb::file_service_server::FileServiceServer::new(api.clone()));
    router = route(
        router,
        pb::batch_service_server::BatchServiceServer::new(api.clone())
            .max_decoding_message_size(api.state.max_batch_bytes.saturating_add(batch::WIRE_SLACK)),
    );
    router = route(router, pb::mount_service_server::MountServiceServer::new(api.clone()));
    router = route(
        router,
        pb::history_service_server::HistoryServiceServer::new(api.clone()),
    );
    router = route(router, pb::token_service_server::TokenServiceServer::new(api.clone()));
    router = route(router, pb::meta_service_server::MetaServiceServer::new(api));
    router = route(router, health_svc);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    match reflection().build_v1() {
        Ok(svc) => router = route(router, svc),
        Err(e) => tracing::error!(error = %e, "grpc reflection (v1) unavailable"),
    }
    match reflection().build_v1alpha() {
        Ok(svc) => router = route(router, svc),
        Err(e) => tracing::error!(error = %e, "grpc reflection (v1alpha) unavailable"),
    }
    router
}

/// A gRPC call that reached no gRPC service (the REST fallback or auth answered it) gets a
/// gRPC `Unimplemented` instead of an HTTP error a gRPC client cannot read.
pub async fn unknown_service(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let is_grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    if is_grpc && resp.status() != axum::http::StatusCode::OK {
        return Status::unimplemented(format!("no gRPC method {path}")).into_http::<axum::body::Body>();
    }
    resp
}
