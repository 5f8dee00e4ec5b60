//! The server's soaks (issue 34), each bounded in time, run in CI at small scale.
//!
//! - Connection probes (about 15 s): the admission tests' hostile connections (header-only
//!   PUTs, idle and stalled uploads, unread downloads, silent and trickled connections) at once
//!   against one server, while a side client reads a 1-byte file every 100 ms.
//! - Content probes (about 20 s): every other probe of the issue's table at once against one
//!   server, the side client reading meanwhile: tar imports whose headers claim a huge symlink
//!   target, a gigabytes-long GNU name or gigabytes of sparse holes; an import over
//!   `--max-import-files`; `PATCH ?truncate=` to gigabytes; a git import thousands of levels
//!   deep; gzip bombs as git upload-pack bodies; a resumed gRPC write; imports abandoned
//!   mid-upload; checkpoint-and-stat rounds on a wide directory. Each gets an asserted clear
//!   error or bounded answer, and the process's peak RSS stays under [`CONTENT_RSS_BOUND_MIB`]
//!   above its RSS before the probes.
//! - Whole-tree requests on a large session against a real `aetherd`, under an RSS bound.
//!
//! In all of them the server must stay up and the side client's p99 stay under a generous
//! bound (CI machines are shared; the issue's goal of 100 ms is for the full-scale run on a
//! quiet machine, recorded in BENCHMARKS.md).
//!
//! `AETHER_SOAK_SCALE=N` scales the probes up for a run by hand: `AETHER_SOAK_SCALE=6 cargo
//! test --release -p aether-server --test http soak -- --nocapture` is the issue's 600
//! header-only PUTs and the content probes at the issue's sizes (a 600 MiB symlink target, 8 GiB
//! of sparse holes, `?truncate=8000000000`, 64 gzip bombs, 90 rounds on a 200,000-file
//! directory); each soak prints the side client's percentiles and the peak RSS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admission::start;

/// The first bytes the server sent on `tcp` (its status line, or nothing) once it closed the
/// connection, or `None` when `limit` passed first. Keeps no more than that: the RSS printed
/// is then mostly the server's.
async fn status_within(tcp: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    let read = tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let want = 12usize.saturating_sub(head.len()).min(n);
                    head.extend_from_slice(&buf[..want]);
                }
            }
        }
    })
    .await;
    read.ok().map(|()| String::from_utf8_lossy(&head).into_owned())
}

/// How long the side client keeps reading while the probes run.
const SOAK: Duration = Duration::from_secs(12);
/// The side client's p99 bound here (generous, for a shared 2-core CI machine).
const SIDE_P99: Duration = Duration::from_millis(1500);
/// How long any hostile request may go unanswered and unclosed.
const HOSTILE_BOUND: Duration = Duration::from_secs(20);

/// A line of the process's `/proc/self/status` in MiB (`VmHWM:` the peak resident memory,
/// `VmRSS:` the current one; server and clients together).
fn status_mib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
        })
        .map_or(0, |kib| kib / 1024)
}

/// `AETHER_SOAK_SCALE`, at least 1.
fn soak_scale() -> usize {
    std::env::var("AETHER_SOAK_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// A client on one kept-alive connection reading `url` every 100 ms until stopped, keeping
/// each read's latency and every failure (a status other than 200 is one).
struct SideClient {
    stop: Arc<AtomicBool>,
    started: Instant,
    task: tokio::task::JoinHandle<(Vec<Duration>, Vec<String>)>,
}

impl SideClient {
    fn start(url: String, token: String) -> SideClient {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let t = Instant::now();
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (latencies, failures)
        });
        SideClient {
            stop,
            started: Instant::now(),
            task,
        }
    }

    /// Stop once it has run at least `least`; assert it never failed and ran at all; its
    /// latencies, sorted.
    async fn finish(self, least: Duration) -> Latencies {
        tokio::time::sleep(least.saturating_sub(self.started.elapsed())).await;
        self.stop.store(true, Ordering::Relaxed);
        let (mut latencies, failures) = self.task.await.unwrap();
        assert!(failures.is_empty(), "the side client failed: {failures:?}");
        assert!(latencies.len() > 20, "the side client barely ran: {}", latencies.len());
        latencies.sort();
        Latencies(latencies)
    }
}

