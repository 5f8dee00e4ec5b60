//! Kernel requests for tests that drive the file system without a kernel (`crate::tests`), in
//! the order a kernel sends them: each does what the request's handler does, and answers with
//! the errno the kernel would get.

use std::ffi::OsStr;

use super::ops::SetTimes;
use super::{AetherFs, FsError};
use crate::tree::{Data, FileData};

/// A call's result as the kernel sees it: the errno of a failure.
type K<T> = Result<T, i32>;

fn k<T>(r: Result<T, FsError>) -> K<T> {
    r.map_err(|e| e.errno())
}

impl AetherFs {
    /// LOOKUP of `name` in `parent`.
    pub(crate) fn kernel_lookup(&self, parent: u64, name: &str) -> K<Option<u64>> {
        let ino = k(self.child(parent, OsStr::new(name)))?;
        if let Some(i) = ino
            && let Some(n) = self.tree.lock().get_mut(i)
        {
            n.lookups += 1;
        }
        Ok(ino)
    }

    /// READDIRPLUS of `dir` from the start (lists it from the server when it is stale).
    pub(crate) fn kernel_readdir(&self, dir: u64) -> K<Vec<(String, u64)>> {
        k(self.ensure_listed(dir))?;
        let tree = self.tree.lock();
        Ok(tree
            .children(dir)
            .map(|c| c.iter().map(|(n, i)| (n.to_string_lossy().into_owned(), *i)).collect())
            .unwrap_or_default())
    }

    /// The SETATTR of an `open(O_TRUNC)` (or `ftruncate`) by a process, which sends the file.
    pub(crate) fn kernel_truncate(&self, ino: u64, size: u64) -> K<()> {
        k(self.do_setattr(ino, None, Some(size), SetTimes::default(), true))?;
        self.queue_upload(&mut self.tree.lock(), ino);
        Ok(())
    }

    /// RENAME of `name` in `parent` to `newname` in `newparent`.
    pub(crate) fn kernel_rename(&self, parent: u64, name: &str, newparent: u64, newname: &str) -> K<()> {
        k(self.do_rename(
            parent,
            OsStr::new(name),
            newparent,
            OsStr::new(newname),
            fuser::RenameFlags::empty(),
        ))
    }

    /// WRITE of `data` at `offset` (pages written back).
    pub(crate) fn kernel_write(&self, ino: u64, offset: u64, data: &[u8]) -> K<u32> {
        k(self.do_write(ino, 0, offset, data))
    }

    pub(crate) fn kernel_read(&self, ino: u64, offset: u64, size: u32) -> K<Vec<u8>> {
        k(self.read_fresh(ino, offset, size))
    }

    pub(crate) fn kernel_fsync(&self, ino: u64) -> K<()> {
        k(self.fsync(ino))
    }

    /// FLUSH (a close) while the mount answers flushes.
    pub(crate) fn kernel_flush(&self, ino: u64) -> K<()> {
        k(self.flush(ino)).map(drop)
    }

    pub(crate) fn kernel_fsyncdir(&self, ino: u64) -> K<()> {
        k(self.fsyncdir(ino))
    }

    /// Whether the local picture holds a file's bytes locally (not yet, or not only, on the
    /// server by content id).
    pub(crate) fn holds_local_bytes(&self, ino: u64) -> bool {
        matches!(
            self.tree.lock().get(ino).map(|n| &n.data),
            Some(Data::File(FileData::Local(_)))
        )
    }
}
