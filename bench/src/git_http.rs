//! The reference git server of the git benchmarks and the byte counter in front of both sides.
//!
//! [`HttpBackend`] serves the repositories under a root with `git http-backend` run as CGI behind
//! a small axum front: one `http-backend` process per request, its output streamed to the client
//! as it is produced (never buffered whole), as a web server running git's CGI would. It runs in
//! the benchmark's own process; `http-backend` and the `upload-pack`/`pack-objects` it starts are
//! processes of their own.
//!
//! [`CountingProxy`] relays TCP connections to a server and counts the bytes going each way, so
//! both sides' "bytes sent" are measured at the same place and in the same way (HTTP headers and
//! chunked framing included).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Largest request body the front accepts (a large negotiation fits).
const MAX_REQUEST: usize = 64 << 20;

/// `git http-backend` serving every repository below `root` on a loopback port.
pub struct HttpBackend {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpBackend {
    pub fn start(rt: &Runtime, root: PathBuf) -> Result<HttpBackend> {
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("binding the http-backend front")?;
        let addr = listener.local_addr().context("the http-backend front's address")?;
        let app = Router::new().fallback(cgi).with_state(Arc::new(root));
        let task = rt.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("http-backend front stopped: {e}");
            }
        });
        Ok(HttpBackend { addr, task })
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn failure(status: StatusCode, msg: String) -> Response {
    (status, format!("{msg}\n")).into_response()
}

/// One request through `git http-backend` (RFC 3875 CGI): headers from its output's head, the
/// rest streamed as the body.
async fn cgi(State(root): State<Arc<PathBuf>>, req: Request) -> Response {
    match run_cgi(&root, req).await {
        Ok(r) => r,
        Err(e) => failure(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn run_cgi(root: &std::path::Path, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST)
        .await
        .context("reading the request body")?;
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("git-protocol", "GIT_PROTOCOL"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
    ] {
        if let Some(v) = parts.headers.get(header).and_then(|v| v.to_str().ok()) {
            cmd.env(var, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting git http-backend")?;
    let mut stdin = child.stdin.take().context("http-backend's stdin")?;
    tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let stdout = child.stdout.take().context("http-backend's stdout")?;
    let mut out = BufReader::with_capacity(64 << 10, stdout);
    let mut resp = Response::new(Body::empty());
    loop {
        let mut line = String::new();
        if out
            .read_line(&mut line)
            .await
            .context("reading http-backend's headers")?
            == 0
        {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v.split(' ').next().unwrap_or("200");
            *resp.status_mut() = code.parse().context("a bad CGI status")?;
        } else {
            resp.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).context("a bad CGI header name")?,
                HeaderValue::from_str(v).context("a bad CGI header value")?,
            );
        }
    }
    // The rest is the body, streamed; the child is reaped when the stream ends.
    let stream = futures_util::stream::unfold((out, Some(child)), |(mut out, mut child)| async move {
        let mut buf = vec![0u8; 64 << 10];
        match out.read(&mut buf).await {
            Ok(0) => {
                if let Some(mut c) = child.take() {
                    let _ = c.wait().await;
                }
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), (out, child)))
            }
            Err(e) => Some((Err(e), (out, None))),
        }
    });
    *resp.body_mut() = Body::from_stream(stream);
    Ok(resp)
}

/// Bytes relayed by a [`CountingProxy`] since it started.
#[derive(Debug, Default)]
pub struct Counts {
    /// Server to client: what the server sent.
    pub down: AtomicU64,
    /// Client to server.
    pub up: AtomicU64,
}

/// A TCP relay on a loopback port in front of `upstream`, counting bytes both ways.
pub struct CountingProxy {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    pub fn start(rt: &Runtime, upstream: SocketAddr) -> Result<CountingProxy> {
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("binding the counting proxy")?;
        let addr = listener.local_addr().context("the counting proxy's address")?;
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let task = rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, &c).await;
                    }
                });
            }
        });
        Ok(CountingProxy { addr, counts, task })
    }

    /// Bytes the server has sent through the proxy so far.
    pub fn down(&self) -> u64 {
        self.counts.down.load(Ordering::Relaxed)
    }

    /// `http://[user:password@]addr`.
    pub fn base(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("http://{c}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, counts: &Counts) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = copy_counting(&mut cr, &mut sw, &counts.up);
    let down = copy_counting(&mut sr, &mut cw, &counts.down);
    let _ = tokio::join!(up, down);
}

async fn copy_counting(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    count: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Pass the half-close on, so the other side sees the end of the request or response.
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}
