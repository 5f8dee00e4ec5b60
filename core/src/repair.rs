//! Repair of overlay rows this version refuses to store but an older one could have stored
//! (see `names`): keys that are not normalized paths (an empty, `.` or `..` component, a NUL
//! byte) and entries under the root key that are not the root's attributes, in overlays and in
//! the residuals recorded for revisions.
//!
//! The engine repairs every such row when it opens (one scan of the store for suspect keys)
//! and again when it loads a session (a check of each key it reads anyway), so a row written
//! behind a running engine's back is repaired too. Each repair is persisted with a `repair`
//! event and logged with one `warn` line naming the session, the key and what was done. A
//! revision's residual is a record written once and never replaced (what a revision shows
//! never changes), so it is repaired as it is read (`RevisionStore::revision_residual` through
//! `meta_check`), with the same rules and a `warn` line, before a restore, a fork or a read
//! at the revision uses it.
//!
//! What a repair does, and why it loses nothing a client could use: a key that is not a
//! normalized path is removed. No client could name it (every path is normalized before it
//! reaches the engine), so none could read, write or delete it; at most a listing showed a
//! name like `..` that led nowhere. A root entry that is a directory keeps its mode and mtime
//! as the root's attributes, which is all a read of the root ever took from it; any other root
//! entry (a file, a deletion, an undecodable row) is removed, since the root is a directory.

use std::collections::HashSet;

use crate::meta::Mutation;
use crate::names::{is_root_attrs, key_problem};
use crate::overlay::OverlayEntry;

/// One repair: the key and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repair {
    pub key: String,
    pub action: String,
}

/// The repair of one stored row (`entry` is `None` when it did not decode), or `None` when the
/// row is sound. `Some((replacement, action))`: store `replacement` under the key, or remove
/// the row when it is `None`.
fn fix(key: &str, entry: Option<&OverlayEntry>) -> Option<(Option<OverlayEntry>, String)> {
    if let Some(reason) = key_problem(key) {
        return Some((None, format!("removed ({reason}; no path could name it)")));
    }
    if !key.is_empty() {
        return None;
    }
    match entry {
        Some(e) if is_root_attrs(e) => None,
        Some(OverlayEntry::Dir { mode, mtime, owner, .. } | OverlayEntry::Graft { mode, mtime, owner, .. }) => Some((
            Some(OverlayEntry::Dir {
                opaque: false,
                mode: *mode,
                mtime: *mtime,
                owner: *owner,
            }),
            "kept only the root's mode, mtime and owner from a directory entry stored as the root".to_owned(),
        )),
        Some(other) => Some((
            None,
            format!("removed a non-directory entry stored as the root: {other:?}"),
        )),
        None => Some((None, "removed an undecodable entry stored as the root".to_owned())),
    }
}

/// The mutation that repairs `rows` of one session, and the repairs it makes (none: nothing
/// to do).
pub(crate) fn plan<'a>(rows: impl IntoIterator<Item = (&'a str, Option<&'a OverlayEntry>)>) -> (Mutation, Vec<Repair>) {
    let mut m = Mutation::default();
    let mut repairs = Vec::new();
    for (key, entry) in rows {
        let Some((replacement, action)) = fix(key, entry) else {
            continue;
        };
        match replacement {
            Some(e) => m.upsert.push((key.to_owned(), e)),
            None => m.remove.push(key.to_owned()),
        }
        repairs.push(Repair {
            key: key.to_owned(),
            action,
        });
    }
    (m, repairs)
}

/// Repair a revision's residual in place (the same rules as overlay rows); the repairs made.
pub(crate) fn repair_residual(residual: &mut Vec<(String, OverlayEntry)>) -> Vec<Repair> {
    let (m, repairs) = plan(residual.iter().map(|(k, e)| (k.as_str(), Some(e))));
    if repairs.is_empty() {
        return repairs;
    }
    let removed: HashSet<&String> = m.remove.iter().collect();
    residual.retain(|(k, _)| !removed.contains(k));
    for (key, entry) in m.upsert {
        if let Some(slot) = residual.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = entry;
        }
    }
    repairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(opaque: bool) -> OverlayEntry {
        OverlayEntry::Dir {
            opaque,
            mode: 0o700,
            mtime: 5,
            owner: None,
        }
    }

    #[test]
    fn a_residual_is_repaired_in_place() {
        let file = OverlayEntry::Attr {
            mode: 0o644,
            mtime: 1,
            owner: None,
            link: None,
        };
        let mut residual = vec![
            (String::new(), dir(true)),
            ("a".to_owned(), file.clone()),
            ("a/../b".to_owned(), file.clone()),
        ];
        assert_eq!(repair_residual(&mut residual).len(), 2);
        assert_eq!(residual, vec![(String::new(), dir(false)), ("a".to_owned(), file)]);
        assert!(repair_residual(&mut residual).is_empty());
    }

    #[test]
    fn sound_rows_are_left_alone() {
        let (m, repairs) = plan([("", Some(&dir(false))), ("a", Some(&dir(true))), ("a/b", None)]);
        assert!(repairs.is_empty());
        assert!(m.upsert.is_empty() && m.remove.is_empty());
    }

    #[test]
    fn damaged_rows_are_removed_or_reduced_to_the_roots_attributes() {
        let file = OverlayEntry::Attr {
            mode: 0o644,
            mtime: 1,
            owner: None,
            link: None,
        };
        let (m, repairs) = plan([
            ("", Some(&dir(true))),
            ("a//b", Some(&file)),
            ("./x", Some(&file)),
            ("x/..", Some(&file)),
            ("x\0", Some(&file)),
        ]);
        assert_eq!(m.upsert, vec![(String::new(), dir(false))]);
        assert_eq!(m.remove, ["a//b", "./x", "x/..", "x\0"]);
        assert_eq!(repairs.len(), 5);
        let (m, _) = plan([("", Some(&OverlayEntry::Deleted))]);
        assert_eq!(m.remove, [""]);
        let (m, _) = plan([("", None)]);
        assert_eq!(m.remove, [""]);
    }
}
