//! What a session's event log records: a closed set of kinds, the path a change touched, its
//! kind-specific details and where it came from ([`Origin`]: the surface, who, and which mount).
//! A client recognises its own changes by origin, never by matching kinds and paths in time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Every kind of event. The details each carries are documented on the variant; they are a
/// JSON object in [`crate::Event::detail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The session came to be. `{"source": "empty" | "tar" | "git" | "session", ...}`.
    Created,
    /// A fork of this session was made. `{"child": id}`.
    Forked,
    /// Labels or tags changed. `{"labels": {...}, "tags": [...]}`.
    Updated,
    Archived,
    /// A file's content was written: `{"size": n, "oid": hex}` for its new size and content
    /// id, with `"offset": n` when bytes were placed into the existing content and
    /// `"mtime_ns": n` when the writer gave the file's modification time.
    Write,
    /// A file's size was set. `{"size": n, "oid": hex}`.
    Truncate,
    /// `{"recursive": bool}`.
    Delete,
    Mkdir,
    /// `{"target": text}`.
    Symlink,
    /// `{"mode": n}`.
    Chmod,
    /// The path is the source. `{"to": path}`.
    Rename,
    /// A checkpoint was taken. `{"number": n, "commit": hex, ...}`.
    Checkpoint,
    /// A commit was made on the branch. `{"commit": hex, "branch": name, ...}`.
    Commit,
    /// The whole session was set back to a revision (everything may have changed).
    Restore,
    /// The server repaired stored state it found damaged. `{"repairs": [...]}`.
    Repair,
    /// A git import is under way. `{"phase": ..., ...}`.
    ImportProgress,
    /// A read or freeze of the session went on without the changes some mounts had not handed
    /// over in time. `{"mounts": [id, ...], "for": what, "waited_ms": n}`.
    HandoffIncomplete,
    /// The owner or group changed. `{"uid": n | null, "gid": n | null}`: the new values, null
    /// for a half still never set.
    Chown,
    /// A special file was made. `{"kind": "fifo" | "socket" | "char_device" |
    /// "block_device", "mode": n, "rdev": n}`.
    Mknod,
    /// The path is the new name of an existing entry (a hard link). `{"from": path, "link": n}`.
    Link,
    /// The modification time was set (utimens, `touch -d`, `tar -x`, `cp -p`):
    /// `{"mtime_ns": n}`, nanoseconds since the Unix epoch.
    SetTimes,
}

impl EventKind {
    pub const ALL: [EventKind; 21] = [
        EventKind::Created,
        EventKind::Forked,
        EventKind::Updated,
        EventKind::Archived,
        EventKind::Write,
        EventKind::Truncate,
        EventKind::Delete,
        EventKind::Mkdir,
        EventKind::Symlink,
        EventKind::Chmod,
        EventKind::Rename,
        EventKind::Checkpoint,
        EventKind::Commit,
        EventKind::Restore,
        EventKind::Repair,
        EventKind::ImportProgress,
        EventKind::HandoffIncomplete,
        EventKind::Chown,
        EventKind::Mknod,
        EventKind::Link,
        EventKind::SetTimes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Forked => "forked",
            EventKind::Updated => "updated",
            EventKind::Archived => "archived",
            EventKind::Write => "write",
            EventKind::Truncate => "truncate",
            EventKind::Delete => "delete",
            EventKind::Mkdir => "mkdir",
            EventKind::Symlink => "symlink",
            EventKind::Chmod => "chmod",
            EventKind::Rename => "rename",
            EventKind::Checkpoint => "checkpoint",
            EventKind::Commit => "commit",
            EventKind::Restore => "restore",
            EventKind::Repair => "repair",
            EventKind::ImportProgress => "import_progress",
            EventKind::HandoffIncomplete => "handoff_incomplete",
            EventKind::Chown => "chown",
            EventKind::Mknod => "mknod",
            EventKind::Link => "link",
            EventKind::SetTimes => "set_times",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of [`EventKind`]'s names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind '{0}'")]
pub struct UnknownName(pub String);

impl FromStr for EventKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// The way a change reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// The server itself (start-up repair), not a request.
    Server,
    /// The REST API (`/v1/...`).
    Rest,
    /// The gRPC API, from a client that is not a mount (the CLI, programs).
    Grpc,
    /// A FUSE mount (`aether mount`): gRPC calls naming their mount.
    Mount,
    /// Git smart HTTP.
    Git,
}

impl Surface {
    pub const ALL: [Surface; 5] = [
        Surface::Server,
        Surface::Rest,
        Surface::Grpc,
        Surface::Mount,
        Surface::Git,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Server => "server",
            Surface::Rest => "rest",
            Surface::Grpc => "grpc",
            Surface::Mount => "mount",
            Surface::Git => "git",
        }
    }
}

impl FromStr for Surface {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Surface::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// Where a change came from. The principal is `"admin"`, `"token:<id>"` for a scoped token, or
/// `"server"` for the server's own changes; `mount` is the id a mount gave itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub surface: Surface,
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mount: Option<String>,
}

impl Origin {
    /// The server's own changes.
    pub fn server() -> Origin {
        Origin {
            surface: Surface::Server,
            principal: "server".to_owned(),
            mount: None,
        }
    }
}

/// The longest mount id accepted (it is a random name a mount chooses, see [`check_mount_id`]).
pub const MAX_MOUNT_ID: usize = 64;

/// A mount id is 1 to 64 ASCII letters, digits, `-` or `_`: it travels in request metadata and
/// in every event the mount causes.
pub fn check_mount_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_MOUNT_ID {
        return Err(format!("a mount id has 1 to {MAX_MOUNT_ID} characters"));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("a mount id holds only ASCII letters, digits, '-' and '_'".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
        }
        for s in Surface::ALL {
            assert_eq!(s.as_str().parse::<Surface>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        assert!("Write".parse::<EventKind>().is_err());
        assert!("".parse::<Surface>().is_err());
    }

    #[test]
    fn mount_ids_are_short_plain_names() {
        assert!(check_mount_id("01hz-mount_7").is_ok());
        for bad in ["", "a b", "x/y", "é", &"a".repeat(65)] {
            assert!(check_mount_id(bad).is_err(), "{bad:?}");
        }
    }
}
