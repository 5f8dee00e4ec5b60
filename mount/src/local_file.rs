//! The bytes of a file being written through the mount, held locally until the server has them.
//!
//! A new file's bytes stay in memory while they are small: creating a staging file costs more
//! than writing a small file (an inode on the local file system, and on a journaling file system
//! the journal), and most files written through a mount (an untar, a build, a checkout) are
//! small. A file passes to an unnamed staging file (`O_TMPFILE`) once it grows past
//! [`SPILL_AT`], and so does any file that would take the bytes held in memory by all files of
//! the mount past [`MEMORY_CAP`]: memory use stays bounded whatever is written.

use std::fs::File;
use std::io::{Error, ErrorKind, Result};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// A file whose bytes would pass this size moves to a staging file.
pub const SPILL_AT: u64 = 1 << 20;
/// The most bytes all files of one mount keep in memory together.
pub const MEMORY_CAP: u64 = 256 << 20;

/// Where files being written keep their bytes: the staging directory and the memory budget
/// shared by every file of the mount.
pub struct Staging {
    dir: PathBuf,
    seq: AtomicU64,
    spill_at: u64,
    memory_cap: u64,
    /// Bytes allocated in memory by live files (their buffers' capacity).
    in_memory: AtomicU64,
}

impl Staging {
    /// Staging in `dir` (which must exist) with the default limits.
    pub fn new(dir: PathBuf) -> Arc<Staging> {
        Staging::with_limits(dir, SPILL_AT, MEMORY_CAP)
    }

    /// Staging in `dir`: a file moves to disk when it would pass `spill_at` bytes, or when the
    /// files in memory would hold more than `memory_cap` bytes together.
    pub fn with_limits(dir: PathBuf, spill_at: u64, memory_cap: u64) -> Arc<Staging> {
        Arc::new(Staging {
            dir,
            seq: AtomicU64::new(0),
            spill_at,
            memory_cap,
            in_memory: AtomicU64::new(0),
        })
    }

    /// A new empty file, in memory.
    pub fn new_file(self: &Arc<Self>) -> LocalFile {
        LocalFile {
            staging: self.clone(),
            bytes: RwLock::new(Bytes::Memory {
                data: Vec::new(),
                charged: 0,
            }),
        }
    }

    /// A new empty file that will receive about `size` bytes: on disk at once when that is more
    /// than a file keeps in memory.
    pub fn file_for(self: &Arc<Self>, size: u64) -> Result<LocalFile> {
        if size <= self.spill_at {
            return Ok(self.new_file());
        }
        Ok(LocalFile {
            staging: self.clone(),
            bytes: RwLock::new(Bytes::Disk(self.disk_file()?)),
        })
    }

    /// Bytes the files of this mount hold in memory now.
    pub fn in_memory(&self) -> u64 {
        self.in_memory.load(Ordering::SeqCst)
    }

    /// An unnamed file in the staging directory.
    fn disk_file(&self) -> Result<File> {
        // An unnamed file (O_TMPFILE): no directory entry to create and remove, which on a
        // journaling file system is most of the cost of a staging file.
        if let Ok(f) = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(&self.dir)
        {
            return Ok(f);
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("w{}-{n}", std::process::id()));
        let f = File::options().read(true).write(true).create_new(true).open(&path)?;
        // The open descriptor keeps the bytes; nothing is left behind if the mount dies.
        let _ = std::fs::remove_file(&path);
        Ok(f)
    }

    /// Take `n` more bytes of the memory budget, unless that would pass the cap.
    fn charge(&self, n: u64) -> bool {
        self.in_memory
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                held.checked_add(n).filter(|&total| total <= self.memory_cap)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        self.in_memory.fetch_sub(n, Ordering::SeqCst);
    }
}

enum Bytes {
    /// `charged` is what this buffer takes from the budget: its capacity.
    Memory {
        data: Vec<u8>,
        charged: u64,
    },
    Disk(File),
}

/// A file's bytes held locally while it is written: in memory while small, else in an unnamed
/// staging file. Reads and writes by position, like `pread`/`pwrite` on a file: a write past the
/// end leaves zeros between (a hole on disk), `set_len` truncates or extends with zeros.
pub struct LocalFile {
    staging: Arc<Staging>,
    bytes: RwLock<Bytes>,
}

fn too_large() -> Error {
    Error::from_raw_os_error(libc::EFBIG)
}

impl LocalFile {
    pub fn size(&self) -> Result<u64> {
        match &*self.bytes.read() {
            Bytes::Memory { data, .. } => Ok(data.len() as u64),
            Bytes::Disk(f) => Ok(f.metadata()?.len()),
        }
    }

    /// Whether the bytes are on disk (for tests and the log).
    pub fn on_disk(&self) -> bool {
        matches!(&*self.bytes.read(), Bytes::Disk(_))
    }

