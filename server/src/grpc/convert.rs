//! Core types to `aether.v1` messages, here and only here.

use aether_core::{EventKind, Surface};
use aether_proto::v1 as pb;

pub fn session(r: aether_core::SessionRecord) -> pb::Session {
    pb::Session {
        id: r.id.to_string(),
        state: r.state.as_str().to_owned(),
        base_tree: r.base_tree.to_hex().to_string(),
        head: r.head.map(|h| h.to_hex().to_string()),
        branch: r.branch,
        parent: r.parent.map(|p| p.to_string()),
        labels: r.labels.into_iter().collect(),
        tags: r.tags.into_iter().collect(),
        checkpoints: r.checkpoint_seq,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

pub fn stat(s: aether_core::Stat) -> pb::Stat {
    pb::Stat {
        path: s.path,
        kind: crate::dto::kind_name(s.kind).to_owned(),
        mode: s.mode,
        size: s.size,
        mtime_ns: s.mtime_ns,
        oid: s.oid,
        chunked: s.chunked,
        extents: s
            .extents
            .unwrap_or_default()
            .into_iter()
            .map(|e| pb::Extent {
                offset: e.offset,
                length: e.length,
                blake3: e.blake3,
            })
            .collect(),
        symlink_target: s.symlink_target,
        uid: s.uid,
        gid: s.gid,
        rdev: s.rdev,
        nlink: s.nlink,
        link: s.link,
    }
}

pub fn checkpoint(c: aether_core::CheckpointRecord) -> pb::Checkpoint {
    pb::Checkpoint {
        number: c.number,
        commit: c.commit.to_hex().to_string(),
        tree: c.tree.to_hex().to_string(),
        message: c.message,
        created_at: c.created_at,
        r#ref: None,
    }
}

pub fn checkpoint_outcome(c: aether_core::CheckpointOutcome) -> pb::Checkpoint {
    pb::Checkpoint {
        r#ref: Some(c.ref_name),
        ..checkpoint(c.checkpoint)
    }
}

fn signature(s: aether_core::Signature) -> pb::Signature {
    pb::Signature {
        name: s.name,
        email: s.email,
        time: s.time,
    }
}

pub fn commit(c: aether_core::CommitInfo) -> pb::Commit {
    pb::Commit {
        id: c.id.to_hex().to_string(),
        tree: c.tree.to_hex().to_string(),
        parents: c.parents.iter().map(|p| p.to_hex().to_string()).collect(),
        author: Some(signature(c.author)),
        committer: Some(signature(c.committer)),
        message: c.message,
        changes: Vec::new(),
        changes_next: None,
    }
}

pub fn change(c: aether_core::diff::Change) -> pb::Change {
    let change = match c.change {
        aether_core::diff::ChangeKind::Added => "added",
        aether_core::diff::ChangeKind::Deleted => "deleted",
        aether_core::diff::ChangeKind::Modified => "modified",
    };
    pb::Change {
        path: c.path,
        change: change.to_owned(),
    }
}

pub fn token(t: aether_core::TokenRecord) -> pb::Token {
    pb::Token {
        id: t.id,
        sessions: t.sessions.iter().map(|s| s.to_string()).collect(),
        access: t.access.as_str().to_owned(),
        description: t.description,
        created_at: t.created_at,
        token: None,
    }
}

pub fn event(e: aether_core::Event) -> pb::Event {
    pb::Event {
        seq: e.seq,
        session: e.session.to_string(),
        at: e.at,
        kind: event_kind(e.kind) as i32,
        path: e.path,
        detail_json: e.detail.to_string(),
        origin: e.origin.map(|o| pb::Origin {
            surface: surface(o.surface) as i32,
            principal: o.principal,
            mount: o.mount,
        }),
    }
}

fn event_kind(k: EventKind) -> pb::EventKind {
    use pb::EventKind as P;
    match k {
        EventKind::Created => P::Created,
        EventKind::Forked => P::Forked,
        EventKind::Updated => P::Updated,
        EventKind::Archived => P::Archived,
        EventKind::Write => P::Write,
        EventKind::Truncate => P::Truncate,
        EventKind::Delete => P::Delete,
        EventKind::Mkdir => P::Mkdir,
        EventKind::Symlink => P::Symlink,
        EventKind::Chmod => P::Chmod,
        EventKind::Rename => P::Rename,
        EventKind::Checkpoint => P::Checkpoint,
        EventKind::Commit => P::Commit,
        EventKind::Restore => P::Restore,
        EventKind::Repair => P::Repair,
        EventKind::ImportProgress => P::ImportProgress,
        EventKind::HandoffIncomplete => P::HandoffIncomplete,
        EventKind::Chown => P::Chown,
        EventKind::Mknod => P::Mknod,
        EventKind::Link => P::Link,
        EventKind::SetTimes => P::SetTimes,
    }
}

fn surface(s: Surface) -> pb::Surface {
    match s {
        Surface::Server => pb::Surface::Server,
        Surface::Rest => pb::Surface::Rest,
        Surface::Grpc => pb::Surface::Grpc,
        Surface::Mount => pb::Surface::Mount,
        Surface::Git => pb::Surface::Git,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each core kind and surface has its own proto value, named alike.
    #[test]
    fn kinds_and_surfaces_map_one_to_one() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            let p = event_kind(k);
            assert!(seen.insert(p as i32), "{k} shares a value");
            assert_eq!(p.as_str_name(), format!("EVENT_KIND_{}", k.as_str().to_uppercase()));
        }
        for s in Surface::ALL {
            assert_eq!(
                surface(s).as_str_name(),
                format!("SURFACE_{}", s.as_str().to_uppercase())
            );
        }
    }
}
