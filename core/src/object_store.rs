//! The git object store seam: where every tree, commit and small blob of every session, and
//! every ref, is kept. [`crate::odb::Odb`] (a local bare repository, `objects.git/`) is the one
//! implementation today; the factory (`stores::open`) chooses it from configuration.
//!
//! Git serving reads packs and loose objects directly, so every implementation keeps a local
//! git directory (`git_dir`, `repo`): a remote backend (S3) keeps its local cache there and
//! writes through. It knows nothing of sessions or overlays: callers give it paths, trees and
//! ref names. Every implementation passes the conformance suite in `core/tests/engine/stores/`.

use std::path::Path;

use gix::ObjectId;

use crate::config::Identity;
use crate::error::Result;
use gix::objs::tree::EntryKind;

pub trait ObjectStore: Send + Sync {
    /// The local git directory the objects and refs are in (see the module doc).
    fn git_dir(&self) -> &Path;
    /// A gix handle on [`ObjectStore::git_dir`], isolated from the host's git configuration.
    fn repo(&self) -> gix::Repository;
    /// Store a blob; its id whether or not it was stored before.
    fn write_blob(&self, data: &[u8]) -> Result<ObjectId>;
    fn contains(&self, oid: &ObjectId) -> bool;
    /// Kind and size of an object without reading its body; `None` when absent.
    fn header(&self, oid: &ObjectId) -> Result<Option<(gix::objs::Kind, u64)>>;
    /// Not found when absent or not a blob.
    fn read_blob(&self, oid: &ObjectId) -> Result<Vec<u8>>;
    /// The tree decoded in the session's spelling of names; not found when absent.
    fn read_tree(&self, oid: &ObjectId) -> Result<Tree>;
    /// Apply `edits` in order to `base` and write the resulting trees (see [`TreeEdit`]).
    fn edit_tree(&self, base: ObjectId, edits: &[TreeEdit]) -> Result<ObjectId>;
    fn empty_tree(&self) -> ObjectId;
    /// Write a commit by `author` (default: the store's identity, always its committer).
    fn write_commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        message: &str,
        author: Option<&Identity>,
        time_secs: i64,
    ) -> Result<ObjectId>;
    fn read_commit(&self, oid: &ObjectId) -> Result<CommitInfo>;
    /// A commit's tree, and whether the engine wrote it (its tree spells names the session's way).
    fn commit_tree_and_spelling(&self, oid: &ObjectId) -> Result<(ObjectId, bool)>;
    /// Point `name` at `target` (creating or moving it), with a reflog entry.
    fn set_ref(&self, name: &str, target: ObjectId, log_message: &str) -> Result<()>;
    fn find_ref(&self, name: &str) -> Result<Option<ObjectId>>;
    /// Every ref under `prefix` (which ends in `/`), with its full name and target.
    fn list_refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>>;
    /// Delete every ref under `prefix`.
    fn delete_refs(&self, prefix: &str) -> Result<()>;
    /// Delete the ref `name` (nothing when there is none).
    fn delete_ref(&self, name: &str) -> Result<()>;
    /// Packs were removed from [`ObjectStore::git_dir`]: forget their indexes, so that no
    /// lookup finds an object in a pack that is gone (see `repack`).
    fn packs_removed(&self);
}

/// One entry of a git tree, decoded; `name` is the session's spelling (see [`crate::tree_names`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub name: String,
    pub kind: EntryKind,
    pub oid: ObjectId,
}

/// A decoded tree, entries sorted by name bytes (not git order) for binary search.
#[derive(Debug, Default)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
    /// Entries whose names no session may hold (empty, `.`, `..`, holding `/`; see
    /// [`crate::names`]), which only a hand-made tree has (a hostile imported repository). They
    /// are never session entries; walks of the object graph (git serving) still follow them, so
    /// the tree's objects stay complete.
    pub hidden: Vec<TreeEntry>,
}

impl Tree {
    /// Every entry, hidden ones included: what the tree object references.
    pub fn all_entries(&self) -> impl Iterator<Item = &TreeEntry> {
        self.entries.iter().chain(&self.hidden)
    }

    /// Roughly the memory this decoded tree takes: its entries and their names (what a cache
    /// of trees is bounded by).
    pub fn heap_bytes(&self) -> u64 {
        let entry = std::mem::size_of::<TreeEntry>();
        let list = |v: &Vec<TreeEntry>| v.capacity() * entry + v.iter().map(|e| e.name.capacity()).sum::<usize>();
        (std::mem::size_of::<Tree>() + list(&self.entries) + list(&self.hidden)) as u64
    }

    pub fn get(&self, name: &str) -> Option<&TreeEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// One change applied by [`Odb::edit_tree`]. Paths are `/`-separated and normalized.
#[derive(Debug, Clone)]
pub enum TreeEdit {
    Upsert {
        path: String,
        kind: EntryKind,
        oid: ObjectId,
    },
    Remove {
        path: String,
    },
}

/// A commit, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: ObjectId,
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub author: Signature,
    pub committer: Signature,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    pub name: String,
    pub email: String,
    /// Seconds since the epoch.
    pub time: i64,
}
