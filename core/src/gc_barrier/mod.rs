//! What lets a collection run while the server writes: a write barrier.
//!
//! A collection decides what is garbage from a picture of every root taken while writes go on.
//! Three things could make it delete what a write needs, and the barrier closes each:
//!
//! - **A write that finds its object already stored** (content addressing deduplicates: a
//!   store returns "already there" and writes nothing) may find one the collection is about to
//!   delete. Every object write holds the barrier's gate shared for the write and, while a
//!   collection is active, records what it wrote or found ([`GcBarrier::wrote_object`],
//!   [`GcBarrier::wrote_chunk`]). The collection deletes only with the gate held exclusively,
//!   and never what was recorded: a write either finished before a deletion (and is recorded)
//!   or starts after it (and finds nothing, so stores anew).
//! - **A new reference to an old object without a write** (a fork copying its parent's
//!   references, a restore): every change of a session notes the objects it references before
//!   it is applied ([`GcBarrier::note_references`]), recorded while a collection is active.
//!   A change that began before the collection (and so recorded nothing) is waited for before
//!   the collection reads any root ([`GcBarrier::begin`]): its references are in the picture.
//! - **Objects written before the collection began, referenced only later** (an import that
//!   writes for minutes, then creates its session): those are younger than the collection's
//!   grace period and kept by age; a write that finds an object already stored freshens it
//!   (its loose file, or the pack that holds it).
//!
//! Recorded ids are roots: the collection keeps everything they reach.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gix::ObjectId;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::chunk_store::ChunkHash;

pub(crate) mod guarded;

use crate::meta::{Mutation, SessionRecord};
use crate::overlay::OverlayEntry;

#[derive(Default)]
pub struct GcBarrier {
    gate: RwLock<()>,
    active: AtomicBool,
    /// Changes in flight that began while no collection was active (they recorded nothing).
    unrecorded: AtomicUsize,
    objects: Mutex<HashSet<ObjectId>>,
    chunks: Mutex<HashSet<ChunkHash>>,
    /// One collection at a time.
    running: AtomicBool,
    /// Held by whatever lists, packs or deletes object files (a collection's sweep, a packing
    /// pass): one at a time.
    packing: Mutex<()>,
}

/// A change's note of its references: while it lives, a collection that begins waits for it.
pub struct Noted<'a> {
    barrier: Option<&'a GcBarrier>,
}

impl Drop for Noted<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.barrier {
            b.unrecorded.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl GcBarrier {
    /// Held shared around an object write and its record. Recursive: a write inside another
    /// never waits behind a collection that waits for the outer one.
    pub(crate) fn write_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read_recursive()
    }

    /// Held exclusively around a batch of deletions (no write runs meanwhile).
    pub(crate) fn delete_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write()
    }

    /// Held while object files are listed, packed or deleted (see `packing`).
    pub(crate) fn packing(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.packing.lock()
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Record an object written or found stored (call with the write gate held).
    pub(crate) fn wrote_object(&self, oid: ObjectId) {
        if self.is_active() {
            self.objects.lock().insert(oid);
        }
    }

    /// Record a chunk written or found stored (call with the write gate held).
    pub(crate) fn wrote_chunk(&self, hash: ChunkHash) {
        if self.is_active() {
            self.chunks.lock().insert(hash);
        }
    }

    /// Note the objects a change of a session is about to reference (`oids` is asked only
    /// while a collection runs). Keep the result until the change is applied (or failed).
    pub(crate) fn note_references<I: IntoIterator<Item = ObjectId>>(&self, oids: impl FnOnce() -> I) -> Noted<'_> {
        let _gate = self.gate.read_recursive();
        if self.is_active() {
            self.objects.lock().extend(oids());
            Noted { barrier: None }
        } else {
            self.unrecorded.fetch_add(1, Ordering::AcqRel);
            Noted { barrier: Some(self) }
        }
    }

    /// Start recording (one collection at a time: the guard is the collection's), then wait
    /// until every change that began before is applied.
    pub(crate) async fn begin(&self) -> crate::Result<Collecting<'_>> {
        if self.running.swap(true, Ordering::AcqRel) {
            return Err(crate::Error::Conflict(
                "a garbage collection is already running; wait for it to finish".into(),
            ));
        }
        let collecting = Collecting { barrier: self };
        {
            let _gate = self.gate.write();
            self.active.store(true, Ordering::Release);
        }
        while self.unrecorded.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        Ok(collecting)
    }

    /// What was recorded since the collection began and not taken yet.
    pub(crate) fn take_recorded(&self) -> (Vec<ObjectId>, Vec<ChunkHash>) {
        let objects = self.objects.lock().drain().collect();
        let chunks = self.chunks.lock().drain().collect();
        (objects, chunks)
    }

    /// Whether anything was recorded and not taken yet (call with the delete gate held).
    pub(crate) fn has_recorded(&self) -> bool {
        !self.objects.lock().is_empty() || !self.chunks.lock().is_empty()
    }
}

/// A collection in progress: recording stops when it is dropped.
pub struct Collecting<'a> {
    barrier: &'a GcBarrier,
}

impl Drop for Collecting<'_> {
    fn drop(&mut self) {
        let _gate = self.barrier.gate.write();
        self.barrier.active.store(false, Ordering::Release);
        self.barrier.objects.lock().clear();
        self.barrier.chunks.lock().clear();
        self.barrier.running.store(false, Ordering::Release);
    }
}

/// The object an overlay entry references, if any.
pub(crate) fn object_of(entry: &OverlayEntry) -> Option<ObjectId> {
    match entry {
        OverlayEntry::File { oid, .. } => Some(*oid),
        OverlayEntry::Graft { tree, .. } => Some(*tree),
        _ => None,
    }
}

/// The objects a change of a session references (what the collection barrier notes).
pub(crate) fn references(m: &Mutation) -> Vec<ObjectId> {
    let mut out: Vec<ObjectId> = m.upsert.iter().filter_map(|(_, e)| object_of(e)).collect();
    if let Some(r) = &m.record {
        out.push(r.base_tree);
        out.extend(r.head);
    }
    if let Some(c) = &m.checkpoint {
        out.extend([c.commit, c.tree]);
    }
    if let Some(r) = &m.revision {
        out.push(r.commit);
        out.extend(r.residual.iter().filter_map(|(_, e)| object_of(e)));
    }
    out
}

/// The objects a new session references.
pub(crate) fn session_references(record: &SessionRecord, overlay: &[(String, OverlayEntry)]) -> Vec<ObjectId> {
    let mut out: Vec<ObjectId> = overlay.iter().filter_map(|(_, e)| object_of(e)).collect();
    out.push(record.base_tree);
    out.extend(record.head);
    out
}
