//! Session lifecycle: create (empty, from a session, from git), list, show, update, fork,
//! archive, delete, and the feed of a session's events.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::mpsc;

use aether_core::quota::Quota;
use aether_core::retention::CheckpointRetention;
use aether_core::{CreateOptions, Event, ListFilter, SessionRecord, SessionSource, SessionState, SessionUpdate};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::paging::{DEFAULT_SESSIONS, Page, PageRequest};
use crate::principal::{Access, Principal, session_id};

/// Events read from the store per query while a feed catches up.
const EVENT_PAGE: usize = 500;

/// Where a new session's content comes from.
#[derive(Clone, Debug, Default)]
pub enum Source {
    #[default]
    Empty,
    /// Another session's current state, or one of its revisions.
    Session { session: String, at: Option<String> },
    /// A git repository (path, `file://` or `http(s)://` URL) at `rev` (its HEAD when absent).
    Git { url: String, rev: Option<String> },
}

/// Labels, tags, branch and quota of a new session.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    pub labels: BTreeMap<String, String>,
    pub tags: BTreeSet<String>,
    pub branch: Option<String>,
    /// Limits on what the session holds of its own; a fork without one takes its parent's.
    pub quota: Option<Quota>,
    /// Which of its checkpoints are kept; a fork without a policy takes its parent's.
    pub retention: Option<CheckpointRetention>,
}

