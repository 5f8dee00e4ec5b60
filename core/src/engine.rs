//! The engine: owns the stores, the table of live sessions, and the two paths every operation
//! takes: a read through a [`View`] under the session's read lock, or a mutation planned under
//! the session's write lock, persisted to the metadata store, then applied in memory. Every
//! write to the metadata store passes the name check of `meta::checked`; opening the engine
//! and loading a session repair what older versions stored without it (`repair`).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::blocking::blocking;
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::event::{EventKind, Origin};
use crate::ids::{SessionId, now_millis};
use crate::meta::{MetaStores, Mutation, NewEvent, SessionRecord, SessionState};
use crate::objects::Objects;
use crate::overlay::Overlay;
use crate::path::SessionPath;
use crate::repair::Repair;
use crate::residual::Residual;
use crate::view::View;
use imbl::OrdSet;

/// Changes since the last freeze after which a session is frozen in the background (see
/// [`Engine::freeze_session`]): a freeze costs what changed since the previous one, so usage
/// figures and quota measures stay cheap for a session that writes without checkpoints.
pub(crate) const FREEZE_AT: usize = 4096;

/// Whether a mutation counts as a change of the session (see [`Engine::mutate_as`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touch {
    Yes,
    No,
}

/// A handle on the engine; cheap to clone, shareable across tasks.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
    /// Whom the changes made through this handle are recorded as coming from (see
    /// [`Engine::acting_for`]); the server's own by default.
    origin: Arc<Origin>,
    /// Where [`Engine::begin_import`] tells the session id it reserves (see
    /// [`Engine::telling_import_id`]).
    pub(crate) import_id: Option<Arc<std::sync::OnceLock<SessionId>>>,
}

pub(crate) struct Inner {
    pub config: EngineConfig,
    pub objects: Arc<Objects>,
    /// By concern; sessions and revisions pass the checks of `meta_check`.
    pub meta: MetaStores,
    /// The sessions loaded in memory; idle ones are evicted beyond a byte budget (see
    /// `loaded`, which says how a session never gets two handles).
    pub sessions: Mutex<HashMap<SessionId, Arc<Handle>>>,
    /// What the loaded sessions weigh, and their eviction (see `loaded`).
    pub loaded: crate::loaded::Loaded,
    /// "Session X has new events" signals for watchers (see `watch.rs`).
    pub changes: crate::changes::Changes,
    /// Ids reserved by git imports still running (see `import_git`).
    pub imports: crate::pending_imports::PendingImports,
    /// Recently read revisions' states (see `pinned`).
    pub revisions: crate::revision_cache::RevisionCache,
    /// Foreign trees converted to the session's spelling of names (see `foreign_trees`).
    pub spelling: crate::foreign_trees::Spelling,
    /// Figures of trees, for usage and quotas (see `usage`).
    pub usage: crate::usage::UsageMemo,
}

/// A session loaded in memory.
pub(crate) struct Handle {
    pub id: SessionId,
    /// Serializes mutations of this session.
    pub write: tokio::sync::Mutex<()>,
    pub live: RwLock<Live>,
    /// Contents its files held before changes replaced them (see `held`).
    pub held: parking_lot::Mutex<crate::held::Held>,
    /// An upper bound of what the session holds of its own, for its quota (see `quota`).
    pub quota_bound: parking_lot::Mutex<crate::quota_check::Bound>,
    /// The usage figures of its state as of a base tree and overlay (a copy of the map, sharing
    /// its nodes): asked again with nothing changed, they cost nothing (see `session_usage`).
    pub usage: parking_lot::Mutex<Option<(gix::ObjectId, Overlay, crate::usage::StateUsage)>>,
    /// A background freeze is scheduled (see [`FREEZE_AT`]).
    pub freeze_due: std::sync::atomic::AtomicBool,
    /// Its weight in the budget of loaded sessions and its last use (see `loaded`).
    pub weight: crate::loaded::Weight,
}

pub(crate) struct Live {
    pub record: SessionRecord,
    /// The session's overlay: `frozen` with the changes since it was frozen over it.
    pub overlay: Overlay,
    /// The frozen residual the overlay starts from, shared with the forks, checkpoints and
    /// restores that froze or adopted it (see `residual`); its root is what the store keeps.
    pub frozen: Residual,
    /// The paths changed since `frozen` (those the store keeps a row or an unset marker for,
    /// and maybe a few more): all a freeze looks at.
    pub dirty: OrdSet<String>,
    pub deleted: bool,
    /// The version of this state: the sequence number of the session's newest event whose
    /// change it shows. Every event up to it is in it; a later one may not be (see
    /// [`Engine::list_dirs`]: a listing carries the version it was read at).
    pub seq: i64,
}

