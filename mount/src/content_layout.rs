//! How a content's bytes split into cache blocks, so that every block can be verified on its own.
//!
//! A content the server keeps whole is verified whole (its git blob id) and cached in blocks of
//! [`BLOCK`] bytes. A chunked content (large files: FastCDC chunks addressed by blake3) is cached
//! in chunk-aligned blocks: block `i` holds the chunks whose offset falls in
//! `[i * BLOCK, (i + 1) * BLOCK)`, so each block is whole chunks, verified chunk by chunk, and
//! fetched with no byte more than the reader needs.

use std::sync::Arc;

use lru::LruCache;

use crate::content_cache::BLOCK;
use crate::verify::Hash;

/// One chunk of a chunked content, from the server's extents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub offset: u64,
    pub len: u32,
    pub blake3: Hash,
}

/// Why a chunk list cannot describe a content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("chunk {index} starts at {offset}, where {expected} was expected")]
    Gap { index: usize, offset: u64, expected: u64 },
    #[error("chunk {index} is empty")]
    Empty { index: usize },
    #[error("the chunks hold {got} bytes of a {size}-byte content")]
    Size { size: u64, got: u64 },
}

/// The chunks of one content, in order, checked to cover it exactly.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunks {
    refs: Vec<ChunkRef>,
    size: u64,
}

impl Chunks {
    pub fn new(refs: Vec<ChunkRef>, size: u64) -> Result<Chunks, LayoutError> {
        let mut expected = 0u64;
        for (index, c) in refs.iter().enumerate() {
            if c.offset != expected {
                return Err(LayoutError::Gap {
                    index,
                    offset: c.offset,
                    expected,
                });
            }
            if c.len == 0 {
                return Err(LayoutError::Empty { index });
            }
            expected += u64::from(c.len);
        }
        if expected != size {
            return Err(LayoutError::Size { size, got: expected });
        }
        Ok(Chunks { refs, size })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn len(&self) -> usize {
        self.refs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// The block holding byte `pos` (the block of the chunk that holds it).
    pub fn block_of(&self, pos: u64) -> Option<u64> {
        if pos >= self.size {
            return None;
        }
        let chunk = self.refs.partition_point(|c| c.offset <= pos).checked_sub(1)?;
        Some(self.refs[chunk].offset / BLOCK)
    }

    /// Block `index`: where it starts, how long it is and its chunks; `None` when no chunk
    /// starts in its range (a chunk longer than a block covers it from the block before).
    pub fn block(&self, index: u64) -> Option<(u64, u64, &[ChunkRef])> {
        let lo = index.checked_mul(BLOCK)?;
        let hi = lo.saturating_add(BLOCK);
        let first = self.refs.partition_point(|c| c.offset < lo);
        let last = self.refs.partition_point(|c| c.offset < hi);
        if first == last {
            return None;
        }
        let refs = &self.refs[first..last];
        let start = refs[0].offset;
        let end = refs[refs.len() - 1].offset + u64::from(refs[refs.len() - 1].len);
        Some((start, end - start, refs))
    }
}

/// How a content is cached.
#[derive(Debug, PartialEq, Eq)]
pub enum Layout {
    /// Kept whole by the server: verified whole by its git blob id, cached in [`BLOCK`]s.
    Whole,
    Chunked(Chunks),
}

/// Layouts by content id, least recently used dropped past a budget of chunks (a layout
/// describes content that never changes, so a dropped one is only fetched again).
pub struct Layouts {
    lru: LruCache<Arc<str>, Arc<Layout>>,
    chunks: usize,
    budget: usize,
}

impl Layouts {
    pub fn new(budget_chunks: usize) -> Layouts {
        Layouts {
            lru: LruCache::unbounded(),
            chunks: 0,
            budget: budget_chunks,
        }
    }

    pub fn get(&mut self, id: &str) -> Option<Arc<Layout>> {
        self.lru.get(id).cloned()
    }

    pub fn insert(&mut self, id: &str, layout: Arc<Layout>) {
        let weight = |l: &Layout| match l {
            Layout::Whole => 1,
            Layout::Chunked(c) => c.len().max(1),
        };
        self.chunks += weight(&layout);
        if let Some(old) = self.lru.put(Arc::from(id), layout) {
            self.chunks -= weight(&old);
        }
        while self.chunks > self.budget && self.lru.len() > 1 {
            match self.lru.pop_lru() {
                Some((_, old)) => self.chunks -= weight(&old),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(lens: &[u32]) -> Chunks {
        let mut offset = 0;
        let refs = lens
            .iter()
            .map(|&len| {
                let c = ChunkRef {
                    offset,
                    len,
                    blake3: [0; 32],
                };
                offset += u64::from(len);
                c
            })
            .collect();
        Chunks::new(refs, offset).unwrap()
    }

    #[test]
    fn blocks_are_the_chunks_starting_in_each_mebibyte() {
        let m = BLOCK as u32;
        // Chunks at 0, 0.75M (it ends in the second mebibyte), 1.25M, 2.5M (longer than a
        // block: block 3 has no chunk of its own) and 4.1M.
        let c = chunks(&[m / 4 * 3, m / 2, m / 4 * 5, m / 10 * 16, m / 2]);
        let (s0, l0, r0) = c.block(0).unwrap();
        assert_eq!((s0, l0, r0.len()), (0, u64::from(m / 4 * 5), 2));
        let (s1, _, r1) = c.block(1).unwrap();
        assert_eq!((s1, r1.len()), (u64::from(m / 4 * 5), 1));
        assert!(c.block(3).is_none());
        // A byte is in the block of its chunk, even where that chunk started a block earlier.
        assert_eq!(c.block_of(BLOCK + 10), Some(0));
        assert_eq!(c.block_of(3 * BLOCK + 10), Some(2));
        assert_eq!(c.block_of(c.size()), None);
        // Every byte is in exactly one block, and the blocks tile the content.
        let mut at = 0;
        for i in 0..c.size().div_ceil(BLOCK) {
            if let Some((start, len, _)) = c.block(i) {
                assert_eq!(start, at);
                at += len;
            }
        }
        assert_eq!(at, c.size());
    }

    #[test]
    fn a_chunk_list_that_does_not_tile_the_content_is_refused() {
        let r = |offset, len| ChunkRef {
            offset,
            len,
            blake3: [0; 32],
        };
        assert!(matches!(
            Chunks::new(vec![r(0, 10), r(11, 5)], 16),
            Err(LayoutError::Gap { index: 1, .. })
        ));
        assert!(matches!(Chunks::new(vec![r(0, 10)], 11), Err(LayoutError::Size { .. })));
        assert!(matches!(
            Chunks::new(vec![r(0, 0)], 0),
            Err(LayoutError::Empty { index: 0 })
        ));
    }
}
