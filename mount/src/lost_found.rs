//! The journal of a cache directory's `lost+found`: one JSON line per change a mount made that
//! the server does not hold (refused, or unsent when the mount stopped), naming the mount
//! point, the session, the path, the change, why, its errno and where the bytes of an upload
//! were kept; and one line when a later upload of the same file was accepted, so the refusal
//! no longer stands. Mount processes append to it as refusals happen; `aether mount status`
//! reads it, while the mount runs or long after. This module only writes and reads the
//! journal; it never decides what is refused (the writeback does) and never deletes kept bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::refused::Refusal;

/// The journal's name inside `lost+found` (kept bytes are named `<ns>-<path>`, never this).
pub const JOURNAL: &str = "refusals.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line {
    /// The server does not hold a change.
    Refused {
        /// Milliseconds since the epoch.
        at: u64,
        mount: PathBuf,
        session: String,
        pid: u32,
        #[serde(flatten)]
        refusal: Refusal,
    },
    /// An upload of the same file, queued after the refusal `seq` of the mount process `pid`,
    /// was accepted: that refusal no longer stands.
    Replaced {
        at: u64,
        mount: PathBuf,
        pid: u32,
        seq: u64,
    },
}

/// Appends the refusals of one mount process to its cache directory's journal.
#[derive(Debug, Clone)]
pub struct Journal {
    file: PathBuf,
    mount: PathBuf,
    session: String,
    pid: u32,
}

impl Journal {
    /// The journal in `lost_dir` for this process's mount of `session` on `mount` (absolute).
    pub fn new(lost_dir: &Path, mount: &Path, session: &str) -> Journal {
        Journal {
            file: lost_dir.join(JOURNAL),
            mount: mount.to_path_buf(),
            session: session.to_owned(),
            pid: std::process::id(),
        }
    }

    /// Record that the server does not hold `r`. A journal that cannot be written is logged:
    /// the refusal still fails its waiters and is still in the mount's log and exit status.
    pub fn refused(&self, r: &Refusal) {
        self.append(&Line::Refused {
            at: now_ms(),
            mount: self.mount.clone(),
            session: self.session.clone(),
            pid: self.pid,
            refusal: r.clone(),
        });
    }

    /// Record that the refusals `seqs` of this process were replaced by an accepted upload.
    pub fn replaced(&self, seqs: &[u64]) {
        for &seq in seqs {
            self.append(&Line::Replaced {
                at: now_ms(),
                mount: self.mount.clone(),
                pid: self.pid,
                seq,
            });
        }
    }

    fn append(&self, line: &Line) {
        let written = (|| -> std::io::Result<()> {
            if let Some(dir) = self.file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            // One write of the whole line to a file opened for appending: lines of several
            // mount processes sharing the cache directory do not mix.
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.file)?;
            f.write_all(&bytes)
        })();
        if let Err(e) = written {
            tracing::error!(error = %e, journal = %self.file.display(),
                "cannot record a change the server does not hold in the lost+found journal");
        }
    }
}

/// A change the server does not hold, as the journal of a cache directory tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// When it was refused (milliseconds since the epoch).
    pub at: u64,
    /// The mount point and session it was made through, and the mount process.
    pub mount: PathBuf,
    pub session: String,
    pub pid: u32,
    #[serde(flatten)]
    pub refusal: Refusal,
    /// Whether the bytes of an upload are still where they were kept (the user may have moved
    /// them out after recovering them).
    pub bytes_present: bool,
    /// A later upload of the same file through the same mount was accepted: the server holds
    /// newer bytes, and this refusal no longer stands.
    pub replaced: bool,
}

/// Every change recorded in `lost_dir`'s journal, oldest first; only those made through the
/// mount point `mount` when given. No journal: nothing was ever refused there.
pub fn list(lost_dir: &Path, mount: Option<&Path>) -> std::io::Result<Vec<Kept>> {
    let text = match std::fs::read_to_string(lost_dir.join(JOURNAL)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<Kept> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // A torn or foreign line is skipped, not a reason to hide the others.
        let Ok(parsed) = serde_json::from_str::<Line>(line) else {
            tracing::warn!(line, "skipping an unreadable line of the lost+found journal");
            continue;
        };
        match parsed {
            Line::Refused {
                at,
                mount: m,
                session,
                pid,
                refusal,
            } => {
                if mount.is_some_and(|want| want != m) {
                    continue;
                }
                let bytes_present = refusal.kept.as_deref().is_some_and(Path::exists);
                out.push(Kept {
                    at,
                    mount: m,
                    session,
                    pid,
                    refusal,
                    bytes_present,
                    replaced: false,
                });
            }
            Line::Replaced { mount: m, pid, seq, .. } => {
                for k in out
                    .iter_mut()
                    .filter(|k| k.pid == pid && k.mount == m && k.refusal.seq == seq)
                {
                    k.replaced = true;
                }
            }
        }
    }
    Ok(out)
}

fn now_ms() -> u64 {
    (crate::now_ns() / 1_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(seq: u64, path: &str, kept: Option<PathBuf>) -> Refusal {
        Refusal {
            seq,
            ino: 7,
            path: path.into(),
            change: "upload".into(),
            error: "too large: over 1 MiB".into(),
            errno: libc::EFBIG,
            kept,
        }
    }

    #[test]
    fn the_journal_lists_each_refusal_per_mount_and_what_replaced_it() {
        let dir = tempfile::tempdir().unwrap();
        let lost = dir.path().join("lost+found");
        let bytes = lost.join("1-big.bin");
        let a = Journal::new(&lost, Path::new("/mnt/a"), "s1");
        let b = Journal::new(&lost, Path::new("/mnt/b"), "s2");
        a.refused(&refusal(3, "big.bin", Some(bytes.clone())));
        std::fs::write(&bytes, b"kept").unwrap();
        b.refused(&refusal(3, "other.bin", None));
        a.refused(&refusal(5, "later.bin", None));
        a.replaced(&[5]);
        // A torn line (a process killed mid-write) hides nothing else.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(lost.join(JOURNAL))
            .unwrap();
        f.write_all(b"{\"event\":\"refu").unwrap();
        drop(f);

        let all = list(&lost, None).unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        let of_a = list(&lost, Some(Path::new("/mnt/a"))).unwrap();
        assert_eq!(
            of_a.iter()
                .map(|k| (k.refusal.path.as_str(), k.replaced, k.bytes_present))
                .collect::<Vec<_>>(),
            [("big.bin", false, true), ("later.bin", true, false)]
        );
        assert_eq!(of_a[0].session, "s1");
        assert_eq!(of_a[0].refusal.errno, libc::EFBIG);
        assert_eq!(of_a[0].refusal.kept.as_deref(), Some(bytes.as_path()));
        // The bytes moved out after recovery: still listed, no longer present.
        std::fs::remove_file(&bytes).unwrap();
        assert!(!list(&lost, Some(Path::new("/mnt/a"))).unwrap()[0].bytes_present);
        // No journal: nothing refused.
        assert!(list(&dir.path().join("none"), None).unwrap().is_empty());
    }
}
