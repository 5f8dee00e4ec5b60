//! The byte stream under a tar archive: plain, or gzip (detected by its magic bytes; several
//! members are read as one stream, as `gzip -d` does). A failure of the gzip decoder (corrupt
//! data, a trailer whose CRC or length does not match, a stream that stops early) is an
//! [`ArchiveError::Gzip`]; a failure of the source itself stays an I/O error.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::ArchiveError;

/// The decompressed archive bytes of `reader`. Other compressors are recognised and refused
/// with a message that names them.
pub fn decompress<'a>(reader: impl Read + Send + 'a) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    let failed = Arc::new(AtomicBool::new(false));
    let mut source = Watched {
        inner: reader,
        failed: failed.clone(),
    };
    // The magic bytes may arrive in more than one read (a network body in small pieces).
    let mut head = [0u8; 6];
    let mut filled = 0;
    while filled < head.len() {
        match source.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = &head[..filled];
    let refused = [
        (&b"\xfd7zXZ\0"[..], "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x04\x22\x4d\x18", "lz4"),
    ];
    let bzip2 = head.len() == 6 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) && head[4..] == *b"1A";
    if let Some((_, name)) = refused.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Err(ArchiveError::UnsupportedCompression(name).into_io());
    }
    if bzip2 {
        return Err(ArchiveError::UnsupportedCompression("bzip2").into_io());
    }
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let buffered = BufReader::with_capacity(256 * 1024, std::io::Cursor::new(head.to_vec()).chain(source));
    if gzip {
        return Ok(Box::new(Gunzip {
            decoder: flate2::bufread::MultiGzDecoder::new(buffered),
            failed,
        }));
    }
    Ok(Box::new(buffered))
}

/// The source, remembering whether it failed (so a decoder error can be told from it).
struct Watched<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != std::io::ErrorKind::Interrupted {
                self.failed.store(true, Ordering::Relaxed);
            }
        })
    }
}

struct Gunzip<R: BufRead> {
    decoder: flate2::bufread::MultiGzDecoder<R>,
    failed: Arc<AtomicBool>,
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.decoder.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) if self.failed.load(Ordering::Relaxed) => Err(e),
            Err(e) => {
                let reason = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "the stream stops before its end (truncated)".to_owned()
                } else {
                    e.to_string()
                };
                Err(ArchiveError::Gzip(reason).into_io())
            }
        }
    }
}
