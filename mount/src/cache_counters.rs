//! Integrity counters of a cache directory, kept in it, so `aether cache stats` shows what every
//! mount that used the directory dropped or refused (a mount process's own counts end with it).
//!
//! Updated under an exclusive `flock`, read-modify-write: the events are rare (each one is a
//! damaged cache file or a server answer that failed verification), so the cost does not matter.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

const FILE: &str = "integrity.json";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Integrity {
    /// Disk cache blocks that failed their checks and were removed (then fetched again).
    pub corrupt_blocks_dropped: u64,
    /// Bytes from the server (or written locally) that were not the content they were for.
    pub verification_failures: u64,
}

/// Add `delta` to the counters of the cache directory `dir` (its `blocks` directory).
pub fn add(dir: &Path, delta: Integrity) -> io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(FILE))?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    // Unreadable counters (a crash mid-write) start again from zero rather than fail the read.
    let mut now: Integrity = serde_json::from_str(&text).unwrap_or_default();
    now.corrupt_blocks_dropped += delta.corrupt_blocks_dropped;
    now.verification_failures += delta.verification_failures;
    let text = serde_json::to_string(&now).map_err(io::Error::other)?;
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())
}

/// The counters of the cache directory `dir` (zero when none were recorded).
pub fn read(dir: &Path) -> io::Result<Integrity> {
    match std::fs::read_to_string(dir.join(FILE)) {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap_or_default()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Integrity::default()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_across_writers() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), Integrity::default());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..10 {
                        add(
                            dir.path(),
                            Integrity {
                                corrupt_blocks_dropped: 1,
                                verification_failures: 2,
                            },
                        )
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(
            read(dir.path()).unwrap(),
            Integrity {
                corrupt_blocks_dropped: 80,
                verification_failures: 160
            }
        );
    }
}
