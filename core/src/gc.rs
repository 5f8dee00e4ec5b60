//! Garbage collection: everything no session, revision or running write can reach is removed
//! (loose and packed git objects, chunk manifests of dead blobs, chunks no manifest names, the residuals
//! of unreachable revisions), safely while the server writes (see `gc_barrier`).
//!
//! Roots: every ref; every session's base tree, head, checkpoints and overlay rows; the
//! residuals of reachable revisions; contents held for open descriptors (`held`); chunks of
//! ingests still running; and whatever the barrier recorded since the collection began.
//! Everything they reach (commits, trees, tags, blobs, and the chunks of a large blob's
//! manifest) is live. Objects and manifests younger than the grace period are kept whatever
//! reaches them: something written before the collection began may be referenced only later
//! (an import creating its session at the end); a pack counts as young when it was written or
//! a write found an object in it within the grace period.
//!
//! Deletions run in batches under the barrier's delete gate; before each batch, what writes
//! recorded meanwhile is marked live with everything it reaches. After the loose objects, what
//! is left loose is packed and the packs holding garbage are rewritten without it (see
//! `repack`); what a write found meanwhile among what they leave out is written back loose
//! before the old packs go.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use serde::Serialize;

use crate::blocking::blocking;
use crate::chunk_store::{ChunkHash, Compacted};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gc_barrier::object_of;
use crate::meta::ListQuery;
use crate::objects::Objects;

/// Loose objects deleted per hold of the delete gate.
const BATCH: usize = 512;

/// What a collection does.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Only count what would be removed.
    pub dry_run: bool,
    /// Objects and manifests written (or found stored again) this recently are kept.
    pub grace: Duration,
    /// How much of the event logs (activity) is kept; applied with the collection (not in a
    /// dry run).
    pub events: crate::activity::EventRetention,
    /// Checkpoints and archived sessions that expire before the collection (see `expiry`).
    pub expiry: crate::expiry::ExpiryOptions,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            grace: Duration::from_secs(3600),
            events: Default::default(),
            expiry: Default::default(),
        }
    }
}

/// What a collection found and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Checkpoints and archived sessions expired (or, dry, that would) before collecting.
    pub expired: crate::expiry::Expired,
    /// Objects reachable from the roots (git objects and chunked blobs).
    pub reachable_objects: u64,
    /// Loose git objects looked at, and those removed (or, dry, removable) with their bytes.
    pub loose_objects_found: u64,
    pub loose_objects_removed: u64,
    pub loose_bytes_removed: u64,
    /// Packing (see `repack`): loose objects moved into the pack written, packs written and
    /// packs it replaced, and packed objects nothing reaches left out (or, dry, that would
    /// be) with their stored bytes.
    pub loose_objects_packed: u64,
    pub packs_written: u64,
    pub packs_removed: u64,
    pub packed_objects_removed: u64,
    pub packed_bytes_removed: u64,
    /// Chunk manifests looked at, and those of dead blobs removed.
    pub manifests_found: u64,
    pub manifests_removed: u64,
    /// Chunks removed and pack files rewritten.
    pub chunks: Compacted,
    /// Residual records of unreachable revisions dropped.
    pub revisions_removed: u64,
    /// Events past the retention of the activity logs dropped.
    pub events_removed: u64,
    /// Nodes of shared residual trees (the POSIX details of sessions and revisions) that no
    /// session or revision names any more, removed (or, dry, removable), and their bytes.
    pub residual_nodes_removed: u64,
    pub residual_bytes_removed: u64,
    /// Bytes removed from disk, all stores together.
    pub bytes_removed: u64,
    pub duration_ms: u64,
    /// Why nothing was removed, when something kept the collection from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
}

/// The marking: what is live so far, and what is still to visit.
#[derive(Default)]
struct Marked {
    objects: HashSet<ObjectId>,
    chunks: HashSet<ChunkHash>,
    todo: Vec<ObjectId>,
}

impl Marked {
    fn root(&mut self, oid: ObjectId) {
        if !oid.is_null() && self.objects.insert(oid) {
            self.todo.push(oid);
        }
    }

