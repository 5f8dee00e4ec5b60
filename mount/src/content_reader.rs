//! Reads of file content by id through the cache: what is fetched from the server is verified
//! before it is cached or served, and a sequential reader's next blocks are fetched ahead.
//!
//! A content of at most one block is verified whole against its git blob id. A larger one needs
//! its layout (`content_layout`), asked of the server once per content id and kept: a chunked
//! content is fetched in chunk-aligned blocks verified chunk by chunk against the extents' blake3
//! ids; one the server keeps whole is fetched whole and verified against its git blob id. Bytes
//! that fail are logged, counted and fetched once more; failing again, the read fails (EIO).
//! Nothing here ever returns bytes that were not verified, except with verification turned off
//! for a benchmark.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::backend::{Backend, BackendError};
use crate::block_file::Span;
use crate::content_cache::{BLOCK, BlockKey, ContentCache};
use crate::content_layout::{ChunkRef, Chunks, Layout, LayoutError, Layouts};
use crate::verify::{self, Mismatch, Verified};

/// Blocks fetched ahead of a sequential reader.
pub const READ_AHEAD: u64 = 4;

/// Chunks of layouts kept in memory (about 48 bytes each): the layouts of many GiB of files.
const LAYOUT_BUDGET: usize = 256 << 10;

/// Why a read of content failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Backend(BackendError),
    #[error("{path}: the server's bytes of {id} failed verification: {why}")]
    Unverified { path: String, id: String, why: Mismatch },
    #[error("{path}: the server's chunk list of {id} does not describe it: {why}")]
    BadLayout { path: String, id: String, why: LayoutError },
}

impl From<BackendError> for ReadError {
    fn from(e: BackendError) -> ReadError {
        ReadError::Backend(e)
    }
}

impl ReadError {
    pub fn errno(&self) -> i32 {
        match self {
            ReadError::Backend(e) => e.errno(),
            ReadError::Unverified { .. } | ReadError::BadLayout { .. } => libc::EIO,
        }
    }
}

pub struct ContentReader {
    backend: Arc<dyn Backend>,
    cache: Arc<ContentCache>,
    layouts: Mutex<Layouts>,
}

/// Block `index` of a content of `size` bytes verified whole.
fn grid_span(size: u64, index: u64) -> Span {
    let start = index * BLOCK;
    Span {
        start,
        len: size.saturating_sub(start).min(BLOCK),
    }
}

/// The key of the gate that makes one reader at a time fetch a whole content or its layout.
fn whole_key(id: &str) -> BlockKey {
    BlockKey::grid(id, u64::MAX)
}

impl ContentReader {
    pub fn new(backend: Arc<dyn Backend>, cache: Arc<ContentCache>) -> ContentReader {
        ContentReader {
            backend,
            cache,
            layouts: Mutex::new(Layouts::new(LAYOUT_BUDGET)),
        }
    }

