//! The chunk store: content-defined chunks of large files, addressed by blake3, appended to pack
//! files of many chunks, plus one manifest per large file keyed by the file's git blob id.
//!
//! It owns bytes only; it never decides what is large (that is `ingest`) and never knows about
//! sessions. [`ChunkStore`] is the seam where an object-storage backend plugs in later.
//!
//! Pack file layout (`chunks/packs/pack-NNNNNNNN.chunks`): an 8-byte magic, then records of
//! `len: u32 LE | blake3: [u8; 32] | data`. A sealed pack gets a sidecar index
//! (`pack-NNNNNNNN.idx`) so opening never scans it; the one active pack is scanned on open and a
//! torn tail record (a writer killed mid-append) is cut off. Records are written with plain
//! `write` calls and no user-space buffer, so a returned `put` survives the process being killed.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gix::ObjectId;
use parking_lot::{Mutex, RwLock};

mod memory;

pub use memory::MemoryChunkStore;

use crate::error::{Error, Result};
use crate::store_error::{StoreError, StoreKind};

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let f = StoreError::io(StoreKind::Chunks, context);
    move |e| Error::Store(f(e))
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::Store(StoreError::corrupt(StoreKind::Chunks, what))
}

pub type ChunkHash = [u8; 32];

const PACK_MAGIC: &[u8; 8] = b"AECHNK01";
const IDX_MAGIC: &[u8; 8] = b"AECIDX01";
const MANIFEST_MAGIC: &[u8; 8] = b"AEMANI01";
const RECORD_HEADER: u64 = 4 + 32;

/// One chunk of a large file, as stored in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestChunk {
    pub hash: ChunkHash,
    pub len: u32,
}

/// The chunks that make up one large file, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub chunks: Vec<ManifestChunk>,
    /// `offsets[i]` is where chunk `i` starts in the file.
    offsets: Vec<u64>,
    pub size: u64,
}

/// Where a chunk of a file sits, for `stat`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
    /// blake3 of the chunk, hex.
    pub blake3: String,
}

impl Manifest {
    pub fn new(chunks: Vec<ManifestChunk>) -> Self {
        let mut offsets = Vec::with_capacity(chunks.len());
        let mut size = 0u64;
        for c in &chunks {
            offsets.push(size);
            size += u64::from(c.len);
        }
        Manifest { chunks, offsets, size }
    }

    /// Indices of the chunks that cover `[offset, offset + len)`.
    pub fn covering(&self, offset: u64, len: u64) -> std::ops::Range<usize> {
        if len == 0 || offset >= self.size {
            return 0..0;
        }
        let end = offset.saturating_add(len).min(self.size);
        let first = self.offsets.partition_point(|&o| o <= offset) - 1;
        let last = self.offsets.partition_point(|&o| o < end);
        first..last
    }

    pub fn offset_of(&self, index: usize) -> u64 {
        self.offsets[index]
    }

    pub fn extents(&self) -> Vec<Extent> {
        self.chunks
            .iter()
            .zip(&self.offsets)
            .map(|(c, &offset)| Extent {
                offset,
                length: u64::from(c.len),
                blake3: hex(&c.hash),
            })
            .collect()
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.chunks.len() * 36);
        out.extend_from_slice(MANIFEST_MAGIC);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&c.hash);
            out.extend_from_slice(&c.len.to_le_bytes());
        }
        out
    }

    fn decode(data: &[u8]) -> Result<Self> {
        let bad = || corrupt("undecodable chunk manifest");
        if data.len() < 20 || &data[..8] != MANIFEST_MAGIC {
            return Err(bad());
        }
        let size = u64::from_le_bytes(data[8..16].try_into().map_err(|_| bad())?);
        let count = u32::from_le_bytes(data[16..20].try_into().map_err(|_| bad())?) as usize;
        let body = &data[20..];
        if body.len() != count * 36 {
            return Err(bad());
        }
        let chunks = body
            .chunks_exact(36)
            .map(|r| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&r[..32]);
                ManifestChunk {
                    hash,
                    len: u32::from_le_bytes([r[32], r[33], r[34], r[35]]),
                }
            })
            .collect();
        let m = Manifest::new(chunks);
        if m.size != size {
            return Err(bad());
        }
        Ok(m)
    }
}

