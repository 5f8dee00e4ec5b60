//! Recorded revisions' states by commit id (see `pinned`): a revision's tree, residual and
//! base mtime never change once its residual is recorded, so they are kept here, bounded in bytes,
//! instead of parsed again at every read at that revision. Knows nothing of sessions or stores.

use std::sync::Arc;

use gix::ObjectId;

use crate::byte_lru::ByteLru;
use crate::overlay::{Overlay, OverlayEntry, Timestamp};
use crate::residual::Residual;

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

    /// Roughly the memory its residual takes: per entry its path, the entry, a symlink's target
    /// and the map's share of a node.
    pub fn heap_bytes(&self) -> u64 {
        const NODE_SHARE: usize = 16;
        self.overlay
            .iter()
            .map(|(k, v)| {
                let target = match v {
                    OverlayEntry::Symlink { target, .. } => target.capacity(),
                    _ => 0,
                };
                k.capacity() + std::mem::size_of::<(String, OverlayEntry)>() + NODE_SHARE + target
            })
            .sum::<usize>() as u64
    }
}

/// Recorded revisions by commit id, least recently used first out, bounded in bytes (their
/// residuals weighed when they are put).
pub(crate) struct RevisionCache {
    lru: ByteLru<ObjectId, Arc<Revision>>,
}

impl RevisionCache {
    /// A cache of at most `cap` bytes of revisions.
    pub(crate) fn new(cap: u64) -> Self {
        RevisionCache { lru: ByteLru::new(cap) }
    }

    pub(crate) fn get(&self, commit: &ObjectId) -> Option<Arc<Revision>> {
        self.lru.get(commit)
    }

    /// Keep `rev` if it was recorded (one without a record may get one later) and fits.
    pub(crate) fn put(&self, commit: ObjectId, rev: Arc<Revision>) {
        if !rev.recorded {
            return;
        }
        let weight = rev.heap_bytes();
        self.lru.put(commit, rev, weight);
    }

    /// Bytes held now.
    pub(crate) fn bytes(&self) -> u64 {
        self.lru.bytes()
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
    fn the_cache_is_bounded_in_bytes_and_keeps_only_recorded_revisions() {
        let half = revision(1000).heap_bytes() + crate::byte_lru::ENTRY_OVERHEAD;
        let cache = RevisionCache::new(2 * half);
        cache.put(oid(1), revision(1000));
        cache.put(oid(2), revision(1000));
        assert!(cache.get(&oid(1)).is_some() && cache.get(&oid(2)).is_some());
        assert_eq!(cache.bytes(), 2 * half);
        // One more pushes out the least recently used (2: 1 was read last).
        cache.get(&oid(1));
        cache.put(oid(3), revision(10));
        assert!(cache.get(&oid(2)).is_none());
        assert!(cache.get(&oid(1)).is_some() && cache.get(&oid(3)).is_some());
        assert!(cache.bytes() <= 2 * half);

        cache.put(oid(4), revision(2001));
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
