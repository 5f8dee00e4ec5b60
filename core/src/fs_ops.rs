//! Filesystem operations on a session: stat, list, read, write (whole, range, truncate),
//! delete, rename, mkdir, rmdir, symlink, readlink, chmod. POSIX rules decide every error.

use std::io::Read;
use std::sync::Arc;

use tokio::io::AsyncRead;

use crate::blocking::blocking;
use crate::body_pump::pumped;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::ids::SessionId;
use crate::meta::{Mutation, NewEvent};
use crate::objects::{Ingested, Objects};
use crate::overlay::{OverlayEntry, Timestamp};
use crate::path::SessionPath;
use crate::sessions::now_ns;
use crate::stat::{DirEntry, Stat, stat_node};
use crate::view::{Content, FileKind, Node, View};
use crate::walk::require_dir;

/// Entries per piece when a listing is collected whole ([`Engine::list_dirs`]).
const LIST_PIECE: usize = 4096;

/// The state a listing reads: the live one, pinned on the listing's blocking thread, or a
/// revision already pinned.
enum Pinning {
    Live(Arc<crate::engine::Handle>),
    Done(crate::pinned::Pinned),
}

use crate::names::MAX_SYMLINK_TARGET;

/// Listings read from one state of a session ([`Engine::list_dirs`]).
#[derive(Debug)]
pub struct Listed {
    /// Each directory with its entries, the one asked for first.
    pub dirs: Vec<(SessionPath, Vec<DirEntry>)>,
    /// The version of the state they were read from: the sequence number of the session's
    /// newest event whose change they show. Every event up to it is in them; a later one may
    /// not be. `None` when read at a revision, which never changes.
    pub seq: Option<i64>,
}

/// Options for writing a whole file.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// The exact length of the body, when known (lets large files be ingested in one pass).
    pub size: Option<u64>,
    /// Permission bits for a new file (default 0o644); an existing file keeps its mode.
    pub mode: Option<u32>,
    /// Create missing parent directories.
    pub create_parents: bool,
    /// The file's modification time (nanoseconds since the Unix epoch, 0 or more) instead of
    /// the time of the write: what a client copying a file with its times asks for.
    pub mtime: Option<Timestamp>,
}

pub(crate) fn not_found(path: &SessionPath) -> Error {
    Error::not_found(format!("'{path}'"))
}

/// Check that `path`'s parent is a directory, creating it (and its parents) when asked;
/// the created directories are added to `m`, outermost first.
pub(crate) fn prepare_parent(
    view: &View<'_>,
    path: &SessionPath,
    create: bool,
    now: Timestamp,
    m: &mut Mutation,
) -> Result<()> {
    let Some(parent) = path.parent() else {
        return Err(Error::InvalidArgument("the session root cannot be replaced".into()));
    };
    // Up from the parent to the nearest directory that exists (the root always does).
    let mut missing = Vec::new();
    let mut dir = Some(parent);
    while let Some(d) = dir {
        match view.resolve(&d)? {
            Some(n) if n.is_dir() => break,
            Some(_) => return Err(Error::NotADirectory { path: d.to_string() }),
            None if !create => return Err(Error::not_found(format!("parent directory '{d}'"))),
            None => {
                dir = d.parent();
                missing.push(d);
            }
        }
    }
    for d in missing.into_iter().rev() {
        m.upsert.push((
            d.as_str().to_owned(),
            OverlayEntry::Dir {
                opaque: true,
                mode: 0o755,
                mtime: now,
                owner: None,
            },
        ));
    }
    Ok(())
}

/// The overlay entry that describes the non-directory `node` as it is (attributes, owner and
/// hard-link group included), for moving it elsewhere or giving it another name.
pub(crate) fn entry_for(view: &View<'_>, node: &Node) -> Result<OverlayEntry> {
    Ok(match &node.content {
        Content::Blob { oid, .. } => OverlayEntry::File {
            oid: *oid,
            size: view.size_of(node)?,
            mode: node.mode,
            mtime: node.mtime,
            owner: node.owner,
            link: node.link,
        },
        Content::SymlinkTarget(_) | Content::SymlinkBlob(_) => OverlayEntry::Symlink {
            target: view.symlink_target(node)?.unwrap_or_default(),
            mtime: node.mtime,
            owner: node.owner,
            link: node.link,
        },
        Content::Special { rdev } => OverlayEntry::Special {
            kind: node
                .kind
                .as_special()
                .ok_or_else(|| Error::Internal(format!("a {} node with special content", node.kind.as_str())))?,
            rdev: *rdev,
            mode: node.mode,
            mtime: node.mtime,
            owner: node.owner,
            link: node.link,
        },
        Content::Dir { .. } => {
            return Err(Error::IsADirectory { path: String::new() });
        }
    })
}

