//! Small files' bytes fetched in batches, and ahead of a reader that walks the tree (a cold
//! `git grep`, the first `git status` after `--from-dir`, `cat` of a tree).
//!
//! A cold read of a small file fetches it with its small siblings from its name on (one
//! `ListDirs` call with inline bytes). A reader of a directory whose batch is already on its
//! way waits for that batch instead of fetching its file alone. When a reader's misses follow
//! the tree's order (each one in one of the next directories after the last), the directories
//! after it are fetched ahead on a few threads, so the server's disk and the round trips overlap
//! the reader; reaching a directory fetched ahead moves the window on. The window is bounded in
//! directories and in bytes: it fills the memory cache with what the walk reads next, not more.
//!
//! Nothing here serves bytes: what comes is handed to `ContentReader::accept_inline`, which
//! keeps only bytes that hash to the content id they came with; a read that still misses reads
//! on its own (verified the same way).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::ops::Bound;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::AetherFs;
use crate::content_cache::BlockKey;
use crate::prefetch::{self, ListDirs};
use crate::tree::{Data, FileData, ROOT, Tree};

/// Directories fetched ahead of a walking reader, at most.
pub const AHEAD_DIRS: usize = 16;
/// Bytes of small files fetched ahead of a walking reader, at most (one directory more may
/// pass it): far below the memory cache, so nothing fetched ahead is evicted before it is read.
pub const AHEAD_BYTES: u64 = 48 << 20;
/// Threads fetching ahead at once (each waits on one round trip at a time).
const AHEAD_THREADS: usize = 3;
/// Batches one directory fetched ahead may take (a directory of more small files than that
/// is read on by the reader's own batches).
const DIR_BATCHES: usize = 8;
/// A miss in one of this many directories after the last miss's directory is a walk.
const WALK_SPAN: usize = 4;
/// Directories looked at to fill the window (the tree's empty or fully cached ones included).
const SCAN_LIMIT: usize = 4096;
/// Longest a reader waits for a batch of its directory already on its way.
const WAIT_FOR_BATCH: Duration = Duration::from_secs(5);

/// Which directories are being fetched, and the window ahead of a walking reader.
#[derive(Default)]
pub(super) struct Batches {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// Directories whose small files are being fetched now (one batch per directory at a time).
    in_flight: HashSet<u64>,
    /// Directories fetched (or queued to be) ahead, in walk order, that no read reached yet,
    /// with the bytes they were to bring.
    ahead: VecDeque<(u64, u64)>,
    /// Directories queued for the fetchers.
    queue: VecDeque<u64>,
    /// The directory the window ends at (the walk continues after it).
    cursor: Option<u64>,
    /// The directories that follow the last reader's miss: a miss in one of them is a walk.
    next_after_miss: Vec<u64>,
    fetchers: usize,
}

impl Batches {
    fn begin(&self, dir: u64) -> bool {
        self.state.lock().in_flight.insert(dir)
    }

    fn end(&self, dir: u64) {
        self.state.lock().in_flight.remove(&dir);
        self.done.notify_all();
    }

    /// Wait until no batch of `dir` is on its way (or the wait is too long).
    fn wait(&self, dir: u64) {
        let mut s = self.state.lock();
        let deadline = std::time::Instant::now() + WAIT_FOR_BATCH;
        while s.in_flight.contains(&dir) {
            if self.done.wait_until(&mut s, deadline).timed_out() {
                return;
            }
        }
    }

    /// A read reached `dir`: if it was fetched ahead, it and the directories before it leave
    /// the window. True when the window moved (it may be filled again).
    fn reached(&self, dir: u64) -> bool {
        let mut s = self.state.lock();
        let Some(pos) = s.ahead.iter().position(|(d, _)| *d == dir) else {
            return false;
        };
        s.ahead.drain(..=pos);
        true
    }
}

