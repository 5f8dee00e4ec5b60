//! Where the server is and which token to use. Precedence, highest first: `--server`/`--token`,
//! `AETHER_URL`/`AETHER_TOKEN`, the config file (`--config`, `AETHER_CONFIG`, else
//! `$XDG_CONFIG_HOME/aether/config.toml` or `~/.config/aether/config.toml`), then defaults: the
//! local server `http://127.0.0.1:7070` and, only when the server is on this machine, the admin
//! token file of its default data directory (`$AETHER_DATA_DIR` or `./aether-data`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{CliError, Result};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<String>,
    pub token: Option<String>,
}

/// The resolved connection settings, with where each came from (for `doctor` and `-v`).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub server: String,
    pub server_from: &'static str,
    pub token: Option<String>,
    pub token_from: String,
    pub config_file: Option<PathBuf>,
}

pub struct Inputs {
    pub flag_server: Option<String>,
    pub flag_token: Option<String>,
    pub flag_config: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The config file to read: explicit, or the XDG default when it exists.
fn config_path(flag: Option<PathBuf>) -> Option<(PathBuf, bool)> {
    if let Some(p) = flag.or_else(|| env("AETHER_CONFIG").map(PathBuf::from)) {
        return Some((p, true));
    }
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some((base.join("aether").join("config.toml"), false))
}

fn read_file(path: &Path, required: bool) -> Result<Option<FileConfig>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(CliError::io(format!("cannot read config file {}", path.display()), e)),
    };
    toml::from_str(&text).map(Some).map_err(|e| {
        CliError::usage(
            format!("invalid config file {}: {}", path.display(), e.message()),
            "the file takes `server = \"http://host:port\"` and `token = \"...\"`",
        )
    })
}

/// Whether `url` names this machine.
pub fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(h) => h.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// The admin token file of the local server's default data directory.
pub fn local_token_file() -> PathBuf {
    env("AETHER_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("aether-data"))
        .join("admin.token")
}

pub fn resolve(inputs: Inputs) -> Result<Resolved> {
    let (file, config_file) = match config_path(inputs.flag_config) {
        Some((path, required)) => match read_file(&path, required)? {
            Some(f) => (f, Some(path)),
            None => (FileConfig::default(), None),
        },
        None => (FileConfig::default(), None),
    };
    let (server, server_from) = if let Some(s) = inputs.flag_server {
        (s, "--server")
    } else if let Some(s) = env("AETHER_URL") {
        (s, "AETHER_URL")
    } else if let Some(s) = file.server {
        (s, "config file")
    } else {
        (DEFAULT_SERVER.to_owned(), "default")
    };
    let server = if server.contains("://") {
        server
    } else {
        format!("http://{server}")
    };
    let (token, token_from) = if let Some(t) = inputs.flag_token {
        (Some(t), "--token".to_owned())
    } else if let Some(t) = env("AETHER_TOKEN") {
        (Some(t), "AETHER_TOKEN".to_owned())
    } else if let Some(t) = file.token {
        (Some(t), "config file".to_owned())
    } else if is_local(&server) {
        let path = local_token_file();
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => (Some(t.trim().to_owned()), path.display().to_string()),
            _ => (None, "none".to_owned()),
        }
    } else {
        (None, "none".to_owned())
    };
    Ok(Resolved {
        server,
        server_from,
        token,
        token_from,
        config_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        assert!(is_local("http://127.0.0.1:7070"));
        assert!(is_local("http://localhost:1/x"));
        assert!(is_local("http://[::1]:7070"));
        assert!(!is_local("http://example.com:7070"));
        assert!(!is_local("https://10.0.0.1"));
    }
}
