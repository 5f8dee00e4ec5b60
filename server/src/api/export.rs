//! Streamed tar / tar.gz export of a session or one of its revisions.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{ApiQuery, session_id};
use crate::auth::Principal;
use crate::body::{ChannelWriter, channel_body};
use crate::dto;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/sessions/{id}/export", tag = "sessions", params(dto::SessionPath, dto::ExportParams),
    responses((status = 200, description = "A tar stream (gzip-compressed for tar.gz)", content((dto::Binary = "application/x-tar"), (dto::Binary = "application/gzip"))),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<dto::ExportParams>,
) -> ApiResult<Response> {
    let id = session_id(&id)?;
    principal.require(&id, false)?;
    let gzip = match q.format.as_deref().unwrap_or("tar") {
        "tar" => false,
        "tar.gz" | "tgz" => true,
        other => {
            return Err(ApiError::unprocessable(format!(
                "format must be tar or tar.gz, got '{other}'"
            )));
        }
    };
    // Fail before the response starts when the session or revision does not exist.
    state.engine.stat(&id, "", q.at.as_deref()).await?;
    let (writer, rx) = ChannelWriter::new();
    let errors = writer.error_sender();
    let engine = state.engine.clone();
    let at = q.at.clone();
    let session = id.clone();
    tokio::spawn(async move {
        if let Err(e) = engine.export_tar(&session, at.as_deref(), gzip, writer).await {
            tracing::warn!(session = %session, error = %e, "export failed mid-stream");
            let _ = errors.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let (ctype, ext) = if gzip {
        ("application/gzip", "tar.gz")
    } else {
        ("application/x-tar", "tar")
    };
    let disposition = format!("attachment; filename=\"{id}.{ext}\"");
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(|e| ApiError::bad_request(e.to_string()))?,
            ),
        ],
        channel_body(rx),
    )
        .into_response())
}
