//! A small soak (issue 34, CI scale, about 15 s): the hostile probes of the admission tests
//! replayed together against one server, while a side client reads a 1-byte file every 100 ms.
//! The server must stay up, every hostile request must get a clear error or be closed within a
//! bound, and the side client's p99 must stay under a generous bound (CI machines are shared;
//! the issue's goal of 100 ms is for the full-scale run on a quiet machine).
//!
//! `AETHER_SOAK_SCALE=N` multiplies the probes (and the download's size, up to 64 MiB) for a
//! larger run by hand: `AETHER_SOAK_SCALE=6 cargo test -p aether-server --test http soak --
//! --nocapture` is the issue's 600 header-only PUTs; it prints the side client's percentiles
//! and the process's peak RSS.

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::net::TcpStream;

use tokio::io::AsyncReadExt;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_probes_leave_the_server_up_and_the_side_client_served() {
    let scale: usize = std::env::var("AETHER_SOAK_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
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

    // The side client: one kept-alive connection, a read every 100 ms.
    let side = {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!("{}/v1/sessions/{id}/files/one", s.base);
        let admin = s.admin.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            let started = Instant::now();
            while started.elapsed() < SOAK {
                let t = Instant::now();
                match client.get(&url).bearer_auth(&admin).send().await {
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
        })
    };
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

    let (mut latencies, failures) = side.await.unwrap();
    assert!(failures.is_empty(), "the side client failed: {failures:?}");
    assert!(latencies.len() > 20, "the side client barely ran: {}", latencies.len());
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    eprintln!(
        "soak x{scale}: {probes} hostile connections {statuses:?}; side client {} reads, p50 {:?}, p99 {p99:?}, max {:?}; process RSS {rss_before} MiB before the probes, peak {} MiB",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().unwrap(),
        status_mib("VmHWM:")
    );
    assert!(p99 < SIDE_P99, "side client p99 {p99:?}");
    // Still up, and nothing left running.
    let (status, _) = crate::common::split(s.req(Method::GET, "/healthz").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(s.admission.running(), 0);
    assert_eq!(s.engine.objects().staged_chunks(), 0);
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
    let repo = dir.path().join("wide.git");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "--bare"], None);
    let mut stream =
        b"blob\nmark :1\ndata 2\nx\n\ncommit refs/heads/main\ncommitter t <t@t> 0 +0000\ndata 5\nwide\n".to_vec();
    for i in 0..wide {
        stream.extend_from_slice(format!("M 100644 :1 wide/f{i:07}\n").as_bytes());
    }
    stream.extend_from_slice(b"M 100644 :1 top\n\n");
    git(&repo, &["fast-import", "--quiet"], Some(&stream));
    git(&repo, &["symbolic-ref", "HEAD", "refs/heads/main"], None);

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
