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

/// The errors every operation can answer with, whatever its handler does: a request that
/// cannot be read (400), missing or insufficient credentials (401, 403), an unknown session or
/// token (404), a body over a limit or of the wrong shape (413, 422), a storage failure (500).
/// Added to each operation that does not document them itself.
struct CommonErrors;

impl CommonErrors {
    fn error(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
            .into()
    }
}

impl Modify for CommonErrors {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        use utoipa::openapi::{HttpMethod, RefOr};
        // `Source` refuses unknown fields (`deny_unknown_fields`) in its variants with fields.
        if let Some(RefOr::T(Schema::OneOf(source))) = api.components.as_mut().and_then(|c| c.schemas.get_mut("Source"))
        {
            // Serde ignores extra fields of the unit variant (`{"type": "empty"}`) only.
            for variant in &mut source.items {
                if let RefOr::T(Schema::Object(o)) = variant
                    && o.properties.len() > 1
                {
                    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
        for (path, item) in api.paths.paths.iter_mut() {
            let public = path == "/healthz";
            for method in [
                HttpMethod::Get,
                HttpMethod::Put,
                HttpMethod::Post,
                HttpMethod::Patch,
                HttpMethod::Delete,
            ] {
                let Some(op) = (match method {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Put => item.put.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    HttpMethod::Patch => item.patch.as_mut(),
                    _ => item.delete.as_mut(),
                }) else {
                    continue;
                };
                // Bodies the server takes empty: an empty fork or checkpoint request means
                // "the defaults"; an empty PUT writes an empty file; a truncating PATCH has none.
                let last = path.rsplit('/').next().unwrap_or("");
                let empty_body_ok = match method {
                    HttpMethod::Post => last == "fork" || last == "checkpoints",
                    HttpMethod::Put | HttpMethod::Patch => last == "{path}",
                    _ => false,
                };
                if let (true, Some(body)) = (empty_body_ok, op.request_body.as_mut()) {
                    body.required = Some(utoipa::openapi::Required::False);
                }
                let queries = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query);
                let mut add = vec![
                    (
                        "400",
                        "The request cannot be read: a path, query or header that is not valid",
                    ),
                    ("500", "A storage failure on the server"),
                ];
                if !public {
                    add.push(("401", "Missing or unknown credentials"));
                    add.push(("403", "The token may not do this"));
                    add.push(("404", "No such session, token, path or revision"));
                }
                if path.starts_with("/v1/sessions") && !matches!(method, HttpMethod::Get) {
                    add.push(("409", "The session is archived (read-only), or the change conflicts"));
                    add.push((
                        "507",
                        "The change would take the session over its quota (`quota_exceeded`)",
                    ));
                }
                if op.request_body.is_some() || path.contains("{path}") {
                    add.push(("413", "The body, a path or a name is over a configured limit"));
                }
                if op.request_body.is_some() || queries || path.contains("{oid}") {
                    add.push(("422", "A value the engine does not accept (a revision, a mode, a name)"));
                }
                for (status, description) in add {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| Self::error(description));
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "AetherFS API", version = "1", description = "Sessions: isolated, addressable working filesystems."),
    modifiers(&BearerAuth, &CommonErrors),
    security(("bearer" = [])),
    paths(
        healthz, readyz, openapi,
        super::sessions::create, super::sessions::list, super::sessions::import, super::sessions::show,
        super::sessions::update, super::sessions::delete, super::sessions::fork, super::sessions::archive,
        super::changes::changes, super::activity::activity, super::analytics::health,
        super::analytics::analytics,
        super::usage::session, super::usage::server,
        super::files::read, super::files::write, super::files::patch, super::files::remove,
        super::fs::tree_root, super::fs::tree, super::fs::stat, super::fs::rename, super::fs::mkdir,
        super::fs::symlink, super::fs::chmod, super::fs::chown, super::fs::mknod, super::fs::link,
        super::fs::utimes,
        super::history::checkpoint, super::history::checkpoints, super::history::restore,
        super::history::commit, super::history::log, super::history::show_commit,
        super::export::export,
        super::tokens::create, super::tokens::list, super::tokens::revoke,
        super::admin::gc,
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;
