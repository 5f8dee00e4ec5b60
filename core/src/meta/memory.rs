//! The metadata stores in memory: nothing survives the process. For tests and throwaway
//! servers (`metadata = "memory:"`), and the second implementation that keeps the seams of
//! `meta::store` honest: it passes the same conformance suite as [`super::sqlite`], with the
//! same transactions (a change is staged on a copy of the session's rows and committed whole).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use gix::ObjectId;
use parking_lot::Mutex;

use super::{
    CheckpointRecord, Event, EventStore, ListQuery, Mutation, NewEvent, NodeId, OverlayRow, OverlayStore,
    ResidualCollection, ResidualStore, RevisionResidual, RevisionRoot, RevisionStore, SessionRecord, SessionResidual,
    SessionStore, TokenRecord, TokenStore,
};
use crate::error::{Error, Result};
use crate::ids::{SessionId, now_millis};
use crate::names::key_problem;
use crate::overlay::OverlayEntry;
use crate::store_error::{StoreError, StoreKind};

#[derive(Default)]
pub struct MemoryMetaStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sessions: BTreeMap<SessionId, SessionRecord>,
    overlays: HashMap<SessionId, BTreeMap<String, OverlayEntry>>,
    checkpoints: HashMap<SessionId, BTreeMap<u64, CheckpointRecord>>,
    residuals: HashMap<ObjectId, RevisionResidual>,
    revision_roots: HashMap<ObjectId, RevisionRoot>,
    nodes: HashMap<NodeId, Arc<[u8]>>,
    roots: HashMap<SessionId, NodeId>,
    unset: HashMap<SessionId, BTreeSet<String>>,
    events: HashMap<SessionId, Vec<Event>>,
    last_seq: i64,
    tokens: BTreeMap<String, TokenRecord>,
}

/// The rows of one session a change may touch, copied out so a failed change leaves none of
/// them changed.
struct Staged {
    record: Option<SessionRecord>,
    overlay: BTreeMap<String, OverlayEntry>,
    checkpoints: BTreeMap<u64, CheckpointRecord>,
    residuals: Vec<RevisionResidual>,
    revision_roots: Vec<RevisionRoot>,
    nodes: Vec<(NodeId, Arc<[u8]>)>,
    root: Option<NodeId>,
    unset: BTreeSet<String>,
    events: Vec<NewEvent>,
}

fn not_found(what: String) -> Error {
    Error::Store(StoreError::not_found(StoreKind::Metadata, what))
}

fn conflict(what: String) -> Error {
    Error::Store(StoreError::conflict(StoreKind::Metadata, what))
}

impl State {
    fn stage(&self, id: &SessionId) -> Staged {
        Staged {
            record: self.sessions.get(id).cloned(),
            overlay: self.overlays.get(id).cloned().unwrap_or_default(),
            checkpoints: self.checkpoints.get(id).cloned().unwrap_or_default(),
            residuals: Vec::new(),
            revision_roots: Vec::new(),
            nodes: Vec::new(),
            root: self.roots.get(id).copied(),
            unset: self.unset.get(id).cloned().unwrap_or_default(),
            events: Vec::new(),
        }
    }

    fn recorded(&self, commit: &ObjectId) -> bool {
        self.residuals.contains_key(commit) || self.revision_roots.contains_key(commit)
    }

    fn all_roots(&self) -> Vec<NodeId> {
        let set: BTreeSet<NodeId> = self
            .roots
            .values()
            .copied()
            .chain(self.revision_roots.values().filter_map(|r| r.root))
            .collect();
        set.into_iter().collect()
    }

    fn reachable(&self) -> Result<HashMap<NodeId, u64>> {
        let mut seen = HashMap::new();
        let mut queue = self.all_roots();
        while let Some(id) = queue.pop() {
            if seen.contains_key(&id) {
                continue;
            }
            let data = self.nodes.get(&id).ok_or_else(|| {
                Error::Store(StoreError::corrupt(
                    StoreKind::Metadata,
                    format!("residual node {id} is named but not stored"),
                ))
            })?;
            seen.insert(id, data.len() as u64);
            queue.extend(crate::residual::children(data)?);
        }
        Ok(seen)
    }

