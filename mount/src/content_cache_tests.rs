//! The content cache on its own: blocks survive a new instance, and a damaged, swapped,
//! truncated or foreign block file is never served.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::verify::Verified;

fn v(data: Vec<u8>) -> Verified {
    Verified::checked_by_cache(data, None)
}

fn span(start: u64, len: usize) -> Span {
    Span { start, len: len as u64 }
}

fn bytes_of(block: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 7 + block * 13 + 1) as u8).collect()
}

fn open(dir: &Path) -> ContentCache {
    ContentCache::new(64 << 20, Some((dir.to_path_buf(), 1 << 30))).unwrap()
}

/// Read block `key` expecting a disk hit: a fetch is a failure.
fn from_disk(cache: &ContentCache, key: &BlockKey, s: Span) -> Result<Arc<Vec<u8>>, String> {
    cache.block(key, s, || Err(format!("{key:?} was fetched, not read from the disk")))
}

fn block_file_of(dir: &Path, key: &BlockKey) -> PathBuf {
    block_path(&dir.join("blocks"), key)
}

#[test]
fn range_spans_pieces_and_stops_at_size() {
    let size = 2 * BLOCK + 10;
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let piece = |pos: u64| -> Result<(u64, Arc<Vec<u8>>), ()> {
        let b = pos / BLOCK;
        let s = (b * BLOCK) as usize;
        let e = ((b + 1) * BLOCK).min(size) as usize;
        Ok((b * BLOCK, Arc::new(content[s..e].to_vec())))
    };
    let got = read_range(size, BLOCK - 5, 20, piece).unwrap();
    assert_eq!(got, content[(BLOCK - 5) as usize..(BLOCK + 15) as usize]);
    let tail = read_range(size, 2 * BLOCK + 5, 100, piece).unwrap();
    assert_eq!(tail.len(), 5);
    // Pieces that do not start on the grid (chunk-aligned blocks) read the same.
    let odd = |pos: u64| -> Result<(u64, Arc<Vec<u8>>), ()> {
        let start = pos / 1000 * 1000;
        let end = (start + 1000).min(size);
        Ok((start, Arc::new(content[start as usize..end as usize].to_vec())))
    };
    assert_eq!(read_range(size, 0, size, odd).unwrap(), content);
}

#[test]
fn disk_cache_survives_a_new_instance_and_respects_budget() {
    let dir = tempfile::tempdir().unwrap();
    let id = "ab".repeat(20);
    let (k0, k1) = (BlockKey::grid(&id, 0), BlockKey::grid(&id, 1));
    let cache = ContentCache::new(1 << 20, Some((dir.path().to_path_buf(), 3000))).unwrap();
    let a = cache.block::<()>(&k0, span(0, 1000), || Ok(v(vec![1; 1000]))).unwrap();
    assert_eq!(a.len(), 1000);
    cache
        .block::<()>(&k1, span(BLOCK, 1000), || Ok(v(vec![2; 1000])))
        .unwrap();
    assert_eq!(cache.stats().misses, 2);
    drop(cache);

    let cache = ContentCache::new(1 << 20, Some((dir.path().to_path_buf(), 3000))).unwrap();
    let b = from_disk(&cache, &k1, span(BLOCK, 1000)).unwrap();
    assert_eq!(*b, vec![2; 1000]);
    assert_eq!(cache.stats().disk_hits, 1);
    // Over budget: the oldest blocks leave the disk.
    cache
        .block::<()>(&BlockKey::grid(&id, 2), span(2 * BLOCK, 1200), || Ok(v(vec![3; 1200])))
        .unwrap();
    cache
        .block::<()>(&BlockKey::grid(&id, 3), span(3 * BLOCK, 1200), || Ok(v(vec![4; 1200])))
        .unwrap();
    let usage = disk_usage(dir.path()).unwrap();
    assert!(
        usage.bytes <= 3000,
        "disk cache holds {} bytes over a 3000 budget",
        usage.bytes
    );
    clear(dir.path()).unwrap();
    assert_eq!(disk_usage(dir.path()).unwrap(), DiskUsage::default());
    // A mount running through the clear keeps writing; the next one keeps what it wrote.
    cache
        .block::<()>(&BlockKey::grid(&id, 4), span(4 * BLOCK, 100), || Ok(v(vec![5; 100])))
        .unwrap();
    drop(cache);
    let cache = ContentCache::new(1 << 20, Some((dir.path().to_path_buf(), 3000))).unwrap();
    assert_eq!(
        *from_disk(&cache, &BlockKey::grid(&id, 4), span(4 * BLOCK, 100)).unwrap(),
        vec![5; 100]
    );
}

