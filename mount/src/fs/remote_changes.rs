//! Changes made elsewhere (the watch stream's events): what they invalidate in the local
//! picture and in the kernel's caches. The mount's own changes, and changes that leave what the
//! mount shows as it is, invalidate nothing.

use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use super::{AetherFs, node_at};
use crate::events::{EventKind, RemoteEvent};
use crate::invalidate::Inval;
use crate::tree::{Data, FileData, Node, ROOT, Tree};

impl AetherFs {
    /// A change made to the session (from the watch stream). The mount's own changes and
    /// changes that leave what the mount already shows are ignored; anything else drops the
    /// listing of the directory it touched and the kernel's cached entry, attributes and pages.
    pub fn apply_event(&self, ev: &RemoteEvent) {
        if ev.made_by(&self.config.mount_id) {
            return;
        }
        let tree = &mut *self.tree.lock();
        self.recent.lock().push(ev.clone());
        self.apply_event_to(tree, ev);
    }

    /// [`AetherFs::apply_event`] for a change made elsewhere, the tree locked. A change a
    /// directory's listing shows already (numbered at or below its version) changes nothing.
    pub(super) fn apply_event_to(&self, tree: &mut Tree, ev: &RemoteEvent) {
        if ev.resets_everything() {
            self.invalidate_all(tree);
            return;
        }
        let Some(path) = ev.path.as_deref() else { return };
        let acked = self.writeback.acked();
        // The root's own attributes: it is no entry of any directory.
        if path.is_empty() {
            if let (Some(mode), Some(root)) = (ev.mode.filter(|_| ev.kind == EventKind::Chmod), tree.get_mut(ROOT))
                && root.local_seq <= acked
            {
                root.perm = mode & 0o7777;
                root.ctime = SystemTime::now();
                self.invalidator.send(Inval::Inode { ino: ROOT });
            }
            return;
        }
        let from = self.resolve_parent(tree, path);
        let to = ev.to.as_deref().and_then(|to| self.resolve_parent(tree, to));
        let shown = |dir: &Option<(u64, OsString)>| {
            dir.as_ref()
                .is_none_or(|(d, _)| ev.seq > 0 && tree.version(*d).is_some_and(|v| v >= ev.seq))
        };
        if (from.is_some() || to.is_some()) && shown(&from) && shown(&to) {
            return;
        }
        let node = node_at;
        let pending = |n: &Node| n.local_seq > acked || n.dirty;
        let n = node(tree, &from);
        let current = match (ev.kind, n) {
            // A rename made elsewhere is never what the mount shows already: a name present at
            // the destination may be the file it replaced (a rename over a file).
            (EventKind::Rename, _) => false,
            (_, Some(n)) if pending(n) => true,
            (EventKind::Write | EventKind::Truncate, Some(n)) => {
                Some(n.size) == ev.size
                    && matches!(&n.data, Data::File(FileData::Remote(Some(id))) if Some(&**id) == ev.oid.as_deref())
            }
            (EventKind::Mkdir, Some(n)) => n.is_dir(),
            (EventKind::Symlink, Some(n)) => {
                matches!(&n.data, Data::Symlink(t) if t.to_str().is_some() && t.to_str() == ev.target.as_deref())
            }
            (EventKind::Chmod, Some(n)) => Some(n.perm) == ev.mode,
            (EventKind::Delete, None) => from.is_some(),
            _ => false,
        };
        if current {
            return;
        }
        tracing::debug!(kind = ev.kind.as_str_name(), path, to = ?ev.to, "a change made elsewhere: invalidating");
        // A mode change keeps the entry (and any process's working directory in it): take the
        // new mode from the event and drop only the kernel's attributes.
        if let (EventKind::Chmod, Some(mode), Some((dir, name))) = (ev.kind, ev.mode, &from)
            && let Some(ino) = tree.lookup(*dir, name)
            && let Some(n) = tree.get_mut(ino)
        {
            n.perm = mode & 0o7777;
            n.ctime = SystemTime::now();
            self.invalidator.send(Inval::Inode { ino });
            return;
        }
        for (dir, name) in [from, to].into_iter().flatten() {
            self.invalidate_entry(tree, dir, &name);
        }
    }

    /// The loaded directory holding `path` and the entry's name. When a directory on the way
    /// is listed but lacks the next component, that directory is stale: it is invalidated and
    /// `None` returned. `None` too when a directory on the way was never listed (nothing cached).
    pub(super) fn resolve_parent(&self, tree: &mut Tree, path: &str) -> Option<(u64, OsString)> {
        let (dir_path, name) = path.rsplit_once('/').unwrap_or(("", path));
        let mut dir = ROOT;
        for part in dir_path.split('/').filter(|p| !p.is_empty()) {
            tree.children(dir)?;
            match tree.lookup(dir, OsStr::new(part)) {
                Some(i) => dir = i,
                None => {
                    self.invalidate_entry(tree, dir, OsStr::new(part));
                    return None;
                }
            }
        }
        tree.children(dir)?;
        Some((dir, OsString::from(name)))
    }

    /// Forget the listing of `dir` and what the kernel cached about `name` in it.
    ///
    /// The entry goes before the directory's cached listing (kept across opens while watched):
    /// the kernel drops an entry holding the directory's lock, so it waits for a listing in
    /// flight, computed before this change, to be stored in its cache; the directory's
    /// invalidation then drops that listing too. The other order let such a listing land after
    /// the invalidation and be served until the next change.
    pub(super) fn invalidate_entry(&self, tree: &mut Tree, dir: u64, name: &OsStr) {
        tree.mark_stale(dir);
        if let Some(c) = tree.lookup(dir, name) {
            tree.mark_stale(c);
            self.invalidator.send(Inval::Inode { ino: c });
        }
        self.invalidator.send(Inval::Entry {
            parent: dir,
            name: name.to_owned(),
        });
        self.invalidator.send(Inval::Inode { ino: dir });
    }

    /// The whole session changed (a restore): every listing and kernel cache entry goes.
    pub(super) fn invalidate_all(&self, tree: &mut Tree) {
        let inos: Vec<u64> = tree.nodes.keys().copied().collect();
        // Entries first, as in `invalidate_entry`: listings in flight land before they go.
        for &ino in &inos {
            tree.mark_stale(ino);
            if let Some(children) = tree.children(ino) {
                for name in children.keys() {
                    self.invalidator.send(Inval::Entry {
                        parent: ino,
                        name: name.clone(),
                    });
                }
            }
        }
        for ino in inos {
            self.invalidator.send(Inval::Inode { ino });
        }
    }
}
