//! Streamed tar / tar.gz export of a session or one of its revisions.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use aether_service::{ExportFormat, ExportTar, ServiceError};

use super::ApiQuery;
use crate::auth::Caller;
use crate::body::{ChannelWriter, channel_body};
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/sessions/{id}/export", tag = "sessions", params(dto::SessionPath, dto::ExportParams),
    responses((status = 200, description = "A tar stream (gzip-compressed for tar.gz)", content((dto::Binary = "application/x-tar"), (dto::Binary = "application/gzip"))),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<dto::ExportParams>,
) -> ApiResult<Response> {
    let format = ExportFormat::parse(q.format.as_deref().unwrap_or("tar"))?;
    let req = ExportTar {
        session: id,
        at: q.at,
        format,
    };
    let export = state.service.export_tar(&caller, req).await?;
    let disposition = format!("attachment; filename=\"{}.{}\"", export.session, format.extension());
    let disposition = HeaderValue::from_str(&disposition).map_err(|e| ServiceError::bad_request(e.to_string()))?;
    let (writer, rx) = ChannelWriter::new(state.response_stall);
    let errors = writer.error_sender();
    tokio::spawn(async move {
        let session = export.session.clone();
        if let Err(e) = export.write_to(writer).await {
            tracing::warn!(session = %session, error = %e, "export failed mid-stream");
            let _ = errors.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let ctype = match format {
        ExportFormat::TarGz => "application/gzip",
        ExportFormat::Tar => "application/x-tar",
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        channel_body(rx),
    )
        .into_response())
}
