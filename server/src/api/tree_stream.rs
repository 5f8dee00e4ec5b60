//! A recursive listing sent while it is walked: the JSON of [`dto::Listing`]
//! (`{"path": ..., "entries": [...], "seq": ...}`) written one batch of entries at a time, the next batch
//! walked only when the client has taken the last one, so the server's memory does not grow
//! with the tree.
//!
//! The first entries are walked before the response starts: an error about the listed path
//! (missing, not a directory) or a limit met early is an ordinary error status. An error after
//! that (a limit met deeper down) ends the body without its closing bracket and without the
//! final chunk, so the client sees a failed transfer, never a listing that looks complete.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use aether_core::{DirEntry, TreeWalk};
use aether_service::ServiceError;

use crate::dto;
use crate::error::ApiResult;

/// Entries walked before the response starts: errors met within them (a tree too deep is
/// usually met within its first few thousand entries) are ordinary error statuses.
const FIRST: usize = 16_384;
/// Entries walked and written per piece of the body after that.
const BATCH: usize = 1024;

/// Append `entries` to `out` as JSON array elements; `first` says none was written before.
fn encode(out: &mut Vec<u8>, entries: Vec<DirEntry>, mut first: bool) {
    for e in entries {
        if !first {
            out.push(b',');
        }
        first = false;
        // A `dto::Stat` holds strings and numbers only: serializing it cannot fail.
        let _ = serde_json::to_writer(&mut *out, &dto::Stat::from(e.stat));
    }
}

/// The response for `walk`, which lists `path`.
pub async fn respond(path: String, walk: TreeWalk) -> ApiResult<Response> {
    // The walk reads one pinned state: its version closes the listing as `seq`.
    let tail = Bytes::from(match walk.seq() {
        Some(seq) => format!("],\"seq\":{seq}}}"),
        None => "]}".to_owned(),
    });
    let (walk, first) = walk.next_batch(FIRST).await.map_err(ServiceError::from)?;
    let mut head = b"{\"path\":".to_vec();
    let _ = serde_json::to_writer(&mut head, &path);
    head.extend_from_slice(b",\"entries\":[");
    // A batch shorter than asked for is the last one.
    let done = first.len() < FIRST;
    encode(&mut head, first, true);
    let body = if done {
        head.extend_from_slice(&tail);
        Body::from(head)
    } else {
        let rest = futures_util::stream::unfold(Some(walk), move |walk| {
            let tail = tail.clone();
            async move {
                let walk = walk?;
                match walk.next_batch(BATCH).await {
                    Ok((_, batch)) if batch.is_empty() => Some((Ok(tail), None)),
                    Ok((walk, batch)) => {
                        let mut piece = Vec::with_capacity(batch.len() * 200);
                        encode(&mut piece, batch, false);
                        Some((Ok(Bytes::from(piece)), Some(walk)))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a recursive listing stopped after its response began");
                        Some((Err(std::io::Error::other(e.to_string())), None))
                    }
                }
            }
        });
        let head = futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) });
        Body::from_stream(futures_util::StreamExt::chain(head, rest))
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}
