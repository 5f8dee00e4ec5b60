use aether_core::{ErrorKind, WriteOptions};

use crate::common::*;

#[tokio::test]
async fn identical_content_is_stored_once_across_sessions() {
    let e = small_chunk_engine().await;
    let data = noise(11, 200_000);
    let a = empty_session(&e).await;
    let b = empty_session(&e).await;
    put(&e, &a, "big", &data).await;
    let after_first = e.objects().chunk_store().stats();
    put(&e, &b, "copy/big", &data).await;
    assert_eq!(
        e.objects().chunk_store().stats(),
        after_first,
        "second copy stored nothing new"
    );
    assert!(after_first.stored_bytes <= 200_000);
    assert_eq!(
        e.stat(&a, "big", None).await.unwrap().oid,
        e.stat(&b, "copy/big", None).await.unwrap().oid
    );
}

#[tokio::test]
async fn one_byte_change_stores_only_nearby_chunks() {
    let e = small_chunk_engine().await;
    let id = empty_session(&e).await;
    let mut data = noise(5, 400_000);
    put(&e, &id, "big", &data).await;
    let before = e.objects().chunk_store().stats();
    e.write_at(&id, "big", 200_000, vec![data[200_000] ^ 0xff])
        .await
        .unwrap();
    data[200_000] ^= 0xff;
    let after = e.objects().chunk_store().stats();
    let new_bytes = after.stored_bytes - before.stored_bytes;
    assert!(
        new_bytes > 0 && new_bytes <= 3 * 4096,
        "a 1-byte edit stored {new_bytes} new bytes"
    );
    assert_eq!(get(&e, &id, "big").await, data);
}

#[tokio::test]
async fn range_reads_touch_only_covering_chunks() {
    let e = small_chunk_engine().await;
    let id = empty_session(&e).await;
    let data = noise(9, 100_000);
    put(&e, &id, "big", &data).await;
    let st = e.stat(&id, "big", None).await.unwrap();
    let extents = st.extents.unwrap();
    let last = extents.last().unwrap().clone();

    // Corrupt the last chunk in its pack: reads elsewhere must not notice, reads there must.
    let packs = e.dir.path().join("data/chunks/packs");
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "chunks"))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let tail = &data[last.offset as usize..];
    let at = bytes
        .windows(tail.len())
        .rposition(|w| w == tail)
        .expect("last chunk in pack");
    bytes[at] ^= 1;
    std::fs::write(&pack, bytes).unwrap();

    assert_eq!(e.read(&id, "big", 10, Some(1000), None).await.unwrap(), &data[10..1010]);
    let err = e.read(&id, "big", last.offset, Some(10), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}

#[tokio::test]
async fn truncate_and_extend_a_chunked_file() {
    let e = small_chunk_engine().await;
    let id = empty_session(&e).await;
    let data = noise(1, 50_000);
    put(&e, &id, "big", &data).await;
    e.truncate(&id, "big", 30_000).await.unwrap();
    assert_eq!(get(&e, &id, "big").await, &data[..30_000]);
    e.truncate(&id, "big", 100).await.unwrap();
    let st = e.stat(&id, "big", None).await.unwrap();
    assert!(!st.chunked, "small again: back in the object database");
    e.write_at(&id, "big", 10_000, b"end".to_vec()).await.unwrap();
    let got = get(&e, &id, "big").await;
    assert_eq!(got.len(), 10_003);
    assert_eq!(&got[..100], &data[..100]);
    assert!(got[100..10_000].iter().all(|b| *b == 0));
    assert!(e.stat(&id, "big", None).await.unwrap().chunked);
}

#[tokio::test]
async fn streaming_reader_from_an_offset() {
    let e = small_chunk_engine().await;
    let id = empty_session(&e).await;
    let data = noise(2, 77_777);
    e.write_bytes(&id, "big", data.clone(), WriteOptions::default())
        .await
        .unwrap();
    let (st, mut reader) = e.open_read(&id, "big", 12_345, None).await.unwrap();
    assert_eq!(st.size, 77_777);
    let got = tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut v).unwrap();
        v
    })
    .await
    .unwrap();
    assert_eq!(got, &data[12_345..]);
}

