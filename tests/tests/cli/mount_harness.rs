//! What the mount workload tests share: a kernel mount made with the real `aether mount` binary
//! (unmounted on drop, or explicitly with a check that it went), external tools run with a time
//! limit, a snapshot of a directory tree to compare two trees entry by entry, and a REST reader
//! that reads a session back without the mount.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::env::TestEnv;

/// Whether the kernel can mount; with CI=true a machine that cannot is a failure.
pub fn fuse_available() -> bool {
    aether_test_support::prereq::fuse("the mount tests")
}

/// Poll `f` for up to `limit`; the mount promises visibility of changes made elsewhere within
/// one second.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// The repository's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A session mounted with `aether mount` on `dir`, logging to a file in the test's home.
pub struct Mount<'a> {
    env: &'a TestEnv,
    dir: PathBuf,
    log: PathBuf,
    /// The background mount process (`aether mount` prints it).
    pid: Option<u32>,
    /// What `aether mount` printed.
    stdout: String,
    mounted: bool,
}

static MOUNTS: AtomicUsize = AtomicUsize::new(0);

impl<'a> Mount<'a> {
    pub fn new(env: &'a TestEnv, session: &str, dir: &Path) -> Mount<'a> {
        Mount::with_args(env, session, dir, &[])
    }

    /// A mount made with `token` (a scoped one, say) instead of the admin token.
    pub fn with_token(env: &'a TestEnv, session: &str, dir: &Path, token: &str) -> Mount<'a> {
        Mount::start(env, session, dir, token, &[])
    }

    /// As [`Mount::with_token`], with more arguments.
    pub fn with_token_and_args(env: &'a TestEnv, session: &str, dir: &Path, token: &str, extra: &[&str]) -> Mount<'a> {
        Mount::start(env, session, dir, token, extra)
    }

    /// `aether mount` with more arguments (`--at REV`, ...).
    pub fn with_args(env: &'a TestEnv, session: &str, dir: &Path, extra: &[&str]) -> Mount<'a> {
        Mount::start(env, session, dir, &env.admin, extra)
    }

    fn start(env: &'a TestEnv, session: &str, dir: &Path, token: &str, extra: &[&str]) -> Mount<'a> {
        std::fs::create_dir_all(dir).unwrap();
        let n = MOUNTS.fetch_add(1, Ordering::Relaxed);
        let log = env.home().join(format!("mount-{n}.log"));
        let mut args = vec![
            "mount",
            session,
            dir.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "--log-level",
            "info",
        ];
        args.extend_from_slice(extra);
        let mut cmd = env.cmd(&args);
        cmd.env("AETHER_TOKEN", token);
        let r = crate::env::run(cmd);
        assert_eq!(r.code, 0, "aether {}: {}", args.join(" "), r.transcript());
        assert!(
            is_mounted(dir),
            "aether mount returned but {} is not mounted",
            dir.display()
        );
        // `mounted ... (pid N)`, perhaps followed by a line saying why it is read-only; or JSON.
        let pid = r
            .stdout
            .lines()
            .find_map(|l| l.rsplit_once("(pid "))
            .and_then(|(_, p)| p.trim_end().trim_end_matches(')').parse().ok())
            .or_else(|| {
                serde_json::from_str::<serde_json::Value>(&r.stdout)
                    .ok()
                    .and_then(|v| v["pid"].as_u64())
                    .map(|p| p as u32)
            });
        Mount {
            env,
            dir: dir.to_owned(),
            log,
            pid,
            stdout: r.stdout,
            mounted: true,
        }
    }

    /// A new session mounted on `<home>/m`; returns its id and the mount.
    pub fn of_new_session(env: &'a TestEnv) -> (String, Mount<'a>) {
        let id = env.new_session();
        let m = Mount::new(env, &id, &env.home().join("m"));
        (id, m)
    }

    pub fn root(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// What `aether mount` printed.
    pub fn stdout(&self) -> &str {
        &self.stdout
    }

    /// The mount process's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `aether unmount`, which returns once the mount process sent what was queued and exited.
    pub fn unmount(self) {
        let log = self.log.clone();
        let r = self.unmount_reporting();
        assert_eq!(
            r.code,
            0,
            "unmount: {}\nmount log:\n{}",
            r.transcript(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !log.contains("ERROR"),
            "the mount logged errors (changes not sent?):\n{log}"
        );
    }

    /// `aether unmount` whatever it answers (a mount whose changes were refused exits non-zero);
    /// the directory must be unmounted either way.
    pub fn unmount_reporting(mut self) -> crate::env::Run {
        let r = self.env.run(&["unmount", self.dir.to_str().unwrap()]);
        self.mounted = false;
        assert!(
            !is_mounted(&self.dir),
            "{} is still mounted after unmount: {}\nmount log:\n{}",
            self.dir.display(),
            r.transcript(),
            self.log()
        );
        r
    }
}

impl Mount<'_> {
    /// SIGTERM to the mount process, as a service manager stops it.
    pub fn terminate(&self) {
        let pid = self.pid.expect("aether mount printed its pid");
        ok(Command::new("kill").arg("-TERM").arg(pid.to_string()), String::new);
    }

    /// Whether the mount process is alive (not gone, not a zombie).
    pub fn is_running(&self) -> bool {
        let pid = self.pid.expect("aether mount printed its pid");
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }

    /// The mount is gone already (stopped by the test): nothing to clean up.
    pub fn forget(mut self) {
        self.mounted = false;
    }

    /// `kill -9` of the mount process, as a crash would: nothing queued is sent afterwards. The
    /// dead mount point is detached so the directory can be mounted again.
    pub fn kill(mut self) {
        let pid = self.pid.expect("aether mount printed its pid");
        ok(Command::new("kill").arg("-KILL").arg(pid.to_string()), String::new);
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let start = Instant::now();
        while proc.exists() && !std::fs::read_to_string(proc.join("stat")).is_ok_and(|s| s.contains(") Z ")) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the mount process outlived kill -9"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ok(Command::new("fusermount3").arg("-uz").arg(&self.dir), String::new);
        self.mounted = false;
    }
}

impl Drop for Mount<'_> {
    /// After a failed test: unmount; when that fails (a process still works in the mount),
    /// detach the mount and kill the mount process, or its watch stream would keep the
    /// in-process server from shutting down and the test binary would hang.
    fn drop(&mut self) {
        if !self.mounted || self.env.run(&["unmount", self.dir.to_str().unwrap()]).code == 0 {
            return;
        }
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = self.pid {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}

/// Whether `dir` is a mount point, from /proc/self/mountinfo.
pub fn is_mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| Path::new(p) == dir)
}

/// `program` run under coreutils' `timeout`, so a hung mount fails the test instead of CI.
pub fn timed(limit: Duration, program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.arg("-k").arg("10").arg(limit.as_secs().to_string()).arg(program);
    c.stdin(Stdio::null());
    c
}

/// `git ARGS` in `repo` (at most two minutes), isolated from the machine's configuration and
/// environment, with a pinned identity.
pub fn git(repo: &Path, args: &[&str]) -> Command {
    let mut c = timed(Duration::from_secs(120), "git");
    c.args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    c
}

/// Run and expect exit 0; returns stdout. The panic shows both outputs and `context`.
pub fn ok(cmd: &mut Command, context: impl FnOnce() -> String) -> String {
    let out = output(cmd);
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}; 124 is a timeout)\nstdout:\n{}\nstderr:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            context()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Time a step and print it (`--nocapture` shows it) so slow steps are visible in CI logs.
pub fn step<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    eprintln!("[mount workload] {what}: {:.2?}", start.elapsed());
    r
}

/// One entry of a directory tree as tools see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        digest: u64,
    },
    Symlink {
        target: String,
    },
    /// A FIFO, socket or device node (`kind` as the API names it).
    Special {
        kind: &'static str,
        mode: u32,
        rdev: u64,
    },
}

/// The API's name of a special file's type, `None` for a file, directory or symlink.
fn special_kind(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    [
        (t.is_fifo(), "fifo"),
        (t.is_socket(), "socket"),
        (t.is_char_device(), "char_device"),
        (t.is_block_device(), "block_device"),
    ]
    .into_iter()
    .find_map(|(is, kind)| is.then_some(kind))
}

/// FNV-1a: a cheap digest to compare contents without keeping them (not adversarial input).
pub fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Every entry under `root` (not `root` itself) by relative path, read through the kernel.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let node = if m.file_type().is_symlink() {
                Node::Symlink {
                    target: std::fs::read_link(&path).unwrap().to_str().unwrap().to_owned(),
                }
            } else if m.is_dir() {
                stack.push(path.clone());
                Node::Dir {
                    mode: m.mode() & 0o7777,
                }
            } else if let Some(kind) = special_kind(m.file_type()) {
                Node::Special {
                    kind,
                    mode: m.mode() & 0o7777,
                    rdev: m.rdev(),
                }
            } else {
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {rel}: {e}"));
                assert_eq!(bytes.len() as u64, m.len(), "{rel}: stat size and bytes read differ");
                Node::File {
                    mode: m.mode() & 0o7777,
                    size: m.len(),
                    digest: digest(&bytes),
                }
            };
            out.insert(rel, node);
        }
    }
    out
}

