//! A directory and, depth first, the directories below it (what a mount lists the first time it
//! opens a directory: whoever lists one usually walks it), produced in pieces of bounded size
//! over one pinned state of the session, so neither a huge directory nor a wide tree is ever
//! built whole in memory or sent as one message.
//!
//! The directory asked for comes whole, however large, in as many pieces as it takes. The
//! directories below it come while their entries fit in the entry budget; one whose entries
//! could go past it (counted before it is listed, by its base tree and overlay names) ends the
//! walk. A directory below whose listing fails part way (a damaged tree) also ends it: its
//! pieces so far have no last piece, and a client keeps only directories it received whole.

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::Result;
use crate::ids::SessionId;
use crate::path::SessionPath;
use crate::pinned::Pinned;
use crate::stat::{DirEntry, stat_node};
use crate::view::{Children, Node, View};
use crate::walk::require_dir;

/// Part of one directory's listing, in name order after the previous piece of that directory.
#[derive(Debug)]
pub struct DirPiece {
    /// The directory ("" is the root).
    pub path: SessionPath,
    pub entries: Vec<DirEntry>,
    /// Whether this is the directory's last piece (its listing is complete).
    pub last: bool,
    /// Whether the directory is the one asked for (the first of the walk).
    pub first: bool,
}

/// See the module doc. Get one from [`Engine::walk_dirs`], then call [`DirsWalk::next_piece`]
/// until it returns `None`.
pub struct DirsWalk {
    pinned: Pinned,
    cursor: Cursor,
}

struct Cursor {
    start: Option<SessionPath>,
    current: Option<Current>,
    /// Directories still to list, the next one last.
    pending: Vec<(SessionPath, Node)>,
    /// Entries produced so far, over every directory.
    produced: usize,
    /// Most entries in all before no further directory is started.
    max_entries: usize,
    max_depth: usize,
    over: bool,
}

struct Current {
    path: SessionPath,
    children: Children,
    /// The next child, taken to know whether the piece before it is the last.
    peeked: Option<(String, Node)>,
    subdirs: Vec<(SessionPath, Node)>,
    first: bool,
}

impl DirsWalk {
    /// The version of the session state every piece shows (see [`crate::Listed::seq`]);
    /// `None` at a revision.
    pub fn seq(&self) -> Option<i64> {
        self.pinned.seq
    }

    /// The next piece of at most `max` entries (at least one is asked for), or `None` once the
    /// walk is over. Errors come only from the directory asked for. Blocking.
    pub fn next_blocking(&mut self, max: usize) -> Result<Option<DirPiece>> {
        let cursor = &mut self.cursor;
        if cursor.over {
            return Ok(None);
        }
        let piece = cursor.next_in(&self.pinned.view(), max.max(1));
        match &piece {
            Ok(None) | Err(_) => cursor.over = true,
            Ok(Some(_)) => {}
        }
        piece
    }

    /// [`DirsWalk::next_blocking`] on a blocking thread.
    pub async fn next_piece(mut self, max: usize) -> Result<(DirsWalk, Option<DirPiece>)> {
        blocking(move || {
            let piece = self.next_blocking(max)?;
            Ok((self, piece))
        })
        .await
    }
}

impl Cursor {
    fn next_in(&mut self, view: &View<'_>, max: usize) -> Result<Option<DirPiece>> {
        if let Some(start) = self.start.take() {
            let node = require_dir(view, &start)?;
            let children = view.children_iter(&start, &node)?;
            self.current = Some(Current::new(view, start, children, true));
        }
        loop {
            if let Some(cur) = &mut self.current {
                let first = cur.first;
                match self.fill(view, max) {
                    Ok(piece) => return Ok(Some(piece)),
                    Err(e) if first => return Err(e),
                    // A directory below that cannot be listed: the walk ends without it.
                    Err(_) => return Ok(None),
                }
            }
            if self.produced >= self.max_entries {
                return Ok(None);
            }
            let Some((path, node)) = self.pending.pop() else {
                return Ok(None);
            };
            // Past the depth limit: not walked into (the client lists it by path if it can).
            if path.components().count() >= self.max_depth {
                continue;
            }
            let Ok(children) = view.children_iter(&path, &node) else {
                continue;
            };
            if self.produced + children.bound() > self.max_entries {
                return Ok(None);
            }
            self.current = Some(Current::new(view, path, children, false));
        }
    }

    /// The next piece of the current directory; the directory is done after its last piece.
    fn fill(&mut self, view: &View<'_>, max: usize) -> Result<DirPiece> {
        let cur = self.current.as_mut().expect("a directory being listed");
        let mut entries = Vec::new();
        while entries.len() < max
            && let Some((name, node)) = cur.peeked.take()
        {
            cur.peeked = cur.children.next(view);
            let path = cur.path.join(&name);
            let stat = stat_node(view, &path, &node, false)?;
            self.produced += 1;
            // Directories to walk into only while the budget is not spent: past it none is.
            if node.is_dir() && self.produced < self.max_entries {
                cur.subdirs.push((path, node));
            }
            entries.push(DirEntry { name, stat });
        }
        let last = cur.peeked.is_none();
        let piece = DirPiece {
            path: cur.path.clone(),
            entries,
            last,
            first: cur.first,
        };
        if last && let Some(done) = self.current.take() {
            self.pending.extend(done.subdirs.into_iter().rev());
        }
        Ok(piece)
    }
}

impl Current {
    fn new(view: &View<'_>, path: SessionPath, mut children: Children, first: bool) -> Current {
        let peeked = children.next(view);
        Current {
            path,
            children,
            peeked,
            subdirs: Vec::new(),
            first,
        }
    }
}

impl Engine {
    /// A walk of directory `path` and, while they fit in `max_entries` entries in all, the
    /// directories below it (see the module doc), in the session's current state or at
    /// revision `at`. Errors about `path` itself come with the first piece.
    pub async fn walk_dirs(
        &self,
        id: &SessionId,
        path: &str,
        max_entries: usize,
        at: Option<&str>,
    ) -> Result<DirsWalk> {
        let path = self.parse_path(path)?;
        let pinned = self.pin(id, at).await?;
        Ok(self.dirs_walk(pinned, path, max_entries))
    }

    /// A walk of `path` in `pinned` (see [`Engine::walk_dirs`]).
    pub(crate) fn dirs_walk(&self, pinned: Pinned, path: SessionPath, max_entries: usize) -> DirsWalk {
        DirsWalk {
            pinned,
            cursor: Cursor {
                start: Some(path),
                current: None,
                pending: Vec::new(),
                produced: 0,
                max_entries,
                max_depth: self.inner.config.limits.max_tree_depth,
                over: false,
            },
        }
    }
}