/// A reader of `size` bytes: `old`'s bytes with `data` written at `offset`, zero-filled
/// where `offset` lies past the old end, cut at `size`.
fn patched(
    objects: &Arc<Objects>,
    old: &gix::ObjectId,
    old_size: u64,
    offset: u64,
    data: Vec<u8>,
    size: u64,
) -> Result<Box<dyn Read + Send>> {
    let head_len = offset.min(old_size).min(size);
    let head = objects.reader(old, 0)?.take(head_len);
    let zeros = std::io::repeat(0).take(offset.min(size).saturating_sub(old_size));
    let data_len = (data.len() as u64).min(size.saturating_sub(offset));
    let middle = std::io::Cursor::new(data).take(data_len);
    let tail_from = offset + data_len;
    let tail_len = old_size.min(size).saturating_sub(tail_from);
    let tail = objects.reader(old, tail_from.min(old_size))?.take(tail_len);
    let zero_tail = std::io::repeat(0).take(size.saturating_sub(old_size.max(offset + data_len)));
    Ok(Box::new(head.chain(zeros).chain(middle).chain(tail).chain(zero_tail)))
}

/// The change that gives the file `node` at `path` new content (keeping its mode, owner and
/// link group, with the time of now), and the file's stat after it.
fn rewritten(
    view: &View<'_>,
    path: &SessionPath,
    node: &Node,
    ingested: Ingested,
    size: u64,
    what: EventKind,
    offset: u64,
) -> Result<(Mutation, Stat)> {
    let now = now_ns();
    let entry = OverlayEntry::File {
        oid: ingested.oid,
        size,
        mode: node.mode,
        mtime: now,
        owner: node.owner,
        link: node.link,
    };
    let mut m = Mutation::default();
    m.upsert.push((path.as_str().to_owned(), entry));
    m.events
        .push(NewEvent::new(what, Some(path.as_str())).with(serde_json::json!({
            "size": size, "offset": offset, "oid": ingested.oid.to_hex().to_string(),
        })));
    let nlink = crate::stat::nlink(view, path, node)?;
    let stat = written_stat(path, ingested, node.mode, now, Some(node), nlink);
    Ok((m, stat))
}

/// The stat of a file just written: everything is known without a lookup.
fn written_stat(
    path: &SessionPath,
    ingested: Ingested,
    mode: u32,
    now: Timestamp,
    prior: Option<&Node>,
    nlink: u32,
) -> Stat {
    Stat {
        path: path.as_str().to_owned(),
        kind: FileKind::File,
        mode,
        size: ingested.size,
        mtime_ns: now,
        oid: Some(ingested.oid.to_hex().to_string()),
        chunked: ingested.chunked,
        extents: None,
        symlink_target: None,
        uid: prior.and_then(|n| n.owner).and_then(|o| o.uid),
        gid: prior.and_then(|n| n.owner).and_then(|o| o.gid),
        rdev: 0,
        nlink,
        link: prior.and_then(|n| n.link),
    }
}

impl Engine {
    /// A path's attributes, with the chunk extents of a chunked file.
    pub async fn stat(&self, id: &SessionId, path: &str, at: Option<&str>) -> Result<Stat> {
        self.stat_with(id, path, at, true).await
    }

    /// A path's attributes without chunk extents, for callers that only need the attributes
    /// (a read): the extents list every chunk of a large file.
    pub async fn stat_attrs(&self, id: &SessionId, path: &str, at: Option<&str>) -> Result<Stat> {
        self.stat_with(id, path, at, false).await
    }

    async fn stat_with(&self, id: &SessionId, path: &str, at: Option<&str>, extents: bool) -> Result<Stat> {
        let path = self.parse_path(path)?;
        self.with_view_at(id, at, move |view| {
            let node = view.require(&path)?;
            stat_node(view, &path, &node, extents)
        })
        .await
    }

    /// A directory's entries with all their attributes; `recursive` walks the whole subtree
    /// (see [`Engine::walk`], bounded by the walk limits) and collects it: a surface that
    /// sends a recursive listing streams the walk instead.
    pub async fn list(&self, id: &SessionId, path: &str, recursive: bool, at: Option<&str>) -> Result<Vec<DirEntry>> {
        if recursive {
            let mut walk = self.walk(id, path, true, at).await?;
            return blocking(move || {
                let mut out = Vec::new();
                loop {
                    let batch = walk.next_blocking(4096)?;
                    if batch.is_empty() {
                        return Ok(out);
                    }
                    out.extend(batch);
                }
            })
            .await;
        }
        let mut listed = self.list_dirs(id, path, 0, at).await?;
        Ok(listed.dirs.pop().map(|(_, entries)| entries).unwrap_or_default())
    }

