//! Events of the session's watch stream as the mount sees them, and which of them this mount
//! caused itself. Every change the mount sends comes back on the stream; invalidating on those
//! would throw away the kernel's caches of the very files just written. The mount names itself
//! in every request ([`MountId`], sent as `aether-mount` metadata) and the server records that
//! id as the origin of the change, so the mount knows its own events by origin: no guessing
//! from kinds, paths and timing.

use aether_proto::v1 as pb;
pub use pb::EventKind;

/// The name this mount gives itself for the life of its process: 16 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountId(String);

impl MountId {
    pub fn generate() -> MountId {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            // No system randomness: the process id and the time still tell mounts apart.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let mixed = blake3::hash(format!("{}:{nanos}", std::process::id()).as_bytes());
            bytes.copy_from_slice(&mixed.as_bytes()[..8]);
        }
        MountId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One event of the watch stream, with the details the mount uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEvent {
    /// Its number in the session's event log (0: unknown); a listing showing a version at or
    /// above it shows the change.
    pub seq: i64,
    pub kind: EventKind,
    pub path: Option<String>,
    /// A rename's destination.
    pub to: Option<String>,
    /// The content id a write produced.
    pub oid: Option<String>,
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub target: Option<String>,
    /// The mount that made the change, if a mount did.
    pub mount: Option<String>,
}

impl RemoteEvent {
    /// `detail` is the kind-specific JSON document.
    pub fn new(kind: EventKind, path: Option<&str>, detail: &serde_json::Value) -> RemoteEvent {
        let text = |k: &str| detail.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        RemoteEvent {
            seq: 0,
            kind,
            path: path.map(str::to_owned),
            to: text("to"),
            oid: text("oid"),
            size: detail.get("size").and_then(|v| v.as_u64()),
            mode: detail
                .get("mode")
                .and_then(|v| v.as_u64())
                .and_then(|m| u32::try_from(m).ok()),
            target: text("target"),
            mount: None,
        }
    }

    /// From the stream's message. A kind this mount does not know (a newer server) is
    /// `Unspecified`, which invalidates what its path touches.
    pub fn from_message(e: &pb::Event) -> RemoteEvent {
        let detail = serde_json::from_str(&e.detail_json).unwrap_or(serde_json::Value::Null);
        let kind = EventKind::try_from(e.kind).unwrap_or(EventKind::Unspecified);
        RemoteEvent {
            seq: e.seq,
            mount: e.origin.as_ref().and_then(|o| o.mount.clone()),
            ..RemoteEvent::new(kind, e.path.as_deref(), &detail)
        }
    }

    /// The same event, as made by mount `id`.
    pub fn by_mount(self, id: &MountId) -> RemoteEvent {
        RemoteEvent {
            mount: Some(id.0.clone()),
            ..self
        }
    }

    /// Whether mount `id` made this change.
    pub fn made_by(&self, id: &MountId) -> bool {
        self.mount.as_deref() == Some(id.as_str())
    }

    /// Whether the event may change any entry (a restore without a path, or a kind this
    /// mount does not know without one). Events without a path of other kinds (checkpoint,
    /// commit, fork, labels) change nothing visible.
    pub fn resets_everything(&self) -> bool {
        self.path.is_none() && matches!(self.kind, EventKind::Restore | EventKind::Unspecified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, path: Option<&str>, detail: &str) -> RemoteEvent {
        let e = pb::Event {
            kind: kind as i32,
            path: path.map(str::to_owned),
            detail_json: detail.to_owned(),
            ..Default::default()
        };
        RemoteEvent::from_message(&e)
    }

    #[test]
    fn events_parse_their_details() {
        let e = event(EventKind::Write, Some("f"), r#"{"size": 3, "oid": "abcd"}"#);
        assert_eq!((e.oid.as_deref(), e.size), (Some("abcd"), Some(3)));
        let r = event(EventKind::Rename, Some("a"), r#"{"to": "b"}"#);
        assert_eq!(r.to.as_deref(), Some("b"));
        let c = event(EventKind::Chmod, Some("a"), r#"{"mode": 493}"#);
        assert_eq!(c.mode, Some(0o755));
        assert!(event(EventKind::Restore, None, "{}").resets_everything());
        assert!(!event(EventKind::Checkpoint, None, "garbage").resets_everything());
        let unknown = pb::Event {
            kind: 999,
            ..Default::default()
        };
        assert!(RemoteEvent::from_message(&unknown).resets_everything());
    }

    #[test]
    fn a_mount_knows_its_own_events_by_origin() {
        let (me, other) = (MountId::generate(), MountId::generate());
        assert_ne!(me, other);
        assert_eq!(me.as_str().len(), 16);
        let mine = pb::Event {
            kind: EventKind::Write as i32,
            path: Some("f".into()),
            origin: Some(pb::Origin {
                surface: pb::Surface::Mount as i32,
                principal: "admin".into(),
                mount: Some(me.as_str().to_owned()),
            }),
            ..Default::default()
        };
        let e = RemoteEvent::from_message(&mine);
        assert!(e.made_by(&me));
        assert!(!e.made_by(&other));
        let rest = pb::Event {
            origin: Some(pb::Origin {
                surface: pb::Surface::Rest as i32,
                principal: "admin".into(),
                mount: None,
            }),
            ..mine
        };
        assert!(!RemoteEvent::from_message(&rest).made_by(&me));
    }
}