#[test]
fn concurrent_writes_of_the_blocks_of_one_content_each_land_under_their_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let id = "cd".repeat(20);
    const BLOCKS: u64 = 32;
    const LEN: usize = 32 << 10;
    for round in 0..2 {
        let cache = open(dir.path());
        // Every block written by several threads at once, as readahead and readers race.
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let cache = &cache;
                let id = &id;
                s.spawn(move || {
                    for i in 0..BLOCKS {
                        let b = (i + t * 5) % BLOCKS;
                        cache.disk_put(&BlockKey::chunks(id, b), b * BLOCK, &bytes_of(b, LEN), None);
                    }
                });
            }
        });
        drop(cache);
        let fresh = open(dir.path());
        for b in 0..BLOCKS {
            let got = from_disk(&fresh, &BlockKey::chunks(&id, b), span(b * BLOCK, LEN))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(*got == bytes_of(b, LEN), "round {round}: block {b} holds other bytes");
        }
        assert_eq!(fresh.stats().corrupt_blocks_dropped, 0);
        let shard = dir.path().join("blocks").join(&id[..2]);
        let leftovers: Vec<_> = fs::read_dir(&shard)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| parse_block_name(n).is_none())
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
        clear(dir.path()).unwrap();
    }
}

/// Write two blocks of one content through one cache; returns their keys and bytes.
fn two_blocks(dir: &Path, id: &str) -> [(BlockKey, Span, Vec<u8>); 2] {
    let cache = open(dir);
    [0u64, 1].map(|b| {
        let key = BlockKey::grid(id, b);
        let data = bytes_of(b, 10_000);
        let s = span(b * BLOCK, data.len());
        cache.block::<()>(&key, s, || Ok(v(data.clone()))).unwrap();
        (key, s, data)
    })
}

/// A fresh cache must drop `damaged` blocks (fetching them again) and serve the others from
/// the disk; returns the cache.
fn reads_right(dir: &Path, blocks: &[(BlockKey, Span, Vec<u8>)], damaged: &[usize]) -> ContentCache {
    let cache = open(dir);
    let fetched = AtomicU64::new(0);
    for (i, (key, s, data)) in blocks.iter().enumerate() {
        let got = cache
            .block::<()>(key, *s, || {
                fetched.fetch_add(1, Ordering::SeqCst);
                Ok(v(data.clone()))
            })
            .unwrap();
        assert!(*got == *data, "block {i} served other bytes");
        let path = block_file_of(dir, key);
        if damaged.contains(&i) {
            // Refetched and written again, correctly.
            assert!(path.exists(), "block {i} was not written again");
        }
    }
    assert_eq!(fetched.load(Ordering::SeqCst), damaged.len() as u64, "fetches");
    assert_eq!(cache.stats().corrupt_blocks_dropped, damaged.len() as u64);
    cache
}

#[test]
fn flipped_bytes_are_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = two_blocks(dir.path(), &"e1".repeat(20));
    let path = block_file_of(dir.path(), &blocks[1].0);
    let mut raw = fs::read(&path).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x40;
    fs::write(&path, raw).unwrap();
    reads_right(dir.path(), &blocks, &[1]);
    // The count is kept in the cache directory for `aether cache stats`.
    assert_eq!(disk_usage(dir.path()).unwrap().integrity.corrupt_blocks_dropped, 1);
    // And the block written again is served from the disk from then on.
    reads_right(dir.path(), &blocks, &[]);
}

