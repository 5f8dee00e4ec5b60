//! The engine over the stores the factory builds from configuration.

use aether_core::{EngineConfig, ErrorKind, SessionSource, StoreConfig};

use crate::common::{config, empty_session, put, small_chunks};

/// The default configuration keeps every store where it always was in the data directory.
#[tokio::test]
async fn by_default_the_stores_live_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let data = cfg.data_dir.clone();
    let e = aether_core::Engine::open(cfg).await.unwrap();
    empty_session(&e).await;
    assert!(data.join("meta.db").is_file());
    assert!(data.join("objects.git/HEAD").is_file());
    assert!(data.join("chunks/packs").is_dir());
}

/// Metadata and chunks in memory: the engine works the same, and nothing of them is written.
#[tokio::test]
async fn an_engine_over_memory_stores_works_and_writes_no_metadata_or_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: EngineConfig = config(dir.path());
    small_chunks(&mut cfg);
    cfg.stores = StoreConfig {
        metadata: Some("memory:".into()),
        objects: Some(format!("local:{}", dir.path().join("git").display())),
        chunks: Some("memory:".into()),
    };
    let data = cfg.data_dir.clone();
    let e = aether_core::Engine::open(cfg).await.unwrap();
    let id = empty_session(&e).await;
    let large: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    put(&e, &id, "big.bin", &large).await;
    put(&e, &id, "small.txt", b"small").await;
    e.checkpoint(&id, None).await.unwrap();
    let fork = e
        .create_session(
            SessionSource::Session {
                id: id.clone(),
                at: None,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(e.read(&fork.id, "big.bin", 0, None, None).await.unwrap(), large);
    assert_eq!(e.read(&fork.id, "small.txt", 0, None, None).await.unwrap(), b"small");
    assert!(e.stat(&id, "big.bin", None).await.unwrap().extents.is_some(), "chunked");
    assert!(dir.path().join("git/HEAD").is_file(), "objects where configured");
    assert!(!data.join("meta.db").exists() && !data.join("chunks").exists());
}

#[tokio::test]
async fn an_unknown_store_is_refused_when_opening() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.stores.metadata = Some("postgres://localhost/aether".into());
    let err = aether_core::Engine::open(cfg).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("no metadata store 'postgres'"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing created");
}