/// A side client's latencies, sorted.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn at(&self, per_cent: usize) -> Duration {
        self.0[(self.0.len() * per_cent / 100).min(self.0.len() - 1)]
    }

    fn summary(&self) -> String {
        format!(
            "side client {} reads, p50 {:?}, p99 {:?}, max {:?}",
            self.0.len(),
            self.at(50),
            self.at(99),
            self.0.last().unwrap()
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_probes_leave_the_server_up_and_the_side_client_served() {
    let scale = soak_scale();
    let s = start(|c| {
        c.connections.header_read_timeout = Duration::from_secs(2);
        c.connections.body_idle_timeout = Duration::from_secs(2);
        c.connections.response_write_timeout = Duration::from_secs(2);
        c.connections.max_connections = 300 * scale;
        c.admission.max_blocking_jobs = 16;
    })
    .await;
    let id = s.new_session().await;
    assert_eq!(s.put(&id, "one", b"1".to_vec()).await.0, 200);
    let big_len = (4usize << 20) * scale.min(16);
    let big: Vec<u8> = (0..big_len as u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(s.put(&id, "big", big).await.0, 200);

    let side = SideClient::start(format!("{}/v1/sessions/{id}/files/one", s.base), s.admin.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = status_mib("VmRSS:");

    // The probes, all at once.
    let mut hostile: Vec<(&str, TcpStream)> = Vec::new();
    for n in 0..100 * scale {
        hostile.push((
            "headers, no body",
            s.raw(&s.put_head(&id, &format!("n{n}"), 1 << 20), b"").await,
        ));
    }
    for n in 0..50 * scale {
        hostile.push((
            "idle upload",
            s.raw(&s.put_head(&id, &format!("i{n}"), 50 << 20), &[1u8; 1000]).await,
        ));
    }
    // Past the read-ahead, a stalled upload holds a job until the body idle timeout: a quarter
    // of them here (beyond the cap they would be refused 503 at once, and so would the side).
    for n in 0..4 {
        hostile.push((
            "stalled upload",
            s.raw(&s.put_head(&id, &format!("s{n}"), 50 << 20), &[1u8; 100 << 10])
                .await,
        ));
    }
    let get = format!(
        "GET /v1/sessions/{id}/files/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        s.admin
    );
    for _ in 0..50 * scale {
        hostile.push(("unread download", s.raw_small_window(&get).await));
    }
    for _ in 0..80 * scale {
        hostile.push(("silent connection", s.raw("", b"").await));
    }
    for _ in 0..20 * scale {
        hostile.push((
            "trickled headers",
            s.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n", b"").await,
        ));
    }
    let probes = hostile.len();

    // Every hostile connection is answered or closed within the bound.
    let mut unanswered = Vec::new();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let waits = hostile.into_iter().map(|(what, mut tcp)| async move {
        let got = status_within(&mut tcp, HOSTILE_BOUND).await;
        (what, got)
    });
    for (what, got) in futures_util::future::join_all(waits).await {
        match got {
            None => unanswered.push(what),
            Some(text) => {
                let status = if text.is_empty() { "closed".to_owned() } else { text };
                *statuses.entry(format!("{what}: {status}")).or_default() += 1;
            }
        }
    }
    assert!(
        unanswered.is_empty(),
        "held open past {HOSTILE_BOUND:?}: {unanswered:?}"
    );

    let side = side.finish(SOAK).await;
    let p99 = side.at(99);
    eprintln!(
        "soak x{scale}: {probes} hostile connections {statuses:?}; {}; process RSS {rss_before} MiB before the probes, peak {} MiB",
        side.summary(),
        status_mib("VmHWM:")
    );
    assert!(p99 < SIDE_P99, "side client p99 {p99:?}");
    // Still up, and nothing left running.
    let (status, _) = crate::common::split(s.req(Method::GET, "/healthz").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(s.admission.running(), 0);
    assert_eq!(s.engine.objects().staged_chunks(), 0);
}

/// The cap of each of the engine's caches in the content soak (`--tree-cache-bytes` and the
/// manifest, revision and session caches): the tree cache holds one tree of the wide
/// directory, never the one every checkpoint leaves.
const CONTENT_CACHE: u64 = 16 << 20;
/// Files of the wide directory of the content soak's checkpoint-and-stat rounds (times
/// `AETHER_SOAK_SCALE`, at most 4: 200,000 as in the issue).
const CONTENT_WIDE: usize = 50_000;
/// `--max-import-files` in the content soak (set low: an archive one file over it is small).
const CONTENT_MAX_IMPORT_FILES: u64 = 500;
/// The content soak's RSS bound: how far the process's peak RSS (`VmHWM`: the in-process server
/// and the test's clients; reset after the fixtures are built) may rise above its RSS before
/// the probes, whatever the scale: the four caches' caps ([`CONTENT_CACHE`] each), 16 blocking
/// jobs (`--max-blocking-jobs`) each streaming through a few MiB, and the resumed gRPC write's
/// messages in flight. The child runs with glibc's malloc arenas capped as `aetherd` caps them
/// at start (`--malloc-arenas`, one per core): without the cap the checkpoint rounds' freed
/// memory stays in per-thread arenas and the full-scale run does not meet it (see
/// BENCHMARKS.md). Unbounded, one
/// probe alone passes it (a 600 MB symlink target read whole, a gigabytes-long name buffered, a
/// gunzipped bomb).
const CONTENT_RSS_BOUND_MIB: u64 = 256;

/// The status code of an HTTP/1.1 answer, and its body as JSON when it is.
fn parse_answer(text: &str) -> (u16, Value) {
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.into())))
}

/// Set in the child process that runs the content soak alone.
const CONTENT_CHILD: &str = "AETHER_CONTENT_SOAK_CHILD";

/// Issue 34's content probes, every one at once against one in-process server while a side
/// client reads a 1-byte file every 100 ms: each gets a clear error (status and JSON code) or
/// a bounded answer, the process's peak RSS stays under [`CONTENT_RSS_BOUND_MIB`] above its RSS
/// before, the side client's p99 under [`SIDE_P99`], and nothing is left running or staged.
///
/// The soak runs in a child process (this test binary, filtered to this one test): the peak
/// RSS measured is then the soak's, not that of whichever tests run beside it.
#[test]
fn content_probes_get_clear_errors_or_bounded_answers_while_the_side_client_is_served() {
    if std::env::var_os(CONTENT_CHILD).is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(content_probes());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "soak::content_probes_get_clear_errors_or_bounded_answers_while_the_side_client_is_served",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CONTENT_CHILD, "1")
        // The malloc arena cap aetherd sets for itself at start (see `aether_server::malloc`).
        .env(
            aether_server::malloc::ENV,
            std::env::var(aether_server::malloc::ENV)
                .unwrap_or_else(|_| aether_server::malloc::default_arenas().to_string()),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the content soak failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("content soak x"), "the child ran no soak: {stderr}");
}

async fn content_probes() {
    use crate::hostile_inputs as inputs;
    use aether_proto::v1 as pb;
    let scale = soak_scale();
    // From x6 on (the connection soak's 600 header-only PUTs), the issue's own sizes where they
    // differ from the scaled ones: truncate to 8,000,000,000, 64 gzip bombs, 90 rounds.
    let full = scale >= 6;
    let s = start(|c| {
        // Longer than storing the files of an import under the limit takes on a loaded
        // machine: a 408 is then an import that waited for its body's end.
        c.connections.body_idle_timeout = Duration::from_secs(10);
        c.admission.max_blocking_jobs = 16;
        c.quotas.max_heavy_per_token = 16;
        c.max_import_files = CONTENT_MAX_IMPORT_FILES;
        c.caches = aether_core::CacheConfig {
            tree_bytes: CONTENT_CACHE,
            manifest_bytes: CONTENT_CACHE,
            revision_bytes: CONTENT_CACHE,
            session_bytes: CONTENT_CACHE,
        };
    })
    .await;
    let id = s.new_session().await;
    assert_eq!(s.put(&id, "one", b"1".to_vec()).await.0, 200);
    assert_eq!(s.put(&id, "t", b"head".to_vec()).await.0, 200);

    // Fixtures, built before the memory is measured.
    let dir = tempfile::tempdir().unwrap();
    let wide = CONTENT_WIDE * scale.min(4);
    let wide_repo = inputs::wide_repo(dir.path(), wide);
    let deep_repo = inputs::deep_repo(dir.path(), 10_000);
    let (status, made) = answered(
        s.req(Method::POST, "/v1/sessions")
            .json(&json!({"source": {"type": "git", "url": wide_repo.to_str().unwrap()}})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let wide_id = made["id"].as_str().unwrap().to_owned();
    let big_target = (100usize << 20) * scale.min(6);
    let symlink_tars = [
        (64usize << 10, inputs::symlink_target_tar_gz(64 << 10)),
        (big_target, inputs::symlink_target_tar_gz(big_target)),
    ];
    let long_name = inputs::long_name_claim_tar(2_600_000_000, 256 << 10);
    let sparse_size = (512u64 << 20) * scale.min(4) as u64;
    let tail: [u8; 512] = std::array::from_fn(|i| (i % 251) as u8 + 1);
    let sparse = inputs::sparse_tar(4, sparse_size, &tail);
    let over_limit = inputs::many_files_tar(CONTENT_MAX_IMPORT_FILES as usize + 1, false);
    let bomb = inputs::gzip_repeated(b'0', 60 << 20);
    let truncate_to = if full {
        8_000_000_000
    } else {
        1_000_000_000 * scale as u64
    };
    let resumed_at = 3u64 << 20;
    let first = crate::git::noise(8 << 20, 1);
    let rest = crate::git::noise((20 << 20) * scale.min(4), 2);
    let first_msgs = crate::grpc::write_stream(&id, "resumed", 0, &first, 1 << 20);
    let rest_msgs = crate::grpc::write_stream(&id, "resumed", resumed_at, &rest, 1 << 20);
    let want_resumed = [&first[..resumed_at as usize], &rest[..]].concat();
    drop((first, rest));
    let import_head = inputs::file_head("big.bin", 64 << 20);
    let import_body = crate::git::noise(8 << 20, 3);
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let files = pb::file_service_client::FileServiceClient::with_interceptor(
        channel,
        crate::grpc::Bearer(Some(s.admin.clone())),
    );

    let side = SideClient::start(format!("{}/v1/sessions/{id}/files/one", s.base), s.admin.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS (Linux 4.0 or later)");
    let rss_before = status_mib("VmRSS:");
    let started = Instant::now();
    // When the peak comes, to tell which probes were running then.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = (0, Duration::ZERO);
            while sampling.load(Ordering::Relaxed) {
                let rss = status_mib("VmRSS:");
                if rss > peak.0 {
                    peak = (rss, started.elapsed());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let outcomes = std::sync::Mutex::new(Vec::<String>::new());
    let note = |probe: &str, took: Duration, outcome: String| {
        outcomes
            .lock()
            .unwrap()
            .push(format!("{probe}: {outcome} in {took:.2?}"));
    };

    let symlinks = async {
        for (len, tar) in symlink_tars {
            let (t, sent) = (Instant::now(), tar.len());
            let got = answered(s.req(Method::POST, "/v1/sessions/import").body(tar)).await;
            crate::common::assert_error(&got, 422, "invalid_argument");
            let message = got.1["error"]["message"].as_str().unwrap();
            assert!(message.contains("4096") || message.contains("pax header"), "{message}");
            note(
                &format!("symlink target of {len} bytes ({sent} bytes sent)"),
                t.elapsed(),
                format!("{} {message}", got.0),
            );
        }
    };
    let long_names = async {
        let (t, sent) = (Instant::now(), long_name.len());
        let got = answered(s.req(Method::POST, "/v1/sessions/import").body(long_name)).await;
        crate::common::assert_error(&got, 422, "invalid_argument");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("long name"), "{message}");
        note(
            &format!("GNU long name claiming 2.6 GB ({sent} bytes sent)"),
            t.elapsed(),
            format!("{} {message}", got.0),
        );
    };
    let sparse_files = async {
        let (t, sent) = (Instant::now(), sparse.len());
        let got = answered(s.req(Method::POST, "/v1/sessions/import").body(sparse)).await;
        assert_eq!(got.0, 201, "{}", got.1);
        let took = t.elapsed();
        let sid: aether_core::SessionId = got.1["id"].as_str().unwrap().parse().unwrap();
        for n in 0..4 {
            let st = s.engine.stat(&sid, &format!("s{n}"), None).await.unwrap();
            assert_eq!(st.size, sparse_size);
            let end = s
                .engine
                .read(&sid, &format!("s{n}"), sparse_size - 1024, None, None)
                .await
                .unwrap();
            assert_eq!(end[..512], [0u8; 512], "a hole reads as zeros");
            assert_eq!(end[512..], tail, "the data after the hole");
        }
        note(
            &format!("4 sparse entries of {sparse_size} bytes ({sent} bytes sent)"),
            took,
            "201, sizes and tails read back".into(),
        );
    };
    let file_count = async {
        let t = Instant::now();
        let head = s.head("POST", "/v1/sessions/import", over_limit.len() + (1 << 30));
        let mut tcp = s.raw(&head, &over_limit).await;
        // The body goes on for another GiB: a 413 (not the body idle timeout's 408) is a
        // refusal at the entry over the limit, not at the end.
        let answer = crate::admission::answer_within(&mut tcp, HOSTILE_BOUND)
            .await
            .expect("an import over the file limit was held open");
        let got = parse_answer(&answer);
        crate::common::assert_error(&got, 413, "too_large");
        note(
            &format!(
                "tar of {} files, limit {CONTENT_MAX_IMPORT_FILES}, 1 GiB more announced",
                CONTENT_MAX_IMPORT_FILES + 1
            ),
            t.elapsed(),
            format!("{} {}", got.0, got.1["error"]["message"]),
        );
    };
    let truncate = async {
        let t = Instant::now();
        let extend = s
            .req(
                Method::PATCH,
                &format!("/v1/sessions/{id}/files/t?truncate={truncate_to}"),
            )
            .timeout(Duration::from_secs(120))
            .send();
        let writer = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let w = Instant::now();
            assert_eq!(s.put(&id, "written-meanwhile", b"w".to_vec()).await.0, 200);
            w.elapsed()
        };
        let (extended, writer_took) = tokio::join!(extend, writer);
        let took = t.elapsed();
        let (status, body) = crate::common::split(extended.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["size"].as_u64(), Some(truncate_to), "{body}");
        assert!(
            writer_took < SIDE_P99,
            "a writer of the same session waited {writer_took:?}"
        );
        let sid: aether_core::SessionId = id.parse().unwrap();
        let end = s.engine.read(&sid, "t", truncate_to - 16, None, None).await.unwrap();
        assert_eq!(end, [0u8; 16]);
        note(
            &format!("PATCH ?truncate={truncate_to}, empty body"),
            took,
            format!("200; a write meanwhile took {writer_took:.2?}"),
        );
    };
    let deep = async {
        let t = Instant::now();
        let got = answered(
            s.req(Method::POST, "/v1/sessions")
                .json(&json!({"source": {"type": "git", "url": deep_repo.to_str().unwrap()}})),
        )
        .await;
        crate::common::assert_error(&got, 413, "too_large");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("depth"), "{message}");
        note("git import 10,000 levels deep", t.elapsed(), format!("413 {message}"));
    };
    let bombs = async {
        let t = Instant::now();
        let n = if full { 64 } else { 8 * scale };
        for _ in 0..n {
            let resp = s
                .req(Method::POST, &format!("/git/{id}/git-upload-pack"))
                .header("content-encoding", "gzip")
                .header("content-type", "application/x-git-upload-pack-request")
                .header("git-protocol", "version=2")
                .body(bomb.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400);
            let text = resp.text().await.unwrap();
            assert!(text.contains("times its size"), "{text}");
        }
        note(
            &format!(
                "{n} gzip'd upload-pack bodies of 60 MiB ({} bytes sent each)",
                bomb.len()
            ),
            t.elapsed(),
            "400 each: decompresses to more than 100 times its size".into(),
        );
    };
    let resumed = async {
        let mut files = files.clone();
        let t = Instant::now();
        files.write_file(futures_util::stream::iter(first_msgs)).await.unwrap();
        let sid: aether_core::SessionId = id.parse().unwrap();
        let after = s.engine.events(&sid, 0, 100_000).await.unwrap().last().unwrap().seq;
        let stat = files
            .write_file(futures_util::stream::iter(rest_msgs))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stat.size, want_resumed.len() as u64);
        let mine: Vec<_> = s
            .engine
            .events(&sid, after, 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.path.as_deref() == Some("resumed"))
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "one change for the resumed write, not one per piece: {mine:?}"
        );
        assert_eq!(mine[0].detail["offset"], resumed_at);
        // Read back in windows: the whole file at once would count in the RSS bound.
        for (n, want) in want_resumed.chunks(4 << 20).enumerate() {
            let got = s
                .engine
                .read(&sid, "resumed", (n as u64) << 22, Some(want.len() as u64), None)
                .await
                .unwrap();
            assert!(got == want, "the resumed file differs in its window {n}");
        }
        note(
            &format!(
                "gRPC write resumed at 3 MiB with {} MiB",
                (want_resumed.len() >> 20) - 3
            ),
            t.elapsed(),
            "one change of the whole file, bytes read back".into(),
        );
    };
    let abandoned = async {
        let t = Instant::now();
        for _ in 0..scale {
            let announced = import_head.len() + (64 << 20) + 1024;
            let mut tcp = s
                .raw(&s.head("POST", "/v1/sessions/import", announced), &import_head)
                .await;
            tcp.write_all(&import_body).await.unwrap();
            tcp.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(tcp);
        }
        note(
            &format!("{scale} imports abandoned after 8 of 64 MiB"),
            t.elapsed(),
            "closed (staged chunks checked at the end)".into(),
        );
    };
    let tree_cache = async {
        let t = Instant::now();
        let rounds = if full { 90 } else { 10 * scale };
        let mut most = 0;
        for k in 0..rounds {
            assert_eq!(
                s.put(&wide_id, &format!("wide/r{k}"), format!("{k}").into_bytes())
                    .await
                    .0,
                200
            );
            let (status, cp) = answered(
                s.req(Method::POST, &format!("/v1/sessions/{wide_id}/checkpoints"))
                    .json(&json!({})),
            )
            .await;
            assert_eq!(status, 201, "{cp}");
            let resp = s
                .req(Method::GET, &format!("/v1/sessions/{wide_id}/stat/wide/f0000000"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let trees = s.engine.cache_usage().trees;
            assert!(
                trees <= CONTENT_CACHE,
                "the tree cache holds {trees} bytes, cap {CONTENT_CACHE}"
            );
            most = most.max(trees);
        }
        let usage = s.engine.cache_usage();
        note(
            &format!("{rounds} checkpoint-and-stat rounds on a {wide}-file directory (caches then: {usage:?})"),
            t.elapsed(),
            format!(
                "tree cache at most {} KiB (cap {} KiB)",
                most >> 10,
                CONTENT_CACHE >> 10
            ),
        );
    };
    tokio::join!(
        symlinks,
        long_names,
        sparse_files,
        file_count,
        truncate,
        deep,
        bombs,
        resumed,
        abandoned,
        tree_cache
    );
    let probes_took = started.elapsed();

    // Nothing left running or staged once the probes are answered.
    assert!(
        crate::admission::eventually(HOSTILE_BOUND, || s.admission.running() == 0
            && s.engine.objects().staged_chunks() == 0)
        .await,
        "left running: {} jobs, {} staged chunks",
        s.admission.running(),
        s.engine.objects().staged_chunks()
    );
    let peak = status_mib("VmHWM:");
    sampling.store(false, Ordering::Relaxed);
    let (sampled, at) = sampler.join().unwrap();
    // At least 5 s of reads, however fast the probes were.
    let side = side.finish(Duration::from_secs(5)).await;
    let p99 = side.at(99);
    eprintln!(
        "content soak x{scale} in {probes_took:.1?}:\n  {}\n  {}; process RSS {rss_before} MiB before the probes, peak {peak} MiB ({} MiB above; bound {CONTENT_RSS_BOUND_MIB} MiB; sampled {sampled} MiB at {at:.1?})",
        outcomes.lock().unwrap().join("\n  "),
        side.summary(),
        peak.saturating_sub(rss_before)
    );
    assert!(p99 < SIDE_P99, "side client p99 {p99:?}");
    assert!(
        peak.saturating_sub(rss_before) <= CONTENT_RSS_BOUND_MIB,
        "the process's peak RSS rose {} MiB above {rss_before} MiB (bound {CONTENT_RSS_BOUND_MIB} MiB)",
        peak.saturating_sub(rss_before)
    );
    let (status, _) = crate::common::split(s.req(Method::GET, "/healthz").send().await.unwrap()).await;
    assert_eq!(status, 200);
}

/// `req` sent with a generous timeout (imports and checkpoints may be slow on a loaded
/// machine): the status and JSON body.
async fn answered(req: reqwest::RequestBuilder) -> (u16, Value) {
    crate::common::split(req.timeout(Duration::from_secs(120)).send().await.unwrap()).await
}

/// Files of the large session's one directory (times `AETHER_SOAK_SCALE`, at most 5).
const WIDE: usize = 100_000;
/// The tree cache's cap in the whole-tree soak (`--tree-cache-bytes`): it holds the wide
/// directory's tree (about 7 MiB decoded).
const TREE_CACHE: u64 = 16 << 20;
/// The RSS bound of the whole-tree soak: how far the server's peak RSS (`VmHWM`, reset before)
/// may rise above its idle RSS while it answers a recursive REST listing, a streamed gRPC
/// listing, a tar export and a `git clone` of the wide session at once: the tree cache's cap
/// plus 16 MiB for everything else. Building a node per entry (what listings and exports did)
/// costs about 15 MiB per request here.
const WHOLE_TREE_BOUND_KIB: u64 = (TREE_CACHE >> 10) + (16 << 10);

fn status_kib_of(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse().ok()))
        })
        .unwrap_or(0)
}

