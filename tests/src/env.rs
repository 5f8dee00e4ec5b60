//! One test's world: a server of its own, clients for its REST and gRPC surfaces, and the
//! `aether` CLI run with a cleared environment and a home directory of its own (where its
//! default cache directory lives).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bins::Bins;
use crate::grpc::Grpc;
use crate::rest::Rest;
use crate::server::Server;

pub struct Env {
    pub bins: Bins,
    pub rest: Rest,
    pub grpc: Grpc,
    pub server: Server,
    home: tempfile::TempDir,
}

/// A finished command.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn transcript(&self) -> String {
        format!(
            "exit {} (124: timed out)\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Longest any single `aether` command may take (imports of the corpus included).
pub const CLI_LIMIT: Duration = Duration::from_secs(300);

impl Env {
    /// A server and a home directory, both under `scratch`.
    pub fn start(bins: &Bins, scratch: &Path) -> Env {
        std::fs::create_dir_all(scratch).expect("the scratch directory");
        let server = Server::start(bins, scratch, &[]);
        let home = tempfile::Builder::new()
            .prefix("home-")
            .tempdir_in(scratch)
            .expect("a home directory");
        Env {
            bins: bins.clone(),
            rest: Rest::new(&server.url, &server.admin),
            grpc: Grpc::connect(&server.url, &server.admin),
            server,
            home,
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A new directory in the home (for mount points, checkouts, caches).
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.home().join(name);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        d
    }

    /// `aether ARGS` with the server and admin token in a cleared environment, under a time
    /// limit (coreutils `timeout`).
    pub fn aether(&self, args: &[&str], limit: Duration) -> Command {
        let mut c = Command::new("timeout");
        c.arg("-k")
            .arg("10")
            .arg(limit.as_secs().max(1).to_string())
            .arg(&self.bins.aether)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("AETHER_URL", &self.server.url)
            .env("AETHER_TOKEN", &self.server.admin)
            .current_dir(self.home())
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str], limit: Duration) -> Run {
        let out = self
            .aether(args, limit)
            .output()
            .unwrap_or_else(|e| panic!("cannot run aether: {e}"));
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `aether ARGS`, expecting exit 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args, CLI_LIMIT);
        assert_eq!(
            r.code,
            0,
            "aether {}: {}\n{}",
            args.join(" "),
            r.transcript(),
            self.server.health()
        );
        r
    }

    /// `aether --json session create ARGS`: the new session's id, or why there is none.
    pub fn create_session(&self, args: &[&str]) -> Result<String, String> {
        self.create_session_within(args, CLI_LIMIT)
    }

    /// [`Env::create_session`] with its own time limit (imports of large trees).
    pub fn create_session_within(&self, args: &[&str], limit: Duration) -> Result<String, String> {
        let mut all = vec!["--json", "session", "create"];
        all.extend_from_slice(args);
        let r = self.run(&all, limit);
        if r.code != 0 {
            return Err(format!("aether {}: {}", all.join(" "), r.transcript()));
        }
        let v: serde_json::Value = serde_json::from_str(&r.stdout)
            .map_err(|e| format!("session create printed no JSON ({e}): {}", r.stdout))?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no id in {v}"))
    }

    /// A new empty session (REST).
    pub fn new_session(&self) -> String {
        self.rest.create_session().unwrap_or_else(|e| panic!("{e}"))
    }
}
