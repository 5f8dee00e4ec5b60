//! The object-lookup layer: one place that answers "what are the bytes of blob X" whether X is
//! a git blob in the object database or a large file in the chunk store, and the ingest path
//! that decides where new bytes go. Trees, manifests and sizes are immutable and cached by id.
//!
//! An ingest that fails (its body broke, its client left, it went over a limit) removes the
//! chunks it stored, unless another ingest found one of them already stored meanwhile and
//! counts on it: every chunk an ingest still running stored is staged here with its owner, and
//! a chunk some other ingest deduplicated against is marked shared and kept.

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gix::ObjectId;
use lru::LruCache;
use parking_lot::Mutex;
use sha1::Digest;

use crate::byte_lru::{ByteLru, ENTRY_OVERHEAD};
use crate::chunk_store::{ChunkHash, ChunkStore, Extent, Manifest, ManifestChunk};
use crate::config::{CacheConfig, ChunkingConfig};
use crate::error::{Error, Result};
use crate::git_cache::GitCache;
use crate::object_store::{ObjectStore, Tree};

/// The result of storing a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub oid: ObjectId,
    pub size: u64,
    pub chunked: bool,
}

pub struct Objects {
    pub odb: Arc<dyn ObjectStore>,
    chunks: Arc<dyn ChunkStore>,
    threshold: u64,
    chunking: ChunkingConfig,
    /// Decoded trees, bounded in bytes (see [`CacheConfig`]).
    trees: ByteLru<ObjectId, Arc<Tree>>,
    /// Chunk manifests (and "none" for blobs without one), bounded in bytes.
    manifests: ByteLru<ObjectId, Option<Arc<Manifest>>>,
    /// Blob sizes: a fixed number of small entries.
    sizes: Mutex<LruCache<ObjectId, u64>>,
    git_cache: GitCache,
    /// Chunks stored by ingests still running (see the module docs).
    staging: Mutex<HashMap<ChunkHash, Staged>>,
    /// Chunks that ingests still running found already stored and will reference (a count
    /// per chunk): live for a collection, like staged ones.
    found: Mutex<HashMap<ChunkHash, u32>>,
    /// What lets a garbage collection run while this is written (see `gc_barrier`).
    pub(crate) gc: Arc<crate::gc_barrier::GcBarrier>,
    next_ingest: AtomicU64,
}

/// A chunk an ingest still running stored.
struct Staged {
    owner: u64,
    /// Another ingest found it stored and may reference it: never remove it.
    shared: bool,
}

/// The chunks one ingest (or one import's many) stored; removed on drop unless
/// [`Staging::keep`] was called.
pub(crate) struct Staging<'a> {
    objects: &'a Objects,
    owner: u64,
    mine: Vec<ChunkHash>,
    /// Chunks this ingest found already stored (counted in `Objects::found` until dropped).
    found: Vec<ChunkHash>,
    kept: bool,
}

impl Staging<'_> {
    /// Store `data` as chunk `hash`, staged as this ingest's when it is new.
    fn put(&mut self, hash: &ChunkHash, data: &[u8]) -> Result<()> {
        // Under the collection barrier's write gate (a collection deletes nothing meanwhile),
        // recorded whether new or found (see `gc_barrier`).
        let _gate = self.objects.gc.write_gate();
        self.objects.gc.wrote_chunk(*hash);
        // Under the staging lock, so no ingest's removal falls between another's dedup and mark.
        let mut staging = self.objects.staging.lock();
        if self.objects.chunks.put_chunk(hash, data)? {
            staging.insert(
                *hash,
                Staged {
                    owner: self.owner,
                    shared: false,
                },
            );
            self.mine.push(*hash);
        } else if let Some(s) = staging.get_mut(hash) {
            if s.owner != self.owner {
                s.shared = true;
            }
        } else {
            *self.objects.found.lock().entry(*hash).or_insert(0) += 1;
            self.found.push(*hash);
        }
        Ok(())
    }

    /// The ingest succeeded: its chunks are referenced by its manifest from now on.
    pub(crate) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.found.is_empty() {
            let mut found = self.objects.found.lock();
            for h in &self.found {
                if let Some(n) = found.get_mut(h) {
                    *n -= 1;
                    if *n == 0 {
                        found.remove(h);
                    }
                }
            }
        }
        let mut staging = self.objects.staging.lock();
        let mut abandoned = Vec::new();
        for h in &self.mine {
            if let Some(s) = staging.remove(h)
                && !self.kept
                && !s.shared
            {
                abandoned.push(*h);
            }
        }
        if abandoned.is_empty() {
            return;
        }
        match self.objects.chunks.discard(&abandoned) {
            Ok(()) => tracing::debug!(chunks = abandoned.len(), "removed the chunks of an abandoned ingest"),
            Err(e) => {
                tracing::warn!(error = %e, chunks = abandoned.len(), "could not remove the chunks of an abandoned ingest")
            }
        }
    }
}

