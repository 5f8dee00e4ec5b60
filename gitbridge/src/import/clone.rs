//! Fetching the source: `git clone --bare --no-local` into a quarantine repository, with its
//! progress turned into session events, a deadline, and a cap on the bytes received.
//!
//! `clone --bare` gives exactly the refs an import keeps (`refs/heads/*` and `refs/tags/*` of
//! the source, mapped one to one) and resolves the source's HEAD, in one connection.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::ImportConfig;
use super::error::{ImportError, Result};
use super::git;
use super::progress::{LineSplitter, Throttle, parse};
use super::source::SourceUrl;
use aether_core::PendingImport;

/// Clone `url` into `dest` (which must not exist), reporting throttled progress to `pending`.
pub(crate) async fn clone_bare(
    cfg: &ImportConfig,
    url: &SourceUrl,
    dest: &Path,
    home: &Path,
    pending: &PendingImport,
) -> Result<()> {
    let mut cmd = git::command(&cfg.git, None, home);
    cmd.args(["clone", "--bare", "--no-local", "--progress", "--"])
        .arg(&url.url)
        .arg(dest);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so a timeout stops git's helpers (remote-http, index-pack) too.
        .process_group(0);
    let mut child = cmd.spawn().map_err(ImportError::io("starting git clone"))?;
    let pid = child.id();
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| ImportError::git("clone", "no stderr pipe"))?;

    let deadline = tokio::time::sleep(cfg.fetch_timeout);
    tokio::pin!(deadline);
    let mut size_check = tokio::time::interval(Duration::from_millis(250));
    let mut splitter = LineSplitter::default();
    let mut throttle = Throttle::new(Duration::from_millis(500));
    let mut messages: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut stderr_open = true;
    let outcome: Result<()> = loop {
        tokio::select! {
            n = stderr.read(&mut buf), if stderr_open => {
                let n = n.map_err(ImportError::io("reading git's progress"))?;
                if n == 0 {
                    stderr_open = false;
                    splitter.finish(|l| messages.push(l));
                    continue;
                }
                let mut lines = Vec::new();
                splitter.push(&buf[..n], |l| lines.push(l));
                for line in lines {
                    match parse(&line) {
                        Some(p) => {
                            if throttle.admit(&p) {
                                super::report(pending, p.to_json()).await;
                            }
                        }
                        None => {
                            messages.push(line);
                            if messages.len() > 50 {
                                messages.remove(0);
                            }
                        }
                    }
                }
            }
            status = child.wait(), if !stderr_open => {
                let status = status.map_err(ImportError::io("waiting for git clone"))?;
                break if !status.success() {
                    Err(classify(url, &messages))
                } else if dir_size(dest) > cfg.max_bytes {
                    // Finished between two size checks.
                    Err(ImportError::TooLarge { url: url.display.clone(), limit: cfg.max_bytes })
                } else {
                    Ok(())
                };
            }
            _ = &mut deadline => {
                break Err(ImportError::TimedOut { url: url.display.clone(), limit: cfg.fetch_timeout });
            }
            _ = size_check.tick() => {
                if dir_size(dest) > cfg.max_bytes {
                    break Err(ImportError::TooLarge { url: url.display.clone(), limit: cfg.max_bytes });
                }
            }
        }
    };
    if outcome.is_err() {
        stop(pid, &mut child).await;
    }
    outcome
}

/// Kill git and every helper in its process group, then reap it.
async fn stop(pid: Option<u32>, child: &mut tokio::process::Child) {
    if let Some(pid) = pid {
        // `unsafe` is forbidden here, so no libc::killpg: the kill binary signals the group.
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    let _ = child.kill().await;
}

/// Bytes under `dir`, counted while git writes there (missing files are skipped).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Turn git's last words into a user-facing error.
fn classify(url: &SourceUrl, messages: &[String]) -> ImportError {
    let fatal: Vec<&str> = messages
        .iter()
        .map(|m| m.trim())
        .filter(|m| m.starts_with("fatal:") || m.starts_with("error:") || m.starts_with("remote:"))
        .collect();
    let detail = if fatal.is_empty() {
        messages
            .last()
            .map(String::as_str)
            .unwrap_or("git clone failed")
            .to_owned()
    } else {
        fatal[fatal.len().saturating_sub(3)..].join("; ")
    };
    // Never show credentials that were part of the URL.
    let detail = if url.url != url.display {
        detail.replace(&url.url, &url.display)
    } else {
        detail
    };
    let lower = detail.to_ascii_lowercase();
    let missing = ["does not exist", "not found", "does not appear to be a git repository"];
    if missing.iter().any(|m| lower.contains(m)) {
        ImportError::SourceNotFound {
            url: url.display.clone(),
            detail,
        }
    } else {
        ImportError::SourceUnreachable {
            url: url.display.clone(),
            detail,
        }
    }
}
