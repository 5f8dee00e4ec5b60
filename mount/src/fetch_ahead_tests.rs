//! Small files fetched in batches and ahead of a reader walking the tree (`fs/fetch_ahead.rs`),
//! through a kernel mount over the in-memory server: every byte read is the file's, bytes that
//! came ahead are verified like any other, and a walk's files are fetched once.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::backend::{Backend, RemoteOp};
use super::content_cache::BlockKey;
use super::memory_backend::MemoryBackend;
use super::tests::{Mounted, mount_with_cache};

const DIRS: usize = 24;
const FILES: usize = 6;

fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `DIRS` directories (some nested) of `FILES` small files each, the walk order of their paths.
fn tree() -> (Arc<MemoryBackend>, Vec<String>) {
    let backend = Arc::new(MemoryBackend::new());
    let mut paths = Vec::new();
    for d in 0..DIRS {
        let dir = if d % 3 == 2 {
            format!("d{:02}/sub", d - 1)
        } else {
            format!("d{d:02}")
        };
        backend.apply(&RemoteOp::Mkdir { path: dir.clone() }).unwrap();
        for f in 0..FILES {
            let path = format!("{dir}/f{f}");
            // Sizes up to 600 KiB: over the old 256 KiB inline limit too.
            let len = 1000 + ((d * FILES + f) % 24) * 25_000;
            backend.write_external(&path, &content(len, (d * FILES + f) as u64));
            paths.push(path);
        }
    }
    paths.sort_by(|a, b| a.split('/').collect::<Vec<_>>().cmp(&b.split('/').collect::<Vec<_>>()));
    (backend, paths)
}

fn mount(backend: &Arc<MemoryBackend>) -> Mounted {
    let m = mount_with_cache(backend.clone(), Duration::from_secs(5), None);
    // The whole tree listed, as a checkout's first `git status` leaves it.
    fn walk(p: &std::path::Path) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path());
            }
        }
    }
    walk(m.dir.path());
    m
}

fn cached(m: &Mounted, backend: &MemoryBackend, path: &str) -> bool {
    m.cache.contains(&BlockKey::grid(&backend.oid(path).unwrap(), 0))
}

#[test]
fn a_reader_walking_the_tree_finds_the_next_directories_fetched_ahead_each_file_once() {
    let (backend, paths) = tree();
    let m = mount(&backend);
    let reads = backend.reads.load(Ordering::SeqCst);
    // Three directories in walk order make a walk.
    for p in paths.iter().take(3 * FILES) {
        assert!(
            fs::read(m.dir.path().join(p)).unwrap() == backend.file(p).unwrap(),
            "{p}"
        );
    }
    // The next directories come without being read.
    let later = &paths[6 * FILES];
    let start = Instant::now();
    while !cached(&m, &backend, later) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cached(&m, &backend, later), "{later} was not fetched ahead");
    for p in &paths[3 * FILES..] {
        assert!(
            fs::read(m.dir.path().join(p)).unwrap() == backend.file(p).unwrap(),
            "{p}"
        );
    }
    // Every file's bytes were asked for once (the memory backend answers a batch with one
    // read per file): nothing fetched ahead was fetched again by the reader.
    assert_eq!(backend.reads.load(Ordering::SeqCst) - reads, paths.len() as u64);
    assert_eq!(m.cache.stats().verification_failures, 0);
}

#[test]
fn two_readers_of_one_directory_share_its_batch() {
    let (backend, paths) = tree();
    let m = mount(&backend);
    let reads = backend.reads.load(Ordering::SeqCst);
    let dir = m.dir.path().to_path_buf();
    // Two threads read the files of the first directory from its first file on, at once.
    let first: Vec<String> = paths.iter().take(FILES).cloned().collect();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (dir, first, backend) = (&dir, &first, &backend);
            s.spawn(move || {
                for p in first {
                    assert!(fs::read(dir.join(p)).unwrap() == backend.file(p).unwrap(), "{p}");
                }
            });
        }
    });
    assert_eq!(
        backend.reads.load(Ordering::SeqCst) - reads,
        FILES as u64,
        "a reader fetched on its own what a batch on its way brought"
    );
}

#[test]
fn bytes_fetched_ahead_are_verified_and_other_bytes_are_never_served() {
    let (backend, paths) = tree();
    let m = mount(&backend);
    // Ahead of the reader: one file answered wrong once, one answered wrong always.
    let (once, always) = (&paths[5 * FILES + 1], &paths[7 * FILES + 2]);
    let wrong = |p: &str| backend.file(p).unwrap().iter().map(|b| !b).collect::<Vec<u8>>();
    backend.serve_wrong_bytes(&backend.oid(once).unwrap(), wrong(once), Some(1));
    backend.serve_wrong_bytes(&backend.oid(always).unwrap(), wrong(always), None);
    for p in &paths {
        let got = fs::read(m.dir.path().join(p));
        if p == always {
            assert_eq!(got.unwrap_err().raw_os_error(), Some(libc::EIO), "{p}");
        } else {
            assert!(got.unwrap() == backend.file(p).unwrap(), "{p}: other bytes served");
        }
    }
    assert!(
        !cached(&m, &backend, always),
        "bytes that failed verification were cached"
    );
    assert!(m.cache.stats().verification_failures >= 3);
}
