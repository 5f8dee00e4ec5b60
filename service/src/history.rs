//! Checkpoints, restore, commits and the log.

use aether_core::diff::Change;
use aether_core::{CheckpointOutcome, CheckpointRecord, CommitInfo, Identity, ObjectId, RestoreOutcome};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::paging::{DEFAULT_CHANGES, DEFAULT_COMMITS, Page, PageRequest};
use crate::principal::{Access, Principal};

#[derive(Clone, Debug, Default)]
pub struct CommitRequest {
    pub message: String,
    /// The author; the server's identity when `None`.
    pub author: Option<Identity>,
    /// The branch to commit on; the session's when `None`.
    pub branch: Option<String>,
}

/// One commit with a page of the paths it changed.
#[derive(Debug)]
pub struct Commit {
    pub info: CommitInfo,
    /// The changes of this page, in the order of `aether_core::diff`.
    pub changes: Vec<Change>,
    /// The cursor of the next page of changes (the path of this page's last one); `None` on the
    /// last page.
    pub next: Option<String>,
}

impl Service {
    pub async fn checkpoint(&self, p: &Principal, session: &str, message: Option<String>) -> Result<CheckpointOutcome> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("checkpoint", &id, None, async {
            self.recall(p, &id, "checkpoint").await;
            let _job = self.admit_heavy(p, "checkpoint")?;
            Ok(self.engine_for(p).checkpoint(&id, message).await?)
        })
        .await
    }

    pub async fn list_checkpoints(&self, p: &Principal, session: &str) -> Result<Vec<CheckpointRecord>> {
        let id = self.session(p, session, Access::Read)?;
        Ok(self.engine_for(p).list_checkpoints(&id).await?)
    }

    /// Set the session to `rev`; the state it discards is checkpointed first.
    pub async fn restore(&self, p: &Principal, session: &str, rev: &str) -> Result<RestoreOutcome> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("restore", &id, None, async {
            self.recall(p, &id, "restore").await;
            let _job = self.admit_heavy(p, "restore")?;
            Ok(self.engine_for(p).restore(&id, rev).await?)
        })
        .await
    }

    pub async fn commit(&self, p: &Principal, session: &str, req: CommitRequest) -> Result<CommitInfo> {
        let id = self.session(p, session, Access::Write)?;
        self.observe("commit", &id, None, async {
            self.recall(p, &id, "commit").await;
            let _job = self.admit_heavy(p, "commit")?;
            Ok(self
                .engine_for(p)
                .commit(&id, req.message, req.author, req.branch)
                .await?)
        })
        .await
    }

    /// Commits reachable from `rev` (default: the session's branch), newest first; the cursor
    /// is the last commit's id.
    pub async fn log(
        &self,
        p: &Principal,
        session: &str,
        rev: Option<String>,
        page: PageRequest,
    ) -> Result<Page<CommitInfo>> {
        let id = self.session(p, session, Access::Read)?;
        self.observe("log", &id, None, async {
            let limit = page.limit(DEFAULT_COMMITS)?;
            let _job = self.admit("log")?;
            let after = page
                .after()
                .map(|a| {
                    ObjectId::from_hex(a.as_bytes())
                        .map_err(|_| ServiceError::bad_request(format!("'{a}' is not a commit id")))
                })
                .transpose()?;
            let commits = self.engine_for(p).log(&id, rev, after, limit).await?;
            Ok(Page::of(commits, limit, |c| c.id.to_hex().to_string()))
        })
        .await
    }

    /// Commit `rev` with one page of the paths it changed relative to its first parent; the
    /// cursor is the last change's path. A diff of any size is served this way, each page
    /// costing its own size (see `aether_core::diff`); page with a commit id, since a branch
    /// may move between pages.
    pub async fn show_commit(&self, p: &Principal, session: &str, rev: &str, page: PageRequest) -> Result<Commit> {
        let id = self.session(p, session, Access::Read)?;
        self.observe("show_commit", &id, None, async {
            let limit = page.limit(DEFAULT_CHANGES)?;
            if page.after() == Some("") {
                return Err(ServiceError::bad_request("an empty cursor is no path of a change"));
            }
            let _job = self.admit("show commit")?;
            let engine = self.engine_for(p);
            let info = engine.show_commit(&id, rev).await?;
            // The commit's id, not `rev`: the page is of the commit just shown.
            let oid = info.id.to_hex().to_string();
            let changes = engine.commit_changes_page(&id, &oid, page.after(), limit).await?;
            let page = Page::of(changes, limit, |c| c.path.clone());
            Ok(Commit {
                info,
                changes: page.items,
                next: page.next,
            })
        })
        .await
    }
}
