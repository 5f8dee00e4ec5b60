//! The reference for `http-small-reads`: a tiny static file server (axum, one route) that answers
//! `GET /<path>` with the bytes of `<root>/<path>` read from the local filesystem, or 404. It has
//! no auth, no caching and no range support: the least a file server can do per request.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub async fn serve(listener: tokio::net::TcpListener, root: PathBuf) -> Result<()> {
    let app = Router::new().route("/{*path}", get(file)).with_state(Arc::new(root));
    axum::serve(listener, app).await?;
    Ok(())
}

/// A path of plain components only: nothing that could leave the root.
fn safe(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

async fn file(State(root): State<Arc<PathBuf>>, Path(path): Path<String>) -> Response {
    if !safe(&path) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(root.join(&path)).await {
        Ok(bytes) => bytes.into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn only_plain_relative_paths_are_served() {
        assert!(safe("a/b.txt"));
        assert!(!safe("../etc/passwd"));
        assert!(!safe("a//b"));
        assert!(!safe("a/./b"));
        assert!(!safe(""));
    }
}
