//! A session (or one of its revisions) as a tar stream, read from one pinned state: writes
//! that land while the archive is written are not in it, and no entry is torn. Directories
//! (empty ones included) and files carry their modes as stored (setuid and friends included),
//! symlinks their targets as bytes, everything its mtime; names and targets are written as
//! they are (pax records where a field is too short). The walk is iterative and depth-first,
//! one directory listing per level in memory, and a file passes through one chunk at a time.
//! The root directory itself is not an entry.
//!
//! Special files (FIFOs, sockets, device nodes) are left out, like git commits leave them out:
//! the archive is what a tar import takes back, and an import skips them (it reports them as
//! `skipped`), while tar has no entry type for a socket at all. They stay in the session and
//! its checkpoints.

use std::io::Write;
use std::sync::Arc;

use crate::archive::{TarWriter, WriteKind};
use crate::blocking::blocking;
use crate::config::Limits;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::objects::Objects;
use crate::path::SessionPath;
use crate::view::{Content, FileKind, Node, View};

fn tar_err(e: std::io::Error) -> Error {
    Error::io("writing the archive")(e)
}

impl Engine {
    /// Write the session's files (or those of revision `at`) as tar, gzip-compressed when
    /// `gzip`, into `out`.
    pub async fn export_tar<W: Write + Send + 'static>(
        &self,
        id: &SessionId,
        at: Option<&str>,
        gzip: bool,
        out: W,
    ) -> Result<()> {
        let pinned = self.pin(id, at).await?;
        // A deeper or larger tree (possible in imported git history) is refused rather than
        // walked without bound.
        let limits = self.config().limits;
        blocking(move || {
            let view = pinned.view();
            if gzip {
                let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                let gz = write_tree(&pinned.objects, &view, TarWriter::new(gz), &limits)?;
                gz.finish().map_err(tar_err)?;
            } else {
                write_tree(&pinned.objects, &view, TarWriter::new(out), &limits)?;
            }
            Ok(())
        })
        .await
    }
}

fn seconds(ns: i64) -> u64 {
    u64::try_from(ns / 1_000_000_000).unwrap_or(0)
}

/// A symlink's target as the bytes stored (not decoded: a target from git history need not
/// be UTF-8).
fn target_bytes(view: &View<'_>, node: &Node) -> Result<Vec<u8>> {
    match &node.content {
        Content::SymlinkTarget(t) => Ok(t.as_bytes().to_vec()),
        Content::SymlinkBlob(oid) => view.objects.read_range(oid, 0, u64::MAX),
        _ => Err(Error::Corrupt("a symlink without a target".into())),
    }
}

fn write_tree<W: Write>(objects: &Arc<Objects>, view: &View<'_>, mut tar: TarWriter<W>, limits: &Limits) -> Result<W> {
    let max_depth = limits.max_tree_depth;
    let root = SessionPath::root();
    let node = view.require(&root)?;
    let mut stack = vec![(root, node, 0usize)];
    let mut entries = 0u64;
    while let Some((dir, node, depth)) = stack.pop() {
        let mut subdirs = Vec::new();
        let mut children = view.children_iter(&dir, &node)?;
        while let Some((name, child)) = children.next(view) {
            entries += 1;
            if entries > limits.max_walk_entries {
                return Err(Error::TooLarge {
                    what: "number of entries in the export".into(),
                    limit: limits.max_walk_entries,
                });
            }
            let path = dir.join(&name);
            let name = path.as_str().as_bytes();
            let mtime = seconds(child.mtime);
            match (&child.kind, &child.content) {
                (FileKind::Dir, _) => {
                    tar.append(name, WriteKind::Dir, child.mode, mtime, &mut std::io::empty())
                        .map_err(tar_err)?;
                    if depth + 1 >= max_depth {
                        return Err(Error::TooLarge {
                            what: format!("directory depth at '{path}'"),
                            limit: max_depth as u64,
                        });
                    }
                    subdirs.push((path, child, depth + 1));
                }
                (FileKind::Symlink, _) => {
                    let target = target_bytes(view, &child)?;
                    let kind = WriteKind::Symlink { target: &target };
                    tar.append(name, kind, 0o777, mtime, &mut std::io::empty())
                        .map_err(tar_err)?;
                }
                (FileKind::File, Content::Blob { oid, .. }) => {
                    let size = view.size_of(&child)?;
                    let mut reader = objects.reader(oid, 0)?;
                    tar.append(name, WriteKind::File { size }, child.mode, mtime, &mut reader)
                        .map_err(tar_err)?;
                }
                (FileKind::File, _) => return Err(Error::Corrupt(format!("'{path}' is a file without content"))),
                // Left out (see the module doc).
                (FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice, _) => {}
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    tar.finish().map_err(tar_err)
}
