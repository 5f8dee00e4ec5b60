//! The metadata store: sessions, labels, tags, overlay entries, the checkpoint index, the POSIX
//! details of every revision the engine wrote, and events.
//! [`MetaStore`] is the seam: SQLite now ([`sqlite::SqliteMetaStore`]), PostgreSQL later with the
//! same schema. Every method is one transaction: a mutation is all there or not at all.

pub mod checked;
pub mod sqlite;

use std::collections::{BTreeMap, BTreeSet};

use gix::ObjectId;
use serde::Serialize;

use crate::error::Result;
use crate::ids::SessionId;
use crate::overlay::{OverlayEntry, Timestamp};
use crate::tokens::TokenRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Active,
    Archived,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(SessionState::Active),
            "archived" => Some(SessionState::Archived),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    pub id: SessionId,
    pub state: SessionState,
    /// The git tree the overlay applies to.
    #[serde(serialize_with = "crate::serde_oid")]
    pub base_tree: ObjectId,
    /// The newest commit in this session's lineage (checkpoint, commit, or the fork point).
    #[serde(serialize_with = "crate::serde_opt_oid")]
    pub head: Option<ObjectId>,
    pub branch: String,
    pub parent: Option<SessionId>,
    /// Modification time shown for files that come unchanged from the base.
    pub base_mtime: Timestamp,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub labels: BTreeMap<String, String>,
    pub tags: BTreeSet<String>,
    /// The number of the last checkpoint taken.
    pub checkpoint_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointRecord {
    pub number: u64,
    #[serde(serialize_with = "crate::serde_oid")]
    pub commit: ObjectId,
    #[serde(serialize_with = "crate::serde_oid")]
    pub tree: ObjectId,
    pub message: String,
    pub created_at: i64,
}

/// The POSIX details (empty directories, modes, mtimes) that git cannot hold, of the state a
/// checkpoint or commit was made from, so a read, fork or restore at that revision shows exactly
/// that state. Keyed by commit id: the object database is shared, and a fork reading its
/// parent's revision finds the same record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionResidual {
    pub commit: ObjectId,
    pub residual: Vec<(String, OverlayEntry)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub seq: i64,
    pub session: SessionId,
    pub at: i64,
    pub kind: String,
    pub path: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: &'static str,
    pub path: Option<String>,
    pub detail: serde_json::Value,
}

impl NewEvent {
    pub fn new(kind: &'static str, path: Option<&str>) -> Self {
        NewEvent {
            kind,
            path: path.map(str::to_owned),
            detail: serde_json::Value::Null,
        }
    }

    pub fn with(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// One atomic change to a session's metadata.
#[derive(Debug, Clone, Default)]
pub struct Mutation {
    /// Drop the whole overlay first.
    pub clear_overlay: bool,
    /// Drop overlay entries strictly below these paths.
    pub remove_below: Vec<String>,
    /// Drop overlay entries at exactly these paths.
    pub remove: Vec<String>,
    pub upsert: Vec<(String, OverlayEntry)>,
    /// Replace the session's record (labels and tags included).
    pub record: Option<SessionRecord>,
    pub checkpoint: Option<CheckpointRecord>,
    /// Record the residual of a commit just written. The first record of a commit id is kept
    /// and never replaced, so what a revision shows never changes (and can be cached).
    pub revision: Option<RevisionResidual>,
    pub events: Vec<NewEvent>,
    /// Set the session's `updated_at` to this (milliseconds since the epoch) without rewriting
    /// the rest of its record: how a write, which changes only overlay rows, marks the session
    /// changed. Applied after `record`.
    pub touch: Option<i64>,
}

impl Mutation {
    /// Whether this changes the session's state (files, record, checkpoints, revisions), not
    /// only adds events.
    pub fn changes_session(&self) -> bool {
        self.clear_overlay
            || !self.remove_below.is_empty()
            || !self.remove.is_empty()
            || !self.upsert.is_empty()
            || self.record.is_some()
            || self.checkpoint.is_some()
            || self.revision.is_some()
    }
}

/// One stored overlay row, as [`MetaStore::suspect_overlay_rows`] finds it: `entry` is `None`
/// when the stored entry does not decode.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayRow {
    pub session: SessionId,
    pub path: String,
    pub entry: Option<OverlayEntry>,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Every (key, value) must match.
    pub labels: Vec<(String, String)>,
    pub state: Option<SessionState>,
    /// Return sessions with ids greater than this (ids are time-ordered).
    pub after: Option<SessionId>,
    pub limit: usize,
}

#[async_trait::async_trait]
pub trait MetaStore: Send + Sync {
    async fn insert_session(
        &self,
        record: &SessionRecord,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()>;
    async fn get_session(&self, id: &SessionId) -> Result<Option<SessionRecord>>;
    async fn list_sessions(&self, query: &ListQuery) -> Result<Vec<SessionRecord>>;
    async fn load_overlay(&self, id: &SessionId) -> Result<Vec<(String, OverlayEntry)>>;
    /// Every overlay row, of any session, whose key is the root key or is not a normalized
    /// path (an empty, `.` or `..` component, a leading or trailing `/`, a NUL byte): what an
    /// older version may have stored and `repair` must look at. It may return sound rows too
    /// (the root's attributes); it must not leave out a damaged one.
    async fn suspect_overlay_rows(&self) -> Result<Vec<OverlayRow>>;
    async fn apply(&self, id: &SessionId, mutation: Mutation) -> Result<()>;
    /// Several mutations in order, in one transaction: all of them or none.
    async fn apply_all(&self, id: &SessionId, mutations: Vec<Mutation>) -> Result<()>;
    async fn delete_session(&self, id: &SessionId) -> Result<()>;
    async fn list_checkpoints(&self, id: &SessionId) -> Result<Vec<CheckpointRecord>>;
    /// The residual recorded for `commit` (by a checkpoint or commit of any session), or
    /// `None` for a commit the engine did not write (imported, pushed). One record is read.
    async fn revision_residual(&self, commit: &ObjectId) -> Result<Option<Vec<(String, OverlayEntry)>>>;
    async fn events(&self, id: &SessionId, after_seq: i64, limit: usize) -> Result<Vec<Event>>;
    /// The sequence number of `id`'s newest event (0 when it has none): a cursor for "from now".
    async fn last_event_seq(&self, id: &SessionId) -> Result<i64>;
    /// Drop every event of `id` (the progress of an import that failed before its session existed).
    async fn delete_events(&self, id: &SessionId) -> Result<()>;
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>>;
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    async fn delete_token(&self, id: &str) -> Result<()>;
}
