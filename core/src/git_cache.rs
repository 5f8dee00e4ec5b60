//! The git serving caches under `<data dir>/cache`, and the budget that bounds them.
//!
//! Serving a chunked blob to git costs compressing it; a git import can keep the blob's pack
//! entry as it came (whole or as a delta). Both are kept on disk, one file per blob id:
//! `git-zlib/ab/cdef…` (a zlib stream) and `git-delta/ab/cdef…` (a delta entry). Every entry is
//! derived from data the object database and chunk store still hold, so removing one only means
//! compressing again (or sending the blob whole): that makes the caches safe to bound.
//!
//! The budget counts the bytes of both directories together. Writers report what they added
//! ([`GitCache::added`]); past the limit, the least recently used entries (oldest modification
//! time: a hit refreshes it, [`GitCache::touch`]) are removed until the caches are back under
//! nine tenths of it, so a full cache is not scanned again at every entry. The first report after
//! start scans the directories to learn what an earlier process left.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gix::ObjectId;
use parking_lot::Mutex;

/// Temporary files (entries being written) older than this are left over from a crash.
const STALE_TMP: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct GitCache {
    zlib: PathBuf,
    delta: PathBuf,
    max_bytes: u64,
    /// Bytes in both directories; `None` until the first scan.
    used: Mutex<Option<u64>>,
}

/// One cache file, as an eviction pass sees it.
struct Entry {
    modified: SystemTime,
    len: u64,
    path: PathBuf,
}

impl GitCache {
    /// The caches under `root` (`<data dir>/cache`), holding at most `max_bytes`; 0 keeps none.
    pub fn new(root: &Path, max_bytes: u64) -> GitCache {
        GitCache {
            zlib: root.join("git-zlib"),
            delta: root.join("git-delta"),
            max_bytes,
            used: Mutex::new(None),
        }
    }

    /// Where zlib streams of whole blobs go; `None` when nothing may be kept.
    pub fn zlib_dir(&self) -> Option<&Path> {
        (self.max_bytes > 0).then_some(self.zlib.as_path())
    }

    /// Where kept delta entries go; `None` when nothing may be kept.
    pub fn delta_dir(&self) -> Option<&Path> {
        (self.max_bytes > 0).then_some(self.delta.as_path())
    }

    /// The file of `oid` in cache directory `dir`.
    pub fn entry_path(dir: &Path, oid: &ObjectId) -> PathBuf {
        let hex = oid.to_hex().to_string();
        dir.join(&hex[..2]).join(&hex[2..])
    }

    /// Mark an entry that was just used as recent (best effort: a failure only makes it an
    /// earlier candidate for removal).
    pub fn touch(file: &File) {
        let _ = file.set_modified(SystemTime::now());
    }

    /// Count `bytes` just persisted as new entries, and remove old entries when the caches are
    /// over their limit.
    pub fn added(&self, bytes: u64) {
        let mut used = self.used.lock();
        let now = match *used {
            Some(n) => n.saturating_add(bytes),
            // The scan sees the new entry too.
            None => self.scan().iter().map(|e| e.len).sum(),
        };
        *used = Some(if now > self.max_bytes { self.evict() } else { now });
    }

    /// Bytes the caches hold, as last counted (scanning when nothing was counted yet).
    pub fn used(&self) -> u64 {
        let mut used = self.used.lock();
        *used.get_or_insert_with(|| self.scan().iter().map(|e| e.len).sum())
    }

    /// Remove the least recently used entries until the caches hold at most nine tenths of the
    /// limit; returns what they hold then.
    fn evict(&self) -> u64 {
        let mut entries = self.scan();
        let mut total: u64 = entries.iter().map(|e| e.len).sum();
        let low = self.max_bytes / 10 * 9;
        entries.sort_by_key(|e| e.modified);
        for e in entries {
            if total <= low {
                break;
            }
            // An entry being read stays readable through its open descriptor.
            if std::fs::remove_file(&e.path).is_ok() {
                total -= e.len;
            }
        }
        total
    }

