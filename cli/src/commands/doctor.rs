//! `aether doctor`: is the server reachable, which version, is the token valid, can this machine
//! mount (FUSE), is the local cache directory usable. Server and token failures decide the exit
//! code (unreachable 5, auth 4); FUSE and cache problems are warnings, since only `mount` needs
//! them.

use std::path::{Path, PathBuf};

use serde_json::json;

use aether_proto::v1 as pb;

use crate::Out;
use crate::client::Client;
use crate::config::Resolved;
use crate::error::{CliError, Kind, Result};
use crate::output::{self, print_json};

struct Check {
    name: &'static str,
    status: &'static str,
    detail: String,
}

fn check(name: &'static str, status: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

pub async fn run(cfg: &Resolved, out: Out) -> Result<()> {
    let mut checks = Vec::new();
    let mut failure: Option<CliError> = None;
    checks.push(check(
        "config",
        "ok",
        match &cfg.config_file {
            Some(p) => format!("{} (server from {})", p.display(), cfg.server_from),
            None => format!("no config file (server from {})", cfg.server_from),
        },
    ));
    match Client::connect(cfg).await {
        Err(e) => {
            checks.push(check("server", "fail", e.message.clone()));
            failure = Some(e);
        }
        Ok(client) => {
            match client.meta().get_info(pb::Empty {}).await {
                Ok(info) => {
                    let info = info.into_inner();
                    checks.push(check(
                        "server",
                        "ok",
                        format!("{} {} at {}", info.name, info.version, cfg.server),
                    ));
                }
                Err(s) => {
                    let e = client.err(s);
                    checks.push(check("server", "fail", e.message.clone()));
                    failure = Some(e);
                }
            }
            if failure.is_none() {
                match (&cfg.token, client.meta().who_am_i(pb::Empty {}).await) {
                    (None, _) => {
                        let e = CliError::new(
                            Kind::Auth,
                            "no token configured",
                            "pass --token, set AETHER_TOKEN or `token` in the config file",
                        );
                        checks.push(check("token", "fail", e.message.clone()));
                        failure = Some(e);
                    }
                    (Some(_), Ok(p)) => {
                        let p = p.into_inner();
                        let who = match p.token {
                            Some(t) => format!("token {} ({} access to {} sessions)", t.id, t.access, t.sessions.len()),
                            None => "admin token".to_owned(),
                        };
                        checks.push(check("token", "ok", format!("{who}, from {}", cfg.token_from)));
                    }
                    (Some(_), Err(s)) => {
                        let e = client.err(s);
                        checks.push(check(
                            "token",
                            "fail",
                            format!("{} (from {})", e.message, cfg.token_from),
                        ));
                        failure = Some(e);
                    }
                }
            }
        }
    }
    checks.push(fuse());
    checks.push(cache());
    if out.json {
        print_json(&json!({
            "ok": failure.is_none(),
            "checks": checks.iter().map(|c| json!({"name": c.name, "status": c.status, "detail": c.detail})).collect::<Vec<_>>(),
        }));
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| vec![c.name.to_owned(), c.status.to_owned(), c.detail.clone()])
            .collect();
        outln!("{}", output::table(&["CHECK", "STATUS", "DETAIL"], &rows));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn fuse() -> Check {
    let dev = Path::new("/dev/fuse").exists();
    let helper = in_path("fusermount3");
    match (dev, helper) {
        (true, Some(h)) => check("fuse", "ok", format!("/dev/fuse and {}", h.display())),
        (false, _) => check(
            "fuse",
            "warn",
            "/dev/fuse is missing: `aether mount` will not work here",
        ),
        (true, None) => check("fuse", "warn", "fusermount3 is not in PATH (install fuse3)"),
    }
}

/// `$XDG_CACHE_HOME/aether`, else `~/.cache/aether`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .map(|b| b.join("aether"))
}

fn cache() -> Check {
    let Some(dir) = cache_dir() else {
        return check("cache", "warn", "neither XDG_CACHE_HOME nor HOME is set");
    };
    let probe = dir.join(".doctor-probe");
    let result = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::read(&probe))
        .and_then(|b| {
            std::fs::remove_file(&probe)?;
            if b == b"ok" {
                Ok(())
            } else {
                Err(std::io::Error::other("read back different bytes"))
            }
        });
    match result {
        Ok(()) => check("cache", "ok", format!("{} is writable", dir.display())),
        Err(e) => check("cache", "warn", format!("{}: {e}", dir.display())),
    }
}
