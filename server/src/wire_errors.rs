//! JSON bodies for the errors hyper answers by itself. A request line or head that cannot be
//! parsed (a URI over 65,534 bytes: 414; a malformed header: 400; a head over the buffer: 431)
//! never reaches the router, so `plain_errors` cannot see it: hyper writes a bodiless response
//! and closes the connection. This wrapper of the connection's I/O recognises exactly that
//! response on the wire (an HTTP/1 4xx head with `content-length: 0`, which no handler sends:
//! every error from the router has a JSON body) and writes the API's JSON error in its place.
//! Everything else passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::plain_errors::code_of;

pub struct JsonWireErrors<T> {
    inner: T,
    /// A replacement response still to be written.
    pending: Vec<u8>,
}

impl<T> JsonWireErrors<T> {
    pub fn new(inner: T) -> Self {
        JsonWireErrors {
            inner,
            pending: Vec::new(),
        }
    }
}

/// The JSON replacement for `head` when it is one of hyper's automatic error responses.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let end = text.find("\r\n\r\n")?;
    if end + 4 != text.len() {
        return None; // a body follows: not an automatic response
    }
    let mut lines = text[..end].split("\r\n");
    let status_line = lines.next()?;
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let status = axum::http::StatusCode::from_bytes(rest.get(..3)?.as_bytes()).ok()?;
    if !status.is_client_error() {
        return None;
    }
    let headers: Vec<&str> = lines.collect();
    if !headers.iter().any(|h| h.eq_ignore_ascii_case("content-length: 0")) {
        return None;
    }
    let message = match status {
        axum::http::StatusCode::URI_TOO_LONG => "the request URI is longer than 65534 bytes".to_owned(),
        axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request head is too large".to_owned(),
        s => format!(
            "the request could not be parsed ({})",
            s.canonical_reason().unwrap_or("bad request")
        ),
    };
    let body = serde_json::json!({"error": {"code": code_of(status).as_str(), "message": message}}).to_string();
    let mut out = format!("{status_line}\r\n");
    for h in headers {
        let name = h.split(':').next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection") {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

impl<T: AsyncWrite + Unpin> JsonWireErrors<T> {
    /// Write what is pending; ready once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonWireErrors<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonWireErrors<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if buf.starts_with(b"HTTP/1.")
            && let Some(r) = replacement(buf)
        {
            self.pending = r;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (nonempty.next(), nonempty.next())
            && only.starts_with(b"HTTP/1.")
            && let Some(r) = replacement(only)
        {
            self.pending = r;
            return Poll::Ready(Ok(only.len()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_client_errors_are_replaced() {
        let r = replacement(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n").unwrap();
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\ndate: x\r\n"), "{text}");
        assert!(text.contains("content-type: application/json\r\n"));
        assert!(
            text.ends_with(
                r#"{"error":{"code":"uri_too_long","message":"the request URI is longer than 65534 bytes"}}"#
            )
        );
        for kept in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert_eq!(replacement(kept), None, "{}", String::from_utf8_lossy(kept));
        }
    }
}