    /// The listing of directory `path`, then, depth first in name order, the listings of the
    /// directories below it for as long as the entries listed in all stay within `max_entries`
    /// (the first listing comes whole whatever its size) and no deeper than the tree depth
    /// limit. Each listing is complete, and all are read from one state of the session (`at`
    /// is resolved once).
    ///
    /// The answer carries the version of the state it was read from (`seq`): a client that
    /// follows the session's events after listing applies those above it, and knows the
    /// others are in the listing already.
    pub async fn list_dirs(&self, id: &SessionId, path: &str, max_entries: usize, at: Option<&str>) -> Result<Listed> {
        let path = self.parse_path(path)?;
        // The live state is pinned on the same blocking thread that lists it: one trip.
        let pinning = match at {
            None => Pinning::Live(self.handle(id).await?),
            Some(_) => Pinning::Done(self.pin(id, at).await?),
        };
        let (engine, objects) = (self.clone(), self.inner.objects.clone());
        blocking(move || {
            let pinned = match pinning {
                Pinning::Live(h) => crate::pinned::pin_live(&h, objects)?,
                Pinning::Done(p) => p,
            };
            let mut walk = engine.dirs_walk(pinned, path, max_entries);
            let seq = walk.seq();
            let mut dirs: Vec<(SessionPath, Vec<DirEntry>)> = Vec::new();
            let mut open = false;
            while let Some(piece) = walk.next_blocking(LIST_PIECE)? {
                match dirs.last_mut() {
                    Some((dir, entries)) if open && *dir == piece.path => entries.extend(piece.entries),
                    _ => dirs.push((piece.path, piece.entries)),
                }
                open = !piece.last;
            }
            // A directory below that could not be listed to its end is left out.
            if open && dirs.len() > 1 {
                dirs.pop();
            }
            Ok(Listed { dirs, seq })
        })
        .await
    }

