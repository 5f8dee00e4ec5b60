//! A session's state pinned at one moment: its base tree and a copy of its overlay (a persistent
//! map, so the copy costs nothing and shares every node), or a revision with the POSIX details
//! recorded when it was written. A pinned state never changes, so a long walk (a recursive
//! listing, an export) reads one version of the session without holding its lock, and a read
//! that resolves a path and then streams the bytes serves exactly the content it resolved.
//!
//! A revision's state (tree, recorded residual, commit time) is a function of its commit id and
//! never changes once its residual is recorded (`MetaStore::revision_residual` keeps the first
//! record of a commit), so recorded revisions are cached here by commit id: a mount at a
//! checkpoint asks for one per listing and per block read, and must not parse the residual each
//! time. Revisions without a record (imported or pushed commits) are not cached: their record
//! could still be on its way (a checkpoint's ref is set just before its residual is stored).

use std::num::NonZeroUsize;
use std::sync::Arc;

use gix::ObjectId;
use lru::LruCache;
use parking_lot::Mutex;

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::Result;
use crate::ids::SessionId;
use crate::objects::Objects;
use crate::overlay::{Overlay, OverlayEntry, Timestamp};
use crate::revision;
use crate::view::View;

/// Most revisions kept in the cache.
const CACHED_REVISIONS: usize = 256;
/// Most residual entries kept in the cache, all revisions together (a session imported from a
/// tarball has one per file, for its mtime).
const CACHED_ENTRIES: usize = 1 << 20;

/// One state of a session, owned: read it through [`Pinned::view`] on a blocking thread.
pub struct Pinned {
    pub objects: Arc<Objects>,
    pub base: gix::ObjectId,
    pub overlay: Overlay,
    pub base_mtime: Timestamp,
}

impl Pinned {
    pub fn view(&self) -> View<'_> {
        View {
            objects: &self.objects,
            base: self.base,
            overlay: &self.overlay,
            base_mtime: self.base_mtime,
        }
    }
}

/// The state of one revision: its tree seen through the residual recorded with it.
#[derive(Debug, Clone)]
pub(crate) struct Revision {
    pub tree: ObjectId,
    /// The recorded residual (empty when there is no record).
    pub overlay: Overlay,
    /// The commit's time: what files unchanged since the base show as mtime.
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
    fn get(&self, commit: &ObjectId) -> Option<Arc<Revision>> {
        self.inner.lock().0.get(commit).cloned()
    }

    fn put(&self, commit: ObjectId, rev: Arc<Revision>) {
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

impl Engine {
    /// Resolve `rev` (a checkpoint, branch, tag, `HEAD` or commit id of the session) to a commit.
    pub(crate) async fn resolve_revision(&self, id: &SessionId, rev: &str) -> Result<ObjectId> {
        let rev = rev.to_owned();
        self.read_view(id, move |view, rec| revision::resolve(view.objects, rec, &rev))
            .await
    }

    /// The state of revision `commit`: one residual record fetched, or none once it is cached.
    pub(crate) async fn revision(&self, commit: ObjectId) -> Result<Arc<Revision>> {
        if let Some(rev) = self.inner.revisions.get(&commit) {
            return Ok(rev);
        }
        let residual = self.inner.meta.revision_residual(&commit).await?;
        let engine = self.clone();
        // A commit the engine did not write (imported history) has its tree converted to the
        // session's spelling of names (see `foreign_trees`).
        let (info, tree) = blocking(move || {
            let info = engine.inner.objects.odb.read_commit(&commit)?;
            let tree = engine.session_tree(&commit)?;
            Ok((info, tree))
        })
        .await?;
        let rev = Arc::new(Revision {
            tree,
            recorded: residual.is_some(),
            overlay: Overlay::from_entries(residual.unwrap_or_default()),
            base_mtime: info.committer.time.saturating_mul(1_000_000_000),
        });
        self.inner.revisions.put(commit, rev.clone());
        Ok(rev)
    }

    /// The session's current state, or the state of revision `at` (a checkpoint, commit, branch
    /// or commit id of the session) with the empty directories, modes and mtimes recorded when
    /// it was written.
    pub(crate) async fn pin(&self, id: &SessionId, at: Option<&str>) -> Result<Pinned> {
        let objects = self.inner.objects.clone();
        let Some(rev) = at else {
            return self
                .read_view(id, move |view, rec| {
                    Ok(Pinned {
                        objects,
                        base: rec.base_tree,
                        overlay: view.overlay.clone(),
                        base_mtime: view.base_mtime,
                    })
                })
                .await;
        };
        let commit = self.resolve_revision(id, rev).await?;
        let rev = self.revision(commit).await?;
        Ok(Pinned {
            objects,
            base: rev.tree,
            overlay: rev.overlay.clone(),
            base_mtime: rev.base_mtime,
        })
    }

    /// Run `f` on a pinned state on a blocking thread.
    pub(crate) async fn with_pinned<T: Send + 'static>(
        &self,
        id: &SessionId,
        at: Option<&str>,
        f: impl FnOnce(&View<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pinned = self.pin(id, at).await?;
        blocking(move || f(&pinned.view())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(entries: usize) -> Arc<Revision> {
        let overlay = Overlay::from_entries(
            (0..entries).map(|i| (format!("f{i}"), OverlayEntry::Attr { mode: 0o600, mtime: 0 })),
        );
        Arc::new(Revision {
            tree: ObjectId::empty_tree(gix::hash::Kind::Sha1),
            overlay,
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
