//! The zlib streams of chunked blobs, kept after they were first sent.
//!
//! Git keeps its large objects compressed (and often deltified), so serving them costs it a
//! copy. A chunked blob lives uncompressed in the chunk store, and compressing it was about a
//! third of the server's time in a clone of the kernel corpus. The first pack that carries a
//! chunked blob therefore also writes the blob's zlib stream here; later packs copy it. A git
//! import writes the entries of the large blobs it stored whole in its pack ([`super::kept`]),
//! so their first clone compresses nothing.
//!
//! A blob id names immutable content, so an entry never goes stale. Entries are written to a
//! temporary file, flushed to disk and renamed into place, so a present entry is complete (even
//! after a power loss); a missing or unreadable one only means compressing again. The entries
//! count against the git cache budget ([`GitCache`]): the least recently used go when it is
//! full, and a hit marks an entry as used.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use gix::ObjectId;

use aether_core::git_cache::GitCache;
use aether_core::objects::Objects;

use super::ServeError;

/// Write the zlib stream of chunked blob `oid` (`size` bytes) to `out`, from the cache when it
/// holds it, otherwise compressing from the chunk store and keeping the stream for next time
/// (in `dir`, the git cache's zlib directory; `None` keeps nothing).
/// Returns the number of compressed bytes written.
pub(crate) fn write_blob<W: Write>(
    objects: &Arc<Objects>,
    dir: Option<&Path>,
    oid: &ObjectId,
    size: u64,
    out: &mut W,
) -> Result<u64, ServeError> {
    let path = dir.map(|d| GitCache::entry_path(d, oid));
    if let Some(path) = &path
        && let Ok(mut cached) = File::open(path)
    {
        GitCache::touch(&cached);
        return Ok(std::io::copy(&mut cached, out)?);
    }
    // Compress once, into the pack and (when a cache is there) a temporary file beside the entry.
    let mut tmp = path.as_deref().and_then(TempEntry::new);
    let mut sink = Tee {
        out,
        copy: tmp.as_mut().map(|t| BufWriter::with_capacity(1 << 20, &mut t.file)),
        n: 0,
    };
    let mut z = ZlibEncoder::new(&mut sink, Compression::fast());
    let mut reader = objects.reader(oid, 0)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        z.write_all(&buf[..n])?;
    }
    z.finish()?;
    if total != size {
        return Err(ServeError::Corrupt(format!(
            "chunked blob {oid} has {total} bytes, its manifest says {size}"
        )));
    }
    let written = sink.n;
    let complete = sink.copy.take().is_some_and(|w| w.into_inner().is_ok());
    drop(sink);
    if let (true, Some(tmp), Some(path)) = (complete, tmp, &path) {
        // A failure costs only the cache entry: the pack has the bytes.
        if tmp.persist(path) {
            objects.git_cache().added(written);
        }
    }
    Ok(written)
}

/// A cache entry being written; removed when dropped unless persisted.
pub(crate) struct TempEntry {
    pub(crate) file: File,
    path: PathBuf,
}

impl TempEntry {
    /// A temporary file in the entry's directory, or `None` when it cannot be made (then
    /// nothing is cached).
    pub(crate) fn new(entry: &Path) -> Option<Self> {
        let parent = entry.parent()?;
        std::fs::create_dir_all(parent).ok()?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!(".tmp-{}-{n}", std::process::id()));
        let file = File::create(&path).ok()?;
        Some(TempEntry { file, path })
    }

    /// Flush to disk, then rename into place: a present entry is always complete.
    pub(crate) fn persist(self, entry: &Path) -> bool {
        self.file.sync_all().is_ok() && std::fs::rename(&self.path, entry).is_ok()
    }
}

impl Drop for TempEntry {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path); // already gone after a rename
    }
}

/// Writes to `out`, and to `copy` while it works (a failed copy is dropped, the pack goes on).
struct Tee<'a, W: Write> {
    out: &'a mut W,
    copy: Option<BufWriter<&'a mut File>>,
    n: u64,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(copy) = &mut self.copy
            && copy.write_all(&buf[..n]).is_err()
        {
            self.copy = None;
        }
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