    /// Whether directory `path` holds more than `cap` entries: what listing it whole would
    /// cost, known before the listing is built. Its base tree's entries plus its overlay's
    /// names answer at once when they are within `cap`; otherwise the children are counted
    /// (no attribute looked up) until one past `cap`, since deletions count in that bound.
    pub async fn holds_more_than(&self, id: &SessionId, path: &str, at: Option<&str>, cap: usize) -> Result<bool> {
        let path = self.parse_path(path)?;
        self.with_view_at(id, at, move |view| {
            let node = require_dir(view, &path)?;
            let mut children = view.children_iter(&path, &node)?;
            if children.bound() <= cap {
                return Ok(false);
            }
            let mut n = 0;
            while children.next(view).is_some() {
                n += 1;
                if n > cap {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await
    }

    /// Bytes `[offset, offset + len)` of a file (clipped to its end); `len: None` reads to the end.
    pub async fn read(
        &self,
        id: &SessionId,
        path: &str,
        offset: u64,
        len: Option<u64>,
        at: Option<&str>,
    ) -> Result<Vec<u8>> {
        let path = self.parse_path(path)?;
        self.with_view_at(id, at, move |view| {
            let node = view.require(&path)?;
            match (&node.kind, &node.content) {
                (FileKind::File, Content::Blob { oid, .. }) => {
                    view.objects.read_range(oid, offset, len.unwrap_or(u64::MAX))
                }
                _ => Err(node.not_a_file(&path)),
            }
        })
        .await
    }

    /// Open a file for streaming: its stat and a reader from `offset` that holds at most one
    /// chunk in memory. The reader does blocking I/O; use it from a blocking context.
    pub async fn open_read(
        &self,
        id: &SessionId,
        path: &str,
        offset: u64,
        at: Option<&str>,
    ) -> Result<(Stat, crate::objects::BlobReader)> {
        let path = self.parse_path(path)?;
        let objects = self.inner.objects.clone();
        self.with_view_at(id, at, move |view| {
            let node = view.require(&path)?;
            match (&node.kind, &node.content) {
                (FileKind::File, Content::Blob { oid, .. }) => {
                    let stat = stat_node(view, &path, &node, false)?;
                    Ok((stat, objects.reader(oid, offset)?))
                }
                _ => Err(node.not_a_file(&path)),
            }
        })
        .await
    }

    pub async fn readlink(&self, id: &SessionId, path: &str, at: Option<&str>) -> Result<String> {
        let path = self.parse_path(path)?;
        self.with_view_at(id, at, move |view| {
            let node = view.require(&path)?;
            view.symlink_target(&node)?
                .ok_or_else(|| Error::InvalidArgument(format!("'{path}' is not a symbolic link")))
        })
        .await
    }

    /// Run `f` on the live view (under the session's read lock), or on the view of revision
    /// `at` with the POSIX details its checkpoint stored (see `pinned`).
    pub(crate) async fn with_view_at<T: Send + 'static>(
        &self,
        id: &SessionId,
        at: Option<&str>,
        f: impl FnOnce(&View<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match at {
            None => self.read_view(id, move |view, _| f(view)).await,
            Some(_) => self.with_pinned(id, at, f).await,
        }
    }

    /// Write a whole file from a stream of any size. The bytes are stored before the session
    /// changes; a failure anywhere leaves the session as it was.
    pub async fn write_file<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        id: &SessionId,
        path: &str,
        body: R,
        opts: WriteOptions,
    ) -> Result<Stat> {
        let path = self.parse_path(path)?;
        if let Some(t) = opts.mtime {
            check_mtime(t)?;
        }
        self.check_writable(id).await?;
        let objects = self.inner.objects.clone();
        let max = self.inner.config.limits.max_file_size;
        let size = opts.size;
        let ingested = pumped(body, size, move |mut reader| objects.ingest(&mut reader, size, max)).await?;
        self.commit_file(id, path, ingested, opts).await
    }

    /// Resume the upload of an existing file: its first `offset` bytes stay (zeros past its
    /// end), everything after them is `body` (`opts.size`, when given, is what `body` carries).
    /// One pass over the file and one change, whatever the body's length: a resumed upload
    /// costs what one upload costs, and nobody sees it half applied. If the file changes
    /// while the body is stored, nothing is applied and the call is a conflict (the body
    /// cannot be read twice). Keeps the file's mode; `opts.mtime` sets its time.
    pub async fn write_file_at<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        id: &SessionId,
        path: &str,
        offset: u64,
        body: R,
        opts: WriteOptions,
    ) -> Result<Stat> {
        if offset == 0 {
            return self.write_file(id, path, body, opts).await;
        }
        let path = self.parse_path(path)?;
        if let Some(t) = opts.mtime {
            check_mtime(t)?;
        }
        self.check_writable(id).await?;
        let (seen, old, old_size) = {
            let path = path.clone();
            self.read_view(id, move |view, _| {
                let node = view.require(&path)?;
                let Content::Blob { oid, .. } = node.content else {
                    return Err(node.not_a_file(&path));
                };
                Ok((node.content.clone(), oid, view.size_of(&node)?))
            })
            .await?
        };
        let max = self.inner.config.limits.max_file_size;
        let total = match opts.size {
            Some(n) => Some(
                offset
                    .checked_add(n)
                    .filter(|t| *t <= max)
                    .ok_or_else(|| Error::TooLarge {
                        what: format!("file of {offset} + {n} bytes"),
                        limit: max,
                    })?,
            ),
            None => None,
        };
        let objects = self.inner.objects.clone();
        let ingested = pumped(body, opts.size, move |reader| {
            let kept = objects.reader(&old, 0)?.take(offset.min(old_size));
            let gap = std::io::repeat(0).take(offset.saturating_sub(old_size));
            let mut content = kept.chain(gap).chain(reader);
            objects.ingest(&mut content, total, max)
        })
        .await?;
        self.mutate(id, false, move |view, _| {
            let node = view.require(&path)?;
            if node.content != seen {
                return Err(Error::Conflict(format!(
                    "'{path}' changed while the resumed upload was stored; nothing was written, upload it again"
                )));
            }
            let size = ingested.size;
            let (mut m, mut stat) = rewritten(view, &path, &node, ingested, size, EventKind::Write, offset)?;
            if let Some(mtime) = opts.mtime {
                with_mtime(&mut m, &mut stat, mtime);
            }
            Ok((m, stat))
        })
        .await
    }

    /// Write a whole file from bytes in memory.
    pub async fn write_bytes(&self, id: &SessionId, path: &str, data: Vec<u8>, opts: WriteOptions) -> Result<Stat> {
        let path = self.parse_path(path)?;
        if let Some(t) = opts.mtime {
            check_mtime(t)?;
        }
        self.check_writable(id).await?;
        let objects = self.inner.objects.clone();
        let max = self.inner.config.limits.max_file_size;
        let size = data.len() as u64;
        let ingested = blocking(move || objects.ingest(&mut &data[..], Some(size), max)).await?;
        self.commit_file(id, path, ingested, opts).await
    }

    async fn commit_file(
        &self,
        id: &SessionId,
        path: SessionPath,
        ingested: Ingested,
        opts: WriteOptions,
    ) -> Result<Stat> {
        self.mutate(id, false, move |view, _| {
            let (mut m, mut stat) = plan_put(view, path, ingested, opts.mode, opts.create_parents)?;
            if let Some(mtime) = opts.mtime {
                with_mtime(&mut m, &mut stat, mtime);
            }
            Ok((m, stat))
        })
        .await
    }

    /// Write `data` at `offset` in an existing file (zero-filling any gap past its end).
    pub async fn write_at(&self, id: &SessionId, path: &str, offset: u64, data: Vec<u8>) -> Result<Stat> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| Error::InvalidArgument("offset overflows".into()))?;
        self.rewrite(id, path, EventKind::Write, offset, data, move |old_size| {
            old_size.max(end)
        })
        .await
    }