pub use crate::ids::hex;

/// Counters for observability and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    pub chunks: u64,
    pub stored_bytes: u64,
}

/// Storage of chunks and manifests. Implementations must make a returned `put_*` durable
/// against a crash of the process.
pub trait ChunkStore: Send + Sync {
    /// Store a chunk; returns false when it was already present (nothing written).
    fn put_chunk(&self, hash: &ChunkHash, data: &[u8]) -> Result<bool>;
    fn has_chunk(&self, hash: &ChunkHash) -> bool;
    /// The chunk's bytes, verified against its hash.
    fn get_chunk(&self, hash: &ChunkHash) -> Result<Vec<u8>>;
    fn put_manifest(&self, blob: &ObjectId, manifest: &Manifest) -> Result<()>;
    fn get_manifest(&self, blob: &ObjectId) -> Result<Option<Manifest>>;
    /// False when `blob` certainly has no manifest (answered from memory): a store that cannot
    /// tell so cheaply says true, and `get_manifest` decides.
    fn may_have_manifest(&self, _blob: &ObjectId) -> bool {
        true
    }
    /// Make `blob`'s manifest as young as if written now (a write that found it stored: see
    /// `gc_barrier`).
    fn freshen_manifest(&self, blob: &ObjectId) -> Result<()>;
    fn stats(&self) -> ChunkStats;
    /// Every blob with a manifest, with the time its manifest was written or freshened (`None`
    /// when the store does not know: a collection then treats it as old).
    fn manifest_ids(&self) -> Result<Vec<(ObjectId, Option<std::time::SystemTime>)>>;
    /// Remove `blob`'s manifest; the bytes freed (0 when it had none).
    fn delete_manifest(&self, blob: &ObjectId) -> Result<u64>;
    /// Remove every chunk `keep` refuses, rewriting the packs that hold them (their live chunks
    /// move to the active pack, the old files are deleted). With `dry_run`, only count. The
    /// caller holds the collection's delete gate: no chunk is written meanwhile.
    fn compact(&self, keep: &mut dyn FnMut(&ChunkHash) -> bool, dry_run: bool) -> Result<Compacted>;
    /// Forget chunks an ingest stored and then abandoned (its upload failed or its client
    /// left). The caller guarantees nothing references them: no manifest, and no other ingest
    /// that found them already stored (see `Objects`'s staging). Afterwards `has_chunk` is false
    /// for each; the bytes are freed where the store can do it at once, and otherwise left as
    /// dead space for a compaction. Unknown hashes are ignored.
    fn discard(&self, hashes: &[ChunkHash]) -> Result<()>;
}

/// What a compaction removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// Chunks no longer stored, and their bytes.
    pub chunks: u64,
    pub chunk_bytes: u64,
    /// Pack files rewritten, and the bytes on disk freed (dead chunks, and dead space left by
    /// abandoned uploads).
    pub packs: u64,
    pub disk_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Location {
    pack: u32,
    /// Offset of the chunk data (after the record header).
    offset: u64,
    len: u32,
}

struct ActivePack {
    seq: u32,
    file: File,
    size: u64,
    /// Records of this pack, for its sidecar index when it is sealed.
    records: Vec<(ChunkHash, Location)>,
}

/// The local-filesystem chunk store.
pub struct PackChunkStore {
    dir: PathBuf,
    target_pack_size: u64,
    index: RwLock<HashMap<ChunkHash, Location>>,
    readers: RwLock<HashMap<u32, Arc<File>>>,
    active: Mutex<ActivePack>,
    stats: Mutex<ChunkStats>,
    /// Blob ids that have a manifest, so asking about a small blob costs no file system call.
    manifests: RwLock<HashSet<ObjectId>>,
}

