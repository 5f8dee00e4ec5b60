//! File content: streamed reads with Range and ETag, streamed writes, range writes, deletes.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use aether_service::{Code, MAX_PATCH_BYTES, PatchOp, ReadFile, ServiceError, WriteFile};

use super::ApiQuery;
use crate::auth::Caller;
use crate::body::from_reader;
use crate::dto;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

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

/// `If-None-Match` (weak comparison): whether `etag` is among the listed tags, or the list is `*`.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// `If-Match` and `If-Range` (strong comparison, RFC 9110): a weak tag never matches.
fn etag_matches_strong(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|t| t == "*" || t == etag)
}

/// The content id `If-Match` names when it names exactly one (`"<git blob id>"`): the engine
/// then refuses the read unless the path holds that content.
fn expected_content(if_match: &str) -> Option<&str> {
    let tag = if_match.trim().strip_prefix('"')?.strip_suffix('"')?;
    (tag.len() == 40 && tag.bytes().all(|b| b.is_ascii_hexdigit())).then_some(tag)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> ApiResult<Option<&str>> {
    headers
        .get(&name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ServiceError::bad_request(format!("the {name} header is not text")).into())
        })
        .transpose()
}

/// Raw bytes of a file; `Range` gives 206, `If-None-Match` 304, `If-Match` 412 (`stale`) when
/// the file holds other content; `?at=` reads any revision. Headers and body describe one
/// content, named by the ETag (its git blob id), whatever is written meanwhile.
#[utoipa::path(get, path = "/v1/sessions/{id}/files/{path}", tag = "files", params(dto::FilePath, dto::AtParams),
    responses((status = 200, description = "File bytes", content_type = "application/octet-stream"),
              (status = 206, description = "A byte range of the content the ETag names"),
              (status = 304, description = "Not modified"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 412, description = "If-Match names other content (code stale)", body = ErrorBody),
              (status = 416, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    Caller(caller): Caller,
    method: Method,
    headers: HeaderMap,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::AtParams>,
) -> ApiResult<Response> {
    let if_match = header_str(&headers, header::IF_MATCH)?;
    let req = ReadFile {
        session: id,
        path,
        at: q.at,
        content_id: if_match.and_then(expected_content).map(str::to_owned),
        // If-Match asks for the current content.
        opened: false,
        offset: 0,
    };
    // The ETag, the length and the bytes all come from this one opened version.
    let file = state.service.open_file(&caller, req).await?;
    let etag = format!("\"{}\"", file.oid());
    if let Some(im) = if_match
        && !etag_matches_strong(im, &etag)
    {
        return Err(ServiceError::stale(&file.stat().path, im, &file.oid().to_string()).into());
    }
    let mut resp_headers = HeaderMap::new();
    resp_headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(|e| ServiceError::bad_request(e.to_string()))?,
    );
    resp_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    resp_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(inm) = header_str(&headers, header::IF_NONE_MATCH)?
        && etag_matches(inm, &etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, resp_headers).into_response());
    }
    let size = file.size();
    // `If-Range` with another version's tag: the range would be of other bytes; send them all.
    let range_header = match header_str(&headers, header::IF_RANGE)? {
        Some(ir) if !etag_matches_strong(ir, &etag) => None,
        _ => header_str(&headers, header::RANGE)?,
    };
    let range = match range_header {
        Some(r) => match parse_range(r, size) {
            Ok(r) => r,
            Err(()) => {
                let mut resp = ApiError::new(
                    Code::RangeNotSatisfiable,
                    format!("range '{r}' does not fit a file of {size} bytes"),
                )
                .into_response();
                resp.headers_mut()
                    .insert(header::CONTENT_RANGE, content_range_unsatisfied(size));
                if let Some(tag) = resp_headers.get(header::ETAG) {
                    resp.headers_mut().insert(header::ETAG, tag.clone());
                }
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
                HeaderValue::from_str(&cr).map_err(|e| ServiceError::bad_request(e.to_string()))?,
            );
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    resp_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if method == Method::HEAD {
        return Ok((status, resp_headers).into_response());
    }
    if !file.chunked() {
        // A blob of the object database is read whole anyway: answer with one buffer, without
        // a blocking reader task and a channel per request. `read` gives exactly `len` bytes.
        let data = file.read(start, len).await.map_err(ServiceError::from)?;
        return Ok((status, resp_headers, data).into_response());
    }
    Ok((
        status,
        resp_headers,
        from_reader(file.reader(start, len), len, state.feed()),
    )
        .into_response())
}

fn content_range_unsatisfied(size: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes */{size}")).unwrap_or(HeaderValue::from_static("bytes */0"))
}

/// Write a whole file from the request body, streamed; parents are created unless `parents=false`.
/// With `x-aether-mtime` (nanoseconds since the Unix epoch, a decimal integer, 0 or more) the
/// file gets that modification time instead of the time of the write.
#[utoipa::path(put, path = "/v1/sessions/{id}/files/{path}", tag = "files",
    params(dto::FilePath, dto::PutParams,
        ("x-aether-mtime" = Option<i64>, Header, minimum = 0,
         description = "The file's modification time: nanoseconds since the Unix epoch, a decimal integer, 0 or more")),
    request_body(content = dto::Binary, content_type = "application/octet-stream"),
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody)))]
pub async fn write(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::PutParams>,
    body: Body,
) -> ApiResult<axum::Json<dto::Stat>> {
    let mode = q.mode.as_deref().map(parse_mode).transpose()?;
    let size = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ServiceError::bad_request("bad Content-Length"))?,
        ),
        None => None,
    };
    let mtime = match headers.get(MTIME_HEADER) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ServiceError::invalid(format!(
                        "{MTIME_HEADER} must be nanoseconds since the Unix epoch, a decimal integer from 0 to 2^63 - 1"
                    ))
                })?,
        ),
        None => None,
    };
    let reader = tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let req = WriteFile {
        session: id,
        path,
        size,
        mode,
        create_parents: q.parents.unwrap_or(true),
        offset: 0,
        mtime,
    };
    Ok(axum::Json(state.service.write_file(&caller, req, reader).await?.into()))
}