/// Blob sizes kept (each an id and a number).
const SIZES: usize = 262_144;

/// What a manifest costs in memory: per chunk its hash and length, and its offset.
fn manifest_bytes(m: Option<&Manifest>) -> u64 {
    m.map_or(0, |m| {
        (m.chunks.len() * (std::mem::size_of::<ManifestChunk>() + std::mem::size_of::<u64>())) as u64
    })
}

/// Bytes the engine's in-memory caches hold now, as weighed for their caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUsage {
    /// Decoded trees.
    pub trees: u64,
    /// Chunk manifests.
    pub manifests: u64,
    /// Blob sizes.
    pub sizes: u64,
    /// Recorded revisions' residuals.
    pub revisions: u64,
    /// The sessions loaded in memory (see `loaded`).
    pub sessions: u64,
}

fn cache<K: std::hash::Hash + Eq, V>(n: usize) -> Mutex<LruCache<K, V>> {
    Mutex::new(LruCache::new(NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)))
}

impl Objects {
    /// Objects in `odb` and `chunks`; the git serving caches live in `<data dir>/cache` beside
    /// the object database, holding at most `git_cache_bytes`.
    pub fn new(
        odb: Arc<dyn ObjectStore>,
        chunks: Arc<dyn ChunkStore>,
        threshold: u64,
        chunking: ChunkingConfig,
        git_cache_bytes: u64,
        caches: CacheConfig,
    ) -> Self {
        let data = odb.git_dir().parent().unwrap_or(Path::new("."));
        let gc = Arc::new(crate::gc_barrier::GcBarrier::default());
        Objects {
            git_cache: GitCache::new(&data.join("cache"), git_cache_bytes),
            odb: Arc::new(crate::gc_barrier::guarded::Guarded {
                inner: odb,
                barrier: gc.clone(),
            }),
            gc,
            found: Mutex::new(HashMap::new()),
            chunks,
            threshold,
            chunking,
            trees: ByteLru::new(caches.tree_bytes),
            manifests: ByteLru::new(caches.manifest_bytes),
            sizes: cache(SIZES),
            staging: Mutex::new(HashMap::new()),
            next_ingest: AtomicU64::new(0),
        }
    }

    /// Forget what is cached about blobs whose manifests a collection removed.
    pub(crate) fn forget_manifests(&self, blobs: &std::collections::HashSet<ObjectId>) {
        if blobs.is_empty() {
            return;
        }
        let mut sizes = self.sizes.lock();
        for b in blobs {
            self.manifests.remove(b);
            sizes.pop(b);
        }
    }

    /// Chunks that ingests still running stored or found stored: live for a collection.
    pub(crate) fn chunks_in_flight(&self) -> std::collections::HashSet<ChunkHash> {
        let mut out: std::collections::HashSet<ChunkHash> = self.staging.lock().keys().copied().collect();
        out.extend(self.found.lock().keys().copied());
        out
    }

    /// Bytes the object layer's memory caches hold now (decoded trees, manifests, sizes; the
    /// revisions are the engine's, see `Engine::cache_usage`).
    pub fn cache_usage(&self) -> CacheUsage {
        let per_size = (std::mem::size_of::<ObjectId>() + std::mem::size_of::<u64>()) as u64 + ENTRY_OVERHEAD;
        CacheUsage {
            trees: self.trees.bytes(),
            manifests: self.manifests.bytes(),
            sizes: self.sizes.lock().len() as u64 * per_size,
            revisions: 0,
            sessions: 0,
        }
    }