#[test]
fn swapped_block_files_are_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = two_blocks(dir.path(), &"e2".repeat(20));
    let (a, b) = (
        block_file_of(dir.path(), &blocks[0].0),
        block_file_of(dir.path(), &blocks[1].0),
    );
    let tmp = a.with_extension("swap");
    fs::rename(&a, &tmp).unwrap();
    fs::rename(&b, &a).unwrap();
    fs::rename(&tmp, &b).unwrap();
    reads_right(dir.path(), &blocks, &[0, 1]);
}

#[test]
fn a_truncated_or_extended_block_file_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = two_blocks(dir.path(), &"e3".repeat(20));
    let f = fs::OpenOptions::new()
        .write(true)
        .open(block_file_of(dir.path(), &blocks[0].0))
        .unwrap();
    f.set_len(5000).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(block_file_of(dir.path(), &blocks[1].0))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + 3).unwrap();
    reads_right(dir.path(), &blocks, &[0, 1]);
    // A header cut short, and an empty file.
    fs::write(block_file_of(dir.path(), &blocks[0].0), b"AEBLOCK").unwrap();
    fs::write(block_file_of(dir.path(), &blocks[1].0), b"").unwrap();
    reads_right(dir.path(), &blocks, &[0, 1]);
}

#[test]
fn a_block_holding_another_span_is_never_served() {
    // The same content chunked differently (another server's chunk sizes): block 1 of the
    // other layout starts elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let id = "e4".repeat(20);
    let key = BlockKey::chunks(&id, 1);
    let cache = open(dir.path());
    cache
        .block::<()>(&key, span(BLOCK + 100, 500), || Ok(v(vec![5; 500])))
        .unwrap();
    drop(cache);
    let cache = open(dir.path());
    let got = cache
        .block::<()>(&key, span(BLOCK + 50, 550), || Ok(v(vec![6; 550])))
        .unwrap();
    assert_eq!(*got, vec![6; 550]);
    assert_eq!(cache.stats().corrupt_blocks_dropped, 1);
}

#[test]
fn a_cache_of_the_old_format_is_discarded_and_its_files_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let id = "f0".repeat(20);
    // What the previous version wrote: raw bytes named `<id>.<block>`, no format file.
    let shard = dir.path().join("blocks").join(&id[..2]);
    fs::create_dir_all(&shard).unwrap();
    fs::write(shard.join(format!("{id}.0")), vec![9; 100]).unwrap();
    fs::write(shard.join(format!("{id}.g0")), vec![9; 100]).unwrap();
    let cache = open(dir.path());
    assert!(!shard.join(format!("{id}.0")).exists(), "the old cache was kept");
    let key = BlockKey::grid(&id, 0);
    assert!(!cache.contains(&key));
    let got = cache.block::<()>(&key, span(0, 100), || Ok(v(vec![1; 100]))).unwrap();
    assert_eq!(*got, vec![1; 100]);
    assert_eq!(cache.stats().misses, 1);
    drop(cache);

    // A raw file under a current name inside a current-format directory (an old mount still
    // running): dropped, never served.
    let path = block_file_of(dir.path(), &key);
    fs::write(&path, vec![9; 100]).unwrap();
    reads_right(dir.path(), &[(key.clone(), span(0, 100), vec![1; 100])], &[0]);
    // Opening again keeps a cache of the current format.
    assert!(open(dir.path()).contains(&key));
}

#[test]
fn blocks_written_without_verification_are_dropped_by_a_verifying_cache() {
    let dir = tempfile::tempdir().unwrap();
    let id = "f1".repeat(20);
    let key = BlockKey::grid(&id, 0);
    let unverified = ContentCache::with_verification(
        1 << 20,
        Some((dir.path().to_path_buf(), 1 << 30)),
        Verification::OffForBenchmark,
    )
    .unwrap();
    unverified
        .block::<()>(&key, span(0, 10), || Ok(v(vec![3; 10])))
        .unwrap();
    drop(unverified);
    reads_right(dir.path(), &[(key, span(0, 10), vec![3; 10])], &[0]);
}
