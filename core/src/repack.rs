//! Packing the object database: loose objects go into a pack, and packs that hold garbage or
//! are small are rewritten into it, so the database stays a few files however many objects
//! sessions write, and packed garbage is reclaimed.
//!
//! One pass writes one new pack: first the entries of the packs it rewrites, in their order and
//! copied as stored (a delta stays a delta while its base comes along; one whose base is left
//! out is written whole), then the loose objects. The pack is synced and installed before
//! anything it replaces is removed, so every object stays readable throughout.
//!
//! Without liveness (background packing) nothing is left out: every entry of a rewritten pack
//! and every loose object goes into the new pack. With liveness (a collection), an entry of a
//! pack older than the grace period that nothing reaches is left out: it is garbage, and the
//! collection removes the old pack under its delete gate, after writing back loose whatever a
//! write found or referenced meanwhile (see `gc`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use gix::ObjectId;
use gix::odb::pack;
use gix::odb::pack::data::entry::Header;

use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::pack_write::PackWriter;
use crate::store_error::{StoreError, StoreKind};

/// Packs smaller than this are merged into the next pack written (when there is more than one,
/// or loose objects to pack): the number of packs grows with the database's size over this,
/// not with the number of packing passes.
pub(crate) const SMALL_PACK: u64 = 128 << 20;
/// A pack old enough to collect is rewritten once this fraction (1/n) of its bytes is garbage.
const GARBAGE_SHARE: u64 = 10;
/// zlib level of objects written whole into a pack.
const LEVEL: u32 = 1;

/// What a collection knows: what is reachable, and before when a pack is old enough that what
/// nothing reaches in it is garbage.
pub(crate) struct Liveness<'a> {
    pub live: &'a HashSet<ObjectId>,
    pub cutoff: SystemTime,
}

/// A pack in the pack directory.
pub(crate) struct OldPack {
    pub idx: PathBuf,
    pub bytes: u64,
    modified: SystemTime,
    index: pack::index::File,
    data: pack::data::File,
    /// `(offset, oid, stored length)` of every entry, by offset, made when first asked.
    entries: std::cell::OnceCell<Vec<(u64, ObjectId, u64)>>,
}

impl OldPack {
    /// `(offset, oid, stored length)` of every entry, by offset.
    fn entries(&self) -> &[(u64, ObjectId, u64)] {
        self.entries.get_or_init(|| {
            let mut v: Vec<(u64, ObjectId)> = self.index.iter().map(|e| (e.pack_offset, e.oid)).collect();
            v.sort_unstable_by_key(|e| e.0);
            let end = self.data.pack_end() as u64;
            (0..v.len())
                .map(|i| {
                    let next = v.get(i + 1).map_or(end, |n| n.0);
                    (v[i].0, v[i].1, next.saturating_sub(v[i].0))
                })
                .collect()
        })
    }

    /// The entry starting at `offset`: its object and stored length.
    fn entry_at(&self, offset: u64) -> Option<(ObjectId, u64)> {
        let entries = self.entries();
        let i = entries.binary_search_by_key(&offset, |e| e.0).ok()?;
        Some((entries[i].1, entries[i].2))
    }
}

fn store_io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Store(StoreError::io(StoreKind::Objects, context)(e))
}

/// Every pack of `pack_dir` that can be rewritten (one with a `.keep` file is left alone, as
/// git does; one that cannot be opened is left alone with a warning).
pub(crate) fn list_packs(pack_dir: &Path) -> Result<Vec<OldPack>> {
    let listing = match std::fs::read_dir(pack_dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(store_io("listing packs".into())(e)),
    };
    let mut out = Vec::new();
    for entry in listing {
        let idx = entry.map_err(store_io("listing packs".into()))?.path();
        if idx.extension().is_none_or(|e| e != "idx") || idx.with_extension("keep").exists() {
            continue;
        }
        let pack_path = idx.with_extension("pack");
        let opened = (|| {
            let meta = std::fs::metadata(&pack_path).map_err(|e| e.to_string())?;
            let index = pack::index::File::at(&idx, gix::hash::Kind::Sha1).map_err(|e| e.to_string())?;
            let data = pack::data::File::at(&pack_path, gix::hash::Kind::Sha1).map_err(|e| e.to_string())?;
            Ok::<_, String>(OldPack {
                idx: idx.clone(),
                bytes: meta.len(),
                modified: meta.modified().unwrap_or_else(|_| SystemTime::now()),
                index,
                data,
                entries: Default::default(),
            })
        })();
        match opened {
            Ok(p) => out.push(p),
            Err(e) => tracing::warn!(pack = %idx.display(), error = %e, "a pack cannot be opened; it is left as it is"),
        }
    }
    out.sort_by(|a, b| a.idx.cmp(&b.idx));
    Ok(out)
}