    /// Cut or extend (with zeros) a file to `size` bytes.
    pub async fn truncate(&self, id: &SessionId, path: &str, size: u64) -> Result<Stat> {
        self.rewrite(id, path, EventKind::Truncate, 0, Vec::new(), move |_| size)
            .await
    }

    /// Read-modify-write of an existing file: `data` placed at `offset`, the file cut or
    /// extended to `new_size(old size)`.
    ///
    /// The new content is stored before the session's write lock is taken (extending a file
    /// by gigabytes takes seconds of hashing, and other writers of the session must not wait
    /// for it); under the lock the change is applied only if the file is still what it was
    /// read as, else it is done again from the newer file. After a few lost races the work is
    /// done under the lock, so a file rewritten without pause still gets the change.
    async fn rewrite(
        &self,
        id: &SessionId,
        path: &str,
        what: EventKind,
        offset: u64,
        data: Vec<u8>,
        new_size: impl Fn(u64) -> u64 + Clone + Send + 'static,
    ) -> Result<Stat> {
        const UNLOCKED_TRIES: usize = 3;
        let path = self.parse_path(path)?;
        let objects = self.inner.objects.clone();
        let max = self.inner.config.limits.max_file_size;
        let data = Arc::new(data);
        // What the file is (content, mode, owner, link group), read under the session's read
        // lock, which is not held while the new content is stored.
        type Seen = (Content, u32, Option<crate::overlay::Owner>, Option<u64>);
        let look = {
            let path = path.clone();
            move |view: &View<'_>| -> Result<(Seen, gix::ObjectId, u64)> {
                let node = view.require(&path)?;
                let Content::Blob { oid, .. } = node.content else {
                    return Err(node.not_a_file(&path));
                };
                let old_size = view.size_of(&node)?;
                Ok(((node.content, node.mode, node.owner, node.link), oid, old_size))
            }
        };
        let store = move |old: &gix::ObjectId, old_size: u64| -> Result<(u64, Ingested)> {
            let size = new_size(old_size);
            if size > max {
                return Err(Error::TooLarge {
                    what: format!("file of {size} bytes"),
                    limit: max,
                });
            }
            let mut reader = patched(&objects, old, old_size, offset, data.to_vec(), size)?;
            Ok((size, objects.ingest(&mut reader, Some(size), max)?))
        };
        let commit =
            move |view: &View<'_>, seen: &Seen, size: u64, ingested: Ingested| -> Result<Option<(Mutation, Stat)>> {
                let node = view.require(&path)?;
                if (&node.content, node.mode, node.owner, node.link) != (&seen.0, seen.1, seen.2, seen.3) {
                    return Ok(None);
                }
                Ok(Some(rewritten(view, &path, &node, ingested, size, what, offset)?))
            };
        for _ in 0..UNLOCKED_TRIES {
            self.check_writable(id).await?;
            let look = look.clone();
            let (seen, old, old_size) = self.read_view(id, move |view, _| look(view)).await?;
            let store = store.clone();
            let (size, ingested) = blocking(move || store(&old, old_size)).await?;
            let commit = commit.clone();
            let done = self
                .mutate(id, false, move |view, _| match commit(view, &seen, size, ingested)? {
                    Some((m, stat)) => Ok((m, Some(stat))),
                    // Changed meanwhile: nothing applied; stored again from the newer file.
                    None => Ok((Mutation::default(), None)),
                })
                .await?;
            if let Some(stat) = done {
                return Ok(stat);
            }
        }
        self.mutate(id, false, move |view, _| {
            let (seen, old, old_size) = look(view)?;
            let (size, ingested) = store(&old, old_size)?;
            commit(view, &seen, size, ingested)?
                .ok_or_else(|| Error::Internal("a file changed under the write lock".into()))
        })
        .await
    }

    /// Remove a file, symlink or (with `recursive`, or when empty) a directory.
    pub async fn delete(&self, id: &SessionId, path: &str, recursive: bool) -> Result<()> {
        self.remove(id, path, recursive, false).await
    }

    /// Remove an empty directory.
    pub async fn rmdir(&self, id: &SessionId, path: &str) -> Result<()> {
        self.remove(id, path, false, true).await
    }

    /// Delete `path` in one planned mutation; `dir_only` refuses anything but a directory.
    async fn remove(&self, id: &SessionId, path: &str, recursive: bool, dir_only: bool) -> Result<()> {
        let path = self.parse_path(path)?;
        self.mutate(id, false, move |view, _| plan_remove(view, path, recursive, dir_only))
            .await
    }

    /// Create a directory; with `parents`, missing parents too and no error if it exists.
    pub async fn mkdir(&self, id: &SessionId, path: &str, parents: bool) -> Result<Stat> {
        let path = self.parse_path(path)?;
        self.mutate(id, false, move |view, _| plan_mkdir(view, path, parents))
            .await
    }

    pub async fn symlink(&self, id: &SessionId, path: &str, target: &str) -> Result<Stat> {
        let path = self.parse_path(path)?;
        check_symlink_target(target)?;
        let target = target.to_owned();
        self.mutate(id, false, move |view, _| plan_symlink(view, path, target))
            .await
    }

    pub async fn chmod(&self, id: &SessionId, path: &str, mode: u32) -> Result<Stat> {
        let path = self.parse_path(path)?;
        check_mode(mode)?;
        self.mutate(id, false, move |view, _| plan_chmod(view, path, mode))
            .await
    }

    /// Rename a file, symlink or directory atomically. An existing file at `to` is replaced;
    /// an existing directory only when both are directories and it is empty.
    pub async fn rename(&self, id: &SessionId, from: &str, to: &str) -> Result<()> {
        let from = self.parse_path(from)?;
        let to = self.parse_path(to)?;
        self.mutate(id, false, move |view, _| plan_rename(view, from, to)).await
    }
}

