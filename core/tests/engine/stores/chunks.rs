//! Conformance of [`ChunkStore`] implementations.

use std::sync::Arc;

use aether_core::ErrorKind;
use aether_core::ObjectId;
use aether_core::chunk_store::{ChunkStore, Manifest, ManifestChunk, MemoryChunkStore, PackChunkStore};

use super::{CHUNKS, KeepAlive};

pub fn local() -> (Arc<dyn ChunkStore>, KeepAlive) {
    let dir = tempfile::tempdir().unwrap();
    let store = PackChunkStore::open(dir.path(), 1 << 20).unwrap();
    (Arc::new(store), Box::new(dir))
}

pub fn memory() -> (Arc<dyn ChunkStore>, KeepAlive) {
    (Arc::new(MemoryChunkStore::default()), Box::new(()))
}

fn h(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

/// The contract of a chunk store, for one implementation.
pub fn chunk_store_suite(name: &str, make: fn() -> (Arc<dyn ChunkStore>, KeepAlive)) {
    let (store, _keep) = make();
    assert!(!store.has_chunk(&h(b"one")), "{name}: starts empty");
    assert!(store.put_chunk(&h(b"one"), b"one").unwrap(), "{name}: first put stores");
    assert!(
        !store.put_chunk(&h(b"one"), b"one").unwrap(),
        "{name}: second put is deduplicated"
    );
    assert!(store.put_chunk(&h(b"three"), b"three").unwrap());
    assert!(store.has_chunk(&h(b"one")));
    assert_eq!(store.get_chunk(&h(b"three")).unwrap(), b"three", "{name}");
    let stats = store.stats();
    assert_eq!(
        (stats.chunks, stats.stored_bytes),
        (2, 8),
        "{name}: stats count each chunk once"
    );
    let missing = store.get_chunk(&h(b"never")).unwrap_err();
    assert_eq!(
        missing.kind(),
        ErrorKind::Corrupt,
        "{name}: a missing chunk is damage: {missing}"
    );
    assert!(
        matches!(missing, aether_core::Error::Store(_)),
        "{name}: typed store error"
    );

    let blob = ObjectId::from_bytes_or_panic(&[7; 20]);
    assert_eq!(store.get_manifest(&blob).unwrap(), None, "{name}: no manifest yet");
    let m = Manifest::new(vec![
        ManifestChunk {
            hash: h(b"one"),
            len: 3,
        },
        ManifestChunk {
            hash: h(b"three"),
            len: 5,
        },
    ]);
    store.put_manifest(&blob, &m).unwrap();
    let back = store.get_manifest(&blob).unwrap().unwrap();
    assert_eq!(back, m, "{name}");
    assert_eq!(back.size, 8);

    // Discarding what an abandoned ingest stored: gone (unknown hashes are ignored), counted
    // out of the stats, and stored afresh by the next put.
    assert!(store.put_chunk(&h(b"abandoned"), b"abandoned").unwrap());
    store.discard(&[h(b"abandoned"), h(b"never stored")]).unwrap();
    assert!(!store.has_chunk(&h(b"abandoned")), "{name}: a discarded chunk is gone");
    assert_eq!(store.stats().chunks, 2, "{name}: stats after a discard");
    assert!(
        store.put_chunk(&h(b"abandoned"), b"abandoned").unwrap(),
        "{name}: a discarded chunk is stored again"
    );
    assert_eq!(store.get_chunk(&h(b"abandoned")).unwrap(), b"abandoned", "{name}");
    assert_eq!(store.get_chunk(&h(b"one")).unwrap(), b"one", "{name}: others stay");
}

#[test]
fn chunk_stores_conform() {
    for (name, make) in CHUNKS {
        chunk_store_suite(name, *make);
    }
}
