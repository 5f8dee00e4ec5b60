//! The REST surface (`/v1`), as a blocking client: every request has a time limit, and a reply
//! that does not arrive whole within it is a [`HttpError::Timeout`] (a hung response), never a
//! hung test.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::runtime::block_on_for;

/// Default time limit of one request, body included.
pub const LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No complete response within the limit.
    Timeout(Duration),
    /// Connection refused or reset, a body cut short, ...
    Transport(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Timeout(d) => write!(f, "no complete response within {d:?}"),
            HttpError::Transport(e) => write!(f, "transport error: {e}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(2000)]).into_owned()
    }

    /// The JSON body of a reply with status `want`, or a message naming what came instead.
    pub fn expect_json(&self, want: u16, what: &str) -> Result<Value, String> {
        if self.status != want {
            return Err(format!(
                "{what}: status {} (wanted {want}): {}",
                self.status,
                self.text()
            ));
        }
        self.json().map_err(|e| format!("{what}: {e}"))
    }
}

#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    url: String,
    token: String,
}

/// Percent-encode a session path for a URL, keeping the slashes.
pub fn encode_path(p: &[u8]) -> String {
    let mut out = String::new();
    for &b in p {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_query(v: &str) -> String {
    encode_path(v.as_bytes()).replace('/', "%2F")
}

impl Rest {
    pub fn new(url: &str, token: &str) -> Rest {
        Rest {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(32)
                .build()
                .expect("an HTTP client"),
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// One request to `path_and_query` (below the server's root), the whole body read.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
        limit: Duration,
    ) -> Result<Reply, HttpError> {
        let mut req = self
            .http
            .request(method, format!("{}{path_and_query}", self.url))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        block_on_for(limit, async move {
            let r = req.send().await.map_err(|e| HttpError::Transport(chain(&e)))?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.bytes().await.map_err(|e| HttpError::Transport(chain(&e)))?;
            Ok(Reply {
                status,
                headers,
                body: body.to_vec(),
            })
        })
        .unwrap_or(Err(HttpError::Timeout(limit)))
    }

    fn json_call(&self, method: Method, path: &str, body: Value, want: u16, what: &str) -> Result<Value, String> {
        self.request(
            method,
            path,
            &[("content-type", "application/json".into())],
            Some(body.to_string().into_bytes()),
            LIMIT,
        )
        .map_err(|e| format!("{what}: {e}"))?
        .expect_json(want, what)
    }

    fn files_url(session: &str, path: &[u8]) -> String {
        format!("/v1/sessions/{session}/files/{}", encode_path(path))
    }

    fn at_query(at: Option<&str>) -> String {
        at.map(|a| format!("?at={}", encode_query(a))).unwrap_or_default()
    }

    pub fn create_session(&self) -> Result<String, String> {
        let v = self.json_call(Method::POST, "/v1/sessions", json!({}), 201, "create a session")?;
        Ok(v["id"].as_str().unwrap_or_default().to_owned())
    }

    /// `GET /files/PATH`, with `Range: bytes=START-END` (inclusive) when given.
    pub fn get_file(
        &self,
        session: &str,
        path: &[u8],
        range: Option<(u64, u64)>,
        at: Option<&str>,
        limit: Duration,
    ) -> Result<Reply, HttpError> {
        let headers: Vec<(&str, String)> = range
            .map(|(s, e)| vec![("range", format!("bytes={s}-{e}"))])
            .unwrap_or_default();
        self.request(
            Method::GET,
            &format!("{}{}", Self::files_url(session, path), Self::at_query(at)),
            &headers,
            None,
            limit,
        )
    }

    /// `PUT /files/PATH` with `mode` (octal) for a new file.
    pub fn put_file(&self, session: &str, path: &[u8], bytes: Vec<u8>, mode: Option<u32>) -> Result<Reply, HttpError> {
        let q = mode.map(|m| format!("?mode={m:o}")).unwrap_or_default();
        self.request(
            Method::PUT,
            &format!("{}{q}", Self::files_url(session, path)),
            &[],
            Some(bytes),
            LIMIT,
        )
    }

    pub fn mkdir(&self, session: &str, path: &str, parents: bool) -> Result<Value, String> {
        self.json_call(
            Method::POST,
            &format!("/v1/sessions/{session}/fs/mkdir"),
            json!({"path": path, "parents": parents}),
            200,
            &format!("mkdir {path:?}"),
        )
    }

    pub fn symlink(&self, session: &str, path: &str, target: &str) -> Result<Value, String> {
        self.json_call(
            Method::POST,
            &format!("/v1/sessions/{session}/fs/symlink"),
            json!({"path": path, "target": target}),
            200,
            &format!("symlink {path:?} -> {target:?}"),
        )
    }

    pub fn chmod(&self, session: &str, path: &str, mode: u32) -> Result<Value, String> {
        self.json_call(
            Method::POST,
            &format!("/v1/sessions/{session}/fs/chmod"),
            json!({"path": path, "mode": format!("{mode:o}")}),
            200,
            &format!("chmod {mode:o} {path:?}"),
        )
    }

    /// The entries of `GET /tree` of directory `dir` ("" for the root; `recursive` for the whole
    /// subtree).
    pub fn tree(
        &self,
        session: &str,
        dir: &str,
        recursive: bool,
        at: Option<&str>,
        limit: Duration,
    ) -> Result<Vec<Value>, String> {
        let mut q = format!("?recursive={recursive}");
        if let Some(a) = at {
            q.push_str(&format!("&at={}", encode_query(a)));
        }
        let url = if dir.is_empty() {
            format!("/v1/sessions/{session}/tree{q}")
        } else {
            format!("/v1/sessions/{session}/tree/{}{q}", encode_path(dir.as_bytes()))
        };
        let reply = self
            .request(Method::GET, &url, &[], None, limit)
            .map_err(|e| format!("GET {url}: {e}"))?;
        let v = reply.expect_json(200, &format!("GET {url}"))?;
        v["entries"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("GET {url}: no entries array"))
    }

    pub fn stat(&self, session: &str, path: &[u8], at: Option<&str>) -> Result<Value, String> {
        let url = format!(
            "/v1/sessions/{session}/stat/{}{}",
            encode_path(path),
            Self::at_query(at)
        );
        self.request(Method::GET, &url, &[], None, LIMIT)
            .map_err(|e| format!("GET {url}: {e}"))?
            .expect_json(200, &format!("GET {url}"))
    }

    /// Fork the session (at a revision); the new session's id.
    pub fn fork(&self, session: &str, at: Option<&str>) -> Result<String, String> {
        let body = match at {
            Some(a) => json!({"at": a}),
            None => json!({}),
        };
        let v = self.json_call(Method::POST, &format!("/v1/sessions/{session}/fork"), body, 201, "fork")?;
        Ok(v["id"].as_str().unwrap_or_default().to_owned())
    }

    /// A checkpoint; its number.
    pub fn checkpoint(&self, session: &str) -> Result<u64, String> {
        let v = self.json_call(
            Method::POST,
            &format!("/v1/sessions/{session}/checkpoints"),
            json!({"message": "integrity checkpoint"}),
            201,
            "checkpoint",
        )?;
        v["number"]
            .as_u64()
            .ok_or_else(|| format!("checkpoint: no number in {v}"))
    }

    /// `POST /v1/admin/gc`: a garbage collection now (it packs what is loose); its report.
    pub fn gc(&self) -> Result<Value, String> {
        self.json_call(Method::POST, "/v1/admin/gc", json!({}), 200, "garbage collection")
    }

    pub fn commit(&self, session: &str, message: &str) -> Result<Value, String> {
        self.json_call(
            Method::POST,
            &format!("/v1/sessions/{session}/commits"),
            json!({"message": message, "author": {"name": "Ada Lovelace", "email": "ada@example.com"}}),
            201,
            "commit",
        )
    }

    /// `GET /export` (tar, or tar.gz with `gzip`).
    pub fn export(&self, session: &str, at: Option<&str>, gzip: bool, limit: Duration) -> Result<Reply, HttpError> {
        let mut q = format!("?format={}", if gzip { "tar.gz" } else { "tar" });
        if let Some(a) = at {
            q.push_str(&format!("&at={}", encode_query(a)));
        }
        self.request(
            Method::GET,
            &format!("/v1/sessions/{session}/export{q}"),
            &[],
            None,
            limit,
        )
    }

    /// `POST /v1/sessions/import` of a tar or tar.gz; the new session's id.
    pub fn import_tar(&self, archive: Vec<u8>) -> Result<String, String> {
        let reply = self
            .request(
                Method::POST,
                "/v1/sessions/import",
                &[("content-type", "application/x-tar".into())],
                Some(archive),
                Duration::from_secs(300),
            )
            .map_err(|e| format!("POST /v1/sessions/import: {e}"))?;
        let v = reply.expect_json(201, "POST /v1/sessions/import")?;
        Ok(v["id"].as_str().unwrap_or_default().to_owned())
    }
}

/// An error with its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