    /// Visit everything reachable from the roots given so far.
    fn close(&mut self, objects: &Objects) -> Result<()> {
        let repo = objects.odb.repo();
        while let Some(oid) = self.todo.pop() {
            if oid.is_empty_tree() || oid.is_empty_blob() {
                continue;
            }
            if let Some(m) = objects.manifest(&oid)? {
                self.chunks.extend(m.chunks.iter().map(|c| c.hash));
                continue;
            }
            let Some((kind, _)) = objects.odb.header(&oid)? else {
                // Referenced but not stored (a dangling reference in old data): nothing to keep.
                continue;
            };
            match kind {
                gix::objs::Kind::Blob => {}
                gix::objs::Kind::Tree => {
                    let tree = objects.tree(&oid)?;
                    for e in tree.all_entries() {
                        // A gitlink names a commit of another repository: not ours to keep.
                        if e.kind != EntryKind::Commit {
                            self.root(e.oid);
                        }
                    }
                }
                gix::objs::Kind::Commit => {
                    let c = objects.odb.read_commit(&oid)?;
                    self.root(c.tree);
                    for p in c.parents {
                        self.root(p);
                    }
                }
                gix::objs::Kind::Tag => {
                    let tag = crate::odb::find_object(&repo, &oid, Some(gix::objs::Kind::Tag), "tag")?.into_tag();
                    self.root(tag.target_id().map_err(Error::odb)?.detach());
                }
            }
        }
        Ok(())
    }

    /// Take what the barrier recorded as roots and visit it; whether there was any.
    fn take_recorded(&mut self, objects: &Objects) -> Result<bool> {
        let (oids, chunks) = objects.gc.take_recorded();
        let any = !oids.is_empty() || !chunks.is_empty();
        self.chunks.extend(chunks);
        for oid in oids {
            self.root(oid);
        }
        self.close(objects)?;
        Ok(any)
    }
}

/// Pack what is left `loose` (id and size) and rewrite the packs that hold garbage (see `repack`): what
/// nothing reaches in a pack older than `cutoff` is left out. Before the old packs go, under
/// the delete gate, whatever a write found or referenced meanwhile among what was left out is
/// written back loose.
fn sweep_packs(
    objects: &Objects,
    marked: &mut Marked,
    loose: Vec<(ObjectId, u64)>,
    cutoff: SystemTime,
    dry: bool,
    report: &mut GcReport,
) -> Result<()> {
    let objects_dir = objects.odb.git_dir().join("objects");
    if !dry {
        crate::repack::remove_leftovers(&objects_dir.join("pack"), cutoff)?;
    }
    let packs = crate::repack::list_packs(&objects_dir.join("pack"))?;
    let liveness = crate::repack::Liveness {
        live: &marked.objects,
        cutoff,
    };
    let repacked = crate::repack::write_pack(objects, &packs, loose, 1, Some(&liveness), dry)?;
    drop(packs);
    #[cfg(test)]
    if let Some(race) = tests::BEFORE_PACK_REMOVAL.lock().take() {
        race();
    }
    report.loose_objects_packed = repacked.loose_packed;
    report.packs_written = u64::from(repacked.written.is_some());
    report.packs_removed = repacked.replaced.len() as u64;
    report.packed_objects_removed = repacked.dropped.len() as u64;
    report.packed_bytes_removed = repacked.dropped_bytes;
    if dry {
        return Ok(());
    }
    loop {
        marked.take_recorded(objects)?;
        let gate = objects.gc.delete_gate();
        if objects.gc.has_recorded() {
            drop(gate);
            continue;
        }
        let repo = objects.odb.repo();
        for oid in repacked.dropped.iter().filter(|o| marked.objects.contains(*o)) {
            let obj = crate::odb::find_object(&repo, oid, None, "object")?;
            let kind = obj.kind;
            crate::loose::write(&objects_dir, oid, kind, &obj.detach().data, 1)?;
            report.packed_objects_removed -= 1;
        }
        repacked.remove_replaced()?;
        objects.odb.packs_removed();
        drop(gate);
        break;
    }
    report.bytes_removed += (repacked.replaced_bytes + repacked.loose_bytes).saturating_sub(repacked.written_bytes);
    Ok(())
}

