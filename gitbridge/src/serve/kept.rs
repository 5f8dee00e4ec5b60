//! Pack entries of chunked blobs kept from their import.
//!
//! A large blob imported from a repository lives uncompressed in the chunk store, but the
//! repository's pack held it compressed, and often as a delta against a similar blob (git's gc
//! deltifies similar large files: generated headers, firmware, versions of one file). Sending it
//! whole makes the clone carry and the client inflate and hash far more than git's own pack:
//! on the kernel corpus 84 blobs of 351 MB go out in 20.7 MB of git's entries, 47 of them as
//! deltas that the client resolves on its worker threads instead of its single reading thread.
//!
//! So the import keeps each large blob's entry as it was stored, before the quarantine is
//! removed: a whole entry's zlib stream goes into the zlib cache ([`super::zcache`]), where
//! serving copies it like one it compressed itself; a delta goes into `<data>/cache/git-delta`
//! with its base and sizes. A pack that also carries the base sends the blob as that delta
//! ([`super::pack`]); otherwise it goes whole. Both kinds count against the git cache budget
//! ([`GitCache`]); a delta entry removed to stay within it only means the blob goes whole.
//!
//! A delta entry is a header of [`HEADER_LEN`] bytes (magic, base id, inflated delta size,
//! compressed length) and the compressed delta. Entries are written to a temporary file,
//! flushed and renamed into place, and one whose length disagrees with its header is ignored,
//! so a present entry is complete. The delta itself is the one git's `index-pack` resolved and
//! checked when the import fetched it. An entry is only written for a blob that has neither
//! kind of entry yet, so the bases of one import's deltas are that import's objects; a cycle
//! across imports (possible only after entries were removed) is broken when a pack is written.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use aether_core::git_cache::GitCache;
use aether_core::objects::Objects;
use gix::ObjectId;
use gix::objs::Kind;

use super::ServeError;
use super::reuse::{Head, PackReuse};
use super::zcache::TempEntry;

const MAGIC: &[u8; 16] = b"aether-delta-v1\n";
/// Magic, base id, inflated delta size, compressed length.
pub(crate) const HEADER_LEN: usize = 16 + 20 + 8 + 8;

/// A kept delta: its base and the sizes of its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeltaHead {
    pub base: ObjectId,
    /// The inflated delta's size (the pack entry header's size).
    pub size: u64,
    /// Length of the compressed delta that follows the header.
    pub len: u64,
}

fn encode_head(h: &DeltaHead) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..16].copy_from_slice(MAGIC);
    out[16..36].copy_from_slice(h.base.as_bytes());
    out[36..44].copy_from_slice(&h.size.to_be_bytes());
    out[44..52].copy_from_slice(&h.len.to_be_bytes());
    out
}

fn decode_head(b: &[u8; HEADER_LEN]) -> Option<DeltaHead> {
    if &b[..16] != MAGIC {
        return None;
    }
    let base = ObjectId::try_from(&b[16..36]).ok()?;
    let size = u64::from_be_bytes(b[36..44].try_into().ok()?);
    let len = u64::from_be_bytes(b[44..52].try_into().ok()?);
    Some(DeltaHead { base, size, len })
}

/// The kept delta of `oid`, opened, when there is a complete one.
pub(crate) fn open_delta(dir: &Path, oid: &ObjectId) -> Option<(DeltaHead, File)> {
    let file = File::open(GitCache::entry_path(dir, oid)).ok()?;
    let mut raw = [0u8; HEADER_LEN];
    file.read_exact_at(&mut raw, 0).ok()?;
    let head = decode_head(&raw)?;
    let complete = file.metadata().ok()?.len() == HEADER_LEN as u64 + head.len;
    (complete && head.base != *oid).then_some((head, file))
}

/// Copy the compressed delta of an entry opened with [`open_delta`] to `out`.
pub(crate) fn copy_delta<W: Write>(head: &DeltaHead, file: &File, out: &mut W) -> Result<(), ServeError> {
    let mut data = RangeReader {
        file,
        at: HEADER_LEN as u64,
        left: head.len,
    };
    let n = std::io::copy(&mut data, out)?;
    if n != head.len {
        return Err(ServeError::Corrupt(format!(
            "a kept delta ended after {n} of its {} bytes",
            head.len
        )));
    }
    Ok(())
}

