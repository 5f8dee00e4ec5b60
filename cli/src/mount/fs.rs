//! The FUSE filesystem: answers the kernel from the local tree, fetches what was never loaded,
//! and queues changes for the server in order.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use parking_lot::{Mutex, MutexGuard};

use crate::mount::backend::{Backend, BackendError, EntryKind, RemoteOp};
use crate::mount::content_cache::{BLOCK, BlockKey, ContentCache};
use crate::mount::content_reader::{self, ContentReader};
use crate::mount::cpu_latency::CpuLatency;
use crate::mount::events::{OwnChanges, RemoteEvent};
use crate::mount::idle_upload::{self, IdleUploads};
use crate::mount::invalidate::{Inval, Invalidator};
use crate::mount::kernel_warm::{KernelWarm, Located};
use crate::mount::prefetch::{self, ListDirs, ListedDir};
use crate::mount::tree::{Data, FileData, MergeOutcome, Node, ROOT, Tree};
use crate::mount::writeback::{Job, LocalFile, Staging, Uploaded, WaitError, Writeback};

#[derive(Debug, Clone)]
pub struct MountConfig {
    pub read_only: bool,
    /// How long the kernel and the mount trust a listing or attribute before asking again,
    /// while nothing tells the mount about changes made elsewhere.
    pub ttl: Duration,
    /// The same while the session's watch stream is connected: every change made elsewhere
    /// then invalidates exactly what it touched, so entries can be trusted for long.
    pub watched_ttl: Duration,
    pub uid: u32,
    pub gid: u32,
    /// Where files being written keep their bytes once they outgrow memory (see `local_file`;
    /// unnamed `O_TMPFILE` files).
    pub staging_dir: PathBuf,
    /// Where the session is mounted, to list what the mount changed once it is quiet so the
    /// kernel's caches hold it again (`kernel_warm`); `None` leaves that to the kernel.
    pub warm_at: Option<PathBuf>,
}

/// Cheap to clone: every clone is the same mount (the watch stream holds one).
#[derive(Clone)]
pub struct AetherFs {
    backend: Arc<dyn Backend>,
    cache: Arc<ContentCache>,
    /// Reads file content through `cache`, verifying what it fetches.
    reader: Arc<ContentReader>,
    writeback: Arc<Writeback>,
    tree: Arc<Mutex<Tree>>,
    config: Arc<MountConfig>,
    /// Where files being written keep their bytes (memory while small, else staging files).
    staging: Arc<Staging>,
    invalidator: Invalidator,
    /// Whether the watch stream is connected (see [`AetherFs::set_watching`]).
    watching: Arc<AtomicBool>,
    own: Arc<OwnChanges>,
    /// Whether the kernel caches writes (negotiated in `init`).
    kernel_writeback: Arc<AtomicBool>,
    /// Whether `open` answers "not implemented" (decided in `init`): the kernel then opens and
    /// releases files without asking, two round trips less for every file a tool opens.
    no_open: Arc<AtomicBool>,
    /// Whether `flush` answers "not implemented" (decided in `init`): closes then cost nothing,
    /// and written files are sent when the kernel writes them (see `idle_upload`).
    no_flush: Arc<AtomicBool>,
    /// Whether the mount clears set-user-ID and set-group-ID bits itself (negotiated in `init`,
    /// see `privs_to_kill`): the kernel then needs no `getattr` before every `chown`.
    kills_privs: Arc<AtomicBool>,
    idle: Arc<IdleUploads>,
    warm: Arc<KernelWarm>,
    /// Keeps idle CPUs awake while requests come (see `cpu_latency`).
    latency: CpuLatency,
    /// Requests the kernel sent, by kind (counted in tests).
    #[cfg(test)]
    seen: Arc<Mutex<std::collections::HashMap<&'static str, u64>>>,
    /// Lookups, getattrs and listings the kernel sent (what its caches could not answer).
    #[cfg(test)]
    asks_seen: Arc<std::sync::atomic::AtomicU64>,
    /// Directories whose small files are being fetched together (`fetch_siblings`).
    batching: Arc<Mutex<std::collections::HashSet<u64>>>,
}

/// Queue `ino`'s bytes for the server if it holds unsent writes.
fn queue_upload(writeback: &Writeback, tree: &mut Tree, ino: u64) -> Option<u64> {
    // Most calls (every close of a file only read) have nothing to send: no path walk then.
    if !tree.get(ino)?.dirty {
        return None;
    }
    let path = tree.path(ino)?;
    let n = tree.get_mut(ino)?;
    let Data::File(FileData::Local(source)) = &n.data else {
        return None;
    };
    let seq = writeback.enqueue(Job::Put {
        ino,
        path,
        mode: n.perm,
        source: source.clone(),
    });
    n.dirty = false;
    n.local_seq = seq;
    n.upload_seq = seq;
    n.uploaded = None;
    Some(seq)
}

/// The times a `setattr` sets, each if given.
#[derive(Default)]
struct SetTimes {
    mtime: Option<TimeOrNow>,
    atime: Option<TimeOrNow>,
    ctime: Option<SystemTime>,
}

/// `perm` without set-user-ID, and without set-group-ID when the group may execute (without
/// group execute, set-group-ID marks mandatory locking and stays): `None` if that changes nothing.
pub fn killed_privs(perm: u32) -> Option<u32> {
    let kill = libc::S_ISUID | if perm & libc::S_IXGRP != 0 { libc::S_ISGID } else { 0 };
    (perm & kill != 0).then_some(perm & !kill)
}

fn errno(code: i32) -> Errno {
    Errno::from_i32(code)
}

fn backend_errno(e: &BackendError) -> Errno {
    errno(e.errno())
}

fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
    }
}

type R<T> = Result<T, Errno>;

