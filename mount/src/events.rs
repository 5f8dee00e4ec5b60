//! Events of the session's watch stream as the mount sees them, and which of them this mount
//! caused itself. Every change the mount sends comes back on the stream; invalidating on those
//! would throw away the kernel's caches of the very files just written. The writeback worker
//! records each change before it sends it (`OwnChanges::record`), and the event it produces is
//! consumed instead of invalidating. A record that never gets its event (the server refused the
//! change) expires, so it can hide at most one foreign change of the same kind to the same path
//! within [`OWN_WINDOW`] — which the mount's own change, sent in the same window, overrides anyway.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::backend::RemoteOp;

/// How long a recorded change waits for its event.
pub const OWN_WINDOW: Duration = Duration::from_secs(30);

/// One event of the watch stream, with the details the mount uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteEvent {
    /// "write", "delete", "mkdir", "symlink", "chmod", "rename", "restore", ...
    pub kind: String,
    pub path: Option<String>,
    /// A rename's destination.
    pub to: Option<String>,
    /// The content id a write produced.
    pub oid: Option<String>,
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub target: Option<String>,
}

impl RemoteEvent {
    /// From the stream's fields; `detail_json` is the kind-specific JSON document.
    pub fn parse(kind: &str, path: Option<&str>, detail_json: &str) -> RemoteEvent {
        let detail: serde_json::Value = serde_json::from_str(detail_json).unwrap_or(serde_json::Value::Null);
        let text = |k: &str| detail.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        RemoteEvent {
            kind: kind.to_owned(),
            path: path.map(str::to_owned),
            to: text("to"),
            oid: text("oid"),
            size: detail.get("size").and_then(|v| v.as_u64()),
            mode: detail
                .get("mode")
                .and_then(|v| v.as_u64())
                .and_then(|m| u32::try_from(m).ok()),
            target: text("target"),
        }
    }

    /// Whether the event changes which entries exist or what they hold. Events without a path
    /// that are not listed here (checkpoint, commit, fork, labels) change nothing visible.
    pub fn resets_everything(&self) -> bool {
        self.path.is_none() && self.kind == "restore"
    }
}

/// The event kind (and path) the server records for a change the mount sends.
pub fn expected_event(op: &RemoteOp) -> (&'static str, &str) {
    match op {
        RemoteOp::Mkdir { path } => ("mkdir", path),
        RemoteOp::Symlink { path, .. } => ("symlink", path),
        RemoteOp::Unlink { path } | RemoteOp::Rmdir { path } => ("delete", path),
        RemoteOp::Rename { from, .. } => ("rename", from),
        RemoteOp::Chmod { path, .. } => ("chmod", path),
    }
}

#[derive(Default)]
struct Recent {
    by_change: HashMap<(&'static str, String), VecDeque<Instant>>,
    recorded: u64,
}

/// The changes this mount sent recently and whose events have not come back yet.
#[derive(Default)]
pub struct OwnChanges {
    recent: Mutex<Recent>,
}

impl OwnChanges {
    /// Called just before a change is sent, so its event cannot arrive first.
    pub fn record(&self, kind: &'static str, path: &str) {
        let now = Instant::now();
        let mut r = self.recent.lock();
        r.recorded += 1;
        if r.recorded.is_multiple_of(4096) {
            r.by_change.retain(|_, times| {
                times.retain(|t| now.duration_since(*t) < OWN_WINDOW);
                !times.is_empty()
            });
        }
        r.by_change.entry((kind, path.to_owned())).or_default().push_back(now);
    }

    /// Whether `kind` at `path` is a change this mount made (consuming the record).
    pub fn consume(&self, kind: &str, path: &str) -> bool {
        let now = Instant::now();
        let mut r = self.recent.lock();
        let key = match kind {
            "write" => "write",
            "mkdir" => "mkdir",
            "symlink" => "symlink",
            "delete" => "delete",
            "rename" => "rename",
            "chmod" => "chmod",
            _ => return false,
        };
        let k = (key, path.to_owned());
        let Some(times) = r.by_change.get_mut(&k) else {
            return false;
        };
        while times.front().is_some_and(|t| now.duration_since(*t) >= OWN_WINDOW) {
            times.pop_front();
        }
        let mine = times.pop_front().is_some();
        if times.is_empty() {
            r.by_change.remove(&k);
        }
        mine
    }

    /// Records still waiting for their event.
    pub fn pending(&self) -> usize {
        self.recent.lock().by_change.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_changes_are_consumed_once_and_others_are_not_mine() {
        let own = OwnChanges::default();
        own.record("write", "a/b");
        own.record("write", "a/b");
        own.record("rename", "x");
        assert!(!own.consume("write", "a/c"));
        assert!(!own.consume("delete", "a/b"));
        assert!(own.consume("write", "a/b"));
        assert!(own.consume("write", "a/b"));
        assert!(
            !own.consume("write", "a/b"),
            "two writes sent, a third event is someone else's"
        );
        assert!(own.consume("rename", "x"));
        assert!(!own.consume("restore", "x"));
        assert_eq!(own.pending(), 0);
    }

    #[test]
    fn events_parse_their_details() {
        let e = RemoteEvent::parse("write", Some("f"), r#"{"size": 3, "oid": "abcd"}"#);
        assert_eq!((e.oid.as_deref(), e.size), (Some("abcd"), Some(3)));
        let r = RemoteEvent::parse("rename", Some("a"), r#"{"to": "b"}"#);
        assert_eq!(r.to.as_deref(), Some("b"));
        let c = RemoteEvent::parse("chmod", Some("a"), r#"{"mode": 493}"#);
        assert_eq!(c.mode, Some(0o755));
        assert!(RemoteEvent::parse("restore", None, "{}").resets_everything());
        assert!(!RemoteEvent::parse("checkpoint", None, "garbage").resets_everything());
    }
}
