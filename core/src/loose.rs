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
