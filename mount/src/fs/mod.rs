//! The mount's file system: answers lookups, reads and changes from the local picture of the
//! session (`tree`), fetches what was never loaded, and queues changes for the server in order.
//!
//! Its calls take plain arguments and return `Result<T, FsError>`; it never sees a kernel
//! request or reply (the FUSE adapter, `fuse.rs`, translates them), so tests can call it as
//! the kernel would, without a mount.

mod data;
mod dir_cursor;
mod error;
mod fetch_ahead;
#[cfg(test)]
mod kernel_requests;
mod ops;
mod peer_changes;
mod remote_changes;
mod rename;
mod settle;

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{FileAttr, FileType, INodeNo};
use parking_lot::Mutex;

pub use data::APPEND_BIT;
pub use error::FsError;
pub use ops::{Caller, DirReplier, Negotiated, SetAttr};
pub use peer_changes::Touched;

use crate::backend::{Backend, BackendError, EntryKind, RemoteOp};
use crate::content_cache::ContentCache;
use crate::content_reader::ContentReader;
use crate::cpu_latency::CpuLatency;
use crate::events::{MountId, RemoteEvent};
use crate::handoff::Handoff;
use crate::idle_upload::{self, IdleUploads};
use crate::invalidate::{Inval, Invalidator};
use crate::kernel_warm::KernelWarm;
use crate::prefetch::{self, ListDirs};
use crate::recent_events::{self, Missed, RecentEvents};
use crate::tree::{Data, FileData, MergeOutcome, Node, ROOT, Tree};
use crate::writeback::{Job, Staging, Uploaded, WaitError, Writeback};

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
    /// The name this mount sends with its requests: events carrying it are its own changes.
    pub mount_id: MountId,
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
    handoff: Arc<Handoff>,
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
    /// Small files' batches on their way, and the window fetched ahead of a walking reader
    /// (`fetch_ahead`).
    batches: Arc<fetch_ahead::Batches>,
    /// Counts invalidations another mount asked for (changed under the tree's lock): they carry
    /// no version, so a listing asked for before one and merged after it may predate the
    /// change, and is not trusted as fresh.
    invalidations: Arc<AtomicU64>,
    /// Changes made elsewhere applied lately (under the tree's lock), for listings that were on
    /// their way meanwhile (see `recent_events`).
    recent: Arc<Mutex<RecentEvents>>,
    /// Directories whose first listing is on its way (see [`FirstListing`]).
    first_listings: Arc<FirstListings>,
    /// Where reads of directories left off (see `dir_cursor`).
    dir_cursors: Arc<dir_cursor::DirCursors>,
}

/// Directories whose first listing (which brings the listings below them) is being fetched:
/// another thread wanting one of them waits for that answer instead of asking the server for
/// the same tree again (git's threaded preload meets the root and the top directories from up
/// to 20 threads at once on a cold mount).
#[derive(Default)]
struct FirstListings {
    fetching: Mutex<std::collections::HashSet<u64>>,
    done: parking_lot::Condvar,
}

/// This thread fetches `dir`'s first listing; dropped when it is merged (or failed).
struct FirstListing<'a> {
    all: &'a FirstListings,
    dir: u64,
}

impl FirstListings {
    /// `Some` if this thread is to fetch `dir`'s first listing; `None` after waiting for
    /// another thread that was already fetching it.
    fn begin(&self, dir: u64) -> Option<FirstListing<'_>> {
        let mut fetching = self.fetching.lock();
        if fetching.insert(dir) {
            return Some(FirstListing { all: self, dir });
        }
        while fetching.contains(&dir) {
            self.done.wait(&mut fetching);
        }
        None
    }
}

