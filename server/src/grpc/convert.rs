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
        quota: Some(quota(r.quota)),
        retention: Some(pb::Retention {
            keep_last: r.retention.keep_last,
            keep_days: r.retention.keep_days,
        }),
    }
}

/// A request's retention policy; `None` when the message has none.
pub fn retention_of(r: Option<pb::Retention>) -> Option<aether_core::retention::CheckpointRetention> {
    r.map(|r| aether_core::retention::CheckpointRetention {
        keep_last: r.keep_last,
        keep_days: r.keep_days,
    })
}

pub fn quota(q: aether_core::quota::Quota) -> pb::Quota {
    pb::Quota {
        bytes: q.bytes,
        files: q.files,
    }
}

/// A request's quota; `None` when the message has none.
pub fn quota_of(q: Option<pb::Quota>) -> Option<aether_core::quota::Quota> {
    q.map(|q| aether_core::quota::Quota {
        bytes: q.bytes,
        files: q.files,
    })
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

fn traffic(c: aether_service::Counts) -> pb::Traffic {
    pb::Traffic {
        operations: c.operations,
        errors: c.errors,
        bytes_read: c.bytes_read,
        bytes_written: c.bytes_written,
    }
}

pub fn analytics(r: aether_service::AnalyticsReport) -> pb::Analytics {
    pb::Analytics {
        bucket: r.bucket.as_str().to_owned(),
        bucket_ms: r.bucket.millis(),
        session: r.session.map(|s| s.to_string()),
        kept_since: r.kept_since_ms,
        buckets: r
            .buckets
            .into_iter()
            .map(|b| pb::TrafficBucket {
                start: b.start_ms,
                traffic: Some(traffic(b.counts)),
            })
            .collect(),
        totals: Some(traffic(r.totals)),
        latency: r
            .latency
            .into_iter()
            .map(|l| pb::OperationLatency {
                operation: l.operation.to_owned(),
                count: l.count,
                errors: l.errors,
                p50_us: l.p50_us,
                p90_us: l.p90_us,
                p99_us: l.p99_us,
            })
            .collect(),
        top_sessions: r
            .top_sessions
            .into_iter()
            .map(|(id, c)| pb::SessionTraffic {
                session: id.to_string(),
                traffic: Some(traffic(c)),
            })
            .collect(),
        top_paths: r
            .top_paths
            .into_iter()
            .map(|p| pb::PathTraffic {
                session: p.session.to_string(),
                path: p.path,
                operations: p.operations,
            })
            .collect(),
        tracked_paths: r.tracked_paths as u64,
        max_paths: r.max_paths as u64,
        max_sessions: r.max_sessions as u64,
    }
}

pub fn health(h: aether_service::SessionHealth) -> pb::SessionHealth {
    use aether_service::ImportHealth;
    let failed = |at: i64, operation: &str, code: aether_service::Code, message: String| pb::FailedOperation {
        at,
        operation: operation.to_owned(),
        code: code.as_str().to_owned(),
        message,
    };
    pb::SessionHealth {
        session: h.session.to_string(),
        status: h.status.as_str().to_owned(),
        reasons: h.reasons,
        updated_at: h.updated_at_ms,
        mounts: h
            .mounts
            .into_iter()
            .map(|m| pb::MountHealth {
                mount: m.mount,
                writer: m.writer,
                pending_ms: m.pending_for.map(|d| d.as_millis() as u64),
            })
            .collect(),
        import: h.import.map(|i| match i {
            ImportHealth::Running { progress } => pb::ImportHealth {
                state: "running".into(),
                progress_json: progress.map(|p| p.to_string()),
                error: None,
            },
            ImportHealth::Failed { at_ms, code, message } => pb::ImportHealth {
                state: "failed".into(),
                progress_json: None,
                error: Some(failed(at_ms, "import", code, message)),
            },
        }),
        last_error: h.last_error.map(|e| failed(e.at_ms, e.operation, e.code, e.message)),
        quota: h.quota.map(|q| pb::QuotaHeadroom {
            limit_bytes: q.limit_bytes,
            limit_files: q.limit_files,
            used_bytes: q.used_bytes,
            used_files: q.used_files,
            bytes_left: q.bytes_left,
            files_left: q.files_left,
        }),
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