/// Remove what a crash left in `pack_dir`: files a pass was writing, and packs without an index
/// (a pass removes the index first) older than `cutoff` and than an hour (a git import moves a
/// pack in just before its index). Call with the packing lock held.
pub(crate) fn remove_leftovers(pack_dir: &Path, cutoff: SystemTime) -> Result<()> {
    let Ok(listing) = std::fs::read_dir(pack_dir) else {
        return Ok(());
    };
    let cutoff = cutoff.min(SystemTime::now() - std::time::Duration::from_secs(3600));
    for entry in listing.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan = path.extension().is_some_and(|e| e == "pack")
            && !path.with_extension("idx").exists()
            && entry.metadata().and_then(|m| m.modified()).is_ok_and(|m| m < cutoff);
        if name.starts_with(crate::pack_write::TEMP_PREFIX) || orphan {
            tracing::info!(file = %path.display(), "removing what an interrupted packing left");
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(store_io(format!("removing {}", path.display()))(e)),
            }
        }
    }
    Ok(())
}

/// A pass's plan, then its outcome: the pack written, and what it replaces.
#[derive(Default)]
pub(crate) struct Repacked {
    /// The new pack's index, when one was written.
    pub written: Option<PathBuf>,
    /// Its objects, and of those how many were loose.
    pub objects: u64,
    pub loose_packed: u64,
    /// Packs it replaces (removed by [`Repacked::remove_replaced`]) and their bytes.
    pub replaced: Vec<PathBuf>,
    pub replaced_bytes: u64,
    /// Loose objects it holds (their files removed with the replaced packs) and their bytes.
    pub loose_files: Vec<ObjectId>,
    objects_dir: PathBuf,
    pub loose_bytes: u64,
    /// Entries of the replaced packs left out as garbage, and their stored bytes.
    pub dropped: HashSet<ObjectId>,
    pub dropped_bytes: u64,
    /// Bytes of the new pack.
    pub written_bytes: u64,
}

/// What one pass would do: which packs it rewrites, and which loose objects it packs.
struct Plan<'p> {
    rewrite: Vec<&'p OldPack>,
    loose: Vec<(ObjectId, u64)>,
}

/// Choose what a pass rewrites. `loose` are the loose objects to pack (when at least
/// `min_loose` of them); packs holding a tenth or more garbage are rewritten, small ones are
/// merged.
fn plan<'p>(
    packs: &'p [OldPack],
    loose: Vec<(ObjectId, u64)>,
    min_loose: usize,
    liveness: Option<&Liveness<'_>>,
) -> Plan<'p> {
    let loose = if loose.len() >= min_loose.max(1) {
        loose
    } else {
        Vec::new()
    };
    let garbage = |p: &OldPack| -> u64 {
        let Some(l) = liveness else { return 0 };
        if p.modified >= l.cutoff {
            return 0;
        }
        p.entries()
            .iter()
            .filter(|(_, oid, _)| !l.live.contains(oid))
            .map(|e| e.2)
            .sum()
    };
    let small = packs.iter().filter(|p| p.bytes < SMALL_PACK).count();
    let merge_small = small > 1 || !loose.is_empty();
    let rewrite = packs
        .iter()
        .filter(|p| {
            let g = garbage(p);
            (g > 0 && g * GARBAGE_SHARE >= p.bytes) || (merge_small && p.bytes < SMALL_PACK)
        })
        .collect();
    Plan { rewrite, loose }
}

