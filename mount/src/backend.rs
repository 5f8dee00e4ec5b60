//! What the mount needs from a server: listing, content reads by id, and mutations applied in
//! order. The gRPC client implements it; tests also use an in-memory implementation.

use std::fmt;
use std::io::Read;

use crate::content_layout::ChunkRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntryKind {
    #[default]
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl EntryKind {
    /// The kind's name in the protocol (`Stat.kind`, `BatchMknod.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
            EntryKind::CharDevice => "char_device",
            EntryKind::BlockDevice => "block_device",
        }
    }

    /// The kind named `s` in the protocol; `None` for a name this mount does not know.
    pub fn parse(s: &str) -> Option<EntryKind> {
        Some(match s {
            "file" => EntryKind::File,
            "dir" => EntryKind::Dir,
            "symlink" => EntryKind::Symlink,
            "fifo" => EntryKind::Fifo,
            "socket" => EntryKind::Socket,
            "char_device" => EntryKind::CharDevice,
            "block_device" => EntryKind::BlockDevice,
            _ => return None,
        })
    }

    /// A FIFO, socket or device node: an entry with no bytes of its own (`mknod`).
    pub fn is_special(self) -> bool {
        matches!(
            self,
            EntryKind::Fifo | EntryKind::Socket | EntryKind::CharDevice | EntryKind::BlockDevice
        )
    }

    /// The kind of the `S_IFMT` bits of `mode`, for what `mknod` can make.
    pub fn of_mode(mode: u32) -> Option<EntryKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFIFO => EntryKind::Fifo,
            libc::S_IFSOCK => EntryKind::Socket,
            libc::S_IFCHR => EntryKind::CharDevice,
            libc::S_IFBLK => EntryKind::BlockDevice,
            _ => return None,
        })
    }
}

/// One entry as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteEntry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    pub mtime_ns: i64,
    /// Content address of a file's bytes (its git blob id): the key of the local cache.
    pub content_id: Option<String>,
    pub symlink_target: Option<String>,
    /// Owner and group as set by a `chown`; `None` when never set (the mount shows its user).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Device number of a character or block device.
    pub rdev: u64,
    /// How many names the entry has in the session (0 from a server that does not say: 1).
    pub nlink: u32,
    /// The hard-link group of an entry with more than one name: every name of one inode
    /// carries the same id, so the mount shows them as one inode.
    pub link: Option<u64>,
}

/// A change the mount made locally and sends to the server, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOp {
    Mkdir {
        path: String,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// Remove a file or symlink.
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    /// Set the owner and/or group of the entry itself (never through a symlink).
    Chown {
        path: String,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    /// Create a FIFO, socket or device node (`kind` is one of those).
    Mknod {
        path: String,
        kind: EntryKind,
        mode: u32,
        rdev: u64,
    },
    /// Give the existing non-directory `from` the new name `to` (a hard link): both names are
    /// then one entry, and a change through either is a change of both.
    Link {
        from: String,
        to: String,
    },
    /// Set the modification time of the entry itself (utimens, `touch -d`, `tar -x`, `cp -p`),
    /// in nanoseconds since the Unix epoch (0 or more).
    SetTimes {
        path: String,
        mtime_ns: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    NotFound(String),
    Exists(String),
    NotDir(String),
    IsDir(String),
    NotEmpty(String),
    Invalid(String),
    /// The token may not do this (a token that may only read, or one for other sessions).
    Denied(String),
    /// The server no longer accepts the mount's token (revoked, or never valid).
    Unauthenticated(String),
    /// The session is archived: it takes no more changes.
    ReadOnly(String),
    /// A file or request over a size limit of the server (`--max-file-size`, batch bytes).
    TooLarge(String),
    /// A limit on how much the caller may use (a quota, too many of something) rather than the
    /// size of one request: the server answered "resource exhausted" without saying `too_large`.
    QuotaExceeded(String),
    /// The content changed on the server since it was listed.
    Stale(String),
    /// The server could not be reached or answered "try again": worth retrying.
    Unavailable(String),
    Other(String),
}

impl BackendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, BackendError::Unavailable(_))
    }

    pub fn errno(&self) -> i32 {
        match self {
            BackendError::NotFound(_) => libc::ENOENT,
            BackendError::Exists(_) => libc::EEXIST,
            BackendError::NotDir(_) => libc::ENOTDIR,
            BackendError::IsDir(_) => libc::EISDIR,
            BackendError::NotEmpty(_) => libc::ENOTEMPTY,
            BackendError::Invalid(_) => libc::EINVAL,
            // A revoked token is a denial, not a read-only file system: reads fail too, and a
            // new token (a new mount) may write again.
            BackendError::Denied(_) | BackendError::Unauthenticated(_) => libc::EACCES,
            BackendError::ReadOnly(_) => libc::EROFS,
            BackendError::TooLarge(_) => libc::EFBIG,
            BackendError::QuotaExceeded(_) => libc::EDQUOT,
            BackendError::Stale(_) => libc::ESTALE,
            BackendError::Unavailable(_) | BackendError::Other(_) => libc::EIO,
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::NotFound(m) => write!(f, "not found: {m}"),
            BackendError::Exists(m) => write!(f, "already exists: {m}"),
            BackendError::NotDir(m) => write!(f, "not a directory: {m}"),
            BackendError::IsDir(m) => write!(f, "is a directory: {m}"),
            BackendError::NotEmpty(m) => write!(f, "directory not empty: {m}"),
            BackendError::Invalid(m) => write!(f, "invalid: {m}"),
            BackendError::Denied(m) => write!(f, "permission denied: {m}"),
            BackendError::Unauthenticated(m) => write!(f, "the server no longer accepts the token: {m}"),
            BackendError::ReadOnly(m) => write!(f, "read-only: {m}"),
            BackendError::TooLarge(m) => write!(f, "too large: {m}"),
            BackendError::QuotaExceeded(m) => write!(f, "over a limit: {m}"),
            BackendError::Stale(m) => write!(f, "stale: {m}"),
            BackendError::Unavailable(m) => write!(f, "server unavailable: {m}"),
            BackendError::Other(m) => write!(f, "{m}"),
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// One change of a batch: an entry operation, or a whole small file with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Op(RemoteOp),
    /// `mtime_ns`: the modification time the file keeps on the server (nanoseconds since the
    /// Unix epoch), the one the mount shows; `None`: the time of the write.
    Put {
        path: String,
        mode: u32,
        data: Vec<u8>,
        mtime_ns: Option<i64>,
    },
}

/// What the server did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchReply {
    /// One per change applied, in order (the first `done.len()` changes): the content id of a
    /// put, `None` for an operation. Every one of them is durable.
    pub done: Vec<Option<String>>,
    /// The change that failed (index `done.len()`) and why; the ones after it were not tried.
    pub failed: Option<BackendError>,
}

