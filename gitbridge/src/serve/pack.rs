//! The pack writer (gitprotocol-pack / gitformat-pack): a version 2 pack written entry by entry
//! into a byte sink, never held whole in memory. Objects of the object database are written
//! whole and zlib-compressed; a chunked blob is streamed from the chunk store chunk by chunk
//! through the compressor, so its size never matters to memory. The trailing SHA-1 is computed
//! as bytes go out.

use std::io::Write;
use std::sync::Arc;

use std::collections::{HashMap, HashSet};

use aether_core::git_view::{PackedEntry, Stored};
use aether_core::objects::Objects;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use gix::ObjectId;
use gix::objs::Kind;
use sha1::{Digest, Sha1};

use super::ServeError;
use super::reuse::{Location, PackReuse};
use super::walk::PackObject;

/// Pack type numbers.
fn type_number(kind: Kind) -> u8 {
    match kind {
        Kind::Commit => 1,
        Kind::Tree => 2,
        Kind::Blob => 3,
        Kind::Tag => 4,
    }
}

const OFS_DELTA: u8 = 6;
const REF_DELTA: u8 = 7;

/// The entry header: type and size as git's variable-length integer.
pub fn entry_header(kind: Kind, size: u64) -> Vec<u8> {
    header_bytes(type_number(kind), size)
}

