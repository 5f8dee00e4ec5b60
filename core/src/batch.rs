//! Batches: many changes to one session applied in order under one write lock and persisted in
//! one metadata transaction (a mount sends what it queued this way instead of one call per
//! change). Each change is planned against the state the changes before it left, with the same
//! rules as the single calls in `fs_ops`. The first change that fails stops the batch: the ones
//! before it are persisted and reported, the failing one is reported with its index, and the ones
//! after it are not tried. Nothing is acknowledged before it is committed to the metadata store.

use crate::blocking::blocking;
use crate::engine::{Engine, Live};
use crate::error::{Error, Result};
use crate::fs_ops::{
    check_mode, check_mtime, check_symlink_target, plan_chmod, plan_mkdir, plan_put, plan_remove, plan_rename,
    plan_symlink, with_mtime,
};
use crate::ids::SessionId;
use crate::meta::SessionState;
use crate::objects::Ingested;
use crate::overlay::{SpecialKind, Timestamp};
use crate::path::SessionPath;
use crate::posix_ops::{plan_chown, plan_link, plan_mknod, plan_set_times};
use crate::stat::Stat;

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Write a whole (small) file from bytes in memory.
    Put {
        path: String,
        data: Vec<u8>,
        /// Permission bits for a new file; an existing file keeps its mode when `None`.
        mode: Option<u32>,
        create_parents: bool,
        /// The file's modification time (nanoseconds since the Unix epoch, 0 or more) instead
        /// of the time of the write: a mount sends the time it showed for the file.
        mtime: Option<Timestamp>,
    },
    Mkdir {
        path: String,
        parents: bool,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// Remove a file, symlink or (with `recursive`, or when empty) a directory.
    Delete {
        path: String,
        recursive: bool,
    },
    /// Remove an empty directory (and nothing else).
    Rmdir {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    /// Set owner and/or group (`None`: unchanged).
    Chown {
        path: String,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    /// Create a special file; `kind` is `"fifo"`, `"socket"`, `"char_device"` or
    /// `"block_device"` (an unknown one fails this change).
    Mknod {
        path: String,
        kind: String,
        mode: u32,
        rdev: u64,
    },
    /// A hard link: `to` becomes another name of `from`.
    Link {
        from: String,
        to: String,
    },
    /// Set the modification time (nanoseconds since the Unix epoch, 0 or more).
    SetTimes {
        path: String,
        mtime: Timestamp,
    },
}

impl BatchOp {
    /// Bytes of content this change carries.
    pub fn data_len(&self) -> usize {
        match self {
            BatchOp::Put { data, .. } => data.len(),
            _ => 0,
        }
    }
}

/// What a batch did.
#[derive(Debug)]
pub struct BatchOutcome {
    /// One result per change applied, in order: a stat for puts, mkdirs, symlinks, chmods,
    /// chowns, mknods, links (of the new name) and set-times, `None` for deletes and renames. All of them are durable.
    pub applied: Vec<Option<Stat>>,
    /// The change that failed (its index in the batch) and why; the changes after it were not
    /// tried. `None` when every change was applied.
    pub failed: Option<(usize, Error)>,
}

/// A change with its paths parsed and its bytes stored.
enum Prepared {
    Put {
        path: SessionPath,
        ingested: Ingested,
        mode: Option<u32>,
        create_parents: bool,
        mtime: Option<Timestamp>,
    },
    Mkdir {
        path: SessionPath,
        parents: bool,
    },
    Symlink {
        path: SessionPath,
        target: String,
    },
    Remove {
        path: SessionPath,
        recursive: bool,
        dir_only: bool,
    },
    Rename {
        from: SessionPath,
        to: SessionPath,
    },
    Chmod {
        path: SessionPath,
        mode: u32,
    },
    Chown {
        path: SessionPath,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    Mknod {
        path: SessionPath,
        kind: SpecialKind,
        mode: u32,
        rdev: u64,
    },
    Link {
        from: SessionPath,
        to: SessionPath,
    },
    SetTimes {
        path: SessionPath,
        mtime: Timestamp,
    },
}

impl Engine {
    /// Apply `ops` in order (see the module doc). An `Err` means nothing was applied: the session
    /// is missing or read-only, or the metadata store failed.
    pub async fn apply_batch(&self, id: &SessionId, ops: Vec<BatchOp>) -> Result<BatchOutcome> {
        self.check_writable(id).await?;
        let (prepared, mut failed) = self.prepare(ops).await?;
        if prepared.is_empty() {
            return Ok(BatchOutcome {
                applied: Vec::new(),
                failed,
            });
        }
        let h = self.handle(id).await?;
        let _guard = h.write.lock().await;
        let objects = self.inner.objects.clone();
        let hh = h.clone();
        let inner = self.inner.clone();
        let limits = self.inner.config.limits.path;
        let (mut mutations, applied, plan_failed, replaced) = blocking(move || {
            // A scratch copy of the session that each change sees as the ones before it left it.
            let mut scratch = {
                let live = hh.live.read();
                if live.deleted {
                    return Err(Error::not_found(format!("session {}", hh.id)));
                }
                if live.record.state == SessionState::Archived {
                    return Err(Error::ReadOnly {
                        session: hh.id.to_string(),
                    });
                }
                Live {
                    record: live.record.clone(),
                    overlay: live.overlay.clone(),
                    frozen: live.frozen.clone(),
                    dirty: live.dirty.clone(),
                    deleted: false,
                    seq: live.seq,
                }
            };
            let mut mutations = Vec::with_capacity(prepared.len());
            let mut replaced = Vec::new();
            let mut applied = Vec::with_capacity(prepared.len());
            for (i, op) in prepared.into_iter().enumerate() {
                let view = scratch.view(&objects);
                let planned = match op {
                    Prepared::Put {
                        path,
                        ingested,
                        mode,
                        create_parents,
                        mtime,
                    } => plan_put(&view, path, ingested, mode, create_parents).map(|(mut m, mut s)| {
                        if let Some(t) = mtime {
                            with_mtime(&mut m, &mut s, t);
                        }
                        (m, Some(s))
                    }),
                    Prepared::Mkdir { path, parents } => plan_mkdir(&view, path, parents).map(|(m, s)| (m, Some(s))),
                    Prepared::Symlink { path, target } => plan_symlink(&view, path, target).map(|(m, s)| (m, Some(s))),
                    Prepared::Remove {
                        path,
                        recursive,
                        dir_only,
                    } => plan_remove(&view, path, recursive, dir_only).map(|(m, ())| (m, None)),
                    Prepared::Rename { from, to } => plan_rename(&view, from, to).map(|(m, ())| (m, None)),
                    Prepared::Chmod { path, mode } => plan_chmod(&view, path, mode).map(|(m, s)| (m, Some(s))),
                    Prepared::Chown { path, uid, gid } => plan_chown(&view, path, uid, gid).map(|(m, s)| (m, Some(s))),
                    Prepared::Mknod { path, kind, mode, rdev } => {
                        plan_mknod(&view, path, kind, mode, rdev).map(|(m, s)| (m, Some(s)))
                    }
                    Prepared::Link { from, to } => plan_link(&view, from, to).map(|(m, s)| (m, Some(s))),
                    Prepared::SetTimes { path, mtime } => plan_set_times(&view, path, mtime).map(|(m, s)| (m, Some(s))),
                };
                match planned {
                    Ok((mut m, out)) => {
                        crate::links::propagate(&scratch.overlay, &mut m);
                        scratch.seal(&mut m);
                        let checked = crate::quota_check::Checked {
                            id: &hh.id,
                            record: &scratch.record,
                            overlay: &scratch.overlay,
                            bound: &hh.quota_bound,
                        };
                        let quota = crate::quota_check::check(checked, &m, &objects, &inner.usage, || {
                            crate::freeze::current_state(&scratch.after(&m).view(&objects))
                        });
                        if let Err(e) = quota {
                            return Ok((mutations, applied, Some((i, e)), replaced));
                        }
                        replaced.extend(crate::held::replaced_by(&scratch.view(&objects), &m, limits));
                        scratch.apply(&m);
                        mutations.push(m);
                        applied.push(out);
                    }
                    Err(e) => return Ok((mutations, applied, Some((i, e)), replaced)),
                }
            }
            Ok((mutations, applied, None, replaced))
        })
        .await?;
        if plan_failed.is_some() {
            failed = plan_failed;
        }
        if let Some(last) = mutations.last_mut() {
            h.live.read().touch(last, crate::ids::now_millis());
        }
        if !mutations.is_empty() {
            self.stamp(mutations.iter_mut().flat_map(|m| m.events.iter_mut()));
            let noted =
                (self.inner.objects.gc).note_references(|| mutations.iter().flat_map(crate::gc_barrier::references));
            let seq = match self.inner.meta.sessions.apply_all(id, mutations.clone()).await {
                Ok(seq) => seq,
                Err(e) => {
                    *h.quota_bound.lock() = None;
                    return Err(e);
                }
            };
            drop(noted);
            let mut live = h.live.write();
            for m in &mutations {
                live.apply_as_of(m, seq);
            }
            let dirty = live.dirty.len();
            h.held.lock().note(replaced);
            drop(live);
            self.reweigh(&h);
            self.inner.changes.notify(id);
            self.freeze_when_due(&h, dirty);
        }
        Ok(BatchOutcome { applied, failed })
    }

    /// Parse every path and store every put's bytes, in order, stopping at the first change
    /// that cannot be prepared (it is reported with its index).
    async fn prepare(&self, ops: Vec<BatchOp>) -> Result<(Vec<Prepared>, Option<(usize, Error)>)> {
        let engine = self.clone();
        blocking(move || {
            let objects = &engine.inner.objects;
            let max = engine.inner.config.limits.max_file_size;
            let mut out = Vec::with_capacity(ops.len());
            for (i, op) in ops.into_iter().enumerate() {
                match engine.prepare_one(op, objects, max) {
                    Ok(p) => out.push(p),
                    Err(e) => return Ok((out, Some((i, e)))),
                }
            }
            Ok((out, None))
        })
        .await
    }

    fn prepare_one(&self, op: BatchOp, objects: &crate::objects::Objects, max: u64) -> Result<Prepared> {
        Ok(match op {
            BatchOp::Put {
                path,
                data,
                mode,
                create_parents,
                mtime,
            } => {
                let path = self.parse_path(&path)?;
                if let Some(m) = mode {
                    check_mode(m)?;
                }
                if let Some(t) = mtime {
                    check_mtime(t)?;
                }
                let size = data.len() as u64;
                let ingested = objects.ingest(&mut &data[..], Some(size), max)?;
                Prepared::Put {
                    path,
                    ingested,
                    mode,
                    create_parents,
                    mtime,
                }
            }
            BatchOp::Mkdir { path, parents } => Prepared::Mkdir {
                path: self.parse_path(&path)?,
                parents,
            },
            BatchOp::Symlink { path, target } => {
                let path = self.parse_path(&path)?;
                check_symlink_target(&target)?;
                Prepared::Symlink { path, target }
            }
            BatchOp::Delete { path, recursive } => Prepared::Remove {
                path: self.parse_path(&path)?,
                recursive,
                dir_only: false,
            },
            BatchOp::Rmdir { path } => Prepared::Remove {
                path: self.parse_path(&path)?,
                recursive: false,
                dir_only: true,
            },
            BatchOp::Rename { from, to } => Prepared::Rename {
                from: self.parse_path(&from)?,
                to: self.parse_path(&to)?,
            },
            BatchOp::Chmod { path, mode } => {
                let path = self.parse_path(&path)?;
                check_mode(mode)?;
                Prepared::Chmod { path, mode }
            }
            BatchOp::Chown { path, uid, gid } => Prepared::Chown {
                path: self.parse_path(&path)?,
                uid,
                gid,
            },
            BatchOp::Mknod { path, kind, mode, rdev } => {
                let path = self.parse_path(&path)?;
                let kind = SpecialKind::from_name(&kind)?;
                check_mode(mode)?;
                Prepared::Mknod { path, kind, mode, rdev }
            }
            BatchOp::Link { from, to } => Prepared::Link {
                from: self.parse_path(&from)?,
                to: self.parse_path(&to)?,
            },
            BatchOp::SetTimes { path, mtime } => {
                let path = self.parse_path(&path)?;
                check_mtime(mtime)?;
                Prepared::SetTimes { path, mtime }
            }
        })
    }
}
