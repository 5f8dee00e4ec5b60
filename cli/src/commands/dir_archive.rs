//! A local directory as a tar stream, for `session create --from-dir`: names and symlink targets
//! as the bytes the file system holds (nothing goes through a path parser, which would turn
//! `../.././x` into `../../x` or `subdir/.` into `subdir`), every permission bit of files and
//! directories, empty directories, a nested `.git`, and second names of a file as hard links.
//! Names and targets over 100 bytes get a pax record. Fifos, sockets and devices cannot be in
//! a session: they are left out, each with a warning. The server checks everything else
//! (names that are not UTF-8 are refused there, in one place for every client).
//!
//! The header layout mirrors `aether_core::archive::write` (this crate does not depend on core).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

/// Write every entry below `dir` (not `dir` itself) as tar into `out`; `warn` hears about each
/// entry left out.
pub fn archive_dir<W: Write>(dir: &Path, out: W, mut warn: impl FnMut(String)) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(out);
    // Files already written, by (device, inode), for their other names.
    let mut written: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(dir.to_path_buf(), Vec::new())];
    while let Some((local, prefix)) = stack.pop() {
        let mut entries = std::fs::read_dir(&local)
            .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
            .map_err(at(&local))?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = [&prefix[..], entry.file_name().as_bytes()].concat();
            let full = entry.path();
            let meta = std::fs::symlink_metadata(&full).map_err(at(&full))?;
            let ft = meta.file_type();
            let mode = meta.mode() & 0o7777;
            let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
            if ft.is_dir() {
                let dir_name = [&name[..], b"/"].concat();
                append(
                    &mut builder,
                    &dir_name,
                    EntryType::Directory,
                    mode,
                    mtime,
                    b"",
                    0,
                    std::io::empty(),
                )?;
                subdirs.push((full, dir_name));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&full).map_err(at(&full))?;
                let target = target.as_os_str().as_bytes();
                append(
                    &mut builder,
                    &name,
                    EntryType::Symlink,
                    0o777,
                    mtime,
                    target,
                    0,
                    std::io::empty(),
                )?;
            } else if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                if meta.nlink() > 1
                    && let Some(first) = written.get(&key)
                {
                    append(
                        &mut builder,
                        &name,
                        EntryType::Link,
                        mode,
                        mtime,
                        first,
                        0,
                        std::io::empty(),
                    )?;
                    continue;
                }
                let file = std::fs::File::open(&full).map_err(at(&full))?;
                append(
                    &mut builder,
                    &name,
                    EntryType::Regular,
                    mode,
                    mtime,
                    b"",
                    meta.len(),
                    file,
                )?;
                if meta.nlink() > 1 {
                    written.insert(key, name);
                }
            } else {
                let kind = if ft.is_fifo() {
                    "a fifo"
                } else if ft.is_socket() {
                    "a socket"
                } else {
                    "a device"
                };
                warn(format!(
                    "left out {}: {kind} cannot be stored in a session",
                    full.display()
                ));
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    builder.into_inner()
}

/// An I/O error that names the local path it concerns.
fn at(path: &Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Copy `bytes` into a header field, truncated to it (a pax record carries the whole).
fn put(field: &mut [u8], bytes: &[u8]) {
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

/// One pax record: its length counts itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    [format!("{len} {key}=").as_bytes(), value, b"\n"].concat()
}

#[allow(clippy::too_many_arguments)]
fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &[u8],
    kind: EntryType,
    mode: u32,
    mtime: u64,
    link: &[u8],
    size: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut records = Vec::new();
    if name.len() > 100 {
        records.extend(pax_record("path", name));
    }
    if link.len() > 100 {
        records.extend(pax_record("linkpath", link));
    }
    if !records.is_empty() {
        if std::str::from_utf8(name).is_err() || std::str::from_utf8(link).is_err() {
            records = [pax_record("hdrcharset", b"BINARY"), records].concat();
        }
        let mut pax = Header::new_ustar();
        put(&mut pax.as_old_mut().name, b"././@PaxHeader");
        pax.set_entry_type(EntryType::XHeader);
        pax.set_mode(0o644);
        pax.set_size(records.len() as u64);
        pax.set_mtime(mtime);
        pax.set_cksum();
        builder.append(&pax, &records[..])?;
    }
    let mut h = Header::new_ustar();
    put(&mut h.as_old_mut().name, name);
    put(&mut h.as_old_mut().linkname, link);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_cksum();
    // A file that changes size while it is archived must not shift the archive: exactly `size`
    // bytes are written, or the upload fails.
    let mut data = data.take(size);
    let mut counted = Counted { inner: &mut data, n: 0 };
    builder.append(&h, &mut counted)?;
    if counted.n != size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "{} shrank while it was read ({} of {size} bytes)",
                String::from_utf8_lossy(name),
                counted.n
            ),
        ));
    }
    Ok(())
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}