impl Drop for FirstListing<'_> {
    fn drop(&mut self) {
        self.all.fetching.lock().remove(&self.dir);
        self.all.done.notify_all();
    }
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
    // The upload carries the time the mount shows for the file, so the next mount (which
    // shows the server's) shows the same one: a checkout written here is not re-hashed there.
    let seq = writeback.enqueue(Job::Put {
        ino,
        path: path.clone(),
        mode: n.perm,
        mtime_ns: time_ns(n.mtime),
        source: source.clone(),
    });
    n.dirty = false;
    n.local_seq = seq;
    n.upload_seq = seq;
    n.uploaded = None;
    // An owner set before the server ever had the file follows its first upload.
    if n.owner_unsent {
        n.owner_unsent = false;
        let op = RemoteOp::Chown {
            path: path.clone(),
            uid: n.uid,
            gid: n.gid,
        };
        n.local_seq = writeback.enqueue(Job::Op { op, ino });
    }
    Some(seq)
}

/// Nanoseconds since the Unix epoch, as the session keeps an mtime (`None` before the epoch or
/// past what an `i64` holds, which the session cannot keep).
pub(crate) fn time_ns(t: SystemTime) -> Option<i64> {
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_nanos()).ok()
}

/// A device number as the kernel's FUSE protocol carries it (`new_encode_dev`) from the one
/// `stat` shows and the session keeps (glibc's `makedev`), and back.
pub(crate) fn kernel_dev(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

pub(crate) fn session_dev(rdev: u32) -> u64 {
    let major = (rdev & 0xfff00) >> 8;
    let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    libc::makedev(major, minor)
}

/// `perm` without set-user-ID, and without set-group-ID when the group may execute (without
/// group execute, set-group-ID marks mandatory locking and stays): `None` if that changes nothing.
pub fn killed_privs(perm: u32) -> Option<u32> {
    let kill = libc::S_ISUID | if perm & libc::S_IXGRP != 0 { libc::S_ISGID } else { 0 };
    (perm & kill != 0).then_some(perm & !kill)
}

pub(crate) fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::Socket => FileType::Socket,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
    }
}

pub(crate) type R<T> = Result<T, FsError>;

