//! File content: reads of one version (stat and bytes from the same snapshot), whole writes,
//! resumed writes, range writes, truncation, and the namespace (delete, rename, mkdir, symlink,
//! chmod, chown, mknod, link).

use tokio::io::AsyncRead;

use aether_core::{FileKind, Opened, SpecialKind, Stat, WriteOptions};

use crate::Service;
use crate::error::{Code, Result, ServiceError};
use crate::observe::{Counting, Meter, ServedFile};
use crate::principal::{Access, Principal};

/// Largest range write accepted in one request.
pub const MAX_PATCH_BYTES: usize = 256 << 20;

/// A read of one file's content.
#[derive(Clone, Debug, Default)]
pub struct ReadFile {
    pub session: String,
    pub path: String,
    /// A revision; the current state when `None`.
    pub at: Option<String>,
    /// The content (git blob id) the caller expects: anything else is `stale`.
    pub content_id: Option<String>,
    /// `content_id` is a version the caller opened earlier: read it even if replaced since,
    /// when the session held it lately (see `Engine::open_opened`).
    pub opened: bool,
    /// Where the caller starts reading: past the end is `range_not_satisfiable`.
    pub offset: u64,
}

/// A whole-file write (or, with `offset > 0`, a resumed one: the first `offset` bytes stay).
#[derive(Clone, Debug, Default)]
pub struct WriteFile {
    pub session: String,
    pub path: String,
    /// The announced size, checked against what arrives.
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub create_parents: bool,
    pub offset: u64,
    /// The file's modification time (nanoseconds since the Unix epoch, 0 or more) instead of
    /// the time of the write.
    pub mtime: Option<i64>,
}

/// A change to part of a file.
#[derive(Clone, Debug)]
pub enum PatchOp {
    /// Write `data` at `offset`.
    Write { offset: u64, data: Vec<u8> },
    /// Cut or extend the file to this many bytes.
    Truncate(u64),
}

/// Permission bits, or `invalid_argument`.
pub fn check_mode(mode: u32) -> Result<u32> {
    if mode > 0o7777 {
        return Err(ServiceError::invalid(format!(
            "mode must be permission bits (at most 7777 octal), got {mode:o}"
        )));
    }
    Ok(mode)
}

/// The error for reading the content of something that is not a regular file.
fn not_a_file(stat: Stat) -> ServiceError {
    match stat.kind {
        FileKind::Symlink => {
            let target = stat.symlink_target.unwrap_or_default();
            ServiceError::new(
                Code::IsASymlink,
                format!("'{}' is a symbolic link to '{target}'", stat.path),
            )
            .with_detail("target", target)
        }
        FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice => ServiceError::new(
            Code::IsASpecialFile,
            format!(
                "'{}' is a special file ({}); it has no content",
                stat.path,
                stat.kind.as_str()
            ),
        )
        .with_detail("kind", stat.kind.as_str()),
        _ => aether_core::Error::IsADirectory { path: stat.path }.into(),
    }
}

impl Service {
    /// Open one version of a file: its stat (size, content id) and its bytes come from the same
    /// snapshot, whatever is written meanwhile.
    pub async fn open_file(&self, p: &Principal, req: ReadFile) -> Result<ServedFile> {
        let id = self.session(p, &req.session, Access::Read)?;
        let file = self
            .observe("read", &id, Some(&req.path), async {
                self.recall_live(p, &id, req.at.as_deref(), "read").await;
                // Held while the file is opened; the surface reads its bytes piece by piece, each piece
                // waiting for a slot of its own (`Admission::wait`), so a slow reader holds none.
                let _job = self.admit("read")?;
                let opened = match (req.opened, req.content_id.as_deref()) {
                    (true, Some(content)) => {
                        self.engine()
                            .open_opened(&id, &req.path, req.at.as_deref(), content)
                            .await?
                    }
                    _ => {
                        self.engine()
                            .open_file(&id, &req.path, req.at.as_deref(), req.content_id.as_deref())
                            .await?
                    }
                };
                let file = match opened {
                    Opened::File(f) => f,
                    Opened::NotAFile(stat) => return Err(not_a_file(stat)),
                };
                if req.offset > file.size() {
                    return Err(ServiceError::new(
                        Code::RangeNotSatisfiable,
                        format!(
                            "offset {} is past the end of '{}' ({} bytes)",
                            req.offset,
                            file.stat().path,
                            file.size()
                        ),
                    ));
                }
                Ok(file)
            })
            .await?;
        Ok(self.served(&id, file))
    }

