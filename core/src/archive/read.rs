//! Reading a tar stream one entry at a time, without seeking: [`TarReader::next_entry`] gives an
//! entry's header (name, link target, kind, mode, size), [`TarReader::data`] its bytes (a
//! sparse file's holes as zeros). Extended headers (pax `x` and `g`, GNU `L` and `K`) and
//! sparse maps are folded into the entry they describe. The end of the archive is checked
//! whole: [`TarReader::next_entry`] returns `None` only after the end-of-archive blocks and
//! everything after them (zeros only) were read, so the stream underneath (a gzip trailer) was
//! consumed to its end.

use std::io::Read;

use super::header::{self, BLOCK, Block, Layout};
use super::pax::Records;
use super::sparse::{self, DataMapParser, Expander, PaxSparse, Step};
use super::{ArchiveError, read_failure};
use crate::error::{Error, Result};

/// Most bytes of a GNU long name or link entry.
const MAX_LONG_NAME: u64 = 1 << 20;
/// Most bytes of a pax extended header (sparse maps of formats 0.0 and 0.1 live there).
const MAX_PAX: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Another name for an earlier entry of the archive (`link` names it).
    HardLink,
    Fifo,
    CharDevice,
    BlockDevice,
}

/// One entry, with every extended header applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    /// The name as stored (pax `path`, GNU long name or ustar prefix and name), as bytes.
    pub path: Vec<u8>,
    /// The link target of a symlink or hard link, as stored; empty otherwise.
    pub link: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    /// Bytes [`TarReader::data`] yields (a sparse file's real size); 0 for all but files.
    pub size: u64,
}

