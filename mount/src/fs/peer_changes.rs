//! Changes between mounts of one session (see `handoff`): the paths a change of this mount
//! touched, reported before its system call returns while other mounts are attached, and what
//! another mount's reported change drops here.

use std::ffi::OsStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::AetherFs;

/// What a change made through this mount touched, named as the kernel named it.
pub enum Touched<'a> {
    /// An entry created, removed or replaced: `name` in directory `parent`.
    Name(u64, &'a OsStr),
    /// A rename: the old name and the new.
    Renamed(u64, &'a OsStr, u64, &'a OsStr),
    /// A node's attributes or names (chmod, chown, times, truncate, a new hard link).
    Node(u64),
    /// A node's bytes (`write`): reported once until another mount may have cached it anew.
    Written(u64),
}

impl AetherFs {
    /// After a change was accepted, before its system call returns: the server must know this
    /// mount holds changes it does not have, and while other mounts are attached, they must
    /// drop what they cached of what it touched (see `handoff`).
    pub fn announce_change(&self, touched: Touched<'_>) {
        self.handoff.announce();
        if !self.handoff.has_peers() {
            return;
        }
        if let Touched::Written(ino) = touched
            && !self.handoff.first_write(ino)
        {
            return;
        }
        let paths = {
            let tree = self.tree.lock();
            let named = |parent: u64, name: &OsStr| tree.child_path(parent, name);
            let node = |ino: u64| -> Vec<String> {
                let Some(n) = tree.get(ino) else { return Vec::new() };
                let mut out: Vec<String> = tree.path(ino).into_iter().collect();
                out.extend(n.other_names.iter().filter_map(|(dir, name)| named(*dir, name)));
                out
            };
            match touched {
                Touched::Name(parent, name) => named(parent, name).into_iter().collect(),
                Touched::Renamed(from_dir, from, to_dir, to) => {
                    named(from_dir, from).into_iter().chain(named(to_dir, to)).collect()
                }
                Touched::Node(ino) | Touched::Written(ino) => node(ino),
            }
        };
        self.handoff.changed(paths);
    }

    /// Another mount changed `paths` (the server's `invalidate`): forget their listings here and
    /// drop what the kernel holds of them, as for a change seen on the watch stream, and wait
    /// (at most `wait`) until the kernel has. Entries with changes of this mount not yet on the
    /// server keep what this mount shows: its own change comes after. The root's attributes
    /// (`""`) are left to the watch stream.
    pub fn invalidate_paths(&self, paths: &[String], wait: Duration) -> bool {
        {
            let acked = self.writeback.acked();
            let tree = &mut *self.tree.lock();
            // Such a change has no version: a listing on its way (even of a directory not loaded
            // yet) may predate it.
            self.invalidations.fetch_add(1, Ordering::SeqCst);
            for path in paths.iter().filter(|p| !p.is_empty()) {
                let Some((dir, name)) = self.resolve_parent(tree, path) else {
                    continue;
                };
                let pending = tree
                    .lookup(dir, &name)
                    .and_then(|ino| tree.get(ino))
                    .is_some_and(|n| n.local_seq > acked || n.dirty);
                if !pending {
                    self.invalidate_entry(tree, dir, &name);
                }
            }
        }
        self.invalidator.barrier(wait)
    }

    /// Whatever this mount cached is looked up again (after its handoff channel was away: other
    /// mounts' changes meanwhile were not reported to it).
    pub fn invalidate_everything(&self) {
        let tree = &mut *self.tree.lock();
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.invalidate_all(tree);
    }
}