    /// Write a whole file from `reader`; with `req.offset > 0`, keep the first `offset` bytes
    /// and replace everything after them (a resumed upload).
    pub async fn write_file<R>(&self, p: &Principal, req: WriteFile, reader: R) -> Result<Stat>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let id = self.session(p, &req.session, Access::Write)?;
        // Every byte received counts as written, kept or not.
        let meter = Meter::default();
        let reader = Counting {
            inner: reader,
            into: meter.written.clone(),
        };
        self.observe_metered("write", &id, Some(&req.path), meter.clone(), async {
            self.recall_before_write(p, &id).await;
            let mode = req.mode.map(check_mode).transpose()?;
            if let Some(t) = req.mtime {
                aether_core::check_mtime(t)?;
            }
            // The body's first bytes are awaited here, holding nothing; only then is a job taken.
            let reader = crate::admission::read_ahead(reader, crate::admission::BODY_READ_AHEAD).await?;
            let _job = self.admit("write")?;
            let engine = self.engine_for(p);
            let opts = WriteOptions {
                size: req.size,
                mode,
                create_parents: req.create_parents,
                mtime: req.mtime,
            };
            // With an offset, one pass and one change (not a rewrite of the file per piece).
            Ok(engine.write_file_at(&id, &req.path, req.offset, reader, opts).await?)
        })
        .await
    }

    pub async fn patch_file(&self, p: &Principal, session: &str, path: &str, op: PatchOp) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        let (operation, meter) = match &op {
            PatchOp::Write { data, .. } => ("write_range", Meter::written(data.len() as u64)),
            PatchOp::Truncate(_) => ("truncate", Meter::default()),
        };
        self.observe_metered(operation, &id, Some(path), meter, async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("write")?;
            Ok(match op {
                PatchOp::Write { offset, data } => {
                    if data.len() > MAX_PATCH_BYTES {
                        return Err(ServiceError::too_large(format!(
                            "a range write is at most {MAX_PATCH_BYTES} bytes"
                        )));
                    }
                    self.engine_for(p).write_at(&id, path, offset, data).await?
                }
                PatchOp::Truncate(size) => self.engine_for(p).truncate(&id, path, size).await?,
            })
        })
        .await
    }

    pub async fn delete(&self, p: &Principal, session: &str, path: &str, recursive: bool) -> Result<()> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("delete", &id, Some(path), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("delete")?;
            Ok(self.engine_for(p).delete(&id, path, recursive).await?)
        })
        .await
    }

    /// Move `from` to `to`; the answer is what `to` now is.
    pub async fn rename(&self, p: &Principal, session: &str, from: &str, to: &str) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("rename", &id, Some(from), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("rename")?;
            self.engine_for(p).rename(&id, from, to).await?;
            Ok(self.engine_for(p).stat(&id, to, None).await?)
        })
        .await
    }

    pub async fn mkdir(&self, p: &Principal, session: &str, path: &str, parents: bool) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("mkdir", &id, Some(path), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("mkdir")?;
            Ok(self.engine_for(p).mkdir(&id, path, parents).await?)
        })
        .await
    }

    pub async fn symlink(&self, p: &Principal, session: &str, path: &str, target: &str) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("symlink", &id, Some(path), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("symlink")?;
            Ok(self.engine_for(p).symlink(&id, path, target).await?)
        })
        .await
    }

    pub async fn chmod(&self, p: &Principal, session: &str, path: &str, mode: u32) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("chmod", &id, Some(path), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("chmod")?;
            let mode = check_mode(mode)?;
            Ok(self.engine_for(p).chmod(&id, path, mode).await?)
        })
        .await
    }

    /// Set the modification time of `path` itself (never through a symlink), in nanoseconds
    /// since the Unix epoch (0 or more; anything else is `invalid_argument`).
    pub async fn set_times(&self, p: &Principal, session: &str, path: &str, mtime_ns: i64) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("set_times", &id, Some(path), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("set_times")?;
            aether_core::check_mtime(mtime_ns)?;
            Ok(self.engine_for(p).set_times(&id, path, mtime_ns).await?)
        })
        .await
    }

    /// Set the owner and/or group of `path` itself (never through a symlink).
    pub async fn chown(
        &self,
        p: &Principal,
        session: &str,
        path: &str,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("chown", &id, Some(path), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("chown")?;
            Ok(self.engine_for(p).chown(&id, path, uid, gid).await?)
        })
        .await
    }

    /// Create a FIFO, socket or device node; `kind` is `fifo`, `socket`, `char_device` or
    /// `block_device`.
    pub async fn mknod(
        &self,
        p: &Principal,
        session: &str,
        path: &str,
        kind: &str,
        mode: u32,
        rdev: u64,
    ) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("mknod", &id, Some(path), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("mknod")?;
            let kind = SpecialKind::from_name(kind)?;
            let mode = check_mode(mode)?;
            Ok(self.engine_for(p).mknod(&id, path, kind, mode, rdev).await?)
        })
        .await
    }

    /// Give the existing non-directory `from` the new name `to` (a hard link); the answer is
    /// the stat of `to`.
    pub async fn link(&self, p: &Principal, session: &str, from: &str, to: &str) -> Result<Stat> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("link", &id, Some(to), async {
            self.recall_before_write(p, &id).await;
            let _job = self.admit("link")?;
            Ok(self.engine_for(p).link(&id, from, to).await?)
        })
        .await
    }
}
