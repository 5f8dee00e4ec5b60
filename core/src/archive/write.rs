//! Writing POSIX pax archives: a ustar header per entry with the name and link target copied
//! as bytes, preceded by a pax record set when a name or target is longer than its field (or
//! a size needs more than 11 octal digits). Nothing is normalised: `../.././x` is written as
//! `../.././x`.

use std::io::{Read, Write};

use super::header::{self, BLOCK, Block};
use super::pax;

/// What an entry is, with what its header needs.
#[derive(Debug, Clone, Copy)]
pub enum WriteKind<'a> {
    /// A regular file of `size` bytes (read from the data given to [`TarWriter::append`]).
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: &'a [u8],
    },
}

/// Largest size the octal size field holds.
const MAX_OCTAL_SIZE: u64 = (1 << 33) - 1;

pub struct TarWriter<W: Write> {
    out: W,
}

fn header_block(name: &[u8], link: &[u8], typeflag: u8, mode: u32, size: u64, mtime: u64) -> Block {
    let mut b: Block = [0; BLOCK];
    let put_text = |b: &mut Block, range: std::ops::Range<usize>, text: &[u8]| {
        let n = text.len().min(range.len());
        b[range.start..range.start + n].copy_from_slice(&text[..n]);
    };
    put_text(&mut b, header::NAME, name);
    header::put_number(&mut b[header::MODE], u64::from(mode & 0o7777));
    header::put_number(&mut b[header::UID], 0);
    header::put_number(&mut b[header::GID], 0);
    header::put_number(&mut b[header::SIZE], size);
    header::put_number(&mut b[header::MTIME], mtime);
    b[header::TYPEFLAG] = typeflag;
    put_text(&mut b, header::LINKNAME, link);
    b[header::MAGIC].copy_from_slice(b"ustar\0");
    b[header::VERSION].copy_from_slice(b"00");
    header::put_checksum(&mut b);
    b
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out }
    }

    /// Append one entry. `path` is written as given (a `/` is added to a directory's name);
    /// a file's `data` must yield exactly its size, or the archive is not written further.
    pub fn append(
        &mut self,
        path: &[u8],
        kind: WriteKind<'_>,
        mode: u32,
        mtime: u64,
        data: &mut dyn Read,
    ) -> std::io::Result<()> {
        let dir_name;
        let name = match kind {
            WriteKind::Dir if !path.ends_with(b"/") => {
                dir_name = [path, b"/"].concat();
                &dir_name[..]
            }
            _ => path,
        };
        let (typeflag, link, size) = match kind {
            WriteKind::File { size } => (b'0', &b""[..], size),
            WriteKind::Dir => (b'5', &b""[..], 0),
            WriteKind::Symlink { target } => (b'2', target, 0),
        };
        let mut records = Vec::new();
        if name.len() > header::NAME.len() {
            records.extend(pax::encode("path", name));
        }
        if link.len() > header::LINKNAME.len() {
            records.extend(pax::encode("linkpath", link));
        }
        if size > MAX_OCTAL_SIZE {
            records.extend(pax::encode("size", size.to_string().as_bytes()));
        }
        if !records.is_empty() {
            if std::str::from_utf8(name).is_err() || std::str::from_utf8(link).is_err() {
                records = [pax::encode("hdrcharset", b"BINARY"), records].concat();
            }
            let len = records.len() as u64;
            self.out
                .write_all(&header_block(b"././@PaxHeader", b"", b'x', 0o644, len, mtime))?;
            self.out.write_all(&records)?;
            self.pad(len)?;
        }
        self.out
            .write_all(&header_block(name, link, typeflag, mode, size, mtime))?;
        if size > 0 {
            let copied = std::io::copy(&mut data.take(size), &mut self.out)?;
            if copied != size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("'{}' gave {copied} of its {size} bytes", String::from_utf8_lossy(path)),
                ));
            }
            self.pad(size)?;
        }
        Ok(())
    }

    fn pad(&mut self, written: u64) -> std::io::Result<()> {
        let pad = (BLOCK as u64 - written % BLOCK as u64) % BLOCK as u64;
        self.out.write_all(&[0u8; BLOCK][..pad as usize])
    }

    /// Write the end-of-archive blocks and give the writer back.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::read::{EntryKind, TarReader};
    use super::*;

    #[test]
    fn names_targets_and_modes_come_back_as_written() {
        let long_target = [b"../".repeat(40), b"x".to_vec()].concat();
        let long_name = "d/".repeat(60) + "f";
        let mut w = TarWriter::new(Vec::new());
        let entries: Vec<(&[u8], WriteKind<'_>, u32)> = vec![
            (b"a", WriteKind::Symlink { target: b"../.././x" }, 0o777),
            (b"b", WriteKind::Symlink { target: b"//abs//path" }, 0o777),
            (b"c", WriteKind::Symlink { target: b"subdir/." }, 0o777),
            (b"l", WriteKind::Symlink { target: &long_target }, 0o777),
            (b"dir", WriteKind::Dir, 0o700),
            (long_name.as_bytes(), WriteKind::File { size: 3 }, 0o4755),
        ];
        for (name, kind, mode) in &entries {
            w.append(name, *kind, *mode, 7, &mut &b"abc"[..]).unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut r = TarReader::new(&bytes[..]);
        let mut got = Vec::new();
        while let Some(h) = r.next_entry().unwrap() {
            let mut data = Vec::new();
            r.data().read_to_end(&mut data).unwrap();
            got.push((h.path, h.link, h.kind, h.mode, data));
        }
        assert_eq!(got.len(), entries.len());
        assert_eq!(got[0].1, b"../.././x");
        assert_eq!(got[1].1, b"//abs//path");
        assert_eq!(got[2].1, b"subdir/.");
        assert_eq!(got[3].1, long_target);
        assert_eq!(
            (got[4].0.as_slice(), got[4].2, got[4].3),
            (&b"dir/"[..], EntryKind::Dir, 0o700)
        );
        assert_eq!(got[5].0, long_name.as_bytes());
        assert_eq!((got[5].3, got[5].4.as_slice()), (0o4755, &b"abc"[..]));
    }
}
