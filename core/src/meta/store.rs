//! The metadata seams, one trait per concern, and [`MetaStores`], the set the engine holds.
//!
//! A backend usually implements every trait on one type, since one change of a session
//! ([`SessionStore::apply`]) writes its record, overlay rows, checkpoint, revision residual and
//! events in one transaction; the factory (`stores::open`) then hands the same instance out
//! once per concern. Tokens share nothing with sessions and may live elsewhere. Every backend
//! passes the conformance suite in `core/tests/engine/stores/`.

use std::sync::Arc;

use gix::ObjectId;

use super::{
    CheckpointRecord, Event, ListQuery, Mutation, NewEvent, NodeId, OverlayRow, ResidualCollection, RevisionResidual,
    RevisionRoot, SessionRecord, SessionResidual, TokenRecord,
};
use crate::error::Result;
use crate::ids::SessionId;
use crate::overlay::OverlayEntry;

/// Session records and every change of a session, each in one transaction.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// A new session with its first overlay rows and its creation event. An id already taken
    /// is a conflict.
    async fn insert_session(
        &self,
        record: &SessionRecord,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()>;
    /// [`SessionStore::insert_session`] for a session whose overlay starts as the frozen
    /// residual `root` (already stored, shared with the session or revision it comes from)
    /// with `overlay` over it: how a fork or `fork --at` shares its parent's residual instead
    /// of copying it. A `root` whose node is not stored (collected meanwhile) is a conflict and
    /// nothing is stored.
    async fn insert_session_sharing(
        &self,
        record: &SessionRecord,
        root: Option<NodeId>,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()>;
    async fn get_session(&self, id: &SessionId) -> Result<Option<SessionRecord>>;
    /// Sessions in id order, after `query.after`, at most `query.limit` (at least one).
    async fn list_sessions(&self, query: &ListQuery) -> Result<Vec<SessionRecord>>;
    /// Apply one change of session `id` (see [`Mutation`] for the order of its parts).
    /// Returns the sequence number of the newest event it recorded (0 when it recorded none).
    async fn apply(&self, id: &SessionId, mutation: Mutation) -> Result<i64>;
    /// Several mutations in order, in one transaction: all of them or none. Returns what
    /// [`SessionStore::apply`] does, for the last event of all.
    async fn apply_all(&self, id: &SessionId, mutations: Vec<Mutation>) -> Result<i64>;
    /// Drop the session with its overlay, labels, tags, checkpoints and events (not the
    /// revision residuals: other sessions may read those revisions). Not found when absent.
    async fn delete_session(&self, id: &SessionId) -> Result<()>;
}

/// The overlay rows of sessions (written through [`SessionStore::apply`]).
#[async_trait::async_trait]
pub trait OverlayStore: Send + Sync {
    /// Every row of `id`, in bytewise path order.
    async fn load_overlay(&self, id: &SessionId) -> Result<Vec<(String, OverlayEntry)>>;
    /// Every overlay row, of any session, whose key is the root key or is not a normalized
    /// path (an empty, `.` or `..` component, a leading or trailing `/`, a NUL byte): what an
    /// older version may have stored and `repair` must look at. It may return sound rows too
    /// (the root's attributes); it must not leave out a damaged one.
    async fn suspect_overlay_rows(&self) -> Result<Vec<OverlayRow>>;
}

/// Checkpoints of sessions and the residuals of revisions the engine wrote.
#[async_trait::async_trait]
pub trait RevisionStore: Send + Sync {
    /// The checkpoints of `id`, by number.
    async fn list_checkpoints(&self, id: &SessionId) -> Result<Vec<CheckpointRecord>>;
    /// The residual (and base mtime) recorded for `commit` (by a checkpoint or commit of any
    /// session), or `None` for a commit the engine did not write (imported, pushed). One
    /// record is read. A record stored by its root ([`RevisionStore::revision_root`]) shows
    /// here with an empty list: read that one first.
    async fn revision_residual(&self, commit: &ObjectId) -> Result<Option<RevisionResidual>>;
    /// Every commit a residual is recorded for, in either form (what a garbage collection
    /// looks at).
    async fn revision_commits(&self) -> Result<Vec<ObjectId>>;
    /// Drop the residuals of `commits` (unreachable ones, found by a garbage collection), in
    /// either form; how many were dropped.
    async fn forget_revisions(&self, commits: Vec<ObjectId>) -> Result<u64>;
    /// The root recorded for `commit`, or `None` when its record (if any) is a whole list
    /// (stored before schema version 6; [`RevisionStore::revision_residual`] has it).
    async fn revision_root(&self, commit: &ObjectId) -> Result<Option<RevisionRoot>>;
}

/// The nodes of the shared residual trees (see `residual`), each stored once by its id, written
/// through [`SessionStore::apply`] (`Mutation::nodes`) in the transaction that first names them.
///
/// Garbage collection: the roots are every session's residual root and every revision's
/// recorded root ([`ResidualStore::residual_roots`]); a node is live when a root reaches it
/// ([`ResidualStore::reachable_residual_nodes`]). [`ResidualStore::collect_residual_nodes`]
/// deletes the others in one transaction, so a concurrent freeze (which writes its nodes with
/// the root naming them) or fork (which checks its root is still stored) cannot lose one.
#[async_trait::async_trait]
pub trait ResidualStore: Send + Sync {
    /// The stored nodes among `ids` (one missing is left out).
    async fn residual_nodes(&self, ids: Vec<NodeId>) -> Result<Vec<(NodeId, Vec<u8>)>>;
    /// Session `id`'s frozen residual root and unset paths (default when it has none).
    async fn session_residual(&self, id: &SessionId) -> Result<SessionResidual>;
    /// Every root a session or a revision record names, each once.
    async fn residual_roots(&self) -> Result<Vec<NodeId>>;
    /// Every stored node a root reaches, with its size in bytes.
    async fn reachable_residual_nodes(&self) -> Result<Vec<(NodeId, u64)>>;
    /// The number of nodes stored and their total size in bytes.
    async fn residual_usage(&self) -> Result<(u64, u64)>;
    /// Find (and unless `dry_run`, delete) every stored node no root reaches, in one
    /// transaction.
    async fn collect_residual_nodes(&self, dry_run: bool) -> Result<ResidualCollection>;
}

/// The event log of each session (appended through [`SessionStore::apply`]).
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Events of `id` with a sequence number above `after_seq`, oldest first, at most `limit`.
    async fn events(&self, id: &SessionId, after_seq: i64, limit: usize) -> Result<Vec<Event>>;
    /// The sequence number of `id`'s newest event (0 when it has none): a cursor for "from now".
    async fn last_event_seq(&self, id: &SessionId) -> Result<i64>;
    /// Drop events recorded before `older_than` (milliseconds since the epoch) and all but
    /// the newest `keep_per_session` of each session, never a session's newest event; how
    /// many were dropped.
    async fn prune_events(&self, older_than: Option<i64>, keep_per_session: Option<u64>) -> Result<u64>;
    /// Drop every event of `id` (the progress of an import that failed before its session existed).
    async fn delete_events(&self, id: &SessionId) -> Result<()>;
}

/// Access tokens (their hashes; see `tokens`).
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// A token id or hash already taken is a conflict.
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// Every token, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Not found when absent.
    async fn delete_token(&self, id: &str) -> Result<()>;
}

/// The metadata stores the engine works with, one per concern.
#[derive(Clone)]
pub struct MetaStores {
    pub sessions: Arc<dyn SessionStore>,
    pub overlays: Arc<dyn OverlayStore>,
    pub revisions: Arc<dyn RevisionStore>,
    pub residuals: Arc<dyn ResidualStore>,
    pub events: Arc<dyn EventStore>,
    pub tokens: Arc<dyn TokenStore>,
}

impl MetaStores {
    /// Every concern served by one backend.
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: SessionStore + OverlayStore + RevisionStore + ResidualStore + EventStore + TokenStore + 'static,
    {
        MetaStores {
            sessions: backend.clone(),
            overlays: backend.clone(),
            revisions: backend.clone(),
            residuals: backend.clone(),
            events: backend.clone(),
            tokens: backend,
        }
    }
}
