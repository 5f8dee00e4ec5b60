//! The mount against an in-memory server that answers with other bytes than the content asked
//! for (as a server racing a write did), or whose disk cache was damaged between two mounts:
//! readers and writers only ever see, and upload, verified bytes.

use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::backend::{Backend, RemoteOp};
use super::memory_backend::MemoryBackend;
use super::tests::{Mounted, mount_with_cache};

/// `len` bytes that differ from block to block and from `seed` to `seed`.
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

/// Other bytes of the same length.
fn inverted(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| !b).collect()
}

fn mount(backend: &Arc<MemoryBackend>) -> Mounted {
    mount_with_cache(backend.clone(), Duration::from_secs(5), None)
}

fn failures(m: &Mounted) -> u64 {
    m.cache.stats().verification_failures
}

/// Sizes that take each way of verifying: one block (git id), larger and kept whole by the
/// server (git id of the whole), chunked (blake3 per chunk). The backend chunks from 4 MiB.
const FILES: [(&str, usize); 3] = [("small", 3000), ("whole", (2 << 20) + 5), ("chunked", (5 << 20) + 17)];

fn server_with(names: &[(&str, usize)], seed: u64) -> Arc<MemoryBackend> {
    let backend = Arc::new(MemoryBackend::new());
    backend.set_chunk_at(4 << 20);
    for (i, (name, len)) in names.iter().enumerate() {
        backend.write_external(name, &content(*len, seed + i as u64));
    }
    backend
}