/// Write one pack (see the module docs): the loose objects `loose` (id, file size) not already
/// in a pack that stays, and the packs the plan rewrites. Nothing is removed here.
pub(crate) fn write_pack(
    objects: &Objects,
    packs: &[OldPack],
    loose: Vec<(ObjectId, u64)>,
    min_loose: usize,
    liveness: Option<&Liveness<'_>>,
    dry_run: bool,
) -> Result<Repacked> {
    let plan = plan(packs, loose, min_loose, liveness);
    let rewritten: HashSet<&Path> = plan.rewrite.iter().map(|p| p.idx.as_path()).collect();
    let staying: Vec<&OldPack> = packs.iter().filter(|p| !rewritten.contains(p.idx.as_path())).collect();
    let in_staying = |oid: &ObjectId| staying.iter().any(|p| p.index.lookup(oid).is_some());
    let objects_dir = objects.odb.git_dir().join("objects");

    let mut out = Repacked {
        objects_dir: objects_dir.clone(),
        ..Repacked::default()
    };
    // The entries kept, in order: (pack, offset, oid, stored length).
    let mut kept: Vec<(&OldPack, u64, ObjectId)> = Vec::new();
    let mut planned: HashSet<ObjectId> = HashSet::new();
    let mut dropped: HashMap<ObjectId, u64> = HashMap::new();
    for p in &plan.rewrite {
        let old = liveness.is_some_and(|l| p.modified < l.cutoff);
        for &(offset, oid, len) in p.entries() {
            let garbage = old && liveness.is_some_and(|l| !l.live.contains(&oid));
            if garbage {
                dropped.entry(oid).or_insert(len);
            } else if !in_staying(&oid) && planned.insert(oid) {
                kept.push((p, offset, oid));
            }
        }
        out.replaced.push(p.idx.clone());
        out.replaced_bytes += p.bytes;
    }
    let nothing = plan.rewrite.is_empty() && plan.loose.is_empty();
    let mut loose = Vec::new();
    for (oid, size) in plan.loose {
        out.loose_files.push(oid);
        out.loose_bytes += size;
        if !in_staying(&oid) && planned.insert(oid) {
            loose.push(oid);
        }
    }
    // An object dropped from one pack but kept in another (or loose) is not garbage.
    dropped.retain(|oid, _| !planned.contains(oid) && !in_staying(oid));
    out.dropped_bytes = dropped.values().sum();
    out.dropped = dropped.into_keys().collect();
    out.objects = (kept.len() + loose.len()) as u64;
    out.loose_packed = loose.len() as u64;
    if dry_run || nothing || out.objects == 0 {
        // Only garbage and duplicates: nothing to write, the old files just go.
        return Ok(out);
    }
    let count = u32::try_from(out.objects)
        .map_err(|_| Error::Internal(format!("{} objects do not fit one pack", out.objects)))?;
    let mut w = PackWriter::create(&objects_dir.join("pack"), count, LEVEL)?;
    let repo = objects.odb.repo();
    for (p, offset, oid) in kept {
        copy_entry(&mut w, &repo, p, offset, oid)?;
    }
    for oid in loose {
        let (kind, data) = match crate::loose::read(&objects_dir, &oid)? {
            Some(found) => found,
            // Rewritten by a duplicate write just now, or packed: read it wherever it is.
            None => {
                let obj = crate::odb::find_object(&repo, &oid, None, "object")?;
                (obj.kind, obj.detach().data)
            }
        };
        w.whole(oid, kind, &data)?;
    }
    let idx = w.finish()?;
    out.written_bytes = std::fs::metadata(idx.with_extension("pack")).map_or(0, |m| m.len());
    // A pass that rewrote a single pack into an identical one replaces nothing.
    out.replaced.retain(|r| *r != idx);
    out.written = Some(idx);
    Ok(out)
}

/// Copy the entry at `offset` of `p` (object `oid`) into `w`: as stored when it is whole or its
/// delta base is already in `w`, else resolved and written whole.
fn copy_entry(w: &mut PackWriter, repo: &gix::Repository, p: &OldPack, offset: u64, oid: ObjectId) -> Result<()> {
    let corrupt = |why: String| Error::Store(StoreError::corrupt(StoreKind::Objects, why));
    let entry = p
        .data
        .entry(offset)
        .map_err(|e| corrupt(format!("pack {}: entry at {offset}: {e}", p.idx.display())))?;
    let (_, len) = p
        .entry_at(offset)
        .ok_or_else(|| corrupt(format!("pack {}: no entry at {offset}", p.idx.display())))?;
    let end = offset + len;
    let compressed = p
        .data
        .entry_slice(entry.data_offset..end)
        .ok_or_else(|| corrupt(format!("pack {}: entry at {offset} runs past its end", p.idx.display())))?;
    let base = match entry.header {
        Header::OfsDelta { base_distance } => entry
            .checked_base_pack_offset(base_distance)
            .and_then(|o| p.entry_at(o))
            .and_then(|(b, _)| w.offset_of(&b)),
        Header::RefDelta { base_id } => w.offset_of(&base_id),
        _ => {
            let kind = entry.header.as_kind().expect("a whole entry");
            return w.raw(oid, kind, entry.decompressed_size, compressed);
        }
    };
    match base {
        Some(base) => w.raw_delta(oid, base, entry.decompressed_size, compressed),
        None => {
            let obj = crate::odb::find_object(repo, &oid, None, "object")?;
            let kind = obj.kind;
            w.whole(oid, kind, &obj.detach().data)
        }
    }
}