impl Live {
    /// The session's current files, as seen through its overlay.
    pub(crate) fn view<'a>(&'a self, objects: &'a Objects) -> View<'a> {
        View {
            objects,
            base: self.record.base_tree,
            overlay: &self.overlay,
            base_mtime: self.record.base_mtime,
            frozen: Some((&self.frozen, &self.dirty)),
        }
    }

    /// A live state that starts from `frozen` with `rows` (and `unset` paths) over it.
    pub(crate) fn new(
        record: SessionRecord,
        frozen: Residual,
        unset: impl IntoIterator<Item = String>,
        rows: impl IntoIterator<Item = (String, crate::overlay::OverlayEntry)>,
        seq: i64,
    ) -> Live {
        let mut overlay = frozen.map().clone();
        let mut dirty = OrdSet::new();
        for p in unset {
            overlay.remove(&p);
            dirty.insert(p);
        }
        for (p, e) in rows {
            dirty.insert(p.clone());
            overlay.insert(p, e);
        }
        Live {
            record,
            overlay,
            frozen,
            dirty,
            deleted: false,
            seq,
        }
    }

    /// The state `m` (planned against this one, sealed) would leave; this one is unchanged
    /// (the maps are persistent: a copy shares their nodes).
    pub(crate) fn after(&self, m: &Mutation) -> Live {
        let mut next = Live {
            record: self.record.clone(),
            overlay: self.overlay.clone(),
            frozen: self.frozen.clone(),
            dirty: self.dirty.clone(),
            deleted: self.deleted,
            seq: self.seq,
        };
        next.apply(m);
        next
    }

    /// Complete `m` (planned against this state) for the store: name in `m.unset` every path
    /// of the frozen residual that `m` leaves without an entry, since the store's rows alone
    /// cannot hide it. Call it on every mutation before it is stored.
    pub(crate) fn seal(&self, m: &mut Mutation) {
        if m.residual.is_some() || m.clear_overlay || self.frozen.is_empty() {
            return;
        }
        let frozen = self.frozen.map();
        let kept: std::collections::HashSet<&str> = m.upsert.iter().map(|(k, _)| k.as_str()).collect();
        let mut unset: Vec<String> = Vec::new();
        for dir in &m.remove_below {
            unset.extend(
                frozen
                    .below(dir)
                    .filter(|(k, _)| !kept.contains(k))
                    .map(|(k, _)| k.to_owned()),
            );
        }
        for p in &m.remove {
            if frozen.get(p).is_some() && !kept.contains(p.as_str()) {
                unset.push(p.clone());
            }
        }
        m.unset.extend(unset);
    }

    /// [`Live::apply`], the store having numbered its newest event `seq` (0: it recorded none).
    pub(crate) fn apply_as_of(&mut self, m: &Mutation, seq: i64) {
        self.apply(m);
        self.seq = self.seq.max(seq);
    }

    /// Mirror of what the metadata store does with a [`Mutation`].
    pub(crate) fn apply(&mut self, m: &Mutation) {
        if let Some(r) = &m.residual {
            self.frozen = r.clone();
            self.overlay = r.map().clone();
            self.dirty = OrdSet::new();
        }
        if m.clear_overlay {
            self.overlay = Overlay::default();
            self.frozen = Residual::default();
            self.dirty = OrdSet::new();
        }
        for dir in &m.remove_below {
            for (k, _) in self.overlay.below(dir) {
                self.dirty.insert(k.to_owned());
            }
            self.overlay.remove_below(dir);
        }
        for p in &m.remove {
            self.dirty.insert(p.clone());
            self.overlay.remove(p);
        }
        for (p, e) in &m.upsert {
            self.dirty.insert(p.clone());
            self.overlay.insert(p.clone(), e.clone());
        }
        if let Some(r) = &m.record {
            self.record = r.clone();
        }
        if let Some(at) = m.touch {
            self.record.updated_at = at;
        }
    }

    /// Mark `m` (planned against this state) as a change of the session at `now`: its
    /// `updated_at` moves forward, never back, when `m` changes anything.
    pub(crate) fn touch(&self, m: &mut Mutation, now: i64) {
        if m.changes_session() {
            let prior = m.record.as_ref().map_or(self.record.updated_at, |r| r.updated_at);
            m.touch = Some(now.max(prior).max(self.record.updated_at));
        }
    }
}

