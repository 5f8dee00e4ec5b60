//! A test environment: a running aetherd, a temporary home, and a way to run `aether` in it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct TestEnv {
    pub url: String,
    pub admin: String,
    pub data_dir: PathBuf,
    pub home: tempfile::TempDir,
    _server_dir: tempfile::TempDir,
    shutdown: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout, plus stderr and the exit code when they say something.
    pub fn transcript(&self) -> String {
        let mut s = self.stdout.clone();
        if !self.stderr.is_empty() {
            s.push_str("[stderr]\n");
            s.push_str(&self.stderr);
        }
        if self.code != 0 {
            s.push_str(&format!("[exit {}]\n", self.code));
        }
        s
    }

    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "{}", self.transcript());
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv::with_config(|_| {})
    }

    /// A server whose configuration `adjust` changed (limits, for example).
    pub fn with_config(adjust: impl FnOnce(&mut aether_server::config::Config)) -> TestEnv {
        let server_dir = tempfile::tempdir().unwrap();
        let data_dir = server_dir.path().join("data");
        let mut config = aether_server::config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            ..aether_server::config::Config::default()
        };
        adjust(&mut config);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let bound = aether_server::bind(&config).await.unwrap();
                ready_tx
                    .send((format!("http://{}", bound.addr), bound.admin_token.clone()))
                    .unwrap();
                let stop = tokio::task::spawn_blocking(move || {
                    let _ = stop_rx.recv();
                });
                bound
                    .serve(async move {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let (url, admin) = ready_rx.recv().unwrap();
        TestEnv {
            url,
            admin,
            data_dir,
            home: tempfile::tempdir().unwrap(),
            _server_dir: server_dir,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A bare command: cleared environment with only HOME and PATH-free; cwd is the home.
    pub fn bare(&self, args: &[&str]) -> Command {
        // This package's build of the CLI, called `aether` as users call it (help and usage
        // lines name argv[0]).
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aether-under-test"));
        cmd.arg0("aether")
            .env_clear()
            .env("HOME", self.home())
            .current_dir(self.home())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// `aether ARGS` with the server and the admin token in the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare(args);
        cmd.env("AETHER_URL", &self.url).env("AETHER_TOKEN", &self.admin);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run(self.cmd(args))
    }

    /// Run and expect success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "aether {}: {}", args.join(" "), r.transcript());
        r
    }

    pub fn new_session(&self) -> String {
        self.ok(&["session", "create", "--json"]).json()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `$ aether ARGS` followed by its transcript, for a snapshot of several commands.
    pub fn step(&self, log: &mut String, args: &[&str]) -> Run {
        let r = self.run(args);
        log.push_str(&format!("$ aether {}\n{}\n", args.join(" "), r.transcript()));
        r
    }
}

pub fn run(mut cmd: Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Redactions shared by every snapshot.
pub fn filters(env: &TestEnv) -> Vec<(String, String)> {
    let mut f = vec![
        (regex_escape(env.home().to_str().unwrap()), "[HOME]".to_owned()),
        (regex_escape(&env.url), "[URL]".to_owned()),
        (r"\b[0-9a-z]{26}\b".to_owned(), "[ID]".to_owned()),
        (r"\b[0-9a-f]{40}\b".to_owned(), "[OID]".to_owned()),
        (r"\b[0-9a-f]{12}\b".to_owned(), "[SHORT]".to_owned()),
        (r"\b[0-9a-f]{64}\b".to_owned(), "[BLAKE3]".to_owned()),
        (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}".to_owned(), "[TIME]".to_owned()),
        (
            r#""(created_at|updated_at|mtime_ns|time)": -?\d+"#.to_owned(),
            r#""$1": "[T]""#.to_owned(),
        ),
        (r#""at":\d+"#.to_owned(), r#""at":"[T]""#.to_owned()),
        (r"tok_[A-Za-z0-9_-]+".to_owned(), "[TOKEN_ID]".to_owned()),
        (r"aet_[A-Za-z0-9_-]+".to_owned(), "[SECRET]".to_owned()),
    ];
    f.push((regex_escape(env.data_dir.to_str().unwrap()), "[DATA]".to_owned()));
    f
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Snapshot `value` under `name` with the shared redactions.
#[macro_export]
macro_rules! snap {
    ($env:expr, $name:expr, $value:expr) => {{
        let filters = $crate::env::filters($env);
        let refs: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        insta::with_settings!({filters => refs, prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!($name, $value);
        });
    }};
}