impl Repacked {
    /// Remove the packs and loose files the new pack replaces (it is installed already).
    pub fn remove_replaced(&self) -> Result<()> {
        for idx in &self.replaced {
            // The index first: readers find packs by it.
            for path in [idx.clone(), idx.with_extension("pack"), idx.with_extension("rev")] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(store_io(format!("removing {}", path.display()))(e)),
                }
            }
        }
        for oid in &self.loose_files {
            let f = crate::loose::path(&self.objects_dir, oid);
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(store_io(format!("removing {}", f.display()))(e)),
            }
        }
        Ok(())
    }
}

/// What a packing pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PackReport {
    /// Loose objects moved into the pack written.
    pub loose_objects_packed: u64,
    /// Objects in the pack written (0: none was).
    pub objects: u64,
    pub packs_written: u64,
    /// Packs merged into it and removed.
    pub packs_removed: u64,
    pub pack_bytes: u64,
    pub duration_ms: u64,
}

impl crate::engine::Engine {
    /// Pack loose objects when there are about `min_loose` or more (estimated from a few of the
    /// 256 fan-out directories, as git does, see `loose::estimate`), merging small packs into the new one. Nothing is
    /// left out: no object stops being readable. One pass at a time, never during a collection's
    /// sweep.
    pub async fn pack_objects(&self, min_loose: u64) -> Result<PackReport> {
        let objects = self.inner.objects.clone();
        crate::blocking::blocking(move || {
            let started = std::time::Instant::now();
            let _packing = objects.gc.packing();
            let objects_dir = objects.odb.git_dir().join("objects");
            let mut report = PackReport::default();
            if crate::loose::estimate(&objects_dir, min_loose) < min_loose {
                return Ok(report);
            }
            let packs = list_packs(&objects_dir.join("pack"))?;
            let loose: Vec<_> = crate::loose::list(&objects_dir)?
                .into_iter()
                .map(|(oid, size, _)| (oid, size))
                .collect();
            let min = usize::try_from(min_loose).unwrap_or(usize::MAX);
            let repacked = write_pack(&objects, &packs, loose, min, None, false)?;
            drop(packs);
            repacked.remove_replaced()?;
            if !repacked.replaced.is_empty() {
                objects.odb.packs_removed();
            }
            report.loose_objects_packed = repacked.loose_packed;
            report.objects = repacked.objects;
            report.packs_written = u64::from(repacked.written.is_some());
            report.packs_removed = repacked.replaced.len() as u64;
            report.pack_bytes = repacked.written_bytes;
            report.duration_ms = started.elapsed().as_millis() as u64;
            if report.packs_written > 0 {
                tracing::info!(
                    loose = report.loose_objects_packed,
                    objects = report.objects,
                    packs_merged = report.packs_removed,
                    bytes = report.pack_bytes,
                    ms = report.duration_ms,
                    "packed loose objects"
                );
            }
            Ok(report)
        })
        .await
    }
}

/// The object database's files: loose objects and packs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectFiles {
    pub loose: u64,
    pub packs: u64,
}

impl crate::engine::Engine {
    /// How many loose objects and packs the object database holds now (lists its fan-out
    /// directories: call it rarely).
    pub async fn object_files(&self) -> Result<ObjectFiles> {
        let objects_dir = self.inner.objects.odb.git_dir().join("objects");
        crate::blocking::blocking(move || {
            let loose = crate::loose::list(&objects_dir)?.len() as u64;
            let packs = std::fs::read_dir(objects_dir.join("pack"))
                .map(|d| {
                    d.flatten()
                        .filter(|f| f.path().extension().is_some_and(|e| e == "idx"))
                        .count() as u64
                })
                .unwrap_or(0);
            Ok(ObjectFiles { loose, packs })
        })
        .await
    }
}
