//! Contents a session's files held before a change replaced or removed them, remembered for a
//! while, so that a reader who opened the old version (a descriptor open in a mount, which reads
//! by content id) can finish reading it, as on a local disk, instead of failing with `stale`.
//!
//! Only contents this session held are served this way: a content id is no capability, and
//! reading one the session never held stays `stale`. Kept in memory, per loaded session, the
//! newest [`KEPT`]: a reader that comes back after a restart or thousands of changes later
//! gets `stale`, as before.

use std::collections::{HashSet, VecDeque};

use gix::ObjectId;

use crate::meta::Mutation;
use crate::path::{PathLimits, SessionPath};
use crate::view::{Content, FileKind, View};

/// Contents remembered per session.
pub const KEPT: usize = 4096;

#[derive(Default)]
pub(crate) struct Held {
    order: VecDeque<ObjectId>,
    set: HashSet<ObjectId>,
}

impl Held {
    pub fn note(&mut self, oids: impl IntoIterator<Item = ObjectId>) {
        for oid in oids {
            if !self.set.insert(oid) {
                continue;
            }
            self.order.push_back(oid);
            if self.order.len() > KEPT
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    /// Contents remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn contains(&self, oid: &ObjectId) -> bool {
        self.set.contains(oid)
    }

    /// Every content held (roots for a garbage collection: a descriptor may still read them).
    pub fn contents(&self) -> Vec<ObjectId> {
        self.order.iter().copied().collect()
    }
}

/// The contents of the files `m` replaces or removes, as `view` (the state before it) holds
/// them. Directories removed whole (`remove_below`) and a whole state replaced (a restore) are
/// not walked, and at most [`KEPT`] paths are looked at: a change of many paths costs no more
/// than the set keeps.
pub(crate) fn replaced_by(view: &View<'_>, m: &Mutation, limits: PathLimits) -> Vec<ObjectId> {
    if m.clear_overlay || m.residual.is_some() {
        return Vec::new();
    }
    let paths = m.remove.iter().chain(m.upsert.iter().map(|(p, _)| p)).take(KEPT);
    let mut out = Vec::new();
    for raw in paths {
        let Ok(path) = SessionPath::parse(raw, limits) else {
            continue;
        };
        if let Ok(Some(node)) = view.resolve(&path)
            && node.kind == FileKind::File
            && let Content::Blob { oid, .. } = node.content
        {
            out.push(oid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_contents_are_kept() {
        let mut h = Held::default();
        let oid = |i: u32| ObjectId::from_hex(format!("{i:040x}").as_bytes()).unwrap();
        h.note((0..KEPT as u32 + 10).map(oid));
        assert!(!h.contains(&oid(0)) && !h.contains(&oid(9)));
        assert!(h.contains(&oid(10)) && h.contains(&oid(KEPT as u32 + 9)));
        // Noting one again does not push another out.
        h.note([oid(10)]);
        assert!(h.contains(&oid(11)));
    }
}
