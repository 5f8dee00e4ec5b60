//! Changes made through the mount that the server does not hold: refused for good (permission
//! denied, over a limit, a missing parent), or still unsent when the mount stopped. Each is
//! recorded with where the bytes of an upload were kept (`lost+found`), so that nothing written
//! is dropped silently and nothing refused is reported as written: `fsync` of the file, `fsync`
//! of the mount's root, `aether unmount` and the mount process's exit status read them here.
//! This module only keeps the record; the writeback decides what is sent and when.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::RemoteOp;
use crate::writeback::{FileReader, LocalFile};

/// One change the server does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The writeback sequence number of the change.
    pub seq: u64,
    /// The inode the change was made to (0 when none).
    #[serde(skip)]
    pub ino: u64,
    /// The session path it was for (`from -> to` for a rename).
    pub path: String,
    /// What the change was: `upload`, `mkdir`, `symlink`, `delete`, `rename`, `chmod`.
    pub change: String,
    /// Why the server does not hold it.
    pub error: String,
    /// The errno an `fsync` or `close` waiting for the change fails with: what the refusal
    /// means (`EFBIG` over a size limit, `EROFS` for an archived session, `EACCES` for a token
    /// that may not write or was revoked, `EDQUOT` over a quota), `EIO` for anything else and
    /// for a change left unsent.
    #[serde(default = "eio")]
    pub errno: i32,
    /// Where the bytes of an upload were kept.
    pub kept: Option<PathBuf>,
}

fn eio() -> i32 {
    libc::EIO
}

/// The symbolic name of the errnos a refusal carries (`E<number>` for any other).
pub fn errno_name(errno: i32) -> String {
    match errno {
        libc::EIO => "EIO".into(),
        libc::EFBIG => "EFBIG".into(),
        libc::EROFS => "EROFS".into(),
        libc::EACCES => "EACCES".into(),
        libc::EDQUOT => "EDQUOT".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EEXIST => "EEXIST".into(),
        libc::ENOTDIR => "ENOTDIR".into(),
        libc::EISDIR => "EISDIR".into(),
        libc::ENOTEMPTY => "ENOTEMPTY".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ESTALE => "ESTALE".into(),
        n => format!("E{n}"),
    }
}

/// The one errno for several refusals waited for together: theirs when they agree, else `EIO`.
pub fn common_errno<'a>(refusals: impl IntoIterator<Item = &'a Refusal>) -> i32 {
    let mut errnos = refusals.into_iter().map(|r| r.errno);
    match errnos.next() {
        Some(first) if errnos.all(|e| e == first) => first,
        _ => libc::EIO,
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {}: {} ({})",
            self.change,
            self.path,
            self.error,
            errno_name(self.errno)
        )?;
        if let Some(k) = &self.kept {
            write!(f, " (bytes kept in {})", k.display())?;
        }
        Ok(())
    }
}

/// The kind and path a refusal of `op` names.
pub fn describe_op(op: &RemoteOp) -> (&'static str, String) {
    match op {
        RemoteOp::Mkdir { path } => ("mkdir", path.clone()),
        RemoteOp::Symlink { path, .. } => ("symlink", path.clone()),
        RemoteOp::Unlink { path } | RemoteOp::Rmdir { path } => ("delete", path.clone()),
        RemoteOp::Rename { from, to } => ("rename", format!("{from} -> {to}")),
        RemoteOp::Chmod { path, .. } => ("chmod", path.clone()),
        RemoteOp::Chown { path, .. } => ("chown", path.clone()),
        RemoteOp::Mknod { path, .. } => ("mknod", path.clone()),
        RemoteOp::Link { from, to } => ("link", format!("{from} -> {to}")),
        RemoteOp::SetTimes { path, .. } => ("set_times", path.clone()),
    }
}

/// The record of a mount's refused and unsent changes.
#[derive(Default)]
pub struct Refusals {
    /// Every one, in the order they happened.
    all: Vec<Refusal>,
    /// Per inode, the refusals (indexes into `all`, oldest first) that no acknowledged upload
    /// of the inode has replaced since.
    standing: HashMap<u64, Vec<usize>>,
    /// Refusals of changes to no inode, or to an inode since gone: they stand for good.
    unowned: Vec<usize>,
    /// Inodes gone while changes to them were still queued: a refusal of one of those changes
    /// (sequence number up to the one kept here) belongs to the gone inode, not to a new one
    /// that got its number since (see [`Refusals::gone`]).
    gone: HashMap<u64, u64>,
    /// How many `gone` may hold before the settled ones are dropped.
    gone_prune_at: usize,
    /// How many of `all` an `fsync` of the mount's root has reported.
    reported_to_root: usize,
}

impl Refusals {
    pub fn record(&mut self, r: Refusal) {
        let i = self.all.len();
        let gone = self.gone.get(&r.ino).is_some_and(|&upto| r.seq <= upto);
        match r.ino {
            0 => self.unowned.push(i),
            _ if gone => self.unowned.push(i),
            ino => self.standing.entry(ino).or_default().push(i),
        }
        self.all.push(r);
    }

    /// Inode `ino` is gone (unlinked and forgotten by the kernel): no `fsync` or close can name
    /// it any more, and its number may be given to a new file, which must not inherit its
    /// refusals. They stand for good, as changes to no inode, and so do refusals still to come
    /// of its changes queued up to `last` while those up to `done` are settled.
    pub fn gone(&mut self, ino: u64, last: u64, done: u64) {
        if let Some(list) = self.standing.remove(&ino) {
            self.unowned.extend(list);
        }
        if last > done {
            self.gone.insert(ino, last);
        } else {
            self.gone.remove(&ino);
        }
        // Keep only what a refusal still to come can need (amortized: at most once per doubling).
        if self.gone.len() > self.gone_prune_at.max(1024) {
            self.gone.retain(|_, upto| *upto > done);
            self.gone_prune_at = 2 * self.gone.len();
        }
    }