    /// Every entry of both directories; removes temporary files left by a crash on the way.
    fn scan(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for dir in [&self.zlib, &self.delta] {
            let Ok(fans) = std::fs::read_dir(dir) else { continue };
            for fan in fans.flatten() {
                let Ok(files) = std::fs::read_dir(fan.path()) else {
                    continue;
                };
                for file in files.flatten() {
                    let Ok(meta) = file.metadata() else { continue };
                    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    if file.file_name().to_string_lossy().starts_with(".tmp-") {
                        if modified.elapsed().is_ok_and(|age| age > STALE_TMP) {
                            let _ = std::fs::remove_file(file.path());
                        }
                        continue;
                    }
                    out.push(Entry {
                        modified,
                        len: meta.len(),
                        path: file.path(),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    /// Write an entry of `len` bytes last used `age_secs` ago.
    fn put(dir: &Path, n: u8, len: usize, age_secs: u64) -> PathBuf {
        let path = GitCache::entry_path(dir, &oid(n));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![n; len]).unwrap();
        let f = File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
            .unwrap();
        path
    }

    #[test]
    fn past_the_limit_the_least_recently_used_entries_go_first() {
        let root = tempfile::tempdir().unwrap();
        let cache = GitCache::new(root.path(), 1000);
        let (z, d) = (
            cache.zlib_dir().unwrap().to_owned(),
            cache.delta_dir().unwrap().to_owned(),
        );
        let oldest = put(&z, 1, 300, 400);
        let old = put(&d, 2, 300, 300);
        let used_lately = put(&z, 3, 300, 200);
        // A hit refreshes an entry: it becomes the most recent.
        GitCache::touch(&File::open(&used_lately).unwrap());
        assert_eq!(cache.used(), 900, "the first count scans both directories");
        let newest = put(&d, 4, 300, 0);
        cache.added(300);
        // 1,200 > 1,000: entries go, least recently used first, until at most 900 are left.
        assert!(!oldest.exists(), "the least recently used entry goes");
        assert!(old.exists() && used_lately.exists() && newest.exists());
        assert_eq!(cache.used(), 900);
        // Within the limit nothing is removed.
        put(&z, 5, 100, 0);
        cache.added(100);
        assert_eq!(cache.used(), 1000);
        assert!(old.exists() && GitCache::entry_path(&z, &oid(5)).exists());
        // Past it again: the next least recently used goes (the delta entry `old`).
        put(&z, 6, 100, 0);
        cache.added(100);
        assert!(!old.exists() && used_lately.exists());
        assert_eq!(cache.used(), 800);
    }

    #[test]
    fn a_count_after_a_restart_includes_what_was_there_and_crash_leftovers_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let z = root.path().join("git-zlib");
        put(&z, 1, 700, 10);
        let stale = z.join("01").join(".tmp-1-0");
        std::fs::write(&stale, [0u8; 50]).unwrap();
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(SystemTime::now() - STALE_TMP * 2)
            .unwrap();
        let fresh = z.join("01").join(".tmp-2-0");
        std::fs::write(&fresh, [0u8; 50]).unwrap();
        let cache = GitCache::new(root.path(), 1000);
        put(&z, 2, 400, 0);
        cache.added(400);
        // 1,100 bytes: over the limit, so the older entry goes.
        assert!(!GitCache::entry_path(&z, &oid(1)).exists());
        assert!(GitCache::entry_path(&z, &oid(2)).exists());
        assert_eq!(cache.used(), 400);
        assert!(!stale.exists(), "a temporary file from a crash is removed");
        assert!(fresh.exists(), "an entry being written is left alone");
    }

    #[test]
    fn a_zero_limit_keeps_nothing() {
        let root = tempfile::tempdir().unwrap();
        let cache = GitCache::new(root.path(), 0);
        assert!(cache.zlib_dir().is_none() && cache.delta_dir().is_none());
    }
}