impl From<SessionOptions> for CreateOptions {
    fn from(o: SessionOptions) -> Self {
        CreateOptions {
            labels: o.labels,
            tags: o.tags,
            branch: o.branch,
            quota: o.quota,
            retention: o.retention,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct CreateSession {
    pub source: Source,
    pub options: SessionOptions,
}

#[derive(Clone, Debug, Default)]
pub struct ListSessions {
    /// Every label a listed session must carry.
    pub labels: BTreeMap<String, String>,
    /// `active` or `archived`; all when `None`.
    pub state: Option<String>,
    pub page: PageRequest,
}

#[derive(Clone, Debug, Default)]
pub struct UpdateSession {
    /// Labels to set; a `None` value removes the label.
    pub labels: BTreeMap<String, Option<String>>,
    /// Replaces the tags when present.
    pub tags: Option<BTreeSet<String>>,
    /// Replaces the quota when present (a limit left out is no limit); admin only.
    pub quota: Option<Quota>,
    /// Replaces the retention policy of checkpoints when present (unset: the server's).
    pub retention: Option<CheckpointRetention>,
}

/// Where a feed of events starts.
#[derive(Clone, Copy, Debug)]
pub enum WatchFrom {
    /// After the event with this sequence number (0: from the first event).
    After(i64),
    /// After the newest event now: only what happens from here on.
    Now,
}

/// A session's events, history first, then live as they happen. The feed ends with an error
/// if reading the store fails, and when the receiver is dropped its task stops.
pub struct EventFeed {
    /// The sequence number the feed starts after.
    pub start: i64,
    pub events: mpsc::Receiver<Result<Event>>,
}

impl Service {
    /// A new session (admin only).
    pub async fn create_session(&self, p: &Principal, req: CreateSession) -> Result<SessionRecord> {
        p.require_admin()?;
        let source = match req.source {
            Source::Empty => SessionSource::Empty,
            Source::Session { session, at } => {
                let id = session_id(&session)?;
                // Before the job: the mounts handing changes over may need jobs themselves.
                self.recall_live(p, &id, at.as_deref(), "fork").await;
                SessionSource::Session { id, at }
            }
            Source::Git { url, rev } => {
                let _job = self.admit_heavy(p, "git import")?;
                let source = aether_gitbridge::import::GitSource { url, rev };
                let cfg = &self.config().git_import;
                // The id the import reserves, to name it if it fails (see `health`).
                let reserved = std::sync::Arc::new(std::sync::OnceLock::new());
                let engine = self.engine_for(p).telling_import_id(reserved.clone());
                let out = aether_gitbridge::import::import_git(&engine, &source, req.options.into(), cfg)
                    .await
                    .map_err(ServiceError::from);
                self.inner.counters.import(&out);
                return self.imported(out, &reserved);
            }
        };
        let _job = self.admit_heavy(p, "create session")?;
        Ok(self.engine_for(p).create_session(source, req.options.into()).await?)
    }

    /// A page of the sessions the caller may see. The cursor follows the store's order, so a
    /// page of a scoped token may hold fewer sessions than the limit and still have a next one.
    pub async fn list_sessions(&self, p: &Principal, req: ListSessions) -> Result<Page<SessionRecord>> {
        let state = match req.state.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                SessionState::parse(s)
                    .ok_or_else(|| ServiceError::bad_request(format!("unknown state '{s}' (active or archived)")))?,
            ),
        };
        let limit = req.page.limit(DEFAULT_SESSIONS)?;
        let after = req
            .page
            .after()
            .map(|a| {
                session_id(a)
                    .map_err(|_| ServiceError::bad_request(format!("'{a}' is not a session id (the `next` of a page)")))
            })
            .transpose()?;
        let filter = ListFilter {
            labels: req.labels,
            state,
        };
        let found = self
            .engine()
            .list_sessions(&filter, &aether_core::Page { limit, after })
            .await?;
        let mut page = Page::of(found, limit, |s| s.id.to_string());
        page.items.retain(|s| p.sees(&s.id));
        Ok(page)
    }

    pub async fn get_session(&self, p: &Principal, id: &str) -> Result<SessionRecord> {
        let id = self.session(p, id, Access::Read)?;
        Ok(self.engine_for(p).get_session(&id).await?)
    }

    pub async fn update_session(&self, p: &Principal, id: &str, req: UpdateSession) -> Result<SessionRecord> {
        let id = self.session(p, id, Access::Write)?;
        if req.quota.is_some() {
            // A token that may write a session must not lift its own limits.
            p.require_admin()?;
        }
        let update = SessionUpdate {
            labels: req.labels,
            tags: req.tags,
            quota: req.quota,
            retention: req.retention,
        };
        Ok(self.engine_for(p).update_session(&id, update).await?)
    }

    /// A new session from `id` at `at` (its current state when `None`); admin only.
    pub async fn fork_session(
        &self,
        p: &Principal,
        id: &str,
        at: Option<String>,
        options: SessionOptions,
    ) -> Result<SessionRecord> {
        p.require_admin()?;
        let id = session_id(id)?;
        self.recall_live(p, &id, at.as_deref(), "fork").await;
        let _job = self.admit("fork")?;
        let source = SessionSource::Session { id, at };
        Ok(self.engine_for(p).create_session(source, options.into()).await?)
    }

    pub async fn archive_session(&self, p: &Principal, id: &str) -> Result<SessionRecord> {
        let id = self.session(p, id, Access::Write)?;
        Ok(self.engine_for(p).archive_session(&id).await?)
    }

    /// Delete a session (admin only).
    pub async fn delete_session(&self, p: &Principal, id: &str) -> Result<()> {
        p.require_admin()?;
        let _job = self.admit("delete session")?;
        Ok(self.engine_for(p).delete_session(&session_id(id)?).await?)
    }

    /// A new session from a tar or tar.gz stream (admin only).
    pub async fn import_tar<R>(&self, p: &Principal, reader: R, options: SessionOptions) -> Result<SessionRecord>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        p.require_admin()?;
        // The body's first bytes are awaited holding nothing; only then is a job taken.
        let reader = crate::admission::read_ahead(reader, crate::admission::BODY_READ_AHEAD).await?;
        let _job = self.admit_heavy(p, "import")?;
        let out = self.engine_for(p).import_tar(reader, options.into()).await;
        self.inner.counters.import(&out);
        Ok(out?)
    }

    /// The events of a session from `from` on. A session that does not exist fails here, not
    /// inside the feed.
    pub async fn watch_events(&self, p: &Principal, id: &str, from: WatchFrom) -> Result<EventFeed> {
        let id = self.session(p, id, Access::Read)?;
        let engine = self.engine().clone();
        // Subscribe before the first read so nothing written in between is missed.
        let mut watch = engine.watch(&id);
        let mut cursor = match from {
            WatchFrom::Now => engine.event_cursor(&id).await?,
            WatchFrom::After(seq) => seq,
        };
        let mut batch = engine.events(&id, cursor, EVENT_PAGE).await?;
        let start = cursor;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let full = batch.len() == EVENT_PAGE;
                for e in batch.drain(..) {
                    cursor = e.seq;
                    if tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
                if !full {
                    tokio::select! {
                        more = watch.changed() => if !more { return },
                        () = tx.closed() => return,
                    }
                }
                match engine.events(&id, cursor, EVENT_PAGE).await {
                    Ok(b) => batch = b,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
            }
        });
        Ok(EventFeed { start, events: rx })
    }
}
