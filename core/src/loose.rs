//! Writing loose git objects (`objects/ab/cdef…`, a zlib stream of `<kind> <size>\0<bytes>`).
//!
//! Every small file written to a session becomes one, so this is on the path of every checkout,
//! untar and clone into a mount. gix's writer compresses with a fresh zlib state per object:
//! while a mount extracted 11,700 source files, setting up that state took 13% of the server's
//! CPU and compressing 22% (`perf`).
//!
//! So the level is git's `core.looseCompression`, chosen by the server's configuration. At 0
//! the stream is written as stored deflate blocks with no zlib state at all: the bytes on disk
//! are the file's bytes (as on any local disk) plus 5 bytes per 64 KiB, and every git reads
//! them; the server's CPU for that untar fell by about 15%. Levels 1 to 9 compress, trading CPU
//! for space.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gix::ObjectId;

use crate::error::{Error, Result};
use crate::store_error::{StoreError, StoreKind};

/// Largest stored deflate block.
const STORED_BLOCK: usize = 65_535;

/// Write the object `oid` of `kind` with body `data` under `objects_dir`, at zlib `level`
/// (0 to 9). The file appears complete or not at all (written aside, then renamed).
pub fn write(objects_dir: &Path, oid: &ObjectId, kind: gix::objs::Kind, data: &[u8], level: u32) -> Result<()> {
    let hex = oid.to_hex().to_string();
    let dir = objects_dir.join(&hex[..2]);
    let target = dir.join(&hex[2..]);
    let header = gix::objs::encode::loose_header(kind, data.len() as u64);
    let (tmp, mut file) = temp_file(objects_dir)?;
    let written = if level == 0 {
        write_stored(&mut file, &[&header, data])
    } else {
        let mut z = flate2::write::ZlibEncoder::new(&mut file, flate2::Compression::new(level.min(9)));
        z.write_all(&header)
            .and_then(|()| z.write_all(data))
            .and_then(|()| z.finish().map(drop))
    };
    let renamed = written.and_then(|()| {
        drop(file);
        match std::fs::rename(&tmp, &target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)?;
                std::fs::rename(&tmp, &target)
            }
            r => r,
        }
    });
    renamed.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Store(StoreError::io(StoreKind::Objects, format!("writing object {hex}"))(e))
    })
}

/// A new file in `objects_dir` only this call writes to, read-only once closed (as git makes
/// object files).
fn temp_file(objects_dir: &Path) -> Result<(PathBuf, File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = objects_dir.join(format!("tmp_obj_{}_{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).mode(0o444).open(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                let context = format!("creating a temporary object file in {}", objects_dir.display());
                return Err(Error::Store(StoreError::io(StoreKind::Objects, context)(e)));
            }
        }
    }
}

/// The concatenation of `parts` as a zlib stream of stored (uncompressed) deflate blocks.
fn write_stored(out: &mut impl Write, parts: &[&[u8]]) -> std::io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf = Vec::with_capacity(total + 2 + 5 * (total / STORED_BLOCK + 1) + 4);
    // CMF: deflate with a 32 KiB window; FLG: level "fastest", check bits so that
    // CMF * 256 + FLG is a multiple of 31.
    buf.extend_from_slice(&[0x78, 0x01]);
    let mut adler = Adler32::default();
    let mut left = total;
    let mut block_left = 0usize;
    for part in parts {
        let mut rest: &[u8] = part;
        while !rest.is_empty() {
            if block_left == 0 {
                block_left = left.min(STORED_BLOCK);
                let last = left == block_left;
                let len = block_left as u16;
                buf.push(u8::from(last));
                buf.extend_from_slice(&len.to_le_bytes());
                buf.extend_from_slice(&(!len).to_le_bytes());
            }
            let take = rest.len().min(block_left);
            buf.extend_from_slice(&rest[..take]);
            adler.update(&rest[..take]);
            rest = &rest[take..];
            block_left -= take;
            left -= take;
        }
    }
    if total == 0 {
        // One empty final block.
        buf.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    buf.extend_from_slice(&adler.finish().to_be_bytes());
    out.write_all(&buf)
}

