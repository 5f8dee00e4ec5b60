//! Content cache keyed by content id and block number: a byte-budgeted LRU in memory over an
//! optional directory on disk. Content ids are git blob ids, so one cache serves every mount and
//! every session, and survives a remount.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;
use parking_lot::Mutex;

/// Size of a cached block. A read fetches only the blocks that cover it.
pub const BLOCK: u64 = 1 << 20;

type Key = (Arc<str>, u64);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub memory_hits: u64,
    pub disk_hits: u64,
    pub misses: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub disk_blocks: u64,
}

struct Budgeted<V> {
    lru: LruCache<Key, V>,
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
    fn insert(&mut self, key: Key, value: V, size: u64, size_of: impl Fn(&V) -> u64) -> Vec<Key> {
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
}

pub struct ContentCache {
    memory: Mutex<Budgeted<Arc<Vec<u8>>>>,
    /// Blocks being fetched now, each with the lock its fetcher holds.
    fetching: Mutex<std::collections::HashMap<Key, Arc<Mutex<()>>>>,
    disk: Option<(PathBuf, Mutex<Budgeted<u64>>)>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
}

fn valid_id(id: &str) -> bool {
    id.len() >= 4 && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ContentCache {
    /// `disk`: a directory and its size budget in bytes.
    pub fn new(memory_budget: u64, disk: Option<(PathBuf, u64)>) -> std::io::Result<ContentCache> {
        let disk = match disk {
            None => None,
            Some((dir, budget)) => {
                let blocks = dir.join("blocks");
                fs::create_dir_all(&blocks)?;
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
                            // Leftover temporary files of an interrupted write.
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
                Some((blocks, Mutex::new(index)))
            }
        };
        Ok(ContentCache {
            memory: Mutex::new(Budgeted::new(memory_budget)),
            fetching: Mutex::new(Default::default()),
            disk,
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Block `block` of `id`, from memory, disk, or `fetch` (which returns the block's bytes).
    /// One fetch per block at a time: the kernel reads a block in several concurrent requests
    /// (and prefetching races the reader), and all of them but the first wait for its bytes.
    pub fn block<E>(
        &self,
        id: &str,
        block: u64,
        fetch: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Arc<Vec<u8>>, E> {
        let key: Key = (Arc::from(id), block);
        if let Some(data) = self.memory_get(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(data);
        }
        let gate = self.fetching.lock().entry(key.clone()).or_default().clone();
        let result = {
            let _one_at_a_time = gate.lock();
            self.block_locked(&key, fetch)
        };
        let mut fetching = self.fetching.lock();
        if fetching.get(&key).is_some_and(|g| Arc::ptr_eq(g, &gate)) && Arc::strong_count(&gate) <= 2 {
            fetching.remove(&key);
        }
        result
    }

    /// Whether block `block` of `id` is in memory now.
    pub fn has(&self, id: &str, block: u64) -> bool {
        self.memory.lock().lru.contains(&(Arc::from(id), block))
    }

    /// Whether block `block` of `id` is in memory or on disk now (a read would not fetch it).
    pub fn contains(&self, id: &str, block: u64) -> bool {
        let key: Key = (Arc::from(id), block);
        if self.memory.lock().lru.contains(&key) {
            return true;
        }
        self.disk
            .as_ref()
            .is_some_and(|(_, index)| index.lock().lru.contains(&key))
    }

    /// Whether block `block` of `id` is neither in memory nor being fetched.
    pub fn wanted(&self, id: &str, block: u64) -> bool {
        let key: Key = (Arc::from(id), block);
        !self.memory.lock().lru.contains(&key) && !self.fetching.lock().contains_key(&key)
    }

    fn memory_get(&self, key: &Key) -> Option<Arc<Vec<u8>>> {
        self.memory.lock().lru.get(key).cloned()
    }

    fn block_locked<E>(&self, key: &Key, fetch: impl FnOnce() -> Result<Vec<u8>, E>) -> Result<Arc<Vec<u8>>, E> {
        if let Some(data) = self.memory_get(key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(data);
        }
        if let Some(data) = self.disk_get(key) {
            self.disk_hits.fetch_add(1, Ordering::Relaxed);
            let data = Arc::new(data);
            self.remember(key.clone(), data.clone());
            return Ok(data);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let data = Arc::new(fetch()?);
        self.disk_put(key, &data);
        self.remember(key.clone(), data.clone());
        Ok(data)
    }

    /// Keep block `block` of `id` in memory (bytes the mount already has, such as a file it
    /// just uploaded), without touching the disk.
    pub fn insert(&self, id: &str, block: u64, data: Vec<u8>) {
        self.remember((Arc::from(id), block), Arc::new(data));
    }

    fn remember(&self, key: Key, data: Arc<Vec<u8>>) {
        let len = data.len() as u64;
        self.memory.lock().insert(key, data, len, |v| v.len() as u64);
    }

    fn disk_get(&self, key: &Key) -> Option<Vec<u8>> {
        let (dir, index) = self.disk.as_ref()?;
        if !valid_id(&key.0) {
            return None;
        }
        index.lock().lru.get(key)?;
        fs::read(block_path(dir, key)).ok()
    }

    fn disk_put(&self, key: &Key, data: &[u8]) {
        let Some((dir, index)) = self.disk.as_ref() else {
            return;
        };
        if !valid_id(&key.0) {
            return;
        }
        let path = block_path(dir, key);
        let written = (|| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write a cache block");
            return;
        }
        let evicted = index
            .lock()
            .insert(key.clone(), data.len() as u64, data.len() as u64, |v| *v);
        for k in evicted {
            let _ = fs::remove_file(block_path(dir, &k));
        }
    }

    pub fn stats(&self) -> CacheStats {
        let memory_bytes = self.memory.lock().bytes;
        let (disk_bytes, disk_blocks) = match &self.disk {
            Some((_, index)) => {
                let i = index.lock();
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
        }
    }
}

fn block_path(blocks: &Path, key: &Key) -> PathBuf {
    let shard = &key.0[..2];
    blocks.join(shard).join(format!("{}.{}", key.0, key.1))
}

fn parse_block_name(name: &str) -> Option<Key> {
    let (id, block) = name.split_once('.')?;
    if !valid_id(id) {
        return None;
    }
    let block = block.parse::<u64>().ok()?;
    Some((Arc::from(id), block))
}

/// Size and block count of a cache directory, and removal, for `aether cache stats|clear`.
pub fn disk_usage(dir: &Path) -> std::io::Result<(u64, u64)> {
    let blocks = dir.join("blocks");
    let (mut bytes, mut count) = (0, 0);
    if !blocks.exists() {
        return Ok((0, 0));
    }
    for shard in fs::read_dir(&blocks)? {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(shard.path())? {
            let meta = entry?.metadata()?;
            bytes += meta.len();
            count += 1;
        }
    }
    Ok((bytes, count))
}

pub fn clear(dir: &Path) -> std::io::Result<()> {
    let blocks = dir.join("blocks");
    if blocks.exists() {
        fs::remove_dir_all(&blocks)?;
    }
    Ok(())
}

/// Bytes `offset..offset+len` of a file of `size` bytes, gathered from the blocks covering them.
pub fn read_range<E>(
    size: u64,
    offset: u64,
    len: u64,
    mut block: impl FnMut(u64) -> Result<Arc<Vec<u8>>, E>,
) -> Result<Vec<u8>, E> {
    if offset >= size || len == 0 {
        return Ok(Vec::new());
    }
    let end = size.min(offset.saturating_add(len));
    let mut out = Vec::with_capacity((end - offset) as usize);
    let mut pos = offset;
    while pos < end {
        let b = pos / BLOCK;
        let data = block(b)?;
        let start = (pos - b * BLOCK) as usize;
        let stop = ((end - b * BLOCK).min(BLOCK) as usize).min(data.len());
        if start >= stop {
            break; // the server returned a short block: the file shrank under us
        }
        out.extend_from_slice(&data[start..stop]);
        pos = b * BLOCK + stop as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_spans_blocks_and_stops_at_size() {
        let size = 2 * BLOCK + 10;
        let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut fetched = Vec::new();
        let got = read_range::<()>(size, BLOCK - 5, 20, |b| {
            fetched.push(b);
            let s = (b * BLOCK) as usize;
            let e = ((b + 1) * BLOCK).min(size) as usize;
            Ok(Arc::new(content[s..e].to_vec()))
        })
        .unwrap();
        assert_eq!(got, content[(BLOCK - 5) as usize..(BLOCK + 15) as usize]);
        assert_eq!(fetched, vec![0, 1]);
        let tail = read_range::<()>(size, 2 * BLOCK + 5, 100, |b| {
            let s = (b * BLOCK) as usize;
            let e = ((b + 1) * BLOCK).min(size) as usize;
            Ok(Arc::new(content[s..e].to_vec()))
        })
        .unwrap();
        assert_eq!(tail.len(), 5);
    }

    #[test]
    fn disk_cache_survives_a_new_instance_and_respects_budget() {
        let dir = tempfile::tempdir().unwrap();
        let id = "ab".repeat(20);
        let cache = ContentCache::new(1 << 20, Some((dir.path().to_path_buf(), 3000))).unwrap();
        let a = cache.block::<()>(&id, 0, || Ok(vec![1; 1000])).unwrap();
        assert_eq!(a.len(), 1000);
        cache.block::<()>(&id, 1, || Ok(vec![2; 1000])).unwrap();
        assert_eq!(cache.stats().misses, 2);
        drop(cache);

        let cache = ContentCache::new(1 << 20, Some((dir.path().to_path_buf(), 3000))).unwrap();
        let b = cache.block::<()>(&id, 1, || Err(())).unwrap();
        assert_eq!(*b, vec![2; 1000]);
        assert_eq!(cache.stats().disk_hits, 1);
        // Over budget: the oldest blocks leave the disk.
        cache.block::<()>(&id, 2, || Ok(vec![3; 1500])).unwrap();
        cache.block::<()>(&id, 3, || Ok(vec![4; 1500])).unwrap();
        let (bytes, _) = disk_usage(dir.path()).unwrap();
        assert!(bytes <= 3000, "disk cache holds {bytes} bytes over a 3000 budget");
        clear(dir.path()).unwrap();
        assert_eq!(disk_usage(dir.path()).unwrap(), (0, 0));
    }
}