impl PackChunkStore {
    pub fn open(dir: &Path, target_pack_size: u64) -> Result<Self> {
        let packs = dir.join("packs");
        fs::create_dir_all(&packs).map_err(io_err("creating the chunk pack directory"))?;
        fs::create_dir_all(dir.join("manifests")).map_err(io_err("creating the manifest directory"))?;
        let mut seqs: Vec<u32> = fs::read_dir(&packs)
            .map_err(io_err("listing chunk packs"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("pack-")?.strip_suffix(".chunks")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();

        let mut index = HashMap::new();
        let mut readers = HashMap::new();
        let mut stats = ChunkStats::default();
        let mut unsealed = Vec::new();
        for &seq in &seqs {
            let path = pack_path(&packs, seq);
            let records = match read_sidecar(&idx_path(&packs, seq))? {
                Some(records) => records,
                None => {
                    unsealed.push(seq);
                    scan_pack(&path, seq)?
                }
            };
            for (hash, loc) in records {
                stats.chunks += 1;
                stats.stored_bytes += u64::from(loc.len);
                index.insert(hash, loc);
            }
            let file = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
            readers.insert(seq, Arc::new(file));
        }
        // Seal every unsealed pack except the newest, which stays active.
        let active_seq = match unsealed.pop() {
            Some(seq) if seqs.last() == Some(&seq) => seq,
            Some(seq) => {
                unsealed.push(seq);
                seqs.last().map_or(0, |s| s + 1)
            }
            None => seqs.last().map_or(0, |s| s + 1),
        };
        for seq in unsealed {
            let records: Vec<_> = index
                .iter()
                .filter(|(_, l)| l.pack == seq)
                .map(|(h, l)| (*h, *l))
                .collect();
            write_sidecar(&idx_path(&packs, seq), &records)?;
        }
        let active = open_active(&packs, active_seq, &index)?;
        let manifests = list_manifests(&dir.join("manifests"))?;
        readers.insert(active_seq, Arc::new(reopen_for_read(&packs, active_seq)?));
        Ok(PackChunkStore {
            dir: dir.to_path_buf(),
            target_pack_size,
            index: RwLock::new(index),
            readers: RwLock::new(readers),
            active: Mutex::new(active),
            stats: Mutex::new(stats),
            manifests: RwLock::new(manifests),
        })
    }

    fn manifest_path(&self, blob: &ObjectId) -> PathBuf {
        let hex = blob.to_hex().to_string();
        self.dir.join("manifests").join(&hex[..2]).join(&hex[2..])
    }

    fn seal_and_rotate(&self, active: &mut ActivePack) -> Result<()> {
        let packs = self.dir.join("packs");
        write_sidecar(&idx_path(&packs, active.seq), &active.records)?;
        let next = active.seq + 1;
        *active = open_active(&packs, next, &HashMap::new())?;
        self.readers
            .write()
            .insert(next, Arc::new(reopen_for_read(&packs, next)?));
        Ok(())
    }
}

/// Every blob id with a manifest file (`manifests/ab/cdef…`).
fn list_manifests(dir: &Path) -> Result<HashSet<ObjectId>> {
    let mut out = HashSet::new();
    for fan in fs::read_dir(dir).map_err(io_err("listing manifests"))? {
        let fan = fan.map_err(io_err("listing manifests"))?;
        let prefix = fan.file_name().to_string_lossy().into_owned();
        if prefix.len() != 2 || !fan.path().is_dir() {
            continue;
        }
        for f in fs::read_dir(fan.path()).map_err(io_err("listing manifests"))? {
            let name = f
                .map_err(io_err("listing manifests"))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if let Ok(oid) = ObjectId::from_hex(format!("{prefix}{name}").as_bytes()) {
                out.insert(oid);
            }
        }
    }
    Ok(out)
}

fn pack_path(packs: &Path, seq: u32) -> PathBuf {
    packs.join(format!("pack-{seq:08}.chunks"))
}

fn idx_path(packs: &Path, seq: u32) -> PathBuf {
    packs.join(format!("pack-{seq:08}.idx"))
}

fn reopen_for_read(packs: &Path, seq: u32) -> Result<File> {
    let path = pack_path(packs, seq);
    File::open(&path).map_err(io_err(format!("opening {}", path.display())))
}

fn open_active(packs: &Path, seq: u32, index: &HashMap<ChunkHash, Location>) -> Result<ActivePack> {
    let path = pack_path(packs, seq);
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    let mut size = file.metadata().map_err(io_err("reading pack size"))?.len();
    if size == 0 {
        file.write_all(PACK_MAGIC).map_err(io_err("writing pack header"))?;
        size = PACK_MAGIC.len() as u64;
    }
    let records = index
        .iter()
        .filter(|(_, l)| l.pack == seq)
        .map(|(h, l)| (*h, *l))
        .collect();
    Ok(ActivePack {
        seq,
        file,
        size,
        records,
    })
}

/// Read every record header of a pack; cut a torn tail off.
fn scan_pack(path: &Path, seq: u32) -> Result<Vec<(ChunkHash, Location)>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("opening a pack to scan"))?;
    let len = file.metadata().map_err(io_err("reading pack size"))?.len();
    let mut magic = [0u8; 8];
    if len < 8 {
        file.set_len(0).map_err(io_err("truncating an empty pack"))?;
        return Ok(Vec::new());
    }
    file.read_exact_at(&mut magic, 0)
        .map_err(io_err("reading pack header"))?;
    if &magic != PACK_MAGIC {
        return Err(corrupt(format!("{} is not a chunk pack", path.display())));
    }
    let mut records = Vec::new();
    let mut pos = 8u64;
    let mut header = [0u8; RECORD_HEADER as usize];
    while pos + RECORD_HEADER <= len {
        file.read_exact_at(&mut header, pos)
            .map_err(io_err("reading a chunk record"))?;
        let clen = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let data_at = pos + RECORD_HEADER;
        if data_at + u64::from(clen) > len {
            break;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&header[4..]);
        records.push((
            hash,
            Location {
                pack: seq,
                offset: data_at,
                len: clen,
            },
        ));
        pos = data_at + u64::from(clen);
    }
    if pos != len {
        tracing::warn!(pack = %path.display(), kept = pos, len, "cutting a torn record off a chunk pack");
        file.set_len(pos).map_err(io_err("truncating a torn pack"))?;
    }
    Ok(records)
}