impl AetherFs {
    pub fn new(
        backend: Arc<dyn Backend>,
        cache: Arc<ContentCache>,
        writeback: Arc<Writeback>,
        config: MountConfig,
    ) -> std::io::Result<AetherFs> {
        std::fs::create_dir_all(&config.staging_dir)?;
        let staging = Staging::new(config.staging_dir.clone());
        let mut tree = Tree::new(0o755);
        // A dropped node's number may go to a new file: its refusals must not follow it (the
        // writeback holds the tree's hook, so the hook holds it weakly).
        let gone = Arc::downgrade(&writeback);
        tree.on_drop(Box::new(move |ino| {
            if let Some(wb) = gone.upgrade() {
                wb.inode_gone(ino);
            }
        }));
        let tree = Arc::new(Mutex::new(tree));
        let (hook_tree, hook_cache) = (tree.clone(), cache.clone());
        let resident = Mutex::new(VecDeque::new());
        writeback.on_upload(Box::new(move |u: Uploaded<'_>| {
            settle::settle_upload(&hook_tree, &hook_cache, &resident, u)
        }));
        Ok(AetherFs {
            reader: Arc::new(ContentReader::new(backend.clone(), cache.clone())),
            backend,
            cache,
            writeback,
            tree,
            config: Arc::new(config),
            staging,
            invalidator: Invalidator::start(),
            watching: Arc::new(AtomicBool::new(false)),
            handoff: Arc::default(),
            kernel_writeback: Arc::new(AtomicBool::new(false)),
            no_open: Arc::new(AtomicBool::new(false)),
            no_flush: Arc::new(AtomicBool::new(false)),
            kills_privs: Arc::new(AtomicBool::new(false)),
            idle: Arc::default(),
            warm: Arc::default(),
            latency: CpuLatency::off(),
            batches: Arc::default(),
            invalidations: Arc::default(),
            recent: Arc::new(Mutex::new(RecentEvents::new(recent_events::KEPT))),
            first_listings: Arc::default(),
            dir_cursors: Arc::default(),
        })
    }

    /// The name this mount sends with its requests.
    pub fn mount_id(&self) -> &MountId {
        &self.config.mount_id
    }

    /// The mount's side of the exact handoff (see `handoff`).
    pub fn handoff(&self) -> &Arc<Handoff> {
        &self.handoff
    }

    /// Whether the mount holds changes the server does not have yet: queued and not
    /// acknowledged (or refused), marked for a later upload, or written and not queued.
    pub fn has_unsent(&self) -> bool {
        if self.writeback.acked() < self.writeback.last_seq() || self.idle.any_marked() {
            return true;
        }
        self.tree.lock().nodes.values().any(|n| n.dirty)
    }

    /// A recall: send every change accepted so far and wait until the server holds each (or
    /// refused it). The number refused meanwhile, and why not everything could be sent.
    pub fn hand_over(&self) -> (u32, Option<String>) {
        let before = self.writeback.refused().len();
        self.queue_all_dirty();
        let error = self
            .writeback
            .wait(self.writeback.last_seq())
            .err()
            .map(|e| e.to_string());
        let refused = self.writeback.refused().len().saturating_sub(before);
        (u32::try_from(refused).unwrap_or(u32::MAX), error)
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

    /// Make the kernel drop `name` in the root from its entry cache, and with it the inode once
    /// unused (FUSE keeps no unused inodes).
    #[cfg(test)]
    pub fn forget_in_kernel(&self, name: &OsStr) {
        self.invalidator.send(Inval::Entry {
            parent: ROOT,
            name: name.to_owned(),
        });
    }

    /// Number new nodes as `numbering` says (tests force collisions with a tiny span).
    #[cfg(test)]
    pub fn with_numbering(self, numbering: crate::ino::Numbering) -> AetherFs {
        self.tree.lock().set_numbering(numbering);
        self
    }

    /// Whether the kernel cache refresh has nothing marked and no pass running.
    #[cfg(test)]
    pub fn warm_idle(&self) -> bool {
        self.warm.idle()
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

    /// A request came from the kernel: keep idle CPUs awake while they come (see `cpu_latency`).
    pub fn busy(&self) {
        self.latency.busy();
    }

    /// Whether the mount refuses changes.
    pub fn read_only(&self) -> bool {
        self.config.read_only
    }

    /// How long the kernel may trust an entry or attributes the mount gives it.
    pub fn ttl(&self) -> Duration {
        if self.watching.load(Ordering::SeqCst) {
            self.config.watched_ttl
        } else {
            self.config.ttl
        }
    }

    /// Where kernel invalidations go; connect it to the mounted session's notifier.
    pub fn invalidator(&self) -> Invalidator {
        self.invalidator.clone()
    }

    /// The attributes of `ino` as the tree holds them, its link count included.
    pub(crate) fn attr_in(&self, tree: &Tree, ino: u64) -> Option<FileAttr> {
        let mut a = self.attr(ino, tree.get(ino)?);
        a.nlink = tree.nlink(ino);
        Some(a)
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
            uid: n.uid.unwrap_or(self.config.uid),
            gid: n.gid.unwrap_or(self.config.gid),
            rdev: kernel_dev(n.rdev),
            blksize: 4096,
            flags: 0,
        }
    }

    fn writable(&self) -> R<()> {
        if self.config.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Make sure `dir`'s entries are loaded and fresh enough.
    fn ensure_listed(&self, dir: u64) -> R<()> {
        let (path, first) = {
            let tree = self.tree.lock();
            let n = tree.get(dir).ok_or(FsError::NotFound)?;
            let first = matches!(n.data, Data::Dir { children: None, .. });
            match &n.data {
                Data::Dir {
                    children: Some(_),
                    loaded_at,
                    ..
                } => {
                    let fresh = loaded_at.is_some_and(|t| t.elapsed() < self.ttl());
                    if fresh || n.local_seq > self.writeback.acked() {
                        return Ok(());
                    }
                }
                Data::Dir { children: None, .. } => {}
                _ => return Err(FsError::NotADirectory),
            }
            match tree.path(dir) {
                Some(p) => (p, first),
                // An unlinked directory has no entries left on the server.
                None => return Ok(()),
            }
        };
        // One thread fetches a first listing; the others wait for it and look again.
        let _fetching = if first {
            match self.first_listings.begin(dir) {
                Some(f) => Some(f),
                None => return self.ensure_listed(dir),
            }
        } else {
            None
        };
        // What the server had acknowledged before it was asked: a change acknowledged while the
        // listing was on its way may be missing from it, so it counts as pending in the merge
        // (read after the answer, such a change was undone by it: a removed name came back).
        let acked = self.writeback.acked();
        let invalidations = self.invalidations.load(Ordering::SeqCst);
        let mark = self.recent.lock().mark();
        // A directory never listed brings the listings below it: whoever lists a directory for
        // the first time usually walks it (find, git status, ls -R, a build).
        let opts = ListDirs {
            max_entries: if first { prefetch::WALK_ENTRIES } else { 0 },
            ..ListDirs::default()
        };
        let listing = self.backend.list_dirs(&path, &opts);
        let mut tree = self.tree.lock();
        match listing {
            Ok(dirs) => {
                let version = dirs.first().and_then(|d| d.seq);
                let refused = |ino: u64| self.writeback.standing(ino).is_some();
                let mut dirs = dirs.into_iter();
                let mut merged = Vec::new();
                if let Some(own) = dirs.next() {
                    let outcome = tree.merge_listing(dir, &own.entries, acked, own.seq, &refused);
                    self.after_merge(dir, outcome);
                    merged.push((dir, own.path));
                }
                for below in dirs {
                    // Only directories nobody listed yet: the others are as fresh as they need be.
                    let Some(ino) = below_dir(&tree, dir, &path, &below.path) else {
                        continue;
                    };
                    let outcome = tree.merge_listing(ino, &below.entries, acked, below.seq, &refused);
                    self.after_merge(ino, outcome);
                    merged.push((ino, below.path));
                }
                // Another mount's change (which has no version) came while the listing was on
                // its way: the listing may predate it, so the next use lists again.
                let unversioned = self.invalidations.load(Ordering::SeqCst) != invalidations;
                // Changes made elsewhere that the listing may not show are applied again.
                let missed = self.recent.lock().missed_by(mark, version);
                match missed {
                    Missed::Events(events) if !unversioned => {
                        let paths: HashSet<&str> = merged.iter().map(|(_, p)| p.as_str()).collect();
                        for ev in events.iter().filter(|ev| touches_any(ev, &paths)) {
                            self.apply_event_to(&mut tree, ev);
                        }
                    }
                    _ => {
                        for (ino, _) in merged {
                            tree.mark_stale(ino);
                        }
                    }
                }
                Ok(())
            }
            Err(BackendError::NotFound(_)) if tree.children(dir).is_some() => Ok(()),
            Err(e) => {
                if tree.children(dir).is_some() && e.is_retryable() {
                    // Serve the entries we have while the server is away.
                    return Ok(());
                }
                Err(FsError::Server(e))
            }
        }
    }

    /// Tell the kernel what a merged listing of `dir` changed.
    fn after_merge(&self, dir: u64, outcome: MergeOutcome) {
        for &ino in &outcome.changed {
            self.invalidator.send(Inval::Inode { ino });
        }
        // The kernel may hold the old listing (kept across opens) and negative entries for
        // names that now exist; entries first (see `invalidate_entry`).
        let listing_changed = !outcome.gone.is_empty() || !outcome.added.is_empty() || !outcome.changed.is_empty();
        for name in outcome.gone.into_iter().chain(outcome.added) {
            self.invalidator.send(Inval::Entry { parent: dir, name });
        }
        if listing_changed {
            self.invalidator.send(Inval::Inode { ino: dir });
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> R<Option<u64>> {
        self.ensure_listed(parent)?;
        Ok(self.tree.lock().lookup(parent, name))
    }

    fn check_name(name: &OsStr) -> R<&str> {
        if name.len() > 255 {
            return Err(FsError::NameTooLong);
        }
        let s = name.to_str().ok_or(FsError::Invalid)?;
        if s.is_empty() || s == "." || s == ".." || s.contains('/') {
            return Err(FsError::Invalid);
        }
        Ok(s)
    }

    /// Queue the upload of `ino`'s local bytes if they changed since the last one.
    fn queue_upload(&self, tree: &mut Tree, ino: u64) -> Option<u64> {
        queue_upload(&self.writeback, tree, ino)
    }

    /// After a write or setattr through the kernel without `flush`: a process's own setattr on
    /// a written file is its close (or fsync, or a change it asked for) and sends the file; page
    /// writes and the kernel's own setattr only mark it (see `idle_upload`).
    fn written_by(&self, caller: Caller, ino: u64, setattr: bool) {
        if !self.no_flush.load(Ordering::SeqCst) {
            return;
        }
        let size = match self.tree.lock().get(ino) {
            Some(n) if n.dirty => n.size,
            _ => return,
        };
        if setattr && !idle_upload::kernel_thread(caller.pid) {
            self.queue_upload(&mut self.tree.lock(), ino);
        } else if !setattr && size <= settle::SETTLE_CACHED_MAX {
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
    fn privs_to_kill(&self, caller: Caller, ino: u64, chown: bool, truncate: bool) -> Option<u32> {
        if !self.kills_privs.load(Ordering::SeqCst) || !(chown || truncate && caller.uid != 0) {
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
            self.invalidator.send(Inval::Entry { parent: dir, name });
            self.invalidator.send(Inval::Inode { ino: dir });
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

    /// Create a new entry `name` in `parent` (which must not exist yet), owned by `caller`:
    /// its user, and its group unless `parent` is set-group-ID (then the directory's group, and
    /// a new directory is set-group-ID too).
    fn create_node(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        kind: EntryKind,
        perm: u32,
        data: Data,
    ) -> R<(u64, String)> {
        self.writable()?;
        Self::check_name(name)?;
        if self.child(parent, name)?.is_some() {
            return Err(FsError::Exists);
        }
        let mut tree = self.tree.lock();
        if tree.lookup(parent, name).is_some() {
            return Err(FsError::Exists);
        }
        let path = tree.child_path(parent, name).ok_or(FsError::NotFound)?;
        let (mut perm, mut gid) = (perm, caller.gid);
        if let Some(p) = tree.get(parent).filter(|p| p.perm & libc::S_ISGID != 0) {
            gid = p.gid.unwrap_or(self.config.gid);
            if kind == EntryKind::Dir {
                perm |= libc::S_ISGID;
            }
        }
        let ino = tree.insert(parent, name.to_owned(), kind, perm, data);
        if let Some(n) = tree.get_mut(ino) {
            n.uid = Some(caller.uid);
            n.gid = Some(gid);
        }
        self.touch_dir(&mut tree, parent);
        Ok((ino, path))
    }

    /// Send the owner of `ino`, created through the mount, to the server: at once, after the
    /// change that created it, or for a file after its first upload. An owner that is the
    /// mount's own (a mount serving only its user) is what the server shows for an entry whose
    /// owner was never set, and is not sent: a checkout costs no change per file more.
    fn send_new_owner(&self, tree: &mut Tree, ino: u64) {
        let Some(path) = tree.path(ino) else { return };
        let Some(n) = tree.get_mut(ino) else { return };
        if n.uid.is_none_or(|u| u == self.config.uid) && n.gid.is_none_or(|g| g == self.config.gid) {
            return;
        }
        if matches!(n.data, Data::File(FileData::Local(_))) && (n.dirty || n.upload_seq == 0) {
            n.owner_unsent = true;
            return;
        }
        let op = RemoteOp::Chown {
            path,
            uid: n.uid,
            gid: n.gid,
        };
        self.queue_op(tree, op, ino, &[ino]);
    }
}

/// The directory at session path `below` under `dir` (at `dir_path`), if it is loaded as a
/// directory that was never listed (nothing can have changed in it through the mount).
/// Whether `ev` may change what the listing of one of the directories `dirs` (session paths)
/// shows: the directory holding its path or its rename's destination, or one above them (a
/// change can create the directories between).
fn touches_any(ev: &RemoteEvent, dirs: &HashSet<&str>) -> bool {
    if ev.resets_everything() {
        return true;
    }
    let within = |path: &str| {
        let mut at = path;
        loop {
            at = at.rsplit_once('/').map_or("", |(parent, _)| parent);
            if dirs.contains(at) {
                return true;
            }
            if at.is_empty() {
                return false;
            }
        }
    };
    ev.path.as_deref().is_some_and(within) || ev.to.as_deref().is_some_and(within)
}

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