impl AetherFs {
    pub fn new(
        backend: Arc<dyn Backend>,
        cache: Arc<ContentCache>,
        writeback: Arc<Writeback>,
        config: MountConfig,
    ) -> std::io::Result<AetherFs> {
        std::fs::create_dir_all(&config.staging_dir)?;
        let staging = Staging::new(config.staging_dir.clone());
        let tree = Arc::new(Mutex::new(Tree::new(0o755)));
        let (hook_tree, hook_cache) = (tree.clone(), cache.clone());
        let resident = Mutex::new(VecDeque::new());
        writeback.on_upload(Box::new(move |u: Uploaded<'_>| {
            settle_upload(&hook_tree, &hook_cache, &resident, u)
        }));
        Ok(AetherFs {
            reader: Arc::new(ContentReader::new(backend.clone(), cache.clone())),
            backend,
            cache,
            own: writeback.own_changes(),
            writeback,
            tree,
            config: Arc::new(config),
            staging,
            invalidator: Invalidator::start(),
            watching: Arc::new(AtomicBool::new(false)),
            kernel_writeback: Arc::new(AtomicBool::new(false)),
            no_open: Arc::new(AtomicBool::new(false)),
            no_flush: Arc::new(AtomicBool::new(false)),
            kills_privs: Arc::new(AtomicBool::new(false)),
            idle: Arc::default(),
            warm: Arc::default(),
            latency: CpuLatency::off(),
            #[cfg(test)]
            seen: Arc::default(),
            #[cfg(test)]
            asks_seen: Arc::default(),
            batching: Arc::default(),
        })
    }

    /// Hold `latency` while the kernel sends requests.
    pub fn with_cpu_latency(mut self, latency: CpuLatency) -> AetherFs {
        self.latency = latency;
        self
    }

    /// The root's own attributes as the session holds them (its mode is the root's, set by a
    /// `chmod` of the mount's root; the server never lists the root as an entry).
    pub fn with_root(self, perm: u32, mtime: Option<SystemTime>) -> AetherFs {
        if let Some(root) = self.tree.lock().get_mut(ROOT) {
            root.perm = perm & 0o7777;
            if let Some(t) = mtime {
                root.mtime = t;
                root.ctime = t;
                root.atime = t;
            }
        }
        self
    }

    /// Whether the watch stream is connected: while it is, listings and kernel entries are
    /// trusted for `watched_ttl` and invalidated by [`AetherFs::apply_event`].
    pub fn set_watching(&self, live: bool) {
        self.watching.store(live, Ordering::SeqCst);
    }

    /// Stop refreshing the kernel's caches, and wait until no such call is inside the mount
    /// (an unmount fails while one is).
    pub fn stop_warming(&self) {
        self.warm.stop();
    }

    /// How many requests of kind `op` (`"open"`, `"setattr"`...) the kernel sent.
    #[cfg(test)]
    pub fn seen(&self, op: &str) -> u64 {
        self.seen.lock().get(op).copied().unwrap_or(0)
    }

    /// Make the kernel drop `name` in the root from its entry cache, and with it the inode once
    /// unused (FUSE keeps no unused inodes).
    #[cfg(test)]
    pub fn forget_in_kernel(&self, name: &OsStr) {
        self.invalidator.send(Inval::Entry {
            parent: ROOT,
            name: name.to_owned(),
        });
    }

    /// Count a request of kind `op` (in tests; nothing otherwise).
    fn count(&self, _op: &'static str) {
        #[cfg(test)]
        {
            *self.seen.lock().entry(_op).or_default() += 1;
        }
    }

    /// How many lookups, getattrs and listings the kernel sent.
    #[cfg(test)]
    pub fn asks_seen(&self) -> u64 {
        self.asks_seen.load(Ordering::SeqCst)
    }

    /// Whether the kernel cache refresh has nothing marked and no pass running.
    #[cfg(test)]
    pub fn warm_idle(&self) -> bool {
        self.warm.idle()
    }

    /// A request the kernel's caches could not answer (counted in tests).
    fn asked(&self) {
        self.latency.busy();
        #[cfg(test)]
        self.asks_seen.fetch_add(1, Ordering::SeqCst);
    }

    /// Files whose bytes are held locally (each holds a descriptor).
    #[cfg(test)]
    pub fn local_files(&self) -> usize {
        let tree = self.tree.lock();
        tree.nodes
            .values()
            .filter(|n| matches!(n.data, Data::File(FileData::Local(_))))
            .count()
    }

    fn ttl(&self) -> Duration {
        if self.watching.load(Ordering::SeqCst) {
            self.config.watched_ttl
        } else {
            self.config.ttl
        }
    }

    /// A change made to the session (from the watch stream). The mount's own changes and
    /// changes that leave what the mount already shows are ignored; anything else drops the
    /// listing of the directory it touched and the kernel's cached entry, attributes and pages.
    pub fn apply_event(&self, ev: &RemoteEvent) {
        if ev.resets_everything() {
            self.invalidate_all();
            return;
        }
        let Some(path) = ev.path.as_deref() else { return };
        if self.own.consume(&ev.kind, path) {
            return;
        }
        let acked = self.writeback.acked();
        let tree = &mut *self.tree.lock();
        // The root's own attributes: it is no entry of any directory.
        if path.is_empty() {
            if let (Some(mode), Some(root)) = (ev.mode.filter(|_| ev.kind == "chmod"), tree.get_mut(ROOT))
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
        let node = node_at;
        let pending = |n: &Node| n.local_seq > acked || n.dirty;
        let n = node(tree, &from);
        let current = match (ev.kind.as_str(), n) {
            // Moved away and present at the destination: what the mount shows.
            ("rename", n) => n.is_none() && node(tree, &to).is_some(),
            (_, Some(n)) if pending(n) => true,
            ("write", Some(n)) => {
                Some(n.size) == ev.size
                    && matches!(&n.data, Data::File(FileData::Remote(Some(id))) if Some(&**id) == ev.oid.as_deref())
            }
            ("mkdir", Some(n)) => n.is_dir(),
            ("symlink", Some(n)) => {
                matches!(&n.data, Data::Symlink(t) if t.to_str().is_some() && t.to_str() == ev.target.as_deref())
            }
            ("chmod", Some(n)) => Some(n.perm) == ev.mode,
            ("delete", None) => from.is_some(),
            _ => false,
        };
        if current {
            return;
        }
        tracing::debug!(kind = %ev.kind, path, to = ?ev.to, "a change made elsewhere: invalidating");
        // A mode change keeps the entry (and any process's working directory in it): take the
        // new mode from the event and drop only the kernel's attributes.
        if let ("chmod", Some(mode), Some((dir, name))) = (ev.kind.as_str(), ev.mode, &from)
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
    fn resolve_parent(&self, tree: &mut Tree, path: &str) -> Option<(u64, OsString)> {
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
    fn invalidate_entry(&self, tree: &mut Tree, dir: u64, name: &OsStr) {
        tree.mark_stale(dir);
        // The directory's own cached listing (kept across opens while watched) goes too.
        self.invalidator.send(Inval::Inode { ino: dir });
        if let Some(c) = tree.lookup(dir, name) {
            tree.mark_stale(c);
            self.invalidator.send(Inval::Inode { ino: c });
        }
        self.invalidator.send(Inval::Entry {
            parent: dir,
            name: name.to_owned(),
        });
    }

    /// The whole session changed (a restore): every listing and kernel cache entry goes.
    fn invalidate_all(&self) {
        let tree = &mut *self.tree.lock();
        let inos: Vec<u64> = tree.nodes.keys().copied().collect();
        for ino in inos {
            tree.mark_stale(ino);
            self.invalidator.send(Inval::Inode { ino });
            if let Some(children) = tree.children(ino) {
                for name in children.keys() {
                    self.invalidator.send(Inval::Entry {
                        parent: ino,
                        name: name.clone(),
                    });
                }
            }
        }
    }

    /// Where kernel invalidations go; connect it to the mounted session's notifier.
    pub fn invalidator(&self) -> Invalidator {
        self.invalidator.clone()
    }

    fn attr(&self, ino: u64, n: &Node) -> FileAttr {
        let size = n.size;
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
            crtime: n.ctime,
            kind: file_type(n.kind),
            perm: (n.perm & 0o7777) as u16,
            nlink: if n.is_dir() { 2 } else { 1 },
            uid: self.config.uid,
            gid: self.config.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn writable(&self) -> R<()> {
        if self.config.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// Make sure `dir`'s entries are loaded and fresh enough.
    fn ensure_listed(&self, dir: u64) -> R<()> {
        let (path, first) = {
            let tree = self.tree.lock();
            let n = tree.get(dir).ok_or(Errno::ENOENT)?;
            let first = matches!(n.data, Data::Dir { children: None, .. });
            match &n.data {
                Data::Dir {
                    children: Some(_),
                    loaded_at,
                } => {
                    let fresh = loaded_at.is_some_and(|t| t.elapsed() < self.ttl());
                    if fresh || n.local_seq > self.writeback.acked() {
                        return Ok(());
                    }
                }
                Data::Dir { children: None, .. } => {}
                _ => return Err(Errno::ENOTDIR),
            }
            match tree.path(dir) {
                Some(p) => (p, first),
                // An unlinked directory has no entries left on the server.
                None => return Ok(()),
            }
        };
        // A directory never listed brings the listings below it: whoever lists a directory for
        // the first time usually walks it (find, git status, ls -R, a build).
        let listing = if first {
            let opts = ListDirs {
                max_entries: prefetch::WALK_ENTRIES,
                ..ListDirs::default()
            };
            self.backend.list_dirs(&path, &opts)
        } else {
            self.backend.list(&path).map(|entries| {
                vec![ListedDir {
                    path: path.clone(),
                    entries,
                    contents: Vec::new(),
                }]
            })
        };
        let mut tree = self.tree.lock();
        match listing {
            Ok(dirs) => {
                let acked = self.writeback.acked();
                let mut dirs = dirs.into_iter();
                if let Some(own) = dirs.next() {
                    let outcome = tree.merge_listing(dir, &own.entries, acked);
                    self.after_merge(dir, outcome);
                }
                for below in dirs {
                    // Only directories nobody listed yet: the others are as fresh as they need be.
                    let Some(ino) = below_dir(&tree, dir, &path, &below.path) else {
                        continue;
                    };
                    let outcome = tree.merge_listing(ino, &below.entries, acked);
                    self.after_merge(ino, outcome);
                }
                Ok(())
            }
            Err(BackendError::NotFound(_)) if tree.children(dir).is_some() => Ok(()),
            Err(e) => {
                if tree.children(dir).is_some() && e.is_retryable() {
                    // Serve the entries we have while the server is away.
                    return Ok(());
                }
                Err(backend_errno(&e))
            }
        }
    }

    /// Tell the kernel what a merged listing of `dir` changed.
    fn after_merge(&self, dir: u64, outcome: MergeOutcome) {
        for &ino in &outcome.changed {
            self.invalidator.send(Inval::Inode { ino });
        }
        // The kernel may hold the old listing (kept across opens) and negative entries for
        // names that now exist.
        if !outcome.gone.is_empty() || !outcome.added.is_empty() || !outcome.changed.is_empty() {
            self.invalidator.send(Inval::Inode { ino: dir });
        }
        for name in outcome.gone.into_iter().chain(outcome.added) {
            self.invalidator.send(Inval::Entry { parent: dir, name });
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> R<Option<u64>> {
        self.ensure_listed(parent)?;
        Ok(self.tree.lock().lookup(parent, name))
    }

    fn check_name(name: &OsStr) -> R<&str> {
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let s = name.to_str().ok_or(Errno::EINVAL)?;
        if s.is_empty() || s == "." || s == ".." || s.contains('/') {
            return Err(Errno::EINVAL);
        }
        Ok(s)
    }

    /// Read `len` bytes at `offset` of a file whose bytes are on the server (verified: see
    /// `content_reader`).
    fn read_remote(&self, path: &str, id: &str, size: u64, offset: u64, len: u64) -> R<Vec<u8>> {
        self.reader.read(path, id, size, offset, len).map_err(|e| {
            tracing::debug!(path, id, error = %e, "read failed");
            errno(e.errno())
        })
    }

    /// Give `ino` local bytes (copying the server's content unless `truncate`), for writing.
    ///
    /// Returns with the tree still locked, so the caller changes the copy while the node holds
    /// it: an upload acknowledged after an unlock could settle the node back to its content id,
    /// and a write to the dropped copy would be lost.
    fn materialize(&self, ino: u64, truncate: bool) -> R<(MutexGuard<'_, Tree>, Arc<LocalFile>)> {
        loop {
            let (path, id, size) = {
                let tree = self.tree.lock();
                let n = tree.get(ino).ok_or(Errno::ENOENT)?;
                match &n.data {
                    Data::File(FileData::Local(f)) => {
                        let f = f.clone();
                        return Ok((tree, f));
                    }
                    Data::File(FileData::Remote(id)) => {
                        (tree.path_or_bound(ino).unwrap_or_default(), id.clone(), n.size)
                    }
                    Data::Dir { .. } => return Err(Errno::EISDIR),
                    Data::Symlink(_) => return Err(Errno::EINVAL),
                }
            };
            let file = if truncate {
                self.staging.new_file()
            } else {
                self.staging.file_for(size).map_err(Errno::from)?
            };
            if !truncate && let Some(id) = &id {
                let mut off = 0;
                while off < size {
                    let chunk = self.read_remote(&path, id, size, off, BLOCK)?;
                    if chunk.is_empty() {
                        break;
                    }
                    file.write_at(&chunk, off).map_err(Errno::from)?;
                    off += chunk.len() as u64;
                }
            }
            let local = Arc::new(file);
            let mut tree = self.tree.lock();
            let n = tree.get_mut(ino).ok_or(Errno::ENOENT)?;
            match &n.data {
                Data::File(FileData::Remote(now)) if *now == id => {
                    n.data = Data::File(FileData::Local(local.clone()));
                    if truncate {
                        n.size = 0;
                    }
                    return Ok((tree, local));
                }
                // Someone else materialized or the content changed meanwhile: look again.
                _ => continue,
            }
        }
    }

    /// Queue the upload of `ino`'s local bytes if they changed since the last one.
    fn queue_upload(&self, tree: &mut Tree, ino: u64) -> Option<u64> {
        queue_upload(&self.writeback, tree, ino)
    }

    /// After a write or setattr through the kernel without `flush`: a process's own setattr on
    /// a written file is its close (or fsync, or a change it asked for) and sends the file; page
    /// writes and the kernel's own setattr only mark it (see `idle_upload`).
    fn written_by(&self, req: &Request, ino: u64, setattr: bool) {
        if !self.no_flush.load(Ordering::SeqCst) {
            return;
        }
        let size = match self.tree.lock().get(ino) {
            Some(n) if n.dirty => n.size,
            _ => return,
        };
        if setattr && !idle_upload::kernel_thread(req.pid()) {
            self.queue_upload(&mut self.tree.lock(), ino);
        } else if !setattr && size <= SETTLE_CACHED_MAX {
            self.idle.touch(ino, idle_upload::SETTLE);
        } else {
            self.idle.touch(ino, idle_upload::IDLE);
        }
    }

    /// The mode a `setattr` should set when it carries none, once the mount clears set-ID bits
    /// itself (`FUSE_HANDLE_KILLPRIV_V2`): as the kernel would, at every change of a
    /// non-directory's owner, and at a truncation by a caller without `CAP_FSETID`. The kernel
    /// marks such a truncation with a flag the FUSE library does not pass on; root stands for the
    /// capability here (a mount serves only the user who made it, so callers are root when the
    /// mount is root's). A write that must clear them comes flagged (see `write`).
    fn privs_to_kill(&self, req: &Request, ino: u64, chown: bool, truncate: bool) -> Option<u32> {
        if !self.kills_privs.load(Ordering::SeqCst) || !(chown || truncate && req.uid() != 0) {
            return None;
        }
        let tree = self.tree.lock();
        let n = tree.get(ino).filter(|n| !n.is_dir())?;
        killed_privs(n.perm)
    }

    /// Queue every file marked for a later upload (`fsync` on a directory).
    fn send_marked(&self) {
        let marked = self.idle.take_all();
        let mut tree = self.tree.lock();
        for ino in marked {
            self.queue_upload(&mut tree, ino);
        }
    }

    /// Queue every file holding writes not yet queued, marked for later or not.
    fn queue_all_dirty(&self) {
        self.idle.take_all();
        let mut tree = self.tree.lock();
        let dirty: Vec<u64> = tree
            .nodes
            .iter()
            .filter(|(_, n)| n.dirty)
            .map(|(ino, _)| *ino)
            .collect();
        for ino in dirty {
            self.queue_upload(&mut tree, ino);
        }
    }

    /// The mount is going away (unmount, signal): send every write it accepted, waiting at
    /// most the retry window, and stop sending. What could not be sent is kept and recorded
    /// (see `Writeback::refused`). Calling it again changes nothing.
    pub fn finish(&self) -> Result<(), WaitError> {
        self.idle.stop();
        self.warm.stop();
        self.queue_all_dirty();
        self.writeback.shutdown()
    }

    /// A write through `ino` while it is bound to a name newer content took (see
    /// `Tree::rebind`): the name shows `ino` again and its upload goes there. The kernel's entry
    /// for the name and the directory's cached listing still name the other inode: dropped.
    fn take_name_back(&self, tree: &mut Tree, ino: u64) {
        let Some(n) = tree.get(ino).filter(|n| n.bound) else {
            return;
        };
        // Writes the current holder of the name accepted and has not queued yet go up first,
        // under the name it still has: they were written before this one.
        if let Some(holder) = tree.lookup(n.parent, &n.name) {
            self.queue_upload(tree, holder);
        }
        if let Some((dir, name)) = tree.rebind(ino) {
            tracing::debug!(
                ino,
                ?name,
                "a file replaced elsewhere was written through an open descriptor"
            );
            self.invalidator.send(Inval::Inode { ino: dir });
            self.invalidator.send(Inval::Entry { parent: dir, name });
        }
    }

    /// Queue `op`, a change to inode `subject` (whose `fsync` fails if the server refuses it),
    /// as the newest local change of every inode in `touched`.
    fn queue_op(&self, tree: &mut Tree, op: RemoteOp, subject: u64, touched: &[u64]) -> u64 {
        let seq = self.writeback.enqueue(Job::Op { op, ino: subject });
        for ino in touched {
            if let Some(n) = tree.get_mut(*ino) {
                n.local_seq = seq;
            }
        }
        seq
    }

    /// An entry of `dir` was created, removed or renamed.
    fn touch_dir(&self, tree: &mut Tree, dir: u64) {
        self.warm.entries_changed(dir);
        if let Some(d) = tree.get_mut(dir) {
            let now = SystemTime::now();
            d.mtime = now;
            d.ctime = now;
        }
    }

    fn entry_reply(&self, ino: u64, reply: ReplyEntry) {
        let attr = self.tree.lock().get_mut(ino).map(|n| {
            n.lookups += 1;
            self.attr(ino, n)
        });
        match attr {
            Some(attr) => reply.entry(&self.ttl(), &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    /// Create a new entry `name` in `parent` (which must not exist yet).
    fn create_node(&self, parent: u64, name: &OsStr, kind: EntryKind, perm: u32, data: Data) -> R<(u64, String)> {
        self.writable()?;
        Self::check_name(name)?;
        if self.child(parent, name)?.is_some() {
            return Err(Errno::EEXIST);
        }
        let mut tree = self.tree.lock();
        if tree.lookup(parent, name).is_some() {
            return Err(Errno::EEXIST);
        }
        let path = tree.child_path(parent, name).ok_or(Errno::ENOENT)?;
        let ino = tree.insert(parent, name.to_owned(), kind, perm, data);
        self.touch_dir(&mut tree, parent);
        Ok((ino, path))
    }

    fn do_rename(&self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: RenameFlags) -> R<()> {
        self.writable()?;
        Self::check_name(newname)?;
        let src = self.child(parent, name)?.ok_or(Errno::ENOENT)?;
        let dest = self.child(newparent, newname)?;
        if let Some(d) = dest
            && self.tree.lock().get(d).is_some_and(Node::is_dir)
        {
            self.ensure_listed(d)?;
        }
        let mut tree = self.tree.lock();
        // Re-check under the lock: the listing may have changed between the calls above.
        if tree.lookup(parent, name) != Some(src) || tree.lookup(newparent, newname) != dest {
            return Err(Errno::EAGAIN);
        }
        let from = tree.child_path(parent, name).ok_or(Errno::ENOENT)?;
        let to = tree.child_path(newparent, newname).ok_or(Errno::ENOENT)?;
        let src_dir = tree.get(src).is_some_and(Node::is_dir);
        if src_dir && tree.is_within(newparent, src) {
            return Err(Errno::EINVAL);
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let d = dest.ok_or(Errno::ENOENT)?;
            if tree.get(d).is_some_and(Node::is_dir) && tree.is_within(parent, d) {
                return Err(Errno::EINVAL);
            }
            // Files with bytes the server has not seen yet (open, never flushed) go up under
            // their current names first: the renames below need something to move.
            self.queue_upload(&mut tree, src);
            self.queue_upload(&mut tree, d);
            // Files bound to either name (replaced elsewhere while open) lose it: the names now
            // hold what this rename put there.
            tree.unbind(parent, name);
            tree.unbind(newparent, newname);
            // Swap the two entries locally; the server gets three renames through a temporary name.
            if let Some(c) = tree.children_mut(parent) {
                c.insert(name.to_owned(), d);
            }
            if let Some(c) = tree.children_mut(newparent) {
                c.insert(newname.to_owned(), src);
            }
            if let Some(n) = tree.get_mut(src) {
                n.parent = newparent;
                n.name = newname.to_owned();
            }
            if let Some(n) = tree.get_mut(d) {
                n.parent = parent;
                n.name = name.to_owned();
            }
            let tmp = format!("{from}.aether-exchange-{}", crate::mount::now_ns());
            let touched = [parent, newparent, src, d];
            self.queue_op(
                &mut tree,
                RemoteOp::Rename {
                    from: from.clone(),
                    to: tmp.clone(),
                },
                src,
                &touched,
            );
            self.queue_op(
                &mut tree,
                RemoteOp::Rename {
                    from: to.clone(),
                    to: from,
                },
                d,
                &touched,
            );
            self.queue_op(&mut tree, RemoteOp::Rename { from: tmp, to }, src, &touched);
            self.touch_dir(&mut tree, parent);
            self.touch_dir(&mut tree, newparent);
            return Ok(());
        }
        if let Some(d) = dest {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if d == src {
                return Ok(());
            }
            let dest_dir = tree.get(d).is_some_and(Node::is_dir);
            match (src_dir, dest_dir) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if tree.children(d).is_some_and(|c| !c.is_empty()) => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            tree.unlink_entry(newparent, newname);
        }
        // A file with bytes the server has not seen yet (open, never flushed: a temporary file
        // renamed into place before it is closed) goes up under its old name first, so the
        // server has something to rename.
        self.queue_upload(&mut tree, src);
        tree.unbind(parent, name);
        tree.unbind(newparent, newname);
        if let Some(c) = tree.children_mut(parent) {
            c.remove(name);
        }
        if let Some(c) = tree.children_mut(newparent) {
            c.insert(newname.to_owned(), src);
        }
        if let Some(n) = tree.get_mut(src) {
            n.parent = newparent;
            n.name = newname.to_owned();
            n.ctime = SystemTime::now();
        }
        // Bytes written from now on go up under the new name.
        let touched = [parent, newparent, src];
        self.queue_op(&mut tree, RemoteOp::Rename { from, to }, src, &touched);
        self.touch_dir(&mut tree, parent);
        self.touch_dir(&mut tree, newparent);
        Ok(())
    }

    fn do_setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        size: Option<u64>,
        times: SetTimes,
        through_handle: bool,
    ) -> R<FileAttr> {
        if mode.is_some() || size.is_some() {
            self.writable()?;
        }
        if let Some(size) = size {
            let (mut tree, local) = self.materialize(ino, size == 0)?;
            local.set_len(size).map_err(Errno::from)?;
            self.take_name_back(&mut tree, ino);
            if let Some(n) = tree.get_mut(ino) {
                n.size = size;
                n.dirty = true;
                let now = SystemTime::now();
                n.mtime = now;
                n.ctime = now;
                // Through an open file (ftruncate, or O_TRUNC at open) the close sends the bytes
                // (without `flush`, the setattr itself does: see `written_by`); a truncate by
                // path has no close to wait for.
                if !through_handle {
                    self.queue_upload(&mut tree, ino);
                }
            }
        }
        let mut tree = self.tree.lock();
        if let Some(mode) = mode {
            let path = tree.path(ino);
            let n = tree.get_mut(ino).ok_or(Errno::ENOENT)?;
            n.perm = mode & 0o7777;
            n.ctime = SystemTime::now();
            // A pending upload carries the mode itself.
            if let Some(path) = path
                && !n.dirty
            {
                self.queue_op(
                    &mut tree,
                    RemoteOp::Chmod {
                        path,
                        mode: mode & 0o7777,
                    },
                    ino,
                    &[ino],
                );
            }
        }
        let n = tree.get_mut(ino).ok_or(Errno::ENOENT)?;
        let resolve = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        };
        if let Some(t) = times.mtime {
            n.mtime = resolve(t);
        }
        if let Some(t) = times.atime {
            n.atime = resolve(t);
        }
        // With the writeback cache the kernel keeps a file's times and sends them; they must
        // come back unchanged once it forgets the inode.
        if let Some(t) = times.ctime {
            n.ctime = t;
        }
        if n.kind == EntryKind::File {
            self.warm.written(n.parent, ino);
        }
        Ok(self.attr(ino, n))
    }

    fn remove(&self, parent: u64, name: &OsStr, dir: bool) -> R<()> {
        self.writable()?;
        let ino = self.child(parent, name)?.ok_or(Errno::ENOENT)?;
        let is_dir = self.tree.lock().get(ino).is_some_and(Node::is_dir);
        if dir != is_dir {
            return Err(if dir { Errno::ENOTDIR } else { Errno::EISDIR });
        }
        if dir {
            self.ensure_listed(ino)?;
        }
        let mut tree = self.tree.lock();
        if tree.lookup(parent, name) != Some(ino) {
            return Err(Errno::EAGAIN);
        }
        if dir && tree.children(ino).is_some_and(|c| !c.is_empty()) {
            return Err(Errno::ENOTEMPTY);
        }
        let path = tree.child_path(parent, name).ok_or(Errno::ENOENT)?;
        let op = if dir {
            RemoteOp::Rmdir { path }
        } else {
            RemoteOp::Unlink { path }
        };
        // A file the server has never seen (created, still open, never flushed) would make the
        // server refuse the unlink: its bytes go up first, so the unlink has something to remove.
        if !dir {
            self.queue_upload(&mut tree, ino);
        }
        self.queue_op(&mut tree, op, ino, &[parent, ino]);
        tree.unlink_entry(parent, name);
        self.touch_dir(&mut tree, parent);
        Ok(())
    }

    fn do_read(&self, ino: u64, offset: u64, size: u32) -> R<Vec<u8>> {
        let (path, data_id, local, fsize) = {
            let tree = self.tree.lock();
            let n = tree.get(ino).ok_or(Errno::ENOENT)?;
            match &n.data {
                Data::File(FileData::Local(f)) => (String::new(), None, Some(f.clone()), n.size),
                Data::File(FileData::Remote(id)) => (tree.path(ino).unwrap_or_default(), id.clone(), None, n.size),
                Data::Dir { .. } => return Err(Errno::EISDIR),
                Data::Symlink(_) => return Err(Errno::EINVAL),
            }
        };
        if let Some(f) = local {
            let end = fsize.min(offset.saturating_add(u64::from(size)));
            if offset >= end {
                return Ok(Vec::new());
            }
            let mut buf = vec![0; (end - offset) as usize];
            let mut done = 0;
            while done < buf.len() {
                let n = f.read_at(&mut buf[done..], offset + done as u64).map_err(Errno::from)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            buf.truncate(done);
            return Ok(buf);
        }
        match data_id {
            None => Ok(Vec::new()),
            Some(id) => {
                self.fetch_siblings(ino, &id, fsize);
                self.read_remote(&path, &id, fsize, offset, u64::from(size))
            }
        }
    }

    /// Before a small file's first read from the server, fetch its bytes together with those
    /// of its small siblings from its name on (one round trip for what a walk reads next), into
    /// the memory cache. Best effort: whatever does not come is read on its own.
    fn fetch_siblings(&self, ino: u64, id: &str, size: u64) {
        if size == 0 || size > prefetch::INLINE_MAX || self.cache.contains(&BlockKey::grid(id, 0)) {
            return;
        }
        let (dir, dir_path, name) = {
            let tree = self.tree.lock();
            let Some(n) = tree.get(ino) else { return };
            let (Some(dir_path), Some(name)) = (tree.path(n.parent), n.name.to_str()) else {
                return;
            };
            (n.parent, dir_path, name.to_owned())
        };
        // One batch per directory at a time; concurrent readers read on their own.
        if !self.batching.lock().insert(dir) {
            return;
        }
        let opts = ListDirs {
            max_entries: 0,
            inline_max: prefetch::INLINE_MAX,
            inline_budget: prefetch::INLINE_BUDGET,
            inline_from: name,
        };
        let got = self.backend.list_dirs(&dir_path, &opts);
        self.batching.lock().remove(&dir);
        match got {
            Ok(dirs) => {
                for (id, data) in dirs.into_iter().flat_map(|d| d.contents) {
                    if data.len() as u64 <= prefetch::INLINE_MAX {
                        self.reader.accept_inline(&dir_path, &id, data);
                    }
                }
            }
            Err(e) => tracing::debug!(dir = %dir_path, error = %e, "no batched read"),
        }
    }

    /// Read, and when the server's content moved on since the listing, list again and retry once.
    fn read_fresh(&self, ino: u64, offset: u64, size: u32) -> R<Vec<u8>> {
        match self.do_read(ino, offset, size) {
            Err(e) if e == Errno::from_i32(libc::ESTALE) => {
                let parent = {
                    let mut tree = self.tree.lock();
                    let parent = tree.get(ino).map(|n| n.parent).ok_or(Errno::ENOENT)?;
                    tree.mark_stale(parent);
                    parent
                };
                self.ensure_listed(parent)?;
                self.invalidator.send(Inval::Inode { ino });
                self.do_read(ino, offset, size)
            }
            other => other,
        }
    }

    /// `fsync` of a file: its newest change (its upload or an entry change) is acknowledged, and
    /// with it every change queued before (the queue is acknowledged in order; changes queued
    /// later to other files are not waited for); EIO if the server stayed unreachable, or
    /// refused a change to the file that no later upload of it replaced.
    fn do_fsync(&self, ino: u64) -> R<()> {
        let seq = {
            let mut tree = self.tree.lock();
            self.queue_upload(&mut tree, ino);
            tree.get(ino).map_or_else(|| self.writeback.last_seq(), |n| n.local_seq)
        };
        self.writeback.wait_file(ino, seq).map_err(|e| {
            tracing::warn!(ino, error = %e, "fsync failed");
            Errno::EIO
        })
    }

    /// `fsync` of a directory. On the mount's root, a barrier for the whole mount: every write
    /// accepted so far is sent and acknowledged; EIO if the server refused anything since the
    /// previous `fsync` of the root. On another directory: everything queued so far; EIO if a
    /// change to the directory itself was refused.
    fn do_fsyncdir(&self, ino: u64) -> R<()> {
        let done = if ino == ROOT {
            self.queue_all_dirty();
            self.writeback.sync_all()
        } else {
            self.send_marked();
            self.writeback.wait_file(ino, self.writeback.last_seq())
        };
        done.map_err(|e| {
            tracing::warn!(ino, error = %e, "fsync of a directory failed");
            Errno::EIO
        })
    }

    fn do_write(&self, ino: u64, fh: u64, offset: u64, data: &[u8]) -> R<u32> {
        self.writable()?;
        let (mut tree, local) = self.materialize(ino, false)?;
        self.take_name_back(&mut tree, ino);
        // With the kernel's writeback cache the kernel places appends itself (and may send any
        // handle's pages through an O_APPEND handle): the offset it gives is the one to use.
        let append = fh & APPEND_BIT != 0 && !self.kernel_writeback.load(Ordering::SeqCst);
        let n = tree.get_mut(ino).ok_or(Errno::ENOENT)?;
        let offset = if append { n.size } else { offset };
        local.write_at(data, offset).map_err(Errno::from)?;
        n.size = n.size.max(offset + data.len() as u64);
        n.dirty = true;
        // With the writeback cache the kernel stamps writes itself and sends the times when they
        // changed (a write in the tick of the file's creation leaves them as they are).
        if !self.kernel_writeback.load(Ordering::SeqCst) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
        self.warm.written(n.parent, ino);
        Ok(data.len() as u32)
    }
}

#[cfg(test)]
mod kernel_requests;

/// The directory at session path `below` under `dir` (at `dir_path`), if it is loaded as a
/// directory that was never listed (nothing can have changed in it through the mount).
fn below_dir(tree: &Tree, dir: u64, dir_path: &str, below: &str) -> Option<u64> {
    let rel = if dir_path.is_empty() {
        below
    } else {
        below.strip_prefix(dir_path)?.strip_prefix('/')?
    };
    let mut ino = dir;
    for part in rel.split('/') {
        ino = tree.lookup(ino, OsStr::new(part))?;
    }
    let n = tree.get(ino)?;
    matches!(n.data, Data::Dir { children: None, .. }).then_some(ino)
}

/// The node named by a resolved `(directory, name)`, if any.
fn node_at<'a>(tree: &'a Tree, at: &Option<(u64, OsString)>) -> Option<&'a Node> {
    at.as_ref()
        .and_then(|(dir, name)| tree.lookup(*dir, name))
        .and_then(|ino| tree.get(ino))
}

/// Once the server has a file's bytes and nothing changed them since, its node refers to the
/// content by id like any file listed from the server, and the local copy (memory, or an open
/// file descriptor each: an untar of 80,000 files would run out) is dropped. Files up to this
/// size are first copied into the memory cache, so reading or writing them again does not go
/// to the server.
const SETTLE_CACHED_MAX: u64 = 4 << 20;

/// Larger uploaded files keep their local copy, so that a file written again and again (a
/// database, a log) is not downloaded again after every upload; this many at most, the file
/// uploaded longest ago settling first.
const RESIDENT_MAX: usize = 32;

/// Large uploaded files that kept their local copy, oldest first.
type Resident = Mutex<VecDeque<(u64, Weak<LocalFile>)>>;

fn settle_upload(tree: &Mutex<Tree>, cache: &ContentCache, resident: &Resident, u: Uploaded<'_>) {
    let size = {
        let mut t = tree.lock();
        let Some(n) = t.get_mut(u.ino) else { return };
        if n.upload_seq != u.seq {
            return;
        }
        n.uploaded = Some(Arc::from(u.content_id));
        n.size
    };
    if size <= SETTLE_CACHED_MAX {
        settle(tree, cache, u.ino, u.source);
        return;
    }
    let oldest = {
        let mut r = resident.lock();
        r.retain(|(ino, f)| *ino != u.ino && f.strong_count() > 0);
        r.push_back((u.ino, Arc::downgrade(u.source)));
        if r.len() > RESIDENT_MAX { r.pop_front() } else { None }
    };
    if let Some((ino, source)) = oldest
        && let Some(source) = source.upgrade()
    {
        settle(tree, cache, ino, &source);
    }
}

/// Turn `ino`'s local copy `source` into a reference to its uploaded content, if it is still
/// exactly what was uploaded. A process that still has the file open reads it from the cache
/// or the server from then on, and a further write makes a local copy again.
fn settle(tree: &Mutex<Tree>, cache: &ContentCache, ino: u64, source: &Arc<LocalFile>) {
    let unchanged = |n: &Node| {
        !n.dirty && n.uploaded.is_some() && matches!(&n.data, Data::File(FileData::Local(f)) if Arc::ptr_eq(f, source))
    };
    let (size, id) = match tree.lock().get(ino) {
        Some(n) if unchanged(n) => (n.size, n.uploaded.clone()),
        _ => return,
    };
    let Some(id) = id else { return };
    if size <= SETTLE_CACHED_MAX {
        let mut buf = vec![0; size as usize];
        if source.read_exact_at(&mut buf, 0).is_err() {
            return;
        }
        // Cached only if they are the content the server named; if not, the node keeps its
        // local bytes (what was written) rather than refer to the server's other content.
        let path = tree.lock().path(ino).unwrap_or_default();
        if !content_reader::remember_uploaded(cache, &path, &id, buf) {
            return;
        }
    }
    let mut tree = tree.lock();
    if let Some(n) = tree.get_mut(ino)
        && unchanged(n)
        && n.size == size
        && n.uploaded.as_ref() == Some(&id)
    {
        n.data = Data::File(FileData::Remote(Some(id)));
    }
}

/// The attributes of a negative entry: inode 0 tells the kernel the name does not exist.
/// The answer to a lookup of a missing name that the kernel keeps as a negative entry (inode 0).
pub fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// File handles carry the open flags the mount needs: whether writes append.
const APPEND_BIT: u64 = 1 << 63;

fn handle_for(flags: i32) -> FileHandle {
    FileHandle(if flags & libc::O_APPEND != 0 { APPEND_BIT } else { 0 })
}

/// No handler replies while it holds the tree: a reply wakes the asking process, which may take
/// this CPU at once, and every other mount thread would then queue behind a descheduled holder.
impl Filesystem for AetherFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS | InitFlags::FUSE_CACHE_SYMLINKS);
        // Listings carry every entry's attributes (the kernel then needs no lookup per entry).
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        let _ = config.set_max_readahead(1 << 20);
        // Writes land in the kernel's page cache and reach the mount in large pieces, at the
        // latest on close (flush) and fsync, which is all the mount promises anyway.
        if !self.config.read_only && config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE).is_ok() {
            self.kernel_writeback.store(true, Ordering::SeqCst);
        }
        // The mount keeps no state per open file: reads, writes, flush and fsync name the inode.
        // Only appends need the open flags, and the kernel places those itself when it caches
        // writes; a read-only mount has none.
        let no_open = config.capabilities().contains(InitFlags::FUSE_NO_OPEN_SUPPORT)
            && (self.config.read_only || self.kernel_writeback.load(Ordering::SeqCst));
        self.no_open.store(no_open, Ordering::SeqCst);
        let no_flush = no_open && !self.config.read_only;
        self.no_flush.store(no_flush, Ordering::SeqCst);
        // Without it, the kernel reads a file's attributes before every change of its owner (an
        // untar as root changes every file's), to learn which set-ID bits to clear.
        if config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2).is_ok() {
            self.kills_privs.store(true, Ordering::SeqCst);
        }
        if let Some(root) = self.config.warm_at.clone().filter(|_| !self.config.read_only) {
            let (tree, watching) = (Arc::downgrade(&self.tree), self.watching.clone());
            self.warm.start(
                root,
                move || watching.load(Ordering::SeqCst),
                move |ino| {
                    let tree = tree.upgrade()?;
                    let tree = tree.lock();
                    Some(Located {
                        path: tree.path(ino)?,
                        parent: tree.get(ino).filter(|_| ino != ROOT).map(|n| n.parent),
                        entries: tree.children(ino).map_or(0, |c| c.len()),
                    })
                },
            );
        }
        if no_flush {
            let (tree, writeback) = (Arc::downgrade(&self.tree), Arc::downgrade(&self.writeback));
            self.idle.start(move |due| {
                let (Some(tree), Some(writeback)) = (tree.upgrade(), writeback.upgrade()) else {
                    return false;
                };
                if due.is_empty() {
                    return true;
                }
                let mut tree = tree.lock();
                for ino in due {
                    queue_upload(&writeback, &mut tree, ino);
                }
                true
            });
        }
        Ok(())
    }

    fn destroy(&mut self) {
        // The kernel wrote every dirty page before this; files it wrote back without a close
        // may still be marked only, and are dirty. What cannot be sent is reported by the
        // mount process (`command.rs`) from the writeback's record.
        if let Err(e) = self.finish() {
            tracing::error!(error = %e, "unmounted with changes the server does not hold");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.asked();
        self.count("lookup");
        match self.child(parent.0, name) {
            Ok(Some(ino)) => self.entry_reply(ino, reply),
            // A negative entry (inode 0) the kernel keeps for the TTL: tools probe for missing
            // names all the time (git for objects and config files). A name created through the
            // mount replaces it in the kernel; one created elsewhere invalidates it (events,
            // listings).
            Ok(None) => reply.entry(&self.ttl(), &negative_attr(), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut tree = self.tree.lock();
        if let Some(n) = tree.get_mut(ino.0) {
            n.lookups = n.lookups.saturating_sub(nlookup);
        }
        tree.maybe_drop(ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.asked();
        self.count("getattr");
        let attr = self.tree.lock().get(ino.0).map(|n| self.attr(ino.0, n));
        match attr {
            Some(attr) => reply.attr(&self.ttl(), &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.latency.busy();
        self.count("setattr");
        // `chown` with no owner given changes only the ctime, and still clears the bits (no other
        // call changes the ctime alone: the kernel's own time updates carry the mtime too).
        let ctime_only = ctime.is_some() && mode.is_none() && size.is_none() && atime.is_none() && mtime.is_none();
        let chown = uid.is_some() || gid.is_some() || ctime_only;
        let mode = mode.or_else(|| self.privs_to_kill(req, ino.0, chown, size.is_some()));
        let times = SetTimes { mtime, atime, ctime };
        // The times a close writes back (mtime and ctime through the file, nothing else).
        let closing = fh.is_some()
            && mtime.is_some()
            && ctime.is_some()
            && atime.is_none()
            && mode.is_none()
            && size.is_none()
            && !chown;
        match self.do_setattr(ino.0, mode, size, times, fh.is_some()) {
            Ok(attr) => {
                self.written_by(req, ino.0, true);
                // A close does not wait for the server, but it does not hide what is known:
                // while an upload of the file the server refused stands, the close fails too.
                if closing && self.writeback.standing(ino.0).is_some() {
                    reply.error(Errno::EIO)
                } else {
                    reply.attr(&self.ttl(), &attr)
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.latency.busy();
        let target = self.tree.lock().get(ino.0).map(|n| match &n.data {
            Data::Symlink(t) => Some(t.clone()),
            _ => None,
        });
        match target {
            Some(Some(t)) => reply.data(t.as_bytes()),
            Some(None) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        self.latency.busy();
        self.count("mknod");
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let perm = mode & !umask & 0o7777;
        let file = Arc::new(self.staging.new_file());
        match self.create_node(parent.0, name, EntryKind::File, perm, Data::File(FileData::Local(file))) {
            Ok((ino, _)) => {
                let mut tree = self.tree.lock();
                if let Some(n) = tree.get_mut(ino) {
                    n.dirty = true;
                }
                if self.no_flush.load(Ordering::SeqCst) {
                    // The kernel's `create` without `open` (see `create`): the bytes follow as
                    // page writes; a file left empty is sent once it settled.
                    self.idle.touch(ino, idle_upload::SETTLE);
                } else {
                    self.queue_upload(&mut tree, ino);
                }
                drop(tree);
                self.entry_reply(ino, reply);
            }
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.latency.busy();
        let data = Data::Dir {
            children: Some(Default::default()),
            loaded_at: Some(std::time::Instant::now()),
        };
        match self.create_node(parent.0, name, EntryKind::Dir, mode & !umask & 0o7777, data) {
            Ok((ino, path)) => {
                let mut tree = self.tree.lock();
                self.queue_op(&mut tree, RemoteOp::Mkdir { path }, ino, &[parent.0, ino]);
                drop(tree);
                self.entry_reply(ino, reply);
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.latency.busy();
        match self.remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.latency.busy();
        match self.remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        self.latency.busy();
        let Some(target_str) = target.to_str().map(str::to_owned) else {
            return reply.error(Errno::EINVAL);
        };
        let data = Data::Symlink(OsString::from(&target_str));
        match self.create_node(parent.0, link_name, EntryKind::Symlink, 0o777, data) {
            Ok((ino, path)) => {
                let mut tree = self.tree.lock();
                if let Some(n) = tree.get_mut(ino) {
                    n.size = target_str.len() as u64;
                }
                self.queue_op(
                    &mut tree,
                    RemoteOp::Symlink {
                        path,
                        target: target_str,
                    },
                    ino,
                    &[parent.0, ino],
                );
                drop(tree);
                self.entry_reply(ino, reply);
            }
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.latency.busy();
        match self.do_rename(parent.0, name, newparent.0, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        self.latency.busy();
        // Git trees cannot hold hard links.
        reply.error(Errno::EPERM);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.latency.busy();
        self.count("open");
        if self.no_open.load(Ordering::SeqCst) {
            // "Not implemented": the kernel opens this file and every later one itself, keeping
            // cached pages (FOPEN_KEEP_CACHE), and sends no release. A read-only mount is
            // mounted read-only, so the kernel refuses opens for writing; O_TRUNC comes as a
            // setattr.
            return reply.error(Errno::ENOSYS);
        }
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        if write && self.config.read_only {
            return reply.error(Errno::EROFS);
        }
        if write
            && flags.0 & libc::O_TRUNC != 0
            && let Err(e) = self.do_setattr(
                ino.0,
                self.privs_to_kill(req, ino.0, false, true),
                Some(0),
                SetTimes::default(),
                true,
            )
        {
            return reply.error(e);
        }
        let is_dir = self.tree.lock().get(ino.0).map(Node::is_dir);
        match is_dir {
            Some(true) => reply.error(Errno::EISDIR),
            Some(false) => reply.opened(handle_for(flags.0), FopenFlags::FOPEN_KEEP_CACHE),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.latency.busy();
        self.count("create");
        if self.no_open.load(Ordering::SeqCst) {
            // "Not implemented": the kernel then creates with `mknod` and opens the file itself,
            // as every other open, so it sends no `release` at the close. A created file costs
            // one request fewer, and the mount keeps no state per open file anyway.
            return reply.error(Errno::ENOSYS);
        }
        let file = Arc::new(self.staging.new_file());
        let perm = mode & !umask & 0o7777;
        match self.create_node(parent.0, name, EntryKind::File, perm, Data::File(FileData::Local(file))) {
            Ok((ino, _)) => {
                let attr = self.tree.lock().get_mut(ino).map(|n| {
                    n.dirty = true;
                    n.lookups += 1;
                    if self.no_flush.load(Ordering::SeqCst) {
                        // A file created and closed unwritten sends nothing at its close.
                        self.idle.touch(ino, idle_upload::SETTLE);
                    }
                    self.attr(ino, n)
                });
                match attr {
                    Some(attr) => reply.created(
                        &self.ttl(),
                        &attr,
                        Generation(0),
                        handle_for(flags),
                        FopenFlags::empty(),
                    ),
                    None => reply.error(Errno::ENOENT),
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.latency.busy();
        match self.read_fresh(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.latency.busy();
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self.do_write(ino.0, fh.0, offset, data) {
            Ok(n) => {
                let killed = kill.then(|| self.tree.lock().get(ino.0).and_then(|n| killed_privs(n.perm)));
                if let Some(Some(mode)) = killed {
                    let _ = self.do_setattr(ino.0, Some(mode), None, SetTimes::default(), true);
                }
                self.written_by(req, ino.0, false);
                reply.written(n)
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.latency.busy();
        self.count("flush");
        if self.config.read_only || self.no_flush.load(Ordering::SeqCst) {
            // "Not implemented" stops the kernel from asking at every close. Nothing is ever
            // sent from a read-only mount; a writable one sends files at the setattr that
            // carries a close's times (see `idle_upload`).
            return reply.error(Errno::ENOSYS);
        }
        self.queue_upload(&mut self.tree.lock(), ino.0);
        // A close does not wait for the server, but it does not hide what is known: an upload
        // of this file the server refused makes the close fail too.
        match self.writeback.standing(ino.0) {
            Some(r) => {
                tracing::warn!(refused = %r, "close of a file the server refused");
                reply.error(Errno::EIO)
            }
            None => reply.ok(),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.latency.busy();
        self.count("release");
        // Only sent while the mount answers `open` (see `no_open`).
        let mut tree = self.tree.lock();
        self.queue_upload(&mut tree, ino.0);
        tree.maybe_drop(ino.0);
        drop(tree);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.latency.busy();
        match self.do_fsync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.latency.busy();
        match self.do_fsyncdir(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // "Not implemented": the kernel then stops sending opendir and releasedir for the whole
        // connection (two round trips less per directory walked) and keeps every directory's
        // listing across opens (FOPEN_CACHE_DIR). Changes through the mount update that listing
        // in the kernel; changes elsewhere invalidate the directory's inode (watch events,
        // refreshed listings), which drops it. Errors of a listing come with readdir instead.
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.asked();
        if offset == 0
            && let Err(e) = self.ensure_listed(ino.0)
        {
            return reply.error(e);
        }
        let tree = self.tree.lock();
        let Some(node) = tree.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let mut entries: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (node.parent, FileType::Directory, "..".into()),
        ];
        if let Some(children) = tree.children(ino.0) {
            for (name, child) in children {
                if let Some(c) = tree.get(*child) {
                    entries.push((*child, file_type(c.kind), name.clone()));
                }
            }
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        drop(tree);
        reply.ok();
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        self.asked();
        if offset == 0
            && let Err(e) = self.ensure_listed(ino.0)
        {
            return reply.error(e);
        }
        let ttl = self.ttl();
        let mut tree = self.tree.lock();
        let Some(node) = tree.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let mut entries: Vec<(u64, OsString)> = vec![(ino.0, ".".into()), (node.parent, "..".into())];
        if let Some(children) = tree.children(ino.0) {
            entries.extend(children.iter().map(|(name, child)| (*child, name.clone())));
        }
        for (i, (child, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            let Some(n) = tree.get_mut(child) else { continue };
            let attr = self.attr(child, n);
            if reply.add(INodeNo(child), (i + 1) as u64, &name, &ttl, &attr, Generation(0)) {
                break;
            }
            // Every entry but "." and ".." counts as a lookup the kernel will forget.
            if i >= 2 {
                n.lookups += 1;
            }
        }
        drop(tree);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.latency.busy();
        let blocks = 1u64 << 32;
        reply.statfs(blocks, blocks, blocks, 1 << 32, 1 << 32, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        // "Not implemented": the kernel then answers every getxattr itself with EOPNOTSUPP
        // (extended attributes are not supported) instead of asking the mount. It asks for
        // `security.capability` before every write to a file, so ENODATA here cost a round trip
        // per file written (one request in ten of a git clone or checkout).
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::from_i32(libc::ENOTSUP));
    }

    /// Asked only on mounts without `default_permissions`, which only root makes (see
    /// `command.rs`): root may do anything but run a file that has no execute bit at all.
    fn access(&self, _req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.latency.busy();
        let answer = match self.tree.lock().get(ino.0) {
            None => Err(Errno::ENOENT),
            Some(n) if mask.contains(fuser::AccessFlags::X_OK) && !n.is_dir() && n.perm & 0o111 == 0 => {
                Err(Errno::EACCES)
            }
            Some(_) => Ok(()),
        };
        match answer {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::EOPNOTSUPP));
    }
}