impl Engine {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Engine {
        Engine {
            inner,
            origin: Arc::new(Origin::server()),
            import_id: None,
        }
    }

    /// This engine, recording every change made through the returned handle as coming from
    /// `origin` (the surface, principal and mount of a request).
    pub fn acting_for(&self, origin: Origin) -> Engine {
        Engine {
            inner: self.inner.clone(),
            origin: Arc::new(origin),
            import_id: self.import_id.clone(),
        }
    }

    /// This engine, telling `to` the session id the first import begun through the returned
    /// handle reserves: a caller can then name an import that failed (and left no session).
    pub fn telling_import_id(&self, to: Arc<std::sync::OnceLock<SessionId>>) -> Engine {
        Engine {
            import_id: Some(to),
            ..self.clone()
        }
    }

    /// Where changes made through this handle come from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Give `events` this handle's origin.
    pub(crate) fn stamp<'a>(&self, events: impl IntoIterator<Item = &'a mut NewEvent>) {
        for e in events {
            e.origin = (*self.origin).clone();
        }
    }

    /// Bytes the in-memory caches hold now (each bounded by [`crate::CacheConfig`]).
    pub fn cache_usage(&self) -> crate::objects::CacheUsage {
        crate::objects::CacheUsage {
            revisions: self.inner.revisions.bytes(),
            sessions: self.inner.loaded.bytes(),
            ..self.inner.objects.cache_usage()
        }
    }

    /// Sessions loaded in memory now, and the overlay entries they hold together.
    pub fn sessions_in_memory(&self) -> (usize, usize) {
        let handles: Vec<Arc<Handle>> = self.inner.sessions.lock().values().cloned().collect();
        let entries = handles.iter().map(|h| h.live.read().overlay.len()).sum();
        (handles.len(), entries)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The metadata stores, unchecked by the engine's locks: for maintenance (garbage
    /// collection walks `residuals`) and for tests that count what was stored.
    pub fn metadata(&self) -> &MetaStores {
        &self.inner.meta
    }

    pub fn objects(&self) -> &Arc<Objects> {
        &self.inner.objects
    }

    pub(crate) fn parse_path(&self, raw: &str) -> Result<SessionPath> {
        SessionPath::parse(raw, self.inner.config.limits.path)
    }

    /// The live handle of a session, loading it from the metadata store on first use (and
    /// again after it was evicted, see `loaded`).
    pub(crate) async fn handle(&self, id: &SessionId) -> Result<Arc<Handle>> {
        let _loading = {
            let table = self.inner.sessions.lock();
            if let Some(h) = table.get(id) {
                self.inner.loaded.used(&h.weight);
                return Ok(h.clone());
            }
            // Registered under the table's lock: nothing of this session is evicted until the
            // load below is in the table or dropped.
            self.inner.loaded.start_loading(id)
        };
        // Read before the state: every event up to it is in what is loaded next.
        let seq = self.inner.meta.events.last_event_seq(id).await?;
        let record = self
            .inner
            .meta
            .sessions
            .get_session(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("session {id}")))?;
        let entries = self.inner.meta.overlays.load_overlay(id).await?;
        let stored = self.inner.meta.residuals.session_residual(id).await?;
        let residuals = self.inner.meta.residuals.clone();
        let frozen = Residual::load(stored.root, |ids| {
            let residuals = residuals.clone();
            async move { residuals.residual_nodes(ids).await }
        })
        .await?;
        let (repair, repairs) = crate::repair::plan(entries.iter().map(|(k, e)| (k.as_str(), Some(e))));
        let mut live = Live::new(record, frozen, stored.unset, entries, seq);
        if !repairs.is_empty() {
            // Written behind this engine's back since it opened (see `repair`).
            let mut repair = repair;
            live.seal(&mut repair);
            live.apply(&repair);
            live.seq = self.persist_repairs(id, repair, &repairs).await?.max(live.seq);
        }
        let handle = Arc::new(Handle {
            id: id.clone(),
            write: tokio::sync::Mutex::new(()),
            live: RwLock::new(live),
            held: Default::default(),
            quota_bound: Default::default(),
            usage: Default::default(),
            freeze_due: Default::default(),
            weight: Default::default(),
        });
        // Another task may have loaded it meanwhile: keep the first so writes stay serialized.
        let h = self.inner.sessions.lock().entry(id.clone()).or_insert(handle).clone();
        self.inner.loaded.used(&h.weight);
        self.reweigh(&h);
        Ok(h)
    }

    /// Persist the repairs of one session with a `repair` event, then log one line per repair
    /// (see `repair`).
    pub(crate) async fn persist_repairs(&self, id: &SessionId, mut m: Mutation, repairs: &[Repair]) -> Result<i64> {
        let detail: Vec<_> = repairs
            .iter()
            .map(|r| serde_json::json!({"key": r.key, "action": r.action}))
            .collect();
        m.events
            .push(NewEvent::new(EventKind::Repair, None).with(serde_json::json!({ "repairs": detail })));
        let noted = self
            .inner
            .objects
            .gc
            .note_references(|| crate::gc_barrier::references(&m));
        let seq = self.inner.meta.sessions.apply(id, m).await?;
        drop(noted);
        self.inner.changes.notify(id);
        for r in repairs {
            tracing::warn!(session = %id, key = ?r.key, action = %r.action, "repaired a stored overlay entry");
        }
        Ok(seq)
    }

    /// The tree of `commit` in the session's spelling of names (see `foreign_trees`): what a
    /// session must read when it starts from, restores to or reads at that commit. Blocking:
    /// call it from a blocking thread.
    pub fn session_tree(&self, commit: &gix::ObjectId) -> Result<gix::ObjectId> {
        self.inner.spelling.session_tree(&*self.inner.objects.odb, commit)
    }

    pub(crate) fn forget(&self, id: &SessionId) {
        if let Some(h) = self.inner.sessions.lock().remove(id) {
            self.inner.loaded.removed(&h.weight);
            h.live.write().deleted = true;
        }
        self.inner.changes.notify(id);
    }

    /// Run `f` against the session's current view on a blocking thread.
    pub(crate) async fn read_view<T: Send + 'static>(
        &self,
        id: &SessionId,
        f: impl FnOnce(&View<'_>, &SessionRecord) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let h = self.handle(id).await?;
        let objects = self.inner.objects.clone();
        blocking(move || {
            let live = h.live.read();
            if live.deleted {
                return Err(Error::not_found(format!("session {}", h.id)));
            }
            f(&live.view(&objects), &live.record)
        })
        .await
    }

    /// Plan a change under the session's write lock, persist it, then apply it in memory.
    /// `plan` sees the current view and record and returns the mutation plus a result; an
    /// error from `plan` or from the store leaves everything as it was.
    /// A mutation that changes the session bumps its `updated_at`.
    pub(crate) async fn mutate<T: Send + 'static>(
        &self,
        id: &SessionId,
        allow_archived: bool,
        plan: impl FnOnce(&View<'_>, &SessionRecord) -> Result<(Mutation, T)> + Send + 'static,
    ) -> Result<T> {
        self.mutate_as(id, allow_archived, Touch::Yes, plan).await
    }

    /// [`Engine::mutate`], saying whether the change counts as a change of the session (a
    /// fork freezing its parent's overlay rewrites how the parent is stored, not what it holds).
    pub(crate) async fn mutate_as<T: Send + 'static>(
        &self,
        id: &SessionId,
        allow_archived: bool,
        touch: Touch,
        plan: impl FnOnce(&View<'_>, &SessionRecord) -> Result<(Mutation, T)> + Send + 'static,
    ) -> Result<T> {
        let h = self.handle(id).await?;
        let _guard = h.write.lock().await;
        let objects = self.inner.objects.clone();
        let hh = h.clone();
        let inner = self.inner.clone();
        let limits = self.inner.config.limits.path;
        let (mutation, out, replaced) = blocking(move || {
            let live = hh.live.read();
            if live.deleted {
                return Err(Error::not_found(format!("session {}", hh.id)));
            }
            if !allow_archived && live.record.state == SessionState::Archived {
                return Err(Error::ReadOnly {
                    session: hh.id.to_string(),
                });
            }
            let (mut m, out) = plan(&live.view(&objects), &live.record)?;
            crate::links::propagate(&live.overlay, &mut m);
            live.seal(&mut m);
            if touch == Touch::Yes {
                live.touch(&mut m, now_millis());
            }
            let checked = crate::quota_check::Checked {
                id: &hh.id,
                record: &live.record,
                overlay: &live.overlay,
                bound: &hh.quota_bound,
            };
            crate::quota_check::check(checked, &m, &objects, &inner.usage, || {
                crate::freeze::current_state(&live.after(&m).view(&objects))
            })?;
            let replaced = crate::held::replaced_by(&live.view(&objects), &m, limits);
            Ok((m, out, replaced))
        })
        .await?;
        let mut mutation = mutation;
        self.stamp(&mut mutation.events);
        let noted = self
            .inner
            .objects
            .gc
            .note_references(|| crate::gc_barrier::references(&mutation));
        let seq = match self.inner.meta.sessions.apply(id, mutation.clone()).await {
            Ok(seq) => seq,
            Err(e) => {
                // The bound was moved for this change; measure again next time.
                *h.quota_bound.lock() = None;
                return Err(e);
            }
        };
        drop(noted);
        let dirty = {
            let mut live = h.live.write();
            live.apply_as_of(&mutation, seq);
            live.dirty.len()
        };
        h.held.lock().note(replaced);
        self.reweigh(&h);
        self.inner.changes.notify(id);
        self.freeze_when_due(&h, dirty);
        Ok(out)
    }

    /// Freeze `id` in the background once it holds [`FREEZE_AT`] changes since its last freeze.
    pub(crate) fn freeze_when_due(&self, h: &Arc<Handle>, dirty: usize) {
        use std::sync::atomic::Ordering;
        if dirty < FREEZE_AT || h.freeze_due.swap(true, Ordering::AcqRel) {
            return;
        }
        let (engine, h) = (self.clone(), h.clone());
        tokio::spawn(async move {
            let id = h.id.clone();
            let done = engine.freeze_session(&id).await;
            h.freeze_due.store(false, Ordering::Release);
            if let Err(e) = done
                && e.kind() != crate::ErrorKind::NotFound
            {
                tracing::warn!(session = %id, error = %e, "background freeze failed");
            }
        });
    }

    /// Fail early (before expensive work such as ingesting a body) if the session cannot be written.
    pub(crate) async fn check_writable(&self, id: &SessionId) -> Result<()> {
        let h = self.handle(id).await?;
        let live = h.live.read();
        if live.deleted {
            return Err(Error::not_found(format!("session {id}")));
        }
        if live.record.state == SessionState::Archived {
            return Err(Error::ReadOnly {
                session: id.to_string(),
            });
        }
        Ok(())
    }

    /// Make a session just stored live: `frozen` with `rows` over it.
    pub(crate) fn register(
        &self,
        record: SessionRecord,
        frozen: Residual,
        rows: impl IntoIterator<Item = (String, crate::overlay::OverlayEntry)>,
    ) {
        let handle = Arc::new(Handle {
            id: record.id.clone(),
            write: tokio::sync::Mutex::new(()),
            // Below its creation event: a version says no more than it knows.
            live: RwLock::new(Live::new(record, frozen, [], rows, 0)),
            held: Default::default(),
            quota_bound: Default::default(),
            usage: Default::default(),
            freeze_due: Default::default(),
            weight: Default::default(),
        });
        self.inner.loaded.used(&handle.weight);
        if let Some(old) = self.inner.sessions.lock().insert(handle.id.clone(), handle.clone()) {
            self.inner.loaded.removed(&old.weight);
        }
        self.reweigh(&handle);
    }
}

