//! Trees that came from outside (imported git history, a commit a git client made) turned into
//! the session's spelling of names before a session uses them.
//!
//! A session's trees escape names git reserves (see [`crate::tree_names`]): a session's `.git`
//! is the tree entry `.git~`, its `.git~` is `.git~~`. A foreign tree spells every name as
//! itself, so reading it with the session's un-escaping would show a file `.git~` as `.git`.
//! No renaming scheme can be the identity on every name git allows and also give the session's
//! `.git` a name git allows, so what decides is knowing which trees are foreign:
//!
//! - Commits the engine writes carry the header [`crate::tree_names::COMMIT_HEADER`]; their
//!   trees are in the session's spelling. Every other commit is foreign. The header travels
//!   with the commit: a clone of a session re-imported elsewhere reads exactly as the session
//!   did, while a commit rewritten by a git client (rebase, amend) is read as git shows it.
//! - A foreign tree is converted by escaping each of its names as if it were a session name
//!   ([`crate::tree_names::to_tree`]): only trees holding a reserved name followed by `~`s (and
//!   the trees above them) change, which is rare. The walk is iterative and bounded in depth;
//!   results are remembered (by tree id, which names content) so later revisions that share
//!   subtrees cost only what differs.
//!
//! The commits themselves never change: refs keep their ids and a fetch gets the history as
//! it was imported.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use gix::ObjectId;
use gix::bstr::BString;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::object_store::ObjectStore;
use crate::tree_names;

/// Deepest tree a conversion walks (git's own `core.maxTreeDepth` default).
pub const MAX_DEPTH: usize = 2048;

/// Converted trees remembered across calls (foreign tree id -> session tree id).
const REMEMBERED: usize = 64 * 1024;

/// Remembers conversions; one per engine.
pub struct Spelling {
    cache: Mutex<lru::LruCache<ObjectId, ObjectId>>,
}

impl Default for Spelling {
    fn default() -> Self {
        Spelling {
            cache: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(REMEMBERED).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

/// A tree being converted: its entries (names escaped as they are visited) and the slot in the
/// parent's entries that points at it.
struct Frame {
    oid: ObjectId,
    entries: Vec<gix::objs::tree::Entry>,
    next: usize,
    changed: bool,
    slot: usize,
}

impl Spelling {
    /// The tree of `commit` in the session's spelling: the commit's own tree when the engine
    /// wrote it, the converted tree otherwise. Blocking: call it from a blocking thread.
    pub fn session_tree(&self, odb: &dyn ObjectStore, commit: &ObjectId) -> Result<ObjectId> {
        let (tree, own) = odb.commit_tree_and_spelling(commit)?;
        if own { Ok(tree) } else { self.convert(odb, tree) }
    }

    /// `tree` (foreign) in the session's spelling; the same id when no name in it needs a
    /// change.
    pub fn convert(&self, odb: &dyn ObjectStore, tree: ObjectId) -> Result<ObjectId> {
        if let Some(done) = self.remembered(odb, &tree) {
            return Ok(done);
        }
        let repo = odb.repo();
        let load = |oid: ObjectId, slot: usize| -> Result<Frame> {
            let found = crate::odb::find_object(&repo, &oid, Some(gix::objs::Kind::Tree), "tree")?.into_tree();
            let decoded = found.decode().map_err(Error::odb)?;
            Ok(Frame {
                oid,
                entries: decoded.entries.iter().map(|e| (*e).into()).collect(),
                next: 0,
                changed: false,
                slot,
            })
        };
        let mut done: HashMap<ObjectId, ObjectId> = HashMap::new();
        let mut stack = vec![load(tree, 0)?];
        loop {
            let Some(top) = stack.last_mut() else {
                return Err(Error::Corrupt("tree conversion lost its root".into()));
            };
            if top.next < top.entries.len() {
                let slot = top.next;
                top.next += 1;
                let entry = &mut top.entries[slot];
                if let std::borrow::Cow::Owned(escaped) = tree_names::to_tree_bytes(&entry.filename) {
                    entry.filename = BString::from(escaped);
                    top.changed = true;
                }
                if entry.mode.is_link() {
                    // A symlink's target is a blob: one larger than any target a session
                    // takes would be read whole by every stat of it.
                    let size = odb.header(&entry.oid)?.map_or(0, |(_, n)| n);
                    if size > crate::names::MAX_SYMLINK_TARGET as u64 {
                        return Err(Error::TooLarge {
                            what: format!(
                                "the symlink target ({size} bytes) of '{}' in tree {}",
                                String::from_utf8_lossy(&entry.filename)
                                    .chars()
                                    .take(120)
                                    .collect::<String>(),
                                top.oid
                            ),
                            limit: crate::names::MAX_SYMLINK_TARGET as u64,
                        });
                    }
                    continue;
                }
                if !entry.mode.is_tree() {
                    continue;
                }
                let child = entry.oid;
                let known = done.get(&child).copied().or_else(|| self.remembered(odb, &child));
                match known {
                    Some(converted) => {
                        if converted != child {
                            entry.oid = converted;
                            top.changed = true;
                        }
                    }
                    None => {
                        if stack.len() >= MAX_DEPTH {
                            return Err(Error::TooLarge {
                                what: format!("depth of tree {tree}"),
                                limit: MAX_DEPTH as u64,
                            });
                        }
                        stack.push(load(child, slot)?);
                    }
                }
                continue;
            }
            let Some(frame) = stack.pop() else { break };
            let converted = if frame.changed {
                let mut entries = frame.entries;
                entries.sort();
                let tree = gix::objs::Tree { entries };
                repo.write_object(&tree).map_err(Error::odb)?.detach()
            } else {
                frame.oid
            };
            done.insert(frame.oid, converted);
            match stack.last_mut() {
                Some(parent) => {
                    if converted != frame.oid {
                        parent.entries[frame.slot].oid = converted;
                        parent.changed = true;
                    }
                }
                None => {
                    let mut cache = self.cache.lock();
                    for (from, to) in done {
                        cache.put(from, to);
                    }
                    return Ok(converted);
                }
            }
        }
        Err(Error::Corrupt("tree conversion lost its root".into()))
    }

    /// A remembered conversion whose result is still stored.
    fn remembered(&self, odb: &dyn ObjectStore, tree: &ObjectId) -> Option<ObjectId> {
        let hit = self.cache.lock().get(tree).copied()?;
        (hit == *tree || odb.contains(&hit)).then_some(hit)
    }
}