/// The zlib checksum (RFC 1950).
struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    const MOD: u32 = 65_521;
    /// Most bytes summed before `b` could overflow a u32.
    const NMAX: usize = 5_552;

    fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(Self::NMAX) {
            for &byte in chunk {
                self.a += u32::from(byte);
                self.b += self.a;
            }
            self.a %= Self::MOD;
            self.b %= Self::MOD;
        }
    }

    fn finish(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(stream).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn stored_streams_inflate_to_their_input_at_every_block_boundary() {
        for n in [
            0,
            1,
            100,
            STORED_BLOCK - 1,
            STORED_BLOCK,
            STORED_BLOCK + 1,
            3 * STORED_BLOCK + 7,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let mut stream = Vec::new();
            let (a, b) = data.split_at(n / 3);
            write_stored(&mut stream, &[a, b]).unwrap();
            assert_eq!(inflate(&stream), data, "{n} bytes");
            assert_eq!((u32::from(stream[0]) * 256 + u32::from(stream[1])) % 31, 0);
        }
    }

    #[test]
    fn adler32_matches_known_values() {
        let mut a = Adler32::default();
        a.update(b"Wikipedia");
        assert_eq!(a.finish(), 0x11E6_0398);
        let mut big = Adler32::default();
        big.update(&vec![0xff; 100_000]);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&vec![0xff; 100_000]).unwrap();
        let stream = z.finish().unwrap();
        let tail: [u8; 4] = stream[stream.len() - 4..].try_into().unwrap();
        assert_eq!(big.finish(), u32::from_be_bytes(tail));
    }
}

/// Every loose object file: its id, size and age.
pub fn list(objects_dir: &Path) -> Result<Vec<(ObjectId, u64, std::time::SystemTime)>> {
    let mut out = Vec::new();
    let fans = match std::fs::read_dir(objects_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("listing loose objects")(e)),
    };
    for fan in fans {
        let fan = fan.map_err(Error::io("listing loose objects"))?;
        let prefix = fan.file_name().to_string_lossy().into_owned();
        if prefix.len() != 2 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        for f in std::fs::read_dir(fan.path()).map_err(Error::io("listing loose objects"))? {
            let f = f.map_err(Error::io("listing loose objects"))?;
            let rest = f.file_name().to_string_lossy().into_owned();
            let Ok(oid) = ObjectId::from_hex(format!("{prefix}{rest}").as_bytes()) else {
                continue;
            };
            let Ok(meta) = f.metadata() else { continue };
            let age = meta.modified().unwrap_or_else(|_| std::time::SystemTime::now());
            out.push((oid, meta.len(), age));
        }
    }
    Ok(out)
}

/// About how many loose objects `objects_dir` holds, for comparing with `threshold`: those
/// of a few fan-out directories (from `17` on, as git's estimate for `gc.auto`), scaled to all
/// 256. As many are read as make one object in them count for at most `threshold`: one for
/// git's thresholds of thousands, every one (an exact count) for a threshold of one, where one
/// directory would miss the few objects left loose by writes during a pass.
pub fn estimate(objects_dir: &Path, threshold: u64) -> u64 {
    let dirs = 256u64.div_ceil(threshold.max(1)).min(256);
    let found: u64 = (0..dirs)
        .map(|i| {
            let dir = objects_dir.join(format!("{:02x}", (0x17 + i) % 256));
            std::fs::read_dir(dir).map_or(0, |d| d.count() as u64)
        })
        .sum();
    found * 256 / dirs
}

/// The path of loose object `oid` under `objects_dir`.
pub fn path(objects_dir: &Path, oid: &ObjectId) -> std::path::PathBuf {
    let hex = oid.to_hex().to_string();
    objects_dir.join(&hex[..2]).join(&hex[2..])
}