/// Small files of `dir` the reader would fetch: on the server, not empty, at most
/// [`prefetch::INLINE_MAX`] bytes, not cached; by name, with their sizes.
fn wanted(fs: &AetherFs, tree: &Tree, dir: u64) -> Vec<(OsString, u64)> {
    let Some(children) = tree.children(dir) else {
        return Vec::new();
    };
    children
        .iter()
        .filter_map(|(name, ino)| {
            let n = tree.get(*ino)?;
            let Data::File(FileData::Remote(Some(id))) = &n.data else {
                return None;
            };
            if n.size == 0 || n.size > prefetch::INLINE_MAX || fs.cache.contains(&BlockKey::grid(id, 0)) {
                return None;
            }
            Some((name.clone(), n.size))
        })
        .collect()
}

fn is_dir(tree: &Tree, ino: u64) -> bool {
    tree.get(ino).is_some_and(|n| matches!(n.data, Data::Dir { .. }))
}

/// The directory after `dir` in a depth-first walk of what is listed, names in byte order (the
/// order git reads its index in, but for names sorting around `/`).
fn next_dir(tree: &Tree, dir: u64) -> Option<u64> {
    if let Some(first) = tree
        .children(dir)
        .and_then(|c| c.values().copied().find(|i| is_dir(tree, *i)))
    {
        return Some(first);
    }
    let mut cur = dir;
    while cur != ROOT {
        let n = tree.get(cur)?;
        let siblings = tree.children(n.parent)?;
        let after = siblings
            .range::<OsString, _>((Bound::Excluded(&n.name), Bound::Unbounded))
            .map(|(_, i)| *i)
            .find(|i| is_dir(tree, *i));
        if after.is_some() {
            return after;
        }
        cur = n.parent;
    }
    None
}

impl AetherFs {
    /// Before a read of file `ino` (in directory `dir`, content `id` of `size` bytes) from the
    /// server: move the window of a walking reader on, and for a small file not cached, wait
    /// for its directory's batch on its way or fetch one. Best effort: whatever does not come is
    /// read on its own.
    pub(super) fn fetch_siblings(&self, ino: u64, dir: u64, id: &str, size: u64) {
        if self.batches.reached(dir) {
            self.fill_window();
        }
        let key = BlockKey::grid(id, 0);
        if size == 0 || size > prefetch::INLINE_MAX || self.cache.contains(&key) {
            return;
        }
        if !self.batches.begin(dir) {
            self.batches.wait(dir);
            // Not in that batch (a name before its first, past its budget, or a batch that
            // failed or is slow): a batch of its own, or its own read if another is on its way.
            if self.cache.contains(&key) || !self.batches.begin(dir) {
                return;
            }
        }
        let name = {
            let tree = self.tree.lock();
            tree.get(ino).and_then(|n| n.name.to_str().map(str::to_owned))
        };
        if let Some(name) = name {
            self.fetch_batch(dir, &name);
        }
        self.batches.end(dir);
        self.missed(dir);
    }

    /// A reader missed in `dir`: if `dir` follows the last miss's directory, the reader walks the
    /// tree: fetch the directories after `dir` ahead.
    fn missed(&self, dir: u64) {
        let next = {
            let tree = self.tree.lock();
            let mut next = Vec::with_capacity(WALK_SPAN);
            let mut cur = dir;
            while next.len() < WALK_SPAN
                && let Some(d) = next_dir(&tree, cur)
            {
                next.push(d);
                cur = d;
            }
            next
        };
        let walking = {
            let mut s = self.batches.state.lock();
            let walking = s.next_after_miss.contains(&dir);
            s.next_after_miss = next;
            if walking {
                // A walk from here: what was ahead of an earlier position is no longer ahead.
                s.ahead.clear();
                s.queue.clear();
                s.cursor = Some(dir);
            }
            walking
        };
        if walking {
            self.fill_window();
        }
    }