fn header_bytes(type_number: u8, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    let mut byte = (type_number << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        out.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(byte);
    out
}

/// The OFS_DELTA base distance encoding (big-endian 7-bit groups, each continuation adding one).
fn ofs_distance(mut d: u64) -> Vec<u8> {
    let mut out = vec![(d & 0x7f) as u8];
    d >>= 7;
    while d > 0 {
        d -= 1;
        out.push(0x80 | (d & 0x7f) as u8);
        d >>= 7;
    }
    out.reverse();
    out
}

/// Hashes and counts everything written through it.
struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hasher: Sha1,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Counts bytes written through it.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Statistics of a written pack.
#[derive(Debug, Default, Clone, Copy)]
pub struct PackStats {
    pub objects: u32,
    /// Entries copied from the object database's packs as stored deltas.
    pub deltas: u32,
    /// Entries copied from packs without recompression (whole objects).
    pub reused: u32,
    /// Entries sent as new deltas against an object the client has (thin packs).
    pub thin: u32,
    pub chunked_bytes: u64,
}

/// Largest object for which a thin delta is computed (both it and its base are read whole).
const MAX_THIN_DELTA: u64 = 16 << 20;

/// The delta of `e` against its [`PackObject::base`] (the previous version, which the client
/// has), when it is worth sending: both in the object database and the delta under half the
/// object's size.
fn thin_delta(objects: &Objects, e: &PackObject) -> Result<Option<(ObjectId, Vec<u8>)>, ServeError> {
    let Some(base) = e.base else {
        return Ok(None);
    };
    let small = |s: Option<Stored>| matches!(s, Some(Stored::Odb { size, .. }) if size <= MAX_THIN_DELTA);
    if !small(Some(e.stored)) || !small(objects.stored(&base)?) {
        return Ok(None);
    }
    let (kind, target) = objects.raw_object(&e.oid)?;
    let (base_kind, base_data) = objects.raw_object(&base)?;
    if kind != base_kind {
        return Ok(None);
    }
    let delta = super::delta::encode(&base_data, &target);
    Ok((delta.len() < target.len() / 2).then_some((base, delta)))
}

/// Write a pack of `objects` to `sink`; `progress` is called every so often with the number of
/// entries written.
pub fn write_pack<W: Write>(
    objects: &Arc<Objects>,
    entries: &[PackObject],
    thin: bool,
    sink: &mut W,
    progress: &mut dyn FnMut(&mut W, u32) -> std::io::Result<()>,
) -> Result<PackStats, ServeError> {
    let count =
        u32::try_from(entries.len()).map_err(|_| ServeError::Protocol("too many objects for one pack".into()))?;
    let mut stats = PackStats::default();
    let mut h = Hashing {
        inner: sink,
        hasher: Sha1::new(),
    };
    h.write_all(b"PACK")?;
    h.write_all(&2u32.to_be_bytes())?;
    h.write_all(&count.to_be_bytes())?;
    let in_pack: HashSet<ObjectId> = entries.iter().map(|e| e.oid).collect();
    let mut written: HashMap<ObjectId, u64> = HashMap::with_capacity(entries.len());
    let mut offset = 12u64;
    let packed = PackReuse::open(&objects.odb.git_dir().join("objects"))?;
    let zcache = super::zcache::dir(objects);
    // Stored entries go out in the order of the stored packs, where a delta's base comes first
    // (so deltas go out as OFS_DELTA) and which reads the pack files front to back; everything
    // else (loose objects, chunked blobs) after them, in the plan's order.
    let mut order: Vec<(Option<Location>, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| match e.stored {
            Stored::Odb { .. } => (packed.locate(&e.oid), i),
            Stored::Chunked { .. } => (None, i),
        })
        .collect();
    order.sort_unstable_by_key(|(at, i)| (at.is_none(), *at, *i));
    for (i, (at, k)) in order.into_iter().enumerate() {
        let e = &entries[k];
        if i > 0 && i % 1024 == 0 {
            progress(h.inner, i as u32)?;
        }
        let start = offset;
        if thin && let Some((base, delta)) = thin_delta(objects, e)? {
            let header = [header_bytes(REF_DELTA, delta.len() as u64), base.as_bytes().to_vec()].concat();
            h.write_all(&header)?;
            let mut counted = Counting { inner: &mut h, n: 0 };
            let mut z = ZlibEncoder::new(&mut counted, Compression::default());
            z.write_all(&delta)?;
            z.finish()?;
            offset += header.len() as u64 + counted.n;
            written.insert(e.oid, start);
            stats.objects += 1;
            stats.thin += 1;
            continue;
        }
        let reuse = match at {
            Some(at) => Some(packed.entry(&e.oid, at)?),
            None => None,
        };
        match (e.stored, reuse) {
            (_, Some(PackedEntry::Delta { base, size, compressed })) if in_pack.contains(&base) => {
                // A stored delta whose base the client also gets: copied as it is.
                let header = match written.get(&base) {
                    Some(at) => [header_bytes(OFS_DELTA, size), ofs_distance(start - at)].concat(),
                    None => [header_bytes(REF_DELTA, size), base.as_bytes().to_vec()].concat(),
                };
                h.write_all(&header)?;
                h.write_all(&compressed)?;
                offset += (header.len() + compressed.len()) as u64;
                stats.deltas += 1;
            }
            (_, Some(PackedEntry::Whole { kind, size, compressed })) => {
                let header = entry_header(kind, size);
                h.write_all(&header)?;
                h.write_all(&compressed)?;
                offset += (header.len() + compressed.len()) as u64;
                stats.reused += 1;
            }
            (Stored::Odb { .. }, _) => {
                let (kind, data) = objects.raw_object(&e.oid)?;
                let header = entry_header(kind, data.len() as u64);
                h.write_all(&header)?;
                let mut counted = Counting { inner: &mut h, n: 0 };
                let mut z = ZlibEncoder::new(&mut counted, Compression::default());
                z.write_all(&data)?;
                z.finish()?;
                offset += header.len() as u64 + counted.n;
            }
            (Stored::Chunked { size }, _) => {
                let header = entry_header(Kind::Blob, size);
                h.write_all(&header)?;
                let n = super::zcache::write_blob(objects, zcache.as_deref(), &e.oid, size, &mut h)?;
                offset += header.len() as u64 + n;
                stats.chunked_bytes += size;
            }
        }
        written.insert(e.oid, start);
        stats.objects += 1;
    }
    let digest = h.hasher.finalize();
    h.inner.write_all(&digest)?;
    h.inner.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_headers_follow_the_pack_format() {
        assert_eq!(entry_header(Kind::Commit, 5), vec![0x15]);
        assert_eq!(entry_header(Kind::Blob, 16), vec![0xb0, 0x01]);
        // 2 GiB: 4 bits, then 7-bit groups.
        let h = entry_header(Kind::Blob, 1 << 31);
        assert_eq!(h[0] & 0x70, 0x30);
        let mut size = u64::from(h[0] & 0x0f);
        let mut shift = 4;
        for b in &h[1..] {
            size |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        assert_eq!(size, 1 << 31);
        assert!(h[..h.len() - 1].iter().all(|b| b & 0x80 != 0));
    }

    #[test]
    fn ofs_delta_distances_use_gits_offset_encoding() {
        assert_eq!(ofs_distance(5), vec![5]);
        assert_eq!(ofs_distance(127), vec![127]);
        // 128 = ((0 + 1) << 7) + 0: one continuation byte 0x80, then 0x00.
        assert_eq!(ofs_distance(128), vec![0x80, 0x00]);
        let decode = |b: &[u8]| {
            let mut v = u64::from(b[0] & 0x7f);
            for x in &b[1..] {
                v = ((v + 1) << 7) | u64::from(x & 0x7f);
            }
            v
        };
        for d in [1u64, 300, 16_511, 16_512, 1 << 30] {
            assert_eq!(decode(&ofs_distance(d)), d);
        }
    }
}
