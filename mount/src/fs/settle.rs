//! After an upload: a file whose bytes the server acknowledged refers to them by content id
//! again, and its local copy (memory, or an open descriptor) is dropped, unless it is a large
//! file likely to be written again.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::content_cache::ContentCache;
use crate::content_reader;
use crate::tree::{Data, FileData, Node, Tree};
use crate::writeback::{LocalFile, Uploaded};

/// Once the server has a file's bytes and nothing changed them since, its node refers to the
/// content by id like any file listed from the server, and the local copy (memory, or an open
/// file descriptor each: an untar of 80,000 files would run out) is dropped. Files up to this
/// size are first copied into the memory cache, so reading or writing them again does not go
/// to the server.
pub(super) const SETTLE_CACHED_MAX: u64 = 4 << 20;

/// Larger uploaded files keep their local copy, so that a file written again and again (a
/// database, a log) is not downloaded again after every upload; this many at most, the file
/// uploaded longest ago settling first.
const RESIDENT_MAX: usize = 32;

/// Large uploaded files that kept their local copy, oldest first.
pub(super) type Resident = Mutex<VecDeque<(u64, Weak<LocalFile>)>>;

pub(super) fn settle_upload(tree: &Mutex<Tree>, cache: &ContentCache, resident: &Resident, u: Uploaded<'_>) {
    let size = {
        let mut t = tree.lock();
        let Some(n) = t.get_mut(u.ino) else { return };
        if n.upload_seq != u.seq {
            return;
        }
        n.uploaded = Some(Arc::from(u.content_id));
        n.size
    };
    if size <= SETTLE_CACHED_MAX {
        settle(tree, cache, u.ino, u.source);
        return;
    }
    let oldest = {
        let mut r = resident.lock();
        r.retain(|(ino, f)| *ino != u.ino && f.strong_count() > 0);
        r.push_back((u.ino, Arc::downgrade(u.source)));
        if r.len() > RESIDENT_MAX { r.pop_front() } else { None }
    };
    if let Some((ino, source)) = oldest
        && let Some(source) = source.upgrade()
    {
        settle(tree, cache, ino, &source);
    }
}

/// Turn `ino`'s local copy `source` into a reference to its uploaded content, if it is still
/// exactly what was uploaded. A process that still has the file open reads it from the cache
/// or the server from then on, and a further write makes a local copy again.
fn settle(tree: &Mutex<Tree>, cache: &ContentCache, ino: u64, source: &Arc<LocalFile>) {
    let unchanged = |n: &Node| {
        !n.dirty && n.uploaded.is_some() && matches!(&n.data, Data::File(FileData::Local(f)) if Arc::ptr_eq(f, source))
    };
    let (size, id) = match tree.lock().get(ino) {
        Some(n) if unchanged(n) => (n.size, n.uploaded.clone()),
        _ => return,
    };
    let Some(id) = id else { return };
    if size <= SETTLE_CACHED_MAX {
        let mut buf = vec![0; size as usize];
        if source.read_exact_at(&mut buf, 0).is_err() {
            return;
        }
        // Cached only if they are the content the server named; if not, the node keeps its
        // local bytes (what was written) rather than refer to the server's other content.
        let path = tree.lock().path(ino).unwrap_or_default();
        if !content_reader::remember_uploaded(cache, &path, &id, buf) {
            return;
        }
    }
    let mut tree = tree.lock();
    if let Some(n) = tree.get_mut(ino)
        && unchanged(n)
        && n.size == size
        && n.uploaded.as_ref() == Some(&id)
    {
        n.data = Data::File(FileData::Remote(Some(id)));
    }
}
