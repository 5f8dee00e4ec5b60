//! What proves that bytes are the content the mount asked for: a whole content hashes to its git
//! blob id (SHA-1 of `blob <len>\0<bytes>`), a chunk of a chunked content to the blake3 id the
//! server's extents give it.
//!
//! [`Verified`] is what the content cache stores and serves; outside this module only the
//! cache's own disk check (a block file that passed its recorded hashes) and the benchmark-only
//! switch that turns verification off make one without checking bytes.

use sha1::{Digest, Sha1};

use crate::content_layout::ChunkRef;

/// A blake3 hash.
pub type Hash = [u8; 32];

/// A run of bytes and its blake3 hash, as the disk cache records a block: the chunks of a
/// chunked content, or a whole block of a content verified whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub len: u32,
    pub blake3: Hash,
}

/// Bytes proven to belong to the content they are cached under, with the blake3 pieces
/// computed while proving it (`None` when the proof was a git blob id).
#[derive(Debug)]
pub struct Verified {
    data: Vec<u8>,
    pieces: Option<Vec<Piece>>,
}

/// Why bytes are not the content asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("{0:?} is not a git SHA-1 blob id: the bytes cannot be verified")]
    Unverifiable(String),
    #[error("the bytes hash to blob {got}, not {want}")]
    WrongBlob { want: String, got: String },
    #[error("{got} bytes where the chunks hold {want}")]
    WrongLength { want: u64, got: u64 },
    #[error("the chunk at offset {offset} does not hash to its blake3 id")]
    WrongChunk { offset: u64 },
}

impl Verified {
    /// The bytes and their blake3 pieces, if they were computed.
    pub fn into_parts(self) -> (Vec<u8>, Option<Vec<Piece>>) {
        (self.data, self.pieces)
    }

    /// Bytes read back from a disk cache block whose recorded hashes they matched (the cache's
    /// check, `block_file`), or, with verification off, read without a check.
    pub(crate) fn checked_by_cache(data: Vec<u8>, pieces: Option<Vec<Piece>>) -> Verified {
        Verified { data, pieces }
    }

    /// Bytes taken as they came: only with verification turned off for a benchmark
    /// (`AETHER_BENCH_UNVERIFIED_READS`), never otherwise.
    pub(crate) fn unchecked_for_benchmark(data: Vec<u8>) -> Verified {
        Verified { data, pieces: None }
    }

    /// A verified whole content as consecutive blocks of `block` bytes (the last one shorter).
    pub fn split(self, block: usize) -> Vec<Verified> {
        if self.data.len() <= block {
            return vec![self];
        }
        self.data
            .chunks(block)
            .map(|c| Verified {
                data: c.to_vec(),
                pieces: None,
            })
            .collect()
    }
}

/// The git blob id of `data`, lowercase hex.
pub fn git_blob_id(data: &[u8]) -> String {
    hex(&blob_sha1(data))
}

fn blob_sha1(data: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    h.finalize().into()
}

/// `data` if it is the whole content `id` (a git SHA-1 blob id).
pub fn verify_blob(id: &str, data: Vec<u8>) -> Result<Verified, Mismatch> {
    let Some(want) = unhex::<20>(id) else {
        return Err(Mismatch::Unverifiable(id.to_owned()));
    };
    let got = blob_sha1(&data);
    if got != want {
        return Err(Mismatch::WrongBlob {
            want: id.to_owned(),
            got: hex(&got),
        });
    }
    Ok(Verified { data, pieces: None })
}

/// `data` if it is exactly the chunks `chunks`, back to back.
pub fn verify_chunks(chunks: &[ChunkRef], data: Vec<u8>) -> Result<Verified, Mismatch> {
    let want: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
    if data.len() as u64 != want {
        return Err(Mismatch::WrongLength {
            want,
            got: data.len() as u64,
        });
    }
    let mut pieces = Vec::with_capacity(chunks.len());
    let mut at = 0usize;
    for c in chunks {
        let end = at + c.len as usize;
        if *blake3::hash(&data[at..end]).as_bytes() != c.blake3 {
            return Err(Mismatch::WrongChunk { offset: c.offset });
        }
        pieces.push(Piece {
            len: c.len,
            blake3: c.blake3,
        });
        at = end;
    }
    Ok(Verified {
        data,
        pieces: Some(pieces),
    })
}

/// One blake3 piece per `u32::MAX` bytes of `data` (cache blocks are far smaller: one piece).
pub fn pieces_of(data: &[u8]) -> Vec<Piece> {
    data.chunks(u32::MAX as usize)
        .map(|c| Piece {
            len: c.len() as u32,
            blake3: *blake3::hash(c).as_bytes(),
        })
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// `N` bytes from exactly `2 * N` hex digits (either case).
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(git_blob_id(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(git_blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        assert!(verify_blob("CE013625030BA8DBA906F756967F9E9CA394464A", b"hello\n".to_vec()).is_ok());
        assert!(matches!(
            verify_blob("ce013625030ba8dba906f756967f9e9ca394464a", b"hellO\n".to_vec()),
            Err(Mismatch::WrongBlob { .. })
        ));
        assert!(matches!(
            verify_blob("ce0136", b"hello\n".to_vec()),
            Err(Mismatch::Unverifiable(_))
        ));
    }

    #[test]
    fn chunks_must_match_one_by_one_and_in_length() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 7) as u8).collect();
        let refs = [
            ChunkRef {
                offset: 0,
                len: 600,
                blake3: *blake3::hash(&data[..600]).as_bytes(),
            },
            ChunkRef {
                offset: 600,
                len: 400,
                blake3: *blake3::hash(&data[600..]).as_bytes(),
            },
        ];
        let v = verify_chunks(&refs, data.clone()).unwrap();
        assert_eq!(v.into_parts().1.unwrap().len(), 2);
        let mut flipped = data.clone();
        flipped[700] ^= 1;
        assert_eq!(
            verify_chunks(&refs, flipped).unwrap_err(),
            Mismatch::WrongChunk { offset: 600 }
        );
        assert!(matches!(
            verify_chunks(&refs, data[..999].to_vec()),
            Err(Mismatch::WrongLength { want: 1000, got: 999 })
        ));
    }
}
