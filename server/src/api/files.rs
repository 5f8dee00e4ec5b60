//! File content: streamed reads with Range and ETag, streamed writes, range writes, deletes.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use aether_core::WriteOptions;

use super::{ApiQuery, session_id};
use crate::auth::Principal;
use crate::body::from_reader;
use crate::dto;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Largest body a PATCH (range write) accepts in one request.
const MAX_PATCH_BODY: usize = 256 << 20;

/// Parse a single `bytes=` range against `size`. `Ok(None)`: no (usable) range, serve all.
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: answer with the whole file, as RFC 9110 allows
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", "") => return Err(()),
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (s, "") => (s.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (s, e) => {
            let (s, e): (u64, u64) = (s.parse().map_err(|_| ())?, e.parse().map_err(|_| ())?);
            if e < s {
                return Err(());
            }
            (s, e.min(size.saturating_sub(1)))
        }
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// Raw bytes of a file; `Range` gives 206, `If-None-Match` 304; `?at=` reads any revision.
#[utoipa::path(get, path = "/v1/sessions/{id}/files/{path}", tag = "files", params(dto::AtParams),
    responses((status = 200, description = "File bytes", content_type = "application/octet-stream"),
              (status = 206, description = "A byte range"), (status = 304, description = "Not modified"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    principal: Principal,
    method: Method,
    headers: HeaderMap,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::AtParams>,
) -> ApiResult<Response> {
    let id = session_id(&id)?;
    principal.require(&id, false)?;
    let stat = state.engine.stat_attrs(&id, &path, q.at.as_deref()).await?;
    match stat.kind {
        aether_core::FileKind::File => {}
        aether_core::FileKind::Dir => return Err(aether_core::Error::IsADirectory { path: stat.path }.into()),
        aether_core::FileKind::Symlink => {
            let target = stat.symlink_target.unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "is_a_symlink",
                format!("'{}' is a symbolic link to '{target}'", stat.path),
            ));
        }
    }
    let etag = format!("\"{}\"", stat.oid.clone().unwrap_or_default());
    let mut resp_headers = HeaderMap::new();
    resp_headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(|e| ApiError::bad_request(e.to_string()))?,
    );
    resp_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    resp_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && etag_matches(inm, &etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, resp_headers).into_response());
    }
    let size = stat.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => match parse_range(r, size) {
            Ok(r) => r,
            Err(()) => {
                let mut resp = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("range '{r}' does not fit a file of {size} bytes"),
                )
                .into_response();
                resp.headers_mut()
                    .insert(header::CONTENT_RANGE, content_range_unsatisfied(size));
                return Ok(resp);
            }
        },
        None => None,
    };
    let (status, start, len) = match range {
        Some((s, e)) => {
            let cr = format!("bytes {s}-{e}/{size}");
            resp_headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&cr).map_err(|e| ApiError::bad_request(e.to_string()))?,
            );
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    resp_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if method == Method::HEAD {
        return Ok((status, resp_headers).into_response());
    }
    if !stat.chunked {
        // A blob of the object database is read whole anyway: answer with one buffer, without
        // a blocking reader task and a channel per request.
        let data = state.engine.read(&id, &path, start, Some(len), q.at.as_deref()).await?;
        return Ok((status, resp_headers, data).into_response());
    }
    let (_, reader) = state.engine.open_read(&id, &path, start, q.at.as_deref()).await?;
    Ok((status, resp_headers, from_reader(reader, len)).into_response())
}

fn content_range_unsatisfied(size: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes */{size}")).unwrap_or(HeaderValue::from_static("bytes */0"))
}

/// Write a whole file from the request body, streamed; parents are created unless `parents=false`.
#[utoipa::path(put, path = "/v1/sessions/{id}/files/{path}", tag = "files", params(dto::PutParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody)))]
pub async fn write(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::PutParams>,
    body: Body,
) -> ApiResult<axum::Json<dto::Stat>> {
    let id = session_id(&id)?;
    principal.require(&id, true)?;
    let mode = q.mode.as_deref().map(parse_mode).transpose()?;
    let size = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("bad Content-Length"))?,
        ),
        None => None,
    };
    let reader = tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let opts = WriteOptions {
        size,
        mode,
        create_parents: q.parents.unwrap_or(true),
    };
    Ok(axum::Json(
        state.engine.write_file(&id, &path, reader, opts).await?.into(),
    ))
}

pub(crate) fn parse_mode(s: &str) -> ApiResult<u32> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| ApiError::unprocessable(format!("mode must be octal permission bits like 644, got '{s}'")))
}

/// Write the body at `offset`, or cut/extend the file to `truncate` bytes.
#[utoipa::path(patch, path = "/v1/sessions/{id}/files/{path}", tag = "files", params(dto::PatchParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::PatchParams>,
    body: Body,
) -> ApiResult<axum::Json<dto::Stat>> {
    let id = session_id(&id)?;
    principal.require(&id, true)?;
    let data = axum::body::to_bytes(body, MAX_PATCH_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a PATCH body is at most {MAX_PATCH_BODY} bytes"),
        )
    })?;
    let stat = match (q.offset, q.truncate) {
        (Some(offset), None) => state.engine.write_at(&id, &path, offset, data.to_vec()).await?,
        (None, Some(size)) if data.is_empty() => state.engine.truncate(&id, &path, size).await?,
        (None, Some(_)) => return Err(ApiError::unprocessable("truncate takes an empty body")),
        _ => return Err(ApiError::unprocessable("give exactly one of offset or truncate")),
    };
    Ok(axum::Json(stat.into()))
}

#[utoipa::path(delete, path = "/v1/sessions/{id}/files/{path}", tag = "files", params(dto::DeleteParams),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::DeleteParams>,
) -> ApiResult<StatusCode> {
    let id = session_id(&id)?;
    principal.require(&id, true)?;
    state.engine.delete(&id, &path, q.recursive).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