/// Make loose object `oid` as young as if written now, when it is stored loose (see
/// `gc_barrier`). Best effort: a failure only makes it older for a collection's grace period,
/// and the write that found it holds the collection's gate while it is recorded.
/// Whether it is stored loose. Opened for reading: object files are read-only, and their owner
/// may set their times through any descriptor.
pub fn freshen(objects_dir: &Path, oid: &ObjectId) -> bool {
    match std::fs::File::open(path(objects_dir, oid)) {
        Ok(f) => {
            let _ = f.set_modified(std::time::SystemTime::now());
            true
        }
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// The kind and body of the loose object `oid` under `objects_dir`, or `None` when it is not
/// stored loose (it may be in a pack).
///
/// One `open` and `read` of the file, inflated into a buffer of the size its header gives.
/// gix's loose lookup costs a `stat`, an `mmap` that faults the file in page by page and an
/// `munmap` (a TLB flush on every CPU) per object: about half of the server's CPU while a mount
/// read a checkout's 78,000 files (`perf`, issue 33). The zlib stream's own checksum is checked
/// at its end, as gix does; a truncated or damaged object is an error, never bytes.
pub fn read(objects_dir: &Path, oid: &ObjectId) -> Result<Option<(gix::objs::Kind, Vec<u8>)>> {
    let hex = oid.to_hex().to_string();
    let path = objects_dir.join(&hex[..2]).join(&hex[2..]);
    let raw = match std::fs::read(&path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Store(StoreError::io(
                StoreKind::Objects,
                format!("reading object {hex}"),
            )(e)));
        }
    };
    let corrupt = |why: &str| Error::Corrupt(format!("loose object {hex}: {why}"));
    let mut z = flate2::Decompress::new(true);
    // The header first: `<kind> <size>\0` fits in 64 bytes.
    let mut head = Vec::with_capacity(64);
    let mut status = z
        .decompress_vec(&raw, &mut head, flate2::FlushDecompress::None)
        .map_err(|e| corrupt(&e.to_string()))?;
    let (kind, size, consumed) = gix::objs::decode::loose_header(&head).map_err(|e| corrupt(&e.to_string()))?;
    let size = usize::try_from(size).map_err(|_| corrupt("too large"))?;
    let mut body = Vec::with_capacity(size.max(head.len() - consumed) + 1);
    body.extend_from_slice(&head[consumed..]);
    while status != flate2::Status::StreamEnd {
        if body.len() > size {
            return Err(corrupt("longer than its header says"));
        }
        if body.len() == body.capacity() {
            body.reserve(64);
        }
        let before = (z.total_in(), z.total_out());
        status = z
            .decompress_vec(
                &raw[z.total_in() as usize..],
                &mut body,
                flate2::FlushDecompress::Finish,
            )
            .map_err(|e| corrupt(&e.to_string()))?;
        if status != flate2::Status::StreamEnd && (z.total_in(), z.total_out()) == before {
            return Err(corrupt("truncated"));
        }
    }
    if body.len() != size {
        return Err(corrupt(&format!("{} bytes where its header says {size}", body.len())));
    }
    Ok(Some((kind, body)))
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn objects_written_at_every_level_read_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (level, body) in [(0, &data[..]), (6, &data[..]), (0, &b""[..]), (9, &b"x"[..])] {
            let kind = gix::objs::Kind::Blob;
            let oid = gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, body).unwrap();
            write(dir.path(), &oid, kind, body, level).unwrap();
            let (k, got) = read(dir.path(), &oid).unwrap().unwrap();
            assert_eq!(k, kind);
            assert!(got == body, "level {level}, {} bytes", body.len());
        }
        let missing = ObjectId::from_hex(b"0123456789012345678901234567890123456789").unwrap();
        assert!(read(dir.path(), &missing).unwrap().is_none());

        // A truncated object and one with a flipped byte are errors.
        let oid = gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, &data).unwrap();
        let hex = oid.to_hex().to_string();
        let path = dir.path().join(&hex[..2]).join(&hex[2..]);
        let good = std::fs::read(&path).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(read(dir.path(), &oid).is_err(), "truncated");
        let mut flipped = good.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(read(dir.path(), &oid).is_err(), "flipped byte");
    }
}

#[cfg(test)]
mod estimate_tests {
    use super::estimate;

    #[test]
    fn the_estimate_reads_enough_fan_out_directories_for_its_threshold() {
        let dir = tempfile::tempdir().unwrap();
        // Three objects in 17 (the directory git samples), one each in 18 and a0.
        for (fan, names) in [("17", 3), ("18", 1), ("a0", 1)] {
            std::fs::create_dir_all(dir.path().join(fan)).unwrap();
            for i in 0..names {
                std::fs::write(dir.path().join(fan).join(format!("{i:038}")), b"").unwrap();
            }
        }
        // Git's thresholds: one directory, scaled.
        assert_eq!(estimate(dir.path(), 16_384), 3 * 256);
        // A threshold of one: every directory, the exact count.
        assert_eq!(estimate(dir.path(), 1), 5);
        // Two directories (17 and 18) for a threshold of 128.
        assert_eq!(estimate(dir.path(), 128), 4 * 128);
        // Nothing in the sampled directories, something elsewhere: a threshold of one sees it.
        std::fs::remove_dir_all(dir.path().join("17")).unwrap();
        std::fs::remove_dir_all(dir.path().join("18")).unwrap();
        assert_eq!(estimate(dir.path(), 16_384), 0);
        assert_eq!(estimate(dir.path(), 1), 1);
    }
}
