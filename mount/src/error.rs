//! What the mount's entry points (`serve`, `background`, `unmount`, `cache`) report. Each
//! variant says where it comes from; the caller (the CLI) turns it into its own message, hint
//! and exit code in one place. File system calls have their own error (`fs::FsError`).

use std::path::PathBuf;

use crate::refused::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// No cache directory was given and neither XDG_CACHE_HOME nor HOME is set.
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is set")]
    NoCacheDir,
    /// The mount point cannot be resolved (missing, unreadable).
    #[error("cannot use {} as a mount point: {source}", dir.display())]
    MountPoint { dir: PathBuf, source: std::io::Error },
    /// The mount point is not a directory.
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A local file or directory the mount needs (cache, log file, staging) failed.
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// A call to the server failed.
    #[error("{}", .0.message())]
    Server(tonic::Status),
    /// The kernel mount could not be made (no /dev/fuse, no fusermount3, not permitted).
    #[error("cannot mount on {}: {source}", dir.display())]
    Kernel { dir: PathBuf, source: std::io::Error },
    /// `--allow-other` by a user other than root, while /etc/fuse.conf does not say
    /// `user_allow_other`.
    #[error("--allow-other is not permitted for this user: /etc/fuse.conf does not say user_allow_other")]
    AllowOtherNotPermitted,
    /// The kernel refused a mount with `--allow-other`.
    #[error("cannot mount on {} for all users (--allow-other): {source}", dir.display())]
    AllowOther { dir: PathBuf, source: std::io::Error },
    /// A task of the mount's own runtime failed.
    #[error("mount task failed: {0}")]
    Task(String),
    /// The background mount process could not be started or talked to.
    #[error("{0}")]
    Spawn(String),
    /// The background mount process stopped before saying it was ready, without saying why.
    #[error("the mount process stopped before the mount was ready")]
    ChildStopped,
    /// The background mount process failed before it was ready and said why (its error kind as
    /// the caller named it, see [`crate::background::report_failure`]).
    #[error("{message}")]
    Child {
        kind: String,
        message: String,
        hint: String,
    },
    /// The server does not hold every change the mount accepted.
    #[error("{}", not_on_server_message(dir, list))]
    NotOnServer {
        dir: PathBuf,
        list: Vec<Refusal>,
        lost_found: PathBuf,
    },
    /// `unmount` of a mount point no mount process recorded itself for.
    #[error("no aether mount process is recorded for {} in {}", dir.display(), records.display())]
    NotRecorded { dir: PathBuf, records: PathBuf },
    /// `unmount` of a directory that is not a mount (or is busy).
    #[error("{} is not an aether mount (or it is busy)", .0.display())]
    NotMounted(PathBuf),
    /// The unmount helper (fusermount3) could not be run.
    #[error("cannot run fusermount3: {0}")]
    UnmountTool(std::io::Error),
    /// Unmounted, but the mount process left no exit status: whether the server holds every
    /// write is unknown.
    #[error(
        "unmounted {}, but its mount process {} without saying whether the server holds every write: \
         writes it had not sent are lost",
        dir.display(),
        if *was_alive { "exited" } else { "had stopped already" }
    )]
    StatusUnknown {
        dir: PathBuf,
        was_alive: bool,
        lost_found: PathBuf,
    },
}

/// At most this many refused changes are named in the message (all are in the mount's log).
const SHOWN: usize = 50;

fn not_on_server_message(dir: &std::path::Path, list: &[Refusal]) -> String {
    let mut message = format!(
        "the server does not hold {} change{} made through {}:",
        list.len(),
        if list.len() == 1 { "" } else { "s" },
        dir.display()
    );
    for r in list.iter().take(SHOWN) {
        message.push_str(&format!("\n  {r}"));
    }
    if list.len() > SHOWN {
        message.push_str(&format!("\n  and {} more (see the mount's log)", list.len() - SHOWN));
    }
    message
}

pub type Result<T, E = MountError> = std::result::Result<T, E>;