    /// The server acknowledged an upload of `ino` queued as `seq`: the whole file, bytes and
    /// mode, so refusals of earlier changes to it no longer stand. Returns the sequence numbers
    /// of the refusals it replaced.
    pub fn uploaded(&mut self, ino: u64, seq: u64) -> Vec<u64> {
        let Some(list) = self.standing.get_mut(&ino) else {
            return Vec::new();
        };
        let all = &self.all;
        let replaced = list
            .iter()
            .filter(|&&i| all[i].seq <= seq)
            .map(|&i| all[i].seq)
            .collect();
        list.retain(|&i| all[i].seq > seq);
        if list.is_empty() {
            self.standing.remove(&ino);
        }
        replaced
    }

    /// The newest refused change to `ino` that still stands: `fsync` of `ino` fails while
    /// there is one.
    pub fn standing(&self, ino: u64) -> Option<&Refusal> {
        self.standing.get(&ino)?.last().map(|&i| &self.all[i])
    }

    /// Every refusal that still stands, in the order they happened.
    pub fn outstanding(&self) -> Vec<Refusal> {
        let mut at: Vec<usize> = self.standing.values().flatten().chain(&self.unowned).copied().collect();
        at.sort_unstable();
        at.into_iter().map(|i| self.all[i].clone()).collect()
    }

    /// How many refusals there have been.
    pub fn count(&self) -> usize {
        self.all.len()
    }

    /// How many refusals an `fsync` of the root had reported when it started.
    pub fn reported_to_root(&self) -> usize {
        self.reported_to_root
    }

    /// The refusals after the first `from`, and mark every one reported to the root.
    pub fn report_to_root(&mut self, from: usize) -> Vec<Refusal> {
        self.reported_to_root = self.reported_to_root.max(self.all.len());
        self.all.get(from..).map(<[Refusal]>::to_vec).unwrap_or_default()
    }

    pub fn all(&self) -> &[Refusal] {
        &self.all
    }
}

/// Copy the bytes of `source`, meant for `path`, into `lost_dir` under a new name; returns it.
pub fn keep_bytes(lost_dir: &Path, path: &str, source: &Arc<LocalFile>) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(lost_dir)?;
    let name = format!("{}-{}", crate::now_ns(), path.replace('%', "%25").replace('/', "%2F"));
    let dest = lost_dir.join(name);
    let mut out = File::options().write(true).create_new(true).open(&dest)?;
    std::io::copy(&mut FileReader::whole(source.clone())?, &mut out)?;
    out.sync_all()?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(seq: u64, ino: u64) -> Refusal {
        Refusal {
            seq,
            ino,
            path: format!("f{ino}"),
            change: "upload".into(),
            error: "permission denied".into(),
            errno: libc::EACCES,
            kept: None,
        }
    }

    #[test]
    fn a_refusal_stands_until_a_later_upload_of_the_file_is_acknowledged() {
        let mut r = Refusals::default();
        r.record(refusal(5, 1));
        r.record(refusal(6, 2));
        assert_eq!(r.standing(1).map(|x| x.seq), Some(5));
        assert!(
            r.uploaded(1, 4).is_empty(),
            "an older upload acknowledged late changes nothing"
        );
        assert!(r.standing(1).is_some());
        assert_eq!(r.uploaded(1, 7), [5]);
        assert!(r.standing(1).is_none());
        assert!(r.standing(2).is_some());
        assert_eq!(r.count(), 2, "the history keeps both");
        assert_eq!(r.outstanding(), vec![refusal(6, 2)]);
        // Two refused changes to one file: both stand until an upload after both.
        r.record(refusal(8, 1));
        r.record(refusal(9, 1));
        r.uploaded(1, 8);
        assert_eq!(r.standing(1).map(|x| x.seq), Some(9));
        r.record(refusal(10, 0));
        assert_eq!(
            r.outstanding().iter().map(|x| x.seq).collect::<Vec<_>>(),
            [6, 9, 10],
            "a change to no inode stands for good"
        );
    }

    #[test]
    fn a_new_inode_with_the_number_of_a_gone_one_does_not_inherit_its_refusals() {
        let mut r = Refusals::default();
        r.record(refusal(3, 7));
        // Inode 7 goes with its change 5 still queued (3 is settled); a new 7 changes at 6.
        r.gone(7, 5, 3);
        assert!(r.standing(7).is_none());
        r.record(refusal(5, 7));
        assert!(r.standing(7).is_none(), "the old inode's late refusal");
        r.record(refusal(6, 7));
        assert_eq!(r.standing(7).map(|x| x.seq), Some(6), "the new inode's own");
        assert_eq!(
            r.outstanding().iter().map(|x| x.seq).collect::<Vec<_>>(),
            [3, 5, 6],
            "the server holds none of them: all are still reported"
        );
    }

    #[test]
    fn the_root_is_told_each_refusal_once_from_where_its_fsync_started() {
        let mut r = Refusals::default();
        r.record(refusal(1, 1));
        let start = r.reported_to_root();
        assert_eq!(r.report_to_root(start).len(), 1);
        let again = r.reported_to_root();
        assert!(r.report_to_root(again).is_empty());
        // Two fsyncs that started before a refusal both report it.
        let (a, b) = (r.reported_to_root(), r.reported_to_root());
        r.record(refusal(2, 0));
        assert_eq!(r.report_to_root(a).len(), 1);
        assert_eq!(r.report_to_root(b).len(), 1);
        assert!(r.report_to_root(r.reported_to_root()).is_empty());
    }
}
