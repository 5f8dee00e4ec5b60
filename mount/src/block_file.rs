//! The on-disk form of one cached block: a header naming the block (content id, kind, index, the
//! byte range it holds) and the blake3 of its bytes piece by piece, then the bytes.
//!
//! Reading a block back checks all of it against the block asked for: a file from another
//! format, a header for another block (two files swapped), a wrong length (truncated or
//! extended) or bytes that do not hash to what was recorded are reported as [`Corrupt`], never
//! returned. The header's own hash covers the key, so a file renamed onto another block's name
//! fails even though its bytes match their hashes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::content_cache::{BlockKey, BlockKind};
use crate::verify::{Hash, Piece, Verified};

/// The cache format this code writes; a cache directory of another format is discarded.
pub const FORMAT: u8 = 2;
const MAGIC: [u8; 8] = [b'A', b'E', b'B', b'L', b'O', b'C', b'K', FORMAT];
/// magic 8 | flags 1 | reserved 3 | pieces u32 | start u64 | len u64 | header blake3 32.
const FIXED: usize = 64;
/// len u32 | blake3 32.
const PIECE: usize = 36;
/// Whether the pieces' hashes were recorded (not with verification off).
const CHECKED: u8 = 1;
/// More pieces than any block can have (a block is at most a few MiB of chunks of 64+ bytes).
const MAX_PIECES: u64 = 1 << 20;

/// The bytes `[start, start + len)` of a content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub len: u64,
}

/// Why a block file is not the block asked for.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Corrupt(String),
}

fn corrupt<T>(why: impl Into<String>) -> Result<T, BlockError> {
    Err(BlockError::Corrupt(why.into()))
}

fn header_hash(fixed: &[u8], key: &BlockKey, pieces: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&fixed[..32]);
    h.update(key.id.as_bytes());
    h.update(&[
        0,
        match key.kind {
            BlockKind::Grid => b'g',
            BlockKind::Chunks => b'c',
        },
    ]);
    h.update(&key.index.to_le_bytes());
    h.update(pieces);
    *h.finalize().as_bytes()
}

/// Write block `key`, the bytes `data` at `start` of its content; `pieces` are the blake3 hashes
/// to record (`None`: written unchecked, with verification off; a verifying reader drops it).
pub fn write(
    out: &mut impl Write,
    key: &BlockKey,
    start: u64,
    data: &[u8],
    pieces: Option<&[Piece]>,
) -> io::Result<()> {
    let mut head = vec![0u8; FIXED];
    head[..8].copy_from_slice(&MAGIC);
    head[8] = if pieces.is_some() { CHECKED } else { 0 };
    let pieces = pieces.unwrap_or(&[]);
    head[12..16].copy_from_slice(&(pieces.len() as u32).to_le_bytes());
    head[16..24].copy_from_slice(&start.to_le_bytes());
    head[24..32].copy_from_slice(&(data.len() as u64).to_le_bytes());
    let mut recorded = Vec::with_capacity(pieces.len() * PIECE);
    for p in pieces {
        recorded.extend_from_slice(&p.len.to_le_bytes());
        recorded.extend_from_slice(&p.blake3);
    }
    let hash = header_hash(&head, key, &recorded);
    head[32..].copy_from_slice(&hash);
    head.extend_from_slice(&recorded);
    out.write_all(&head)?;
    out.write_all(data)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// The bytes of block `key` from the file at `path`, if it holds exactly `expect` of the
/// content and (with `check`) its bytes match their recorded hashes.
pub fn read(path: &Path, key: &BlockKey, expect: Span, check: bool) -> Result<Verified, BlockError> {
    let mut f = File::open(path)?;
    let file_len = f.metadata()?.len();
    if file_len < FIXED as u64 {
        return corrupt(format!("{file_len} bytes: shorter than a block header"));
    }
    let mut head = [0u8; FIXED];
    f.read_exact(&mut head)?;
    if head[..8] != MAGIC {
        return corrupt("not a block of this cache format");
    }
    let count = u64::from(u32::from_le_bytes([head[12], head[13], head[14], head[15]]));
    let (start, len) = (u64_at(&head, 16), u64_at(&head, 24));
    if count > MAX_PIECES {
        return corrupt(format!("{count} pieces recorded"));
    }
    let want_len = (FIXED as u64 + count * PIECE as u64).checked_add(len);
    if want_len != Some(file_len) {
        return corrupt(format!(
            "{file_len} bytes where its header describes {}",
            want_len.map_or_else(|| "an impossible length".into(), |l| l.to_string())
        ));
    }
    let mut recorded = vec![0u8; count as usize * PIECE];
    f.read_exact(&mut recorded)?;
    if header_hash(&head, key, &recorded)[..] != head[32..] {
        return corrupt("its header names another block or is damaged");
    }
    if (start, len) != (expect.start, expect.len) {
        return corrupt(format!(
            "it holds bytes {start}..{} where {}..{} were expected",
            start + len,
            expect.start,
            expect.start + expect.len
        ));
    }
    let mut data = vec![0u8; len as usize];
    f.read_exact(&mut data)?;
    if !check {
        return Ok(Verified::checked_by_cache(data, None));
    }
    if head[8] & CHECKED == 0 {
        return corrupt("it was written without hashes (verification off)");
    }
    let mut pieces = Vec::with_capacity(count as usize);
    let mut at = 0usize;
    for r in recorded.chunks_exact(PIECE) {
        let plen = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let end = at.saturating_add(plen as usize);
        if end > data.len() {
            return corrupt("its pieces run past its bytes");
        }
        let mut blake3 = [0u8; 32];
        blake3.copy_from_slice(&r[4..]);
        if *blake3::hash(&data[at..end]).as_bytes() != blake3 {
            return corrupt(format!(
                "the bytes at {} do not match their recorded hash",
                start + at as u64
            ));
        }
        pieces.push(Piece { len: plen, blake3 });
        at = end;
    }
    if at != data.len() {
        return corrupt("its pieces do not cover its bytes");
    }
    Ok(Verified::checked_by_cache(data, Some(pieces)))
}
