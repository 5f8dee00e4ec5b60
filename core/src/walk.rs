//! Recursive listings as walks: iterative (an explicit stack of per-directory listings, never
//! recursion, so no tree can overflow a thread's stack), bounded in depth and in entries by
//! [`Limits`], over one pinned state of the session (no lock is held while it runs and every
//! entry comes from the same version), producing entries in batches so a surface can send them
//! as they come instead of building the whole answer in memory.
//!
//! Order: a directory's entries in name order, then, for each of its subdirectories in name
//! order, that subdirectory's listing the same way (parents before children).

use crate::blocking::blocking;
use crate::config::Limits;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::path::SessionPath;
use crate::pinned::Pinned;
use crate::stat::{DirEntry, stat_node};
use crate::view::{Children, Node, View};

/// A listing in progress; see the module doc. Get one from [`Engine::walk`], then call
/// [`TreeWalk::next_batch`] until it returns no entries.
pub struct TreeWalk {
    pinned: Pinned,
    cursor: Cursor,
}

struct Cursor {
    /// The directory the walk starts at, until the first batch resolves it.
    start: Option<SessionPath>,
    /// How the start is shown in errors.
    shown_start: String,
    recursive: bool,
    /// The directory being listed.
    current: Option<Listing>,
    /// Directories still to list, the next one last.
    pending: Vec<(SessionPath, Node)>,
    produced: u64,
    max_depth: usize,
    max_entries: u64,
}

/// One directory's listing, partly produced.
struct Listing {
    path: SessionPath,
    children: Children,
    /// The subdirectories among the children produced so far, in name order.
    subdirs: Vec<(SessionPath, Node)>,
}

/// A session path for an error message (`/` for the root), cut short: a path deep enough to
/// break a limit is thousands of bytes.
pub(crate) fn shown(path: &str) -> String {
    const MAX: usize = 120;
    if path.is_empty() {
        return "/".into();
    }
    if path.len() <= MAX {
        return path.to_owned();
    }
    let mut end = MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &path[..end])
}

/// `node` at `path`, which must be a directory.
pub(crate) fn require_dir(view: &View<'_>, path: &SessionPath) -> Result<Node> {
    let node = view.require(path)?;
    if !node.is_dir() {
        return Err(Error::NotADirectory { path: path.to_string() });
    }
    Ok(node)
}

impl Cursor {
    fn next(&mut self, view: &View<'_>, max: usize) -> Result<Vec<DirEntry>> {
        if let Some(start) = self.start.take() {
            let node = require_dir(view, &start)?;
            self.pending.push((start, node));
        }
        let mut out = Vec::new();
        while out.len() < max.max(1) {
            if let Some(cur) = &mut self.current {
                if let Some((name, node)) = cur.children.next(view) {
                    self.produced += 1;
                    if self.produced > self.max_entries {
                        return Err(Error::TooLarge {
                            what: format!("the number of entries listed below '{}'", self.shown_start),
                            limit: self.max_entries,
                        });
                    }
                    let path = cur.path.join(&name);
                    let stat = stat_node(view, &path, &node, false)?;
                    if self.recursive && node.is_dir() {
                        cur.subdirs.push((path, node));
                    }
                    out.push(DirEntry { name, stat });
                    continue;
                }
                if let Some(done) = self.current.take() {
                    self.pending.extend(done.subdirs.into_iter().rev());
                }
                continue;
            }
            let Some((path, node)) = self.pending.pop() else { break };
            let children = view.children_iter(&path, &node)?;
            // Too deep only if something is there (a directory whose names are all deletions
            // is empty).
            if !children.is_empty()
                && path.components().count() >= self.max_depth
                && children.clone().next(view).is_some()
            {
                return Err(Error::TooLarge {
                    what: format!("the depth of the tree at '{}'", shown(path.as_str())),
                    limit: self.max_depth as u64,
                });
            }
            self.current = Some(Listing {
                path,
                children,
                subdirs: Vec::new(),
            });
        }
        Ok(out)
    }
}

impl TreeWalk {
    pub(crate) fn new(pinned: Pinned, start: SessionPath, recursive: bool, limits: &Limits) -> Self {
        TreeWalk {
            pinned,
            cursor: Cursor {
                shown_start: shown(start.as_str()),
                start: Some(start),
                recursive,
                current: None,
                pending: Vec::new(),
                produced: 0,
                max_depth: limits.max_tree_depth,
                max_entries: limits.max_walk_entries,
            },
        }
    }

    /// The next entries, at most `max` (at least one is asked for); none once the walk is
    /// complete. Blocking: call it on a blocking thread (or use [`TreeWalk::next_batch`]).
    /// After an error the walk is over.
    pub fn next_blocking(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        let view = self.pinned.view();
        let out = self.cursor.next(&view, max);
        if out.is_err() {
            self.cursor.current = None;
            self.cursor.pending.clear();
        }
        out
    }

    /// The version of the session state the walk reads (see [`crate::Listed::seq`]): every
    /// event up to it is in what the walk produces. `None` at a revision.
    pub fn seq(&self) -> Option<i64> {
        self.pinned.seq
    }

    /// [`TreeWalk::next_blocking`] on a blocking thread.
    pub async fn next_batch(mut self, max: usize) -> Result<(TreeWalk, Vec<DirEntry>)> {
        blocking(move || {
            let batch = self.next_blocking(max)?;
            Ok((self, batch))
        })
        .await
    }
}

impl Engine {
    /// A walk listing directory `path` (with `recursive`, everything below it) in the session's
    /// current state, or in revision `at`. Errors about the path itself (missing, not a
    /// directory) come with the first batch.
    pub async fn walk(&self, id: &SessionId, path: &str, recursive: bool, at: Option<&str>) -> Result<TreeWalk> {
        let path = self.parse_path(path)?;
        let pinned = self.pin(id, at).await?;
        Ok(TreeWalk::new(pinned, path, recursive, &self.inner.config.limits))
    }
}
