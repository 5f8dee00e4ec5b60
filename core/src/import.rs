//! Sessions from outside bytes: a directory on this machine or a tar (optionally gzip) stream.
//! The tree is built completely before the session exists, so a failed import leaves nothing
//! visible. Content, the exec bit, symlinks and empty directories are kept; mtimes are not (an
//! imported session's files carry its creation time).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use tokio::io::AsyncRead;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::meta::sqlite::blocking;
use crate::meta::{NewEvent, SessionRecord};
use crate::objects::Objects;
use crate::odb::TreeEdit;
use crate::overlay::OverlayEntry;
use crate::path::{PathLimits, SessionPath};
use crate::sessions::{CreateOptions, now_ns};

/// Collects files of an import and turns them into one tree.
struct Accumulator {
    edits: Vec<TreeEdit>,
    /// Entries by path, for tar hard links.
    seen: HashMap<String, (EntryKind, ObjectId)>,
    dirs: BTreeSet<String>,
    count: u64,
    max_files: u64,
    max_file_size: u64,
    limits: PathLimits,
}

impl Accumulator {
    fn new(engine: &Engine) -> Self {
        let limits = engine.config().limits;
        Accumulator {
            edits: Vec::new(),
            seen: HashMap::new(),
            dirs: BTreeSet::new(),
            count: 0,
            max_files: limits.max_import_files,
            max_file_size: limits.max_file_size,
            limits: limits.path,
        }
    }

    fn count_one(&mut self) -> Result<()> {
        self.count += 1;
        if self.count > self.max_files {
            return Err(Error::TooLarge {
                what: "number of files in the import".into(),
                limit: self.max_files,
            });
        }
        Ok(())
    }

    fn add(&mut self, path: SessionPath, kind: EntryKind, oid: ObjectId) -> Result<()> {
        if path.is_root() {
            return Err(Error::InvalidPath {
                path: String::new(),
                reason: "a file cannot be the root",
            });
        }
        self.count_one()?;
        self.seen.insert(path.as_str().to_owned(), (kind, oid));
        self.edits.push(TreeEdit::Upsert {
            path: path.as_str().to_owned(),
            kind,
            oid,
        });
        Ok(())
    }

    fn add_dir(&mut self, path: SessionPath) -> Result<()> {
        if !path.is_root() {
            self.count_one()?;
            self.dirs.insert(path.as_str().to_owned());
        }
        Ok(())
    }

    /// Write the tree; directories that hold nothing stay as overlay entries.
    fn finish(self, objects: &Objects) -> Result<(ObjectId, Vec<(String, OverlayEntry)>)> {
        let tree = objects.odb.edit_tree(objects.odb.empty_tree(), &self.edits)?;
        let mut nonempty = BTreeSet::new();
        for e in &self.edits {
            if let TreeEdit::Upsert { path, .. } = e {
                let mut p = path.as_str();
                while let Some(i) = p.rfind('/') {
                    p = &p[..i];
                    if !nonempty.insert(p.to_owned()) {
                        break;
                    }
                }
            }
        }
        let now = now_ns();
        let residual = self
            .dirs
            .into_iter()
            .filter(|d| !nonempty.contains(d))
            .map(|d| {
                (
                    d,
                    OverlayEntry::Dir {
                        opaque: false,
                        mode: 0o755,
                        mtime: now,
                    },
                )
            })
            .collect();
        Ok((tree, residual))
    }
}

fn file_kind(mode: u32) -> EntryKind {
    if mode & 0o100 != 0 {
        EntryKind::BlobExecutable
    } else {
        EntryKind::Blob
    }
}

fn walk_dir(objects: &Objects, acc: &mut Accumulator, root: &Path, dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io(format!("reading directory {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(Error::io(format!("reading directory {}", dir.display())))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let full = entry.path();
        let rel = full
            .strip_prefix(root)
            .map_err(|_| Error::InvalidArgument("path outside import root".into()))?;
        let rel = rel.to_str().ok_or_else(|| Error::InvalidPath {
            path: rel.to_string_lossy().into_owned(),
            reason: "names must be UTF-8",
        })?;
        let path = SessionPath::parse(rel, acc.limits)?;
        let ft = entry
            .file_type()
            .map_err(Error::io(format!("inspecting {}", full.display())))?;
        if ft.is_dir() {
            acc.add_dir(path)?;
            walk_dir(objects, acc, root, &full)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&full).map_err(Error::io(format!("reading link {}", full.display())))?;
            let oid = objects.odb.write_blob(target.to_string_lossy().as_bytes())?;
            acc.add(path, EntryKind::Link, oid)?;
        } else if ft.is_file() {
            let mut f = std::fs::File::open(&full).map_err(Error::io(format!("opening {}", full.display())))?;
            let meta = f
                .metadata()
                .map_err(Error::io(format!("inspecting {}", full.display())))?;
            let ingested = objects.ingest(&mut f, Some(meta.len()), acc.max_file_size)?;
            use std::os::unix::fs::PermissionsExt;
            acc.add(path, file_kind(meta.permissions().mode()), ingested.oid)?;
        }
        // Sockets, fifos and devices have no meaning in a session; they are left out.
    }
    Ok(())
}

