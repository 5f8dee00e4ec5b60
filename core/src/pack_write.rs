//! Writing a git pack (gitformat-pack: version 2) and its index (version 2) into the object
//! database's pack directory, entry by entry, never holding the pack in memory.
//!
//! Entries come whole (an object's bytes, compressed here) or raw (an entry of another pack
//! copied with its compressed bytes as they are, so a pack's deltas survive a rewrite). The
//! pack is written aside, synced, and renamed into place before its index: git and gix find
//! packs by their index, so a reader sees the pack complete or not at all.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use gix::ObjectId;
use gix::objs::Kind;
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::pack_format::{OFS_DELTA, entry_header, header_bytes, ofs_distance};
use crate::store_error::{StoreError, StoreKind};

fn io(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Store(StoreError::io(StoreKind::Objects, context.to_owned())(e))
}

/// The pack's bytes as they go out: hashed for the trailer, and each entry's CRC-32 for the index.
struct Sink {
    out: BufWriter<File>,
    sha: Sha1,
    crc: crc32fast::Hasher,
    offset: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sha.update(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// One entry written: its object, where it starts, and the CRC-32 of its stored bytes.
struct Written {
    oid: ObjectId,
    offset: u64,
    crc: u32,
}

/// A pack being written; [`PackWriter::finish`] installs it, dropping it unfinished removes it.
pub(crate) struct PackWriter {
    dir: PathBuf,
    tmp: PathBuf,
    sink: Option<Sink>,
    expected: u32,
    written: Vec<Written>,
    at: HashMap<ObjectId, u64>,
    level: Compression,
}

impl PackWriter {
    /// A pack of exactly `count` entries in `pack_dir`, whole objects compressed at `level`.
    pub fn create(pack_dir: &Path, count: u32, level: u32) -> Result<PackWriter> {
        std::fs::create_dir_all(pack_dir).map_err(io("creating the pack directory"))?;
        let tmp = pack_dir.join(format!("{TEMP_PREFIX}pack_{}_{}", std::process::id(), unique()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io("creating a pack"))?;
        let mut sink = Sink {
            out: BufWriter::with_capacity(1 << 20, file),
            sha: Sha1::new(),
            crc: crc32fast::Hasher::new(),
            offset: 0,
        };
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(b"PACK");
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(&count.to_be_bytes());
        let mut w = PackWriter {
            dir: pack_dir.to_owned(),
            tmp,
            sink: None,
            expected: count,
            written: Vec::with_capacity(count as usize),
            at: HashMap::with_capacity(count as usize),
            level: Compression::new(level.min(9)),
        };
        sink.write_all(&header).map_err(io("writing a pack"))?;
        w.sink = Some(sink);
        Ok(w)
    }

    /// Where `oid`'s entry starts, when this pack holds it already.
    pub fn offset_of(&self, oid: &ObjectId) -> Option<u64> {
        self.at.get(oid).copied()
    }

    fn sink(&mut self) -> &mut Sink {
        self.sink.as_mut().expect("a pack writer's sink lives until finish")
    }

    /// Start an entry for `oid` (refusing one more than the pack's count or a second copy).
    fn begin(&mut self, oid: ObjectId) -> Result<u64> {
        if self.written.len() as u32 >= self.expected || self.at.contains_key(&oid) {
            return Err(Error::Internal(format!(
                "pack writer: entry {oid} is one too many or written twice"
            )));
        }
        let sink = self.sink();
        sink.crc = crc32fast::Hasher::new();
        Ok(sink.offset)
    }

    fn end(&mut self, oid: ObjectId, offset: u64) {
        let crc = std::mem::take(&mut self.sink().crc).finalize();
        self.written.push(Written { oid, offset, crc });
        self.at.insert(oid, offset);
    }

    /// Write `oid` whole: its `kind` and bytes, compressed.
    pub fn whole(&mut self, oid: ObjectId, kind: Kind, data: &[u8]) -> Result<()> {
        let offset = self.begin(oid)?;
        let level = self.level;
        let sink = self.sink();
        let header = entry_header(kind, data.len() as u64);
        let wrote = sink.write_all(&header).and_then(|()| {
            let mut z = ZlibEncoder::new(&mut *sink, level);
            z.write_all(data)?;
            z.finish().map(drop)
        });
        wrote.map_err(io("writing a pack"))?;
        self.end(oid, offset);
        Ok(())
    }

    /// Copy a non-delta entry of another pack: `kind`, inflated `size` and its `compressed`
    /// bytes as stored.
    pub fn raw(&mut self, oid: ObjectId, kind: Kind, size: u64, compressed: &[u8]) -> Result<()> {
        self.copied(oid, |_| entry_header(kind, size), compressed)
    }

    /// Copy a delta entry of another pack whose base this pack already holds at `base`:
    /// the delta's inflated `size` and `compressed` bytes as stored.
    pub fn raw_delta(&mut self, oid: ObjectId, base: u64, size: u64, compressed: &[u8]) -> Result<()> {
        self.copied(
            oid,
            |offset| [header_bytes(OFS_DELTA, size), ofs_distance(offset - base)].concat(),
            compressed,
        )
    }

    /// An entry copied as stored: the header `header` makes for the entry's offset, then the
    /// `compressed` bytes.
    fn copied(&mut self, oid: ObjectId, header: impl FnOnce(u64) -> Vec<u8>, compressed: &[u8]) -> Result<()> {
        let offset = self.begin(oid)?;
        let header = header(offset);
        let sink = self.sink();
        sink.write_all(&header)
            .and_then(|()| sink.write_all(compressed))
            .map_err(io("writing a pack"))?;
        self.end(oid, offset);
        Ok(())
    }

    /// Write the trailer and the index, sync both and install them; the index's path. A pack
    /// of exactly these objects already installed is kept as it is.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.written.len() as u32 != self.expected {
            return Err(Error::Internal(format!(
                "pack writer: {} entries written of {}",
                self.written.len(),
                self.expected
            )));
        }
        let mut sink = self.sink.take().expect("finish runs once");
        let checksum: [u8; 20] = sink.sha.clone().finalize().into();
        sink.out.write_all(&checksum).map_err(io("writing a pack"))?;
        let file = sink
            .out
            .into_inner()
            .map_err(|e| io("writing a pack")(e.into_error()))?;
        file.sync_all().map_err(io("syncing a pack"))?;
        drop(file);

        let hex = hex(&checksum);
        let pack = self.dir.join(format!("pack-{hex}.pack"));
        let idx = self.dir.join(format!("pack-{hex}.idx"));
        std::fs::rename(&self.tmp, &pack).map_err(io("installing a pack"))?;
        let mut written = std::mem::take(&mut self.written);
        let index = index_bytes(&mut written, &checksum);
        let tmp_idx = self
            .dir
            .join(format!("{TEMP_PREFIX}idx_{}_{}", std::process::id(), unique()));
        let wrote = (|| {
            let mut f = File::options().write(true).create_new(true).open(&tmp_idx)?;
            f.write_all(&index)?;
            f.sync_all()?;
            std::fs::rename(&tmp_idx, &idx)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = wrote {
            let _ = std::fs::remove_file(&tmp_idx);
            return Err(io("installing a pack index")(e));
        }
        Ok(idx)
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        if self.sink.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// What files being written start with; one left by a crash is removed by the next collection.
pub(crate) const TEMP_PREFIX: &str = "tmp_aether_";

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A version 2 index of `entries` (sorted here by id) for the pack whose checksum is `pack`.
fn index_bytes(entries: &mut [Written], pack: &[u8; 20]) -> Vec<u8> {
    entries.sort_unstable_by_key(|e| e.oid);
    let n = entries.len();
    let mut out = Vec::with_capacity(8 + 1024 + n * 28 + 40);
    out.extend_from_slice(&[0xff, b't', b'O', b'c']);
    out.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for e in entries.iter() {
        fanout[e.oid.as_bytes()[0] as usize] += 1;
    }
    let mut total = 0u32;
    for f in fanout {
        total += f;
        out.extend_from_slice(&total.to_be_bytes());
    }
    for e in entries.iter() {
        out.extend_from_slice(e.oid.as_bytes());
    }
    for e in entries.iter() {
        out.extend_from_slice(&e.crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for e in entries.iter() {
        if e.offset < 0x8000_0000 {
            out.extend_from_slice(&(e.offset as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&(0x8000_0000u32 | large.len() as u32).to_be_bytes());
            large.push(e.offset);
        }
    }
    for o in large {
        out.extend_from_slice(&o.to_be_bytes());
    }
    out.extend_from_slice(pack);
    let own: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&own);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        use std::process::{Command, Stdio};
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git runs");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[test]
    fn git_reads_a_written_pack_and_verifies_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r.git");
        std::process::Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&repo)
            .status()
            .unwrap();
        let objects = [
            (Kind::Blob, b"hello pack".to_vec()),
            (Kind::Blob, (0..300_000u32).map(|i| (i % 251) as u8).collect()),
            (Kind::Blob, Vec::new()),
        ];
        let ids: Vec<ObjectId> = objects
            .iter()
            .map(|(k, d)| gix::objs::compute_hash(gix::hash::Kind::Sha1, *k, d).unwrap())
            .collect();
        let mut w = PackWriter::create(&repo.join("objects/pack"), 3, 1).unwrap();
        for (oid, (kind, data)) in ids.iter().zip(&objects) {
            w.whole(*oid, *kind, data).unwrap();
        }
        assert!(w.offset_of(&ids[0]).is_some());
        assert!(
            w.whole(ids[0], Kind::Blob, b"hello pack").is_err(),
            "a second copy is refused"
        );
        let idx = w.finish().unwrap();
        // git checks every entry's CRC-32 and id against the index, and the trailers.
        let listing = String::from_utf8(git(&repo, &["verify-pack", "-v", idx.to_str().unwrap()], b"")).unwrap();
        for (oid, (_, data)) in ids.iter().zip(&objects) {
            assert!(listing.contains(&oid.to_string()), "{oid} listed");
            assert_eq!(&git(&repo, &["cat-file", "blob", &oid.to_string()], b""), data);
        }
    }

    #[test]
    fn an_unfinished_pack_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::create(dir.path(), 2, 1).unwrap();
        let oid = gix::objs::compute_hash(gix::hash::Kind::Sha1, Kind::Blob, b"x").unwrap();
        w.whole(oid, Kind::Blob, b"x").unwrap();
        assert!(w.finish().is_err(), "one entry of two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