pub(crate) fn check_symlink_target(target: &str) -> Result<()> {
    if target.is_empty() || target.len() > MAX_SYMLINK_TARGET || target.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "a symlink target must be 1 to {MAX_SYMLINK_TARGET} bytes without NUL"
        )));
    }
    Ok(())
}

pub(crate) fn check_mode(mode: u32) -> Result<()> {
    if mode > 0o7777 {
        return Err(Error::InvalidArgument(format!("mode {mode:o} has bits outside 0o7777")));
    }
    Ok(())
}

/// A modification time a session keeps: nanoseconds since the Unix epoch, not before it (an
/// `i64` of nanoseconds reaches the year 2262; later times cannot be asked for).
pub fn check_mtime(mtime: Timestamp) -> Result<()> {
    if mtime < 0 {
        return Err(Error::InvalidArgument(format!(
            "mtime {mtime} is before 1970-01-01T00:00:00Z; give nanoseconds since the Unix epoch, 0 or more"
        )));
    }
    Ok(())
}

// The plans of the mutations above, shared with batches (`batch.rs`): each sees the view as it
// is and returns the mutation to persist plus the call's result.

/// Plan writing a whole file whose bytes are already stored.
pub(crate) fn plan_put(
    view: &View<'_>,
    path: SessionPath,
    ingested: Ingested,
    mode: Option<u32>,
    create_parents: bool,
) -> Result<(Mutation, Stat)> {
    let now = now_ns();
    let mut m = Mutation::default();
    let existing = match view.resolve(&path) {
        Ok(n) => n,
        Err(Error::NotADirectory { path }) => return Err(Error::NotADirectory { path }),
        Err(e) => return Err(e),
    };
    let mode = match (&existing, mode) {
        (Some(n), _) if n.is_dir() => {
            return Err(Error::IsADirectory { path: path.to_string() });
        }
        (_, Some(m)) => m & 0o7777,
        (Some(n), None) if n.kind == FileKind::File => n.mode,
        _ => 0o644,
    };
    // A file written over keeps its owner and its other names (hard links); anything else
    // replaced by a file is a new entry.
    let prior = existing.as_ref().filter(|n| n.kind == FileKind::File);
    let nlink = match prior {
        Some(n) => crate::stat::nlink(view, &path, n)?,
        None => 1,
    };
    if existing.is_none() {
        prepare_parent(view, &path, create_parents, now, &mut m)?;
    }
    let entry = OverlayEntry::File {
        oid: ingested.oid,
        size: ingested.size,
        mode,
        mtime: now,
        owner: prior.and_then(|n| n.owner),
        link: prior.and_then(|n| n.link),
    };
    m.upsert.push((path.as_str().to_owned(), entry));
    m.events.push(
        NewEvent::new(EventKind::Write, Some(path.as_str())).with(serde_json::json!({
            "size": ingested.size, "oid": ingested.oid.to_hex().to_string(),
        })),
    );
    let stat = written_stat(&path, ingested, mode, now, prior, nlink);
    Ok((m, stat))
}

