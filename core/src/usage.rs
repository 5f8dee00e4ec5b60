//! What a session holds, and what of it is its own: files, directories and bytes of its current
//! state; the files and bytes it holds that the state it was forked from did not (what counts
//! against its quota, see `quota`); the bytes storing them took (chunk-granular for large files:
//! one changed byte of a 1 GiB file costs one chunk, not 1 GiB).
//!
//! Cost: every figure is a function of git trees, and trees never change, so each is computed
//! once per tree (or pair of trees) and kept in a bounded memo keyed by tree ids. A session's
//! current state is its tree as a checkpoint would write it (`snapshots::current_state`, which
//! costs what changed since the last freeze); a new tree shares all but the changed subtrees
//! with the previous one, so a call after a few writes computes a few trees and finds the rest in
//! the memo. A cold memo (after a restart) walks a tree once.

use std::sync::Arc;

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use lru::LruCache;
use parking_lot::Mutex;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::object_store::TreeEntry;
use crate::objects::Objects;
use crate::overlay::OverlayEntry;
use crate::residual::Residual;

/// Most trees the memo keeps figures for (each about 100 bytes with its key and links).
const MEMO_TREES: usize = 1 << 17;

/// Bytes of origin indexes kept (about 60 per file or tree of an origin: a 78k-file origin
/// takes 5 MiB, so 30 forks of each of several such states stay indexed).
const ORIGIN_BYTES: u64 = 64 << 20;

/// Deepest tree a walk descends into (a path of 4,096 bytes has at most 2,048 components).
const MAX_DEPTH: usize = 4096;

/// What a tree holds, below it (the tree itself not counted as a directory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Regular files.
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Bytes of the regular files.
    pub bytes: u64,
    /// Files kept as chunks (large files) and their bytes.
    pub large_files: u64,
    pub large_bytes: u64,
    /// Chunks the large files list (a chunk listed twice counts twice).
    pub chunk_refs: u64,
    /// Bytes of the distinct chunks of each large file (what chunking stored of them).
    pub large_stored_bytes: u64,
    /// Bytes storing the files took: a small file its size, a large file its distinct chunks.
    pub stored_bytes: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.files += o.files;
        self.directories += o.directories;
        self.symlinks += o.symlinks;
        self.bytes += o.bytes;
        self.large_files += o.large_files;
        self.large_bytes += o.large_bytes;
        self.chunk_refs += o.chunk_refs;
        self.large_stored_bytes += o.large_stored_bytes;
        self.stored_bytes += o.stored_bytes;
    }
}

/// What a tree holds that another (its origin) does not hold anywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Own {
    /// Files and symbolic links added or changed (content or target; a mode alone is not).
    pub files: u64,
    /// Bytes of the regular files among them.
    pub bytes: u64,
    /// Bytes storing them took beyond what the origin stored: a small file its size, a large
    /// file its distinct chunks the origin has in none of its files.
    pub stored_bytes: u64,
}

impl Own {
    fn add(&mut self, o: &Own) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.stored_bytes += o.stored_bytes;
    }

    fn all_of(t: &Totals) -> Own {
        Own {
            files: t.files + t.symlinks,
            bytes: t.bytes,
            stored_bytes: t.stored_bytes,
        }
    }
}

/// Figures of one state: its tree, plus what only its residual holds (empty directories,
/// special files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateUsage {
    pub totals: Totals,
    /// Directories the tree cannot hold (empty ones).
    pub empty_directories: u64,
    /// FIFOs, sockets and device nodes.
    pub special_files: u64,
    pub own: Own,
}

/// The memo of figures per tree and per (origin, tree) pair.
pub(crate) struct UsageMemo {
    totals: Mutex<LruCache<ObjectId, Totals>>,
    own: Mutex<LruCache<(ObjectId, ObjectId), Own>>,
    /// Whole states, by tree, residual root and origin: a session read twice without a change
    /// in between answers from here.
    states: Mutex<LruCache<StateKey, StateUsage>>,
    /// What origins hold (the trees forks started from; 30 forks of one state share one),
    /// bounded in bytes: an index larger than the cap is rebuilt by each call that needs it.
    origins: crate::byte_lru::ByteLru<ObjectId, Arc<OriginIndex>>,
}

/// The trees, contents and chunks of an origin, by id.
#[derive(Default)]
struct OriginIndex {
    trees: std::collections::HashSet<ObjectId>,
    blobs: std::collections::HashSet<ObjectId>,
    chunks: std::collections::HashSet<crate::chunk_store::ChunkHash>,
}

type StateKey = (ObjectId, Option<crate::residual::NodeId>, Option<ObjectId>);

impl Default for UsageMemo {
    fn default() -> Self {
        let n = |k: usize| std::num::NonZeroUsize::new(k).expect("non-zero");
        UsageMemo {
            totals: Mutex::new(LruCache::new(n(MEMO_TREES))),
            own: Mutex::new(LruCache::new(n(MEMO_TREES))),
            states: Mutex::new(LruCache::new(n(4096))),
            origins: crate::byte_lru::ByteLru::new(ORIGIN_BYTES),
        }
    }
}

