//! A session's state pinned at one moment: its base tree and a copy of its overlay (a persistent
//! map, so the copy costs nothing and shares every node), or a revision with the POSIX details
//! recorded when it was written. A pinned state never changes, so a long walk (a recursive
//! listing, an export) reads one version of the session without holding its lock, and a read
//! that resolves a path and then streams the bytes serves exactly the content it resolved.
//!
//! A revision's state (tree, recorded residual and base mtime) is a function of its commit id and
//! never changes once its residual is recorded (`MetaStore::revision_residual` keeps the first
//! record of a commit), so recorded revisions are cached here by commit id: a mount at a
//! checkpoint asks for one per listing and per block read, and must not parse the residual each
//! time. Revisions without a record (imported or pushed commits) are not cached: their record
//! could still be on its way (a checkpoint's ref is set just before its residual is stored).

use std::sync::Arc;

use gix::ObjectId;

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::Result;
use crate::ids::SessionId;
use crate::objects::Objects;
use crate::overlay::{Overlay, Timestamp};
use crate::residual::Residual;
use crate::revision;
use crate::revision_cache::Revision;
use crate::view::View;

/// One state of a session, owned: read it through [`Pinned::view`] on a blocking thread.
pub struct Pinned {
    pub objects: Arc<Objects>,
    pub base: gix::ObjectId,
    pub overlay: Overlay,
    pub base_mtime: Timestamp,
    /// The version of the live state it copies (see [`crate::Listed::seq`]); `None` for a
    /// revision.
    pub seq: Option<i64>,
}

impl Pinned {
    pub fn view(&self) -> View<'_> {
        View {
            objects: &self.objects,
            base: self.base,
            overlay: &self.overlay,
            base_mtime: self.base_mtime,
            frozen: None,
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
        // Recorded by its root (the shared tree), or as a whole list by an older version.
        let (recorded, base_mtime, residual, legacy) = match self.inner.meta.revisions.revision_root(&commit).await? {
            Some(r) => {
                let residuals = self.inner.meta.residuals.clone();
                let residual = Residual::load(r.root, |ids| {
                    let residuals = residuals.clone();
                    async move { residuals.residual_nodes(ids).await }
                })
                .await?;
                (true, Some(r.base_mtime), residual, false)
            }
            None => match self.inner.meta.revisions.revision_residual(&commit).await? {
                Some(r) => (true, r.base_mtime, Residual::build(r.residual).0, true),
                None => (false, None, Residual::default(), false),
            },
        };
        let engine = self.clone();
        // A commit the engine did not write (imported history) has its tree converted to the
        // session's spelling of names (see `foreign_trees`).
        let (info, tree) = blocking(move || {
            let info = engine.inner.objects.odb.read_commit(&commit)?;
            let tree = engine.session_tree(&commit)?;
            Ok((info, tree))
        })
        .await?;
        // What entries the residual does not name show: the session's base mtime as recorded
        // with the revision, or (a commit the engine did not write, or a record older than
        // that) the commit's time.
        let commit_time = info.committer.time.saturating_mul(1_000_000_000);
        let rev = Arc::new(Revision {
            tree,
            recorded,
            base_mtime: base_mtime.unwrap_or(commit_time),
            overlay: residual.map().clone(),
            residual,
            legacy,
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
            let h = self.handle(id).await?;
            return blocking(move || pin_live(&h, objects)).await;
        };
        let commit = self.resolve_revision(id, rev).await?;
        let rev = self.revision(commit).await?;
        Ok(Pinned {
            objects,
            base: rev.tree,
            overlay: rev.overlay.clone(),
            base_mtime: rev.base_mtime,
            seq: None,
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

/// The live state of the session `h` holds, pinned. Blocking: takes the session's read lock.
pub(crate) fn pin_live(h: &crate::engine::Handle, objects: Arc<Objects>) -> Result<Pinned> {
    let live = h.live.read();
    if live.deleted {
        return Err(crate::error::Error::not_found(format!("session {}", h.id)));
    }
    let view = live.view(&objects);
    Ok(Pinned {
        base: live.record.base_tree,
        overlay: view.overlay.clone(),
        base_mtime: view.base_mtime,
        seq: Some(live.seq),
        objects,
    })
}
