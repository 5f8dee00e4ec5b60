//! Sessions from outside bytes: a directory on this machine or a tar (optionally gzip) stream.
//! The tree is built completely before the session exists, so a failed import leaves nothing
//! visible (objects it stored stay until garbage collection, unreachable).
//!
//! What goes in comes out: file bytes; every permission bit of files and directories (setuid
//! included); symlink targets as the bytes they are (`../.././x` stays so); empty directories;
//! a nested `.git`. Not kept: mtimes (an imported session's files carry its creation time),
//! owners, hard-link identity (each name becomes its own file), and the root directory's own
//! mode. Refused, with an error that names the entry: names or symlink targets that are not
//! UTF-8, names a session cannot hold (`..`, empty components), a malformed or truncated
//! archive, a gzip stream whose trailer does not match. Left out and listed in the session's
//! `created` event (`skipped`, `skipped_paths`): fifos, sockets and devices, which a session
//! cannot hold.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::AsyncRead;

use crate::archive::{self, EntryKind, TarReader};
use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::import_tree::{Built, ImportTree};
use crate::meta::{NewEvent, SessionRecord};
use crate::objects::{Objects, Staging};
use crate::path::{PathLimits, SessionPath};
use crate::sessions::{CreateOptions, now_ns};

/// A name from outside as a session path: UTF-8 and a valid session path.
fn session_path(raw: &[u8], limits: PathLimits) -> Result<SessionPath> {
    let text = std::str::from_utf8(raw).map_err(|_| Error::InvalidPath {
        path: String::from_utf8_lossy(raw).into_owned(),
        reason: "names must be UTF-8",
    })?;
    SessionPath::parse(text, limits)
}

/// A symlink's target, checked as a write through the API checks it.
fn link_target(path: &SessionPath, raw: &[u8]) -> Result<String> {
    let target = std::str::from_utf8(raw)
        .map_err(|_| Error::InvalidArgument(format!("symlink '{path}': its target is not UTF-8")))?;
    crate::fs_ops::check_symlink_target(target)
        .map_err(|e| Error::InvalidArgument(format!("symlink '{path}': {e}")))?;
    Ok(target.to_owned())
}

fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// Add everything below `root` (iteratively; the path length limit bounds the depth).
fn walk_dir(objects: &Objects, tree: &mut ImportTree, root: &Path) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(Error::io(format!("reading directory {}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(Error::io(format!("reading directory {}", dir.display())))?;
            let full = entry.path();
            let rel = full
                .strip_prefix(root)
                .map_err(|_| Error::InvalidArgument("path outside import root".into()))?;
            let path = session_path(rel.as_os_str().as_bytes(), tree.limits)?;
            let ft = entry
                .file_type()
                .map_err(Error::io(format!("inspecting {}", full.display())))?;
            if ft.is_dir() {
                let meta = entry
                    .metadata()
                    .map_err(Error::io(format!("inspecting {}", full.display())))?;
                tree.add_dir(path, meta.permissions().mode())?;
                stack.push(full);
            } else if ft.is_symlink() {
                let target =
                    std::fs::read_link(&full).map_err(Error::io(format!("reading link {}", full.display())))?;
                let target = link_target(&path, target.as_os_str().as_bytes())?;
                let oid = objects.odb.write_blob(target.as_bytes())?;
                tree.add_link(path, oid)?;
            } else if ft.is_file() {
                let mut f = std::fs::File::open(&full).map_err(Error::io(format!("opening {}", full.display())))?;
                let meta = f
                    .metadata()
                    .map_err(Error::io(format!("inspecting {}", full.display())))?;
                let ingested = objects.ingest(&mut f, Some(meta.len()), tree.max_file_size)?;
                tree.add_file(path, ingested.oid, meta.permissions().mode())?;
            } else {
                tree.skip(&path, special_kind(&ft))?;
            }
        }
    }
    Ok(())
}

