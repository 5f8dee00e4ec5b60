//! The store factory: turns [`StoreConfig`] into the backends the engine works through
//! (metadata by concern, git objects, chunks). Adding a backend is one new file (its
//! implementation of the traits, passing the conformance suite in `core/tests/engine/stores/`) and one
//! arm in the matching `open_*` function here. It runs blocking I/O: call it from a blocking
//! thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk_store::{ChunkStore, MemoryChunkStore, PackChunkStore};
use crate::config::{EngineConfig, StoreConfig, StoreUrl};
use crate::error::{Error, Result};
use crate::meta::MetaStores;
use crate::meta::memory::MemoryMetaStore;
use crate::meta::sqlite::SqliteMetaStore;
use crate::object_store::ObjectStore;
use crate::odb::Odb;

/// Every store of an engine.
pub struct Stores {
    pub meta: MetaStores,
    pub objects: Arc<dyn ObjectStore>,
    pub chunks: Arc<dyn ChunkStore>,
}

/// The metadata store, the git object store and the chunk store named by `config.stores`,
/// each created on first use.
pub fn open(config: &EngineConfig) -> Result<Stores> {
    let dir = &config.data_dir;
    let urls = urls(&config.stores, dir)?;
    Ok(Stores {
        objects: open_objects(&urls.objects, config)?,
        chunks: open_chunks(&urls.chunks, config)?,
        meta: open_metadata(&urls.metadata)?,
    })
}

struct Urls {
    metadata: StoreUrl,
    objects: StoreUrl,
    chunks: StoreUrl,
}

/// Each store's url, the default under `data_dir` where none is given.
fn urls(stores: &StoreConfig, data_dir: &Path) -> Result<Urls> {
    let pick = |given: &Option<String>, scheme: &str, default: &str| -> Result<StoreUrl> {
        match given {
            Some(url) => url.parse(),
            None => Ok(StoreUrl {
                scheme: scheme.to_owned(),
                location: data_dir.join(default).to_string_lossy().into_owned(),
            }),
        }
    };
    Ok(Urls {
        metadata: pick(&stores.metadata, "sqlite", "meta.db")?,
        objects: pick(&stores.objects, "local", "objects.git")?,
        chunks: pick(&stores.chunks, "local", "chunks")?,
    })
}

/// The files and directories each store keeps on disk (none for a store in memory).
pub(crate) struct LocalPaths {
    pub metadata: Vec<PathBuf>,
    pub objects: Vec<PathBuf>,
    pub chunks: Vec<PathBuf>,
}

pub(crate) fn local_paths(stores: &StoreConfig, data_dir: &Path) -> Result<LocalPaths> {
    let urls = urls(stores, data_dir)?;
    let on_disk = |url: &StoreUrl| -> Vec<PathBuf> {
        if url.scheme == "memory" {
            return Vec::new();
        }
        let at = PathBuf::from(&url.location);
        if url.scheme == "sqlite" {
            // The database and its write-ahead log and shared-memory files.
            let name = at
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sibling = |suffix: &str| at.with_file_name(format!("{name}{suffix}"));
            return vec![at.clone(), sibling("-wal"), sibling("-shm")];
        }
        vec![at]
    };
    Ok(LocalPaths {
        metadata: on_disk(&urls.metadata),
        objects: on_disk(&urls.objects),
        chunks: on_disk(&urls.chunks),
    })
}

/// Check every url of `stores` names a backend this build has, without opening anything.
pub(crate) fn validate(stores: &StoreConfig) -> Result<()> {
    let urls = urls(stores, Path::new("."))?;
    for (what, url, known) in [
        ("metadata", &urls.metadata, &["sqlite", "memory"][..]),
        ("objects", &urls.objects, &["local"][..]),
        ("chunks", &urls.chunks, &["local", "memory"][..]),
    ] {
        if !known.contains(&url.scheme.as_str()) {
            return Err(unknown(what, url, known));
        }
        if url.scheme != "memory" && url.location.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the {what} store '{}:' needs a location",
                url.scheme
            )));
        }
    }
    Ok(())
}

fn unknown(what: &str, url: &StoreUrl, known: &[&str]) -> Error {
    Error::InvalidArgument(format!(
        "no {what} store '{}' in this build (known: {})",
        url.scheme.escape_debug(),
        known.join(", ")
    ))
}

fn open_metadata(url: &StoreUrl) -> Result<MetaStores> {
    match url.scheme.as_str() {
        "sqlite" => Ok(MetaStores::from_backend(Arc::new(SqliteMetaStore::open(Path::new(
            &url.location,
        ))?))),
        "memory" => Ok(MetaStores::from_backend(Arc::new(MemoryMetaStore::default()))),
        _ => Err(unknown("metadata", url, &["sqlite", "memory"])),
    }
}

fn open_objects(url: &StoreUrl, config: &EngineConfig) -> Result<Arc<dyn ObjectStore>> {
    match url.scheme.as_str() {
        "local" => {
            let odb = Odb::open_or_init(&PathBuf::from(&url.location), config.committer.clone())?
                .with_loose_compression(config.loose_compression);
            Ok(Arc::new(odb))
        }
        _ => Err(unknown("objects", url, &["local"])),
    }
}

fn open_chunks(url: &StoreUrl, config: &EngineConfig) -> Result<Arc<dyn ChunkStore>> {
    match url.scheme.as_str() {
        "local" => Ok(Arc::new(PackChunkStore::open(
            Path::new(&url.location),
            config.pack_target_size,
        )?)),
        "memory" => Ok(Arc::new(MemoryChunkStore::default())),
        _ => Err(unknown("chunks", url, &["local", "memory"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn defaults_live_under_the_data_directory() {
        let u = urls(&StoreConfig::default(), Path::new("/d")).unwrap();
        assert_eq!(
            (u.metadata.scheme.as_str(), u.metadata.location.as_str()),
            ("sqlite", "/d/meta.db")
        );
        assert_eq!(
            (u.objects.scheme.as_str(), u.objects.location.as_str()),
            ("local", "/d/objects.git")
        );
        assert_eq!(
            (u.chunks.scheme.as_str(), u.chunks.location.as_str()),
            ("local", "/d/chunks")
        );
    }

    #[test]
    fn unknown_or_malformed_stores_are_refused_by_name() {
        for (cfg, needle) in [
            (
                StoreConfig {
                    metadata: Some("postgres://db/aether".into()),
                    ..Default::default()
                },
                "no metadata store 'postgres'",
            ),
            (
                StoreConfig {
                    chunks: Some("s3:bucket".into()),
                    ..Default::default()
                },
                "no chunks store 's3'",
            ),
            (
                StoreConfig {
                    objects: Some("/just/a/path".into()),
                    ..Default::default()
                },
                "<scheme>:<location>",
            ),
            (
                StoreConfig {
                    metadata: Some("sqlite:".into()),
                    ..Default::default()
                },
                "needs a location",
            ),
        ] {
            let err = validate(&cfg).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.to_string().contains(needle), "{err} should say {needle}");
        }
        let ok = StoreConfig {
            metadata: Some("memory:".into()),
            objects: Some("local:/x".into()),
            chunks: Some("memory:".into()),
        };
        validate(&ok).unwrap();
    }
}