/// `fut`'s output, saying when it was done.
async fn timed<T>(what: &str, started: Instant, fut: impl std::future::Future<Output = T>) -> T {
    let out = fut.await;
    eprintln!("whole-tree soak: {what} done after {:?}", started.elapsed());
    out
}

/// The bytes of a GET's body, read as it comes and dropped; its status.
async fn drain(client: &reqwest::Client, url: String, token: &str) -> (u16, u64) {
    let mut resp = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    let mut n = 0;
    while let Some(piece) = resp.chunk().await.unwrap() {
        n += piece.len() as u64;
    }
    (status, n)
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_tree_requests_on_a_large_session_stay_under_the_rss_bound() {
    use crate::hostile::{Daemon, RssGuard, git};
    use aether_proto::v1 as pb;
    let scale: usize = std::env::var("AETHER_SOAK_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 5);
    let wide = WIDE * scale;
    let dir = tempfile::tempdir().unwrap();
    // One directory of `wide` files, one blob, made by git itself.
    let repo = crate::hostile_inputs::wide_repo(dir.path(), wide);

    let data = dir.path().join("data");
    let cache = TREE_CACHE.to_string();
    let flags = ["--tree-cache-bytes", cache.as_str()];
    let id = {
        let d = Daemon::start_with(&data, &flags);
        d.new_session(serde_json::json!({"type": "git", "url": repo.to_str().unwrap()}))
            .await
    };
    // A freshly started server: its idle RSS, its tree cache warmed by one stat.
    let d = Daemon::start_with(&data, &flags);
    let client = reqwest::Client::new();
    let stat = client
        .get(format!("{}/v1/sessions/{id}/stat/wide/f0000000", d.base))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stat.status(), 200);
    let pid = d.pid();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("resetting the server's peak RSS");
    let idle = status_kib_of(pid, "VmRSS:");
    let guard = RssGuard::watch(pid, idle + 2 * WHOLE_TREE_BOUND_KIB);

    let listing = drain(
        &client,
        format!("{}/v1/sessions/{id}/tree?recursive=true", d.base),
        &d.token,
    );
    let export = drain(
        &client,
        format!("{}/v1/sessions/{id}/export?format=tar", d.base),
        &d.token,
    );
    let channel = tonic::transport::Channel::from_shared(d.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut files = pb::file_service_client::FileServiceClient::with_interceptor(
        channel,
        crate::grpc::Bearer(Some(d.token.clone())),
    );
    let url = format!(
        "{}/git/{id}",
        d.base.replace("http://", &format!("http://git:{}@", d.token))
    );
    let session = id.clone();
    let walk = async move {
        let mut stream = files
            .walk_tree(pb::ListTreeRequest {
                session,
                path: String::new(),
                recursive: true,
                at: None,
            })
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(msg) = stream.message().await.unwrap() {
            n += msg.entries.len();
        }
        n
    };
    let work = dir.path().to_owned();
    let clone = tokio::task::spawn_blocking(move || {
        git(&work, &["clone", "-q", "--bare", &url, "clone.git"], None);
        work.join("clone.git")
    });
    let started = Instant::now();
    let ((listed, listed_bytes), (exported, tar_bytes), walked, cloned) = tokio::join!(
        timed("REST listing", started, listing),
        timed("export", started, export),
        timed("WalkTree", started, walk),
        timed("git clone", started, clone)
    );
    let sampled = guard.check("whole-tree requests on a large session");
    let peak = status_kib_of(pid, "VmHWM:");
    assert_eq!((listed, exported), (200, 200));
    assert_eq!(walked, wide + 2, "every file, the directory and `top`");
    assert!(listed_bytes > (wide as u64) * 100 && tar_bytes > (wide as u64) * 1024);
    let cloned = cloned.unwrap();
    assert_eq!(
        git(&cloned, &["ls-tree", "-r", "--name-only", "HEAD"], None)
            .lines()
            .count(),
        wide + 1
    );
    eprintln!(
        "whole-tree soak, {wide} files: server RSS {} MiB idle, peak {} MiB (sampled {} MiB); bound {} MiB above idle",
        idle / 1024,
        peak / 1024,
        sampled / 1024,
        WHOLE_TREE_BOUND_KIB / 1024
    );
    assert!(
        peak.saturating_sub(idle) <= WHOLE_TREE_BOUND_KIB,
        "the server's RSS rose {} MiB above idle (bound {} MiB)",
        peak.saturating_sub(idle) / 1024,
        WHOLE_TREE_BOUND_KIB / 1024
    );
}