/// The header of a PUT that gives the file's modification time (nanoseconds since the epoch).
pub const MTIME_HEADER: &str = "x-aether-mtime";

pub(crate) fn parse_mode(s: &str) -> ApiResult<u32> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| ServiceError::invalid(format!("mode must be octal permission bits like 644, got '{s}'")).into())
}

/// Write the body at `offset`, or cut/extend the file to `truncate` bytes.
#[utoipa::path(patch, path = "/v1/sessions/{id}/files/{path}", tag = "files", params(dto::FilePath, dto::PatchParams),
    request_body(content = dto::Binary, content_type = "application/octet-stream"),
    responses((status = 200, body = dto::Stat), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::PatchParams>,
    body: Body,
) -> ApiResult<axum::Json<dto::Stat>> {
    let data = axum::body::to_bytes(body, MAX_PATCH_BYTES)
        .await
        .map_err(|_| ServiceError::too_large(format!("a PATCH body is at most {MAX_PATCH_BYTES} bytes")))?;
    let op = match (q.offset, q.truncate) {
        (Some(offset), None) => PatchOp::Write {
            offset,
            data: data.to_vec(),
        },
        (None, Some(size)) if data.is_empty() => PatchOp::Truncate(size),
        (None, Some(_)) => return Err(ServiceError::invalid("truncate takes an empty body").into()),
        _ => return Err(ServiceError::invalid("give exactly one of offset or truncate").into()),
    };
    Ok(axum::Json(
        state.service.patch_file(&caller, &id, &path, op).await?.into(),
    ))
}

#[utoipa::path(delete, path = "/v1/sessions/{id}/files/{path}", tag = "files", params(dto::FilePath, dto::DeleteParams),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, path)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<dto::DeleteParams>,
) -> ApiResult<StatusCode> {
    state.service.delete(&caller, &id, &path, q.recursive).await?;
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
        assert!(etag_matches("W/\"b\"", "\"b\""), "If-None-Match compares weakly");
        assert!(!etag_matches_strong("W/\"b\"", "\"b\""), "If-Match compares strongly");
        assert!(etag_matches_strong("\"a\", \"b\"", "\"b\"") && etag_matches_strong("*", "\"b\""));
        let oid = "95d09f2b10159347eece71399a7e2e907ea3df4f";
        assert_eq!(expected_content(&format!(" \"{oid}\" ")), Some(oid));
        for several in [
            format!("\"{oid}\", \"{oid}\""),
            format!("W/\"{oid}\""),
            "\"abc\"".into(),
            "*".into(),
        ] {
            assert_eq!(expected_content(&several), None, "{several}");
        }
    }
}