    /// Queue the directories after the window's end until it holds [`AHEAD_DIRS`] directories
    /// or [`AHEAD_BYTES`], and start fetchers for them.
    fn fill_window(&self) {
        let (cursor, mut dirs, mut bytes) = {
            let s = self.batches.state.lock();
            let Some(cursor) = s.cursor else { return };
            (cursor, s.ahead.len(), s.ahead.iter().map(|(_, b)| b).sum::<u64>())
        };
        let mut add = Vec::new();
        let mut end = cursor;
        {
            let tree = self.tree.lock();
            let mut cur = cursor;
            for _ in 0..SCAN_LIMIT {
                if dirs >= AHEAD_DIRS || bytes >= AHEAD_BYTES {
                    break;
                }
                let Some(d) = next_dir(&tree, cur) else { break };
                cur = d;
                end = d;
                let w: u64 = wanted(self, &tree, d).iter().map(|(_, s)| s).sum();
                if w > 0 {
                    add.push((d, w));
                    dirs += 1;
                    bytes += w;
                }
            }
        }
        let spawn = {
            let mut s = self.batches.state.lock();
            if s.cursor != Some(cursor) {
                return; // another thread moved the window meanwhile
            }
            s.cursor = Some(end);
            for (d, w) in add {
                s.ahead.push_back((d, w));
                s.queue.push_back(d);
            }
            let spawn = AHEAD_THREADS.saturating_sub(s.fetchers).min(s.queue.len());
            s.fetchers += spawn;
            spawn
        };
        for _ in 0..spawn {
            let fs = self.clone();
            let spawned = std::thread::Builder::new()
                .name("aether-fetch-ahead".into())
                .spawn(move || fs.fetch_ahead());
            if spawned.is_err() {
                self.batches.state.lock().fetchers -= 1;
            }
        }
    }

    /// A fetcher: fetch queued directories until none is left.
    fn fetch_ahead(&self) {
        loop {
            let dir = {
                let mut s = self.batches.state.lock();
                match s.queue.pop_front() {
                    Some(d) => d,
                    None => {
                        s.fetchers -= 1;
                        return;
                    }
                }
            };
            self.fetch_dir(dir);
        }
    }

    /// The small files of `dir` not cached, in batches from the first one on.
    fn fetch_dir(&self, dir: u64) {
        let mut after: Option<OsString> = None;
        for _ in 0..DIR_BATCHES {
            if !self.batches.begin(dir) {
                // A reader is fetching it: the next round looks at what is still missing.
                self.batches.wait(dir);
                continue;
            }
            // Looked at once the batch is ours: what a reader fetched meanwhile is not wanted.
            let from = {
                let tree = self.tree.lock();
                wanted(self, &tree, dir)
                    .into_iter()
                    .map(|(name, _)| name)
                    .find(|name| after.as_ref().is_none_or(|a| name > a))
            };
            let got = match from.as_ref().and_then(|f| f.to_str()) {
                Some(name) => self.fetch_batch(dir, name),
                None => 0,
            };
            self.batches.end(dir);
            if got == 0 {
                return;
            }
            after = from;
        }
    }

    /// One batch: the bytes of `dir`'s small files from `name` on, into the memory cache (each
    /// verified against its content id). Returns how many came.
    fn fetch_batch(&self, dir: u64, name: &str) -> usize {
        let Some(dir_path) = self.tree.lock().path(dir) else {
            return 0;
        };
        let opts = ListDirs {
            max_entries: 0,
            inline_max: prefetch::INLINE_MAX,
            inline_budget: prefetch::INLINE_BUDGET,
            inline_from: name.to_owned(),
        };
        match self.backend.list_dirs(&dir_path, &opts) {
            Ok(dirs) => {
                let mut n = 0;
                for (id, data) in dirs.into_iter().flat_map(|d| d.contents) {
                    if data.len() as u64 <= prefetch::INLINE_MAX {
                        self.reader.accept_inline(&dir_path, &id, data);
                        n += 1;
                    }
                }
                n
            }
            Err(e) => {
                tracing::debug!(dir = %dir_path, error = %e, "no batched read");
                0
            }
        }
    }
}