    /// Trees held by the tree cache now (for tests of its bound).
    pub fn cached_trees(&self) -> usize {
        self.trees.len()
    }

    /// Chunks stored by ingests still running (for tests of abandoned uploads).
    pub fn staged_chunks(&self) -> usize {
        self.staging.lock().len()
    }

    /// A new staging scope: every chunk ingested into it is removed when it is dropped without
    /// [`Staging::keep`] (an import that failed or was abandoned part-way).
    pub(crate) fn staging(&self) -> Staging<'_> {
        Staging {
            objects: self,
            owner: self.next_ingest.fetch_add(1, Ordering::Relaxed),
            mine: Vec::new(),
            found: Vec::new(),
            kept: false,
        }
    }

    /// The on-disk caches for serving git (see [`GitCache`]).
    pub fn git_cache(&self) -> &GitCache {
        &self.git_cache
    }

    pub fn chunk_store(&self) -> &dyn ChunkStore {
        &*self.chunks
    }

    pub fn tree(&self, oid: &ObjectId) -> Result<Arc<Tree>> {
        if oid.is_empty_tree() {
            return Ok(Arc::new(Tree::default()));
        }
        if let Some(t) = self.trees.get(oid) {
            return Ok(t);
        }
        let tree = Arc::new(self.odb.read_tree(oid)?);
        self.trees.put(*oid, tree.clone(), tree.heap_bytes());
        Ok(tree)
    }

    /// The chunk manifest of a large file, or `None` for a blob kept in the object database.
    pub fn manifest(&self, oid: &ObjectId) -> Result<Option<Arc<Manifest>>> {
        // Most blobs are small and have none: answered without the LRU, whose 4,096 entries a
        // listing of a large tree would otherwise churn through (an insert and an eviction per
        // file).
        if !self.chunks.may_have_manifest(oid) {
            return Ok(None);
        }
        if let Some(m) = self.manifests.get(oid) {
            return Ok(m);
        }
        let m = self.chunks.get_manifest(oid)?.map(Arc::new);
        self.manifests.put(*oid, m.clone(), manifest_bytes(m.as_deref()));
        Ok(m)
    }

    pub fn blob_size(&self, oid: &ObjectId) -> Result<u64> {
        // `peek`: a listing asks for every file's size, and moving each entry to the front of
        // the LRU cost more than the lookup (its eviction order is then insertion order).
        if let Some(s) = self.sizes.lock().peek(oid) {
            return Ok(*s);
        }
        let size = match self.manifest(oid)? {
            Some(m) => m.size,
            None => {
                self.odb
                    .header(oid)?
                    .ok_or_else(|| Error::not_found(format!("blob {oid}")))?
                    .1
            }
        };
        self.sizes.lock().put(*oid, size);
        Ok(size)
    }

    pub fn extents(&self, oid: &ObjectId) -> Result<Option<Vec<Extent>>> {
        Ok(self.manifest(oid)?.map(|m| m.extents()))
    }

    /// Bytes `[offset, offset + len)` of a blob, clipped to its end. For a chunked file only the
    /// chunks covering the range are read.
    pub fn read_range(&self, oid: &ObjectId, offset: u64, len: u64) -> Result<Vec<u8>> {
        match self.manifest(oid)? {
            Some(m) => {
                let end = offset.saturating_add(len).min(m.size);
                let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
                for i in m.covering(offset, len) {
                    let chunk = self.chunks.get_chunk(&m.chunks[i].hash)?;
                    let start = m.offset_of(i);
                    let from = offset.saturating_sub(start) as usize;
                    let to = ((end - start) as usize).min(chunk.len());
                    out.extend_from_slice(&chunk[from..to]);
                }
                Ok(out)
            }
            None => {
                let mut data = self.odb.read_blob(oid)?;
                let from = (offset as usize).min(data.len());
                let to = (offset.saturating_add(len) as usize).min(data.len());
                if from == 0 {
                    // From the start (a whole small file): the bytes as read, not a copy.
                    data.truncate(to);
                    return Ok(data);
                }
                Ok(data[from..to].to_vec())
            }
        }
    }

    /// A reader over the whole blob from `offset`, streaming chunk by chunk.
    pub fn reader(self: &Arc<Self>, oid: &ObjectId, offset: u64) -> Result<BlobReader> {
        let source = match self.manifest(oid)? {
            Some(m) => Source::Chunked { manifest: m, next: 0 },
            None => Source::Small(Some(self.odb.read_blob(oid)?)),
        };
        Ok(BlobReader {
            objects: self.clone(),
            source,
            buf: Vec::new(),
            pos: 0,
            skip: offset,
        })
    }

    /// Store the bytes of `reader`. With `size` known the stream is read exactly once; without
    /// it a large file's git id is computed by a second pass over its stored chunks.
    pub fn ingest(&self, reader: &mut dyn Read, size: Option<u64>, max_size: u64) -> Result<Ingested> {
        let mut staging = self.staging();
        let done = self.ingest_staged(&mut staging, reader, size, max_size)?;
        staging.keep();
        Ok(done)
    }

    /// [`Objects::ingest`] into `staging`: the chunks stored stay staged (removed if `staging`
    /// is dropped without being kept), so an import can keep or drop all of its files at once.
    pub(crate) fn ingest_staged(
        &self,
        staging: &mut Staging<'_>,
        reader: &mut dyn Read,
        size: Option<u64>,
        max_size: u64,
    ) -> Result<Ingested> {
        if let Some(n) = size {
            if n > max_size {
                return Err(Error::TooLarge {
                    what: format!("file of {n} bytes"),
                    limit: max_size,
                });
            }
            if n < self.threshold {
                let mut data = Vec::with_capacity(n as usize);
                reader
                    .take(n + 1)
                    .read_to_end(&mut data)
                    .map_err(Error::io("reading file content"))?;
                if data.len() as u64 != n {
                    return Err(length_mismatch(n, data.len() as u64));
                }
                return self.store_small(&data);
            }
            let (manifest, oid) = self.chunk_into_store(staging, &mut reader.take(n + 1), max_size, Some(n))?;
            if manifest.size != n {
                return Err(length_mismatch(n, manifest.size));
            }
            let oid = oid.ok_or_else(|| Error::Corrupt("blob id was not computed".into()))?;
            return self.finish_large(oid, manifest);
        }
        // Unknown size: buffer up to the threshold to find out whether it is small.
        let mut head = Vec::new();
        reader
            .take(self.threshold)
            .read_to_end(&mut head)
            .map_err(Error::io("reading file content"))?;
        if head.len() as u64 > max_size {
            return Err(Error::TooLarge {
                what: "file".into(),
                limit: max_size,
            });
        }
        if (head.len() as u64) < self.threshold {
            return self.store_small(&head);
        }
        let mut rest = std::io::Cursor::new(head).chain(reader);
        let (manifest, _) = self.chunk_into_store(staging, &mut rest, max_size, None)?;
        let mut hasher = sha1::Sha1::new();
        hasher.update(format!("blob {}\0", manifest.size).as_bytes());
        for c in &manifest.chunks {
            hasher.update(&self.chunks.get_chunk(&c.hash)?);
        }
        let oid = ObjectId::from_bytes_or_panic(&hasher.finalize());
        self.finish_large(oid, manifest)
    }

    /// Store bytes already in memory, choosing the store by size.
    pub fn store_bytes(&self, data: &[u8]) -> Result<Ingested> {
        if (data.len() as u64) < self.threshold {
            self.store_small(data)
        } else {
            self.ingest(&mut &data[..], Some(data.len() as u64), u64::MAX)
        }
    }

    fn store_small(&self, data: &[u8]) -> Result<Ingested> {
        let oid = self.odb.write_blob(data)?;
        Ok(Ingested {
            oid,
            size: data.len() as u64,
            chunked: false,
        })
    }

    /// Chunk `reader` into the store. With `blob_size` given, the git blob id is computed on a
    /// second thread while this one chunks, hashes and stores (see `chunker`).
    fn chunk_into_store(
        &self,
        staging: &mut Staging<'_>,
        reader: &mut dyn Read,
        max_size: u64,
        blob_size: Option<u64>,
    ) -> Result<(Manifest, Option<ObjectId>)> {
        let mut sha = blob_size.map(|n| {
            let mut h = sha1::Sha1::new();
            h.update(format!("blob {n}\0").as_bytes());
            h
        });
        let mut chunks = Vec::new();
        let mut total = 0u64;
        // The all-zero chunk once stored (its length and hash): every further one is the same
        // record, found without hashing or storing it again (a sparse region, a truncate that
        // extends a file by gigabytes).
        let mut zero_chunk: Option<(usize, ChunkHash)> = None;
        crate::chunker::chunk_stream(reader, self.chunking, sha.as_mut(), |data| {
            total += data.len() as u64;
            if total > max_size {
                return Err(Error::TooLarge {
                    what: "file".into(),
                    limit: max_size,
                });
            }
            let known_zero = zero_chunk.filter(|(len, _)| *len == data.len() && crate::chunker::is_zero(data));
            let hash = match known_zero {
                Some((_, hash)) => hash,
                None => {
                    let hash = *blake3::hash(data).as_bytes();
                    staging.put(&hash, data)?;
                    if crate::chunker::is_zero(data) {
                        zero_chunk = Some((data.len(), hash));
                    }
                    hash
                }
            };
            chunks.push(ManifestChunk {
                hash,
                len: data.len() as u32,
            });
            Ok(())
        })?;
        let oid = sha.map(|h| ObjectId::from_bytes_or_panic(&h.finalize()));
        Ok((Manifest::new(chunks), oid))
    }

    fn finish_large(&self, oid: ObjectId, manifest: Manifest) -> Result<Ingested> {
        let size = manifest.size;
        let _gate = self.gc.write_gate();
        self.gc.wrote_object(oid);
        if self.manifest(&oid)?.is_none() {
            self.chunks.put_manifest(&oid, &manifest)?;
            let weight = manifest_bytes(Some(&manifest));
            self.manifests.put(oid, Some(Arc::new(manifest)), weight);
        } else {
            // Found: as young as if written now, for a collection's grace period.
            self.chunks.freshen_manifest(&oid)?;
        }
        Ok(Ingested {
            oid,
            size,
            chunked: true,
        })
    }
}