fn write_sidecar(path: &Path, records: &[(ChunkHash, Location)]) -> Result<()> {
    let mut out = Vec::with_capacity(12 + records.len() * 44);
    out.extend_from_slice(IDX_MAGIC);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (hash, loc) in records {
        out.extend_from_slice(hash);
        out.extend_from_slice(&loc.offset.to_le_bytes());
        out.extend_from_slice(&loc.len.to_le_bytes());
    }
    write_atomic(path, &out)
}

fn read_sidecar(path: &Path) -> Result<Option<Vec<(ChunkHash, Location)>>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading a pack index")(e)),
    };
    let seq: u32 = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("pack-")?.strip_suffix(".idx")?.parse().ok())
        .ok_or_else(|| corrupt("bad pack index name"))?;
    if data.len() < 12 || &data[..8] != IDX_MAGIC {
        return Ok(None);
    }
    let count = u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize;
    let body = &data[12..];
    if body.len() != count * 44 {
        return Ok(None);
    }
    Ok(Some(
        body.chunks_exact(44)
            .map(|r| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&r[..32]);
                let offset = u64::from_le_bytes(r[32..40].try_into().unwrap_or_default());
                let len = u32::from_le_bytes([r[40], r[41], r[42], r[43]]);
                (hash, Location { pack: seq, offset, len })
            })
            .collect(),
    ))
}

/// Write a file so that readers see either nothing or all of it.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::InvalidArgument("path without parent".into()))?;
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), crate::ids::random_suffix()));
    let mut f = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    f.write_all(data)
        .map_err(io_err(format!("writing {}", tmp.display())))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(format!("renaming into {}", path.display())))
}

impl PackChunkStore {
    /// Append chunk `hash` to the active pack (rotating it when full) and index it there.
    fn append(&self, active: &mut ActivePack, hash: &ChunkHash, data: &[u8], len: u32) -> Result<()> {
        if active.size >= self.target_pack_size {
            self.seal_and_rotate(active)?;
        }
        let mut header = [0u8; RECORD_HEADER as usize];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(hash);
        let start = active.size;
        // Header and data in two writes (no copy of the chunk); a process killed between them
        // leaves a torn record that the next open cuts off.
        if let Err(e) = active
            .file
            .write_all(&header)
            .and_then(|()| active.file.write_all(data))
        {
            // Leave no partial record behind for the next append.
            let _ = active.file.set_len(start);
            return Err(io_err("appending a chunk")(e));
        }
        active.size += RECORD_HEADER + data.len() as u64;
        let loc = Location {
            pack: active.seq,
            offset: start + RECORD_HEADER,
            len,
        };
        active.records.push((*hash, loc));
        self.index.write().insert(*hash, loc);
        Ok(())
    }
}

