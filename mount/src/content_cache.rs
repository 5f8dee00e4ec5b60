//! Content cache keyed by content id and block: a byte-budgeted LRU in memory over an optional
//! directory on disk. Content ids are git blob ids, so one cache serves every mount and every
//! session, and survives a remount.
//!
//! It stores only [`Verified`] bytes and never serves a disk block it has not checked: every
//! block file records the blake3 of its bytes and the block it is (see `block_file`), and one
//! that fails is logged, counted, removed and read as a miss. Block files are written under
//! unique temporary names in their shard directory and renamed into place. The `blocks`
//! directory carries a format version; a cache of another format is discarded when opened.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use lru::LruCache;
use parking_lot::Mutex;

use crate::block_file::{self, BlockError, Span};
use crate::cache_counters::{self, Integrity};
use crate::verify::{self, Verified};

/// Size of a block of a content verified whole, and the grid chunk-aligned blocks follow (see
/// `content_layout`). A read fetches only the blocks that cover it.
pub const BLOCK: u64 = 1 << 20;

/// The file in `blocks/` naming the format of the files below it.
const FORMAT_FILE: &str = "FORMAT";
/// Leftover temporary files older than this are removed when a cache is opened (younger ones
/// may belong to a mount writing now).
const TEMP_AGE: Duration = Duration::from_secs(600);

/// How a content's blocks are cut (see `content_layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// Block `i` is bytes `[i * BLOCK, (i + 1) * BLOCK)` of a content verified whole.
    Grid,
    /// Block `i` is the chunks starting in `[i * BLOCK, (i + 1) * BLOCK)` of a chunked content.
    Chunks,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub id: Arc<str>,
    pub kind: BlockKind,
    pub index: u64,
}

impl BlockKey {
    pub fn grid(id: &str, index: u64) -> BlockKey {
        BlockKey {
            id: Arc::from(id),
            kind: BlockKind::Grid,
            index,
        }
    }

    pub fn chunks(id: &str, index: u64) -> BlockKey {
        BlockKey {
            id: Arc::from(id),
            kind: BlockKind::Chunks,
            index,
        }
    }
}

/// Whether bytes are verified (always, except for one side of a benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    On,
    /// Benchmark only (`AETHER_BENCH_UNVERIFIED_READS`): bytes are taken as they come, blocks
    /// are written without hashes and read back unchecked.
    OffForBenchmark,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub memory_hits: u64,
    pub disk_hits: u64,
    pub misses: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub disk_blocks: u64,
    /// Disk blocks that failed their checks (removed, then fetched again), by this process.
    pub corrupt_blocks_dropped: u64,
    /// Bytes that were not the content they were for (refused), by this process.
    pub verification_failures: u64,
}

struct Budgeted<V> {
    lru: LruCache<BlockKey, V>,
    bytes: u64,
    budget: u64,
}