/// Read a tar into `tree`, its files' chunks staged in `staging` (kept by the caller once the
/// whole import succeeded, removed otherwise).
fn read_tar(
    objects: &Objects,
    staging: &mut Staging<'_>,
    tree: &mut ImportTree,
    reader: impl Read + Send,
) -> Result<()> {
    let stream = archive::decompress(reader).map_err(|e| archive::read_failure("reading the archive", e))?;
    let mut tar = TarReader::new(stream);
    while let Some(entry) = tar.next_entry()? {
        let path = session_path(&entry.path, tree.limits)?;
        match entry.kind {
            EntryKind::File => {
                let ingested = objects
                    .ingest_staged(staging, &mut tar.data(), Some(entry.size), tree.max_file_size)
                    .map_err(archive::unwrap_error)?;
                tree.add_file(path, ingested.oid, entry.mode)?;
            }
            EntryKind::Dir => tree.add_dir(path, entry.mode)?,
            EntryKind::Symlink => {
                let target = link_target(&path, &entry.link)?;
                let oid = objects.odb.write_blob(target.as_bytes())?;
                tree.add_link(path, oid)?;
            }
            EntryKind::HardLink => {
                let target = session_path(&entry.link, tree.limits)?;
                tree.add_hard_link(path, target)?;
            }
            EntryKind::Fifo => tree.skip(&path, "fifo")?,
            EntryKind::CharDevice => tree.skip(&path, "character device")?,
            EntryKind::BlockDevice => tree.skip(&path, "block device")?,
        }
    }
    Ok(())
}

/// The `created` event of an import.
fn created_event(source: serde_json::Value, built: &Built) -> NewEvent {
    let mut detail = source;
    if let Some(map) = detail.as_object_mut() {
        map.insert("entries".into(), built.entries.into());
        if built.skipped > 0 {
            map.insert("skipped".into(), built.skipped.into());
            map.insert("skipped_paths".into(), built.skipped_paths.clone().into());
        }
    }
    if built.skipped > 0 {
        tracing::info!(skipped = built.skipped, first = ?built.skipped_paths.first(), "import left out special files");
    }
    NewEvent::new(EventKind::Created, None).with(detail)
}

impl Engine {
    pub(crate) async fn import_directory(&self, dir: PathBuf, opts: CreateOptions) -> Result<SessionRecord> {
        let objects = self.inner.objects.clone();
        let mut tree = ImportTree::new(self.config().limits);
        let source = serde_json::json!({"source": "directory", "path": dir.display().to_string()});
        let now = now_ns();
        let built = blocking(move || {
            let meta = std::fs::metadata(&dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::not_found(format!("directory {}", dir.display())),
                _ => Error::io(format!("opening {}", dir.display()))(e),
            })?;
            if !meta.is_dir() {
                return Err(Error::NotADirectory {
                    path: dir.display().to_string(),
                });
            }
            walk_dir(&objects, &mut tree, &dir)?;
            tree.finish(&objects, now)
        })
        .await?;
        let record = self.new_record(built.tree, None, None, now, &opts)?;
        let event = created_event(source, &built);
        self.insert(record, built.residual, event).await
    }

    /// Create a session from a tar or tar.gz stream (detected by its magic bytes).
    pub async fn import_tar<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        body: R,
        opts: CreateOptions,
    ) -> Result<SessionRecord> {
        crate::sessions::validate_labels(&opts.labels, &opts.tags)?;
        let objects = self.inner.objects.clone();
        let mut tree = ImportTree::new(self.config().limits);
        let now = now_ns();
        // The body is pumped on this task, not read from the blocking thread: when the client
        // leaves, the request (and with it the pump) is dropped, the tar reader's next read fails
        // and the import stops. Read from the blocking thread, the body of a dropped request
        // never ended, and the import waited for it forever, its chunks staged.
        let built = crate::body_pump::pumped(body, None, move |reader| {
            // A tar that fails part-way (or whose client left) removes the chunks of every file
            // it stored so far, not only of the one it was reading.
            let mut staging = objects.staging();
            read_tar(&objects, &mut staging, &mut tree, reader)?;
            let built = tree.finish(&objects, now)?;
            staging.keep();
            Ok(built)
        })
        .await?;
        let record = self.new_record(built.tree, None, None, now, &opts)?;
        let event = created_event(serde_json::json!({"source": "tar"}), &built);
        self.insert(record, built.residual, event).await
    }
}
