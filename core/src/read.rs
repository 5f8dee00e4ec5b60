//! Reading a file as one version: a path is resolved to one content id in one state of the
//! session (live, or a revision), and every byte served afterwards is a byte of that content,
//! whatever is written meanwhile. The stat a reader gets (size, id) belongs to those bytes, and a
//! reader that cannot produce them all fails instead of ending early: a surface that announced a
//! length must never send fewer bytes as if they were complete.
//!
//! Contents are immutable and named by their git blob id, so once resolved no lock is held.

use std::io::Read;
use std::sync::Arc;

use gix::ObjectId;

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::objects::{BlobReader, Objects};
use crate::stat::{Stat, stat_node};
use crate::view::{Content, FileKind};

/// What a path named when a read resolved it.
pub enum Opened {
    /// A regular file: its stat and its content.
    File(OpenFile),
    /// A directory or a symlink: nothing to read, its stat says which.
    NotAFile(Stat),
}

/// One content of a file, resolved: its stat (from the same state) and its bytes by id.
pub struct OpenFile {
    stat: Stat,
    oid: ObjectId,
    objects: Arc<Objects>,
}

impl OpenFile {
    /// The file's attributes when it was resolved; `size` and `oid` are this content's.
    pub fn stat(&self) -> &Stat {
        &self.stat
    }

    pub fn into_stat(self) -> Stat {
        self.stat
    }

    /// The content's git blob id.
    pub fn oid(&self) -> ObjectId {
        self.oid
    }

    pub fn size(&self) -> u64 {
        self.stat.size
    }

    /// Whether the bytes live in the chunk store (read them with [`OpenFile::reader`] to hold
    /// one chunk at a time rather than the whole range).
    pub fn chunked(&self) -> bool {
        self.stat.chunked
    }

    /// The length of `[offset, offset + len)` clipped to the content's end.
    pub fn clip(&self, offset: u64, len: u64) -> u64 {
        len.min(self.size().saturating_sub(offset))
    }

    /// Bytes `[offset, offset + len)` of this content, clipped to its end: exactly that many
    /// bytes, or an error.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let want = self.clip(offset, len);
        let (objects, oid) = (self.objects.clone(), self.oid);
        let data = blocking(move || objects.read_range(&oid, offset, want)).await?;
        if data.len() as u64 != want {
            return Err(short(&oid, offset, want, data.len() as u64));
        }
        Ok(data)
    }

    /// A reader of exactly the bytes `[offset, offset + len)` of this content, clipped to its
    /// end; it fails rather than end early. It does blocking I/O (the first read loads a small
    /// blob whole): use it from a blocking context.
    pub fn reader(&self, offset: u64, len: u64) -> ContentReader {
        ContentReader {
            objects: self.objects.clone(),
            oid: self.oid,
            offset,
            remaining: self.clip(offset, len),
            inner: None,
        }
    }
}

fn short(oid: &ObjectId, offset: u64, want: u64, got: u64) -> Error {
    Error::Corrupt(format!(
        "blob {oid} gave {got} of the {want} bytes at offset {offset} its size promises"
    ))
}

/// Streams a fixed range of one content; see [`OpenFile::reader`].
pub struct ContentReader {
    objects: Arc<Objects>,
    oid: ObjectId,
    offset: u64,
    remaining: u64,
    inner: Option<BlobReader>,
}

impl ContentReader {
    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Read for ContentReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 || out.is_empty() {
            return Ok(0);
        }
        let inner = match &mut self.inner {
            Some(r) => r,
            None => self.inner.insert(
                self.objects
                    .reader(&self.oid, self.offset)
                    .map_err(std::io::Error::other)?,
            ),
        };
        let max = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(out.len());
        let n = inner.read(&mut out[..max])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                short(&self.oid, self.offset, self.remaining, 0),
            ));
        }
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Parse a content id given by a caller (a git blob id in hex).
fn parse_content_id(raw: &str) -> Result<ObjectId> {
    ObjectId::from_hex(raw.as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("'{}' is not a content id (40 hex digits)", raw.escape_debug())))
}

impl Engine {
    /// Resolve `path` in one state of the session (the live one, or revision `at`) to what it
    /// names. With `expect`, the path must name exactly that content (a git blob id): anything
    /// else (other content, a directory, nothing) is [`Error::Stale`] and nothing is read.
    pub async fn open_file(
        &self,
        id: &SessionId,
        path: &str,
        at: Option<&str>,
        expect: Option<&str>,
    ) -> Result<Opened> {
        self.open_expecting(id, path, at, expect, Expect::Current).await
    }

    /// [`Engine::open_file`] of the version `content_id` that a reader opened earlier (a
    /// descriptor open in a mount): the file's content if it still is that one, else that
    /// content if this session's files held it lately, even if replaced or removed since (see
    /// `held`), as a local disk serves an open file; else `stale`.
    pub async fn open_opened(&self, id: &SessionId, path: &str, at: Option<&str>, content_id: &str) -> Result<Opened> {
        self.open_expecting(id, path, at, Some(content_id), Expect::OpenedEarlier)
            .await
    }