impl ChunkStore for PackChunkStore {
    fn put_chunk(&self, hash: &ChunkHash, data: &[u8]) -> Result<bool> {
        let len = u32::try_from(data.len()).map_err(|_| Error::InvalidArgument("chunk too large".into()))?;
        let mut active = self.active.lock();
        if self.index.read().contains_key(hash) {
            return Ok(false);
        }
        self.append(&mut active, hash, data, len)?;
        let mut stats = self.stats.lock();
        stats.chunks += 1;
        stats.stored_bytes += u64::from(len);
        Ok(true)
    }

    fn has_chunk(&self, hash: &ChunkHash) -> bool {
        self.index.read().contains_key(hash)
    }

    fn manifest_ids(&self) -> Result<Vec<(ObjectId, Option<std::time::SystemTime>)>> {
        let ids: Vec<ObjectId> = self.manifests.read().iter().copied().collect();
        Ok(ids
            .into_iter()
            .map(|id| {
                let age = fs::metadata(self.manifest_path(&id)).and_then(|m| m.modified()).ok();
                (id, age)
            })
            .collect())
    }

    fn delete_manifest(&self, blob: &ObjectId) -> Result<u64> {
        let path = self.manifest_path(blob);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.manifests.write().remove(blob);
        match fs::remove_file(&path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err("removing a manifest")(e)),
        }
    }

    fn compact(&self, keep: &mut dyn FnMut(&ChunkHash) -> bool, dry_run: bool) -> Result<Compacted> {
        let packs = self.dir.join("packs");
        let mut active = self.active.lock();
        // Every record by pack, and what each pack file holds on disk.
        let mut by_pack: HashMap<u32, Vec<(ChunkHash, Location)>> = HashMap::new();
        for (h, l) in self.index.read().iter() {
            by_pack.entry(l.pack).or_default().push((*h, *l));
        }
        let mut seqs: Vec<u32> = self.readers.read().keys().copied().collect();
        seqs.sort_unstable();
        let mut out = Compacted::default();
        let mut rewrite = Vec::new();
        for seq in seqs {
            let records = by_pack.remove(&seq).unwrap_or_default();
            let on_disk = if seq == active.seq {
                active.size
            } else {
                fs::metadata(pack_path(&packs, seq)).map(|m| m.len()).unwrap_or(0)
            };
            let (live, dead): (Vec<_>, Vec<_>) = records.into_iter().partition(|(h, _)| keep(h));
            let live_bytes: u64 = live.iter().map(|(_, l)| RECORD_HEADER + u64::from(l.len)).sum();
            let slack = on_disk.saturating_sub(live_bytes + PACK_MAGIC.len() as u64);
            if dead.is_empty() && slack == 0 {
                continue;
            }
            out.chunks += dead.len() as u64;
            out.chunk_bytes += dead.iter().map(|(_, l)| u64::from(l.len)).sum::<u64>();
            out.packs += 1;
            out.disk_bytes += slack;
            rewrite.push((seq, live, dead));
        }
        if dry_run || rewrite.is_empty() {
            return Ok(out);
        }
        // The active pack is rewritten too: seal it, so the records copied go to a new one.
        if rewrite.iter().any(|(seq, _, _)| *seq == active.seq) {
            self.seal_and_rotate(&mut active)?;
        }
        for (seq, live, dead) in rewrite {
            let file = self.readers.read().get(&seq).cloned();
            let Some(file) = file else { continue };
            for (h, l) in &live {
                let mut data = vec![0u8; l.len as usize];
                file.read_exact_at(&mut data, l.offset)
                    .map_err(io_err("reading a chunk to compact"))?;
                if blake3::hash(&data).as_bytes() != h {
                    return Err(corrupt(format!("chunk {} fails its hash check", hex(h))));
                }
                self.append(&mut active, h, &data, l.len)?;
            }
            {
                let mut index = self.index.write();
                let mut stats = self.stats.lock();
                for (h, l) in &dead {
                    index.remove(h);
                    stats.chunks = stats.chunks.saturating_sub(1);
                    stats.stored_bytes = stats.stored_bytes.saturating_sub(u64::from(l.len));
                }
            }
            // Copies are durable before the old file goes (a crash here keeps both copies;
            // opening indexes the newer one last).
            active
                .file
                .sync_data()
                .map_err(io_err("syncing the active chunk pack"))?;
            self.readers.write().remove(&seq);
            for path in [pack_path(&packs, seq), idx_path(&packs, seq)] {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(format!("removing {}", path.display()))(e)),
                }
            }
        }
        Ok(out)
    }

    /// Records at the end of the active pack (an upload abandoned while it was the only writer)
    /// are cut off the file; others are dropped from the index and from the active pack's
    /// record list, their bytes dead space until a compaction (none exists yet: after a restart
    /// a scan of the unsealed pack finds them again, unreferenced, as before this existed).
    fn discard(&self, hashes: &[ChunkHash]) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let gone: HashSet<&ChunkHash> = hashes.iter().collect();
        let mut active = self.active.lock();
        {
            let mut index = self.index.write();
            let mut stats = self.stats.lock();
            for h in hashes {
                if let Some(loc) = index.remove(h) {
                    stats.chunks = stats.chunks.saturating_sub(1);
                    stats.stored_bytes = stats.stored_bytes.saturating_sub(u64::from(loc.len));
                }
            }
        }
        let mut cut = None;
        while let Some((h, loc)) = active.records.last() {
            if !gone.contains(h) {
                break;
            }
            cut = Some(loc.offset - RECORD_HEADER);
            active.records.pop();
        }
        active.records.retain(|(h, _)| !gone.contains(h));
        if let Some(at) = cut {
            active
                .file
                .set_len(at)
                .map_err(io_err("cutting abandoned chunks off the active pack"))?;
            active.size = at;
        }
        Ok(())
    }

    fn get_chunk(&self, hash: &ChunkHash) -> Result<Vec<u8>> {
        let loc = *self
            .index
            .read()
            .get(hash)
            .ok_or_else(|| corrupt(format!("chunk {} is missing", hex(hash))))?;
        let file = self
            .readers
            .read()
            .get(&loc.pack)
            .cloned()
            .ok_or_else(|| corrupt(format!("chunk pack {} is missing", loc.pack)))?;
        let mut data = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut data, loc.offset)
            .map_err(io_err("reading a chunk"))?;
        if blake3::hash(&data).as_bytes() != hash {
            return Err(corrupt(format!("chunk {} fails its hash check", hex(hash))));
        }
        Ok(data)
    }

    fn put_manifest(&self, blob: &ObjectId, manifest: &Manifest) -> Result<()> {
        write_atomic(&self.manifest_path(blob), &manifest.encode())?;
        self.manifests.write().insert(*blob);
        Ok(())
    }

    fn may_have_manifest(&self, blob: &ObjectId) -> bool {
        self.manifests.read().contains(blob)
    }

    fn freshen_manifest(&self, blob: &ObjectId) -> Result<()> {
        match File::options().write(true).open(self.manifest_path(blob)) {
            Ok(f) => f
                .set_modified(std::time::SystemTime::now())
                .map_err(io_err("freshening a manifest")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("freshening a manifest")(e)),
        }
    }

    fn get_manifest(&self, blob: &ObjectId) -> Result<Option<Manifest>> {
        if !self.manifests.read().contains(blob) {
            return Ok(None);
        }
        let mut f = match File::open(self.manifest_path(blob)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("opening a manifest")(e)),
        };
        let mut data = Vec::new();
        f.read_to_end(&mut data).map_err(io_err("reading a manifest"))?;
        Manifest::decode(&data).map(Some)
    }

    fn stats(&self) -> ChunkStats {
        *self.stats.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(data: &[u8]) -> ChunkHash {
        *blake3::hash(data).as_bytes()
    }

    #[test]
    fn hex_spells_bytes_as_lowercase_pairs() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        let hash = h(b"any");
        assert_eq!(hex(&hash), blake3::Hash::from(hash).to_hex().as_str());
    }

    #[test]
    fn put_get_dedup_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackChunkStore::open(dir.path(), 1 << 20).unwrap();
        assert!(store.put_chunk(&h(b"one"), b"one").unwrap());
        assert!(!store.put_chunk(&h(b"one"), b"one").unwrap());
        assert!(store.put_chunk(&h(b"two"), b"two").unwrap());
        assert_eq!(
            store.stats(),
            ChunkStats {
                chunks: 2,
                stored_bytes: 6
            }
        );
        drop(store);
        let store = PackChunkStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.get_chunk(&h(b"two")).unwrap(), b"two");
        assert_eq!(store.stats().chunks, 2);
    }

    #[test]
    fn rotates_packs_and_reads_sealed_ones_from_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackChunkStore::open(dir.path(), 100).unwrap();
        let blobs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 80]).collect();
        for b in &blobs {
            store.put_chunk(&h(b), b).unwrap();
        }
        drop(store);
        let idx_count = fs::read_dir(dir.path().join("packs"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".idx"))
            .count();
        assert!(idx_count >= 5, "expected sealed packs, found {idx_count} indexes");
        let store = PackChunkStore::open(dir.path(), 100).unwrap();
        for b in &blobs {
            assert_eq!(&store.get_chunk(&h(b)).unwrap(), b);
        }
    }

    /// Abandoned chunks at the end of the active pack are cut off the file; one in the middle
    /// only leaves the index. Either way it is gone, also after a reopen when it was cut.
    #[test]
    fn discarded_chunks_are_gone_and_a_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackChunkStore::open(dir.path(), 1 << 30).unwrap();
        let (a, b, c) = (vec![1u8; 1000], vec![2u8; 2000], vec![3u8; 3000]);
        store.put_chunk(&h(&a), &a).unwrap();
        let before = store.active.lock().size;
        store.put_chunk(&h(&b), &b).unwrap();
        store.put_chunk(&h(&c), &c).unwrap();
        store.discard(&[h(&b), h(&c)]).unwrap();
        assert!(!store.has_chunk(&h(&b)) && !store.has_chunk(&h(&c)));
        assert_eq!(store.active.lock().size, before, "the tail was not cut");
        assert_eq!(store.stats().chunks, 1);
        // Stored again after being discarded: a fresh write, readable.
        assert!(store.put_chunk(&h(&b), &b).unwrap());
        assert_eq!(store.get_chunk(&h(&b)).unwrap(), b);
        drop(store);
        let store = PackChunkStore::open(dir.path(), 1 << 30).unwrap();
        assert!(!store.has_chunk(&h(&c)));
        assert_eq!(store.get_chunk(&h(&a)).unwrap(), a);
        assert_eq!(store.get_chunk(&h(&b)).unwrap(), b);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackChunkStore::open(dir.path(), 1 << 20).unwrap();
        store.put_chunk(&h(b"kept"), b"kept").unwrap();
        drop(store);
        let pack = pack_path(&dir.path().join("packs"), 0);
        let mut f = OpenOptions::new().append(true).open(&pack).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let store = PackChunkStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.get_chunk(&h(b"kept")).unwrap(), b"kept");
        store.put_chunk(&h(b"next"), b"next").unwrap();
        drop(store);
        let store = PackChunkStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.get_chunk(&h(b"next")).unwrap(), b"next");
    }

    #[test]
    fn corrupted_chunk_is_reported_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackChunkStore::open(dir.path(), 1 << 20).unwrap();
        store.put_chunk(&h(b"payload"), b"payload").unwrap();
        let pack = pack_path(&dir.path().join("packs"), 0);
        let f = OpenOptions::new().write(true).open(&pack).unwrap();
        f.write_all_at(b"X", 8 + RECORD_HEADER).unwrap();
        assert_eq!(
            store.get_chunk(&h(b"payload")).unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
    }

    #[test]
    fn manifest_covering_ranges() {
        let m = Manifest::new(vec![
            ManifestChunk { hash: [1; 32], len: 10 },
            ManifestChunk { hash: [2; 32], len: 10 },
            ManifestChunk { hash: [3; 32], len: 5 },
        ]);
        assert_eq!(m.size, 25);
        assert_eq!(m.covering(0, 1), 0..1);
        assert_eq!(m.covering(9, 2), 0..2);
        assert_eq!(m.covering(10, 10), 1..2);
        assert_eq!(m.covering(24, 100), 2..3);
        assert_eq!(m.covering(25, 1), 0..0);
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }
}