    /// Read at `offset` into `buf`: how many bytes were read, 0 at or past the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        match &*self.bytes.read() {
            Bytes::Memory { data, .. } => {
                let Ok(start) = usize::try_from(offset) else {
                    return Ok(0);
                };
                if start >= data.len() {
                    return Ok(0);
                }
                let n = buf.len().min(data.len() - start);
                buf[..n].copy_from_slice(&data[start..start + n]);
                Ok(n)
            }
            Bytes::Disk(f) => f.read_at(buf, offset),
        }
    }

    /// Fill `buf` from `offset`; an error if the file ends before.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], offset + done as u64)? {
                0 => return Err(Error::from(ErrorKind::UnexpectedEof)),
                n => done += n,
            }
        }
        Ok(())
    }

    /// All the bytes as they are now.
    pub fn contents(&self) -> Result<Vec<u8>> {
        match &*self.bytes.read() {
            Bytes::Memory { data, .. } => Ok(data.clone()),
            Bytes::Disk(f) => {
                let len = usize::try_from(f.metadata()?.len()).map_err(|_| too_large())?;
                let mut data = vec![0; len];
                let mut done = 0;
                while done < len {
                    match f.read_at(&mut data[done..], done as u64)? {
                        0 => break,
                        n => done += n,
                    }
                }
                data.truncate(done);
                Ok(data)
            }
        }
    }

    /// Write all of `data` at `offset`.
    pub fn write_at(&self, data: &[u8], offset: u64) -> Result<()> {
        let end = offset.checked_add(data.len() as u64).ok_or_else(too_large)?;
        let mut bytes = self.bytes.write();
        if let Bytes::Memory { .. } = &*bytes
            && !self.grow_in_memory(&mut bytes, end)
        {
            self.spill(&mut bytes)?;
        }
        match &mut *bytes {
            Bytes::Memory { data: buf, .. } => {
                // `end` fits in the buffer: grow_in_memory made it that long.
                let start = offset as usize;
                buf[start..start + data.len()].copy_from_slice(data);
                Ok(())
            }
            Bytes::Disk(f) => f.write_all_at(data, offset),
        }
    }

    /// Truncate to `len` bytes or extend with zeros.
    pub fn set_len(&self, len: u64) -> Result<()> {
        let mut bytes = self.bytes.write();
        if let Bytes::Memory { data, charged } = &mut *bytes
            && len <= data.len() as u64
        {
            data.truncate(len as usize);
            // Give back what a large truncation frees (a file rewritten from zero is common).
            if (data.capacity() as u64) > 2 * len + 4096 {
                data.shrink_to(len as usize);
                let now = data.capacity() as u64;
                self.staging.release(charged.saturating_sub(now));
                *charged = now.min(*charged);
            }
            return Ok(());
        }
        if let Bytes::Memory { .. } = &*bytes
            && !self.grow_in_memory(&mut bytes, len)
        {
            self.spill(&mut bytes)?;
        }
        match &*bytes {
            Bytes::Memory { .. } => Ok(()),
            Bytes::Disk(f) => f.set_len(len),
        }
    }

    /// Make an in-memory buffer at least `end` bytes long (zeros added), if it may stay in
    /// memory at that size. False when it must move to disk; then nothing changed.
    fn grow_in_memory(&self, bytes: &mut Bytes, end: u64) -> bool {
        let Bytes::Memory { data, charged } = bytes else {
            return false;
        };
        if end <= data.len() as u64 {
            return true;
        }
        if end > self.staging.spill_at {
            return false;
        }
        let cap = data.capacity() as u64;
        if end > cap {
            // Double as a Vec would, but never past the spill size, and charge it first.
            let want = end.max(cap.saturating_mul(2)).min(self.staging.spill_at);
            if !self.staging.charge(want.saturating_sub(*charged)) {
                return false;
            }
            *charged = want.max(*charged);
            data.reserve_exact((want as usize).saturating_sub(data.len()));
            // The allocator may give a little more than asked: count what is held.
            let held = data.capacity() as u64;
            if held > *charged {
                self.staging.in_memory.fetch_add(held - *charged, Ordering::SeqCst);
                *charged = held;
            }
        }
        data.resize(end as usize, 0);
        true
    }

    /// Move in-memory bytes to a staging file.
    fn spill(&self, bytes: &mut Bytes) -> Result<()> {
        let Bytes::Memory { data, charged } = bytes else {
            return Ok(());
        };
        let file = self.staging.disk_file()?;
        file.write_all_at(data, 0)?;
        self.staging.release(*charged);
        *bytes = Bytes::Disk(file);
        Ok(())
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if let Bytes::Memory { charged, .. } = &*self.bytes.get_mut() {
            self.staging.release(*charged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local file checked against a reference `Vec` after every step.
    struct Checked {
        file: LocalFile,
        reference: Vec<u8>,
    }

    impl Checked {
        fn new(staging: &Arc<Staging>) -> Checked {
            Checked {
                file: staging.new_file(),
                reference: Vec::new(),
            }
        }

        fn write(&mut self, offset: usize, data: &[u8]) {
            self.file.write_at(data, offset as u64).unwrap();
            if self.reference.len() < offset + data.len() {
                self.reference.resize(offset + data.len(), 0);
            }
            self.reference[offset..offset + data.len()].copy_from_slice(data);
            self.check();
        }

        fn set_len(&mut self, len: usize) {
            self.file.set_len(len as u64).unwrap();
            self.reference.resize(len, 0);
            self.check();
        }

        fn check(&self) {
            assert_eq!(self.file.size().unwrap(), self.reference.len() as u64);
            let contents = self.file.contents().unwrap();
            assert!(contents == self.reference, "contents differ from the reference");
            // Reads at odd offsets and lengths, including past the end.
            for (off, len) in [(0, 7), (3, 4096), (self.reference.len().saturating_sub(5), 64)] {
                let mut buf = vec![0xAA; len];
                let n = self.file.read_at(&mut buf, off as u64).unwrap();
                let want = &self.reference[off.min(self.reference.len())..(off + len).min(self.reference.len())];
                assert_eq!(&buf[..n], want, "read of {len} at {off}");
            }
            let mut past = [0u8; 4];
            assert_eq!(
                self.file.read_at(&mut past, self.reference.len() as u64 + 10).unwrap(),
                0
            );
        }
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn writes_across_the_spill_size_read_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::with_limits(dir.path().to_path_buf(), 64 << 10, 1 << 30);
        let mut f = Checked::new(&staging);
        // Sequential writes in pieces that do not divide the spill size.
        let mut off = 0;
        while off < 100 << 10 {
            let piece = pattern(7000, off as u8);
            f.write(off, &piece);
            let in_memory = off + piece.len() <= 64 << 10;
            assert_eq!(f.file.on_disk(), !in_memory, "at {off}");
            off += piece.len();
        }
        // Rewrite across the old boundary, then shrink and grow again on disk.
        f.write((64 << 10) - 100, &pattern(300, 9));
        f.set_len(10);
        assert!(f.file.on_disk(), "a file on disk stays there");
        f.write(20, b"after a hole");
        drop(f);
        assert_eq!(staging.in_memory(), 0, "a spilled file holds no memory");
    }

    #[test]
    fn sparse_writes_and_truncation_in_memory_match_a_reference() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::with_limits(dir.path().to_path_buf(), 1 << 20, 1 << 30);
        let mut f = Checked::new(&staging);
        f.write(5000, b"hole before");
        f.write(0, b"start");
        f.write(4990, b"overlapping the hole's end");
        f.set_len(100_000); // truncate up: zeros
        f.write(99_999, b"x"); // last byte
        f.write(100_000, b"append"); // at the end
        f.set_len(4995); // truncate down into written bytes
        f.set_len(0);
        f.write(3, b"again");
        assert!(!f.file.on_disk());
        assert!(staging.in_memory() > 0);
        drop(f);
        assert_eq!(staging.in_memory(), 0, "the budget is given back on drop");
    }

    #[test]
    fn truncating_up_past_the_spill_size_goes_to_disk_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::with_limits(dir.path().to_path_buf(), 4096, 1 << 30);
        let mut f = Checked::new(&staging);
        f.write(0, b"head");
        f.set_len(1 << 20);
        assert!(f.file.on_disk());
        f.write((1 << 20) - 3, b"tail!");
        f.set_len(3);
    }

    #[test]
    fn memory_across_files_stays_under_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 256 << 10;
        let staging = Staging::with_limits(dir.path().to_path_buf(), 64 << 10, cap);
        let mut files = Vec::new();
        for i in 0..20 {
            let mut f = Checked::new(&staging);
            for piece in 0..6 {
                f.write(piece * 10_000, &pattern(10_000, i));
                assert!(staging.in_memory() <= cap, "{} held", staging.in_memory());
            }
            files.push(f);
        }
        let on_disk = files.iter().filter(|f| f.file.on_disk()).count();
        assert!(on_disk > 0 && on_disk < 20, "{on_disk} files spilled");
        for f in &files {
            f.check();
        }
        // Freed memory is used again by new files.
        files.retain(|f| f.file.on_disk());
        assert_eq!(staging.in_memory(), 0);
        let mut g = Checked::new(&staging);
        g.write(0, &pattern(50_000, 1));
        assert!(!g.file.on_disk());
    }

    #[test]
    fn a_file_sized_at_creation_past_the_spill_size_starts_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::with_limits(dir.path().to_path_buf(), 4096, 1 << 30);
        assert!(staging.file_for(5000).unwrap().on_disk());
        assert!(!staging.file_for(4096).unwrap().on_disk());
    }

    #[test]
    fn a_write_ending_past_u64_is_efbig() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path().to_path_buf());
        let f = staging.new_file();
        let e = f.write_at(b"xy", u64::MAX).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFBIG));
    }
}
