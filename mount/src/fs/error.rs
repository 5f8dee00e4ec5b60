//! What a file system call fails with, and the one place that turns it into an errno for the
//! kernel ([`FsError::errno`]).

use crate::backend::BackendError;
use crate::content_reader::ReadError;
use crate::refused::Refusal;
use crate::writeback::WaitError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such entry")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    /// A bad name, a symlink read as a file, a directory moved into itself.
    #[error("invalid argument")]
    Invalid,
    #[error("the name exists")]
    Exists,
    /// The entry changed between the listing a call made and the change it was about to make.
    #[error("the entry changed meanwhile; try again")]
    Changed,
    #[error("directory not empty")]
    NotEmpty,
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("the mount is read-only")]
    ReadOnly,
    /// What a session cannot hold: hard links, device files.
    #[error("not supported by a session")]
    NotPermitted,
    #[error("permission denied")]
    Denied,
    /// `fsync`: the server does not hold what was waited for.
    #[error("{0}")]
    NotSent(WaitError),
    /// A close of a file whose upload the server refused (and no later upload replaced).
    #[error("the server refused the file: {0}")]
    Refused(Refusal),
    /// The local copy of a file (memory or staging file) failed.
    #[error("local copy: {0}")]
    Local(#[from] std::io::Error),
    /// The server refused a call or could not be reached.
    #[error("{0}")]
    Server(BackendError),
    /// Reading file content failed (from the server, or it did not verify).
    #[error("{0}")]
    Read(#[from] ReadError),
}

impl From<BackendError> for FsError {
    fn from(e: BackendError) -> FsError {
        FsError::Server(e)
    }
}

impl FsError {
    /// The errno the kernel gets.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotADirectory => libc::ENOTDIR,
            FsError::IsADirectory => libc::EISDIR,
            FsError::Invalid => libc::EINVAL,
            FsError::Exists => libc::EEXIST,
            FsError::Changed => libc::EAGAIN,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::ReadOnly => libc::EROFS,
            FsError::NotPermitted => libc::EPERM,
            FsError::Denied => libc::EACCES,
            FsError::NotSent(e) => e.errno(),
            FsError::Refused(r) => r.errno,
            FsError::Local(e) => e.raw_os_error().unwrap_or(libc::EIO),
            FsError::Server(e) => e.errno(),
            FsError::Read(e) => e.errno(),
        }
    }

    /// The server's content moved on since the listing the call relied on.
    pub fn is_stale(&self) -> bool {
        self.errno() == libc::ESTALE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_errno_the_kernel_expects() {
        assert_eq!(FsError::NotFound.errno(), libc::ENOENT);
        assert_eq!(FsError::Changed.errno(), libc::EAGAIN);
        assert_eq!(FsError::ReadOnly.errno(), libc::EROFS);
        assert_eq!(FsError::NotSent(WaitError::Unreachable("x".into())).errno(), libc::EIO);
        assert_eq!(
            FsError::Local(std::io::Error::from_raw_os_error(libc::ENOSPC)).errno(),
            libc::ENOSPC
        );
        assert_eq!(FsError::Local(std::io::Error::other("no code")).errno(), libc::EIO);
        assert_eq!(FsError::Server(BackendError::Stale("f".into())).errno(), libc::ESTALE);
        assert!(FsError::Server(BackendError::Stale("f".into())).is_stale());
        assert_eq!(FsError::Server(BackendError::TooLarge("f".into())).errno(), libc::EFBIG);
    }

    fn refusal(errno: i32) -> Refusal {
        Refusal {
            seq: 1,
            ino: 2,
            path: "f".into(),
            change: "upload".into(),
            error: "refused".into(),
            errno,
            kept: None,
        }
    }

    /// The `fsync` or `close` that waits for a refused change fails with the refusal's errno,
    /// not a blanket EIO; several refusals of different kinds waited for at once give EIO.
    #[test]
    fn a_refusal_fails_its_waiter_with_its_own_errno() {
        for errno in [libc::EFBIG, libc::EROFS, libc::EACCES, libc::EDQUOT, libc::EIO] {
            assert_eq!(FsError::Refused(refusal(errno)).errno(), errno);
            assert_eq!(
                FsError::NotSent(WaitError::Refused(vec![refusal(errno), refusal(errno)])).errno(),
                errno
            );
        }
        let mixed = WaitError::Refused(vec![refusal(libc::EFBIG), refusal(libc::EROFS)]);
        assert_eq!(FsError::NotSent(mixed).errno(), libc::EIO);
    }
}
