//! The mount's local picture of the session: inodes, directory entries as far as they were
//! loaded, attributes, and which files hold local bytes. Every FUSE call is answered from here;
//! the server is asked only for what was never loaded.
//!
//! A file whose content changed elsewhere gets a new inode when a listing brings the change (the
//! kernel trusts its own size and times of an inode it caches writes for). The old inode may
//! still be open for writing (the mount sees no opens), so it is not cut loose: it stays *bound*
//! to its name, and a write through it takes the name back (see [`Tree::rebind`]): the last
//! writer wins, as with two processes writing one local file. A name removed or replaced through
//! the mount, or gone or turned into another kind on the server, ends the binding.
//!
//! A node's number is derived from its session path (a hard-link group's from the group), so
//! every mount shows the same `st_ino` for the same entry; a number another live node holds
//! sends the new node to the next free one (see `ino` and [`Tree::insert`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backend::{EntryKind, RemoteEntry};
use crate::ino::{Identity, Numbering};
use crate::writeback::LocalFile;

pub const ROOT: u64 = 1;

pub enum FileData {
    /// Bytes on the server, by content id (`None`: empty).
    Remote(Option<Arc<str>>),
    /// Bytes in a local file, written through the mount.
    Local(Arc<LocalFile>),
}

pub enum Data {
    Dir {
        /// `None` until listed from the server.
        children: Option<BTreeMap<OsString, u64>>,
        loaded_at: Option<Instant>,
        /// The version of the session state its last listing showed (see `recent_events`):
        /// a change numbered at or below it is in `children` already. `None`: unknown.
        version: Option<i64>,
    },
    File(FileData),
    Symlink(OsString),
    /// A FIFO, socket or device node: no bytes (the kernel serves a FIFO itself).
    Special,
}

pub struct Node {
    /// The node's first name (its path); a hard-linked node has more (`other_names`).
    pub parent: u64,
    pub name: OsString,
    /// The node's other names, as far as loaded (hard links; never for a directory).
    pub other_names: Vec<(u64, OsString)>,
    /// How many names a non-directory has in the session (its first, the other ones loaded,
    /// and ones in directories not loaded yet, as the server counts them).
    pub names: u32,
    /// The server's hard-link group of the node, once a listing told it.
    pub link: Option<u64>,
    pub kind: EntryKind,
    pub perm: u32,
    /// Owner and group; `None`: never set, shown as the mount's user.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The owner set through the mount waits for the file's first upload to be sent.
    pub owner_unsent: bool,
    /// Device number (as `stat` shows it) of a character or block device.
    pub rdev: u64,
    pub size: u64,
    pub mtime: SystemTime,
    pub atime: SystemTime,
    pub ctime: SystemTime,
    pub data: Data,
    /// Kernel references (lookup counts not yet forgotten). The kernel holds one for as long
    /// as any process has the file open, so this also keeps unlinked open files alive.
    pub lookups: u64,
    /// Still reachable by name.
    pub linked: bool,
    /// Unlinked because a listing gave its name to newer content from elsewhere, and still bound
    /// to that name (`parent`, `name`): a write through it takes the name back.
    pub bound: bool,
    /// Local writes not yet queued for upload.
    pub dirty: bool,
    /// Writeback sequence number of the last local change to this node (or its entries).
    pub local_seq: u64,
    /// Writeback sequence number of the last upload of this file's bytes.
    pub upload_seq: u64,
    /// The content id the server gave that upload, once acknowledged.
    pub uploaded: Option<Arc<str>>,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

pub struct Tree {
    pub nodes: HashMap<u64, Node>,
    /// How a new node's number is derived (see `ino`).
    numbering: Numbering,
    /// Told the number of every node dropped: nothing can name that node any more.
    on_drop: Option<Box<dyn Fn(u64) + Send>>,
    /// The bound nodes (see [`Node::bound`]) by the name they are bound to.
    bound: HashMap<(u64, OsString), HashSet<u64>>,
    /// The node of each hard-link group the server told of (see [`RemoteEntry::link`]).
    groups: HashMap<u64, u64>,
}

/// Whether `name` can be an entry of a directory: not empty, `.` or `..`, without `/` or NUL.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

pub fn time_from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH
    }
}

