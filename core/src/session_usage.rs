//! The usage figures of a session and of the whole server (see `usage` for what they mean and
//! what they cost).

use serde::Serialize;

use crate::engine::Engine;
use crate::error::Result;

/// What a session holds now, and what of it is its own (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SessionUsage {
    /// Regular files, directories (empty ones included), symbolic links and special files.
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub special_files: u64,
    /// Bytes of the regular files (logical: what reading every file returns).
    pub bytes: u64,
    /// Files and symbolic links whose content the state the session was forked from holds
    /// nowhere (all of them for a session that was not forked), and the bytes of those files:
    /// what counts against its quota.
    pub unique_files: u64,
    pub unique_bytes: u64,
    /// Bytes of files whose content the session shares with the state it was forked from.
    pub shared_bytes: u64,
    /// Bytes storing its own files took: what this session costs beyond its parent (a large
    /// file counts only its chunks the parent does not have).
    pub cow_bytes: u64,
    /// Files kept as chunks, their bytes, the chunks they list, and the bytes of each one's
    /// distinct chunks.
    pub large_files: u64,
    pub large_bytes: u64,
    pub chunks: u64,
    pub large_stored_bytes: u64,
    /// Checkpoints taken, and commits made in the session (not those it was imported or
    /// forked with).
    pub checkpoints: u64,
    pub commits: u64,
    pub quota: crate::quota::Quota,
}

/// `logical / stored`: how many times over stored bytes are shared (1 when nothing is stored).
pub fn dedup_ratio(logical: u64, stored: u64) -> f64 {
    if stored == 0 {
        1.0
    } else {
        logical as f64 / stored as f64
    }
}

impl Engine {
    /// What the session holds now. Costs what changed since its last freeze and the trees not
    /// measured before (see the module doc).
    pub async fn session_usage(&self, id: &crate::ids::SessionId) -> Result<SessionUsage> {
        let inner = self.inner.clone();
        let h = self.handle(id).await?;
        crate::blocking::blocking(move || {
            let live = h.live.read();
            if live.deleted {
                return Err(crate::error::Error::not_found(format!("session {}", h.id)));
            }
            let rec = &live.record;
            let cached = match &*h.usage.lock() {
                Some((base, overlay, s)) if *base == rec.base_tree && overlay.same_as(&live.overlay) => Some(*s),
                _ => None,
            };
            let s = match cached {
                Some(s) => s,
                None => {
                    let view = live.view(&inner.objects);
                    let (tree, residual) = crate::freeze::current_state(&view)?;
                    let s = inner.usage.state(&inner.objects, tree, &residual, rec.origin_tree)?;
                    *h.usage.lock() = Some((rec.base_tree, live.overlay.clone(), s));
                    s
                }
            };
            let t = s.totals;
            Ok(SessionUsage {
                files: t.files,
                directories: t.directories + s.empty_directories,
                symlinks: t.symlinks,
                special_files: s.special_files,
                bytes: t.bytes,
                unique_files: s.own.files,
                unique_bytes: s.own.bytes,
                shared_bytes: t.bytes.saturating_sub(s.own.bytes),
                cow_bytes: s.own.stored_bytes,
                large_files: t.large_files,
                large_bytes: t.large_bytes,
                chunks: t.chunk_refs,
                large_stored_bytes: t.large_stored_bytes,
                checkpoints: rec.checkpoint_seq,
                commits: rec.commits,
                quota: rec.quota,
            })
        })
        .await
    }
}

/// Figures over every session, against the bytes the stores hold on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServerUsage {
    pub sessions: u64,
    /// Over all sessions: a file several sessions hold counts once per session.
    pub files: u64,
    pub bytes: u64,
    pub unique_bytes: u64,
    pub disk: crate::DiskUsage,
}

impl Engine {
    /// Every session's usage summed, and the stores' bytes on disk (walks their directories
    /// and reads each session's figures: for operators, not for every request).
    pub async fn server_usage(&self) -> Result<ServerUsage> {
        let mut total = ServerUsage::default();
        let mut after = None;
        loop {
            let page = crate::sessions::Page { limit: 500, after };
            let sessions = self.list_sessions(&Default::default(), &page).await?;
            for s in &sessions {
                match self.session_usage(&s.id).await {
                    Ok(u) => {
                        total.sessions += 1;
                        total.files += u.files;
                        total.bytes += u.bytes;
                        total.unique_bytes += u.unique_bytes;
                    }
                    // Deleted meanwhile.
                    Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            if sessions.len() < page.limit {
                break;
            }
            after = sessions.last().map(|s| s.id.clone());
        }
        total.disk = self.disk_usage().await?;
        Ok(total)
    }
}
