//! The gRPC API (`aether.v1`, see `proto/`), served by aetherd on the HTTP port (h2c).
//!
//! Every method is a codec: it finds the caller in the `authorization` metadata (the service
//! authenticates, as for HTTP), decodes the message, makes one service call and encodes the
//! result; errors become statuses in `status.rs` only. The standard health service and server reflection need no token
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
mod usage;

use std::convert::Infallible;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use tonic::server::NamedService;
use tonic::{Request as GrpcRequest, Status};

use aether_core::Surface;
use aether_proto::MOUNT_HEADER;
use aether_proto::v1 as pb;
use aether_service::Principal;

use crate::auth::principal_for;
use crate::state::AppState;

/// The state every service holds.
#[derive(Clone)]
pub(crate) struct Api {
    pub state: AppState,
}

impl Api {
    /// The caller of `req`, or `Unauthenticated`. A request with `aether-mount` metadata
    /// comes from that mount: its changes carry the id, so the mount knows them on its watch
    /// stream (anyone may claim a mount id; it decides only what that mount skips invalidating).
    pub(crate) async fn caller<T>(&self, req: &GrpcRequest<T>) -> Result<Principal, Status> {
        let headers = req.metadata().clone().into_headers();
        let p = principal_for(&self.state, &headers, Surface::Grpc)
            .await
            .map_err(status::status)?;
        match headers.get(MOUNT_HEADER) {
            None => Ok(p),
            Some(v) => {
                let id = v
                    .to_str()
                    .map_err(|_| Status::invalid_argument("the aether-mount metadata is not text"))?;
                p.from_mount(id).map_err(status::status)
            }
        }
    }

    /// `resp`, with the `aether-handoff-incomplete` metadata entry naming the mounts whose
    /// changes the call went on without, if any.
    pub(crate) fn handed<T>(caller: &Principal, mut resp: tonic::Response<T>) -> tonic::Response<T> {
        let missed = caller.incomplete_handoffs();
        if !missed.is_empty()
            && let Ok(v) = missed.join(", ").parse()
        {
            resp.metadata_mut().insert(crate::auth::HANDOFF_HEADER, v);
        }
        resp
    }

    pub(crate) fn service(&self) -> &aether_service::Service {
        &self.state.service
    }
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
        health
            .set_serving::<pb::usage_service_server::UsageServiceServer<Api>>()
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
            .max_decoding_message_size(api.service().config().max_batch_bytes.saturating_add(batch::WIRE_SLACK)),
    );
    router = route(router, pb::mount_service_server::MountServiceServer::new(api.clone()));
    router = route(
        router,
        pb::history_service_server::HistoryServiceServer::new(api.clone()),
    );
    router = route(router, pb::token_service_server::TokenServiceServer::new(api.clone()));
    router = route(router, pb::usage_service_server::UsageServiceServer::new(api.clone()));
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