    fn commit(&mut self, id: &SessionId, staged: Staged) {
        if let Some(record) = staged.record {
            self.sessions.insert(id.clone(), record);
        }
        self.overlays.insert(id.clone(), staged.overlay);
        self.checkpoints.insert(id.clone(), staged.checkpoints);
        for (nid, data) in staged.nodes {
            self.nodes.entry(nid).or_insert(data);
        }
        match staged.root {
            Some(r) if self.sessions.contains_key(id) => {
                self.roots.insert(id.clone(), r);
            }
            _ => {
                self.roots.remove(id);
            }
        }
        if staged.unset.is_empty() {
            self.unset.remove(id);
        } else {
            self.unset.insert(id.clone(), staged.unset);
        }
        for rev in staged.residuals {
            if !self.recorded(&rev.commit) {
                self.residuals.insert(rev.commit, rev);
            }
        }
        for rev in staged.revision_roots {
            if !self.recorded(&rev.commit) {
                self.revision_roots.insert(rev.commit, rev);
            }
        }
        self.append_events(id, staged.events);
    }

    fn append_events(&mut self, id: &SessionId, events: Vec<NewEvent>) {
        let at = now_millis();
        for e in events {
            self.last_seq += 1;
            self.events.entry(id.clone()).or_default().push(Event {
                seq: self.last_seq,
                session: id.clone(),
                at,
                kind: e.kind,
                path: e.path,
                detail: e.detail,
                origin: Some(e.origin),
            });
        }
    }
}