/// The first differences between two snapshots, one line each (empty when equal).
pub fn differences(expected: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, e) in expected {
        match got.get(path) {
            None => out.push(format!("missing {path} ({e:?})")),
            Some(g) if g != e => out.push(format!("{path}: expected {e:?}, got {g:?}")),
            Some(_) => {}
        }
    }
    for (path, g) in got {
        if !expected.contains_key(path) {
            out.push(format!("unexpected {path} ({g:?})"));
        }
    }
    out
}

pub fn assert_same_tree(expected: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>, what: &str) {
    let diff = differences(expected, got);
    assert!(
        diff.is_empty(),
        "{what}: {} differences, the first ones:\n{}",
        diff.len(),
        diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Reads a session over the REST API (HTTP/1.1, one pooled client), never through the mount.
pub struct Rest {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    pub fn new(env: &TestEnv) -> Rest {
        Rest {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
            base: format!("{}/v1", env.url),
            token: env.admin.clone(),
        }
    }

    /// Every entry of the session with its attributes (`GET /tree?recursive=true`).
    pub fn tree(&self, session: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/sessions/{session}/tree?recursive=true", self.base);
        let body: serde_json::Value = self.rt.block_on(async {
            let r = self.http.get(&url).bearer_auth(&self.token).send().await.unwrap();
            assert_eq!(r.status(), 200, "GET {url}");
            r.json().await.unwrap()
        });
        body["entries"].as_array().unwrap().clone()
    }

    /// Replace the file at `path` (`PUT /files/PATH`), as another client would.
    pub fn put(&self, session: &str, path: &str, bytes: &[u8]) {
        let url = format!("{}/sessions/{session}/files/{}", self.base, encode_path(path));
        self.rt.block_on(async {
            let r = self
                .http
                .put(&url)
                .bearer_auth(&self.token)
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "PUT {url}: {}", r.status());
        });
    }

    /// The bytes of the file at `path`, `None` when the server has no such file.
    pub fn get(&self, session: &str, path: &str) -> Option<Vec<u8>> {
        let url = format!("{}/sessions/{session}/files/{}", self.base, encode_path(path));
        self.rt.block_on(async {
            let r = self.http.get(&url).bearer_auth(&self.token).send().await.unwrap();
            if r.status() == 404 {
                return None;
            }
            assert_eq!(r.status(), 200, "GET {url}");
            Some(r.bytes().await.unwrap().to_vec())
        })
    }

    /// `GET /tree/PATH` (`""`: the root), with or without `recursive`, giving up after
    /// `limit`: `None` when the server did not answer in time.
    pub fn listing(&self, session: &str, path: &str, recursive: bool, limit: Duration) -> Option<serde_json::Value> {
        let url = match path {
            "" => format!("{}/sessions/{session}/tree?recursive={recursive}", self.base),
            p => format!(
                "{}/sessions/{session}/tree/{}?recursive={recursive}",
                self.base,
                encode_path(p)
            ),
        };
        self.rt.block_on(async {
            let call = async {
                let r = self.http.get(&url).bearer_auth(&self.token).send().await.unwrap();
                assert_eq!(r.status(), 200, "GET {url}");
                r.json::<serde_json::Value>().await.unwrap()
            };
            tokio::time::timeout(limit, call).await.ok()
        })
    }

    /// The bytes of each file (`GET /files/PATH`), eight requests in flight.
    pub fn read_files(&self, session: &str, paths: &[String]) -> BTreeMap<String, Vec<u8>> {
        use futures_util::StreamExt;
        self.rt.block_on(async {
            let reads = paths.iter().map(|p| {
                let url = format!("{}/sessions/{session}/files/{}", self.base, encode_path(p));
                let req = self.http.get(url).bearer_auth(&self.token).send();
                async move {
                    let r = req.await.unwrap();
                    assert_eq!(r.status(), 200, "GET {p}");
                    (p.clone(), r.bytes().await.unwrap().to_vec())
                }
            });
            futures_util::stream::iter(reads).buffer_unordered(8).collect().await
        })
    }

    /// A session's tree as a snapshot, every file's contents read with its own `GET /files`.
    pub fn snapshot(&self, session: &str) -> BTreeMap<String, Node> {
        self.snapshot_reading(session, |_| true)
    }

    /// A session's tree as a snapshot (`GET /tree`); the contents of the files `read` selects are
    /// read with `GET /files`, the others are left out.
    pub fn snapshot_reading(&self, session: &str, read: impl Fn(&str) -> bool) -> BTreeMap<String, Node> {
        let entries: Vec<serde_json::Value> = self
            .tree(session)
            .into_iter()
            .filter(|e| e["kind"] != "file" || read(e["path"].as_str().unwrap()))
            .collect();
        let files: Vec<String> = entries
            .iter()
            .filter(|e| e["kind"] == "file")
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect();
        let contents = self.read_files(session, &files);
        entries
            .iter()
            .map(|e| {
                let path = e["path"].as_str().unwrap().to_owned();
                let mode = e["mode"].as_u64().unwrap() as u32 & 0o7777;
                let node = match e["kind"].as_str().unwrap() {
                    "dir" => Node::Dir { mode },
                    "symlink" => Node::Symlink {
                        target: e["symlink_target"].as_str().unwrap().to_owned(),
                    },
                    "file" => {
                        let bytes = &contents[&path];
                        assert_eq!(bytes.len() as u64, e["size"].as_u64().unwrap(), "{path}: size");
                        Node::File {
                            mode,
                            size: bytes.len() as u64,
                            digest: digest(bytes),
                        }
                    }
                    k @ ("fifo" | "socket" | "char_device" | "block_device") => Node::Special {
                        kind: ["fifo", "socket", "char_device", "block_device"]
                            .into_iter()
                            .find(|n| *n == k)
                            .unwrap(),
                        mode,
                        rdev: e["rdev"].as_u64().unwrap_or(0),
                    },
                    k => panic!("{path}: unknown kind {k}"),
                };
                (path, node)
            })
            .collect()
    }

    /// A session's tree as a snapshot from one `GET /export?format=tar` (every file's bytes as
    /// the server reads them, in one stream).
    pub fn export_snapshot(&self, session: &str) -> BTreeMap<String, Node> {
        let url = format!("{}/sessions/{session}/export?format=tar", self.base);
        let bytes = self.rt.block_on(async {
            let r = self.http.get(&url).bearer_auth(&self.token).send().await.unwrap();
            assert_eq!(r.status(), 200, "GET {url}");
            r.bytes().await.unwrap()
        });
        let mut out = BTreeMap::new();
        let mut archive = tar::Archive::new(&bytes[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_str().unwrap().trim_end_matches('/').to_owned();
            let path = path.strip_prefix("./").unwrap_or(&path).to_owned();
            if path.is_empty() || path == "." {
                continue;
            }
            let mode = entry.header().mode().unwrap() & 0o7777;
            let node = match entry.header().entry_type() {
                tar::EntryType::Directory => Node::Dir { mode },
                tar::EntryType::Symlink => Node::Symlink {
                    target: entry.link_name().unwrap().unwrap().to_str().unwrap().to_owned(),
                },
                tar::EntryType::Regular => {
                    let mut body = Vec::new();
                    std::io::Read::read_to_end(&mut entry, &mut body).unwrap();
                    Node::File {
                        mode,
                        size: body.len() as u64,
                        digest: digest(&body),
                    }
                }
                t => panic!("{path}: unexpected tar entry type {t:?}"),
            };
            out.insert(path, node);
        }
        out
    }
}

/// Percent-encode a relative path for a URL, keeping the slashes.
fn encode_path(p: &str) -> String {
    let mut out = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