/// Give the file a planned put wrote (its first upsert after any parents) the mtime `mtime`.
pub(crate) fn with_mtime(m: &mut Mutation, stat: &mut Stat, mtime: Timestamp) {
    if let Some((_, entry)) = m.upsert.iter_mut().rev().find(|(k, _)| *k == stat.path) {
        entry.set_mtime(mtime);
    }
    if let Some(ev) = m.events.last_mut()
        && let Some(obj) = ev.detail.as_object_mut()
    {
        obj.insert("mtime_ns".to_owned(), serde_json::json!(mtime));
    }
    stat.mtime_ns = mtime;
}

/// Plan deleting `path`; `dir_only` refuses anything but a directory.
pub(crate) fn plan_remove(
    view: &View<'_>,
    path: SessionPath,
    recursive: bool,
    dir_only: bool,
) -> Result<(Mutation, ())> {
    if path.is_root() {
        return Err(Error::InvalidArgument("the session root cannot be deleted".into()));
    }
    let node = view.resolve(&path)?.ok_or_else(|| not_found(&path))?;
    if dir_only && !node.is_dir() {
        return Err(Error::NotADirectory { path: path.to_string() });
    }
    if node.is_dir() && !recursive && !view.children(&path, &node)?.is_empty() {
        return Err(Error::NotEmpty { path: path.to_string() });
    }
    let mut m = Mutation::default();
    m.remove_below.push(path.as_str().to_owned());
    m.upsert.push((path.as_str().to_owned(), OverlayEntry::Deleted));
    m.events
        .push(NewEvent::new(EventKind::Delete, Some(path.as_str())).with(serde_json::json!({"recursive": recursive})));
    Ok((m, ()))
}

/// Plan creating a directory (with `parents`, missing parents too and no error if it exists).
pub(crate) fn plan_mkdir(view: &View<'_>, path: SessionPath, parents: bool) -> Result<(Mutation, Stat)> {
    let now = now_ns();
    let mut m = Mutation::default();
    match view.resolve(&path)? {
        Some(n) if n.is_dir() && parents => {
            let stat = stat_node(view, &path, &n, false)?;
            return Ok((m, stat));
        }
        Some(_) => {
            return Err(Error::AlreadyExists { path: path.to_string() });
        }
        None => {}
    }
    prepare_parent(view, &path, parents, now, &mut m)?;
    m.upsert.push((
        path.as_str().to_owned(),
        OverlayEntry::Dir {
            opaque: true,
            mode: 0o755,
            mtime: now,
            owner: None,
        },
    ));
    m.events.push(NewEvent::new(EventKind::Mkdir, Some(path.as_str())));
    let node = Node {
        kind: FileKind::Dir,
        mode: 0o755,
        mtime: now,
        content: Content::Dir { base: None },
        owner: None,
        link: None,
    };
    let stat = stat_node(view, &path, &node, false)?;
    Ok((m, stat))
}

/// Plan creating a symlink (the target is already checked).
pub(crate) fn plan_symlink(view: &View<'_>, path: SessionPath, target: String) -> Result<(Mutation, Stat)> {
    let now = now_ns();
    let mut m = Mutation::default();
    if view.resolve(&path)?.is_some() {
        return Err(Error::AlreadyExists { path: path.to_string() });
    }
    prepare_parent(view, &path, false, now, &mut m)?;
    m.upsert.push((
        path.as_str().to_owned(),
        OverlayEntry::Symlink {
            target: target.clone(),
            mtime: now,
            owner: None,
            link: None,
        },
    ));
    m.events
        .push(NewEvent::new(EventKind::Symlink, Some(path.as_str())).with(serde_json::json!({"target": target})));
    let node = Node {
        kind: FileKind::Symlink,
        mode: 0o777,
        mtime: now,
        content: Content::SymlinkTarget(target),
        owner: None,
        link: None,
    };
    let stat = stat_node(view, &path, &node, false)?;
    Ok((m, stat))
}

