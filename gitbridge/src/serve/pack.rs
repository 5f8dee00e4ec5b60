//! The pack writer (gitprotocol-pack / gitformat-pack): a version 2 pack written entry by entry
//! into a byte sink, never held whole in memory. Objects of the object database are written
//! whole and zlib-compressed; a chunked blob is streamed from the chunk store chunk by chunk
//! through the compressor, so its size never matters to memory. The trailing SHA-1 is computed
//! as bytes go out.

use std::io::Write;
use std::sync::Arc;

use std::collections::HashMap;

use aether_core::git_cache::GitCache;
use aether_core::git_view::{PackedEntry, Stored};
use aether_core::objects::Objects;
use aether_core::pack_format::{OFS_DELTA, REF_DELTA, entry_header, header_bytes, ofs_distance};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use gix::ObjectId;
use gix::objs::Kind;
use sha1::{Digest, Sha1};

use super::ServeError;
use super::kept::DeltaHead;
use super::reuse::{Location, PackReuse};
use super::walk::PackObject;

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
    /// Bytes of chunked blobs sent whole (streamed from the chunk store or the zlib cache).
    pub chunked_bytes: u64,
    /// Chunked blobs sent as the delta kept from their import (also counted in `deltas`).
    pub kept_deltas: u32,
    /// The size of the blobs sent as kept deltas.
    pub kept_delta_bytes: u64,
}

/// Largest object for which a thin delta is computed (both it and its base are read whole).
const MAX_THIN_DELTA: u64 = 16 << 20;

