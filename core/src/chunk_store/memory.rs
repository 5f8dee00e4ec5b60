//! A chunk store in memory: nothing survives the process. For tests and throwaway servers,
//! and the second implementation that keeps the [`ChunkStore`] seam honest (it passes the same
//! conformance suite as [`super::PackChunkStore`]).

use std::collections::HashMap;

use gix::ObjectId;
use parking_lot::RwLock;

use super::{ChunkHash, ChunkStats, ChunkStore, Manifest, hex};
use crate::error::{Error, Result};
use crate::store_error::{StoreError, StoreKind};

#[derive(Default)]
pub struct MemoryChunkStore {
    chunks: RwLock<HashMap<ChunkHash, Vec<u8>>>,
    manifests: RwLock<HashMap<ObjectId, Manifest>>,
}

impl ChunkStore for MemoryChunkStore {
    fn put_chunk(&self, hash: &ChunkHash, data: &[u8]) -> Result<bool> {
        if u32::try_from(data.len()).is_err() {
            return Err(Error::InvalidArgument("chunk too large".into()));
        }
        let mut chunks = self.chunks.write();
        if chunks.contains_key(hash) {
            return Ok(false);
        }
        chunks.insert(*hash, data.to_vec());
        Ok(true)
    }

    fn has_chunk(&self, hash: &ChunkHash) -> bool {
        self.chunks.read().contains_key(hash)
    }

    fn discard(&self, hashes: &[ChunkHash]) -> Result<()> {
        let mut chunks = self.chunks.write();
        for h in hashes {
            chunks.remove(h);
        }
        Ok(())
    }

    fn get_chunk(&self, hash: &ChunkHash) -> Result<Vec<u8>> {
        let data = self.chunks.read().get(hash).cloned().ok_or_else(|| {
            Error::Store(StoreError::corrupt(
                StoreKind::Chunks,
                format!("chunk {} is missing", hex(hash)),
            ))
        })?;
        if blake3::hash(&data).as_bytes() != hash {
            return Err(Error::Store(StoreError::corrupt(
                StoreKind::Chunks,
                format!("chunk {} fails its hash check", hex(hash)),
            )));
        }
        Ok(data)
    }

    fn put_manifest(&self, blob: &ObjectId, manifest: &Manifest) -> Result<()> {
        self.manifests.write().insert(*blob, manifest.clone());
        Ok(())
    }

    fn get_manifest(&self, blob: &ObjectId) -> Result<Option<Manifest>> {
        Ok(self.manifests.read().get(blob).cloned())
    }

    fn freshen_manifest(&self, _blob: &ObjectId) -> Result<()> {
        Ok(())
    }

    fn manifest_ids(&self) -> Result<Vec<(ObjectId, Option<std::time::SystemTime>)>> {
        Ok(self.manifests.read().keys().map(|id| (*id, None)).collect())
    }

    fn delete_manifest(&self, blob: &ObjectId) -> Result<u64> {
        Ok(self
            .manifests
            .write()
            .remove(blob)
            .map_or(0, |m| m.chunks.len() as u64 * 36))
    }

    fn compact(&self, keep: &mut dyn FnMut(&ChunkHash) -> bool, dry_run: bool) -> Result<super::Compacted> {
        let mut chunks = self.chunks.write();
        let dead: Vec<ChunkHash> = chunks.keys().filter(|h| !keep(h)).copied().collect();
        let mut out = super::Compacted::default();
        for h in dead {
            let len = chunks.get(&h).map_or(0, |c| c.len() as u64);
            out.chunks += 1;
            out.chunk_bytes += len;
            out.disk_bytes += len;
            if !dry_run {
                chunks.remove(&h);
            }
        }
        Ok(out)
    }

    fn stats(&self) -> ChunkStats {
        let chunks = self.chunks.read();
        ChunkStats {
            chunks: chunks.len() as u64,
            stored_bytes: chunks.values().map(|c| c.len() as u64).sum(),
        }
    }
}
