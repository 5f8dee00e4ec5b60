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

/// Part of one directory's listing (every directory comes in one piece or more, in name order,
/// the last marked), and the content of some of its small files by id.
#[derive(Debug)]
pub struct ListedDir {
    pub path: String,
    pub entries: Vec<DirEntry>,
    pub contents: Vec<(ObjectId, Vec<u8>)>,
    /// The version of the session state it shows (see [`aether_core::Listed::seq`]), the same
    /// for every directory of one call.
    pub seq: Option<i64>,
    /// Whether this piece completes the directory's listing.
    pub last: bool,
}

/// A batched listing under way ([`Service::list_dirs`]): take its pieces with
/// [`DirsListing::next`] until `None`. Each piece holds at most [`PIECE_ENTRIES`] entries, so
/// what one call holds at a time is bounded whatever the directories' sizes.
pub struct DirsListing {
    service: Service,
    walk: Option<aether_core::DirsWalk>,
    seq: Option<i64>,
    /// The mount's registration (see `handoff`), kept until the last piece.
    registered: Option<crate::handoff::Listing>,
    inline_max: u64,
    /// Inline bytes left to send; none once a file did not fit.
    inline_left: u64,
    inline_from: String,
}

/// Most entries in one piece: with their paths about 150 bytes each on the wire, a piece is a
/// few hundred KiB, far below a message's limit.
pub const PIECE_ENTRIES: usize = 2048;

impl DirsListing {
    /// The next piece, or `None` once the listing is complete.
    pub async fn next(&mut self) -> Result<Option<ListedDir>> {
        let Some(walk) = self.walk.take() else {
            return Ok(None);
        };
        let (walk, piece) = walk.next_piece(PIECE_ENTRIES).await?;
        let Some(piece) = piece else {
            self.registered = None;
            return Ok(None);
        };
        self.walk = Some(walk);
        if piece.last
            && let Some(r) = &self.registered
        {
            r.returned([piece.path.as_str()]);
        }
        // Bytes of small files come with the first directory only: the one being read.
        let mut contents = Vec::new();
        if piece.first && self.inline_max > 0 && self.inline_left > 0 {
            let (got, complete) = self
                .service
                .inline_contents(&piece.entries, self.inline_max, self.inline_left, &self.inline_from)
                .await?;
            let bytes: u64 = got.iter().map(|(_, data)| data.len() as u64).sum();
            self.service.count_read(bytes);
            self.inline_left = if complete { self.inline_left - bytes } else { 0 };
            contents = got;
        }
        Ok(Some(ListedDir {
            path: piece.path.as_str().to_owned(),
            entries: piece.entries,
            contents,
            seq: self.seq,
            last: piece.last,
        }))
    }
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
    /// the limit; all from one state of the session, in pieces (see [`DirsListing`]).
    pub async fn list_dirs(&self, p: &Principal, req: ListDirs) -> Result<DirsListing> {
        let id = self.session(p, &req.session, Access::Read)?;
        self.observe("list_dirs", &id, Some(&req.path), async {
            let max_entries = req.max_entries.min(MAX_ENTRIES);
            // Registered before the recall: a change another mount makes after it is sent to this
            // one, and one made before is recalled (see `handoff`).
            let registered = match req.at {
                None => self.listing(p, &id, &req.path, max_entries > 0),
                Some(_) => None,
            };
            // Another mount's closed files: this mount's own are skipped (it has them).
            self.recall_live(p, &id, req.at.as_deref(), "list").await;
            let walk = self
                .engine()
                .walk_dirs(&id, &req.path, max_entries, req.at.as_deref())
                .await?;
            Ok(DirsListing {
                service: self.clone(),
                seq: walk.seq(),
                walk: Some(walk),
                registered,
                inline_max: req.inline_max,
                inline_left: req.inline_budget.min(MAX_INLINE_BUDGET),
                inline_from: req.inline_from,
            })
        })
        .await
    }

    /// The bytes of the files among `entries` of at most `max` bytes, names from `from` on,
    /// until `budget` bytes, and whether every such file fit. Each is read by the content id
    /// the listing gives it, so the bytes are the listed version's whatever is written
    /// meanwhile.
    async fn inline_contents(
        &self,
        entries: &[DirEntry],
        max: u64,
        budget: u64,
        from: &str,
    ) -> Result<(Vec<(ObjectId, Vec<u8>)>, bool)> {
        let mut wanted: Vec<(ObjectId, u64)> = Vec::new();
        let mut bytes = 0;
        let mut complete = true;
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
                complete = false;
                break;
            }
            bytes += e.stat.size;
            wanted.push((oid, e.stat.size));
        }
        Ok((self.engine().read_contents(wanted).await?, complete))
    }
}
