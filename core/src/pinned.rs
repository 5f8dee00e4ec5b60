//! A session's state pinned at one moment: its base tree and a copy of its overlay (a persistent
//! map, so the copy costs nothing and shares every node), or a revision with the POSIX details
//! its checkpoint stored. A pinned state never changes, so a long walk (a recursive listing, an
//! export) reads one version of the session without holding its lock, and a read that resolves
//! a path and then streams the bytes serves exactly the content it resolved.

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::Result;
use crate::ids::SessionId;
use crate::meta::sqlite::blocking;
use crate::objects::Objects;
use crate::overlay::{Overlay, Timestamp};
use crate::revision;
use crate::view::View;

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

impl Engine {
    /// The session's current state, or the state of revision `at` (a checkpoint, commit, branch
    /// or commit id of the session) with the empty directories, modes and mtimes its
    /// checkpoint recorded.
    pub(crate) async fn pin(&self, id: &SessionId, at: Option<&str>) -> Result<Pinned> {
        let objects = self.inner.objects.clone();
        let Some(rev) = at.map(str::to_owned) else {
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
        let checkpoints = self.list_checkpoints(id).await?;
        self.read_view(id, move |view, rec| {
            let commit_id = revision::resolve(view.objects, rec, &rev)?;
            let commit = view.objects.odb.read_commit(&commit_id)?;
            let residual = checkpoints
                .into_iter()
                .find(|c| c.commit == commit_id)
                .map(|c| c.residual)
                .unwrap_or_default();
            Ok(Pinned {
                objects,
                base: commit.tree,
                overlay: Overlay::from_entries(residual),
                base_mtime: commit.committer.time.saturating_mul(1_000_000_000),
            })
        })
        .await
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