/// What a loaded session weighs now, for the budget of sessions in memory (see `loaded`): its
/// overlay, the paths changed since its freeze, the contents it remembers for readers.
pub(crate) fn weigh(h: &Handle) -> u64 {
    use crate::loaded::{DIRTY_BYTES, HANDLE_BYTES, HELD_BYTES};
    let (overlay, dirty) = {
        let live = h.live.read();
        (live.overlay.bytes(), live.dirty.len() as u64)
    };
    let held = h.held.lock().len() as u64;
    HANDLE_BYTES + overlay + dirty * DIRTY_BYTES + held * HELD_BYTES
}

/// Keeps a session loaded in memory while alive (see [`Engine::keep_loaded`]).
pub struct KeepLoaded {
    _handle: Arc<Handle>,
}

impl Engine {
    /// Keep session `id` loaded while the returned value lives: an attached mount's session,
    /// whose readers may read contents only the loaded session remembers (see `held`).
    pub async fn keep_loaded(&self, id: &SessionId) -> Result<KeepLoaded> {
        Ok(KeepLoaded {
            _handle: self.handle(id).await?,
        })
    }

    /// Sessions evicted from memory since the engine opened (see `loaded`).
    pub fn sessions_evicted(&self) -> u64 {
        self.inner.loaded.evictions()
    }

    /// Count `h` at its weight now and evict idle sessions if the sum passed the budget.
    pub(crate) fn reweigh(&self, h: &Handle) {
        self.inner.loaded.reweigh(&h.weight, weigh(h));
        self.inner.loaded.sweep(&self.inner.sessions, |h| &h.weight);
    }
}
