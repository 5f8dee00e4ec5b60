//! Bytes each store of the engine holds on disk, for operators (the server's `/metrics`): the
//! object database, the chunk store, the metadata database (with its write-ahead log) and the
//! git serving caches. A store kept in memory holds none.

use std::path::{Path, PathBuf};

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::Result;

/// Bytes on disk per store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskUsage {
    pub objects: u64,
    pub chunks: u64,
    pub metadata: u64,
    pub cache: u64,
}

/// Bytes of the files under `path` (a file: its size), not following symbolic links; what
/// cannot be read (removed meanwhile) counts nothing.
fn bytes_under(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    total
}

impl Engine {
    /// What each store holds on disk now (walks their directories: call it rarely).
    pub async fn disk_usage(&self) -> Result<DiskUsage> {
        let stores = crate::stores::local_paths(&self.config().stores, &self.config().data_dir)?;
        let cache = self.config().data_dir.join("cache");
        blocking(move || {
            let sum = |paths: &[PathBuf]| paths.iter().map(|p| bytes_under(p)).sum();
            Ok(DiskUsage {
                objects: sum(&stores.objects),
                chunks: sum(&stores.chunks),
                metadata: sum(&stores.metadata),
                cache: bytes_under(&cache),
            })
        })
        .await
    }
}
