//! Running the git binary isolated from the machine: no system or user configuration, no
//! prompts, no hooks, no credential helpers, and only the file and http(s) transports.

use std::path::Path;
use std::process::{Command, Output};

use super::error::{ImportError, Result};

/// Environment variables passed through to git (proxies and CA certificates for https).
const KEEP_ENV: &[&str] = &[
    "PATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Configuration every git invocation of an import gets on its command line.
const CONFIG: &[&str] = &[
    "protocol.allow=never",
    "protocol.file.allow=always",
    "protocol.http.allow=always",
    "protocol.https.allow=always",
    "protocol.version=2",
    "core.hooksPath=/dev/null",
    "credential.helper=",
    "core.askPass=",
    // Keep what arrives as one pack (never explode small fetches into loose objects).
    "transfer.unpackLimit=1",
    "fetch.unpackLimit=1",
    "gc.auto=0",
    "maintenance.auto=false",
    "fetch.writeCommitGraph=false",
    // A stalled HTTP transfer (under 1 byte/s for two minutes) fails instead of hanging.
    "http.lowSpeedLimit=1",
    "http.lowSpeedTime=120",
];

/// `git [-C dir] <isolating config>` with a cleared environment; `home` is an empty directory
/// the import owns (git wants one).
pub(crate) fn command(git: &Path, dir: Option<&Path>, home: &Path) -> Command {
    let mut cmd = Command::new(git);
    cmd.env_clear();
    for key in KEEP_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("HOME", home)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PROTOCOL_FROM_USER", "0");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    for c in CONFIG {
        cmd.arg("-c").arg(c);
    }
    cmd
}

/// Run to completion; a non-zero exit is a [`ImportError::Git`] with git's stderr.
pub(crate) fn run(mut cmd: Command, what: &str) -> Result<Output> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(ImportError::io(format!("running git {what}")))?;
    if !out.status.success() {
        return Err(ImportError::git(what, last_lines(&out.stderr, 5)));
    }
    Ok(out)
}

/// The last `n` non-empty lines of git's stderr, for error messages.
pub(crate) fn last_lines(stderr: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("; ")
}
