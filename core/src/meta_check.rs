//! The metadata stores the engine writes through: the session store wrapped in one check
//! ([`check_mutation`]) that refuses, before anything is persisted, a mutation or a new session
//! that would store an overlay entry under an invalid name or a non-directory entry under the
//! root key; and the revision store wrapped so that a residual an older version recorded is
//! repaired as it is read (see `repair`). One wrapper for every backend, so a new backend
//! (PostgreSQL) gets the check without repeating it, and no engine path (single calls, batches,
//! imports, restores, forks) can get round it. It never changes what it passes through.

use std::sync::Arc;

use gix::ObjectId;

use crate::error::Result;
use crate::ids::SessionId;
use crate::meta::{
    CheckpointRecord, ListQuery, MetaStores, Mutation, NewEvent, RevisionResidual, RevisionStore, SessionRecord,
    SessionStore,
};
use crate::names::check_entry;
use crate::overlay::OverlayEntry;
use crate::repair::repair_residual;

/// `stores` with the sessions and revisions wrapped in the checks of this module.
pub(crate) fn checked(stores: MetaStores) -> MetaStores {
    MetaStores {
        sessions: Arc::new(Checked(stores.sessions)),
        revisions: Arc::new(Checked(stores.revisions)),
        ..stores
    }
}

/// Refuse a mutation that would store an entry (in the overlay or in a checkpoint's residual)
/// under a key [`check_entry`] refuses. Removals may name anything: removing stores nothing,
/// and it is how damaged rows are repaired.
pub fn check_mutation(m: &Mutation) -> Result<()> {
    for (key, entry) in &m.upsert {
        check_entry(key, entry)?;
    }
    if let Some(rev) = &m.revision {
        for (key, entry) in &rev.residual {
            check_entry(key, entry)?;
        }
    }
    Ok(())
}

struct Checked<S: ?Sized>(Arc<S>);

#[async_trait::async_trait]
impl SessionStore for Checked<dyn SessionStore> {
    async fn insert_session(
        &self,
        record: &SessionRecord,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()> {
        for (key, entry) in &overlay {
            check_entry(key, entry)?;
        }
        self.0.insert_session(record, overlay, event).await
    }

    async fn insert_session_sharing(
        &self,
        record: &SessionRecord,
        root: Option<crate::meta::NodeId>,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()> {
        for (key, entry) in &overlay {
            check_entry(key, entry)?;
        }
        self.0.insert_session_sharing(record, root, overlay, event).await
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        self.0.get_session(id).await
    }

    async fn list_sessions(&self, query: &ListQuery) -> Result<Vec<SessionRecord>> {
        self.0.list_sessions(query).await
    }

    async fn apply(&self, id: &SessionId, mutation: Mutation) -> Result<i64> {
        check_mutation(&mutation)?;
        self.0.apply(id, mutation).await
    }

    async fn apply_all(&self, id: &SessionId, mutations: Vec<Mutation>) -> Result<i64> {
        mutations.iter().try_for_each(check_mutation)?;
        self.0.apply_all(id, mutations).await
    }

    async fn delete_session(&self, id: &SessionId) -> Result<()> {
        self.0.delete_session(id).await
    }
}

#[async_trait::async_trait]
impl RevisionStore for Checked<dyn RevisionStore> {
    async fn list_checkpoints(&self, id: &SessionId) -> Result<Vec<CheckpointRecord>> {
        self.0.list_checkpoints(id).await
    }

    async fn revision_root(&self, commit: &ObjectId) -> Result<Option<crate::meta::RevisionRoot>> {
        self.0.revision_root(commit).await
    }

    /// Repaired as it is read (see `repair`): an older version may have recorded names this
    /// one refuses, and the record itself is never rewritten.
    async fn revision_residual(&self, commit: &ObjectId) -> Result<Option<RevisionResidual>> {
        let mut residual = self.0.revision_residual(commit).await?;
        if let Some(r) = residual.as_mut() {
            for repair in repair_residual(&mut r.residual) {
                tracing::warn!(commit = %commit, key = %repair.key.escape_debug(), action = %repair.action, "repaired the residual of a revision as it was read");
            }
        }
        Ok(residual)
    }

    async fn revision_commits(&self) -> Result<Vec<ObjectId>> {
        self.0.revision_commits().await
    }

    async fn forget_revisions(&self, commits: Vec<ObjectId>) -> Result<u64> {
        self.0.forget_revisions(commits).await
    }
}

#[cfg(test)]
mod tests {
    use super::check_mutation;
    use crate::event::EventKind;
    use crate::meta::{Mutation, NewEvent};
    use crate::overlay::OverlayEntry;
    use crate::{Engine, EngineConfig, ErrorKind, SessionSource};

    fn file() -> OverlayEntry {
        OverlayEntry::Attr {
            mode: 0o600,
            mtime: 1,
            owner: None,
            link: None,
        }
    }

    /// Whatever an engine path plans, a bad key never reaches the store: single mutations,
    /// batches (several mutations in one transaction) and new sessions (imports, forks).
    #[tokio::test]
    async fn every_engine_write_path_passes_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(EngineConfig::new(dir.path().join("data"))).await.unwrap();
        let id = e
            .create_session(SessionSource::Empty, Default::default())
            .await
            .unwrap()
            .id;
        let bad = ["a/../b", "a//b", "..", "x\0"];
        for key in bad {
            let m = Mutation {
                upsert: vec![(key.to_owned(), file())],
                ..Default::default()
            };
            let err = e.mutate(&id, false, move |_, _| Ok((m, ()))).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidPath, "mutate {key:?}");
            let ok = Mutation {
                upsert: vec![("fine".to_owned(), file())],
                ..Default::default()
            };
            let m = Mutation {
                upsert: vec![(key.to_owned(), file())],
                ..Default::default()
            };
            let err = e.inner.meta.sessions.apply_all(&id, vec![ok, m]).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidPath, "batch {key:?}");
            let record = e
                .new_record(e.objects().odb.empty_tree(), None, None, 0, &Default::default())
                .unwrap();
            let new_id = record.id.clone();
            let err = e
                .insert(
                    record,
                    vec![(key.to_owned(), file())],
                    NewEvent::new(EventKind::Created, None),
                )
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidPath, "new session {key:?}");
            assert!(e.inner.meta.sessions.get_session(&new_id).await.unwrap().is_none());
        }
        // A file as the root, even under the root's own key.
        let m = Mutation {
            upsert: vec![(String::new(), file())],
            ..Default::default()
        };
        let err = e.mutate(&id, false, move |_, _| Ok((m, ()))).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidPath);
        assert!(
            e.inner.meta.overlays.load_overlay(&id).await.unwrap().is_empty(),
            "nothing was stored"
        );
    }

    #[test]
    fn a_mutation_is_checked_in_its_upserts_and_residual_not_its_removals() {
        let mut m = Mutation {
            remove: vec!["a//b".into(), String::new()],
            remove_below: vec!["x/..".into()],
            ..Default::default()
        };
        assert!(check_mutation(&m).is_ok());
        m.upsert.push(("a/../b".into(), file()));
        assert_eq!(check_mutation(&m).unwrap_err().kind(), ErrorKind::InvalidPath);
        m.upsert.clear();
        m.revision = Some(crate::meta::RevisionResidual {
            commit: gix::ObjectId::null(gix::hash::Kind::Sha1),
            residual: vec![("a/./b".into(), file())],
            base_mtime: None,
        });
        assert_eq!(check_mutation(&m).unwrap_err().kind(), ErrorKind::InvalidPath);
    }
}
