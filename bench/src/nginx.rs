//! Debian's `nginx` as the reference file server of `http-small-reads`, when it is installed
//! (`apt-get install nginx`): a private configuration in the run's scratch directory, one
//! worker per CPU, `sendfile`, no access log, keep-alive without a request limit, listening on
//! an ephemeral loopback port. The system's nginx configuration and service are not touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::server::Server;

const CANDIDATES: [&str; 2] = ["/usr/sbin/nginx", "/usr/bin/nginx"];
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The nginx binary, if installed.
pub fn binary() -> Option<PathBuf> {
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// `nginx/1.22.1`, from `nginx -v` (which prints to stderr).
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stderr).into_owned();
            text.trim().rsplit(' ').next().map(str::to_owned)
        })
        .unwrap_or_else(|| "nginx".into())
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The configuration: static files from `root`, on `port`, everything else in `dir`.
fn config(root: &Path, dir: &Path, port: u16, workers: usize) -> String {
    let d = dir.display();
    // The scratch directory is private (0700): workers must run as the user that owns it.
    let user = if running_as_root() { "user root;\n" } else { "" };
    format!(
        "{user}worker_processes {workers};\n\
         daemon off;\n\
         master_process on;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 sendfile on;\n\
         \x20 tcp_nodelay on;\n\
         \x20 keepalive_requests 100000000;\n\
         \x20 keepalive_timeout 120s;\n\
         \x20 default_type application/octet-stream;\n\
         \x20 client_body_temp_path {d}/tmp/body;\n\
         \x20 proxy_temp_path {d}/tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/tmp/scgi;\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   root {root};\n\
         \x20   location / {{ }}\n\
         \x20 }}\n\
         }}\n",
        root = root.display()
    )
}

/// Start nginx serving `root`, with its configuration and logs in `dir`; ready when it accepts
/// connections. Stopped (`SIGQUIT`, workers included) when the returned server is dropped.
pub fn start(bin: &Path, root: &Path, dir: &Path) -> Result<Server> {
    std::fs::create_dir_all(dir.join("tmp")).with_context(|| format!("creating {}", dir.display()))?;
    // An ephemeral port: bound once to learn a free one, released just before nginx takes it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config(root, dir, port, workers)).context("writing nginx.conf")?;
    let child = Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut server = Server::external(child, format!("http://127.0.0.1:{port}"), "QUIT");
    let t = Instant::now();
    loop {
        if let Some(status) = server.try_exit_status()? {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            bail!("nginx exited at start ({status}): {}", log.trim());
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(server);
        }
        if t.elapsed() > STARTUP_TIMEOUT {
            bail!("nginx did not listen on port {port} within {STARTUP_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn serves_a_file_when_installed() -> anyhow::Result<()> {
        let Some(bin) = super::binary() else {
            // CI installs nginx (.ci/run): there a missing binary is a failure, not a skip.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nginx is not installed (apt-get install nginx)"
            );
            eprintln!("SKIPPED: nginx is not installed; the harness falls back to its own static server");
            return Ok(());
        };
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root)?;
        std::fs::write(root.join("f.bin"), vec![7u8; 4096])?;
        let server = super::start(&bin, &root, &tmp.path().join("nginx"))?;
        let addr = server.base.trim_start_matches("http://").to_owned();
        let mut conn = std::net::TcpStream::connect(&addr)?;
        conn.write_all(b"GET /f.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut resp = Vec::new();
        conn.read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("Content-Length: 4096"), "{text}");
        assert!(resp.ends_with(&[7u8; 4096]));
        Ok(())
    }
}
