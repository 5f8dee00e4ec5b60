//! Session lifecycle: create, get, list, labels and tags, archive, delete.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::ids::{SessionId, now_millis};
use crate::meta::{ListQuery, Mutation, NewEvent, SessionRecord, SessionState};
use crate::overlay::{OverlayEntry, Timestamp};
use crate::residual::Residual;

/// Where a new session's files come from (tar streams have their own entry point).
#[derive(Debug, Clone)]
pub enum SessionSource {
    Empty,
    /// Another session's current state, or one of its revisions (checkpoint, commit, ref).
    Session {
        id: SessionId,
        at: Option<String>,
    },
    /// A directory on the server's machine.
    Directory(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub labels: BTreeMap<String, String>,
    pub tags: BTreeSet<String>,
    /// The branch commits go to (default `main`).
    pub branch: Option<String>,
    /// Limits on what the session holds of its own; a fork without one takes its parent's.
    pub quota: Option<crate::quota::Quota>,
    /// Which checkpoints are kept; a fork without a policy takes its parent's.
    pub retention: Option<crate::retention::CheckpointRetention>,
}

/// Changes to a session's record (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct SessionUpdate {
    /// Labels to set; a `None` value removes the key.
    pub labels: BTreeMap<String, Option<String>>,
    /// Replaces the tags.
    pub tags: Option<BTreeSet<String>>,
    /// Replaces the quota.
    pub quota: Option<crate::quota::Quota>,
    /// Replaces the retention policy of checkpoints.
    pub retention: Option<crate::retention::CheckpointRetention>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub labels: BTreeMap<String, String>,
    pub state: Option<SessionState>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub limit: usize,
    pub after: Option<SessionId>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: 100,
            after: None,
        }
    }
}

pub(crate) fn now_ns() -> Timestamp {
    now_millis().saturating_mul(1_000_000)
}

pub(crate) fn ref_prefix(id: &SessionId) -> String {
    format!("refs/aether/sessions/{id}/")
}

fn validate_token(kind: &str, s: &str, max: usize) -> Result<()> {
    let ok = !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{kind} '{}' must be 1 to {max} characters of letters, digits and . _ - / :",
            s.escape_debug()
        )))
    }
}

pub(crate) fn validate_labels(labels: &BTreeMap<String, String>, tags: &BTreeSet<String>) -> Result<()> {
    if labels.len() > 64 || tags.len() > 64 {
        return Err(Error::InvalidArgument("at most 64 labels and 64 tags".into()));
    }
    for (k, v) in labels {
        validate_token("label key", k, 128)?;
        if v.len() > 256 || v.contains('\0') {
            return Err(Error::InvalidArgument(format!(
                "label value for '{k}' must be at most 256 bytes without NUL"
            )));
        }
    }
    for t in tags {
        validate_token("tag", t, 128)?;
    }
    Ok(())
}

