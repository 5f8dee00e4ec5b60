//! What a name in a session may be, and the one check every stored change passes.
//!
//! A name is a single path component: never empty, never `.` or `..`, without `/` or NUL. An
//! overlay key is a normalized session path: the root `""` or valid names joined by `/`. The
//! root key holds only the root's own attributes (a non-opaque directory entry with its mode
//! and mtime): the root is never a child of anything.
//!
//! [`check_entry`] runs on every overlay entry of every mutation and new session before the
//! metadata store persists it (see `meta_check`), whichever surface or engine path planned
//! it, so REST, gRPC, the mount, imports, restores and future surfaces cannot store a name
//! that some reader would later take for the root or an escape from it. [`crate::odb::Odb`]
//! applies [`name_problem`] to names read from and written to git trees.

use crate::error::{Error, Result};
use crate::overlay::OverlayEntry;

/// Longest symlink target, in bytes, on every path a target comes in by (the API, a mount, a
/// tar, a git tree).
pub const MAX_SYMLINK_TARGET: usize = 4096;

/// Why `name` cannot name an entry, or `None` when it can.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("a name cannot be empty")
    } else if name == "." || name == ".." {
        Some("'.' and '..' cannot be names")
    } else if name.contains('/') {
        Some("a name cannot contain '/'")
    } else if name.contains('\0') {
        Some("a name cannot contain a NUL byte")
    } else {
        None
    }
}

/// Why `key` is not a normalized session path (the root `""`, or valid names joined by `/`),
/// or `None` when it is one.
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return None;
    }
    key.split('/').find_map(name_problem)
}

/// Whether `entry` may be stored under the root key: only the root's attributes are.
pub fn is_root_attrs(entry: &OverlayEntry) -> bool {
    matches!(entry, OverlayEntry::Dir { opaque: false, .. })
}

/// Refuse an overlay entry that may not be stored under `key`.
pub fn check_entry(key: &str, entry: &OverlayEntry) -> Result<()> {
    if let Some(reason) = key_problem(key) {
        return Err(Error::InvalidPath {
            path: key.escape_debug().to_string(),
            reason,
        });
    }
    if key.is_empty() && !is_root_attrs(entry) {
        return Err(Error::InvalidPath {
            path: "/".into(),
            reason: "the root holds only its own attributes (a directory's mode and mtime)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> OverlayEntry {
        OverlayEntry::Attr {
            mode: 0o644,
            mtime: 0,
            owner: None,
            link: None,
        }
    }

    #[test]
    fn names_and_keys() {
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["a", "...", ".git", "a b", "~", "\u{e9}"] {
            assert_eq!(name_problem(good), None, "{good:?}");
        }
        for bad in ["/a", "a/", "a//b", "a/./b", "./a", "a/..", "..", "a/\0/b"] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["", "a", "a/b/c", "a/.b/..c"] {
            assert_eq!(key_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn the_root_key_holds_only_the_roots_attributes() {
        let attrs = OverlayEntry::Dir {
            opaque: false,
            mode: 0o700,
            mtime: 1,
            owner: None,
        };
        assert!(check_entry("", &attrs).is_ok());
        for bad in [
            file(),
            OverlayEntry::Deleted,
            OverlayEntry::Dir {
                opaque: true,
                mode: 0o700,
                mtime: 1,
                owner: None,
            },
        ] {
            assert_eq!(
                check_entry("", &bad).unwrap_err().kind(),
                crate::ErrorKind::InvalidPath,
                "{bad:?}"
            );
        }
    }
}
