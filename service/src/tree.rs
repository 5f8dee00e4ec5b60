//! Stat and listings: one directory, a whole subtree walked in batches (for surfaces that
//! stream), or a whole subtree bounded by `max_list_tree_entries` (for one-message answers).

use aether_core::{DirEntry, Stat, TreeWalk};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::principal::{Access, Principal};

/// Entries walked per step of a bounded recursive listing.
const LIST_BATCH: usize = 4096;

/// One directory's entries, or a subtree's ([`Service::list_tree`]).
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<DirEntry>,
    /// The version of the session state they show: every event up to this sequence number is
    /// in them (see [`aether_core::Listed::seq`]). `None` at a revision.
    pub seq: Option<i64>,
}

/// One directory's listing: whole with its version when it holds at most
/// `max_list_tree_entries` entries, else walked as the caller takes batches.
pub enum DirListing {
    Whole(Listing),
    Walk(Box<TreeWalk>),
}

/// A listing of `path` (recursive: everything below it).
#[derive(Clone, Debug, Default)]
pub struct ListTree {
    pub session: String,
    pub path: String,
    pub recursive: bool,
    pub at: Option<String>,
}

impl Service {
    pub async fn stat(&self, p: &Principal, session: &str, path: &str, at: Option<&str>) -> Result<Stat> {
        let id = self.session(p, session, Access::Read)?;
        self.observe("stat", &id, Some(path), async {
            self.recall_live(p, &id, at, "stat").await;
            let _job = self.admit("stat")?;
            Ok(self.engine_for(p).stat(&id, path, at).await?)
        })
        .await
    }

    /// The stat of the version `content_id` of `path` that the caller opened earlier (see
    /// `Engine::open_opened`).
    pub async fn stat_opened(
        &self,
        p: &Principal,
        session: &str,
        path: &str,
        at: Option<&str>,
        content_id: &str,
    ) -> Result<Stat> {
        let id = self.session(p, session, Access::Read)?;
        self.observe("stat", &id, Some(path), async {
            self.recall_live(p, &id, at, "stat").await;
            let _job = self.admit("stat")?;
            Ok(self.engine_for(p).stat_opened(&id, path, at, content_id).await?)
        })
        .await
    }

    /// The entries of one directory, with every attribute, and the version of the session
    /// state they show.
    pub async fn list(&self, p: &Principal, session: &str, path: &str, at: Option<&str>) -> Result<Listing> {
        let id = self.session(p, session, Access::Read)?;
        self.observe("list", &id, Some(path), async {
            // Registered before the recall, as in `list_dirs`.
            let registered = match at {
                None => self.listing(p, &id, path, false),
                Some(_) => None,
            };
            self.recall_live(p, &id, at, "list").await;
            let _job = self.admit("list")?;
            let mut listed = self.engine_for(p).list_dirs(&id, path, 0, at).await?;
            if let Some(r) = registered {
                r.done([path.trim_matches('/')]);
            }
            Ok(Listing {
                entries: listed.dirs.pop().map(|(_, entries)| entries).unwrap_or_default(),
                seq: listed.seq,
            })
        })
        .await
    }

    /// Whether directory `path` holds more than `max_list_tree_entries` entries, asked before
    /// listing it whole.
    async fn too_many_to_list(&self, p: &Principal, session: &str, path: &str, at: Option<&str>) -> Result<bool> {
        let id = self.session(p, session, Access::Read)?;
        let _job = self.admit("list")?;
        let cap = self.config().max_list_tree_entries;
        Ok(self.engine_for(p).holds_more_than(&id, path, at, cap).await?)
    }

    /// One directory: whole (with the version it shows) when it holds at most
    /// `max_list_tree_entries` entries, else walked in batches, so that no listing of one
    /// directory is built whole past that bound.
    pub async fn list_or_walk(&self, p: &Principal, session: &str, path: &str, at: Option<&str>) -> Result<DirListing> {
        if self.too_many_to_list(p, session, path, at).await? {
            return Ok(DirListing::Walk(Box::new(self.walk_one(p, session, path, at).await?)));
        }
        Ok(DirListing::Whole(self.list(p, session, path, at).await?))
    }

    /// Everything below `path`, walked as the caller takes batches (bounded by the engine's
    /// walk limits, which answer `too_large`).
    pub async fn walk(&self, p: &Principal, session: &str, path: &str, at: Option<&str>) -> Result<TreeWalk> {
        let id = self.session(p, session, Access::Read)?;
        self.observe("walk", &id, Some(path), async {
            self.recall_live(p, &id, at, "list").await;
            // Held while the walk is set up; its batches are taken as the caller reads.
            let _job = self.admit("list")?;
            Ok(self.engine_for(p).walk(&id, path, true, at).await?)
        })
        .await
    }

    /// The entries of one directory, walked as the caller takes batches: a directory of any
    /// size without its listing built whole.
    pub async fn walk_one(&self, p: &Principal, session: &str, path: &str, at: Option<&str>) -> Result<TreeWalk> {
        let id = self.session(p, session, Access::Read)?;
        self.observe("list", &id, Some(path), async {
            self.recall_live(p, &id, at, "list").await;
            let _job = self.admit("list")?;
            Ok(self.engine_for(p).walk(&id, path, false, at).await?)
        })
        .await
    }

    /// A listing answered whole: a recursive one holds at most `max_list_tree_entries`
    /// entries and is refused (`too_large`) past them.
    pub async fn list_tree(&self, p: &Principal, req: ListTree) -> Result<Listing> {
        let cap = self.config().max_list_tree_entries;
        if !req.recursive {
            if self
                .too_many_to_list(p, &req.session, &req.path, req.at.as_deref())
                .await?
            {
                let shown = req.path.trim_matches('/');
                return Err(ServiceError::too_large(format!(
                    "a ListTree answers with at most {cap} entries (max_list_tree_entries) and \
                     '/{shown}' holds more; list it with FileService.WalkTree (recursive false) or \
                     GET /v1/sessions/{}/tree/{shown}, which stream",
                    req.session
                )));
            }
            return self.list(p, &req.session, &req.path, req.at.as_deref()).await;
        }
        let mut walk = self.walk(p, &req.session, &req.path, req.at.as_deref()).await?;
        let seq = walk.seq();
        let mut entries = Vec::new();
        loop {
            let (next, batch) = walk.next_batch(LIST_BATCH).await?;
            if batch.is_empty() {
                return Ok(Listing { entries, seq });
            }
            if entries.len() + batch.len() > cap {
                let shown = req.path.trim_matches('/');
                return Err(ServiceError::too_large(format!(
                    "a recursive ListTree answers with at most {cap} entries (max_list_tree_entries) \
                     and '/{shown}' holds more; list it with FileService.WalkTree or \
                     GET /v1/sessions/{}/tree/{shown}?recursive=true, which stream",
                    req.session
                )));
            }
            entries.extend(batch);
            walk = next;
        }
    }
}
