//! Admission and timeouts (issue 34): clients that send headers and no body, idle uploads,
//! unread downloads, connections and blocking jobs over their caps, and uploads abandoned
//! half-way. Limits are set small so each test runs in seconds; what is asserted is outcomes
//! (statuses, codes, counters, "answered at all within a generous bound"), never tight timings.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use aether_proto::v1 as pb;
use aether_server::config::Config;
use pb::session_service_client::SessionServiceClient;

use crate::common::split;
use crate::grpc::Bearer;

/// Generous: how long a side request may take while hostile ones are parked, on a loaded CI
/// machine. Without the fixes these side requests never answer (or answer 503).
const SIDE_BOUND: Duration = Duration::from_secs(10);

/// An in-process server whose admission and engine the test can look at.
pub struct Admitted {
    pub base: String,
    pub addr: String,
    pub admin: String,
    pub admission: aether_service::Admission,
    pub engine: aether_core::Engine,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub async fn start(f: impl FnOnce(&mut Config)) -> Admitted {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    f(&mut config);
    let bound = aether_server::bind(&config).await.unwrap();
    let addr = bound.addr.to_string();
    let (admission, engine) = (bound.admission(), bound.engine());
    let admin = bound.admin_token.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    Admitted {
        base: format!("http://{addr}"),
        addr,
        admin,
        admission,
        engine,
        client: reqwest::Client::builder().timeout(SIDE_BOUND).build().unwrap(),
        _dir: dir,
        _shutdown: tx,
    }
}

impl Admitted {
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
    }