    /// `len` bytes at `offset` of the content `id` (`size` bytes) found at `path`.
    pub fn read(
        self: &Arc<Self>,
        path: &str,
        id: &str,
        size: u64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, ReadError> {
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        self.read_ahead_if_sequential(path, id, size, offset);
        crate::content_cache::read_range(size, offset, len, |pos| self.piece(path, id, size, pos))
    }

    /// A read that starts in the block after one already in memory continues a sequential
    /// read: fetch the next blocks in the background so the server's round trips overlap the
    /// reader.
    fn read_ahead_if_sequential(self: &Arc<Self>, path: &str, id: &str, size: u64, offset: u64) {
        if size <= BLOCK {
            return;
        }
        let (block, key_of): (u64, fn(&str, u64) -> BlockKey) = if !self.cache.verifying() {
            (offset / BLOCK, BlockKey::grid)
        } else {
            match self.layouts.lock().get(id).as_deref() {
                Some(Layout::Chunked(c)) => match c.block_of(offset) {
                    Some(b) => (b, BlockKey::chunks),
                    None => return,
                },
                // Fetched whole at the first read, or not known yet.
                _ => return,
            }
        };
        if block > 0 && self.cache.has(&key_of(id, block - 1)) {
            self.prefetch(path, id, size, block + 1);
        }
    }

    /// A verified run of bytes of `id` holding byte `pos`, and where it starts.
    fn piece(&self, path: &str, id: &str, size: u64, pos: u64) -> Result<(u64, Arc<Vec<u8>>), ReadError> {
        if !self.cache.verifying() {
            let b = pos / BLOCK;
            let data = self.cache.block(&BlockKey::grid(id, b), grid_span(size, b), || {
                let data = self.backend.read(path, id, b * BLOCK, BLOCK)?;
                Ok::<_, ReadError>(Verified::unchecked_for_benchmark(data))
            })?;
            return Ok((b * BLOCK, data));
        }
        if size <= BLOCK {
            let data = self.cache.block(&BlockKey::grid(id, 0), grid_span(size, 0), || {
                self.fetch_verified(path, id, || {
                    Ok(verify::verify_blob(id, self.backend.read(path, id, 0, BLOCK)?))
                })
            })?;
            return Ok((0, data));
        }
        let known = self.layouts.lock().get(id);
        let layout = match known {
            Some(l) => l,
            None => {
                // Blocks verified whole may be cached already (a file this mount wrote, or a
                // content another server kept whole): no layout is needed for them.
                let b = pos / BLOCK;
                if let Some(data) = self.cache.get(&BlockKey::grid(id, b), grid_span(size, b)) {
                    return Ok((b * BLOCK, data));
                }
                self.load_layout(path, id, size)?
            }
        };
        match &*layout {
            Layout::Chunked(chunks) => {
                let b = chunks.block_of(pos).ok_or_else(|| short(path, id, pos))?;
                self.chunk_block(path, id, chunks, b)
            }
            Layout::Whole => self.whole_block(path, id, size, pos / BLOCK),
        }
    }

    /// Chunk-aligned block `b` of a chunked content, verified chunk by chunk.
    fn chunk_block(&self, path: &str, id: &str, chunks: &Chunks, b: u64) -> Result<(u64, Arc<Vec<u8>>), ReadError> {
        let (start, len, refs) = chunks.block(b).ok_or_else(|| short(path, id, b * BLOCK))?;
        let data = self.cache.block(&BlockKey::chunks(id, b), Span { start, len }, || {
            self.fetch_chunks(path, id, start, len, refs)
        })?;
        Ok((start, data))
    }

    fn fetch_chunks(
        &self,
        path: &str,
        id: &str,
        start: u64,
        len: u64,
        refs: &[ChunkRef],
    ) -> Result<Verified, ReadError> {
        self.fetch_verified(path, id, || {
            Ok(verify::verify_chunks(refs, self.backend.read(path, id, start, len)?))
        })
    }

    /// Block `b` of a content the server keeps whole: fetched and verified whole at the first
    /// miss (one reader at a time), then cached block by block.
    fn whole_block(&self, path: &str, id: &str, size: u64, b: u64) -> Result<(u64, Arc<Vec<u8>>), ReadError> {
        let key = BlockKey::grid(id, b);
        if let Some(data) = self.cache.get(&key, grid_span(size, b)) {
            return Ok((b * BLOCK, data));
        }
        self.cache.one_at_a_time(&whole_key(id), || {
            if let Some(data) = self.cache.get(&key, grid_span(size, b)) {
                return Ok((b * BLOCK, data));
            }
            let whole = self.fetch_verified(path, id, || {
                Ok(verify::verify_blob(id, self.backend.read(path, id, 0, size)?))
            })?;
            let mut wanted = None;
            for (i, part) in whole.split(BLOCK as usize).into_iter().enumerate() {
                let i = i as u64;
                let data = self.cache.put(&BlockKey::grid(id, i), i * BLOCK, part);
                if i == b {
                    wanted = Some(data);
                }
            }
            wanted
                .map(|data| (b * BLOCK, data))
                .ok_or_else(|| short(path, id, b * BLOCK))
        })
    }

    /// Ask the server how `id` is stored (once per content id, one reader at a time).
    fn load_layout(&self, path: &str, id: &str, size: u64) -> Result<Arc<Layout>, ReadError> {
        self.cache.one_at_a_time(&whole_key(id), || {
            if let Some(l) = self.layouts.lock().get(id) {
                return Ok(l);
            }
            let mut attempt = 0;
            let layout = loop {
                attempt += 1;
                let layout = match self.backend.chunks(path, id)? {
                    None => Ok(Layout::Whole),
                    Some(refs) => Chunks::new(refs, size).map(Layout::Chunked),
                };
                match layout {
                    Ok(l) => break Arc::new(l),
                    Err(why) => {
                        self.cache.verification_failed();
                        tracing::warn!(path, id, attempt, error = %why, "the server's chunk list does not describe the content");
                        if attempt >= 2 {
                            return Err(ReadError::BadLayout {
                                path: path.to_owned(),
                                id: id.to_owned(),
                                why,
                            });
                        }
                    }
                }
            };
            self.layouts.lock().insert(id, layout.clone());
            Ok(layout)
        })
    }

    /// `fetch` until it returns verified bytes: a mismatch is logged, counted and fetched once
    /// more; a second one (or bytes that cannot be verified at all) fails the read.
    fn fetch_verified(
        &self,
        path: &str,
        id: &str,
        mut fetch: impl FnMut() -> Result<Result<Verified, Mismatch>, BackendError>,
    ) -> Result<Verified, ReadError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let why = match fetch()? {
                Ok(v) => return Ok(v),
                Err(why) => why,
            };
            self.cache.verification_failed();
            tracing::warn!(path, id, attempt, error = %why, "bytes from the server are not the content asked for; refused");
            if attempt >= 2 || matches!(why, Mismatch::Unverifiable(_)) {
                return Err(ReadError::Unverified {
                    path: path.to_owned(),
                    id: id.to_owned(),
                    why,
                });
            }
        }
    }

    /// Fetch up to [`READ_AHEAD`] blocks of `id` from block `from` into the cache, each on its
    /// own thread (a block being fetched is fetched once: readers wait for it).
    fn prefetch(self: &Arc<Self>, path: &str, id: &str, size: u64, from: u64) {
        let layout = self.layouts.lock().get(id);
        let blocks = size.div_ceil(BLOCK);
        for b in from..blocks.min(from + READ_AHEAD) {
            let key = match layout.as_deref() {
                Some(Layout::Chunked(c)) if c.block(b).is_some() => BlockKey::chunks(id, b),
                Some(_) => continue,
                None => BlockKey::grid(id, b),
            };
            if !self.cache.wanted(&key) {
                continue;
            }
            let (reader, layout) = (self.clone(), layout.clone());
            let (path, id) = (path.to_owned(), id.to_owned());
            let spawned = std::thread::Builder::new()
                .name("aether-readahead".into())
                .spawn(move || {
                    let _ = match layout.as_deref() {
                        Some(Layout::Chunked(c)) => reader.chunk_block(&path, &id, c, b).map(drop),
                        _ => reader.piece(&path, &id, size, b * BLOCK).map(drop),
                    };
                });
            if spawned.is_err() {
                return;
            }
        }
    }

    /// Bytes of a small file that came with a listing (`ListDirs`), kept in memory if they are
    /// the content `id`.
    pub fn accept_inline(&self, path: &str, id: &str, data: Vec<u8>) {
        if data.len() as u64 > BLOCK {
            return;
        }
        let verified = if self.cache.verifying() {
            match verify::verify_blob(id, data) {
                Ok(v) => v,
                Err(why) => {
                    self.cache.verification_failed();
                    tracing::warn!(dir = path, id, error = %why, "bytes that came with a listing are not the content named; refused");
                    return;
                }
            }
        } else {
            Verified::unchecked_for_benchmark(data)
        };
        self.cache.insert(&BlockKey::grid(id, 0), verified);
    }
}

/// Keep the bytes of a file the mount uploaded in memory under the content id the server
/// returned, if they are that content (`false` if not: the server holds something else).
pub fn remember_uploaded(cache: &ContentCache, path: &str, id: &str, data: Vec<u8>) -> bool {
    let verified = if cache.verifying() {
        match verify::verify_blob(id, data) {
            Ok(v) => v,
            Err(why) => {
                cache.verification_failed();
                tracing::warn!(path, id, error = %why, "the server acknowledged an upload with the id of other content");
                return false;
            }
        }
    } else {
        Verified::unchecked_for_benchmark(data)
    };
    for (i, part) in verified.split(BLOCK as usize).into_iter().enumerate() {
        cache.insert(&BlockKey::grid(id, i as u64), part);
    }
    true
}

fn short(path: &str, id: &str, pos: u64) -> ReadError {
    ReadError::Backend(BackendError::Other(format!(
        "{path}: no block of {id} holds byte {pos}"
    )))
}
