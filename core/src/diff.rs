//! Which paths differ between two git trees. Subtrees with equal ids are skipped without being
//! read, so the cost follows the size of the change, not of the trees. The walk is iterative
//! (an explicit stack of tree pairs, so no tree is too deep for a thread's stack) and bounded:
//! a change deeper than [`Limits::max_tree_depth`] or more changes than
//! [`Limits::max_walk_entries`] is refused as too large.

use std::cmp::Ordering;
use std::sync::Arc;

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use serde::Serialize;

use crate::config::Limits;
use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::odb::{Tree, TreeEntry};
use crate::walk::shown;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Deleted,
    Modified,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    pub change: ChangeKind,
}

/// A pair of trees being compared at a path (the first `len` bytes of the walk's path buffer).
struct Frame {
    old: Arc<Tree>,
    new: Arc<Tree>,
    i: usize,
    j: usize,
    len: usize,
    /// Components in the path.
    depth: usize,
    /// The change of a file at `prefix` itself (a file replaced by a directory or the other
    /// way round), reported after everything below it, where a recursive walk put it.
    after: Option<Change>,
}

fn tree_of(objects: &Objects, oid: Option<ObjectId>) -> Result<Arc<Tree>> {
    match oid {
        Some(t) => objects.tree(&t),
        None => Ok(Arc::new(Tree::default())),
    }
}

fn push(out: &mut Vec<Change>, change: Change, limits: &Limits) -> Result<()> {
    if out.len() as u64 >= limits.max_walk_entries {
        return Err(Error::TooLarge {
            what: "the number of changed paths".into(),
            limit: limits.max_walk_entries,
        });
    }
    out.push(change);
    Ok(())
}

/// Changes from `old` to `new` (either may be absent: everything added or deleted), files only,
/// in path order.
pub fn diff_trees(
    objects: &Objects,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    limits: &Limits,
) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    if old == new {
        return Ok(out);
    }
    // The path of the frame on top; each frame knows its length, so a deep tree costs its depth
    // in bytes, not the sum of its paths.
    let mut prefix = String::new();
    let mut stack = vec![Frame {
        old: tree_of(objects, old)?,
        new: tree_of(objects, new)?,
        i: 0,
        j: 0,
        len: 0,
        depth: 0,
        after: None,
    }];
    while let Some(top) = stack.last_mut() {
        let (a, b) = (top.old.entries.get(top.i), top.new.entries.get(top.j));
        let order = match (a, b) {
            (None, None) => {
                if let Some(done) = stack.pop().and_then(|f| f.after) {
                    push(&mut out, done, limits)?;
                }
                prefix.truncate(stack.last().map_or(0, |f| f.len));
                continue;
            }
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
        };
        let (left, right): (Option<TreeEntry>, Option<TreeEntry>) = match order {
            Ordering::Less => (a.cloned(), None),
            Ordering::Greater => (None, b.cloned()),
            Ordering::Equal => (a.cloned(), b.cloned()),
        };
        if order != Ordering::Greater {
            top.i += 1;
        }
        if order != Ordering::Less {
            top.j += 1;
        }
        let name = left
            .as_ref()
            .or(right.as_ref())
            .map(|e| e.name.as_str())
            .unwrap_or_default();
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let depth = top.depth + 1;
        let tree = |e: &Option<TreeEntry>| e.as_ref().filter(|e| e.kind == EntryKind::Tree).map(|e| e.oid);
        let file = |e: &Option<TreeEntry>| e.clone().filter(|e| e.kind != EntryKind::Tree);
        let (lt, rt) = (tree(&left), tree(&right));
        let change = match (file(&left), file(&right)) {
            (Some(x), Some(y)) if x.oid != y.oid || x.kind != y.kind => Some(ChangeKind::Modified),
            (Some(_), None) => Some(ChangeKind::Deleted),
            (None, Some(_)) => Some(ChangeKind::Added),
            _ => None,
        }
        .map(|change| Change {
            path: path.clone(),
            change,
        });
        if lt == rt {
            if let Some(c) = change {
                push(&mut out, c, limits)?;
            }
            continue;
        }
        let frame = Frame {
            old: tree_of(objects, lt)?,
            new: tree_of(objects, rt)?,
            i: 0,
            j: 0,
            len: path.len(),
            depth,
            after: change,
        };
        let empty = frame.old.entries.is_empty() && frame.new.entries.is_empty();
        if !empty && depth >= limits.max_tree_depth {
            return Err(Error::TooLarge {
                what: format!("the depth of the tree at '{}'", shown(&path)),
                limit: limits.max_tree_depth as u64,
            });
        }
        prefix = path;
        stack.push(frame);
    }
    Ok(out)
}