impl<V> Budgeted<V> {
    fn new(budget: u64) -> Self {
        Budgeted {
            lru: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// Insert, then evict least recently used entries over budget; returns the evicted keys.
    fn insert(&mut self, key: BlockKey, value: V, size: u64, size_of: impl Fn(&V) -> u64) -> Vec<BlockKey> {
        if let Some(old) = self.lru.put(key, value) {
            self.bytes -= size_of(&old);
        }
        self.bytes += size;
        let mut evicted = Vec::new();
        while self.bytes > self.budget && self.lru.len() > 1 {
            match self.lru.pop_lru() {
                Some((k, v)) => {
                    self.bytes -= size_of(&v);
                    evicted.push(k);
                }
                None => break,
            }
        }
        evicted
    }

    fn remove(&mut self, key: &BlockKey, size_of: impl Fn(&V) -> u64) {
        if let Some(v) = self.lru.pop(key) {
            self.bytes -= size_of(&v);
        }
    }
}

struct Disk {
    /// The `blocks` directory.
    dir: PathBuf,
    /// Block files and their sizes.
    index: Mutex<Budgeted<u64>>,
}

pub struct ContentCache {
    memory: Mutex<Budgeted<Arc<Vec<u8>>>>,
    /// Blocks being fetched now, each with the lock its fetcher holds.
    fetching: Mutex<HashMap<BlockKey, Arc<Mutex<()>>>>,
    disk: Option<Disk>,
    verification: Verification,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
    corrupt_dropped: AtomicU64,
    verify_failures: AtomicU64,
}

fn valid_id(id: &str) -> bool {
    id.len() >= 4 && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn format_line() -> String {
    format!("aether content cache, block format {}\n", block_file::FORMAT)
}

/// Make `blocks` a directory of the current format: a missing one is created, one of another
/// format (or of none: written before formats existed) is moved aside and removed.
fn open_blocks_dir(blocks: &Path) -> std::io::Result<()> {
    let want = format_line();
    match fs::read_to_string(blocks.join(FORMAT_FILE)) {
        Ok(found) if found == want => return Ok(()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // Unreadable is not "another format": keep the cache and say why it cannot be used.
        Err(e) => return Err(e),
    }
    if blocks.exists() {
        let aside = blocks.with_file_name(format!("blocks.discarded-{}-{}", std::process::id(), crate::now_ns()));
        match fs::rename(blocks, &aside) {
            Ok(()) => {
                tracing::warn!(dir = %blocks.display(), "discarding a content cache of another format");
                fs::remove_dir_all(&aside)?;
            }
            // Another mount opening the same cache moved it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    fs::create_dir_all(blocks)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-format").tempfile_in(blocks)?;
    std::io::Write::write_all(&mut tmp, want.as_bytes())?;
    tmp.persist(blocks.join(FORMAT_FILE)).map_err(|e| e.error)?;
    Ok(())
}

impl ContentCache {
    /// `disk`: a directory and its size budget in bytes. Bytes are verified.
    pub fn new(memory_budget: u64, disk: Option<(PathBuf, u64)>) -> std::io::Result<ContentCache> {
        ContentCache::with_verification(memory_budget, disk, Verification::On)
    }

    pub fn with_verification(
        memory_budget: u64,
        disk: Option<(PathBuf, u64)>,
        verification: Verification,
    ) -> std::io::Result<ContentCache> {
        let disk = match disk {
            None => None,
            Some((dir, budget)) => {
                let blocks = dir.join("blocks");
                open_blocks_dir(&blocks)?;
                let mut index = Budgeted::new(budget);
                // Oldest first, so the LRU order approximates last use across restarts.
                let mut found = Vec::new();
                for shard in fs::read_dir(&blocks)? {
                    let shard = shard?;
                    if !shard.file_type()?.is_dir() {
                        continue;
                    }
                    for entry in fs::read_dir(shard.path())? {
                        let entry = entry?;
                        let name = entry.file_name().to_string_lossy().into_owned();
                        let meta = entry.metadata()?;
                        match parse_block_name(&name) {
                            Some(key) => found.push((meta.modified().ok(), key, meta.len())),
                            // A temporary file of a write that was interrupted (or is under way).
                            None if name.starts_with(".tmp") => {
                                let old = meta
                                    .modified()
                                    .ok()
                                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                                    .is_none_or(|age| age > TEMP_AGE);
                                if old {
                                    let _ = fs::remove_file(entry.path());
                                }
                            }
                            None => {
                                let _ = fs::remove_file(entry.path());
                            }
                        }
                    }
                }
                found.sort_by_key(|(t, _, _)| *t);
                let mut stale = Vec::new();
                for (_, key, len) in found {
                    stale.extend(index.insert(key, len, len, |v| *v));
                }
                for key in stale {
                    let _ = fs::remove_file(block_path(&blocks, &key));
                }
                Some(Disk {
                    dir: blocks,
                    index: Mutex::new(index),
                })
            }
        };
        Ok(ContentCache {
            memory: Mutex::new(Budgeted::new(memory_budget)),
            fetching: Mutex::new(Default::default()),
            disk,
            verification,
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            corrupt_dropped: AtomicU64::new(0),
            verify_failures: AtomicU64::new(0),
        })
    }

    /// Whether bytes are verified before they are cached or served.
    pub fn verifying(&self) -> bool {
        self.verification == Verification::On
    }

    /// Block `key` (bytes `span` of its content), from memory, disk, or `fetch`. One fetch per
    /// block at a time: the kernel reads a block in several concurrent requests (and
    /// prefetching races the reader), and all of them but the first wait for its bytes.
    pub fn block<E>(
        &self,
        key: &BlockKey,
        span: Span,
        fetch: impl FnOnce() -> Result<Verified, E>,
    ) -> Result<Arc<Vec<u8>>, E> {
        if let Some(data) = self.memory_get(key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(data);
        }
        self.one_at_a_time(key, || {
            if let Some(data) = self.get(key, span) {
                return Ok(data);
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
            Ok(self.put(key, span.start, fetch()?))
        })
    }

    /// Run `f` while no other caller runs it for `key` (callers for the same key wait).
    pub fn one_at_a_time<T>(&self, key: &BlockKey, f: impl FnOnce() -> T) -> T {
        let gate = self.fetching.lock().entry(key.clone()).or_default().clone();
        let result = {
            let _one_at_a_time = gate.lock();
            f()
        };
        let mut fetching = self.fetching.lock();
        if fetching.get(key).is_some_and(|g| Arc::ptr_eq(g, &gate)) && Arc::strong_count(&gate) <= 2 {
            fetching.remove(key);
        }
        result
    }

    /// Block `key` from memory or, checked, from disk (`span`: what it must hold); `None`
    /// when neither has it.
    pub fn get(&self, key: &BlockKey, span: Span) -> Option<Arc<Vec<u8>>> {
        if let Some(data) = self.memory_get(key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some(data);
        }
        let data = Arc::new(self.disk_get(key, span)?.into_parts().0);
        self.disk_hits.fetch_add(1, Ordering::Relaxed);
        self.remember(key.clone(), data.clone());
        Some(data)
    }

    /// Whether block `key` is in memory now.
    pub fn has(&self, key: &BlockKey) -> bool {
        self.memory.lock().lru.contains(key)
    }

    /// Whether block `key` is in memory or on disk now (a read would not fetch it).
    pub fn contains(&self, key: &BlockKey) -> bool {
        if self.memory.lock().lru.contains(key) {
            return true;
        }
        self.disk.as_ref().is_some_and(|d| d.index.lock().lru.contains(key))
    }

    /// Whether block `key` is neither in memory nor being fetched.
    pub fn wanted(&self, key: &BlockKey) -> bool {
        !self.memory.lock().lru.contains(key) && !self.fetching.lock().contains_key(key)
    }

    fn memory_get(&self, key: &BlockKey) -> Option<Arc<Vec<u8>>> {
        self.memory.lock().lru.get(key).cloned()
    }

    /// Keep block `key` (bytes from `start` of its content) in memory and on disk.
    pub fn put(&self, key: &BlockKey, start: u64, data: Verified) -> Arc<Vec<u8>> {
        let (bytes, pieces) = data.into_parts();
        self.disk_put(key, start, &bytes, pieces);
        let bytes = Arc::new(bytes);
        self.remember(key.clone(), bytes.clone());
        bytes
    }

    /// Keep block `key` in memory only (bytes the mount already has, such as a file it just
    /// uploaded, or small files that came in a batch), without touching the disk.
    pub fn insert(&self, key: &BlockKey, data: Verified) {
        self.remember(key.clone(), Arc::new(data.into_parts().0));
    }

    fn remember(&self, key: BlockKey, data: Arc<Vec<u8>>) {
        let len = data.len() as u64;
        self.memory.lock().insert(key, data, len, |v| v.len() as u64);
    }

    /// Count bytes that failed verification (and record it in the cache directory).
    pub fn verification_failed(&self) {
        self.verify_failures.fetch_add(1, Ordering::Relaxed);
        self.record(Integrity {
            verification_failures: 1,
            ..Integrity::default()
        });
    }

    fn record(&self, delta: Integrity) {
        if let Some(disk) = &self.disk
            && let Err(e) = cache_counters::add(&disk.dir, delta)
        {
            tracing::warn!(dir = %disk.dir.display(), error = %e, "cannot record the cache's integrity counters");
        }
    }

    fn disk_get(&self, key: &BlockKey, span: Span) -> Option<Verified> {
        let disk = self.disk.as_ref()?;
        if !valid_id(&key.id) {
            return None;
        }
        disk.index.lock().lru.get(key)?;
        let path = block_path(&disk.dir, key);
        match block_file::read(&path, key, span, self.verifying()) {
            Ok(data) => Some(data),
            Err(BlockError::Io(e)) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a cache block");
                }
                disk.index.lock().remove(key, |v| *v);
                None
            }
            Err(BlockError::Corrupt(why)) => {
                tracing::warn!(path = %path.display(), reason = %why, "dropping a corrupt cache block; fetching it again");
                let _ = fs::remove_file(&path);
                disk.index.lock().remove(key, |v| *v);
                self.corrupt_dropped.fetch_add(1, Ordering::Relaxed);
                self.record(Integrity {
                    corrupt_blocks_dropped: 1,
                    ..Integrity::default()
                });
                None
            }
        }
    }

    fn disk_put(&self, key: &BlockKey, start: u64, data: &[u8], pieces: Option<Vec<verify::Piece>>) {
        let Some(disk) = self.disk.as_ref() else {
            return;
        };
        if !valid_id(&key.id) {
            return;
        }
        let pieces = match (self.verifying(), pieces) {
            (false, _) => None,
            (true, Some(p)) => Some(p),
            (true, None) => Some(verify::pieces_of(data)),
        };
        let path = block_path(&disk.dir, key);
        let written = (|| -> std::io::Result<u64> {
            let shard = path.parent().unwrap_or(&disk.dir);
            fs::create_dir_all(shard)?;
            // A name of its own for every write: concurrent writers of one block (or of blocks
            // of one content) never share a temporary file.
            let mut tmp = tempfile::Builder::new().prefix(".tmp").tempfile_in(shard)?;
            block_file::write(tmp.as_file_mut(), key, start, data, pieces.as_deref())?;
            let len = tmp.as_file().metadata()?.len();
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(len)
        })();
        let len = match written {
            Ok(len) => len,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write a cache block");
                return;
            }
        };
        let evicted = disk.index.lock().insert(key.clone(), len, len, |v| *v);
        for k in evicted {
            let _ = fs::remove_file(block_path(&disk.dir, &k));
        }
    }

    pub fn stats(&self) -> CacheStats {
        let memory_bytes = self.memory.lock().bytes;
        let (disk_bytes, disk_blocks) = match &self.disk {
            Some(d) => {
                let i = d.index.lock();
                (i.bytes, i.lru.len() as u64)
            }
            None => (0, 0),
        };
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            memory_bytes,
            disk_bytes,
            disk_blocks,
            corrupt_blocks_dropped: self.corrupt_dropped.load(Ordering::Relaxed),
            verification_failures: self.verify_failures.load(Ordering::Relaxed),
        }
    }
}

fn block_path(blocks: &Path, key: &BlockKey) -> PathBuf {
    let shard = &key.id[..2];
    let kind = match key.kind {
        BlockKind::Grid => 'g',
        BlockKind::Chunks => 'c',
    };
    blocks.join(shard).join(format!("{}.{kind}{}", key.id, key.index))
}

fn parse_block_name(name: &str) -> Option<BlockKey> {
    let (id, block) = name.split_once('.')?;
    if !valid_id(id) {
        return None;
    }
    let kind = match block.as_bytes().first()? {
        b'g' => BlockKind::Grid,
        b'c' => BlockKind::Chunks,
        _ => return None,
    };
    let index = block[1..].parse::<u64>().ok()?;
    Some(BlockKey {
        id: Arc::from(id),
        kind,
        index,
    })
}

/// What `aether cache stats` shows of a cache directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiskUsage {
    pub bytes: u64,
    pub blocks: u64,
    pub integrity: Integrity,
}

/// Size, block count and integrity counters of a cache directory, for `aether cache stats`.
pub fn disk_usage(dir: &Path) -> std::io::Result<DiskUsage> {
    let blocks = dir.join("blocks");
    let mut usage = DiskUsage::default();
    if !blocks.exists() {
        return Ok(usage);
    }
    for shard in fs::read_dir(&blocks)? {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(shard.path())? {
            let entry = entry?;
            if parse_block_name(&entry.file_name().to_string_lossy()).is_some() {
                usage.bytes += entry.metadata()?.len();
                usage.blocks += 1;
            }
        }
    }
    usage.integrity = cache_counters::read(&blocks)?;
    Ok(usage)
}

/// Remove every cached block (and the integrity counters), for `aether cache clear`. The
/// format file stays, so blocks a running mount writes afterwards are kept by the next one.
pub fn clear(dir: &Path) -> std::io::Result<()> {
    let blocks = dir.join("blocks");
    if !blocks.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(&blocks)? {
        let entry = entry?;
        if entry.file_name() == FORMAT_FILE {
            continue;
        }
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Bytes `offset..offset+len` of a file of `size` bytes, gathered from pieces of its content:
/// `piece(pos)` returns a verified run of bytes holding byte `pos` and where that run starts.
pub fn read_range<E>(
    size: u64,
    offset: u64,
    len: u64,
    mut piece: impl FnMut(u64) -> Result<(u64, Arc<Vec<u8>>), E>,
) -> Result<Vec<u8>, E> {
    if offset >= size || len == 0 {
        return Ok(Vec::new());
    }
    let end = size.min(offset.saturating_add(len));
    let mut out = Vec::with_capacity((end - offset) as usize);
    let mut pos = offset;
    while pos < end {
        let (start, data) = piece(pos)?;
        let from = pos.saturating_sub(start);
        let stop = (end - start).min(data.len() as u64);
        if start > pos || from >= stop {
            break; // a short piece: the content is shorter than the size given
        }
        out.extend_from_slice(&data[from as usize..stop as usize]);
        pos = start + stop;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "content_cache_tests.rs"]
mod tests;
