//! The real `aetherd` against hostile data: sessions damaged by an older version (rows written
//! into `meta.db` while the server was stopped) are repaired at start with a log line per
//! repair; a recursive listing of a session whose root was chmodded, and of a small repository
//! describing a quarter of a million entries, answers while the server's memory stays bounded
//! (sampled from `/proc/<pid>/status` while the request runs; the server is killed the moment
//! it passes the bound); a tree ten thousand levels deep gives a clear error on listing and on
//! a commit's changes, never a crash.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A real `aetherd` on its own data directory; its log (JSON lines) is collected.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) token: String,
    log: Arc<Mutex<Vec<Value>>>,
    client: reqwest::Client,
}

impl Daemon {
    pub(crate) fn start(data: &Path) -> Daemon {
        Daemon::start_with(data, &[])
    }

    /// A daemon with more flags.
    pub(crate) fn start_with(data: &Path, args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aetherd"))
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "info"])
            .args(args)
            .env_remove("AETHER_LISTEN")
            .env_remove("AETHER_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines.next().expect("aetherd exited before listening").unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            let addr = v["fields"]["addr"].as_str().map(str::to_owned);
            log.lock().unwrap().push(v);
            if let Some(addr) = addr {
                break addr;
            }
        };
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap_or_default());
            }
        });
        let token = std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Daemon {
            child,
            base: format!("http://{addr}"),
            token,
            log,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        crate::common::split(req.send().await.unwrap()).await
    }

    pub(crate) async fn new_session(&self, source: Value) -> String {
        let (status, body) = self
            .call(reqwest::Method::POST, "/v1/sessions", Some(json!({ "source": source })))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn put(&self, id: &str, path: &str, data: &str) {
        let resp = self
            .client
            .put(format!("{}/v1/sessions/{id}/files/{path}", self.base))
            .bearer_auth(&self.token)
            .body(data.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    async fn chmod_root(&self, id: &str, mode: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/sessions/{id}/fs/chmod"),
                Some(json!({"path": "", "mode": mode})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Stop with SIGTERM and wait for a clean exit.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        assert!(self.child.wait().unwrap().success(), "graceful exit");
    }

    /// Every warn or error line.
    fn warnings(&self) -> Vec<Value> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|v| v["level"] == "WARN" || v["level"] == "ERROR")
            .cloned()
            .collect()
    }

    /// The warn lines that report a repair, as (session, key).
    fn repairs(&self) -> Vec<(String, String)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["level"] == "WARN" && v["fields"]["message"] == "repaired a stored overlay entry")
            .map(|v| {
                let f = &v["fields"];
                (
                    f["session"].as_str().unwrap_or_default().to_owned(),
                    f["key"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How much a listing may add to the server's resident memory. Streamed, the quarter-million
/// entry listing adds a few MiB; collected whole it would add hundreds, and the old listing
/// of a chmodded root grew until the kernel killed the server.
const BOUND_KIB: u64 = 96 * 1024;

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples the server's resident memory every few milliseconds while it lives; kills it with
/// SIGKILL the moment it passes `bound_kib` (a test must never eat the shared machine).
pub(crate) struct RssGuard {
    peak: Arc<AtomicU64>,
    tripped: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    bound_kib: u64,
}

impl RssGuard {
    pub(crate) fn watch(pid: u32, bound_kib: u64) -> RssGuard {
        let peak = Arc::new(AtomicU64::new(0));
        let tripped = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, t, s) = (peak.clone(), tripped.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Some(rss) = rss_kib(pid) else { break };
                p.fetch_max(rss, Ordering::Relaxed);
                if rss > bound_kib {
                    t.store(true, Ordering::Relaxed);
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssGuard {
            peak,
            tripped,
            stop,
            bound_kib,
        }
    }

    /// Stop sampling; fail if the bound was passed.
    pub(crate) fn check(self, what: &str) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.peak.load(Ordering::Relaxed);
        assert!(
            !self.tripped.load(Ordering::Relaxed),
            "{what}: the server passed {} MiB of resident memory and was killed",
            self.bound_kib / 1024
        );
        peak
    }
}

/// GET a recursive listing, reading the body as it comes; the parsed listing, or the status and
/// body of an error.
pub(crate) async fn recursive_listing(d: &Daemon, id: &str) -> Result<Value, (u16, String)> {
    let resp = d
        .client
        .get(format!("{}/v1/sessions/{id}/tree?recursive=true", d.base))
        .bearer_auth(&d.token)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| (0, e.to_string()))?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut resp = resp;
    loop {
        match resp.chunk().await {
            Ok(Some(piece)) => body.extend_from_slice(&piece),
            Ok(None) => break,
            Err(e) => return Err((status, format!("the body broke off: {e}"))),
        }
    }
    if status != 200 {
        return Err((status, String::from_utf8_lossy(&body).into_owned()));
    }
    Ok(serde_json::from_slice(&body).expect("a complete listing is valid JSON"))
}

fn paths(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

/// `git` in `dir`, isolated from the machine's configuration; stdout, trimmed.
pub(crate) fn git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git must be installed to run these tests");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A raw tree object with entries `(mode, name, id)` exactly as given (no checks, as a hostile
/// repository can hold it); its id.
fn raw_tree(repo: &Path, entries: &[(&str, &[u8], &str)]) -> String {
    let mut bytes = Vec::new();
    for (mode, name, hex) in entries {
        bytes.extend_from_slice(mode.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(name);
        bytes.push(0);
        let id: Vec<u8> = (0..20)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        bytes.extend_from_slice(&id);
    }
    git(
        repo,
        &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
        Some(&bytes),
    )
}

/// A bare repository whose `main` is a commit of `tree`.
fn commit_main(repo: &Path, tree: &str) {
    let commit = git(
        repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit-tree",
            tree,
            "-m",
            "hostile",
        ],
        None,
    );
    git(repo, &["update-ref", "refs/heads/main", &commit], None);
    git(repo, &["symbolic-ref", "HEAD", "refs/heads/main"], None);
}

/// 64 directories of 64 directories of 64 files (262,144 files, 266,304 entries) from four
/// objects, plus names no session may hold at the top (those git itself carries through a
/// clone: it refuses to pack an empty name).
fn tree_bomb(repo: &Path) {
    git(repo, &["init", "-q", "--bare"], None);
    let blob = git(repo, &["hash-object", "-w", "--stdin"], Some(b"x\n"));
    let names: Vec<String> = (0..64).map(|i| format!("n{i:02}")).collect();
    let files: Vec<(&str, &[u8], &str)> = names.iter().map(|n| ("100644", n.as_bytes(), blob.as_str())).collect();
    let files = raw_tree(repo, &files);
    let dirs: Vec<(&str, &[u8], &str)> = names.iter().map(|n| ("40000", n.as_bytes(), files.as_str())).collect();
    let tree = raw_tree(repo, &dirs);
    let mut top: Vec<(&str, &[u8], &str)> = vec![("40000", b"..", tree.as_str()), ("40000", b".", tree.as_str())];
    top.extend(names.iter().map(|n| ("40000", n.as_bytes(), tree.as_str())));
    top.push(("100644", b"x/y", blob.as_str()));
    let top = raw_tree(repo, &top);
    commit_main(repo, &top);
}

/// Insert an overlay row the way an older version (or a hand) could have.
fn damage(db: &rusqlite::Connection, id: &str, key: &str, entry: &Value) {
    db.execute(
        "INSERT OR REPLACE INTO overlay_entries (session_id, path, entry) VALUES (?1, ?2, ?3)",
        rusqlite::params![id, key, entry.to_string()],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_sessions_are_repaired_at_start_and_list_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start(&data);
    let chmodded = d.new_session(json!({"type": "empty"})).await;
    d.put(&chmodded, "a/b", "1").await;
    d.put(&chmodded, "c", "2").await;
    // `chmod 700 $MNT`: the root's own attributes, which the old version listed as a child.
    d.chmod_root(&chmodded, "700").await;
    let (status, root) = d
        .call(reqwest::Method::GET, &format!("/v1/sessions/{chmodded}/tree"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(paths(&root), ["a", "c"], "the root is not its own child");
    let damaged = d.new_session(json!({"type": "empty"})).await;
    d.put(&damaged, "kept", "3").await;
    // Any blob id will do: every one of these rows goes.
    let blob = "d00491fd7e5bb6fa28c517a0bb32b8b506539d4d";
    d.stop();

    // Rows an older version could have left, written while no server ran.
    let db = rusqlite::Connection::open(data.join("meta.db")).unwrap();
    let file = json!({"kind": "file", "oid": blob, "size": 2, "mode": 420, "mtime": 0});
    for key in ["a//b", "..", "x/../y", "./z"] {
        damage(&db, &damaged, key, &file);
    }
    damage(&db, &damaged, "", &file);
    drop(db);

    let d = Daemon::start(&data);
    let mut repairs = d.repairs();
    repairs.sort();
    let mut expected: Vec<(String, String)> = ["", "..", "./z", "a//b", "x/../y"]
        .iter()
        .map(|k| (damaged.clone(), format!("{k:?}")))
        .collect();
    expected.sort();
    assert_eq!(
        repairs, expected,
        "one warn line per repair, logged before the server listened"
    );

    let baseline = rss_kib(d.pid()).unwrap();
    let guard = RssGuard::watch(d.pid(), baseline + BOUND_KIB);
    let listing = recursive_listing(&d, &chmodded).await.expect("the listing answers");
    assert_eq!(paths(&listing), ["a", "c", "a/b"]);
    let listing = recursive_listing(&d, &damaged).await.expect("the listing answers");
    assert_eq!(paths(&listing), ["kept"]);
    // Export and clone walk the same trees: both answer, without the root as its own child.
    for (id, want) in [(&chmodded, vec!["a/", "a/b", "c"]), (&damaged, vec!["kept"])] {
        let tar = d
            .client
            .get(format!("{}/v1/sessions/{id}/export?format=tar", d.base))
            .bearer_auth(&d.token)
            .timeout(std::time::Duration::from_secs(60))
            .send()
            .await
            .expect("the export answers");
        assert_eq!(tar.status(), 200);
        let tar = tar.bytes().await.unwrap();
        let mut names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect();
        names.sort();
        assert_eq!(names, want, "the export of {id}");
        let work = dir.path().join(format!("clone-{id}"));
        std::fs::create_dir_all(&work).unwrap();
        let url = format!(
            "{}/git/{id}",
            d.base.replace("http://", &format!("http://git:{}@", d.token))
        );
        git(&work, &["clone", "-q", &url, "c"], None);
        let mut files: Vec<String> = git(&work.join("c"), &["ls-files"], None)
            .lines()
            .map(str::to_owned)
            .collect();
        files.sort();
        let want_files: Vec<&str> = want.iter().copied().filter(|n| !n.ends_with('/')).collect();
        assert_eq!(files, want_files, "the clone of {id}");
    }
    guard.check("listing, exporting and cloning repaired sessions");
    let (status, st) = d
        .call(reqwest::Method::GET, &format!("/v1/sessions/{chmodded}/stat/%2F"), None)
        .await;
    assert_eq!((status, st["mode"].as_u64()), (200, Some(0o700)), "{st}");

    // Repaired once: a restart finds nothing more.
    d.stop();
    let d = Daemon::start(&data);
    assert!(d.repairs().is_empty(), "{:?}", d.repairs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_repository_of_a_quarter_million_entries_lists_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("bomb.git");
    std::fs::create_dir_all(&repo).unwrap();
    tree_bomb(&repo);
    let d = Daemon::start(&dir.path().join("data"));
    let id = d
        .new_session(json!({"type": "git", "url": repo.to_str().unwrap()}))
        .await;
    d.chmod_root(&id, "700").await;

    let baseline = rss_kib(d.pid()).unwrap();
    let guard = RssGuard::watch(d.pid(), baseline + BOUND_KIB);
    let started = Instant::now();
    let listing = recursive_listing(&d, &id).await;
    let peak = guard.check("the recursive listing of 266,304 entries");
    let listing = listing.unwrap_or_else(|e| panic!("the listing answers: {e:?}; log: {:?}", d.warnings()));
    let all = paths(&listing);
    assert_eq!(all.len(), 64 + 64 * 64 + 64 * 64 * 64);
    assert!(
        all.iter().all(|p| !p.is_empty() && p.split('/').all(|c| c.len() == 3)),
        "only the sound names are listed"
    );
    assert_eq!(&all[..2], ["n00", "n01"]);
    eprintln!(
        "recursive listing of {} entries in {:?}; server RSS {} MiB before, {} MiB at peak",
        all.len(),
        started.elapsed(),
        baseline / 1024,
        peak / 1024
    );

    // gRPC: one message, capped: a clear RESOURCE_EXHAUSTED naming what to use instead.
    use aether_proto::v1 as pb;
    let channel = tonic::transport::Channel::from_shared(d.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut files = pb::file_service_client::FileServiceClient::with_interceptor(
        channel,
        crate::grpc::Bearer(Some(d.token.clone())),
    );
    let guard = RssGuard::watch(d.pid(), baseline + BOUND_KIB);
    let err = files
        .list_tree(pb::ListTreeRequest {
            session: id.clone(),
            path: String::new(),
            recursive: true,
            at: None,
        })
        .await
        .unwrap_err();
    let grpc_peak = guard.check("a recursive ListTree");
    eprintln!(
        "recursive ListTree refused; server RSS {} MiB at peak",
        grpc_peak / 1024
    );
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        err.metadata().get("aether-code").and_then(|v| v.to_str().ok()),
        Some("too_large")
    );
    assert!(
        err.message().contains("100000") && err.message().contains("WalkTree"),
        "{}",
        err.message()
    );
    // The streamed listing answers the whole tree, a batch per message, within the same bound.
    let guard = RssGuard::watch(d.pid(), baseline + BOUND_KIB);
    let mut stream = files
        .walk_tree(pb::ListTreeRequest {
            session: id.clone(),
            path: String::new(),
            recursive: true,
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    let (mut messages, mut streamed) = (0, Vec::new());
    while let Some(msg) = stream.message().await.unwrap() {
        assert!(
            msg.entries.len() <= 1024,
            "a message holds {} entries",
            msg.entries.len()
        );
        messages += 1;
        streamed.extend(msg.entries.into_iter().map(|e| e.path));
    }
    let walk_peak = guard.check("a recursive WalkTree");
    eprintln!(
        "WalkTree of {} entries in {messages} messages; server RSS {} MiB at peak",
        streamed.len(),
        walk_peak / 1024
    );
    assert_eq!(streamed, all, "the same entries in the same order as the REST listing");
    // A listing within the cap still answers in one message.
    let sub = files
        .list_tree(pb::ListTreeRequest {
            session: id.clone(),
            path: "n01".into(),
            recursive: true,
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sub.entries.len(), 64 + 64 * 64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tree_ten_thousand_levels_deep_gives_a_clear_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::hostile_inputs::deep_repo(dir.path(), 10_000);

    let d = Daemon::start(&dir.path().join("data"));
    // The import walks the foreign tree once (to give it the session's spelling of names, see
    // `foreign_trees`), so a tree deeper than `max_tree_depth` is refused there, before any
    // session exists: a clear error, and the server stays up. (Listing and diffing a tree this
    // deep when one is a session's base are covered by core's `walks` tests.)
    let (status, body) = d
        .call(
            reqwest::Method::POST,
            "/v1/sessions",
            Some(json!({ "source": {"type": "git", "url": repo.to_str().unwrap()} })),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("depth"), "{body}");
    let (status, body) = d.call(reqwest::Method::GET, "/v1/sessions", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["sessions"].as_array().map(Vec::len),
        Some(0),
        "nothing was created: {body}"
    );
    // The server is still there.
    let (status, _) = d.call(reqwest::Method::GET, "/healthz", None).await;
    assert_eq!(status, 200);
}