impl Tree {
    pub fn new(root_perm: u32) -> Tree {
        let now = SystemTime::now();
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: OsString::new(),
                other_names: Vec::new(),
                names: 1,
                link: None,
                kind: EntryKind::Dir,
                perm: root_perm,
                uid: None,
                gid: None,
                owner_unsent: false,
                rdev: 0,
                size: 0,
                mtime: now,
                atime: now,
                ctime: now,
                data: Data::Dir {
                    children: None,
                    loaded_at: None,
                    version: None,
                },
                lookups: 1,
                linked: true,
                bound: false,
                dirty: false,
                local_seq: 0,
                upload_seq: 0,
                uploaded: None,
            },
        );
        Tree {
            nodes,
            numbering: Numbering::default(),
            on_drop: None,
            bound: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// Derive new nodes' numbers as `numbering` says (tests force collisions with it).
    pub fn set_numbering(&mut self, numbering: Numbering) {
        self.numbering = numbering;
    }

    /// Call `hook` with the number of every node dropped from now on (the writeback forgets
    /// which refusals that node's `fsync` would report: a new node may get its number).
    pub fn on_drop(&mut self, hook: Box<dyn Fn(u64) + Send>) {
        self.on_drop = Some(hook);
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    /// The session path of `ino` (`""` for the root), or `None` once unlinked.
    pub fn path(&self, ino: u64) -> Option<String> {
        let mut parts: Vec<&OsStr> = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let n = self.nodes.get(&cur)?;
            if !n.linked {
                return None;
            }
            parts.push(&n.name);
            cur = n.parent;
        }
        let mut out = String::new();
        for (i, p) in parts.iter().rev().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(p.to_str()?);
        }
        Some(out)
    }

    /// The session path of `ino`, or for a bound node the path of the name it is bound to.
    pub fn path_or_bound(&self, ino: u64) -> Option<String> {
        let n = self.nodes.get(&ino)?;
        if n.bound {
            self.child_path(n.parent, &n.name)
        } else {
            self.path(ino)
        }
    }

    pub fn child_path(&self, parent: u64, name: &OsStr) -> Option<String> {
        let base = self.path(parent)?;
        let name = name.to_str()?;
        Some(if base.is_empty() {
            name.to_owned()
        } else {
            format!("{base}/{name}")
        })
    }

    /// The link count `ino` shows: a directory's 2 plus one per subdirectory (as far as its
    /// listing is loaded), another's number of names (hard links), 0 once its last is gone.
    pub fn nlink(&self, ino: u64) -> u32 {
        let Some(n) = self.get(ino) else { return 0 };
        if n.is_dir() {
            let subdirs = self.children(ino).map_or(0, |c| {
                c.values().filter(|i| self.get(**i).is_some_and(Node::is_dir)).count()
            });
            2 + u32::try_from(subdirs).unwrap_or(u32::MAX - 2)
        } else if n.linked {
            n.names.max(1)
        } else if n.bound {
            1
        } else {
            0
        }
    }

    pub fn children(&self, dir: u64) -> Option<&BTreeMap<OsString, u64>> {
        match &self.nodes.get(&dir)?.data {
            Data::Dir { children, .. } => children.as_ref(),
            _ => None,
        }
    }

    pub fn children_mut(&mut self, dir: u64) -> Option<&mut BTreeMap<OsString, u64>> {
        match &mut self.nodes.get_mut(&dir)?.data {
            Data::Dir { children, .. } => children.as_mut(),
            _ => None,
        }
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Option<u64> {
        self.children(parent)?.get(name).copied()
    }

    /// A new node `name` in `parent`, numbered after its session path (see `ino`).
    pub fn insert(&mut self, parent: u64, name: OsString, kind: EntryKind, perm: u32, data: Data) -> u64 {
        let path = self.child_path(parent, &name);
        let id = path.as_deref().map_or(Identity::Unnamed, Identity::Path);
        self.insert_as(id, parent, name, kind, perm, data)
    }

    /// The number a new node identified by `id` gets: the one derived from `id`, unless a node
    /// holds it. A node keeps its number while it lives (renamed, unlinked and still open,
    /// bound, held by the kernel), and the kernel must never see one node id name two files it
    /// still holds; so a node in the way (a colliding path, a file replaced elsewhere while the
    /// kernel holds the old one, a new file where a renamed one came from) sends the new node to
    /// the next free number. Once nobody holds the old node, its number is free again.
    fn number(&self, id: Identity<'_>) -> u64 {
        self.numbering.assign(id, |n| n == ROOT || self.nodes.contains_key(&n))
    }

    fn insert_as(
        &mut self,
        id: Identity<'_>,
        parent: u64,
        name: OsString,
        kind: EntryKind,
        perm: u32,
        data: Data,
    ) -> u64 {
        let ino = self.number(id);
        let now = super::coarse_now();
        self.nodes.insert(
            ino,
            Node {
                parent,
                name: name.clone(),
                other_names: Vec::new(),
                names: 1,
                link: None,
                kind,
                perm,
                uid: None,
                gid: None,
                owner_unsent: false,
                rdev: 0,
                size: 0,
                mtime: now,
                atime: now,
                ctime: now,
                data,
                lookups: 0,
                linked: true,
                bound: false,
                dirty: false,
                local_seq: 0,
                upload_seq: 0,
                uploaded: None,
            },
        );
        if let Some(c) = self.children_mut(parent) {
            c.insert(name, ino);
        }
        ino
    }

    /// A node for entry `e` of `parent` (at session path `parent_path`), or another name of
    /// the hard-linked node already loaded.
    fn node_from_remote(&mut self, parent: u64, parent_path: Option<&str>, e: &RemoteEntry) -> u64 {
        // Another name of a node already loaded (a hard link): the same inode, if it still
        // shows what the server lists.
        if let Some(ino) = e.link.and_then(|l| self.groups.get(&l).copied())
            && self
                .nodes
                .get(&ino)
                .is_some_and(|n| n.linked && n.kind == e.kind && same_content(n, e))
        {
            self.add_name(ino, parent, OsString::from(&e.name));
            if let Some(n) = self.nodes.get_mut(&ino) {
                apply_remote_attrs(n, e);
            }
            return ino;
        }
        let data = match e.kind {
            EntryKind::Dir => Data::Dir {
                children: None,
                loaded_at: None,
                version: None,
            },
            EntryKind::File => Data::File(FileData::Remote(e.content_id.as_deref().map(Arc::from))),
            EntryKind::Symlink => Data::Symlink(OsString::from(e.symlink_target.clone().unwrap_or_default())),
            _ => Data::Special,
        };
        // Every name of a hard-link group is one inode: numbered after the group, whichever name
        // is met first.
        let path = parent_path.map(|p| {
            if p.is_empty() {
                e.name.clone()
            } else {
                format!("{p}/{}", e.name)
            }
        });
        let id = match (e.link, &path) {
            (Some(l), _) => Identity::Group(l),
            (None, Some(p)) => Identity::Path(p),
            (None, None) => Identity::Unnamed,
        };
        let ino = self.insert_as(id, parent, OsString::from(&e.name), e.kind, e.mode & 0o7777, data);
        if let Some(n) = self.nodes.get_mut(&ino) {
            apply_remote_attrs(n, e);
        }
        if let Some(l) = e.link {
            self.groups.insert(l, ino);
        }
        ino
    }

    /// Give non-directory `ino` the further name `name` in `dir` (a hard link).
    pub fn add_name(&mut self, ino: u64, dir: u64, name: OsString) {
        if let Some(c) = self.children_mut(dir) {
            c.insert(name.clone(), ino);
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.other_names.push((dir, name));
            n.names = n.names.max(1) + 1;
        }
    }

    /// Take the name `name` in `dir` from `ino` (the directory's entry is dealt with by the
    /// caller): another name becomes the node's first; without one, the node is unlinked.
    fn remove_name(&mut self, ino: u64, dir: u64, name: &OsStr) {
        let Some(n) = self.nodes.get_mut(&ino) else { return };
        if n.parent == dir && n.name == name {
            if n.other_names.is_empty() {
                n.linked = false;
            } else {
                let (p, nm) = n.other_names.remove(0);
                n.parent = p;
                n.name = nm;
            }
        } else if let Some(i) = n.other_names.iter().position(|(p, nm)| *p == dir && nm == name) {
            n.other_names.remove(i);
        } else {
            // Not a name of this node (a replaced entry); nothing to count.
            return;
        }
        n.names = n.names.saturating_sub(1);
        if n.linked {
            n.names = n.names.max(1 + n.other_names.len() as u32);
            // Losing a name changes the inode (its link count): its ctime moves, as on a disk.
            n.ctime = SystemTime::now();
        }
    }

    /// The name `from` of `ino` is now `to` (a rename; the directories' entries are dealt with
    /// by the caller).
    pub fn rename_name(&mut self, ino: u64, from: (u64, &OsStr), to: (u64, OsString)) {
        let Some(n) = self.nodes.get_mut(&ino) else { return };
        if n.parent == from.0 && n.name == from.1 {
            (n.parent, n.name) = to;
        } else if let Some(slot) = n.other_names.iter_mut().find(|(p, nm)| *p == from.0 && nm == from.1) {
            *slot = to;
        } else {
            (n.parent, n.name) = to;
        }
    }

    /// Merge a fresh listing of `dir` from the server. Entries with local changes the server has
    /// not acknowledged yet (`acked` < their `local_seq`) keep their local state. Returns the
    /// inodes whose content changed on the server (for kernel cache invalidation) and the names
    /// that disappeared or were replaced.
    /// `version` is the version of the session state the listing shows.
    pub fn merge_listing(
        &mut self,
        dir: u64,
        entries: &[RemoteEntry],
        acked: u64,
        version: Option<i64>,
        refused: &dyn Fn(u64) -> bool,
    ) -> MergeOutcome {
        let mut out = MergeOutcome::default();
        let dir_busy = self.nodes.get(&dir).is_some_and(|n| n.local_seq > acked);
        let dir_path = self.path(dir);
        let dir_path = dir_path.as_deref();
        let listed_before = self.children(dir).is_some();
        let old: BTreeMap<OsString, u64> = match self.children(dir) {
            Some(c) => c.clone(),
            None => {
                if let Some(Node {
                    data: Data::Dir { children, .. },
                    ..
                }) = self.nodes.get_mut(&dir)
                {
                    *children = Some(BTreeMap::new());
                }
                BTreeMap::new()
            }
        };
        let mut seen = HashSet::new();
        for e in entries {
            // A server bug or a hostile server must not make the kernel see `.`, `..`, an empty
            // name (the root listed as its own child) or a path as an entry.
            if !valid_name(&e.name) {
                tracing::warn!(dir = dir, name = ?e.name, "ignoring an entry with an invalid name");
                continue;
            }
            let name = OsString::from(&e.name);
            seen.insert(name.clone());
            match old.get(&name).copied() {
                Some(ino) => {
                    let Some(n) = self.nodes.get_mut(&ino) else { continue };
                    // A local copy is kept unless the server holds other content for the name
                    // after it: its upload was refused, or acknowledged before this listing was
                    // asked for and replaced since.
                    let superseded = refused(ino)
                        || n.uploaded
                            .as_deref()
                            .is_some_and(|u| Some(u) != e.content_id.as_deref());
                    let local = n.local_seq > acked
                        || n.dirty
                        || matches!(n.data, Data::File(FileData::Local(_))) && !superseded;
                    if local || dir_busy {
                        continue;
                    }
                    let group = e.link.and_then(|l| self.groups.get(&l).copied());
                    if let (Some(l), None) = (e.link, group) {
                        n.link = Some(l);
                        self.groups.insert(l, ino);
                    } else if group.is_some_and(|g| g != ino) {
                        // Linked elsewhere to a node already loaded: the name shows that node.
                        self.unlink_entry(dir, &name);
                        out.gone.push(name.clone());
                        self.node_from_remote(dir, dir_path, e);
                        continue;
                    }
                    let Some(n) = self.nodes.get_mut(&ino) else { continue };
                    if n.kind != e.kind {
                        self.unlink_entry(dir, &name);
                        out.gone.push(name.clone());
                        self.node_from_remote(dir, dir_path, e);
                        continue;
                    }
                    let before = content_key(n);
                    let remote_id = e.content_id.as_deref().map(Arc::<str>::from);
                    if n.kind == EntryKind::File && before != (e.size, remote_id) {
                        // New content gets a new inode: a kernel that caches writes trusts its
                        // own size and times of a cached inode over anything the mount says.
                        // The old one stays bound to the name (it may be open for writing).
                        self.replace_entry(dir, &name);
                        out.gone.push(name.clone());
                        self.node_from_remote(dir, dir_path, e);
                        continue;
                    }
                    apply_remote_attrs(n, e);
                    match (&mut n.data, e.kind) {
                        (Data::File(f), EntryKind::File) => {
                            *f = FileData::Remote(e.content_id.as_deref().map(Arc::from));
                        }
                        (Data::Symlink(t), EntryKind::Symlink) => {
                            *t = OsString::from(e.symlink_target.clone().unwrap_or_default());
                        }
                        _ => {}
                    }
                    if before != content_key(n) {
                        out.changed.push(ino);
                    }
                }
                None => {
                    if !dir_busy {
                        self.node_from_remote(dir, dir_path, e);
                        // The kernel may hold a negative entry for a name it looked up before.
                        if listed_before {
                            out.added.push(name.clone());
                        }
                    }
                }
            }
        }
        if !dir_busy {
            for (name, ino) in old {
                if seen.contains(&name) {
                    continue;
                }
                let keep = self.nodes.get(&ino).is_some_and(|n| n.local_seq > acked || n.dirty);
                if !keep {
                    self.unlink_entry(dir, &name);
                    out.gone.push(name);
                }
            }
        }
        if let Some(Node {
            data: Data::Dir {
                loaded_at, version: v, ..
            },
            ..
        }) = self.nodes.get_mut(&dir)
        {
            *loaded_at = Some(Instant::now());
            // A busy directory took none of the listing's new names: it holds no version of it,
            // so every later event is applied.
            *v = if dir_busy { None } else { version };
        }
        out
    }

    /// The version of the session state `dir`'s last listing showed, if known.
    pub fn version(&self, dir: u64) -> Option<i64> {
        match self.nodes.get(&dir)?.data {
            Data::Dir { version, .. } => version,
            _ => None,
        }
    }

    /// Make the next access to directory `ino` list it again.
    pub fn mark_stale(&mut self, ino: u64) {
        if let Some(Node {
            data: Data::Dir { loaded_at, .. },
            ..
        }) = self.nodes.get_mut(&ino)
        {
            *loaded_at = None;
        }
    }

    /// Remove `name` from `dir`; the node lives on while the kernel or an open file holds it.
    /// Nodes bound to the name lose it: it was removed or replaced for good.
    pub fn unlink_entry(&mut self, dir: u64, name: &OsStr) -> Option<u64> {
        self.unbind(dir, name);
        let ino = self.children_mut(dir)?.remove(name)?;
        self.remove_name(ino, dir, name);
        self.maybe_drop(ino);
        Some(ino)
    }

    /// Take `name` out of `dir` for newer content about to be inserted under it: a file node
    /// stays bound to the name (see [`Tree::rebind`]), anything else is unlinked.
    fn replace_entry(&mut self, dir: u64, name: &OsStr) -> Option<u64> {
        let ino = self.children_mut(dir)?.remove(name)?;
        if self.nodes.get(&ino).is_some_and(|n| !n.other_names.is_empty()) {
            // It keeps its other names: nothing to bind.
            self.remove_name(ino, dir, name);
            return Some(ino);
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.linked = false;
            n.bound = n.kind == EntryKind::File;
            if n.bound {
                self.bound.entry((dir, name.to_owned())).or_default().insert(ino);
            }
        }
        self.maybe_drop(ino);
        Some(ino)
    }

    /// End every binding to `name` in `dir`: the name was removed, replaced or renamed through
    /// the mount, or is gone from the server.
    pub fn unbind(&mut self, dir: u64, name: &OsStr) {
        if self.bound.is_empty() {
            return;
        }
        if let Some(inos) = self.bound.remove(&(dir, name.to_owned())) {
            for ino in inos {
                if let Some(n) = self.nodes.get_mut(&ino) {
                    n.bound = false;
                }
            }
        }
    }

    /// A bound file node was written: it takes its name back, and whatever holds the name now
    /// (the newer content a listing brought) becomes bound in its place. Returns the directory
    /// and the name, for the kernel's entry to be invalidated, or `None` when `ino` is not bound
    /// or its directory is gone (it stays unlinked: its writes go nowhere, as with any file
    /// removed while open).
    pub fn rebind(&mut self, ino: u64) -> Option<(u64, OsString)> {
        let (dir, name) = match self.nodes.get(&ino) {
            Some(n) if n.bound => (n.parent, n.name.clone()),
            _ => return None,
        };
        let dir_ok = self.path(dir).is_some() && self.children(dir).is_some();
        let holder = self.lookup(dir, &name);
        let holder_is_file = holder.is_none_or(|h| self.nodes.get(&h).is_some_and(|n| n.kind == EntryKind::File));
        if !dir_ok || !holder_is_file {
            self.unbind(dir, &name);
            return None;
        }
        if let Some(set) = self.bound.get_mut(&(dir, name.clone())) {
            set.remove(&ino);
        }
        if holder.is_some() {
            self.replace_entry(dir, &name);
        }
        if let Some(c) = self.children_mut(dir) {
            c.insert(name.clone(), ino);
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.linked = true;
            n.bound = false;
        }
        Some((dir, name))
    }

    /// Free an unlinked node nobody references any more.
    pub fn maybe_drop(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        let drop = self.nodes.get(&ino).is_some_and(|n| !n.linked && n.lookups == 0);
        if !drop {
            return;
        }
        let removed = self.nodes.remove(&ino);
        if let Some(hook) = &self.on_drop {
            hook(ino);
        }
        if let Some(l) = removed.as_ref().and_then(|n| n.link)
            && self.groups.get(&l) == Some(&ino)
        {
            self.groups.remove(&l);
        }
        match removed {
            Some(Node {
                data: Data::Dir {
                    children: Some(children),
                    ..
                },
                ..
            }) => {
                for (name, child) in children {
                    self.remove_name(child, ino, &name);
                    self.maybe_drop(child);
                }
            }
            Some(Node {
                bound: true,
                parent,
                name,
                ..
            }) => {
                let key = (parent, name);
                if let Some(set) = self.bound.get_mut(&key) {
                    set.remove(&ino);
                    if set.is_empty() {
                        self.bound.remove(&key);
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `ino` is `ancestor` or lies below it.
    pub fn is_within(&self, mut ino: u64, ancestor: u64) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            if ino == ROOT {
                return false;
            }
            match self.nodes.get(&ino) {
                Some(n) => ino = n.parent,
                None => return false,
            }
        }
    }
}

#[derive(Default, Debug)]
pub struct MergeOutcome {
    pub changed: Vec<u64>,
    pub gone: Vec<OsString>,
    /// Names new since the previous listing (none on a first listing).
    pub added: Vec<OsString>,
}

/// Whether node `n` shows what `e` lists (a node holding local bytes does: they are newer).
fn same_content(n: &Node, e: &RemoteEntry) -> bool {
    matches!(n.data, Data::File(FileData::Local(_))) || content_key(n) == remote_key(e)
}

/// What [`content_key`] of a node made from `e` would be.
fn remote_key(e: &RemoteEntry) -> (u64, Option<Arc<str>>) {
    let id = match e.kind {
        EntryKind::File => e.content_id.as_deref().map(Arc::from),
        _ => None,
    };
    let size = match e.kind {
        EntryKind::Symlink => e.symlink_target.as_ref().map_or(e.size, |t| t.len() as u64),
        _ => e.size,
    };
    (size, id)
}

fn content_key(n: &Node) -> (u64, Option<Arc<str>>) {
    let id = match &n.data {
        Data::File(FileData::Remote(id)) => id.clone(),
        _ => None,
    };
    (n.size, id)
}

fn apply_remote_attrs(n: &mut Node, e: &RemoteEntry) {
    n.perm = e.mode & 0o7777;
    n.size = match e.kind {
        EntryKind::Symlink => e.symlink_target.as_ref().map_or(e.size, |t| t.len() as u64),
        _ => e.size,
    };
    n.uid = e.uid;
    n.gid = e.gid;
    n.rdev = e.rdev;
    n.link = e.link;
    if n.kind != EntryKind::Dir {
        n.names = e.nlink.max(1).max(1 + n.other_names.len() as u32);
    }
    let t = time_from_ns(e.mtime_ns);
    n.mtime = t;
    n.ctime = t;
    n.atime = t;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> RemoteEntry {
        RemoteEntry {
            name: name.into(),
            kind: EntryKind::File,
            size: 1,
            mode: 0o644,
            content_id: Some(format!("id-{name}")),
            ..RemoteEntry::default()
        }
    }

    #[test]
    fn a_listing_never_makes_an_entry_of_an_invalid_name() {
        let mut tree = Tree::new(0o755);
        let root_as_child = RemoteEntry {
            kind: EntryKind::Dir,
            ..file("")
        };
        let listing = [
            root_as_child,
            file("."),
            file(".."),
            file("a/b"),
            file("a\0b"),
            file("ok"),
        ];
        tree.merge_listing(ROOT, &listing, 0, None, &|_| false);
        let names: Vec<&OsString> = tree.children(ROOT).unwrap().keys().collect();
        assert_eq!(names, [&OsString::from("ok")]);
    }

    #[test]
    fn a_listing_a_busy_directory_did_not_take_leaves_it_without_a_version() {
        let mut tree = Tree::new(0o755);
        tree.merge_listing(ROOT, &[file("a")], 0, Some(7), &|_| false);
        assert_eq!(tree.version(ROOT), Some(7));
        // A local change not acknowledged yet: the next listing's new names are not taken, so
        // a later event for them must not be skipped as shown.
        tree.get_mut(ROOT).unwrap().local_seq = 5;
        tree.merge_listing(ROOT, &[file("a"), file("b")], 4, Some(9), &|_| false);
        assert_eq!(tree.lookup(ROOT, OsStr::new("b")), None);
        assert_eq!(tree.version(ROOT), None);
        tree.merge_listing(ROOT, &[file("a"), file("b")], 5, Some(9), &|_| false);
        assert!(tree.lookup(ROOT, OsStr::new("b")).is_some());
        assert_eq!(tree.version(ROOT), Some(9));
    }

    #[test]
    fn a_replaced_file_stays_bound_to_its_name_until_the_name_goes() {
        let mut tree = Tree::new(0o755);
        tree.merge_listing(ROOT, &[file("f")], 0, None, &|_| false);
        let old = tree.lookup(ROOT, OsStr::new("f")).unwrap();
        tree.get_mut(old).unwrap().lookups = 1; // the kernel holds it (an open descriptor)
        let changed = RemoteEntry {
            content_id: Some("id-new".into()),
            ..file("f")
        };
        tree.merge_listing(ROOT, std::slice::from_ref(&changed), 0, None, &|_| false);
        let new = tree.lookup(ROOT, OsStr::new("f")).unwrap();
        assert_ne!(new, old);
        assert!(tree.get(old).unwrap().bound);
        assert_eq!(tree.path_or_bound(old).as_deref(), Some("f"));
        // A write through the old inode takes the name back; the newer one is bound instead.
        tree.get_mut(new).unwrap().lookups = 1;
        assert_eq!(tree.rebind(old), Some((ROOT, OsString::from("f"))));
        assert_eq!(tree.lookup(ROOT, OsStr::new("f")), Some(old));
        assert!(tree.get(new).unwrap().bound);
        // Gone from the server: no binding left.
        tree.merge_listing(ROOT, &[], 0, None, &|_| false);
        assert!(!tree.get(new).unwrap().bound);
        assert_eq!(tree.rebind(new), None);
        assert_eq!(tree.lookup(ROOT, OsStr::new("f")), None);
        // A bound inode the kernel forgets is freed, and its binding with it.
        tree.merge_listing(ROOT, &[changed], 0, None, &|_| false);
        let again = tree.lookup(ROOT, OsStr::new("f")).unwrap();
        tree.merge_listing(ROOT, &[file("f")], 0, None, &|_| false);
        assert!(tree.bound.is_empty());
        // Nobody held it: its number is free again, and the newer content gets it (the number
        // derived from the path is held by `old`, the next one by `new`).
        assert_eq!(tree.lookup(ROOT, OsStr::new("f")), Some(again));
        let holder = tree.get(again).unwrap();
        assert!(matches!(&holder.data, Data::File(FileData::Remote(Some(id))) if &**id == "id-f"));
        assert!(!holder.bound);
    }
}