pub(crate) fn validate_branch(name: &str) -> Result<()> {
    validate_token("branch", name, 200)?;
    let bad = name.starts_with(['/', '-', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains(':');
    if bad {
        return Err(Error::InvalidArgument(format!("'{name}' is not a valid branch name")));
    }
    Ok(())
}

impl Engine {
    pub(crate) fn new_record(
        &self,
        base_tree: gix::ObjectId,
        head: Option<gix::ObjectId>,
        parent: Option<SessionId>,
        base_mtime: Timestamp,
        opts: &CreateOptions,
    ) -> Result<SessionRecord> {
        validate_labels(&opts.labels, &opts.tags)?;
        if let Some(r) = &opts.retention {
            r.validate()?;
        }
        if let Some(q) = &opts.quota {
            q.validate()?;
        }
        let branch = opts.branch.clone().unwrap_or_else(|| "main".into());
        validate_branch(&branch)?;
        let now = now_millis();
        Ok(SessionRecord {
            id: SessionId::generate(),
            state: SessionState::Active,
            base_tree,
            head,
            branch,
            parent,
            base_mtime,
            created_at: now,
            updated_at: now,
            labels: opts.labels.clone(),
            tags: opts.tags.clone(),
            checkpoint_seq: 0,
            commits: 0,
            origin_tree: None,
            quota: opts.quota.unwrap_or_default(),
            retention: opts.retention.unwrap_or_default(),
        })
    }

    /// Persist a new session and make it live.
    pub(crate) async fn insert(
        &self,
        record: SessionRecord,
        overlay: Vec<(String, OverlayEntry)>,
        mut event: NewEvent,
    ) -> Result<SessionRecord> {
        self.stamp([&mut event]);
        self.check_new_quota(&record).await?;
        let noted =
            (self.inner.objects.gc).note_references(|| crate::gc_barrier::session_references(&record, &overlay));
        self.inner
            .meta
            .sessions
            .insert_session(&record, overlay.clone(), event)
            .await?;
        drop(noted);
        self.register(record.clone(), Residual::default(), overlay);
        Ok(record)
    }

    /// Refuse a new session that starts over its quota (an import larger than it). A fork
    /// starts holding nothing of its own.
    async fn check_new_quota(&self, record: &SessionRecord) -> Result<()> {
        let quota = record.quota;
        if quota.is_unlimited() || record.origin_tree.is_some() {
            return Ok(());
        }
        let inner = self.inner.clone();
        let (tree, id) = (record.base_tree, record.id.clone());
        blocking(move || {
            let t = inner.usage.totals(&inner.objects, tree)?;
            let files = t.files + t.symlinks;
            for (what, limit, used) in [("bytes", quota.bytes, t.bytes), ("files", quota.files, files)] {
                if let Some(limit) = limit.filter(|l| used > *l) {
                    return Err(Error::QuotaExceeded {
                        session: id.to_string(),
                        what,
                        limit,
                        used,
                    });
                }
            }
            Ok(())
        })
        .await
    }

    /// Persist a new session whose overlay is the frozen residual `frozen` (stored already,
    /// shared with where it comes from), and make it live: a fork writes no row per entry.
    pub(crate) async fn insert_sharing(
        &self,
        record: SessionRecord,
        frozen: Residual,
        mut event: NewEvent,
    ) -> Result<SessionRecord> {
        self.stamp([&mut event]);
        let noted = (self.inner.objects.gc).note_references(|| crate::gc_barrier::session_references(&record, &[]));
        self.inner
            .meta
            .sessions
            .insert_session_sharing(&record, frozen.root(), Vec::new(), event)
            .await?;
        drop(noted);
        self.register(record.clone(), frozen, []);
        Ok(record)
    }

    pub async fn create_session(&self, source: SessionSource, opts: CreateOptions) -> Result<SessionRecord> {
        match source {
            SessionSource::Empty => {
                let record = self.new_record(self.inner.objects.odb.empty_tree(), None, None, now_ns(), &opts)?;
                let event = NewEvent::new(EventKind::Created, None).with(serde_json::json!({"source": "empty"}));
                self.insert(record, Vec::new(), event).await
            }
            SessionSource::Session { id, at } => self.fork(&id, at.as_deref(), opts).await,
            SessionSource::Directory(dir) => self.import_directory(dir, opts).await,
        }
    }

    pub async fn get_session(&self, id: &SessionId) -> Result<SessionRecord> {
        let h = self.handle(id).await?;
        let live = h.live.read();
        if live.deleted {
            return Err(Error::not_found(format!("session {id}")));
        }
        Ok(live.record.clone())
    }

    pub async fn list_sessions(&self, filter: &ListFilter, page: &Page) -> Result<Vec<SessionRecord>> {
        let query = ListQuery {
            labels: filter.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            state: filter.state,
            after: page.after.clone(),
            limit: page.limit.clamp(1, 1000),
        };
        self.inner.meta.sessions.list_sessions(&query).await
    }

    /// Set labels (a `None` value removes the key) and replace tags when given.
    pub async fn update_session(&self, id: &SessionId, update: SessionUpdate) -> Result<SessionRecord> {
        let SessionUpdate {
            labels,
            tags,
            quota,
            retention,
        } = update;
        if let Some(r) = &retention {
            r.validate()?;
        }
        if let Some(q) = &quota {
            q.validate()?;
        }
        self.mutate(id, true, move |_view, rec| {
            let mut rec = rec.clone();
            if let Some(q) = quota {
                rec.quota = q;
            }
            if let Some(r) = retention {
                rec.retention = r;
            }
            for (k, v) in labels {
                match v {
                    Some(v) => rec.labels.insert(k, v),
                    None => rec.labels.remove(&k),
                };
            }
            if let Some(tags) = tags {
                rec.tags = tags;
            }
            validate_labels(&rec.labels, &rec.tags)?;
            rec.updated_at = now_millis();
            let event = NewEvent::new(EventKind::Updated, None)
                .with(serde_json::json!({"labels": rec.labels, "tags": rec.tags, "quota": rec.quota, "retention": rec.retention}));
            Ok((
                Mutation {
                    record: Some(rec.clone()),
                    events: vec![event],
                    ..Default::default()
                },
                rec,
            ))
        })
        .await
    }

    /// Make a session read-only for good. Archiving twice is fine.
    pub async fn archive_session(&self, id: &SessionId) -> Result<SessionRecord> {
        self.mutate(id, true, move |_view, rec| {
            let mut rec = rec.clone();
            rec.state = SessionState::Archived;
            rec.updated_at = now_millis();
            let m = Mutation {
                record: Some(rec.clone()),
                events: vec![NewEvent::new(EventKind::Archived, None)],
                ..Default::default()
            };
            Ok((m, rec))
        })
        .await
    }

    /// Delete a session: its metadata, overlay and refs. Objects stay until garbage collection,
    /// so forks and fetched clones are unaffected.
    pub async fn delete_session(&self, id: &SessionId) -> Result<()> {
        let h = self.handle(id).await?;
        let _guard = h.write.lock().await;
        if h.live.read().deleted {
            return Err(Error::not_found(format!("session {id}")));
        }
        self.inner.meta.sessions.delete_session(id).await?;
        self.forget(id);
        let objects = self.inner.objects.clone();
        let prefix = ref_prefix(id);
        crate::blocking::blocking(move || objects.odb.delete_refs(&prefix)).await
    }

    /// Record an event that changes nothing else (something the service noticed about the
    /// session), with this handle's origin; watchers are woken.
    pub async fn record_event(&self, id: &SessionId, kind: EventKind, detail: serde_json::Value) -> Result<()> {
        let mut m = Mutation {
            events: vec![NewEvent::new(kind, None).with(detail)],
            ..Default::default()
        };
        self.stamp(&mut m.events);
        self.inner.meta.sessions.apply(id, m).await?;
        self.inner.changes.notify(id);
        Ok(())
    }

    pub async fn events(&self, id: &SessionId, after_seq: i64, limit: usize) -> Result<Vec<crate::meta::Event>> {
        // A session being imported has events (its progress) before it exists.
        if !self.inner.imports.contains(id) {
            self.handle(id).await?;
        }
        self.inner
            .meta
            .events
            .events(id, after_seq, limit.clamp(1, 10_000))
            .await
    }
}