fn read_tar(objects: &Objects, acc: &mut Accumulator, reader: impl Read) -> Result<()> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf().map_err(Error::io("reading the archive"))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let bad = |e: std::io::Error| Error::InvalidArgument(format!("not a valid tar archive: {e}"));
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path_bytes();
        let raw = std::str::from_utf8(&raw)
            .map_err(|_| Error::InvalidPath {
                path: String::from_utf8_lossy(&raw).into_owned(),
                reason: "names must be UTF-8",
            })?
            .to_owned();
        let path = SessionPath::parse(&raw, acc.limits)?;
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644);
        match header.entry_type() {
            tar::EntryType::Directory => acc.add_dir(path)?,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                let ingested = objects.ingest(&mut entry, Some(size), acc.max_file_size)?;
                acc.add(path, file_kind(mode), ingested.oid)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::InvalidArgument(format!("symlink '{path}' has no target")))?;
                let oid = objects.odb.write_blob(&target)?;
                acc.add(path, EntryKind::Link, oid)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::InvalidArgument(format!("hard link '{path}' has no target")))?;
                let target = SessionPath::parse(&String::from_utf8_lossy(&target), acc.limits)?;
                let (kind, oid) = *acc.seen.get(target.as_str()).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "hard link '{path}' points to '{target}', which is not earlier in the archive"
                    ))
                })?;
                acc.add(path, kind, oid)?;
            }
            // Extended headers are consumed by the tar reader; devices and fifos are left out.
            _ => {}
        }
    }
    Ok(())
}

impl Engine {
    pub(crate) async fn import_directory(&self, dir: PathBuf, opts: CreateOptions) -> Result<SessionRecord> {
        let objects = self.inner.objects.clone();
        let mut acc = Accumulator::new(self);
        let source = dir.display().to_string();
        let (tree, residual, count) = blocking(move || {
            let meta = std::fs::metadata(&dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::not_found(format!("directory {}", dir.display())),
                _ => Error::io(format!("opening {}", dir.display()))(e),
            })?;
            if !meta.is_dir() {
                return Err(Error::NotADirectory {
                    path: dir.display().to_string(),
                });
            }
            walk_dir(&objects, &mut acc, &dir, &dir)?;
            let count = acc.count;
            let (tree, residual) = acc.finish(&objects)?;
            Ok((tree, residual, count))
        })
        .await?;
        let record = self.new_record(tree, None, None, now_ns(), &opts)?;
        let event = NewEvent::new("created", None)
            .with(serde_json::json!({"source": "directory", "path": source, "entries": count}));
        self.insert(record, residual, event).await
    }

    /// Create a session from a tar or tar.gz stream (detected by its magic bytes).
    pub async fn import_tar<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        body: R,
        opts: CreateOptions,
    ) -> Result<SessionRecord> {
        crate::sessions::validate_labels(&opts.labels, &opts.tags)?;
        let objects = self.inner.objects.clone();
        let mut acc = Accumulator::new(self);
        let handle = tokio::runtime::Handle::current();
        let (tree, residual, count) = blocking(move || {
            let _enter = handle.enter();
            read_tar(
                &objects,
                &mut acc,
                std::io::BufReader::with_capacity(2 << 20, tokio_util::io::SyncIoBridge::new(body)),
            )?;
            let count = acc.count;
            let (tree, residual) = acc.finish(&objects)?;
            Ok((tree, residual, count))
        })
        .await?;
        let record = self.new_record(tree, None, None, now_ns(), &opts)?;
        let event = NewEvent::new("created", None).with(serde_json::json!({"source": "tar", "entries": count}));
        self.insert(record, residual, event).await
    }
}