    /// [`Engine::stat`] of the version `content_id` a reader opened earlier: see
    /// [`Engine::open_opened`]; with its chunk extents.
    pub async fn stat_opened(&self, id: &SessionId, path: &str, at: Option<&str>, content_id: &str) -> Result<Stat> {
        let mut stat = match self.open_opened(id, path, at, content_id).await? {
            Opened::File(f) => f.into_stat(),
            Opened::NotAFile(s) => return Ok(s),
        };
        if stat.chunked
            && let Some(oid) = stat.oid.as_deref().map(parse_content_id).transpose()?
        {
            let objects = self.inner.objects.clone();
            stat.extents = blocking(move || objects.extents(&oid)).await?;
        }
        Ok(stat)
    }

    async fn open_expecting(
        &self,
        id: &SessionId,
        path: &str,
        at: Option<&str>,
        expect: Option<&str>,
        opened: Expect,
    ) -> Result<Opened> {
        let path = self.parse_path(path)?;
        let expect = expect.map(parse_content_id).transpose()?;
        let objects = self.inner.objects.clone();
        let shown = path.clone();
        let found = self
            .with_view_at(id, at, move |view| {
                let node = match (view.resolve(&path)?, expect) {
                    (Some(n), _) => n,
                    (None, Some(e)) => return Err(stale(&path, &e, "gone")),
                    (None, None) => return Err(Error::not_found(format!("'{path}'"))),
                };
                let oid = match (&node.kind, &node.content) {
                    (FileKind::File, Content::Blob { oid, .. }) => Some(*oid),
                    _ => None,
                };
                if let Some(e) = expect
                    && oid != Some(e)
                {
                    let actual = match (oid, node.kind) {
                        (Some(o), _) => o.to_hex().to_string(),
                        (None, FileKind::Dir) => "a directory".to_owned(),
                        (None, FileKind::Symlink) => "a symbolic link".to_owned(),
                        (None, other) => format!("a special file ({})", other.as_str()),
                    };
                    return Err(stale(&path, &e, &actual));
                }
                Ok((stat_node(view, &path, &node, false)?, oid))
            })
            .await;
        let (stat, oid) = match (found, expect) {
            // The version the reader opened was replaced or removed since: it is still served if
            // this session held it lately (see `held`), as a local disk serves an open file.
            (Err(Error::Stale { .. }), Some(e))
                if opened == Expect::OpenedEarlier && at.is_none() && self.held_lately(id, &e).await =>
            {
                (self.held_stat(shown, e).await?, Some(e))
            }
            (found, _) => found?,
        };
        Ok(match oid {
            Some(oid) => Opened::File(OpenFile { stat, oid, objects }),
            None => Opened::NotAFile(stat),
        })
    }
}

impl Engine {
    async fn held_lately(&self, id: &SessionId, oid: &ObjectId) -> bool {
        self.handle(id).await.is_ok_and(|h| h.held.lock().contains(oid))
    }

    /// What a reader of content `oid`, no longer at `path`, is told of it: its size and how it
    /// is stored. Its other attributes are not kept: mode 0644, mtime 0, no owner.
    async fn held_stat(&self, path: crate::path::SessionPath, oid: ObjectId) -> Result<Stat> {
        let objects = self.inner.objects.clone();
        blocking(move || {
            Ok(Stat {
                path: path.as_str().to_owned(),
                kind: FileKind::File,
                mode: 0o644,
                size: objects.blob_size(&oid)?,
                mtime_ns: 0,
                oid: Some(oid.to_hex().to_string()),
                chunked: objects.manifest(&oid)?.is_some(),
                extents: None,
                symlink_target: None,
                uid: None,
                gid: None,
                rdev: 0,
                nlink: 1,
                link: None,
            })
        })
        .await
    }
}

/// What a content id given to a read means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The file's current content must be that one (HTTP `If-Match`).
    Current,
    /// The reader opened that version earlier.
    OpenedEarlier,
}

fn stale(path: &crate::path::SessionPath, expected: &ObjectId, actual: &str) -> Error {
    Error::Stale {
        path: path.to_string(),
        expected: expected.to_hex().to_string(),
        actual: actual.to_owned(),
    }
}

impl Engine {
    /// The whole bytes of each content named by id with the size a listing gave it (a mount's
    /// listing carries the bytes of small files), in one blocking call. A content whose bytes
    /// are not that size is corrupt, never served short.
    pub async fn read_contents(&self, wanted: Vec<(ObjectId, u64)>) -> Result<Vec<(ObjectId, Vec<u8>)>> {
        let objects = self.inner.objects.clone();
        blocking(move || {
            wanted
                .into_iter()
                .map(|(oid, size)| {
                    // One read, one byte past the size: a longer blob shows as one, and its
                    // header is not looked up separately (an object opened once, not twice).
                    let data = objects.read_range(&oid, 0, size.saturating_add(1))?;
                    let actual = data.len() as u64;
                    if actual > size {
                        return Err(Error::Corrupt(format!(
                            "blob {oid} holds more than {size} bytes, its listing's size"
                        )));
                    }
                    if actual != size {
                        return Err(short(&oid, 0, size, actual));
                    }
                    Ok((oid, data))
                })
                .collect()
        })
        .await
    }
}