/// A reader of `good` bytes that then fails, as a request body whose client left does.
struct BrokenBody {
    good: std::io::Cursor<Vec<u8>>,
}

impl std::io::Read for BrokenBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.good.read(buf)? {
            0 => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the client went away",
            )),
            n => Ok(n),
        }
    }
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// An ingest that fails part-way removes the chunks it stored, with or without an announced
/// size; a chunk that was stored before it (deduplicated, another file's) stays.
#[tokio::test]
async fn an_abandoned_ingest_removes_its_chunks_but_not_shared_ones() {
    let e = small_chunk_engine().await;
    let objects = e.objects().clone();
    let kept = pattern(64 << 10, 1);
    let done = objects
        .ingest(&mut &kept[..], Some(kept.len() as u64), u64::MAX)
        .unwrap();
    assert!(done.chunked);
    let before = objects.chunk_store().stats();
    for size in [Some(1 << 20), None] {
        // The first 64 KiB are the same bytes as the kept file: its chunks are found, not stored.
        let mut body = kept.clone();
        body.extend(pattern(200 << 10, 7));
        let mut reader = BrokenBody {
            good: std::io::Cursor::new(body),
        };
        let err = objects.ingest(&mut reader, size, u64::MAX).unwrap_err();
        assert!(err.to_string().contains("went away"), "{err}");
        assert_eq!(objects.staged_chunks(), 0);
        let after = objects.chunk_store().stats();
        assert_eq!(
            (after.chunks, after.stored_bytes),
            (before.chunks, before.stored_bytes),
            "an abandoned ingest (size {size:?}) left chunks behind"
        );
        // The kept file still reads whole.
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut objects.reader(&done.oid, 0).unwrap(), &mut back).unwrap();
        assert!(back == kept);
    }
}

/// Extending a file by a gigabyte stores one zero chunk, not a gigabyte, and other writers of
/// the session do not wait for it (the new content is stored before the write lock is taken).
#[tokio::test]
async fn a_file_extended_by_a_gigabyte_stores_one_zero_chunk_and_holds_up_no_writer() {
    const SIZE: u64 = 1 << 30;
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "f", b"head").await;
    let stored_before = e.objects().chunk_store().stats().stored_bytes;
    let extend = tokio::spawn({
        let (e, id) = (e.engine.clone(), id.clone());
        async move { e.truncate(&id, "f", SIZE).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    put(&e, &id, "other", b"written meanwhile").await;
    assert!(
        !extend.is_finished(),
        "a write of another file waited for the extension to finish"
    );
    let st = extend.await.unwrap().unwrap();
    assert_eq!(st.size, SIZE);
    let stored = e.objects().chunk_store().stats().stored_bytes - stored_before;
    assert!(stored <= 1 << 20, "{stored} bytes stored for a gigabyte of zeros");
    let tail = e.read(&id, "f", SIZE - 100, None, None).await.unwrap();
    assert_eq!(tail, vec![0u8; 100]);
    assert_eq!(e.read(&id, "f", 0, Some(4), None).await.unwrap(), b"head");
    assert_eq!(get(&e, &id, "other").await, b"written meanwhile");
}

/// A write that lands while a long truncate of the same file is storing its content is not
/// lost: the truncate sees the file changed and is done again from the newer file.
#[tokio::test]
async fn a_write_during_a_long_truncate_of_the_same_file_is_kept() {
    const SIZE: u64 = 1 << 30;
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "f", b"old!!").await;
    let extend = tokio::spawn({
        let (e, id) = (e.engine.clone(), id.clone());
        async move { e.truncate(&id, "f", SIZE).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    e.write_at(&id, "f", 0, b"hello".to_vec()).await.unwrap();
    assert!(!extend.is_finished(), "the write waited for the truncate");
    assert_eq!(extend.await.unwrap().unwrap().size, SIZE);
    assert_eq!(e.read(&id, "f", 0, Some(6), None).await.unwrap(), b"hello\0");
    assert_eq!(e.stat(&id, "f", None).await.unwrap().size, SIZE);
}