    pub async fn new_session(&self) -> String {
        let resp = self
            .req(Method::POST, "/v1/sessions")
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let (status, body) = split(resp).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn put(&self, id: &str, path: &str, data: Vec<u8>) -> (u16, Value) {
        let resp = self
            .req(Method::PUT, &format!("/v1/sessions/{id}/files/{path}"))
            .body(data)
            .send()
            .await
            .unwrap();
        split(resp).await
    }

    /// A side client's read of a small file: its status, or the failure (a timeout).
    pub async fn side_read(&self, id: &str, path: &str) -> Result<u16, String> {
        self.req(Method::GET, &format!("/v1/sessions/{id}/files/{path}"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }

    /// A raw connection that sent `head` (and `body`) and then nothing more.
    pub async fn raw(&self, head: &str, body: &[u8]) -> TcpStream {
        let mut tcp = TcpStream::connect(&self.addr).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(body).await.unwrap();
        tcp.flush().await.unwrap();
        tcp
    }

    /// A raw connection with a small receive buffer (no autotuning: a client that reads nothing
    /// holds little in its kernel) that sent `head` and then nothing more.
    pub async fn raw_small_window(&self, head: &str) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 << 10).unwrap();
        let mut tcp = socket.connect(self.addr.parse().unwrap()).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp
    }

    /// The head of a PUT announcing `len` bytes.
    pub fn put_head(&self, id: &str, path: &str, len: usize) -> String {
        self.head("PUT", &format!("/v1/sessions/{id}/files/{path}"), len)
    }

    /// The head of a `method` request to `target` announcing a body of `len` bytes.
    pub fn head(&self, method: &str, target: &str, len: usize) -> String {
        format!(
            "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {len}\r\n\r\n",
            self.admin
        )
    }

    /// Bytes of every chunk pack on disk.
    pub fn pack_bytes(&self) -> u64 {
        let packs = self._dir.path().join("data/chunks/packs");
        std::fs::read_dir(packs)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".chunks"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// What the server sent on `tcp` until it closed the connection or `limit` passed (then
/// `None`).
pub async fn answer_within(tcp: &mut TcpStream, limit: Duration) -> Option<String> {
    bytes_within(tcp, limit)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The bytes the server sent on `tcp` until it closed the connection or `limit` passed (then
/// `None`).
pub async fn bytes_within(tcp: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let read = tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

/// Run `test` on a runtime like the server's but with only 16 blocking threads, so a hostile
/// request that parks a blocking thread starves everyone within the test (with tokio's default
/// of 512 it would take far more requests to show).
fn with_small_blocking_pool(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

/// Wait (bounded) until `f` holds; whether it did.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// PUTs that send their headers and no body take no job and no blocking thread (the side
/// client is served, with only 4 jobs for everyone), and each is answered 408 `timeout` once
/// its body sent nothing for the body idle timeout.
#[test]
fn headers_without_a_body_are_cut_after_the_body_timeout_and_hold_nothing() {
    with_small_blocking_pool(async {
        let s = start(|c| {
            c.connections.body_idle_timeout = Duration::from_secs(2);
            c.admission.max_blocking_jobs = 4;
        })
        .await;
        let id = s.new_session().await;
        assert_eq!(s.put(&id, "small", b"x".to_vec()).await.0, 200);
        let mut hostile = Vec::new();
        for n in 0..40 {
            hostile.push(s.raw(&s.put_head(&id, &format!("h{n}"), 1_000_000), b"").await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(s.admission.running(), 0, "a PUT without a body holds a job");
        assert_eq!(s.side_read(&id, "small").await, Ok(200));
        assert_eq!(s.put(&id, "side", b"y".to_vec()).await.0, 200);
        for tcp in &mut hostile {
            let answer = answer_within(tcp, SIDE_BOUND)
                .await
                .expect("a PUT without a body was held past the body idle timeout");
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
        }
        // Nothing was written.
        let (status, _) = split(
            s.req(Method::GET, &format!("/v1/sessions/{id}/stat/h0"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404);
    });
}

/// Uploads that sent a little and then stall (under the read-ahead) hold no job: with one job
/// for everyone, a side read and a side write still go through while 50 of them are parked.
#[test]
fn idle_uploads_do_not_starve_a_side_client() {
    with_small_blocking_pool(async {
        let s = start(|c| c.admission.max_blocking_jobs = 1).await;
        let id = s.new_session().await;
        assert_eq!(s.put(&id, "small", b"x".to_vec()).await.0, 200);
        let mut idle = Vec::new();
        for n in 0..50 {
            idle.push(s.raw(&s.put_head(&id, &format!("i{n}"), 10 << 20), &[7u8; 1000]).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(s.admission.running(), 0, "an idle upload holds a job");
        for _ in 0..5 {
            assert_eq!(s.side_read(&id, "small").await, Ok(200));
        }
        assert_eq!(s.put(&id, "side", vec![1u8; 3 << 20]).await.0, 200);
        drop(idle);
    });
}

/// The head of a GET of `path`, and an 8 MiB file there.
async fn big_file(s: &Admitted, id: &str, path: &str) -> String {
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(s.put(id, path, big).await.0, 200);
    format!(
        "GET /v1/sessions/{id}/files/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        s.admin
    )
}

/// 50 GETs of an 8 MiB file whose responses are never read hold no blocking thread and no job:
/// with 16 blocking threads in the process, and the write timeout far off, the side client is
/// served.
#[test]
fn unread_large_downloads_hold_no_blocking_thread() {
    with_small_blocking_pool(async {
        let s = start(|c| c.connections.response_write_timeout = Duration::from_secs(60)).await;
        let id = s.new_session().await;
        let head = big_file(&s, &id, "big").await;
        assert_eq!(s.put(&id, "small", b"x".to_vec()).await.0, 200);
        let mut parked = Vec::new();
        for _ in 0..50 {
            parked.push(s.raw_small_window(&head).await);
        }
        assert!(
            eventually(SIDE_BOUND, || s.admission.running() == 0).await,
            "an unread download holds a job"
        );
        for _ in 0..5 {
            assert_eq!(s.side_read(&id, "small").await, Ok(200));
        }
        drop(parked);
    });
}

/// A download whose client takes nothing for the response write timeout is given up: its
/// connection is closed after what was sent so far, well short of the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_downloads_are_closed_after_the_write_timeout() {
    let s = start(|c| c.connections.response_write_timeout = Duration::from_secs(2)).await;
    let id = s.new_session().await;
    let head = big_file(&s, &id, "big").await;
    let mut parked = Vec::new();
    for _ in 0..10 {
        parked.push(s.raw_small_window(&head).await);
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    for tcp in &mut parked {
        let got = bytes_within(tcp, SIDE_BOUND)
            .await
            .expect("an unread download was not closed after the write timeout");
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got[..got.len().min(200)])
        );
        assert!(
            got.len() < 8 << 20,
            "the whole file was sent to a client that read nothing: {} bytes",
            got.len()
        );
    }
}

/// A connection over `max_connections` is answered at once: 503, `Retry-After`, code
/// `overloaded` (gRPC: UNAVAILABLE with the same code), and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_answered_503_with_retry_after() {
    let s = start(|c| c.connections.max_connections = 1).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = TcpStream::connect(&s.addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The first stays open (keep-alive): the second is over the limit.
    let mut second = s.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"").await;
    let answer = answer_within(&mut second, SIDE_BOUND)
        .await
        .expect("a connection over the limit was neither answered nor closed");
    let lower = answer.to_ascii_lowercase();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(lower.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");
    // gRPC over the limit.
    let channel = crate::grpc::connect(&s.base).await;
    let mut sessions = SessionServiceClient::with_interceptor(channel, Bearer(Some(s.admin.clone())));
    let err = sessions
        .create_session(pb::CreateSessionRequest::default())
        .await
        .expect_err("a gRPC call over the connection limit succeeded");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert_eq!(
        err.metadata().get("aether-code").and_then(|v| v.to_str().ok()),
        Some("overloaded")
    );
    // Once the first leaves, a new connection is served.
    drop(first);
    let ok = eventually(SIDE_BOUND, || true).await;
    assert!(ok);
    let mut served = false;
    for _ in 0..50 {
        let mut c = s
            .raw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"")
            .await;
        if answer_within(&mut c, SIDE_BOUND)
            .await
            .is_some_and(|a| a.starts_with("HTTP/1.1 200"))
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "no connection was served after the first one closed");
}

/// With every blocking job taken (one, by an upload that sent more than the read-ahead and
/// stalls), REST answers 503 + `Retry-After`, gRPC UNAVAILABLE, git 503, all code `overloaded`,
/// at once; once the job is free the same requests succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_jobs_over_the_cap_are_refused_at_once_on_every_surface() {
    let s = start(|c| c.admission.max_blocking_jobs = 1).await;
    let id = s.new_session().await;
    assert_eq!(s.put(&id, "small", b"x".to_vec()).await.0, 200);
    let holder = s.raw(&s.put_head(&id, "holder", 10 << 20), &vec![1u8; 300 << 10]).await;
    assert!(
        eventually(SIDE_BOUND, || s.admission.running() == 1).await,
        "the stalled upload took no job"
    );
    let resp = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/small"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let (_, body) = split(resp).await;
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    // The metrics say so.
    let text = s
        .req(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("aether_blocking_jobs_running 1\n"), "{text}");
    assert!(text.contains("aether_blocking_jobs_max 1\n"), "{text}");
    // gRPC
    let channel = crate::grpc::connect(&s.base).await;
    let mut files =
        pb::file_service_client::FileServiceClient::with_interceptor(channel, Bearer(Some(s.admin.clone())));
    let err = files
        .stat(pb::StatRequest {
            session: id.clone(),
            path: "small".into(),
            ..Default::default()
        })
        .await
        .expect_err("a gRPC stat ran with every job taken");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert_eq!(
        err.metadata().get("aether-code").and_then(|v| v.to_str().ok()),
        Some("overloaded")
    );
    // git smart HTTP
    let resp = s
        .client
        .get(format!("{}/git/{id}/info/refs?service=git-upload-pack", s.base))
        .basic_auth("x", Some(&s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    // The holder leaves: its job is freed and the same read succeeds.
    drop(holder);
    assert!(
        eventually(SIDE_BOUND, || s.admission.running() == 0).await,
        "an abandoned upload kept its job"
    );
    assert_eq!(s.side_read(&id, "small").await, Ok(200));
}

/// An upload abandoned half-way (the client closes its connection after 5 of 20 MiB) stops at
/// once: its job is freed, the chunks it stored are removed (the pack is back to its size
/// before), nothing is written to the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_leaves_no_staged_chunks_and_no_running_work() {
    let s = start(|_| {}).await;
    let id = s.new_session().await;
    let before = s.pack_bytes();
    for (announced, sent) in [(20usize << 20, 5usize << 20), (0, 5 << 20)] {
        let head = if announced > 0 {
            s.put_head(&id, "big", announced)
        } else {
            // Chunked, no length announced: the end of the body is what says the file is whole.
            format!(
                "PUT /v1/sessions/{id}/files/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                s.admin
            )
        };
        let mut tcp = s.raw(&head, b"").await;
        let piece: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for n in 0..(sent >> 20) {
            let mut data = piece.clone();
            data[0] = n as u8;
            if announced == 0 {
                tcp.write_all(format!("{:x}\r\n", data.len()).as_bytes()).await.unwrap();
                data.extend_from_slice(b"\r\n");
            }
            tcp.write_all(&data).await.unwrap();
        }
        tcp.flush().await.unwrap();
        assert!(
            eventually(SIDE_BOUND, || s.admission.running() == 1).await,
            "the upload never started"
        );
        drop(tcp);
        assert!(
            eventually(SIDE_BOUND, || s.admission.running() == 0).await,
            "the abandoned upload kept running"
        );
        assert!(
            eventually(SIDE_BOUND, || s.engine.objects().staged_chunks() == 0).await,
            "chunks of the abandoned upload are still staged"
        );
        assert!(
            eventually(SIDE_BOUND, || s.pack_bytes() <= before).await,
            "the abandoned upload's chunks are still on disk: {} bytes of packs, {before} before",
            s.pack_bytes()
        );
        let (status, _) = split(
            s.req(Method::GET, &format!("/v1/sessions/{id}/stat/big"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404, "an abandoned upload was written");
    }
}

/// Connections with no request in flight are closed after the idle timeout, well before the
/// header read timeout: an HTTP/1.1 keep-alive connection after its answer, and an HTTP/2 one
/// (GOAWAY, then closed) that never sends a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let s = start(|c| {
        c.connections.idle_timeout = Duration::from_secs(1);
        c.connections.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let mut http1 = s.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"").await;
    // HTTP/2 with prior knowledge: the preface and an empty SETTINGS frame, then nothing.
    let mut http2 = s
        .raw("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await;
    let started = Instant::now();
    let answer = answer_within(&mut http1, Duration::from_secs(15))
        .await
        .expect("an idle HTTP/1.1 connection was kept open");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let got = bytes_within(&mut http2, Duration::from_secs(15))
        .await
        .expect("an idle HTTP/2 connection was kept open");
    // A GOAWAY frame (type 7) is among what the server sent before closing.
    let mut frames = &got[..];
    let mut goaway = false;
    while frames.len() >= 9 {
        let len = u32::from_be_bytes([0, frames[0], frames[1], frames[2]]) as usize;
        goaway |= frames[3] == 7;
        frames = &frames[(9 + len).min(frames.len())..];
    }
    assert!(goaway, "no GOAWAY before the close: {got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed only after {:?} (the header read timeout is 30 s)",
        started.elapsed()
    );
}

/// An export whose client leaves after the first bytes stops: its job is freed at once (the
/// archive writer fails on its next piece), and the server answers the next export whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_export_stops_and_frees_its_job() {
    let s = start(|_| {}).await;
    let id = s.new_session().await;
    let big: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    assert_eq!(s.put(&id, "big", big).await.0, 200);
    let head = format!(
        "GET /v1/sessions/{id}/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        s.admin
    );
    let mut tcp = s.raw_small_window(&head).await;
    let mut first = vec![0u8; 16 << 10];
    let n = tcp.read(&mut first).await.unwrap();
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    assert_eq!(s.admission.running(), 1, "the export runs as a job");
    drop(tcp);
    assert!(
        eventually(SIDE_BOUND, || s.admission.running() == 0).await,
        "the abandoned export kept running"
    );
    let resp = s
        .req(Method::GET, &format!("/v1/sessions/{id}/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().len() > 24 << 20);
}

/// An import whose client leaves mid-upload (8 of 64 MiB of its one file sent) stops: the
/// chunks it stored are removed and no session is created. The import used to read its body
/// from its blocking thread, which waited forever for the body of the dropped request, its
/// chunks staged (and the thread taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_import_stops_and_leaves_no_staged_chunks() {
    let s = start(|_| {}).await;
    let head = crate::hostile_inputs::file_head("big.bin", 64 << 20);
    let announced = head.len() + (64 << 20) + 1024;
    let mut tcp = s.raw(&s.head("POST", "/v1/sessions/import", announced), &head).await;
    tcp.write_all(&crate::git::noise(8 << 20, 3)).await.unwrap();
    tcp.flush().await.unwrap();
    assert!(
        eventually(SIDE_BOUND, || s.engine.objects().staged_chunks() > 0).await,
        "the import stored nothing"
    );
    drop(tcp);
    assert!(
        eventually(SIDE_BOUND, || s.engine.objects().staged_chunks() == 0).await,
        "{} chunks of the abandoned import are still staged",
        s.engine.objects().staged_chunks()
    );
    assert_eq!(s.admission.running(), 0);
    let (status, list) = split(s.req(Method::GET, "/v1/sessions").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(list["sessions"].as_array().unwrap().is_empty(), "{list}");
}
