//! What a mount needs beyond files and listings: a directory and the directories below it,
//! with the bytes of their small files, in one call, so walking a tree (find, git status) or
//! reading many small files (cat, grep) costs one round trip per batch instead of one per entry.

use aether_core::{DirEntry, FileKind, ObjectId};

use crate::Service;
use crate::error::Result;
use crate::principal::{Access, Principal};

/// Most entries one call lists, whatever the client asks: a checkout of the size of the Linux
/// tree comes whole in one call (a mount's first listing of its root).
const MAX_ENTRIES: usize = 200_000;
/// Most inline bytes one call sends (a mount accepts messages of 16 MiB).
const MAX_INLINE_BUDGET: u64 = 4 << 20;

#[derive(Clone, Debug, Default)]
pub struct ListDirs {
    pub session: String,
    pub path: String,
    pub at: Option<String>,
    /// Most entries in all listings (capped at 200,000).
    pub max_entries: usize,
    /// Files of at most this many bytes come with their content (0: none).
    pub inline_max: u64,
    /// Most content bytes in all (capped at 4 MiB).
    pub inline_budget: u64,
    /// Content only of files named from this name on (a client resuming a directory).
    pub inline_from: String,
}

/// One directory's complete listing, and the content of some of its small files by id.
#[derive(Debug)]
pub struct ListedDir {
    pub path: String,
    pub entries: Vec<DirEntry>,
    pub contents: Vec<(ObjectId, Vec<u8>)>,
    /// The version of the session state it shows (see [`aether_core::Listed::seq`]), the same
    /// for every directory of one call.
    pub seq: Option<i64>,
}

impl Service {
    /// Keep `session` loaded in memory while the returned value lives: a mount holds it while
    /// attached, since readers of its open files may read contents only the loaded session
    /// remembers (an evicted session, like a restarted server, has forgotten them).
    pub async fn keep_loaded(&self, p: &Principal, session: &str) -> Result<aether_core::KeepLoaded> {
        let id = self.session(p, session, Access::Read)?;
        Ok(self.engine().keep_loaded(&id).await?)
    }

    /// `req.path` and, depth first, the directories below it while the entries stay within
    /// the limit; all from one state of the session.
    pub async fn list_dirs(&self, p: &Principal, req: ListDirs) -> Result<Vec<ListedDir>> {
        let id = self.session(p, &req.session, Access::Read)?;
        let meter = crate::observe::Meter::default();
        self.observe_metered("list_dirs", &id, Some(&req.path), meter.clone(), async {
            let max_entries = req.max_entries.min(MAX_ENTRIES);
            // Registered before the recall: a change another mount makes after it is sent to this
            // one, and one made before is recalled (see `handoff`).
            let registered = match req.at {
                None => self.listing(p, &id, &req.path, max_entries > 0),
                Some(_) => None,
            };
            // Another mount's closed files: this mount's own are skipped (it has them).
            self.recall_live(p, &id, req.at.as_deref(), "list").await;
            let listed = self
                .engine()
                .list_dirs(&id, &req.path, max_entries, req.at.as_deref())
                .await?;
            if let Some(r) = registered {
                r.done(listed.dirs.iter().map(|(dir, _)| dir.as_str()));
            }
            let mut out = Vec::with_capacity(listed.dirs.len());
            for (i, (dir, entries)) in listed.dirs.into_iter().enumerate() {
                // Bytes of small files come with the first directory only: the one being read.
                let contents = if i == 0 && req.inline_max > 0 {
                    let budget = req.inline_budget.min(MAX_INLINE_BUDGET);
                    let contents = self
                        .inline_contents(&entries, req.inline_max, budget, &req.inline_from)
                        .await?;
                    let bytes: usize = contents.iter().map(|(_, data)| data.len()).sum();
                    meter.read.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
                    contents
                } else {
                    Vec::new()
                };
                out.push(ListedDir {
                    path: dir.as_str().to_owned(),
                    entries,
                    contents,
                    seq: listed.seq,
                });
            }
            Ok(out)
        })
        .await
    }

    /// The bytes of the files among `entries` of at most `max` bytes, names from `from` on,
    /// until `budget` bytes. Each is read by the content id the listing gives it, so the bytes
    /// are the listed version's whatever is written meanwhile.
    async fn inline_contents(
        &self,
        entries: &[DirEntry],
        max: u64,
        budget: u64,
        from: &str,
    ) -> Result<Vec<(ObjectId, Vec<u8>)>> {
        let mut wanted: Vec<(ObjectId, u64)> = Vec::new();
        let mut bytes = 0;
        for e in entries {
            if e.stat.kind != FileKind::File || e.stat.size > max || e.stat.size == 0 || e.name.as_str() < from {
                continue;
            }
            let Some(oid) = e
                .stat
                .oid
                .as_deref()
                .and_then(|o| ObjectId::from_hex(o.as_bytes()).ok())
            else {
                continue;
            };
            if bytes + e.stat.size > budget {
                break;
            }
            bytes += e.stat.size;
            wanted.push((oid, e.stat.size));
        }
        Ok(self.engine().read_contents(wanted).await?)
    }
}
