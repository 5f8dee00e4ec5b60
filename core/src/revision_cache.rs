//! Recorded revisions' states by commit id (see `pinned`): a revision's tree, residual and
//! base mtime never change once its residual is recorded, so they are kept here, bounded,
//! instead of parsed again at every read at that revision. Knows nothing of sessions or stores.

use std::num::NonZeroUsize;
use std::sync::Arc;

use gix::ObjectId;
use lru::LruCache;
use parking_lot::Mutex;

use crate::overlay::{Overlay, OverlayEntry, Timestamp};
use crate::residual::Residual;

/// Most revisions kept in the cache.
const CACHED_REVISIONS: usize = 256;
/// Most residual entries kept in the cache, all revisions together (a session imported from a
/// tarball has one per file, for its mtime).
const CACHED_ENTRIES: usize = 1 << 20;

/// The state of one revision: its tree seen through the residual recorded with it.
#[derive(Debug, Clone)]
pub(crate) struct Revision {
    pub tree: ObjectId,
    /// The recorded residual (empty when there is no record), as an overlay.
    pub overlay: Overlay,
    /// The same, as the shared tree (its root names it).
    pub residual: Residual,
    /// Whether the record is a list (a small residual, or one recorded before residuals were
    /// shared): its nodes may not be stored, so a session starting from it gets rows.
    pub legacy: bool,
    /// What entries the residual does not name show as mtime: the session's base mtime
    /// recorded with the revision, else the commit's time.
    pub base_mtime: Timestamp,
    /// Whether a residual was recorded for this commit (the engine wrote it).
    pub recorded: bool,
}

impl Revision {
    /// The recorded residual as overlay entries, to start a session's overlay from.
    pub fn residual(&self) -> Vec<(String, OverlayEntry)> {
        self.overlay.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Recorded revisions by commit id, least recently used first out, bounded in revisions and in
/// residual entries.
pub(crate) struct RevisionCache {
    inner: Mutex<(LruCache<ObjectId, Arc<Revision>>, usize)>,
}

impl Default for RevisionCache {
    fn default() -> Self {
        RevisionCache {
            inner: Mutex::new((
                LruCache::new(NonZeroUsize::new(CACHED_REVISIONS).unwrap_or(NonZeroUsize::MIN)),
                0,
            )),
        }
    }
}

impl RevisionCache {
    pub(crate) fn get(&self, commit: &ObjectId) -> Option<Arc<Revision>> {
        self.inner.lock().0.get(commit).cloned()
    }

    pub(crate) fn put(&self, commit: ObjectId, rev: Arc<Revision>) {
        let size = rev.overlay.len();
        if !rev.recorded || size > CACHED_ENTRIES {
            return;
        }
        let mut guard = self.inner.lock();
        let (lru, entries) = &mut *guard;
        if let Some((_, old)) = lru.push(commit, rev) {
            *entries -= old.overlay.len();
        }
        *entries += size;
        while *entries > CACHED_ENTRIES {
            match lru.pop_lru() {
                Some((_, old)) => *entries -= old.overlay.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(entries: usize) -> Arc<Revision> {
        let overlay = Overlay::from_entries((0..entries).map(|i| {
            (
                format!("f{i}"),
                OverlayEntry::Attr {
                    mode: 0o600,
                    mtime: 0,
                    owner: None,
                    link: None,
                },
            )
        }));
        Arc::new(Revision {
            tree: ObjectId::empty_tree(gix::hash::Kind::Sha1),
            overlay,
            residual: Residual::default(),
            legacy: true,
            base_mtime: 0,
            recorded: true,
        })
    }

    fn oid(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    #[test]
    fn the_cache_is_bounded_by_entries_and_keeps_only_recorded_revisions() {
        let cache = RevisionCache::default();
        cache.put(oid(1), revision(CACHED_ENTRIES / 2));
        cache.put(oid(2), revision(CACHED_ENTRIES / 2));
        assert!(cache.get(&oid(1)).is_some() && cache.get(&oid(2)).is_some());
        // One more pushes out the least recently used (2: 1 was read last).
        cache.get(&oid(1));
        cache.put(oid(3), revision(10));
        assert!(cache.get(&oid(2)).is_none());
        assert!(cache.get(&oid(1)).is_some() && cache.get(&oid(3)).is_some());
        assert_eq!(cache.inner.lock().1, CACHED_ENTRIES / 2 + 10);

        cache.put(oid(4), revision(CACHED_ENTRIES + 1));
        assert!(cache.get(&oid(4)).is_none(), "larger than the whole cache");
        let unrecorded = Arc::new(Revision {
            recorded: false,
            ..Arc::unwrap_or_clone(revision(1))
        });
        cache.put(oid(5), unrecorded);
        assert!(
            cache.get(&oid(5)).is_none(),
            "a revision without a record may get one later"
        );
    }
}