pub struct TarReader<R> {
    inner: R,
    /// Bytes consumed from `inner`.
    pos: u64,
    /// Archive bytes of the current entry's data not read yet.
    left: u64,
    /// Padding after the current entry's data, up to the next block.
    pad: u64,
    /// The current entry's sparse expansion, if it is sparse.
    sparse: Option<Expander>,
    /// The current entry's name, for messages.
    current: Vec<u8>,
    global: Records,
    ended: bool,
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// `size` and the padding after it, or an error for a size no archive can have.
fn with_padding(size: u64, offset: u64) -> Result<u64> {
    size.checked_add(padding(size))
        .ok_or_else(|| bad_header(offset, format!("an entry size of {size} bytes")))
}

fn bad_header(offset: u64, reason: impl Into<String>) -> Error {
    Error::Archive(ArchiveError::BadHeader {
        offset,
        reason: reason.into(),
    })
}

fn io_failure(e: std::io::Error) -> Error {
    read_failure("reading the archive", e)
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            pos: 0,
            left: 0,
            pad: 0,
            sparse: None,
            current: Vec::new(),
            global: Records::default(),
            ended: false,
        }
    }

    /// Fill `buf` from the stream; `Ok(false)` at a clean end before any byte.
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(Error::Archive(ArchiveError::Truncated(what.to_owned()))),
                Ok(n) => {
                    filled += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_failure(e)),
            }
        }
        Ok(true)
    }

    fn skip(&mut self, mut n: u64, what: &str) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let chunk = n.min(buf.len() as u64) as usize;
            if !self.fill(&mut buf[..chunk], what)? {
                return Err(Error::Archive(ArchiveError::Truncated(what.to_owned())));
            }
            n -= chunk as u64;
        }
        Ok(())
    }

    /// The data of an extended header entry of `size` bytes (at most `max`), padding skipped.
    fn read_meta(&mut self, size: u64, max: u64, offset: u64, what: &str) -> Result<Vec<u8>> {
        if size > max {
            return Err(bad_header(offset, format!("{what} of {size} bytes (at most {max})")));
        }
        let mut data = vec![0u8; size as usize];
        if !self.fill(&mut data, what)? && size > 0 {
            return Err(Error::Archive(ArchiveError::Truncated(what.to_owned())));
        }
        self.skip(padding(size), what)?;
        Ok(data)
    }

    /// After the first zero block: everything left must be zeros (the second end block and the
    /// record padding). Reading to the end also makes a gzip decoder check its trailer.
    fn finish(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match self.inner.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_failure(e)),
            };
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(Error::Archive(ArchiveError::TrailingData(self.pos + i as u64)));
            }
            self.pos += n as u64;
        }
    }

    /// The next entry, or `None` once the archive and the stream under it ended correctly.
    /// The data of the previous entry that was not read is skipped.
    pub fn next_entry(&mut self) -> Result<Option<EntryHeader>> {
        if self.ended {
            return Ok(None);
        }
        let rest = self.left + self.pad;
        let what = format!("in the data of '{}'", String::from_utf8_lossy(&self.current));
        self.skip(rest, &what)?;
        self.left = 0;
        self.pad = 0;
        self.sparse = None;
        self.current.clear();

        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut local: Option<Records> = None;
        let (block, offset) = loop {
            let offset = self.pos;
            let mut block: Block = [0; BLOCK];
            if !self.fill(&mut block, "in a header")? {
                return Err(Error::Archive(ArchiveError::Truncated(format!(
                    "at byte {offset}, without the end-of-archive blocks"
                ))));
            }
            if block.iter().all(|&b| b == 0) {
                if long_name.is_some() || long_link.is_some() || local.is_some() {
                    return Err(bad_header(offset, "extended headers describe no entry"));
                }
                self.finish()?;
                self.ended = true;
                return Ok(None);
            }
            if !header::checksum_ok(&block) {
                return Err(bad_header(offset, "checksum mismatch (is this a tar archive?)"));
            }
            let size = header::number(&block[header::SIZE]).ok_or_else(|| bad_header(offset, "unreadable size"))?;
            let once = |seen: bool, what: &str| {
                if seen {
                    Err(bad_header(offset, format!("two {what} headers for one entry")))
                } else {
                    Ok(())
                }
            };
            match block[header::TYPEFLAG] {
                b'L' => {
                    once(long_name.is_some(), "GNU long name")?;
                    let data = self.read_meta(size, MAX_LONG_NAME, offset, "a GNU long name")?;
                    long_name = Some(header::text(&data).to_vec());
                }
                b'K' => {
                    once(long_link.is_some(), "GNU long link")?;
                    let data = self.read_meta(size, MAX_LONG_NAME, offset, "a GNU long link")?;
                    long_link = Some(header::text(&data).to_vec());
                }
                b'x' | b'X' => {
                    once(local.is_some(), "pax")?;
                    let data = self.read_meta(size, MAX_PAX, offset, "a pax header")?;
                    local = Some(Records::parse(&data).map_err(|r| bad_header(offset, r))?);
                }
                b'g' => {
                    let data = self.read_meta(size, MAX_PAX, offset, "a pax global header")?;
                    let records = Records::parse(&data).map_err(|r| bad_header(offset, r))?;
                    self.global = records.over(&self.global).deduplicated();
                    if self.global.len_bytes() > MAX_PAX {
                        return Err(bad_header(offset, "pax global headers over 16 MiB in all"));
                    }
                }
                // A volume label names the archive, not a file.
                b'V' => self.skip(with_padding(size, offset)?, "in a volume label")?,
                _ => break (block, offset),
            }
        };
        let records = local.unwrap_or_default().over(&self.global);
        self.entry(&block, offset, records, long_name, long_link).map(Some)
    }

    fn entry(
        &mut self,
        block: &Block,
        offset: u64,
        records: Records,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<EntryHeader> {
        let layout = header::layout(block);
        let typeflag = block[header::TYPEFLAG];
        let pax_err = |r: String| bad_header(offset, r);
        let stored = match records.number("size").map_err(pax_err)? {
            Some(s) => s,
            None => header::number(&block[header::SIZE]).ok_or_else(|| bad_header(offset, "unreadable size"))?,
        };
        let sparse_format = sparse::pax_format(&records).map_err(pax_err)?;
        let header_name = {
            let name = header::text(&block[header::NAME]);
            let prefix = header::text(&block[header::PREFIX]);
            if layout == Layout::Ustar && !prefix.is_empty() {
                [prefix, b"/", name].concat()
            } else {
                name.to_vec()
            }
        };
        let sparse_name = records.get("GNU.sparse.name").filter(|_| sparse_format.is_some());
        let path = match (sparse_name, records.get("path"), long_name) {
            (Some(n), _, _) | (None, Some(n), _) => n.to_vec(),
            (None, None, Some(n)) => n,
            (None, None, None) => header_name,
        };
        if sparse_format == Some(PaxSparse::InData) && sparse_name.is_none() {
            return Err(Error::Archive(ArchiveError::entry(
                &path,
                "a sparse file (format 1.0) without GNU.sparse.name",
            )));
        }
        let link = match (records.get("linkpath"), long_link) {
            (Some(l), _) => l.to_vec(),
            (None, Some(l)) => l,
            (None, None) => header::text(&block[header::LINKNAME]).to_vec(),
        };
        let mode = header::number(&block[header::MODE]).ok_or_else(|| bad_header(offset, "unreadable mode"))?;
        let mode = (mode & 0o7777) as u32;
        let unsupported = |what: &str| Error::Archive(ArchiveError::entry(&path, what));
        let kind = match typeflag {
            b'0' | b'\0' | b'7' | b'S' if path.ends_with(b"/") && typeflag != b'S' => EntryKind::Dir,
            b'0' | b'\0' | b'7' | b'S' => EntryKind::File,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' | b'D' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            b'M' => return Err(unsupported("a continuation from another volume (multi-volume archive)")),
            b'N' => return Err(unsupported("old GNU long names (entry type N) are not supported")),
            other => {
                return Err(unsupported(&format!(
                    "entry type '{}' is not supported",
                    (other as char).escape_debug()
                )));
            }
        };
        with_padding(stored, offset)?;
        self.current = path.clone();
        self.left = stored;
        self.pad = padding(stored);
        let mut size = 0;
        if kind == EntryKind::File {
            size = stored;
            let entry_err = |r: String| Error::Archive(ArchiveError::entry(&path, r));
            if typeflag == b'S' {
                if layout != Layout::Gnu {
                    return Err(entry_err("an old GNU sparse entry without a GNU header".into()));
                }
                let map = self.old_gnu_map(block, offset, stored).map_err(entry_err)?;
                size = map.real_size;
                self.sparse = Some(Expander::new(map));
            } else if let Some(format) = sparse_format {
                let map = match format {
                    PaxSparse::InRecords => sparse::from_records(&records, stored).map_err(entry_err)?,
                    PaxSparse::InData => {
                        let real = records.number("GNU.sparse.realsize").map_err(pax_err)?.ok_or_else(|| {
                            entry_err("a sparse file (format 1.0) without GNU.sparse.realsize".into())
                        })?;
                        self.data_map(real)?
                    }
                };
                size = map.real_size;
                self.sparse = Some(Expander::new(map));
            }
        }
        Ok(EntryHeader {
            path,
            link,
            kind,
            mode,
            size,
        })
    }

    /// The map of an old GNU sparse entry: four segments in the header, more in extension
    /// blocks that follow it (not counted in the entry's size).
    fn old_gnu_map(&mut self, block: &Block, offset: u64, stored: u64) -> Result<sparse::Map, String> {
        fn segments(area: &[u8], out: &mut Vec<(u64, u64)>) -> Result<(), String> {
            for pair in area.chunks_exact(24) {
                if pair[0] == 0 {
                    break;
                }
                let off = header::number(&pair[..12]).ok_or("an unreadable sparse offset")?;
                let len = header::number(&pair[12..]).ok_or("an unreadable sparse length")?;
                out.push((off, len));
            }
            Ok(())
        }
        let mut segs = Vec::new();
        segments(&block[header::GNU_SPARSE], &mut segs)?;
        let mut extended = block[header::GNU_IS_EXTENDED] != 0;
        while extended {
            let mut ext: Block = [0; BLOCK];
            match self.fill(&mut ext, "in a sparse extension header") {
                Ok(true) => {}
                Ok(false) => return Err(format!("the sparse extension header after byte {offset} is missing")),
                Err(e) => return Err(e.to_string()),
            }
            segments(&ext[..504], &mut segs)?;
            extended = ext[504] != 0;
            if segs.len() > sparse::MAX_SEGMENTS {
                return Err(format!(
                    "the sparse map has more than {} segments",
                    sparse::MAX_SEGMENTS
                ));
            }
        }
        let real = header::number(&block[header::GNU_REAL_SIZE]).ok_or("an unreadable real size")?;
        sparse::Map::new(segs, real, stored)
    }

    /// The map of a pax 1.0 sparse entry, read from the start of its data (whole blocks).
    fn data_map(&mut self, real_size: u64) -> Result<sparse::Map> {
        let path = self.current.clone();
        let mut parser = DataMapParser::default();
        loop {
            if self.left < BLOCK as u64 {
                return Err(Error::Archive(ArchiveError::entry(
                    &path,
                    "the sparse map runs past the data",
                )));
            }
            let mut block: Block = [0; BLOCK];
            if !self.fill(&mut block, "in a sparse map")? {
                return Err(Error::Archive(ArchiveError::Truncated("in a sparse map".into())));
            }
            self.left -= BLOCK as u64;
            let (_, done) = parser
                .feed(&block)
                .map_err(|r| Error::Archive(ArchiveError::entry(&path, r)))?;
            if done {
                break;
            }
            if parser.consumed > MAX_PAX {
                return Err(Error::Archive(ArchiveError::entry(
                    &path,
                    "the sparse map is too large",
                )));
            }
        }
        parser
            .finish(real_size, self.left)
            .map_err(|r| Error::Archive(ArchiveError::entry(&path, r)))
    }

    /// The current entry's bytes (zeros in a sparse file's holes). Errors that are the
    /// archive's fault come as I/O errors carrying an [`ArchiveError`] (see
    /// [`super::unwrap_error`]).
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    fn read_stored(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (buf.len() as u64).min(self.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    let what = format!("in the data of '{}'", String::from_utf8_lossy(&self.current));
                    return Err(ArchiveError::Truncated(what).into_io());
                }
                Ok(n) => {
                    self.left -= n as u64;
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Reads the current entry's bytes; see [`TarReader::data`].
pub struct EntryData<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let r = &mut *self.reader;
        let Some(expander) = r.sparse.as_mut() else {
            return r.read_stored(buf);
        };
        match expander.step() {
            Step::End => Ok(0),
            Step::Zeros(n) => {
                let n = (buf.len() as u64).min(n) as usize;
                buf[..n].fill(0);
                expander.advance(n as u64);
                Ok(n)
            }
            Step::Data(n) => {
                let n = (buf.len() as u64).min(n) as usize;
                let got = r.read_stored(&mut buf[..n])?;
                if let Some(e) = r.sparse.as_mut() {
                    e.advance(got as u64);
                }
                if got == 0 {
                    // The map was checked against the stored size; this cannot happen.
                    return Err(ArchiveError::Truncated("in a sparse file's data".into()).into_io());
                }
                Ok(got)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pax;
    use super::*;

    fn block(name: &[u8], typeflag: u8, size: u64) -> Block {
        let mut b: Block = [0; BLOCK];
        b[..name.len()].copy_from_slice(name);
        header::put_number(&mut b[header::MODE], 0o644);
        header::put_number(&mut b[header::SIZE], size);
        b[header::TYPEFLAG] = typeflag;
        b[header::MAGIC].copy_from_slice(b"ustar\0");
        b[header::VERSION].copy_from_slice(b"00");
        header::put_checksum(&mut b);
        b
    }

    #[test]
    fn a_size_no_archive_can_have_is_an_error() {
        let mut bytes = block(b"d/", b'5', u64::MAX - 3).to_vec();
        bytes.extend([0u8; 2 * BLOCK]);
        let err = TarReader::new(&bytes[..]).next_entry().unwrap_err();
        assert!(matches!(err, Error::Archive(ArchiveError::BadHeader { .. })), "{err}");
    }

    #[test]
    fn global_records_keep_one_value_per_key() {
        let record = pax::encode("comment", &[b'c'; 400]);
        let mut bytes = Vec::new();
        for _ in 0..50 {
            bytes.extend(block(b"g", b'g', record.len() as u64));
            bytes.extend(&record);
            bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        bytes.extend(block(b"f", b'0', 0));
        bytes.extend([0u8; 2 * BLOCK]);
        let mut r = TarReader::new(&bytes[..]);
        assert_eq!(r.next_entry().unwrap().unwrap().path, b"f");
        assert_eq!(r.global.0.len(), 1);
        assert!(r.next_entry().unwrap().is_none());
    }
}