/// A batch sent one change at a time (for servers without batches, and the in-memory backend).
/// An error on the first change that may succeed later fails the call; any other stops the
/// batch at that change.
pub fn apply_one_by_one<B: Backend + ?Sized>(backend: &B, changes: &[Change]) -> BackendResult<BatchReply> {
    let mut reply = BatchReply::default();
    for change in changes {
        let r = match change {
            Change::Op(op) => backend.apply(op).map(|()| None),
            Change::Put {
                path,
                mode,
                data,
                mtime_ns,
            } => {
                let bytes = Box::new(std::io::Cursor::new(data.clone()));
                backend.put(path, *mode, data.len() as u64, *mtime_ns, bytes).map(Some)
            }
        };
        match r {
            Ok(id) => reply.done.push(id),
            Err(e) if reply.done.is_empty() && e.is_retryable() => return Err(e),
            Err(e) => {
                reply.failed = Some(e);
                break;
            }
        }
    }
    Ok(reply)
}

/// Blocking calls: the FUSE worker threads call them directly. Every mutation must be durable on
/// the server when it returns `Ok`.
pub trait Backend: Send + Sync + 'static {
    /// The entries of the directory at `path` (`""` is the root).
    fn list(&self, path: &str) -> BackendResult<Vec<RemoteEntry>>;
    /// `len` bytes (fewer at the end) from `offset` of the content `content_id` found at `path`.
    fn read(&self, path: &str, content_id: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>>;
    /// How the server stores the content `content_id` found at `path`: its chunks (offset,
    /// length, blake3 id) when it is chunked, `None` when it is kept whole. The mount verifies a
    /// large file's bytes against them; `Stale` when `path` no longer holds that content.
    /// Without it (the default), every content is fetched and verified whole.
    fn chunks(&self, path: &str, content_id: &str) -> BackendResult<Option<Vec<ChunkRef>>> {
        let _ = (path, content_id);
        Ok(None)
    }
    /// Replace the file at `path` with `size` bytes from `data`; returns the new content id.
    /// The file's mtime becomes `mtime_ns` (nanoseconds since the Unix epoch) when given, else
    /// the server's time of the write.
    fn put(
        &self,
        path: &str,
        mode: u32,
        size: u64,
        mtime_ns: Option<i64>,
        data: Box<dyn Read + Send>,
    ) -> BackendResult<String>;
    fn apply(&self, op: &RemoteOp) -> BackendResult<()>;
    /// Apply `changes` in order, durably; stops at the first that fails (see [`BatchReply`]).
    /// `Err` means none was applied.
    fn apply_batch(&self, changes: &[Change]) -> BackendResult<BatchReply> {
        apply_one_by_one(self, changes)
    }
    /// `path`'s listing and, as `opts` asks, listings of the directories below it and the bytes
    /// of small files (see `prefetch`). Without a batched call: one `list` or `read` each.
    fn list_dirs(
        &self,
        path: &str,
        opts: &crate::prefetch::ListDirs,
    ) -> BackendResult<Vec<crate::prefetch::ListedDir>> {
        crate::prefetch::list_dirs_one_by_one(self, path, opts)
    }
}
