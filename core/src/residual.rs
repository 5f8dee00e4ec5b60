//! The frozen residual of a session or revision (the POSIX details git cannot hold: modes,
//! mtimes, owners, hard-link groups, empty directories, special files) as a persistent,
//! content-addressed map keyed by path, so forks, checkpoints and restores share it by
//! reference and change it by path copying.
//!
//! Shape: a tree of small nodes (a prolly tree). The leaves hold the entries in bytewise path
//! order; an internal node holds `(first key of a child, child id)` pairs. A level is cut into
//! nodes after every key whose hash (salted with the level) hits a fixed pattern, so where a
//! node ends depends on that key alone: the tree is a function of the map's contents, never of
//! the order of the changes that built it. Two sessions holding the same residual hold the same
//! root id; a change of one path rewrites the leaf holding it (or it and a neighbour, when the
//! change adds or removes a cut) and one node per level above it, nothing else. Nodes are
//! stored once by their blake3 id (`meta`, table `residual_nodes`) and never change; a session
//! or revision names its residual by the root id (`None`: empty).
//!
//! This module owns the encoding, the incremental update and the rebuilding from stored nodes.
//! It knows no store and no session: the caller persists the nodes [`Residual::apply`] returns
//! and feeds [`Residual::load`] the nodes it asks for.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use crate::error::{Error, Result};
use crate::overlay::{Overlay, OverlayEntry, Owner};
use crate::store_error::{StoreError, StoreKind};

/// Bytes of a node id.
pub const ID_LEN: usize = 16;

/// A node's id: the first 128 bits of the blake3 hash of its encoding. Half a hash is plenty to
/// name metadata nodes (two of 2^32 nodes collide with odds of 2^-65), and each internal node
/// holds one per child, so the shorter id is a third of what a change rewrites. A node read
/// back is checked against its id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; ID_LEN]);