/// Plan changing permission bits (the mode is already checked).
pub(crate) fn plan_chmod(view: &View<'_>, path: SessionPath, mode: u32) -> Result<(Mutation, Stat)> {
    let mut node = view.require(&path)?;
    let key = path.as_str().to_owned();
    let entry = match (view.overlay.get(&key).cloned(), node.kind) {
        (_, FileKind::Symlink) => {
            return Err(Error::InvalidArgument(format!(
                "'{path}' is a symbolic link; its mode cannot change"
            )));
        }
        // Everything but the mode stays (owner, hard-link group, content).
        (
            Some(
                mut e @ (OverlayEntry::File { .. }
                | OverlayEntry::Dir { .. }
                | OverlayEntry::Graft { .. }
                | OverlayEntry::Special { .. }),
            ),
            _,
        ) => {
            if let OverlayEntry::File { mode: m, .. }
            | OverlayEntry::Dir { mode: m, .. }
            | OverlayEntry::Graft { mode: m, .. }
            | OverlayEntry::Special { mode: m, .. } = &mut e
            {
                *m = mode;
            }
            e
        }
        (_, FileKind::Dir) => OverlayEntry::Dir {
            opaque: false,
            mode,
            mtime: node.mtime,
            owner: node.owner,
        },
        // A base file (or its attributes): a whole entry, so a freeze writes the new
        // executable bit into the tree.
        (_, _) => {
            let mut e = entry_for(view, &node)?;
            if let OverlayEntry::File { mode: m, .. } | OverlayEntry::Special { mode: m, .. } = &mut e {
                *m = mode;
            }
            e
        }
    };
    let mut m = Mutation::default();
    m.upsert.push((key, entry));
    m.events
        .push(NewEvent::new(EventKind::Chmod, Some(path.as_str())).with(serde_json::json!({"mode": mode})));
    node.mode = mode;
    let stat = stat_node(view, &path, &node, false)?;
    Ok((m, stat))
}

/// Plan renaming a file, symlink or directory.
pub(crate) fn plan_rename(view: &View<'_>, from: SessionPath, to: SessionPath) -> Result<(Mutation, ())> {
    if from.is_root() || to.is_root() {
        return Err(Error::InvalidArgument("the session root cannot be renamed".into()));
    }
    let node = view.resolve(&from)?.ok_or_else(|| not_found(&from))?;
    let mut m = Mutation::default();
    if from == to {
        return Ok((m, ()));
    }
    if node.is_dir() && to.starts_with(&from) {
        return Err(Error::InvalidArgument(format!("cannot move '{from}' into itself")));
    }
    match view.resolve(&to)? {
        Some(dest) if dest.is_dir() && !node.is_dir() => {
            return Err(Error::IsADirectory { path: to.to_string() });
        }
        Some(dest) if !dest.is_dir() && node.is_dir() => {
            return Err(Error::NotADirectory { path: to.to_string() });
        }
        Some(dest) if dest.is_dir() && !view.children(&to, &dest)?.is_empty() => {
            return Err(Error::NotEmpty { path: to.to_string() });
        }
        Some(_) => {}
        None => prepare_parent(view, &to, false, now_ns(), &mut m)?,
    }
    let moved = if node.is_dir() {
        let base = node.dir_base().unwrap_or_else(|| view.objects.odb.empty_tree());
        let (edits, residual) = view.freeze_edits(&from)?;
        let tree = view.objects.odb.edit_tree(base, &edits)?;
        for (rel, entry) in residual {
            m.upsert.push((to.join(&rel).as_str().to_owned(), entry));
        }
        OverlayEntry::Graft {
            tree,
            mode: node.mode,
            mtime: node.mtime,
            owner: node.owner,
        }
    } else {
        entry_for(view, &node)?
    };
    m.remove_below.push(from.as_str().to_owned());
    m.remove_below.push(to.as_str().to_owned());
    // Upserts run after removals, so the residual entries re-keyed under `to` survive.
    m.upsert.insert(0, (from.as_str().to_owned(), OverlayEntry::Deleted));
    m.upsert.insert(1, (to.as_str().to_owned(), moved));
    m.events
        .push(NewEvent::new(EventKind::Rename, Some(from.as_str())).with(serde_json::json!({"to": to.as_str()})));
    Ok((m, ()))
}