/// The delta of `e` against `base` (its previous version, which the client has, see
/// [`super::walk::Plan::bases`]), when it is worth sending: both in the object database and the
/// delta under half the object's size.
fn thin_delta(
    objects: &Objects,
    e: &PackObject,
    base: Option<ObjectId>,
) -> Result<Option<(ObjectId, Vec<u8>)>, ServeError> {
    let Some(base) = base else {
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

/// Which deltas the client reads.
#[derive(Clone, Copy, Debug)]
pub struct Deltas {
    /// Against bases the client has and the pack lacks (`thin-pack`).
    pub thin: bool,
    /// Naming their base by its offset in the pack (`ofs-delta`), else by its id.
    pub ofs: bool,
}

/// Write a pack of `entries` to `sink` (with thin deltas against `bases`, see
/// [`super::walk::Plan::bases`]); `progress` is called every so often with the number of
/// entries written.
pub fn write_pack<W: Write>(
    objects: &Arc<Objects>,
    entries: &[PackObject],
    bases: &HashMap<ObjectId, ObjectId>,
    Deltas { thin, ofs }: Deltas,
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
    let index = EntryIndex::new(entries);
    // Where each entry starts in the pack, by its index in `entries` (0: not written yet).
    let mut written: Vec<u64> = vec![0; entries.len()];
    let written_at = |written: &[u64], oid: &ObjectId| index.find(oid).map(|k| written[k]).filter(|&at| at > 0);
    let mut offset = 12u64;
    let packed = PackReuse::open(&objects.odb.git_dir().join("objects"))?;
    let zcache = objects.git_cache().zlib_dir();
    let delta_dir = objects.git_cache().delta_dir();
    // Stored entries go out in the order of the stored packs, where a delta's base comes first
    // (so deltas go out as OFS_DELTA) and which reads the pack files front to back; everything
    // else (loose objects, chunked blobs) after them, in the plan's order except that the base
    // of a chunked blob's kept delta comes before it.
    let mut stored: Vec<(Location, usize)> = Vec::new();
    let mut rest: Vec<usize> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match e.stored {
            Stored::Odb { .. } => match packed.locate(&e.oid) {
                Some(at) => stored.push((at, i)),
                None => rest.push(i),
            },
            Stored::Chunked { .. } => rest.push(i),
        }
    }
    stored.sort_unstable();
    // Kept deltas whose base the pack also carries (and that is not the blob itself).
    let kept: HashMap<usize, DeltaHead> = rest
        .iter()
        .filter(|k| matches!(entries[**k].stored, Stored::Chunked { .. }))
        .filter_map(|k| {
            let (head, _) = super::kept::open_delta(delta_dir?, &entries[*k].oid)?;
            index.find(&head.base).is_some().then_some((*k, head))
        })
        .collect();
    let (rest, kept) = bases_first(&rest, kept, |k| entries[k].oid);
    let order = stored
        .into_iter()
        .map(|(at, k)| (Some(at), k))
        .chain(rest.into_iter().map(|k| (None, k)));
    for (i, (at, k)) in order.enumerate() {
        let e = &entries[k];
        if i > 0 && i % 1024 == 0 {
            progress(h.inner, i as u32)?;
        }
        let start = offset;
        if thin && let Some((base, delta)) = thin_delta(objects, e, bases.get(&e.oid).copied())? {
            let header = [header_bytes(REF_DELTA, delta.len() as u64), base.as_bytes().to_vec()].concat();
            h.write_all(&header)?;
            let mut counted = Counting { inner: &mut h, n: 0 };
            let mut z = ZlibEncoder::new(&mut counted, Compression::default());
            z.write_all(&delta)?;
            z.finish()?;
            offset += header.len() as u64 + counted.n;
            written[k] = start;
            stats.objects += 1;
            stats.thin += 1;
            continue;
        }
        // A chunked blob whose delta was kept from its import, against a base the client
        // also gets (written before it unless a cycle was broken): sent as that delta.
        if let Some(head) = kept.get(&k)
            && let Some((head, file)) = delta_dir
                .and_then(|d| super::kept::open_delta(d, &e.oid))
                .filter(|(h, _)| h == head)
        {
            let header = match written_at(&written, &head.base).filter(|_| ofs) {
                Some(at) => [header_bytes(OFS_DELTA, head.size), ofs_distance(start - at)].concat(),
                None => [header_bytes(REF_DELTA, head.size), head.base.as_bytes().to_vec()].concat(),
            };
            h.write_all(&header)?;
            super::kept::copy_delta(&head, &file, &mut h)?;
            GitCache::touch(&file);
            offset += header.len() as u64 + head.len;
            written[k] = start;
            stats.objects += 1;
            stats.deltas += 1;
            stats.kept_deltas += 1;
            stats.kept_delta_bytes += e.stored.size();
            continue;
        }
        let reuse = match at {
            Some(at) => Some(packed.entry(&e.oid, at)?),
            None => None,
        };
        match (e.stored, reuse) {
            (_, Some(PackedEntry::Delta { base, size, compressed })) if index.find(&base).is_some() => {
                // A stored delta whose base the client also gets: copied as it is.
                let header = match written_at(&written, &base).filter(|_| ofs) {
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
                let n = super::zcache::write_blob(objects, zcache, &e.oid, size, &mut h)?;
                offset += header.len() as u64 + n;
                stats.chunked_bytes += size;
            }
        }
        written[k] = start;
        stats.objects += 1;
    }
    let digest = h.hasher.finalize();
    h.inner.write_all(&digest)?;
    h.inner.flush()?;
    Ok(stats)
}

/// The entries of a pack by object id, sorted: whether an object is in the pack and which entry
/// it is, by binary search. 24 bytes an entry, where a hash set and a hash map of ids took
/// about 100 (a clone of a million objects held both).
struct EntryIndex(Vec<(ObjectId, u32)>);

impl EntryIndex {
    /// `entries` holds at most `u32::MAX` entries (a pack's count).
    fn new(entries: &[PackObject]) -> EntryIndex {
        let mut by_oid: Vec<(ObjectId, u32)> = entries.iter().enumerate().map(|(k, e)| (e.oid, k as u32)).collect();
        by_oid.sort_unstable_by_key(|(oid, _)| *oid);
        EntryIndex(by_oid)
    }

    fn find(&self, oid: &ObjectId) -> Option<usize> {
        let at = self.0.binary_search_by(|(o, _)| o.cmp(oid)).ok()?;
        Some(self.0[at].1 as usize)
    }
}

/// Order `rest` (indices of entries) so that the base of every kept delta in `kept` that is
/// itself in `rest` comes before it; otherwise the order stays. Each entry has at most one
/// base, so following bases from an entry is a simple walk; a walk that comes back to an entry
/// of its own walk has found a cycle (possible only between deltas kept by different imports),
/// and the delta that closes it is dropped: that blob goes whole. Returns the order and the
/// deltas to send.
fn bases_first(
    rest: &[usize],
    mut kept: HashMap<usize, DeltaHead>,
    oid: impl Fn(usize) -> ObjectId,
) -> (Vec<usize>, HashMap<usize, DeltaHead>) {
    // Nothing to order (every entry but chunked blobs with kept deltas): no maps of `rest`.
    if kept.is_empty() {
        return (rest.to_vec(), kept);
    }
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnWalk,
        Done,
    }
    let position: HashMap<ObjectId, usize> = rest.iter().map(|k| (oid(*k), *k)).collect();
    let mut state: HashMap<usize, State> = rest.iter().map(|k| (*k, State::New)).collect();
    let mut order = Vec::with_capacity(rest.len());
    let mut walk = Vec::new();
    for &start in rest {
        let mut k = start;
        loop {
            match state.get(&k).copied().unwrap_or(State::Done) {
                State::Done => break,
                State::OnWalk => {
                    // `k` is on this walk already: the last entry's delta closes a cycle.
                    if let Some(last) = walk.last() {
                        kept.remove(last);
                    }
                    break;
                }
                State::New => {}
            }
            state.insert(k, State::OnWalk);
            walk.push(k);
            match kept.get(&k).and_then(|d| position.get(&d.base)) {
                Some(base) => k = *base,
                None => break,
            }
        }
        while let Some(k) = walk.pop() {
            state.insert(k, State::Done);
            order.push(k);
        }
    }
    (order, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: usize) -> ObjectId {
        let mut b = [0u8; 20];
        b[0] = n as u8 + 1;
        ObjectId::from_bytes_or_panic(&b)
    }

    fn delta(base: usize) -> DeltaHead {
        DeltaHead {
            base: oid(base),
            size: 10,
            len: 5,
        }
    }

    /// A clone plans one entry per object: a million of them is 40 MB at this size (the thin
    /// deltas' bases live in `Plan::bases`, not in every entry).
    #[test]
    fn a_planned_object_takes_forty_bytes() {
        assert_eq!(std::mem::size_of::<super::PackObject>(), 40);
    }

    #[test]
    fn kept_delta_bases_go_first_and_cycles_are_broken() {
        // 0 -> 2 -> 3 (chain), 1 plain, 4 -> outside `rest` (a stored object written earlier).
        let kept = HashMap::from([(0, delta(2)), (2, delta(3)), (4, delta(9))]);
        let (order, kept) = bases_first(&[0, 1, 2, 3, 4], kept, oid);
        assert_eq!(order, vec![3, 2, 0, 1, 4]);
        assert_eq!(kept.len(), 3, "no delta dropped without a cycle");

        // 5 -> 6 -> 7 -> 5: one delta dropped, and every remaining base comes first.
        let kept = HashMap::from([(5, delta(6)), (6, delta(7)), (7, delta(5)), (8, delta(5))]);
        let (order, kept) = bases_first(&[8, 5, 6, 7], kept, oid);
        assert_eq!(order.len(), 4);
        assert_eq!(kept.len(), 3, "exactly one delta of the cycle goes whole");
        let pos = |k: usize| order.iter().position(|x| *x == k).unwrap();
        for (k, d) in &kept {
            let base = (0..10).find(|b| oid(*b) == d.base).unwrap();
            assert!(pos(base) < pos(*k), "{base} must come before {k} in {order:?}");
        }

        // A blob whose kept delta names itself cannot be sent as a delta.
        let (order, kept) = bases_first(&[0], HashMap::from([(0, delta(0))]), oid);
        assert_eq!((order, kept.len()), (vec![0], 0));
    }
}
