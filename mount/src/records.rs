//! The files a mount process keeps in `mounts/` of the default cache directory (whatever its
//! `--cache-dir`; see `command::records_root`) for `aether unmount`, which runs in
//! another process: a pid file naming the process while it serves the mount, and, written as it
//! exits, a status file saying whether the server holds every write the mount accepted (and if
//! not, which changes, and where their bytes are kept). `aether unmount` unmounts, then waits
//! for that status: that is what makes it a barrier. Both files are named after the mount point.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::refused::Refusal;

/// Where the records of the mount on `mountpoint` (absolute) live under the cache `cache`.
pub struct Records {
    pid: PathBuf,
    status: PathBuf,
}

impl Records {
    pub fn new(cache: &Path, mountpoint: &Path) -> Records {
        let name = mountpoint.to_string_lossy().replace('%', "%25").replace('/', "%2F");
        let dir = cache.join("mounts");
        Records {
            pid: dir.join(format!("{name}.pid")),
            status: dir.join(format!("{name}.status")),
        }
    }

    /// Record this process as the one serving the mount, and forget the status a previous
    /// mount on the same point left.
    pub fn serving(&self) -> std::io::Result<()> {
        if let Some(dir) = self.pid.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(&self.status);
        let me = Process::current();
        write_atomically(&self.pid, format!("{} {}", me.pid, me.start.unwrap_or(0)).as_bytes())
    }

    /// The process serving the mount, if a pid file names one. It may have died since.
    pub fn server(&self) -> Option<Process> {
        let text = std::fs::read_to_string(&self.pid).ok()?;
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        // Written by an older version: the pid alone.
        let start = parts.next().and_then(|s| s.parse().ok()).filter(|s| *s != 0);
        Some(Process { pid, start })
    }

    /// The mount process's last word, written just before it exits; the pid file goes.
    pub fn exiting(&self, status: &ExitStatus) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
        let written = write_atomically(&self.status, &json);
        let _ = std::fs::remove_file(&self.pid);
        written
    }

    /// The status left by the process `pid`, if it has written one; it is removed once read.
    pub fn take_status(&self, pid: u32) -> Option<ExitStatus> {
        let bytes = std::fs::read(&self.status).ok()?;
        let status: ExitStatus = serde_json::from_slice(&bytes).ok()?;
        if status.pid != pid {
            return None;
        }
        let _ = std::fs::remove_file(&self.status);
        Some(status)
    }
}

/// Write `bytes` to `path` through a unique temporary name, so a reader sees all or nothing.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("record"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// How a mount process ended: what the server does not hold of the writes it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub pid: u32,
    /// Refused for good, or still unsent when the mount stopped (the server unreachable).
    pub not_on_server: Vec<Refusal>,
    /// Where the bytes of uploads the server does not hold are kept.
    pub lost_found: PathBuf,
}

/// A process, told apart from a later one that got the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// Clock ticks after boot (`/proc/PID/stat`), when known.
    start: Option<u64>,
}

impl Process {
    fn current() -> Process {
        let pid = std::process::id();
        Process {
            pid,
            start: start_time(pid),
        }
    }

    /// Whether the process still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let running = fields.first().is_some_and(|state| *state != "Z" && *state != "X");
        let same = match self.start {
            Some(start) => fields.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(start),
            None => true,
        };
        running && same
    }
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unmount_reads_the_status_of_the_process_it_waits_for_once() {
        let cache = tempfile::tempdir().unwrap();
        let records = Records::new(cache.path(), Path::new("/some/mount point"));
        assert!(records.server().is_none());
        records.serving().unwrap();
        let me = records.server().unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(me.alive());
        // A pid reused by another process is not this one.
        assert!(
            !Process {
                pid: me.pid,
                start: me.start.map(|s| s + 1)
            }
            .alive()
        );
        let status = ExitStatus {
            pid: me.pid,
            not_on_server: vec![],
            lost_found: cache.path().join("lost+found"),
        };
        records.exiting(&status).unwrap();
        assert!(records.server().is_none(), "the pid file goes at exit");
        assert_eq!(records.take_status(me.pid + 1), None, "another process's status");
        assert_eq!(records.take_status(me.pid), Some(status));
        assert_eq!(records.take_status(me.pid), None, "read once");
    }
}