fn length_mismatch(expected: u64, got: u64) -> Error {
    Error::InvalidArgument(format!("content length mismatch: expected {expected} bytes, got {got}"))
}

enum Source {
    Small(Option<Vec<u8>>),
    Chunked { manifest: Arc<Manifest>, next: usize },
}

/// Streams a blob's bytes; holds at most one chunk in memory for chunked files.
pub struct BlobReader {
    objects: Arc<Objects>,
    source: Source,
    buf: Vec<u8>,
    pos: usize,
    skip: u64,
}

impl BlobReader {
    fn refill(&mut self) -> Result<bool> {
        match &mut self.source {
            Source::Small(data) => match data.take() {
                Some(d) => {
                    self.buf = d;
                    self.pos = 0;
                }
                None => return Ok(false),
            },
            Source::Chunked { manifest, next } => {
                if *next == 0 && self.skip > 0 {
                    // Jump straight to the chunk holding the start offset.
                    let first = manifest.covering(self.skip, 1).start;
                    if manifest.covering(self.skip, 1).is_empty() {
                        *next = manifest.chunks.len();
                    } else {
                        self.skip -= manifest.offset_of(first);
                        *next = first;
                    }
                }
                let Some(c) = manifest.chunks.get(*next) else {
                    return Ok(false);
                };
                self.buf = self.objects.chunks.get_chunk(&c.hash)?;
                self.pos = 0;
                *next += 1;
            }
        }
        let skip = (self.skip as usize).min(self.buf.len());
        self.pos = skip;
        self.skip -= skip as u64;
        Ok(true)
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            if !self.refill().map_err(std::io::Error::other)? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