/// What [`keep_entries`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Whole entries copied into the zlib cache.
    pub whole: usize,
    /// Delta entries kept.
    pub deltas: usize,
    /// Compressed bytes written, both kinds.
    pub bytes: u64,
}

/// Keep the stored pack entries of `blobs` (chunked blobs and their sizes) found in the packs of the object
/// directory `source` (an import's quarantine), for blobs that have no kept entry of either
/// kind yet. A blob that is not in a pack there is left out. Errors are the caller's to treat
/// as fatal or not: nothing here is needed for correctness.
pub fn keep_entries(objects: &Objects, source: &Path, blobs: &[(ObjectId, u64)]) -> Result<Kept, ServeError> {
    let cache = objects.git_cache();
    let (Some(zdir), Some(ddir)) = (cache.zlib_dir(), cache.delta_dir()) else {
        return Ok(Kept::default());
    };
    let packs = PackReuse::open(source)?;
    let mut kept = Kept::default();
    for (oid, blob_size) in blobs {
        let (zpath, dpath) = (GitCache::entry_path(zdir, oid), GitCache::entry_path(ddir, oid));
        if zpath.exists() || dpath.exists() {
            continue;
        }
        let Some(at) = packs.locate(oid) else {
            continue;
        };
        let (pack, span) = packs.span(oid, at)?;
        let (path, header) = match span.head {
            Head::Whole { kind: Kind::Blob, size } if size == *blob_size => (zpath, None),
            Head::Whole { kind, size } => {
                return Err(ServeError::Corrupt(format!(
                    "{oid} is stored as a {kind} of {size} bytes, not a blob of {blob_size}"
                )));
            }
            Head::Delta { base, size } => (
                dpath,
                Some(encode_head(&DeltaHead {
                    base,
                    size,
                    len: span.len as u64,
                })),
            ),
        };
        let Some(mut tmp) = TempEntry::new(&path) else {
            continue;
        };
        if let Some(h) = &header {
            tmp.file.write_all(h)?;
        }
        let mut data = RangeReader {
            file: pack.data(),
            at: span.data_offset,
            left: span.len as u64,
        };
        let n = std::io::copy(&mut data, &mut std::io::BufWriter::with_capacity(1 << 20, &tmp.file))?;
        if n != span.len as u64 {
            return Err(ServeError::Corrupt(format!("{oid}: its pack entry ended early")));
        }
        if tmp.persist(&path) {
            match header {
                Some(_) => kept.deltas += 1,
                None => kept.whole += 1,
            }
            kept.bytes += n;
            cache.added(n + header.map_or(0, |h| h.len() as u64));
        }
    }
    Ok(kept)
}

/// Reads `left` bytes of `file` from `at`, with positioned reads.
struct RangeReader<'a> {
    file: &'a File,
    at: u64,
    left: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_heads_round_trip_and_reject_other_files() {
        let h = DeltaHead {
            base: ObjectId::from_hex(b"0123456789abcdef0123456789abcdef01234567").unwrap(),
            size: 1 << 33,
            len: 12345,
        };
        let raw = encode_head(&h);
        assert_eq!(decode_head(&raw), Some(h));
        let mut other = raw;
        other[3] ^= 1;
        assert_eq!(decode_head(&other), None);
    }

    #[test]
    fn truncated_or_self_based_entries_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let oid = ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap();
        let base = ObjectId::from_hex(b"2222222222222222222222222222222222222222").unwrap();
        let path = GitCache::entry_path(dir.path(), &oid);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let write = |base: ObjectId, len: u64, body: &[u8]| {
            let mut bytes = encode_head(&DeltaHead { base, size: 99, len }).to_vec();
            bytes.extend_from_slice(body);
            std::fs::write(&path, bytes).unwrap();
        };
        write(base, 4, b"abcd");
        let (head, file) = open_delta(dir.path(), &oid).unwrap();
        assert_eq!((head.base, head.size, head.len), (base, 99, 4));
        let mut out = Vec::new();
        copy_delta(&head, &file, &mut out).unwrap();
        assert_eq!(out, b"abcd");
        write(base, 5, b"abcd");
        assert!(open_delta(dir.path(), &oid).is_none(), "shorter than its header says");
        write(oid, 4, b"abcd");
        assert!(open_delta(dir.path(), &oid).is_none(), "a delta against itself");
    }
}
