//! The server under test: `aetherd-under-test` in its own process on an ephemeral port, with a
//! fresh data directory, its log in a file, and a watchdog that samples its resident memory.
//! The watchdog keeps the peak for assertions and kills the server past a hard bound, so a
//! runaway request (a recursive listing that never ends) fails the test instead of the machine.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::bins::Bins;

/// Resident memory past which the watchdog kills the server (MiB), unless
/// `AETHER_INTEGRITY_SERVER_RSS_KILL_MIB` says otherwise.
const RSS_KILL_MIB: u64 = 2048;

#[derive(Default)]
struct Watch {
    peak_rss: AtomicU64,
    stop: AtomicBool,
    killed: Mutex<Option<String>>,
}

pub struct Server {
    child: Child,
    pub url: String,
    pub admin: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    watch: Arc<Watch>,
    watchdog: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Server {
    /// Start a server with a new data directory under `parent`; `extra` are more `aetherd`
    /// flags.
    pub fn start(bins: &Bins, parent: &Path, extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("server-")
            .tempdir_in(parent)
            .expect("a directory for the server");
        let data_dir = dir.path().join("data");
        let log = dir.path().join("aetherd.log");
        let log_file = std::fs::File::create(&log).expect("the server's log file");
        let mut child = Command::new(&bins.aetherd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--log-level")
            .arg("info")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bins.aetherd.display()));
        let stdout = child.stdout.take().expect("the server's stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not start (first line {line:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let admin = std::fs::read_to_string(data_dir.join("admin.token"))
            .expect("the server wrote its admin token")
            .trim()
            .to_owned();
        let watch = Arc::new(Watch::default());
        let pid = child.id();
        let kill_at = std::env::var("AETHER_INTEGRITY_SERVER_RSS_KILL_MIB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(RSS_KILL_MIB)
            << 20;
        let w = watch.clone();
        let watchdog = std::thread::Builder::new()
            .name("rss-watchdog".into())
            .spawn(move || {
                while !w.stop.load(Ordering::Relaxed) {
                    let Some(rss) = rss_bytes(pid) else { break };
                    w.peak_rss.fetch_max(rss, Ordering::Relaxed);
                    if rss > kill_at {
                        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                        *w.killed.lock() = Some(format!(
                            "the watchdog killed the server: resident memory {} MiB passed {} MiB",
                            rss >> 20,
                            kill_at >> 20
                        ));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            })
            .expect("spawn the watchdog");
        Server {
            child,
            url: format!("http://{addr}"),
            admin,
            data_dir,
            log,
            watch,
            watchdog: Some(watchdog),
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now.
    pub fn rss(&self) -> Option<u64> {
        rss_bytes(self.pid())
    }

    /// The highest resident memory the watchdog saw.
    pub fn peak_rss(&self) -> u64 {
        self.watch.peak_rss.load(Ordering::Relaxed)
    }

    /// Why the watchdog killed the server, if it did.
    pub fn killed(&self) -> Option<String> {
        self.watch.killed.lock().clone()
    }

    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).is_ok_and(|s| !s.contains(") Z "))
    }

    /// The last `lines` lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A line for failure messages: alive or why not, memory now and at peak.
    pub fn health(&self) -> String {
        format!(
            "server pid {} {}; resident memory {} MiB now, peak {} MiB",
            self.pid(),
            self.killed().unwrap_or_else(|| if self.is_running() {
                "running".into()
            } else {
                "not running".into()
            }),
            self.rss().unwrap_or(0) >> 20,
            self.peak_rss() >> 20
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.watch.stop.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.watchdog.take() {
            let _ = t.join();
        }
    }
}
