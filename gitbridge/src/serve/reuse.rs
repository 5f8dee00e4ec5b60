//! Stored pack entries, read for reuse without decompressing them. The object database's pack
//! files are opened directly (the index memory-mapped, the data read with `pread`, so a clone
//! does not map the packs a second time next to the object database's own mapping); an entry's
//! compressed bytes end where the next entry of its pack starts, found in a table of the pack's
//! offsets built the first time the pack is used. (The object database's own lookup inflates
//! every entry to find its end: half the time of a clone went there.)
//!
//! Read only: packs are immutable once installed, and one opened for a request stays mapped
//! until the request ends even if it is removed meanwhile. Objects in packs added after
//! [`PackReuse::open`] and loose objects are simply not found; the writer then sends them whole.

use std::cell::OnceCell;
use std::os::unix::fs::FileExt;
use std::path::Path;

use aether_core::git_view::PackedEntry;
use gix::ObjectId;
use gix::objs::Kind;
use gix::odb::pack;
use gix::odb::pack::data::entry::Header;

use super::ServeError;

pub struct Pack {
    index: pack::index::File,
    data: std::fs::File,
    /// Where the last entry ends (the trailing checksum starts).
    end: u64,
    modified: Option<std::time::SystemTime>,
    /// `(offset, index position)` of every entry, by offset: where entries end, and which
    /// object an OFS_DELTA's base is.
    by_offset: OnceCell<Vec<(u64, u32)>>,
}

/// The packs of one object database, for one request.
pub struct PackReuse {
    packs: Vec<Pack>,
}

fn corrupt(what: String) -> ServeError {
    ServeError::Corrupt(what)
}

impl PackReuse {
    /// Open every pack in `<objects_dir>/pack`. A pack that cannot be opened is left out (its
    /// objects go out whole) with a warning.
    pub fn open(objects_dir: &Path) -> Result<PackReuse, ServeError> {
        let dir = objects_dir.join("pack");
        let mut packs = Vec::new();
        let listing = match std::fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PackReuse { packs }),
            Err(e) => return Err(e.into()),
        };
        for entry in listing {
            let idx = entry?.path();
            if idx.extension().is_none_or(|e| e != "idx") {
                continue;
            }
            let opened = pack::index::File::at(&idx, gix::hash::Kind::Sha1)
                .map_err(|e| e.to_string())
                .and_then(|index| {
                    let data = std::fs::File::open(idx.with_extension("pack")).map_err(|e| e.to_string())?;
                    let meta = data.metadata().map_err(|e| e.to_string())?;
                    Ok((index, data, meta))
                });
            match opened {
                Ok((index, data, meta)) if meta.len() >= 32 => packs.push(Pack {
                    index,
                    data,
                    end: meta.len() - 20,
                    modified: meta.modified().ok(),
                    by_offset: OnceCell::new(),
                }),
                Ok(_) => tracing::warn!(pack = %idx.display(), "pack left out of entry reuse: too short"),
                Err(e) => tracing::warn!(pack = %idx.display(), error = %e, "pack left out of entry reuse"),
            }
        }
        // Newest first: a fresh import's pack is the likeliest to hold what is asked for.
        packs.sort_by_key(|p| std::cmp::Reverse(p.modified));
        Ok(PackReuse { packs })
    }

    /// Where `oid` is stored: which pack, its position in that pack's index, and its offset.
    pub fn locate(&self, oid: &ObjectId) -> Option<Location> {
        self.packs.iter().enumerate().find_map(|(pack, p)| {
            p.index.lookup(oid).map(|index| Location {
                pack,
                offset: p.index.pack_offset_at_index(index),
                index,
            })
        })
    }

    /// The stored entry of `oid` at `at` (from [`Self::locate`]).
    pub fn entry(&self, oid: &ObjectId, at: Location) -> Result<PackedEntry, ServeError> {
        let (p, span) = self.span(oid, at)?;
        let mut compressed = vec![0u8; span.len];
        p.data.read_exact_at(&mut compressed, span.data_offset)?;
        Ok(match span.head {
            Head::Delta { base, size } => PackedEntry::Delta { base, size, compressed },
            Head::Whole { kind, size } => PackedEntry::Whole { kind, size, compressed },
        })
    }

    /// What the stored entry of `oid` at `at` is, and where its compressed bytes lie, without
    /// reading them (an entry may be gigabytes).
    pub fn span(&self, oid: &ObjectId, at: Location) -> Result<(&Pack, Span), ServeError> {
        let p = self
            .packs
            .get(at.pack)
            .ok_or_else(|| corrupt(format!("{oid}: internal: no pack {}", at.pack)))?;
        Ok((p, p.span_at(oid, at.index)?))
    }
}