impl Engine {
    /// Collect garbage (see the module docs). One collection runs at a time; a second is a
    /// conflict. While a git import runs, nothing is removed (its objects are referenced only
    /// when it ends) and the report says so.
    pub async fn collect_garbage(&self, opts: GcOptions) -> Result<GcReport> {
        let started = Instant::now();
        // Before the barrier: expiring takes sessions' write locks and deletes sessions.
        let expired = self.expire(&opts.expiry, opts.dry_run).await?;
        let objects = self.inner.objects.clone();
        let barrier = objects.gc.clone();
        let _collecting = barrier.begin().await?;
        let cutoff = SystemTime::now() - opts.grace;
        let mut report = GcReport {
            dry_run: opts.dry_run,
            expired,
            ..GcReport::default()
        };
        if !self.inner.imports.0.lock().is_empty() {
            report.deferred = Some("a git import is running; collect again when it has finished".into());
            report.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }

        // Roots from the metadata store and the sessions in memory.
        let mut roots: Vec<ObjectId> = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .inner
                .meta
                .sessions
                .list_sessions(&ListQuery {
                    after: after.clone(),
                    limit: 500,
                    ..ListQuery::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for s in &page {
                roots.push(s.base_tree);
                roots.extend(s.head);
                // What its usage is measured against (the tree it was forked from).
                roots.extend(s.origin_tree);
                for c in self.inner.meta.revisions.list_checkpoints(&s.id).await? {
                    roots.extend([c.commit, c.tree]);
                }
                for (_, e) in self.inner.meta.overlays.load_overlay(&s.id).await? {
                    roots.extend(object_of(&e));
                }
            }
        }
        let handles: Vec<_> = self.inner.sessions.lock().values().cloned().collect();
        for h in handles {
            roots.extend(h.held.lock().contents());
        }
        let revisions = self.inner.meta.revisions.revision_commits().await?;

        // Mark, then the residuals of the revisions found reachable (and what they name).
        let marking = {
            let objects = objects.clone();
            blocking(move || {
                let mut marked = Marked::default();
                for r in objects.odb.list_refs("refs/")? {
                    marked.root(r.1);
                }
                for oid in roots {
                    marked.root(oid);
                }
                marked.close(&objects)?;
                marked.take_recorded(&objects)?;
                Ok(marked)
            })
            .await?
        };
        let mut marked = marking;
        let (live_revisions, dead_revisions): (Vec<_>, Vec<_>) =
            revisions.into_iter().partition(|c| marked.objects.contains(c));
        for c in live_revisions {
            if let Some(r) = self.inner.meta.revisions.revision_residual(&c).await? {
                for (_, e) in &r.residual {
                    if let Some(oid) = object_of(e) {
                        marked.root(oid);
                    }
                }
            }
        }

        // Sweep: loose objects, manifests, chunks; each deletion under the delete gate.
        let dry = opts.dry_run;
        let objects_dir = objects.odb.git_dir().join("objects");
        let (marked, mut report) = blocking(move || {
            // No packing pass lists, packs or removes object files meanwhile.
            let _packing = objects.gc.packing();
            marked.close(&objects)?;
            report.reachable_objects = marked.objects.len() as u64;
            let loose = crate::loose::list(&objects_dir)?;
            report.loose_objects_found = loose.len() as u64;
            let (candidates, kept): (Vec<_>, Vec<_>) = loose
                .into_iter()
                .partition(|(oid, _, age)| !marked.objects.contains(oid) && *age < cutoff);
            // What stays loose, for packing (objects written meanwhile wait for the next pass).
            let mut left: Vec<(ObjectId, u64)> = kept.into_iter().map(|(oid, size, _)| (oid, size)).collect();
            let mut i = 0;
            while i < candidates.len() {
                marked.take_recorded(&objects)?;
                let gate = objects.gc.delete_gate();
                if objects.gc.has_recorded() {
                    drop(gate);
                    continue;
                }
                for (oid, size, _) in candidates[i..].iter().take(BATCH) {
                    if marked.objects.contains(oid) {
                        left.push((*oid, *size));
                        continue;
                    }
                    if !dry {
                        match std::fs::remove_file(crate::loose::path(&objects_dir, oid)) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(Error::io("removing a loose object")(e)),
                        }
                    }
                    report.loose_objects_removed += 1;
                    report.loose_bytes_removed += size;
                }
                drop(gate);
                i += BATCH;
            }

            sweep_packs(&objects, &mut marked, left, cutoff, dry, &mut report)?;

            let manifests = objects.chunk_store().manifest_ids()?;
            report.manifests_found = manifests.len() as u64;
            let dead: Vec<ObjectId> = manifests
                .into_iter()
                .filter(|(oid, age)| !marked.objects.contains(oid) && age.is_none_or(|a| a < cutoff))
                .map(|(oid, _)| oid)
                .collect();
            let mut removed_manifests = HashSet::new();
            let mut i = 0;
            while i < dead.len() {
                marked.take_recorded(&objects)?;
                let gate = objects.gc.delete_gate();
                if objects.gc.has_recorded() {
                    drop(gate);
                    continue;
                }
                for oid in dead[i..].iter().take(BATCH) {
                    if marked.objects.contains(oid) {
                        continue;
                    }
                    let freed = if dry {
                        0
                    } else {
                        objects.chunk_store().delete_manifest(oid)?
                    };
                    report.bytes_removed += freed;
                    report.manifests_removed += 1;
                    removed_manifests.insert(*oid);
                }
                drop(gate);
                i += BATCH;
            }
            objects.forget_manifests(&removed_manifests);

            // Chunks: live are those of the manifests kept, of running ingests, and recorded.
            let mut live = marked.chunks.clone();
            for (oid, _) in objects.chunk_store().manifest_ids()? {
                if dry && removed_manifests.contains(&oid) {
                    continue;
                }
                if let Some(m) = objects.chunk_store().get_manifest(&oid)? {
                    live.extend(m.chunks.iter().map(|c| c.hash));
                }
            }
            loop {
                marked.take_recorded(&objects)?;
                let gate = objects.gc.delete_gate();
                if objects.gc.has_recorded() {
                    drop(gate);
                    continue;
                }
                live.extend(marked.chunks.iter().copied());
                let in_flight = objects.chunks_in_flight();
                let mut keep = |h: &ChunkHash| live.contains(h) || in_flight.contains(h);
                report.chunks = objects.chunk_store().compact(&mut keep, dry)?;
                drop(gate);
                break;
            }
            report.bytes_removed += report.loose_bytes_removed + report.chunks.disk_bytes;
            Ok((marked, report))
        })
        .await?;

        let dead_revisions: Vec<ObjectId> = dead_revisions
            .into_iter()
            .filter(|c| !marked.objects.contains(c))
            .collect();
        report.revisions_removed = if dry {
            dead_revisions.len() as u64
        } else {
            self.inner.meta.revisions.forget_revisions(dead_revisions).await?
        };
        // Residual nodes after the revisions that named them are forgotten.
        let nodes = self.inner.meta.residuals.collect_residual_nodes(dry).await?;
        report.residual_nodes_removed = nodes.unreachable_nodes;
        report.residual_bytes_removed = nodes.unreachable_bytes;
        if !dry {
            report.events_removed = self.prune_events(&opts.events).await?;
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            dry_run = dry,
            loose_removed = report.loose_objects_removed,
            manifests_removed = report.manifests_removed,
            chunks_removed = report.chunks.chunks,
            bytes_removed = report.bytes_removed,
            ms = report.duration_ms,
            "garbage collection"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    type Race = Box<dyn FnOnce() + Send>;
    /// Run once between writing a collection's new pack and removing the packs it replaces.
    pub(super) static BEFORE_PACK_REMOVAL: parking_lot::Mutex<Option<Race>> = parking_lot::Mutex::new(None);

    /// A write finds an object in a pack the collection is rewriting without it (nothing
    /// reached it when the collection marked): the object is written back loose before the old
    /// pack goes, and stays readable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_finds_garbage_in_a_pack_being_rewritten_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(crate::EngineConfig::new(dir.path().join("data")))
            .await
            .unwrap();
        let objects = e.inner.objects.clone();
        let content = b"found again while its pack is rewritten".to_vec();
        let oid = objects.odb.write_blob(&content).unwrap();
        assert_eq!(e.pack_objects(0).await.unwrap().packs_written, 1);
        let pack_dir = objects.odb.git_dir().join("objects/pack");
        for f in std::fs::read_dir(&pack_dir).unwrap().flatten() {
            let f = std::fs::File::open(f.path()).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(7200)).unwrap();
        }
        let (racer, again) = (objects.clone(), content.clone());
        *BEFORE_PACK_REMOVAL.lock() = Some(Box::new(move || {
            assert_eq!(racer.odb.write_blob(&again).unwrap(), oid);
        }));
        let opts = GcOptions {
            grace: Duration::from_secs(3600),
            ..GcOptions::default()
        };
        let r = e.collect_garbage(opts).await.unwrap();
        assert!(BEFORE_PACK_REMOVAL.lock().is_none(), "the race ran");
        assert_eq!((r.packs_removed, r.packed_objects_removed), (1, 0), "{r:?}");
        assert!(objects.odb.contains(&oid));
        assert_eq!(objects.odb.read_blob(&oid).unwrap(), content);
    }
}
