//! File bytes: reads (local copy, cache or server, verified), the local copy a write needs,
//! and writes into it. Small siblings are fetched together before a first read
//! (`fetch_ahead`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use parking_lot::MutexGuard;

use super::{AetherFs, FsError, R};
use crate::content_cache::BLOCK;
use crate::invalidate::Inval;
use crate::tree::{Data, FileData, Tree};
use crate::writeback::LocalFile;

/// File handles carry the open flags the mount needs: whether writes append.
pub const APPEND_BIT: u64 = 1 << 63;

impl AetherFs {
    /// Read `len` bytes at `offset` of a file whose bytes are on the server (verified: see
    /// `content_reader`).
    pub(super) fn read_remote(&self, path: &str, id: &str, size: u64, offset: u64, len: u64) -> R<Vec<u8>> {
        self.reader.read(path, id, size, offset, len).map_err(|e| {
            tracing::debug!(path, id, error = %e, "read failed");
            FsError::Read(e)
        })
    }

    /// Give `ino` local bytes (copying the server's content unless `truncate`), for writing.
    ///
    /// Returns with the tree still locked, so the caller changes the copy while the node holds
    /// it: an upload acknowledged after an unlock could settle the node back to its content id,
    /// and a write to the dropped copy would be lost.
    pub(super) fn materialize(&self, ino: u64, truncate: bool) -> R<(MutexGuard<'_, Tree>, Arc<LocalFile>)> {
        loop {
            let (path, id, size) = {
                let tree = self.tree.lock();
                let n = tree.get(ino).ok_or(FsError::NotFound)?;
                match &n.data {
                    Data::File(FileData::Local(f)) => {
                        let f = f.clone();
                        return Ok((tree, f));
                    }
                    Data::File(FileData::Remote(id)) => {
                        (tree.path_or_bound(ino).unwrap_or_default(), id.clone(), n.size)
                    }
                    Data::Dir { .. } => return Err(FsError::IsADirectory),
                    Data::Symlink(_) | Data::Special => return Err(FsError::Invalid),
                }
            };
            let file = if truncate {
                self.staging.new_file()
            } else {
                self.staging.file_for(size).map_err(FsError::from)?
            };
            if !truncate && let Some(id) = &id {
                let mut off = 0;
                while off < size {
                    let chunk = self.read_remote(&path, id, size, off, BLOCK)?;
                    if chunk.is_empty() {
                        break;
                    }
                    file.write_at(&chunk, off).map_err(FsError::from)?;
                    off += chunk.len() as u64;
                }
            }
            let local = Arc::new(file);
            let mut tree = self.tree.lock();
            let n = tree.get_mut(ino).ok_or(FsError::NotFound)?;
            match &n.data {
                Data::File(FileData::Remote(now)) if *now == id => {
                    n.data = Data::File(FileData::Local(local.clone()));
                    if truncate {
                        n.size = 0;
                    }
                    return Ok((tree, local));
                }
                // Someone else materialized or the content changed meanwhile: look again.
                _ => continue,
            }
        }
    }

    pub(super) fn do_read(&self, ino: u64, offset: u64, size: u32) -> R<Vec<u8>> {
        let (path, data_id, local, fsize, dir) = {
            let tree = self.tree.lock();
            let n = tree.get(ino).ok_or(FsError::NotFound)?;
            match &n.data {
                Data::File(FileData::Local(f)) => (String::new(), None, Some(f.clone()), n.size, n.parent),
                Data::File(FileData::Remote(id)) => {
                    (tree.path(ino).unwrap_or_default(), id.clone(), None, n.size, n.parent)
                }
                Data::Dir { .. } => return Err(FsError::IsADirectory),
                Data::Symlink(_) | Data::Special => return Err(FsError::Invalid),
            }
        };
        if let Some(f) = local {
            let end = fsize.min(offset.saturating_add(u64::from(size)));
            if offset >= end {
                return Ok(Vec::new());
            }
            let mut buf = vec![0; (end - offset) as usize];
            let mut done = 0;
            while done < buf.len() {
                let n = f
                    .read_at(&mut buf[done..], offset + done as u64)
                    .map_err(FsError::from)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            buf.truncate(done);
            return Ok(buf);
        }
        match data_id {
            None => Ok(Vec::new()),
            Some(id) => {
                self.fetch_siblings(ino, dir, &id, fsize);
                self.read_remote(&path, &id, fsize, offset, u64::from(size))
            }
        }
    }

    /// Read, and when the server's content moved on since the listing, list again and retry once.
    pub(super) fn read_fresh(&self, ino: u64, offset: u64, size: u32) -> R<Vec<u8>> {
        match self.do_read(ino, offset, size) {
            Err(e) if e.is_stale() => {
                let parent = {
                    let mut tree = self.tree.lock();
                    let parent = tree.get(ino).map(|n| n.parent).ok_or(FsError::NotFound)?;
                    tree.mark_stale(parent);
                    parent
                };
                self.ensure_listed(parent)?;
                self.invalidator.send(Inval::Inode { ino });
                self.do_read(ino, offset, size)
            }
            other => other,
        }
    }

    pub(super) fn do_write(&self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> R<u32> {
        self.writable()?;
        let (mut tree, local) = self.materialize(ino, false)?;
        self.take_name_back(&mut tree, ino);
        // With the kernel's writeback cache the kernel places appends itself (and may send any
        // handle's pages through an O_APPEND handle): the offset it gives is the one to use.
        let append = fh & APPEND_BIT != 0 && !self.kernel_writeback.load(Ordering::SeqCst);
        let n = tree.get_mut(ino).ok_or(FsError::NotFound)?;
        let offset = if append { n.size } else { offset };
        local.write_at(data, offset).map_err(FsError::from)?;
        n.size = n.size.max(offset + data.len() as u64);
        n.dirty = true;
        // With the writeback cache the kernel stamps writes itself and sends the times when they
        // changed (a write in the tick of the file's creation leaves them as they are).
        if !self.kernel_writeback.load(Ordering::SeqCst) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
        self.warm.written(n.parent, ino);
        Ok(data.len() as u32)
    }
}