impl NodeId {
    pub fn of(data: &[u8]) -> NodeId {
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&blake3::hash(data).as_bytes()[..ID_LEN]);
        NodeId(id)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From [`ID_LEN`] bytes (as a store keeps it); `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<NodeId> {
        bytes.try_into().ok().map(NodeId)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.to_hex())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One stored node: its id and encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidualNode {
    pub id: NodeId,
    pub data: Arc<[u8]>,
}

/// Where a node ends: after a key whose hash (salted with the level) hits 1 in `*_ODDS`, once
/// the node holds `*_MIN` bytes, and always once it holds `MAX_NODE`. The bounds avoid the long
/// tail of a pure hash cut; the decision depends only on the entries since the node began, so
/// the tree stays a function of its contents. A change rewrites one node per level, a few
/// hundred bytes each; smaller or narrower nodes add levels and rows about as fast as they
/// save bytes (measured: 10 scattered changes of a 40k-entry residual write 9-10 KB of nodes
/// for every setting tried).
const LEAF_MIN: usize = 160;
const LEAF_ODDS: u32 = 8;
const INNER_MIN: usize = 160;
const INNER_ODDS: u32 = 4;
const MAX_NODE: usize = 1024;

fn is_cut(level: u8, key: &str, size: usize) -> bool {
    let (min, odds) = if level == 0 {
        (LEAF_MIN, LEAF_ODDS)
    } else {
        (INNER_MIN, INNER_ODDS)
    };
    if size < min {
        return false;
    }
    if size >= MAX_NODE {
        return true;
    }
    let mut h = blake3::Hasher::new();
    h.update(&[level]);
    h.update(key.as_bytes());
    let b = h.finalize();
    let v = u32::from_le_bytes([b.as_bytes()[0], b.as_bytes()[1], b.as_bytes()[2], b.as_bytes()[3]]);
    v.is_multiple_of(odds)
}

/// The bytes of a node being cut, as entries are pushed.
struct Chunker<'a, V> {
    level: u8,
    cur: Vec<(&'a String, &'a V)>,
    size: usize,
    scratch: Vec<u8>,
    prev: i64,
}

impl<'a, V: Value> Chunker<'a, V> {
    fn new(level: u8) -> Self {
        Chunker {
            level,
            cur: Vec::new(),
            size: 0,
            scratch: Vec::new(),
            prev: 0,
        }
    }

    /// Add an entry; the node it completes, if it does.
    fn push(&mut self, k: &'a String, v: &'a V) -> Option<(String, ResidualNode)> {
        let shared = self.cur.last().map_or(0, |(p, _)| shared_prefix(p, k));
        self.scratch.clear();
        v.encode(&mut self.scratch, &mut self.prev);
        self.size += 2 + k.len() - shared + self.scratch.len();
        self.cur.push((k, v));
        if is_cut(self.level, k, self.size) {
            return self.finish();
        }
        None
    }

    fn finish(&mut self) -> Option<(String, ResidualNode)> {
        if self.cur.is_empty() {
            return None;
        }
        let out = emit(self.level, &self.cur);
        self.cur.clear();
        self.size = 0;
        self.prev = 0;
        Some(out)
    }
}

fn shared_prefix(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (0..=n).rev().find(|&i| b.is_char_boundary(i)).unwrap_or(0)
}

const KIND_LEAF: u8 = 0;
const KIND_INNER: u8 = 1;

/// The frozen residual: the map itself (an [`Overlay`], so a session adopts it without a copy),
/// the index of every level above the leaves, and the root id.
#[derive(Debug, Clone, Default)]
pub struct Residual {
    map: Overlay,
    /// `levels[i]`: the nodes of level `i` by their first key (`levels[0]` indexes the leaves).
    /// Every level kept has at least two nodes; the single node above the last is the root.
    levels: Vec<OrdMap<String, NodeId>>,
    root: Option<NodeId>,
}

impl PartialEq for Residual {
    /// Same root, same contents (the tree is a function of its contents).
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root
    }
}

impl Eq for Residual {}

impl Residual {
    /// The root id (`None`: no entry).
    pub fn root(&self) -> Option<NodeId> {
        self.root
    }

    /// The entries, as an overlay (shared, not copied).
    pub fn map(&self) -> &Overlay {
        &self.map
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A residual holding `entries`, with every node it needs (all of them are new to the
    /// caller). For records stored before residuals were shared.
    pub fn build(entries: impl IntoIterator<Item = (String, OverlayEntry)>) -> (Residual, Vec<ResidualNode>) {
        Residual::default().apply(entries.into_iter().map(|(k, e)| (k, Some(e))))
    }

    /// This residual with `changes` made (`None`: the path has no entry), and the nodes the new
    /// one has that this one does not. Costs what changed: unchanged nodes are neither encoded
    /// nor returned.
    pub fn apply(
        &self,
        changes: impl IntoIterator<Item = (String, Option<OverlayEntry>)>,
    ) -> (Residual, Vec<ResidualNode>) {
        let mut map = self.map.clone();
        let mut changed = BTreeSet::new();
        for (k, e) in changes {
            match e {
                Some(e) => {
                    if map.get(&k) != Some(&e) {
                        map.insert(k.clone(), e);
                        changed.insert(k);
                    }
                }
                None => {
                    if map.get(&k).is_some() {
                        map.remove(&k);
                        changed.insert(k);
                    }
                }
            }
        }
        if changed.is_empty() {
            return (self.clone(), Vec::new());
        }
        let mut nodes = Vec::new();
        let old_idx = self.index_of(0);
        let (mut idx, mut idx_changed) = rechunk(
            0,
            self.map.entries(),
            map.entries(),
            old_idx.as_ref(),
            &changed,
            &mut nodes,
        );
        let mut old_data = old_idx.unwrap_or_default();
        let mut levels = Vec::new();
        let mut level: usize = 0;
        let root = loop {
            if idx.len() <= 1 {
                break idx.values().next().copied();
            }
            levels.push(idx.clone());
            level += 1;
            let old_idx = self.index_of(level);
            let (next, next_changed) =
                rechunk(level as u8, &old_data, &idx, old_idx.as_ref(), &idx_changed, &mut nodes);
            old_data = old_idx.unwrap_or_default();
            idx = next;
            idx_changed = next_changed;
        };
        (Residual { map, levels, root }, nodes)
    }

    /// The index (first key -> node id) of level `level`'s nodes, as this residual stores it;
    /// `None` above its root.
    fn index_of(&self, level: usize) -> Option<OrdMap<String, NodeId>> {
        if level < self.levels.len() {
            return Some(self.levels[level].clone());
        }
        if level > self.levels.len() {
            return None;
        }
        let root = self.root?;
        let first = if level == 0 {
            self.map.entries().keys().next().cloned()
        } else {
            self.levels[level - 1].keys().next().cloned()
        }?;
        Some(OrdMap::unit(first, root))
    }

    /// Rebuild the residual named `root` from its stored nodes. `fetch` returns the nodes of
    /// the ids it is given (one call per level); a node missing, damaged (its id does not match
    /// its bytes) or undecodable is corruption.
    pub async fn load<F, Fut>(root: Option<NodeId>, mut fetch: F) -> Result<Residual>
    where
        F: FnMut(Vec<NodeId>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(NodeId, Vec<u8>)>>>,
    {
        let Some(root) = root else {
            return Ok(Residual::default());
        };
        let mut frontier = vec![root];
        let mut entries: Vec<(String, OverlayEntry)> = Vec::new();
        let mut levels: Vec<OrdMap<String, NodeId>> = Vec::new();
        // The level every node of the frontier must have (`None`: the root, any level).
        let mut expect: Option<usize> = None;
        while !frontier.is_empty() {
            let got = fetch(frontier.clone()).await?;
            let by_id: std::collections::HashMap<NodeId, Vec<u8>> = got.into_iter().collect();
            let mut next = Vec::new();
            let want = expect;
            let mut this_level = 0;
            for id in &frontier {
                let data = by_id
                    .get(id)
                    .ok_or_else(|| corrupt(format!("residual node {id} is missing")))?;
                if NodeId::of(data) != *id {
                    return Err(corrupt(format!("residual node {id} does not match its id")));
                }
                let decoded = decode(data).map_err(|e| corrupt(format!("residual node {id}: {e}")))?;
                let level = match &decoded {
                    Decoded::Leaf(_) => 0,
                    Decoded::Inner(l, _) => *l as usize,
                };
                if want.is_some_and(|e| e != level) || level > 64 {
                    return Err(corrupt(format!("residual node {id}: level {level} out of place")));
                }
                if want.is_none() {
                    levels.resize(level, OrdMap::new());
                }
                this_level = level;
                match decoded {
                    Decoded::Leaf(es) => entries.extend(es),
                    Decoded::Inner(0, _) => return Err(corrupt(format!("residual node {id}: inner node at level 0"))),
                    Decoded::Inner(_, children) => {
                        for (k, child) in children {
                            next.push(child);
                            levels[level - 1].insert(k, child);
                        }
                    }
                }
            }
            expect = Some(this_level.saturating_sub(1));
            frontier = next;
        }
        Ok(Residual {
            map: Overlay::from_entries(entries),
            levels,
            root: Some(root),
        })
    }

    /// Every node id of this residual (root included), for tests and checks.
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self.root.into_iter().collect();
        for l in &self.levels {
            out.extend(l.values().copied());
        }
        out
    }
}

fn corrupt(what: String) -> Error {
    Error::Store(StoreError::corrupt(StoreKind::Metadata, what))
}

/// A value a level holds: an entry in a leaf, a child id in an internal node.
/// `prev`: the mtime of the entry before in the same node (0 for the first), since mtimes are
/// stored as differences from it.
trait Value: Clone + PartialEq {
    fn encode(&self, out: &mut Vec<u8>, prev: &mut i64);
}

impl Value for OverlayEntry {
    fn encode(&self, out: &mut Vec<u8>, prev: &mut i64) {
        encode_entry(self, out, prev)
    }
}

impl Value for NodeId {
    fn encode(&self, out: &mut Vec<u8>, _: &mut i64) {
        out.extend_from_slice(&self.0)
    }
}

/// Cut `new` (level `level`'s data) into nodes where it differs from `old`, whose nodes
/// `old_idx` indexes (`None`: build every node). `changed`: the keys that differ. Returns the
/// new index and the keys of it that changed; pushes every new node.
fn rechunk<V: Value>(
    level: u8,
    old: &OrdMap<String, V>,
    new: &OrdMap<String, V>,
    old_idx: Option<&OrdMap<String, NodeId>>,
    changed: &BTreeSet<String>,
    nodes: &mut Vec<ResidualNode>,
) -> (OrdMap<String, NodeId>, BTreeSet<String>) {
    let Some(old_idx) = old_idx.filter(|i| !i.is_empty()) else {
        let mut idx = OrdMap::new();
        let mut keys = BTreeSet::new();
        let mut chunker = Chunker::new(level);
        let mut done = |(first, node): (String, ResidualNode)| {
            keys.insert(first.clone());
            idx.insert(first, node.id);
            nodes.push(node);
        };
        for (k, v) in new.iter() {
            if let Some(n) = chunker.push(k, v) {
                done(n);
            }
        }
        if let Some(n) = chunker.finish() {
            done(n);
        }
        return (idx, keys);
    };
    let first_start = old_idx.keys().next().cloned().unwrap_or_default();
    // The old nodes holding a changed key (a key before every node belongs to the first).
    let affected: BTreeSet<String> = changed
        .iter()
        .map(|k| {
            old_idx
                .range::<_, str>((Bound::Unbounded, Bound::Included(k.as_str())))
                .next_back()
                .map_or_else(|| first_start.clone(), |(s, _)| s.clone())
        })
        .collect();
    let mut idx = old_idx.clone();
    let mut idx_changed = BTreeSet::new();
    // Keys below this are done (`Some(None)`: everything is).
    let mut covered: Option<Option<String>> = None;
    for s in &affected {
        match &covered {
            Some(None) => break,
            Some(Some(end)) if s < end => continue,
            _ => {}
        }
        // The region starts right after the (unchanged) node before `s`.
        let lo = if *s == first_start {
            Bound::Unbounded
        } else {
            match old
                .range::<_, str>((Bound::Unbounded, Bound::Excluded(s.as_str())))
                .next_back()
            {
                Some((p, _)) => Bound::Excluded(p.clone()),
                None => Bound::Unbounded,
            }
        };
        let mut emitted: Vec<(String, ResidualNode)> = Vec::new();
        let mut chunker = Chunker::new(level);
        let mut end: Option<String> = None;
        let mut iter = new.range::<_, String>((lo, Bound::Unbounded)).peekable();
        while let Some((k, v)) = iter.next() {
            if let Some(n) = chunker.push(k, v) {
                emitted.push(n);
                // In step with the old nodes again from here (a node begins at the same key
                // and nothing changed in it): the rest of the level is as it was.
                if let Some((n, _)) = iter.peek()
                    && old_idx.contains_key(*n)
                    && !affected.contains(*n)
                {
                    end = Some((*n).clone());
                    break;
                }
            }
        }
        if let Some(n) = chunker.finish() {
            emitted.push(n);
        }
        // Replace the old nodes of the region by the emitted ones, leaving equal ones alone.
        let upper = match &end {
            Some(e) => Bound::Excluded(e.as_str()),
            None => Bound::Unbounded,
        };
        let replaced: Vec<(String, NodeId)> = old_idx
            .range::<_, str>((Bound::Included(s.as_str()), upper))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (k, id) in &replaced {
            if !emitted.iter().any(|(ek, n)| ek == k && n.id == *id) {
                idx.remove(k);
                idx_changed.insert(k.clone());
            }
        }
        for (k, node) in emitted {
            if replaced.iter().any(|(rk, id)| *rk == k && *id == node.id) {
                continue;
            }
            idx.insert(k.clone(), node.id);
            idx_changed.insert(k);
            nodes.push(node);
        }
        covered = Some(end);
    }
    (idx, idx_changed)
}

/// Encode one node of `level` holding `entries` (sorted, at least one).
fn emit<V: Value>(level: u8, entries: &[(&String, &V)]) -> (String, ResidualNode) {
    let mut out = Vec::with_capacity(32 + entries.len() * 24);
    if level == 0 {
        out.push(KIND_LEAF);
    } else {
        out.push(KIND_INNER);
        out.push(level);
    }
    put_varint(&mut out, entries.len() as u64);
    let mut prev: &str = "";
    let mut prev_mtime = 0;
    for (k, v) in entries {
        // Keys share long prefixes: keep only what differs from the previous one.
        let shared = shared_prefix(prev, k);
        put_varint(&mut out, shared as u64);
        put_bytes(&mut out, &k.as_bytes()[shared..]);
        v.encode(&mut out, &mut prev_mtime);
        prev = k.as_str();
    }
    let id = NodeId::of(&out);
    (entries[0].0.clone(), ResidualNode { id, data: out.into() })
}

enum Decoded {
    Leaf(Vec<(String, OverlayEntry)>),
    Inner(u8, Vec<(String, NodeId)>),
}

/// The child ids of a stored node (none for a leaf), for walks that need no entries (gc).
pub fn children(data: &[u8]) -> Result<Vec<NodeId>> {
    match decode(data).map_err(|e| corrupt(format!("residual node: {e}")))? {
        Decoded::Leaf(_) => Ok(Vec::new()),
        Decoded::Inner(_, c) => Ok(c.into_iter().map(|(_, id)| id).collect()),
    }
}

fn decode(data: &[u8]) -> std::result::Result<Decoded, String> {
    let mut r = Reader { data, pos: 0 };
    let kind = r.byte()?;
    let level = if kind == KIND_INNER { r.byte()? } else { 0 };
    if kind != KIND_LEAF && kind != KIND_INNER {
        return Err(format!("unknown node kind {kind}"));
    }
    let count = r.varint()? as usize;
    let mut key = Vec::<u8>::new();
    let mut prev_mtime = 0;
    let mut leaf = Vec::new();
    let mut inner = Vec::new();
    for _ in 0..count.min(data.len()) {
        let shared = r.varint()? as usize;
        let suffix = r.bytes()?;
        if shared > key.len() {
            return Err("bad key prefix".into());
        }
        key.truncate(shared);
        key.extend_from_slice(suffix);
        let k = String::from_utf8(key.clone()).map_err(|_| "key is not UTF-8".to_owned())?;
        if kind == KIND_LEAF {
            leaf.push((k, decode_entry(&mut r, &mut prev_mtime)?));
        } else {
            let id = NodeId::from_slice(r.take(ID_LEN)?).ok_or("bad child id")?;
            inner.push((k, id));
        }
    }
    if r.pos != data.len() {
        return Err("trailing bytes".into());
    }
    Ok(if kind == KIND_LEAF {
        Decoded::Leaf(leaf)
    } else {
        Decoded::Inner(level, inner)
    })
}

// Entry encoding: a tag, then for the two kinds nearly every residual entry is (attributes of
// a file from the base, a directory) a compact binary form; anything else its JSON.
const TAG_JSON: u8 = 0;
const TAG_ATTR: u8 = 1;
const TAG_DIR: u8 = 2;
const F_OWNER: u8 = 1;
const F_UID: u8 = 2;
const F_GID: u8 = 4;
const F_LINK: u8 = 8;
const F_OPAQUE: u8 = 16;

fn owner_flags(owner: &Option<Owner>) -> u8 {
    match owner {
        None => 0,
        Some(o) => F_OWNER | if o.uid.is_some() { F_UID } else { 0 } | if o.gid.is_some() { F_GID } else { 0 },
    }
}

fn put_owner(out: &mut Vec<u8>, owner: &Option<Owner>) {
    if let Some(o) = owner {
        if let Some(u) = o.uid {
            put_varint(out, u as u64);
        }
        if let Some(g) = o.gid {
            put_varint(out, g as u64);
        }
    }
}

/// An mtime as the zigzag varint of its difference from `prev` (files written together have
/// mtimes close together: a few bytes instead of eight).
fn put_mtime(out: &mut Vec<u8>, mtime: i64, prev: &mut i64) {
    let d = mtime.wrapping_sub(*prev);
    put_varint(out, ((d << 1) ^ (d >> 63)) as u64);
    *prev = mtime;
}

fn encode_entry(e: &OverlayEntry, out: &mut Vec<u8>, prev: &mut i64) {
    match e {
        OverlayEntry::Attr {
            mode,
            mtime,
            owner,
            link,
        } => {
            out.push(TAG_ATTR);
            out.push(owner_flags(owner) | if link.is_some() { F_LINK } else { 0 });
            put_varint(out, *mode as u64);
            put_mtime(out, *mtime, prev);
            put_owner(out, owner);
            if let Some(l) = link {
                put_varint(out, *l);
            }
        }
        OverlayEntry::Dir {
            opaque,
            mode,
            mtime,
            owner,
        } => {
            out.push(TAG_DIR);
            out.push(owner_flags(owner) | if *opaque { F_OPAQUE } else { 0 });
            put_varint(out, *mode as u64);
            put_mtime(out, *mtime, prev);
            put_owner(out, owner);
        }
        other => {
            out.push(TAG_JSON);
            // Serializing an entry cannot fail (no maps with non-string keys, no floats).
            put_bytes(out, &serde_json::to_vec(other).unwrap_or_default());
        }
    }
}

fn decode_entry(r: &mut Reader<'_>, prev: &mut i64) -> std::result::Result<OverlayEntry, String> {
    let tag = r.byte()?;
    if tag == TAG_JSON {
        return serde_json::from_slice(r.bytes()?).map_err(|e| e.to_string());
    }
    let flags = r.byte()?;
    let mode = u32::try_from(r.varint()?).map_err(|_| "mode out of range")?;
    let z = r.varint()?;
    let mtime = prev.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
    *prev = mtime;
    let owner = if flags & F_OWNER != 0 {
        let uid = if flags & F_UID != 0 { Some(r.u32()?) } else { None };
        let gid = if flags & F_GID != 0 { Some(r.u32()?) } else { None };
        Some(Owner { uid, gid })
    } else {
        None
    };
    match tag {
        TAG_ATTR => {
            let link = if flags & F_LINK != 0 { Some(r.varint()?) } else { None };
            Ok(OverlayEntry::Attr {
                mode,
                mtime,
                owner,
                link,
            })
        }
        TAG_DIR => Ok(OverlayEntry::Dir {
            opaque: flags & F_OPAQUE != 0,
            mode,
            mtime,
            owner,
        }),
        t => Err(format!("unknown entry tag {t}")),
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("truncated node")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        u32::try_from(self.varint()?).map_err(|_| "value out of range".into())
    }

    fn bytes(&mut self) -> std::result::Result<&'a [u8], String> {
        let n = self.varint()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::future::Future;

    use super::*;
    use crate::overlay::SpecialKind;

    fn attr(mtime: i64) -> OverlayEntry {
        OverlayEntry::Attr {
            mode: 0o644,
            mtime,
            owner: None,
            link: None,
        }
    }

    fn store(nodes: &[ResidualNode], into: &mut HashMap<NodeId, Vec<u8>>) {
        for n in nodes {
            into.insert(n.id, n.data.to_vec());
        }
    }

    fn reload(root: Option<NodeId>, nodes: &HashMap<NodeId, Vec<u8>>) -> Residual {
        let fetch = |ids: Vec<NodeId>| {
            let out: Vec<_> = ids
                .iter()
                .filter_map(|i| nodes.get(i).map(|d| (*i, d.clone())))
                .collect();
            async move { Ok(out) }
        };
        let mut fut = std::pin::pin!(Residual::load(root, fetch));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r.unwrap(),
            std::task::Poll::Pending => unreachable!("the fetch is ready at once"),
        }
    }

    fn entries(r: &Residual) -> Vec<(String, OverlayEntry)> {
        r.map().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    #[test]
    fn every_entry_kind_round_trips() {
        let all = vec![
            (
                String::new(),
                OverlayEntry::Dir {
                    opaque: false,
                    mode: 0o700,
                    mtime: -5,
                    owner: Some(Owner {
                        uid: None,
                        gid: Some(7),
                    }),
                },
            ),
            (
                "a".into(),
                OverlayEntry::Attr {
                    mode: 0o100755,
                    mtime: i64::MAX,
                    owner: Some(Owner {
                        uid: Some(0),
                        gid: None,
                    }),
                    link: Some(3),
                },
            ),
            (
                "a/é".into(),
                OverlayEntry::Attr {
                    mode: 0,
                    mtime: 0,
                    owner: Some(Owner::default()),
                    link: None,
                },
            ),
            (
                "b".into(),
                OverlayEntry::Special {
                    kind: SpecialKind::CharDevice,
                    rdev: 9,
                    mode: 0o600,
                    mtime: 1,
                    owner: None,
                    link: Some(2),
                },
            ),
            (
                "c".into(),
                OverlayEntry::Dir {
                    opaque: true,
                    mode: 0o755,
                    mtime: 2,
                    owner: None,
                },
            ),
            ("d".into(), OverlayEntry::Deleted),
        ];
        let (r, nodes) = Residual::build(all.clone());
        let mut stored = HashMap::new();
        store(&nodes, &mut stored);
        assert_eq!(entries(&reload(r.root(), &stored)), all);
    }

    #[test]
    fn the_tree_depends_on_contents_not_history_and_changes_cost_what_changed() {
        let mut stored = HashMap::new();
        let mut reference = BTreeMap::new();
        let (mut r, nodes) = Residual::build((0..5000).map(|i| (format!("d{}/f{i}", i % 37), attr(i))));
        for i in 0..5000 {
            reference.insert(format!("d{}/f{i}", i % 37), attr(i));
        }
        store(&nodes, &mut stored);
        assert!(nodes.len() > 100, "small nodes: {}", nodes.len());
        // Scattered changes, removals and inserts, in rounds.
        for round in 0..20i64 {
            let changes: Vec<(String, Option<OverlayEntry>)> = (0..10)
                .map(|k| {
                    let i = (round * 7919 + k * 499) % 6000;
                    let key = format!("d{}/f{i}", i % 37);
                    if k % 3 == 0 {
                        (key, None)
                    } else {
                        (key, Some(attr(round * 100 + k)))
                    }
                })
                .collect();
            for (k, e) in &changes {
                match e {
                    Some(e) => reference.insert(k.clone(), e.clone()),
                    None => reference.remove(k),
                };
            }
            let (next, nodes) = r.apply(changes);
            let bytes: usize = nodes.iter().map(|n| n.data.len()).sum();
            assert!(
                bytes < 12 * 1024,
                "round {round}: 10 changes wrote {bytes} bytes in {} nodes",
                nodes.len()
            );
            store(&nodes, &mut stored);
            r = next;
            let fresh = Residual::build(reference.clone()).0;
            assert_eq!(r.root(), fresh.root(), "round {round}: same contents, same root");
            assert_eq!(r.node_ids().len(), fresh.node_ids().len());
        }
        let loaded = reload(r.root(), &stored);
        assert_eq!(entries(&loaded), reference.into_iter().collect::<Vec<_>>());
        // Loaded or built, the same structure: a change of the loaded one writes the same nodes.
        let change = vec![("d1/zzz".to_owned(), Some(attr(1)))];
        let (a, na) = r.apply(change.clone());
        let (b, nb) = loaded.apply(change);
        assert_eq!((a.root(), na), (b.root(), nb));
    }

    #[test]
    fn random_changes_of_small_maps_match_a_fresh_build() {
        // Small maps hit the edges: one node, a level appearing or going, the first and last
        // nodes changing, everything removed.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut stored = HashMap::new();
        for _ in 0..30 {
            let mut reference = BTreeMap::new();
            let mut r = Residual::default();
            for _ in 0..40 {
                let batch = 1 + next(60);
                let changes: Vec<(String, Option<OverlayEntry>)> = (0..batch)
                    .map(|_| {
                        let key = format!("k{:03}", next(400));
                        if next(3) == 0 {
                            (key, None)
                        } else {
                            (key, Some(attr(next(1000) as i64)))
                        }
                    })
                    .collect();
                for (k, e) in &changes {
                    match e {
                        Some(e) => reference.insert(k.clone(), e.clone()),
                        None => reference.remove(k),
                    };
                }
                let (n, nodes) = r.apply(changes);
                store(&nodes, &mut stored);
                r = n;
                let fresh = Residual::build(reference.clone()).0;
                assert_eq!(r.root(), fresh.root());
                assert_eq!(r.levels, fresh.levels);
            }
            assert_eq!(
                entries(&reload(r.root(), &stored)),
                reference.clone().into_iter().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn emptied_and_regrown() {
        let (r, _) = Residual::build((0..300).map(|i| (format!("f{i}"), attr(i))));
        let (empty, nodes) = r.apply((0..300).map(|i| (format!("f{i}"), None)));
        assert!(empty.root().is_none() && empty.is_empty() && nodes.is_empty());
        let (one, nodes) = empty.apply([("x".to_owned(), Some(attr(1)))]);
        assert_eq!(nodes.len(), 1);
        assert_eq!(one.root(), Some(nodes[0].id));
        let (again, _) = one.apply((0..300).map(|i| (format!("f{i}"), Some(attr(i)))));
        let (expected, _) = Residual::build(
            (0..300)
                .map(|i| (format!("f{i}"), attr(i)))
                .chain([("x".to_owned(), attr(1))]),
        );
        assert_eq!(again.root(), expected.root());
    }
}

#[cfg(test)]
mod shape {
    use super::*;

    /// Ten scattered changes in a 40k-entry residual write a few small nodes (one path of the
    /// tree per change), not a share of the whole: what keeps a checkpoint's metadata growth
    /// under 16 KiB whatever the session wrote before.
    #[test]
    fn ten_changes_in_forty_thousand_entries_write_a_few_kib() {
        let attr = |m: i64| OverlayEntry::Attr {
            mode: 0o100644,
            mtime: 1_765_000_000_000_000_000 + m * 137_000,
            owner: None,
            link: None,
        };
        let (r, built) = Residual::build((0..40_000).map(|i| (format!("d{}/f{i}.txt", i / 100), attr(i))));
        let whole: usize = built.iter().map(|n| n.data.len()).sum();
        let (_, nodes) = r.apply((0..10).map(|k| {
            let i = (7919 + k * 4000) % 40_000;
            (format!("d{}/f{i}.txt", i / 100), Some(attr(-5)))
        }));
        let written: usize = nodes.iter().map(|n| n.data.len()).sum();
        assert!(!nodes.is_empty());
        assert!(
            nodes.len() <= 10 * r.levels.len() + 1,
            "{} nodes for 10 changes at {} levels",
            nodes.len(),
            r.levels.len()
        );
        assert!(written < 16 * 1024, "10 changes wrote {written} B");
        assert!(written * 50 < whole, "10 changes wrote {written} B of {whole}");
    }
}
