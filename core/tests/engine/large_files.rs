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
