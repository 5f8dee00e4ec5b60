//! A real `aetherd` process (the built binary) with its log captured from a pipe, for what only
//! a process shows: signals, exit, and what it writes to a non-terminal.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Aetherd {
    child: Child,
    pub addr: String,
    pub admin: String,
    log: Arc<Mutex<String>>,
    /// The threads copying stdout and stderr into `log`; they end at the pipes' end.
    readers: Vec<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Aetherd {
    /// Start `aetherd` on an ephemeral port with `args` added; returns once it listens.
    pub fn start(args: &[&str]) -> Aetherd {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_aetherd"))
            .args(["--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("AETHER_CONFIG")
            .env_remove("MALLOC_ARENA_MAX")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            }));
        }
        let started = Instant::now();
        let addr = loop {
            let text = log.lock().unwrap().clone();
            if let Some(rest) = text.split("addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            // The JSON log format: `"addr":"127.0.0.1:PORT"`.
            if let Some(rest) = text.split("\"addr\":\"").nth(1) {
                break rest.split('"').next().unwrap().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "aetherd did not start: {text}"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("aetherd exited with {status}: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let admin = std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Aetherd {
            child,
            addr,
            admin,
            log,
            readers,
            _dir: dir,
        }
    }

    /// The data directory it was started with.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything it logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Send SIGTERM (with the `kill` utility: the test needs no unsafe code).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait up to `limit` for the process to exit; its exit status, or `None` if it did not.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Everything it wrote is in the log once the pipes are read to their end.
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Aetherd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment of process `pid`, one `NAME=value` each.
fn environment(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// aetherd caps glibc's malloc arenas for itself: it starts itself again at once with
/// `MALLOC_ARENA_MAX` set (the same process: the pid the test started serves), and leaves it
/// unset when told not to cap.
#[test]
fn aetherd_caps_its_malloc_arenas() {
    let capped = Aetherd::start(&["--malloc-arenas", "3"]);
    let env = environment(capped.pid());
    assert!(env.iter().any(|v| v == "MALLOC_ARENA_MAX=3"), "{env:?}");
    let default = Aetherd::start(&[]);
    let want = format!(
        "MALLOC_ARENA_MAX={}",
        std::thread::available_parallelism().unwrap().get().max(2)
    );
    assert!(environment(default.pid()).contains(&want), "{want}");
    let uncapped = Aetherd::start(&["--malloc-arenas", "0"]);
    let env = environment(uncapped.pid());
    assert!(!env.iter().any(|v| v.starts_with("MALLOC_ARENA_MAX=")), "{env:?}");
}