/// What one file holds: `(bytes, stored bytes, chunk refs, large)`.
fn file_figures(objects: &Objects, oid: &ObjectId) -> Result<(u64, u64, u64, bool)> {
    match objects.manifest(oid)? {
        Some(m) => {
            let mut seen = std::collections::HashSet::with_capacity(m.chunks.len());
            let stored = m
                .chunks
                .iter()
                .filter(|c| seen.insert(c.hash))
                .map(|c| u64::from(c.len))
                .sum();
            Ok((m.size, stored, m.chunks.len() as u64, true))
        }
        None => {
            let size = objects.blob_size(oid)?;
            Ok((size, size, 0, false))
        }
    }
}

/// A figure summed over a tree.
trait Figure: Copy + Default {
    fn add(&mut self, other: &Self);
}

impl Figure for Totals {
    fn add(&mut self, o: &Totals) {
        Totals::add(self, o)
    }
}

impl Figure for Own {
    fn add(&mut self, o: &Own) {
        Own::add(self, o)
    }
}

/// What one entry of a tree adds to the tree's figure.
enum Step<A> {
    Add(A),
    /// `A`, plus the figure of the subtree (known, or walked).
    Descend(ObjectId, A),
    Skip,
}

/// The figure of `root`, summed bottom-up: `entry` says what each entry adds; a subtree's
/// figure comes from `known` or from walking it, and every tree walked is handed to `done`
/// (to memoize it). Iterative (an explicit stack) and depth-limited: a hostile tree cannot
/// overflow ours.
fn fold<A: Figure>(
    objects: &Objects,
    root: ObjectId,
    known: impl Fn(&ObjectId) -> Option<A>,
    mut entry: impl FnMut(&TreeEntry) -> Result<Step<A>>,
    mut done: impl FnMut(ObjectId, A),
) -> Result<A> {
    if let Some(a) = known(&root) {
        return Ok(a);
    }
    struct Frame<A> {
        oid: ObjectId,
        tree: Arc<crate::object_store::Tree>,
        next: usize,
        acc: A,
    }
    let frame = |oid: ObjectId| -> Result<Frame<A>> {
        Ok(Frame {
            oid,
            tree: objects.tree(&oid)?,
            next: 0,
            acc: A::default(),
        })
    };
    let mut stack = vec![frame(root)?];
    loop {
        let top = stack.last_mut().expect("a frame until the root is done");
        if let Some(e) = top.tree.entries.get(top.next) {
            top.next += 1;
            match entry(e)? {
                Step::Add(a) => top.acc.add(&a),
                Step::Skip => {}
                Step::Descend(oid, a) => {
                    top.acc.add(&a);
                    match known(&oid) {
                        Some(sub) => top.acc.add(&sub),
                        None if stack.len() >= MAX_DEPTH => return Err(too_deep(&root)),
                        None => stack.push(frame(oid)?),
                    }
                }
            }
            continue;
        }
        let finished = stack.pop().expect("the frame just looked at");
        done(finished.oid, finished.acc);
        match stack.last_mut() {
            Some(parent) => parent.acc.add(&finished.acc),
            None => return Ok(finished.acc),
        }
    }
}

fn too_deep(root: &ObjectId) -> Error {
    Error::InvalidArgument(format!("tree {root} is nested deeper than {MAX_DEPTH} levels"))
}

