//! Which paths differ between two git trees. Subtrees with equal ids are skipped without being
//! read, so the cost follows the size of the change, not of the trees. The walk is iterative
//! (an explicit stack of tree pairs, so no tree is too deep for a thread's stack), refuses a
//! change deeper than [`Limits::max_tree_depth`], and is resumable: [`diff_page`] answers the
//! changes after a cursor (the path of the last change of the previous page), so a diff of
//! millions of changes is served a page at a time, each page costing its own size plus the
//! trees on the cursor's path, never the changes before it. [`diff_trees`], which answers all
//! the changes at once, refuses more than [`Limits::max_walk_entries`] of them as too large.
//!
//! Order: a tree's entries in name order, everything below a name before the name's own
//! change (a file replaced by a directory, or the other way round, is reported after what the
//! directory holds). Comparing paths component by component, a path being after the paths
//! below it, is that order, so any path is a cursor: a page after it is every change that
//! comes after it in that order.

use std::cmp::Ordering;
use std::sync::Arc;

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use serde::Serialize;

use crate::blocking::blocking;
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::objects::Objects;
use crate::odb::{Tree, TreeEntry};
use crate::revision;
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
    /// The frame lies on the cursor's path: its entry named like the cursor's component at
    /// `depth` is where the previous page stopped (see [`diff_page`]).
    on_cursor: bool,
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

/// The changes from `old` to `new` (either may be absent: everything added or deleted), files
/// only, in the module's order, at most `max_walk_entries` of them: more are refused as too
/// large. Use [`diff_page`] to serve a diff of any size.
pub fn diff_trees(
    objects: &Objects,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    limits: &Limits,
) -> Result<Vec<Change>> {
    let max = limits.max_walk_entries;
    let mut out = Vec::new();
    walk(objects, old, new, None, limits, |change| {
        if out.len() as u64 >= max {
            return Err(Error::TooLarge {
                what: "the number of changed paths".into(),
                limit: max,
            });
        }
        out.push(change);
        Ok(true)
    })?;
    Ok(out)
}

/// At most `limit` (at least 1) of the changes from `old` to `new` that come after the change
/// at path `after` in the module's order (from the first with `None`). A page shorter than
/// `limit` is the last; otherwise the next page is after its last change's path. The memory
/// a page holds is its changes and one pair of trees per level of the cursor's path.
pub fn diff_page(
    objects: &Objects,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    after: Option<&str>,
    limit: usize,
    limits: &Limits,
) -> Result<Vec<Change>> {
    let limit = limit.max(1);
    let mut out = Vec::with_capacity(limit.min(1024));
    walk(objects, old, new, after, limits, |change| {
        out.push(change);
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// Where the cursor's component `depth` is, or would be, among `entries`.
fn seek(entries: &[TreeEntry], cursor: &[&str], depth: usize) -> usize {
    match cursor.get(depth) {
        Some(name) => entries.partition_point(|e| e.name.as_str() < *name),
        None => 0,
    }
}

/// Walk the changes after `after`, giving each to `emit` until it answers `false`.
fn walk(
    objects: &Objects,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    after: Option<&str>,
    limits: &Limits,
    mut emit: impl FnMut(Change) -> Result<bool>,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let cursor: Vec<&str> = after.map(|a| a.split('/').collect()).unwrap_or_default();
    // The path of the frame on top; each frame knows its length, so a deep tree costs its depth
    // in bytes, not the sum of its paths.
    let mut prefix = String::new();
    let (old, new) = (tree_of(objects, old)?, tree_of(objects, new)?);
    let (i, j) = (seek(&old.entries, &cursor, 0), seek(&new.entries, &cursor, 0));
    let mut stack = vec![Frame {
        old,
        new,
        i,
        j,
        len: 0,
        depth: 0,
        on_cursor: !cursor.is_empty(),
        after: None,
    }];
    while let Some(top) = stack.last_mut() {
        let (a, b) = (top.old.entries.get(top.i), top.new.entries.get(top.j));
        let order = match (a, b) {
            (None, None) => {
                if let Some(done) = stack.pop().and_then(|f| f.after)
                    && !emit(done)?
                {
                    return Ok(());
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
        // The entry the previous page stopped at or below: this one, or a name above it.
        let resumes = top.on_cursor && cursor.get(top.depth) == Some(&name);
        if resumes && top.depth + 1 == cursor.len() {
            // The cursor itself: it and everything below it were on earlier pages.
            continue;
        }
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
            if let Some(c) = change
                && !emit(c)?
            {
                return Ok(());
            }
            continue;
        }
        let (old, new) = (tree_of(objects, lt)?, tree_of(objects, rt)?);
        let (i, j) = if resumes {
            (seek(&old.entries, &cursor, depth), seek(&new.entries, &cursor, depth))
        } else {
            (0, 0)
        };
        let frame = Frame {
            old,
            new,
            i,
            j,
            len: path.len(),
            depth,
            on_cursor: resumes,
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
    Ok(())
}

impl crate::engine::Engine {
    /// The trees of `rev` and of its first parent (none for a root commit), both in the
    /// session's spelling, so a foreign commit's names diff as the session shows them. They
    /// are resolved under the session's lock and compared without it: they never change.
    async fn commit_trees(&self, id: &SessionId, rev: &str) -> Result<(Option<ObjectId>, ObjectId)> {
        let rev = rev.to_owned();
        let engine = self.clone();
        self.read_view(id, move |view, rec| {
            let oid = revision::resolve(view.objects, rec, &rev)?;
            let commit = view.objects.odb.read_commit(&oid)?;
            let parent_tree = commit.parents.first().map(|p| engine.session_tree(p)).transpose()?;
            Ok((parent_tree, engine.session_tree(&oid)?))
        })
        .await
    }

    /// The paths a commit changed relative to its first parent (everything, for a root
    /// commit), all at once within the walk limits (see [`diff_trees`]).
    pub async fn commit_changes(&self, id: &SessionId, rev: &str) -> Result<Vec<Change>> {
        let (parent, tree) = self.commit_trees(id, rev).await?;
        let objects = self.inner.objects.clone();
        let limits = self.inner.config.limits;
        blocking(move || diff_trees(&objects, parent, Some(tree), &limits)).await
    }

    /// One page of [`Engine::commit_changes`]: at most `limit` changes after path `after`
    /// (see [`diff_page`]). Page with a commit id: a branch may move between pages.
    pub async fn commit_changes_page(
        &self,
        id: &SessionId,
        rev: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Change>> {
        let (parent, tree) = self.commit_trees(id, rev).await?;
        let objects = self.inner.objects.clone();
        let limits = self.inner.config.limits;
        let after = after.map(str::to_owned);
        blocking(move || diff_page(&objects, parent, Some(tree), after.as_deref(), limit, &limits)).await
    }
}
