//! Which paths differ between two git trees. Subtrees with equal ids are skipped without being
//! read, so the cost follows the size of the change, not of the trees.

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use serde::Serialize;

use crate::error::Result;
use crate::objects::Objects;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Deleted,
    Modified,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    pub change: ChangeKind,
}

/// Changes from `old` to `new` (either may be absent: everything added or deleted), files only,
/// in path order.
pub fn diff_trees(objects: &Objects, old: Option<ObjectId>, new: Option<ObjectId>) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(objects, old, new, "", &mut out)?;
    Ok(out)
}

fn walk(
    objects: &Objects,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let old_tree = old.map(|t| objects.tree(&t)).transpose()?;
    let new_tree = new.map(|t| objects.tree(&t)).transpose()?;
    let empty = Vec::new();
    let a = old_tree.as_ref().map_or(&empty, |t| &t.entries);
    let b = new_tree.as_ref().map_or(&empty, |t| &t.entries);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (left, right) = match order {
            std::cmp::Ordering::Less => (a.get(i), None),
            std::cmp::Ordering::Greater => (None, b.get(j)),
            std::cmp::Ordering::Equal => (a.get(i), b.get(j)),
        };
        let name = left.or(right).map(|e| e.name.as_str()).unwrap_or_default();
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let is_tree = |e: Option<&crate::odb::TreeEntry>| e.filter(|e| e.kind == EntryKind::Tree).map(|e| e.oid);
        let (lt, rt) = (is_tree(left), is_tree(right));
        let lf = left.filter(|e| e.kind != EntryKind::Tree);
        let rf = right.filter(|e| e.kind != EntryKind::Tree);
        if lt.is_some() || rt.is_some() {
            walk(objects, lt, rt, &path, out)?;
        }
        match (lf, rf) {
            (Some(x), Some(y)) if x.oid != y.oid || x.kind != y.kind => out.push(Change {
                path,
                change: ChangeKind::Modified,
            }),
            (Some(_), None) => out.push(Change {
                path,
                change: ChangeKind::Deleted,
            }),
            (None, Some(_)) => out.push(Change {
                path,
                change: ChangeKind::Added,
            }),
            _ => {}
        }
        if order != std::cmp::Ordering::Greater {
            i += 1;
        }
        if order != std::cmp::Ordering::Less {
            j += 1;
        }
    }
    Ok(())
}
