//! `aether fsmonitor 2 TOKEN`: git's fsmonitor hook (protocol version 2) for a repository
//! inside an `aether mount`. `git config core.fsmonitor "aether fsmonitor"` makes git run it
//! (through the shell, in the worktree root, with `2` and the token kept in its index) to learn
//! what changed since that token instead of stat-ing every file. The hook finds the session and
//! the worktree's path in it from the mount table, asks the server (`ChangesSince`) and prints
//! the new token, NUL, then each changed path and NUL, or `/` for "everything".
//!
//! Whenever it cannot answer exactly it exits non-zero (git then checks every file itself) or
//! answers `/`: never a shorter list than the truth. A token is `aether:<session>:<position>`;
//! one git made up on first use (a time), or of another session, is answered with `/`.

use std::io::Write;
use std::path::{Path, PathBuf};

use aether_proto::v1 as pb;

use crate::args::FsmonitorArgs;
use crate::client::Client;
use crate::error::{CliError, Kind, Result};

const TOKEN_PREFIX: &str = "aether:";

pub async fn run(c: &Client, a: FsmonitorArgs) -> Result<()> {
    if a.version != 2 {
        return Err(CliError::usage(
            format!("fsmonitor hook protocol version {} is not supported", a.version),
            "git uses version 2 with core.fsmonitor = \"aether fsmonitor\"",
        ));
    }
    let cwd = std::env::current_dir().map_err(|e| CliError::io("cannot read the current directory", e))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| CliError::io("cannot read /proc/self/mountinfo", e))?;
    let place = locate(&mountinfo, &cwd).ok_or_else(|| {
        CliError::new(
            Kind::Usage,
            format!("{} is not inside an aether mount", cwd.display()),
            "aether fsmonitor serves git in a directory mounted with 'aether mount'",
        )
    })?;
    let since = parse_token(a.last_token.as_deref().unwrap_or(""), &place.session);
    let req = pb::ChangesSinceRequest {
        id: place.session.clone(),
        since,
        prefix: place.prefix.clone(),
    };
    let resp = c
        .sessions()
        .changes_since(req)
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    let mut out = format!("{TOKEN_PREFIX}{}:{}", place.session, resp.position).into_bytes();
    out.push(0);
    if resp.everything {
        out.extend_from_slice(b"/\0");
    } else {
        for p in &resp.paths {
            out.extend_from_slice(p.as_bytes());
            out.push(0);
        }
    }
    crate::log(
        2,
        format_args!(
            "fsmonitor: session {} prefix '{}' since {since:?}: {}",
            place.session,
            place.prefix,
            if resp.everything {
                format!("everything ({})", resp.reason)
            } else {
                format!("{} paths", resp.paths.len())
            }
        ),
    );
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::io("cannot write the answer", e))
}

/// The position a token of `session` names; `None` for any other token.
fn parse_token(token: &str, session: &str) -> Option<i64> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, position) = rest.rsplit_once(':')?;
    if id != session {
        return None;
    }
    position.parse().ok()
}

/// Where a directory is in a session.
#[derive(Debug, PartialEq, Eq)]
struct Place {
    session: String,
    /// The directory's path in the session (`a/b`, empty for the root).
    prefix: String,
}

/// The session and path of `dir` (absolute, as `getcwd` gives it) from a mount table in the
/// format of `/proc/self/mountinfo`: the mount covering `dir` is the one with the longest mount
/// point above it (later mounts win a tie), and it must be an aether mount (`aether:<id>`).
fn locate(mountinfo: &str, dir: &Path) -> Option<Place> {
    let mut best: Option<(usize, &str, &str, PathBuf)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(root), Some(point), Some(fstype), Some(source)) =
            (fields.get(3), fields.get(4), fields.get(sep + 1), fields.get(sep + 2))
        else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        let Ok(below) = dir.strip_prefix(&point) else {
            continue;
        };
        let depth = point.components().count();
        if best.as_ref().is_none_or(|(d, ..)| depth >= *d) {
            let source = if fstype.starts_with("fuse") { *source } else { "" };
            best = Some((depth, source, root, below.to_path_buf()));
        }
    }
    let (_, source, root, below) = best?;
    let session = source.strip_prefix(TOKEN_PREFIX)?;
    if session.is_empty() {
        return None;
    }
    // A bind mount of a directory of the session has that directory as its root.
    let root = unescape(root);
    let mut parts: Vec<String> = root.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    for c in below.components() {
        parts.push(c.as_os_str().to_str()?.to_owned());
    }
    Some(Place {
        session: session.to_owned(),
        prefix: parts.join("/"),
    })
}

/// Undo the octal escapes (`\040` for a space) of a mountinfo field.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d)) {
            let v = b[i + 1..i + 4].iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:50 / /tmp/m\\040x rw,nosuid,nodev,relatime shared:9 - fuse.aether aether:01hzsession0000000000000000 rw,user_id=0
41 40 0:51 / /tmp/m\\040x/inner rw - tmpfs tmpfs rw
42 22 0:50 /sub/dir /srv/bound rw - fuse.aether aether:01hzsession0000000000000000 rw
";

    #[test]
    fn the_covering_mount_names_the_session_and_the_path_in_it() {
        let s = "01hzsession0000000000000000".to_owned();
        let at = |d: &str| locate(TABLE, Path::new(d));
        assert_eq!(
            at("/tmp/m x/repo/sub"),
            Some(Place {
                session: s.clone(),
                prefix: "repo/sub".into()
            })
        );
        assert_eq!(
            at("/tmp/m x"),
            Some(Place {
                session: s.clone(),
                prefix: String::new()
            })
        );
        assert_eq!(at("/tmp/m x/inner/repo"), None, "another mount inside the aether mount");
        assert_eq!(at("/tmp/m xy"), None);
        assert_eq!(at("/home/me"), None);
        assert_eq!(
            at("/srv/bound/r"),
            Some(Place {
                session: s,
                prefix: "sub/dir/r".into()
            })
        );
    }

    #[test]
    fn only_this_sessions_tokens_name_a_position() {
        assert_eq!(parse_token("aether:abc:42", "abc"), Some(42));
        assert_eq!(parse_token("aether:abc:42", "abd"), None);
        assert_eq!(parse_token("1712345678901234567", "abc"), None);
        assert_eq!(parse_token("", "abc"), None);
        assert_eq!(parse_token("aether:abc:x", "abc"), None);
    }
}