impl UsageMemo {
    /// What `root` holds.
    pub(crate) fn totals(&self, objects: &Objects, root: ObjectId) -> Result<Totals> {
        let known = |oid: &ObjectId| self.totals.lock().get(oid).copied();
        let entry = |e: &TreeEntry| -> Result<Step<Totals>> {
            Ok(match e.kind {
                EntryKind::Tree => Step::Descend(
                    e.oid,
                    Totals {
                        directories: 1,
                        ..Totals::default()
                    },
                ),
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let (bytes, stored, chunks, large) = file_figures(objects, &e.oid)?;
                    let mut t = Totals {
                        files: 1,
                        bytes,
                        stored_bytes: stored,
                        ..Totals::default()
                    };
                    if large {
                        t.large_files = 1;
                        t.large_bytes = bytes;
                        t.chunk_refs = chunks;
                        t.large_stored_bytes = stored;
                    }
                    Step::Add(t)
                }
                EntryKind::Link => Step::Add(Totals {
                    symlinks: 1,
                    ..Totals::default()
                }),
                // A submodule's commit: nothing of it is stored here.
                EntryKind::Commit => Step::Skip,
            })
        };
        fold(objects, root, known, entry, |oid, t| {
            self.totals.lock().put(oid, t);
        })
    }

    /// What `origin` holds, for [`UsageMemo::own`]: built by one walk, kept for a few origins.
    fn origin_index(&self, objects: &Objects, origin: ObjectId) -> Result<Arc<OriginIndex>> {
        if let Some(i) = self.origins.get(&origin) {
            return Ok(i);
        }
        let mut index = OriginIndex::default();
        index.trees.insert(origin);
        let mut stack = vec![(origin, 0usize)];
        while let Some((oid, depth)) = stack.pop() {
            if depth >= MAX_DEPTH {
                return Err(too_deep(&origin));
            }
            for e in &objects.tree(&oid)?.entries {
                match e.kind {
                    EntryKind::Tree => {
                        if index.trees.insert(e.oid) {
                            stack.push((e.oid, depth + 1));
                        }
                    }
                    EntryKind::Blob | EntryKind::BlobExecutable => {
                        if index.blobs.insert(e.oid)
                            && let Some(m) = objects.manifest(&e.oid)?
                        {
                            index.chunks.extend(m.chunks.iter().map(|c| c.hash));
                        }
                    }
                    EntryKind::Link => {
                        index.blobs.insert(e.oid);
                    }
                    EntryKind::Commit => {}
                }
            }
        }
        let weight = 60 * (index.trees.len() + index.blobs.len() + index.chunks.len()) as u64;
        let index = Arc::new(index);
        self.origins.put(origin, index.clone(), weight);
        Ok(index)
    }

    /// What `tree` holds that `origin` does not: files whose content (a symbolic link: whose
    /// target) is nowhere in `origin`. Content moved or copied within the session stays shared,
    /// so renaming a directory of the parent's costs nothing. Each path counts, so one new
    /// content at two paths counts twice in `files` and `bytes`.
    pub(crate) fn own(&self, objects: &Objects, origin: ObjectId, tree: ObjectId) -> Result<Own> {
        if origin == tree {
            return Ok(Own::default());
        }
        let index = self.origin_index(objects, origin)?;
        self.own_below(objects, origin, &index, tree)
    }

    fn own_below(&self, objects: &Objects, origin: ObjectId, index: &OriginIndex, root: ObjectId) -> Result<Own> {
        if index.trees.contains(&root) {
            return Ok(Own::default());
        }
        let known = |oid: &ObjectId| self.own.lock().get(&(origin, *oid)).copied();
        let entry = |e: &TreeEntry| -> Result<Step<Own>> {
            let shared = match e.kind {
                EntryKind::Tree => index.trees.contains(&e.oid),
                _ => index.blobs.contains(&e.oid),
            };
            if shared {
                return Ok(Step::Skip);
            }
            Ok(match e.kind {
                EntryKind::Tree => Step::Descend(e.oid, Own::default()),
                EntryKind::Blob | EntryKind::BlobExecutable => Step::Add(match objects.manifest(&e.oid)? {
                    Some(m) => {
                        let mut seen = std::collections::HashSet::new();
                        let stored = m
                            .chunks
                            .iter()
                            .filter(|c| !index.chunks.contains(&c.hash) && seen.insert(c.hash))
                            .map(|c| u64::from(c.len))
                            .sum();
                        Own {
                            files: 1,
                            bytes: m.size,
                            stored_bytes: stored,
                        }
                    }
                    None => {
                        let size = objects.blob_size(&e.oid)?;
                        Own {
                            files: 1,
                            bytes: size,
                            stored_bytes: size,
                        }
                    }
                }),
                EntryKind::Link => Step::Add(Own {
                    files: 1,
                    ..Own::default()
                }),
                EntryKind::Commit => Step::Skip,
            })
        };
        fold(objects, root, known, entry, |oid, o| {
            self.own.lock().put((origin, oid), o);
        })
    }

    /// Figures of the state `tree` + `residual`, whose own part is measured against `origin`
    /// (`None`: all of it is its own).
    pub(crate) fn state(
        &self,
        objects: &Objects,
        tree: ObjectId,
        residual: &Residual,
        origin: Option<ObjectId>,
    ) -> Result<StateUsage> {
        let key = (tree, residual.root(), origin);
        if let Some(u) = self.states.lock().get(&key) {
            return Ok(*u);
        }
        let totals = self.totals(objects, tree)?;
        let own = match origin {
            Some(o) => self.own(objects, o, tree)?,
            None => Own::all_of(&totals),
        };
        let (mut empty_directories, mut special_files) = (0, 0);
        for (path, entry) in residual.map().iter() {
            match entry {
                OverlayEntry::Special { .. } => special_files += 1,
                OverlayEntry::Dir { .. } if !path.is_empty() && !is_tree_dir(objects, tree, path)? => {
                    empty_directories += 1
                }
                _ => {}
            }
        }
        let usage = StateUsage {
            totals,
            empty_directories,
            special_files,
            own,
        };
        self.states.lock().put(key, usage);
        Ok(usage)
    }
}

/// Whether `path` names a directory of `tree`.
fn is_tree_dir(objects: &Objects, tree: ObjectId, path: &str) -> Result<bool> {
    let mut at = tree;
    for name in path.split('/') {
        match objects.tree(&at)?.get(name) {
            Some(e) if e.kind == EntryKind::Tree => at = e.oid,
            _ => return Ok(false),
        }
    }
    Ok(true)
}
