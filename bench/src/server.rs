//! Servers under test, each in a child process so that its CPU and memory are its own: this
//! binary re-executed as `__serve <data-dir>` runs aetherd (the server library, default config,
//! an ephemeral loopback port), and as `__static <root>` runs the reference static file server.
//! The child prints `<addr> <token>` on one line and serves until the parent kills it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The hidden first argument that turns this binary into aetherd.
pub const SERVE_ARG: &str = "__serve";
/// The hidden first argument that turns this binary into the static file server.
pub const STATIC_ARG: &str = "__static";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

fn announce(addr: std::net::SocketAddr, token: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{addr} {token}")?;
    out.flush()?;
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")
}

/// The child side of [`SERVE_ARG`].
pub fn serve_aetherd(args: &[String]) -> Result<()> {
    let [data_dir] = args else {
        bail!("usage: aether-bench {SERVE_ARG} <data-dir>");
    };
    runtime()?.block_on(async {
        let config = aether_server::config::Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: PathBuf::from(data_dir),
            loose_compression: match std::env::var("AETHER_LOOSE_COMPRESSION") {
                Ok(v) => v.parse().context("AETHER_LOOSE_COMPRESSION")?,
                Err(_) => 0,
            },
            ..Default::default()
        };
        let bound = aether_server::bind(&config).await?;
        announce(bound.addr, &bound.admin_token)?;
        bound.serve(std::future::pending()).await
    })
}

/// The child side of [`STATIC_ARG`].
pub fn serve_static(args: &[String]) -> Result<()> {
    let [root] = args else {
        bail!("usage: aether-bench {STATIC_ARG} <root>");
    };
    let root = PathBuf::from(root);
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        announce(listener.local_addr()?, "-")?;
        crate::static_server::serve(listener, root).await
    })
}

/// Resident memory of a process from `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    /// VmHWM: the peak since start, or since the last reset through `clear_refs`.
    pub peak: u64,
    /// VmRSS: resident now.
    pub rss: u64,
}

/// A server child; killed and reaped when dropped, so an error anywhere cannot leave it behind.
pub struct Server {
    child: Child,
    pub base: String,
    /// The directory it serves (aetherd's data directory; empty for an external server).
    pub dir: PathBuf,
    pub token: String,
    /// A signal that stops the server with everything it started (nginx's workers), sent
    /// before the kill on drop.
    stop_signal: Option<&'static str>,
}

impl Server {
    /// aetherd on `data_dir`.
    pub fn aetherd(data_dir: &Path) -> Result<Server> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        Server::start(SERVE_ARG, data_dir)
    }

    /// The static file server on `root`.
    pub fn static_files(root: &Path) -> Result<Server> {
        Server::start(STATIC_ARG, root)
    }

    fn start(mode: &str, dir: &Path) -> Result<Server> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(&exe)
            .arg(mode)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} {mode}", exe.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut server = Server {
            child,
            base: String::new(),
            dir: dir.to_owned(),
            token: String::new(),
            stop_signal: None,
        };
        // Read the first line on a thread, so a server that never answers cannot hang the run.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let got = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(got);
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(got) => got.context("reading the server's address")?,
            Err(_) => bail!("the server did not report its address within {STARTUP_TIMEOUT:?}"),
        };
        let Some((addr, token)) = line.trim().split_once(' ') else {
            let status = server.child.try_wait().ok().flatten();
            bail!("the server printed {line:?} instead of '<addr> <token>' (exit status {status:?})");
        };
        server.base = format!("http://{addr}");
        server.token = token.to_owned();
        Ok(server)
    }

    /// A server started some other way (nginx), answering at `base`, without a token; dropping
    /// it sends `stop_signal` (a `kill -s` name) and waits, then kills it.
    pub fn external(child: Child, base: String, stop_signal: &'static str) -> Server {
        Server {
            child,
            base,
            dir: PathBuf::new(),
            token: String::new(),
            stop_signal: Some(stop_signal),
        }
    }

    /// The exit status if the server process has ended.
    pub fn try_exit_status(&mut self) -> Result<Option<std::process::ExitStatus>> {
        self.child.try_wait().context("checking on the server process")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn mem(&self) -> Result<Mem> {
        let path = format!("/proc/{}/status", self.pid());
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib = |key: &str| -> Result<u64> {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .with_context(|| format!("no {key} in {path}"))?;
            let n = line.trim().trim_end_matches("kB").trim();
            Ok(n.parse::<u64>().with_context(|| format!("bad {key} '{n}' in {path}"))? * 1024)
        };
        Ok(Mem {
            peak: kib("VmHWM:")?,
            rss: kib("VmRSS:")?,
        })
    }

    /// Reset the server's VmHWM to its current RSS (`echo 5 > /proc/<pid>/clear_refs`), so the
    /// peak that follows excludes start-up. False when the kernel or permissions do not allow it.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(sig) = self.stop_signal {
            let sent = Command::new("kill")
                .args(["-s", sig, &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            if sent.is_ok_and(|s| s.success()) {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while std::time::Instant::now() < deadline {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response's body as text, for error messages.
pub async fn fail(what: &str, resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::anyhow!("{what}: HTTP {status}: {body}")
}

/// A new empty session on `server`; returns its id.
pub async fn create_session(client: &reqwest::Client, server: &Server) -> Result<String> {
    let created = client
        .post(server.url("/v1/sessions"))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({}))
        .send()
        .await?;
    if created.status() != reqwest::StatusCode::CREATED {
        return Err(fail("creating a session", created).await);
    }
    let created: serde_json::Value = created.json().await?;
    Ok(created["id"].as_str().context("no id in the new session")?.to_owned())
}

/// An HTTP client for loopback servers (no proxy from the environment).
pub fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()
        .context("building the HTTP client")
}