#[test]
fn other_bytes_from_the_server_are_refused_fetched_again_once_then_fail_with_eio() {
    let backend = server_with(&FILES, 1);
    let m = mount(&backend);
    for (name, _) in FILES {
        let want = backend.file(name).unwrap();
        let id = backend.oid(name).unwrap();
        // Wrong once: the second fetch is right, and that is what the reader gets.
        backend.serve_wrong_bytes(&id, inverted(&want), Some(1));
        let before = failures(&m);
        let got = fs::read(m.dir.path().join(name)).unwrap();
        assert!(got == want, "{name}: the mount served other bytes");
        assert_eq!(failures(&m), before + 1, "{name}: the refused answer was not counted");
    }
    // Always wrong: the read fails, and nothing was cached (right bytes are read once the
    // server answers right).
    let backend = server_with(&FILES, 2);
    let m = mount(&backend);
    for (name, _) in FILES {
        let want = backend.file(name).unwrap();
        let id = backend.oid(name).unwrap();
        backend.serve_wrong_bytes(&id, inverted(&want), None);
        let err = fs::read(m.dir.path().join(name)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{name}: {err}");
        backend.serve_right_bytes(&id);
        let got = fs::read(m.dir.path().join(name)).unwrap();
        assert!(got == want, "{name}: other bytes after the server recovered");
    }
    assert!(failures(&m) >= 2 * FILES.len() as u64);
}

#[test]
fn a_chunked_file_is_fetched_in_whole_chunks_with_its_layout_asked_once() {
    let backend = server_with(&[("chunked", (5 << 20) + 17)], 3);
    let m = mount(&backend);
    let want = backend.file("chunked").unwrap();
    let got = fs::read(m.dir.path().join("chunked")).unwrap();
    assert!(got == want);
    assert_eq!(backend.layouts.load(Ordering::SeqCst), 1);
    // One read per chunk-aligned block (readahead included), each of whole chunks.
    let blocks = super::memory_backend::chunks_of(&want)
        .iter()
        .map(|c| c.offset >> 20)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    assert_eq!(backend.reads.load(Ordering::SeqCst), blocks);
    assert_eq!(failures(&m), 0);
}

#[test]
fn small_files_that_come_with_a_listing_are_verified_before_they_are_cached() {
    let backend = Arc::new(MemoryBackend::new());
    backend.apply(&RemoteOp::Mkdir { path: "d".into() }).unwrap();
    for (name, seed) in [("a", 10), ("b", 11), ("c", 12)] {
        backend.write_external(&format!("d/{name}"), &content(700, seed));
    }
    let b = backend.file("d/b").unwrap();
    // The batched read of `a` and its siblings gets other bytes for `b`.
    backend.serve_wrong_bytes(&backend.oid("d/b").unwrap(), inverted(&b), Some(1));
    let m = mount(&backend);
    assert_eq!(
        fs::read(m.dir.path().join("d/a")).unwrap(),
        backend.file("d/a").unwrap()
    );
    assert_eq!(failures(&m), 1, "b's bytes in the batch were not refused");
    assert!(fs::read(m.dir.path().join("d/b")).unwrap() == b);
    assert_eq!(
        fs::read(m.dir.path().join("d/c")).unwrap(),
        backend.file("d/c").unwrap()
    );
}

/// Append `tail` to `name` through the mount and fsync: the first error, if any.
fn append(m: &Mounted, name: &str, tail: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new().append(true).open(m.dir.path().join(name))?;
    f.write_all(tail)?;
    f.sync_all()
}

#[test]
fn a_write_never_uploads_bytes_that_failed_verification() {
    let backend = server_with(&FILES, 4);
    let m = mount(&backend);
    for (name, _) in FILES {
        let want = backend.file(name).unwrap();
        let id = backend.oid(name).unwrap();
        // To write, the mount copies the file from the server first: it gets other bytes.
        backend.serve_wrong_bytes(&id, inverted(&want), None);
        let r = append(&m, name, b"!");
        assert!(r.is_err(), "{name}: a write over unverifiable content succeeded");
        m.synced();
        assert!(
            backend.file(name).unwrap() == want,
            "{name}: the server's bytes changed"
        );
    }
    // Wrong once: the copy is fetched again and the write goes through with the right bytes.
    let backend = server_with(&FILES, 5);
    let m = mount(&backend);
    for (name, _) in FILES {
        let want = backend.file(name).unwrap();
        backend.serve_wrong_bytes(&backend.oid(name).unwrap(), inverted(&want), Some(1));
        append(&m, name, b"!").unwrap();
        m.synced();
        let mut expected = want.clone();
        expected.push(b'!');
        assert!(
            backend.file(name).unwrap() == expected,
            "{name}: the server holds other bytes"
        );
    }
}

#[test]
fn a_write_over_a_damaged_disk_cache_uploads_the_right_bytes() {
    // Over the size whose bytes come with a listing (those stay in memory) and kept whole by
    // the server, and chunked.
    let files = [("whole", (2 << 20) + 5), ("chunked", (5 << 20) + 17)];
    let backend = server_with(&files, 6);
    let cache = tempfile::tempdir().unwrap();
    {
        let m = mount_with_cache(backend.clone(), Duration::from_secs(5), Some(cache.path()));
        for (name, _) in files {
            assert!(fs::read(m.dir.path().join(name)).unwrap() == backend.file(name).unwrap());
        }
    }
    // Flip the last byte of every block file the first mount wrote. Every chunk-aligned block
    // is read back from disk; of a content kept whole only the first block is (the content is
    // then fetched again whole and every block replaced).
    let mut damaged = 0;
    let (mut chunk_blocks, mut whole_blocks) = (0, 0);
    for shard in fs::read_dir(cache.path().join("blocks")).unwrap() {
        let shard = shard.unwrap().path();
        if !shard.is_dir() {
            continue;
        }
        for f in fs::read_dir(shard).unwrap() {
            let path = f.unwrap().path();
            match path.extension().and_then(|e| e.to_str()).and_then(|e| e.chars().next()) {
                Some('c') => chunk_blocks += 1,
                Some('g') => whole_blocks += 1,
                _ => continue,
            }
            let mut raw = fs::read(&path).unwrap();
            let last = raw.len() - 1;
            raw[last] ^= 1;
            fs::write(&path, raw).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged >= 2, "the first mount left {damaged} block files");
    let m = mount_with_cache(backend.clone(), Duration::from_secs(5), Some(cache.path()));
    let reads = backend.reads.load(Ordering::SeqCst);
    for (name, _) in files {
        let mut expected = backend.file(name).unwrap();
        append(&m, name, b"!").unwrap();
        m.synced();
        expected.push(b'!');
        assert!(
            backend.file(name).unwrap() == expected,
            "{name}: the server holds other bytes"
        );
    }
    assert!(
        backend.reads.load(Ordering::SeqCst) > reads,
        "nothing was fetched again"
    );
    assert!(chunk_blocks >= 1 && whole_blocks >= 1, "{chunk_blocks} {whole_blocks}");
    assert_eq!(
        m.cache.stats().corrupt_blocks_dropped,
        chunk_blocks + 1,
        "{damaged} damaged"
    );
}

#[test]
fn an_upload_acknowledged_with_another_contents_id_is_not_cached_under_that_id() {
    let backend = Arc::new(MemoryBackend::new());
    let theirs = content(2000, 7);
    backend.write_external("theirs", &theirs);
    let m = mount(&backend);
    fs::read_dir(m.dir.path()).unwrap().for_each(drop);
    // The server stores our bytes but answers with the id of `theirs`.
    backend.misack_next_put(&backend.oid("theirs").unwrap());
    let mine = content(1500, 8);
    fs::write(m.dir.path().join("mine"), &mine).unwrap();
    m.synced();
    let start = std::time::Instant::now();
    while failures(&m) == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        failures(&m),
        1,
        "the local bytes were not checked against the acknowledged id"
    );
    assert!(fs::read(m.dir.path().join("theirs")).unwrap() == theirs);
    assert!(fs::read(m.dir.path().join("mine")).unwrap() == mine);
}