/// A stored entry's header: a whole object or a delta against `base` (`size`: the inflated
/// size of the object or of the delta data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    Whole { kind: Kind, size: u64 },
    Delta { base: ObjectId, size: u64 },
}

/// A stored entry: its header and where its compressed bytes are in the pack file.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub head: Head,
    pub data_offset: u64,
    pub len: usize,
}

/// A stored entry's place; ordered by pack, then offset (the order to read packs in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pack: usize,
    offset: u64,
    index: u32,
}

impl Pack {
    fn by_offset(&self) -> &[(u64, u32)] {
        self.by_offset.get_or_init(|| {
            let mut table: Vec<(u64, u32)> = self
                .index
                .iter()
                .enumerate()
                .map(|(i, e)| (e.pack_offset, i as u32))
                .collect();
            table.sort_unstable();
            table
        })
    }

    /// The pack file, to read a [`Span`] from.
    pub fn data(&self) -> &std::fs::File {
        &self.data
    }

    fn span_at(&self, oid: &ObjectId, i: u32) -> Result<Span, ServeError> {
        let offset = self.index.pack_offset_at_index(i);
        let table = self.by_offset();
        let at = table
            .binary_search_by_key(&offset, |(o, _)| *o)
            .map_err(|_| corrupt(format!("{oid}: offset {offset} is not in its pack's index")))?;
        let end = table.get(at + 1).map_or(self.end, |(o, _)| *o);
        let len = end
            .checked_sub(offset)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| corrupt(format!("{oid}: pack entry out of bounds")))?;
        // The header (type and size, then a delta's base: at most 32 bytes), then exactly the
        // compressed data.
        let mut head = [0u8; 32];
        let head = &mut head[..len.min(32)];
        self.data.read_exact_at(head, offset)?;
        let entry = pack::data::Entry::from_bytes(head, offset, gix::hash::Kind::Sha1)
            .map_err(|e| corrupt(format!("{oid}: bad pack entry header: {e}")))?;
        let header = entry.header_size();
        let data_len = len
            .checked_sub(header)
            .ok_or_else(|| corrupt(format!("{oid}: pack entry shorter than its header")))?;
        let size = entry.decompressed_size;
        let head = match entry.header {
            Header::RefDelta { base_id } => Head::Delta { base: base_id, size },
            Header::OfsDelta { base_distance } => {
                let base_offset = entry
                    .checked_base_pack_offset(base_distance)
                    .ok_or_else(|| corrupt(format!("{oid}: delta base offset out of the pack")))?;
                let pos = table
                    .binary_search_by_key(&base_offset, |(o, _)| *o)
                    .map_err(|_| corrupt(format!("{oid}: no entry at its delta base offset {base_offset}")))?;
                Head::Delta {
                    base: self.index.oid_at_index(table[pos].1).to_owned(),
                    size,
                }
            }
            whole => Head::Whole {
                kind: whole
                    .as_kind()
                    .ok_or_else(|| corrupt(format!("{oid}: a pack entry of no object kind")))?,
                size,
            },
        };
        Ok(Span {
            head,
            data_offset: offset + header as u64,
            len: data_len,
        })
    }
}
