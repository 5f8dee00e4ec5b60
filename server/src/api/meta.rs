//! Health, readiness and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "meta", security(()), responses((status = 200, body = dto::Health)))]
pub async fn healthz() -> Json<dto::Health> {
    Json(dto::Health { status: "ok".into() })
}

/// Ready when the metadata store answers.
#[utoipa::path(get, path = "/readyz", tag = "meta", responses((status = 200, body = dto::Health), (status = 500, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<dto::Health>> {
    state.service.ready().await?;
    Ok(Json(dto::Health { status: "ready".into() }))
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "This document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "AetherFS API", version = "1", description = "Sessions: isolated, addressable working filesystems."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        healthz, readyz, openapi,
        super::sessions::create, super::sessions::list, super::sessions::import, super::sessions::show,
        super::sessions::update, super::sessions::delete, super::sessions::fork, super::sessions::archive,
        super::files::read, super::files::write, super::files::patch, super::files::remove,
        super::fs::tree_root, super::fs::tree, super::fs::stat, super::fs::rename, super::fs::mkdir,
        super::fs::symlink, super::fs::chmod,
        super::history::checkpoint, super::history::checkpoints, super::history::restore,
        super::history::commit, super::history::log, super::history::show_commit,
        super::export::export,
        super::tokens::create, super::tokens::list, super::tokens::revoke,
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;
