//! The metadata store: sessions, labels, tags, overlay entries, the checkpoint index, the POSIX
//! details of every revision the engine wrote, events and access tokens.
//!
//! This module owns the records and the seams ([`store`]: one trait per concern, gathered in
//! [`MetaStores`]); the backends are [`sqlite::SqliteMetaStore`] (the default, `meta.db`) and
//! [`memory::MemoryMetaStore`] (nothing kept; tests and throwaway servers). PostgreSQL is one
//! more file here plus one arm in `stores::open`. Every method is one transaction: a mutation is
//! all there or not at all. Nothing here knows the engine, sessions' files or transports.

pub mod memory;
pub mod sqlite;
mod store;

pub use crate::residual::{NodeId, ResidualNode};
pub use store::{EventStore, MetaStores, OverlayStore, ResidualStore, RevisionStore, SessionStore, TokenStore};

use std::collections::{BTreeMap, BTreeSet};

use gix::ObjectId;
use serde::Serialize;

use crate::event::{EventKind, Origin};
use crate::ids::SessionId;
use crate::overlay::{OverlayEntry, Timestamp};

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
    /// Commits made in the session (not those it was imported or forked with).
    pub commits: u64,
    /// The tree the session started from when it was forked (its parent's state then): what
    /// it shares with its parent, for usage and quotas (see `usage`). `None`: it started from
    /// nothing of another session's (empty, an import, a template), so all it holds is its own.
    #[serde(serialize_with = "crate::serde_opt_oid")]
    pub origin_tree: Option<ObjectId>,
    /// Limits on what the session holds of its own (see `quota`).
    pub quota: crate::quota::Quota,
    /// Which of its checkpoints are kept (unset: the server's policy; see `retention`).
    pub retention: crate::retention::CheckpointRetention,
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
    /// The session's `base_mtime` when the revision was written: the mtime of every entry the
    /// residual does not name (untouched since the session began). One number per revision,
    /// so recording it costs nothing per file. `None` in records stored before it was kept
    /// (schema version 5); those revisions show their commit time, as before.
    pub base_mtime: Option<Timestamp>,
}

/// The residual of a revision by the root of its shared tree (see `residual`): what every
/// checkpoint and commit records since schema version 6, instead of the whole list of
/// [`RevisionResidual`] (which records stored before still hold, and still load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionRoot {
    pub commit: ObjectId,
    /// `None`: the revision has no residual entry.
    pub root: Option<NodeId>,
    /// As [`RevisionResidual::base_mtime`] (always known for these records).
    pub base_mtime: Timestamp,
}

/// What a session's stored overlay holds besides its rows: the root of its frozen residual
/// (shared with the forks, checkpoints and restores that froze or adopted it) and the paths
/// whose entry in that residual is hidden (removed since the freeze). A session's overlay is
/// the frozen residual, without the unset paths, with its rows over it. Sessions stored before
/// schema version 6 have no root and no unset path: their rows are their whole overlay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionResidual {
    pub root: Option<NodeId>,
    pub unset: Vec<String>,
}

/// What a residual collection found and did (see [`ResidualStore::collect_residual_nodes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResidualCollection {
    pub roots: u64,
    pub reachable_nodes: u64,
    pub unreachable_nodes: u64,
    pub unreachable_bytes: u64,
    /// Nodes deleted (0 in a dry run).
    pub deleted_nodes: u64,
}

/// One entry of a session's event log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub seq: i64,
    pub session: SessionId,
    pub at: i64,
    pub kind: EventKind,
    pub path: Option<String>,
    pub detail: serde_json::Value,
    /// `None` for events recorded before origins were (by an older server).
    pub origin: Option<Origin>,
}

/// An event to record with a mutation. Its origin is the server's until the engine handle
/// that applies it stamps its own (see `Engine::acting_for`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub path: Option<String>,
    pub detail: serde_json::Value,
    pub origin: Origin,
}

impl NewEvent {
    pub fn new(kind: EventKind, path: Option<&str>) -> Self {
        NewEvent {
            kind,
            path: path.map(str::to_owned),
            detail: serde_json::Value::Null,
            origin: Origin::server(),
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
    /// Residual nodes to store, before anything else (a node already stored is kept): the
    /// nodes a freeze made, or those of a residual recorded before they were shared.
    pub nodes: Vec<ResidualNode>,
    /// Replace the session's frozen residual by this one (a store keeps its root; the engine
    /// adopts it whole), dropping every overlay row and unset path: what a freeze or a restore
    /// does. Applied right after `nodes`, before `clear_overlay`.
    pub residual: Option<crate::residual::Residual>,
    /// Hide the frozen residual's entries at these paths (the engine names exactly the paths
    /// the rest of the mutation leaves without an entry that the frozen residual has). Applied
    /// after `upsert`; a row stored at the same path, now or later, shows over it.
    pub unset: Vec<String>,
    /// Record the residual of a commit just written by its root (see [`RevisionRoot`]); like
    /// `revision`, the first record of a commit id (in either form) is kept.
    pub revision_root: Option<RevisionRoot>,
    /// Drop the records of these checkpoints (expired; see `expiry`).
    pub drop_checkpoints: Vec<u64>,
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
            || self.residual.is_some()
            || !self.unset.is_empty()
            || self.revision_root.is_some()
            || !self.drop_checkpoints.is_empty()
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            _ => None,
        }
    }
}

/// An access token as stored: only the hash of its secret (see `tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub sessions: BTreeSet<SessionId>,
    pub access: Access,
    pub description: String,
    pub created_at: i64,
    /// Hex blake3 of the secret.
    #[serde(skip)]
    pub hash: String,
}

impl TokenRecord {
    /// Whether this token may read (or, with `write`, change) session `id`.
    pub fn allows(&self, id: &SessionId, write: bool) -> bool {
        self.sessions.contains(id) && (!write || self.access == Access::Write)
    }
}