impl Staged {
    /// One mutation, in the order `Mutation` documents.
    fn apply(&mut self, id: &SessionId, m: Mutation) -> Result<()> {
        for node in m.nodes {
            self.nodes.push((node.id, node.data));
        }
        if let Some(residual) = m.residual {
            if self.record.is_none() {
                return Err(not_found(format!("session {id}")));
            }
            self.root = residual.root();
            self.overlay.clear();
            self.unset.clear();
        }
        if m.clear_overlay {
            self.overlay.clear();
            self.unset.clear();
            self.root = None;
        }
        for dir in &m.remove_below {
            if dir.is_empty() {
                self.overlay.retain(|k, _| k.is_empty());
            } else {
                let (lo, hi) = (format!("{dir}/"), format!("{dir}0"));
                let below: Vec<String> = self.overlay.range(lo..hi).map(|(k, _)| k.clone()).collect();
                for k in below {
                    self.overlay.remove(&k);
                }
            }
        }
        for path in &m.remove {
            self.overlay.remove(path);
        }
        self.overlay.extend(m.upsert);
        self.unset.extend(m.unset);
        if let Some(rec) = m.record {
            if self.record.is_none() {
                return Err(not_found(format!("session {}", rec.id)));
            }
            self.record = Some(rec);
        }
        if let Some(cp) = m.checkpoint {
            self.checkpoints.insert(cp.number, cp);
        }
        for n in &m.drop_checkpoints {
            self.checkpoints.remove(n);
        }
        if let Some(rev) = m.revision
            && !self.residuals.iter().any(|r| r.commit == rev.commit)
        {
            self.residuals.push(rev);
        }
        if let Some(rev) = m.revision_root
            && !self.revision_roots.iter().any(|r| r.commit == rev.commit)
            && !self.residuals.iter().any(|r| r.commit == rev.commit)
        {
            self.revision_roots.push(rev);
        }
        if let Some(at) = m.touch {
            let rec = self.record.as_mut().ok_or_else(|| not_found(format!("session {id}")))?;
            rec.updated_at = at;
        }
        self.events.extend(m.events);
        Ok(())
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryMetaStore {
    async fn insert_session(
        &self,
        record: &SessionRecord,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()> {
        let mut state = self.state.lock();
        if state.sessions.contains_key(&record.id) {
            return Err(conflict(format!("session {} already exists", record.id)));
        }
        let id = record.id.clone();
        state.sessions.insert(id.clone(), record.clone());
        state.overlays.entry(id.clone()).or_default().extend(overlay);
        state.append_events(&id, vec![event]);
        Ok(())
    }

    async fn insert_session_sharing(
        &self,
        record: &SessionRecord,
        root: Option<NodeId>,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()> {
        let mut state = self.state.lock();
        if state.sessions.contains_key(&record.id) {
            return Err(conflict(format!("session {} already exists", record.id)));
        }
        if let Some(r) = root
            && !state.nodes.contains_key(&r)
        {
            return Err(conflict(format!("residual root {r} is no longer stored")));
        }
        let id = record.id.clone();
        state.sessions.insert(id.clone(), record.clone());
        if let Some(r) = root {
            state.roots.insert(id.clone(), r);
        }
        state.overlays.entry(id.clone()).or_default().extend(overlay);
        state.append_events(&id, vec![event]);
        Ok(())
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        Ok(self.state.lock().sessions.get(id).cloned())
    }

    async fn list_sessions(&self, query: &ListQuery) -> Result<Vec<SessionRecord>> {
        let state = self.state.lock();
        let after = query.after.as_ref().map_or("", |a| a.as_str());
        Ok(state
            .sessions
            .values()
            .filter(|r| r.id.as_str() > after)
            .filter(|r| query.state.is_none_or(|s| r.state == s))
            .filter(|r| query.labels.iter().all(|(k, v)| r.labels.get(k) == Some(v)))
            .take(query.limit.max(1))
            .cloned()
            .collect())
    }

    async fn apply(&self, id: &SessionId, mutation: Mutation) -> Result<i64> {
        self.apply_all(id, vec![mutation]).await
    }

    async fn apply_all(&self, id: &SessionId, mutations: Vec<Mutation>) -> Result<i64> {
        let mut state = self.state.lock();
        let mut staged = state.stage(id);
        for m in mutations {
            staged.apply(id, m)?;
        }
        let recorded = !staged.events.is_empty();
        state.commit(id, staged);
        Ok(if recorded { state.last_seq } else { 0 })
    }

    async fn delete_session(&self, id: &SessionId) -> Result<()> {
        let mut state = self.state.lock();
        if state.sessions.remove(id).is_none() {
            return Err(not_found(format!("session {id}")));
        }
        state.overlays.remove(id);
        state.roots.remove(id);
        state.unset.remove(id);
        state.checkpoints.remove(id);
        state.events.remove(id);
        Ok(())
    }
}

#[async_trait::async_trait]
impl OverlayStore for MemoryMetaStore {
    async fn load_overlay(&self, id: &SessionId) -> Result<Vec<(String, OverlayEntry)>> {
        let state = self.state.lock();
        Ok(state
            .overlays
            .get(id)
            .map(|o| o.iter().map(|(k, e)| (k.clone(), e.clone())).collect())
            .unwrap_or_default())
    }

    async fn suspect_overlay_rows(&self) -> Result<Vec<OverlayRow>> {
        let state = self.state.lock();
        let mut out: Vec<OverlayRow> = state
            .overlays
            .iter()
            .flat_map(|(session, rows)| {
                rows.iter()
                    .filter(|(k, _)| k.is_empty() || key_problem(k).is_some())
                    .map(|(k, e)| OverlayRow {
                        session: session.clone(),
                        path: k.clone(),
                        entry: Some(e.clone()),
                    })
            })
            .collect();
        out.sort_by(|a, b| (&a.session, &a.path).cmp(&(&b.session, &b.path)));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl RevisionStore for MemoryMetaStore {
    async fn list_checkpoints(&self, id: &SessionId) -> Result<Vec<CheckpointRecord>> {
        let state = self.state.lock();
        Ok(state
            .checkpoints
            .get(id)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn revision_residual(&self, commit: &ObjectId) -> Result<Option<RevisionResidual>> {
        let state = self.state.lock();
        if let Some(r) = state.revision_roots.get(commit) {
            return Ok(Some(RevisionResidual {
                commit: *commit,
                residual: Vec::new(),
                base_mtime: Some(r.base_mtime),
            }));
        }
        Ok(state.residuals.get(commit).cloned())
    }

    async fn revision_root(&self, commit: &ObjectId) -> Result<Option<RevisionRoot>> {
        Ok(self.state.lock().revision_roots.get(commit).cloned())
    }

    async fn revision_commits(&self) -> Result<Vec<ObjectId>> {
        let state = self.state.lock();
        let mut out: Vec<ObjectId> = state.residuals.keys().copied().collect();
        out.extend(
            state
                .revision_roots
                .keys()
                .filter(|c| !state.residuals.contains_key(*c)),
        );
        Ok(out)
    }

    async fn forget_revisions(&self, commits: Vec<ObjectId>) -> Result<u64> {
        let mut state = self.state.lock();
        let mut n = 0u64;
        for c in &commits {
            let listed = state.residuals.remove(c).is_some();
            let rooted = state.revision_roots.remove(c).is_some();
            n += u64::from(listed || rooted);
        }
        Ok(n)
    }
}

#[async_trait::async_trait]
impl ResidualStore for MemoryMetaStore {
    async fn residual_nodes(&self, ids: Vec<NodeId>) -> Result<Vec<(NodeId, Vec<u8>)>> {
        let state = self.state.lock();
        Ok(ids
            .into_iter()
            .filter_map(|id| state.nodes.get(&id).map(|d| (id, d.to_vec())))
            .collect())
    }

    async fn session_residual(&self, id: &SessionId) -> Result<SessionResidual> {
        let state = self.state.lock();
        Ok(SessionResidual {
            root: state.roots.get(id).copied(),
            unset: state
                .unset
                .get(id)
                .map(|u| u.iter().cloned().collect())
                .unwrap_or_default(),
        })
    }

    async fn residual_roots(&self) -> Result<Vec<NodeId>> {
        Ok(self.state.lock().all_roots())
    }

    async fn reachable_residual_nodes(&self) -> Result<Vec<(NodeId, u64)>> {
        Ok(self.state.lock().reachable()?.into_iter().collect())
    }

    async fn residual_usage(&self) -> Result<(u64, u64)> {
        let state = self.state.lock();
        Ok((
            state.nodes.len() as u64,
            state.nodes.values().map(|d| d.len() as u64).sum(),
        ))
    }

    async fn collect_residual_nodes(&self, dry_run: bool) -> Result<ResidualCollection> {
        let mut state = self.state.lock();
        let reachable = state.reachable()?;
        let dead: HashSet<NodeId> = state
            .nodes
            .keys()
            .filter(|k| !reachable.contains_key(k))
            .copied()
            .collect();
        let out = ResidualCollection {
            roots: state.all_roots().len() as u64,
            reachable_nodes: reachable.len() as u64,
            unreachable_nodes: dead.len() as u64,
            unreachable_bytes: dead.iter().map(|k| state.nodes[k].len() as u64).sum(),
            deleted_nodes: if dry_run { 0 } else { dead.len() as u64 },
        };
        if !dry_run {
            state.nodes.retain(|k, _| !dead.contains(k));
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl EventStore for MemoryMetaStore {
    async fn events(&self, id: &SessionId, after_seq: i64, limit: usize) -> Result<Vec<Event>> {
        let state = self.state.lock();
        Ok(state
            .events
            .get(id)
            .map(|e| e.iter().filter(|e| e.seq > after_seq).take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn last_event_seq(&self, id: &SessionId) -> Result<i64> {
        let state = self.state.lock();
        Ok(state.events.get(id).and_then(|e| e.last()).map_or(0, |e| e.seq))
    }

    async fn prune_events(&self, older_than: Option<i64>, keep_per_session: Option<u64>) -> Result<u64> {
        let mut state = self.state.lock();
        let mut removed = 0u64;
        for events in state.events.values_mut() {
            let Some(newest) = events.last().map(|e| e.seq) else {
                continue;
            };
            let keep_from = keep_per_session.map_or(0, |k| events.len().saturating_sub(k.max(1) as usize));
            let before = events.len();
            let mut i = 0usize;
            events.retain(|e| {
                let keep = e.seq == newest || (i >= keep_from && older_than.is_none_or(|t| e.at >= t));
                i += 1;
                keep
            });
            removed += (before - events.len()) as u64;
        }
        Ok(removed)
    }

    async fn delete_events(&self, id: &SessionId) -> Result<()> {
        self.state.lock().events.remove(id);
        Ok(())
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryMetaStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let mut state = self.state.lock();
        if state.tokens.contains_key(&token.id) || state.tokens.values().any(|t| t.hash == token.hash) {
            return Err(conflict(format!("token '{}' already exists", token.id.escape_debug())));
        }
        state.tokens.insert(token.id.clone(), token.clone());
        Ok(())
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        Ok(self.state.lock().tokens.values().find(|t| t.hash == hash).cloned())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut out: Vec<TokenRecord> = self.state.lock().tokens.values().cloned().collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn delete_token(&self, id: &str) -> Result<()> {
        match self.state.lock().tokens.remove(id) {
            Some(_) => Ok(()),
            None => Err(not_found(format!("token '{}'", id.escape_debug()))),
        }
    }
}
