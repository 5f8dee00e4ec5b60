//! The file system's calls, one per kernel request, with plain arguments: what the FUSE
//! adapter (`fuse.rs`) calls and replies with. No call replies to anything, and none returns
//! while holding the tree.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use fuser::{FileAttr, FileType, RenameFlags, TimeOrNow};

use super::{AetherFs, FsError, R, file_type, killed_privs, queue_upload};
use crate::backend::{EntryKind, RemoteOp};
use crate::idle_upload;
use crate::kernel_warm::Located;
use crate::tree::{Data, FileData, Node, ROOT};

/// Who sent a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What the kernel agreed to at the start of the session (see `fuse.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Negotiated {
    /// The kernel caches writes (`FUSE_WRITEBACK_CACHE`).
    pub writeback_cache: bool,
    /// The kernel can open files without asking (`FUSE_NO_OPEN_SUPPORT`).
    pub no_open_support: bool,
    /// The mount clears set-ID bits itself (`FUSE_HANDLE_KILLPRIV_V2`).
    pub kills_privs: bool,
}

/// The attributes a `setattr` changes, each if given.
#[derive(Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    pub ctime: Option<SystemTime>,
    /// The open file it came through (an `ftruncate`, a close's times), if any.
    pub fh: Option<u64>,
}

/// Where a listing with attributes goes (the kernel's reply buffer).
pub trait DirReplier {
    /// Add an entry; `true` when the buffer is full (the entry was not added).
    fn add(&mut self, ino: u64, offset: u64, name: &OsStr, ttl: &Duration, attr: &FileAttr) -> bool;
}

/// The times a `setattr` sets, each if given.
#[derive(Default)]
pub(super) struct SetTimes {
    pub(super) mtime: Option<TimeOrNow>,
    pub(super) atime: Option<TimeOrNow>,
    pub(super) ctime: Option<SystemTime>,
}

impl AetherFs {
    /// The session starts: record what the kernel agreed to, and start what depends on it (the
    /// kernel cache refresh, uploads of files written without a close).
    pub fn start(&self, kernel: Negotiated) {
        let read_only = self.config.read_only;
        let writeback_cache = kernel.writeback_cache && !read_only;
        self.kernel_writeback.store(writeback_cache, Ordering::SeqCst);
        // The mount keeps no state per open file: reads, writes, flush and fsync name the inode.
        // Only appends need the open flags, and the kernel places those itself when it caches
        // writes; a read-only mount has none.
        let no_open = kernel.no_open_support && (read_only || writeback_cache);
        self.no_open.store(no_open, Ordering::SeqCst);
        let no_flush = no_open && !read_only;
        self.no_flush.store(no_flush, Ordering::SeqCst);
        // Without it, the kernel reads a file's attributes before every change of its owner (an
        // untar as root changes every file's), to learn which set-ID bits to clear.
        self.kills_privs.store(kernel.kills_privs, Ordering::SeqCst);
        if let Some(root) = self.config.warm_at.clone().filter(|_| !read_only) {
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
    }

    /// The attributes of `ino` for an entry the kernel keeps: counts as one lookup it will
    /// forget.
    fn entry(&self, ino: u64) -> R<FileAttr> {
        let mut tree = self.tree.lock();
        tree.get_mut(ino).ok_or(FsError::NotFound)?.lookups += 1;
        self.attr_in(&tree, ino).ok_or(FsError::NotFound)
    }

    /// LOOKUP: the entry `name` in `parent`; `None` when there is none (a negative entry the
    /// kernel keeps for the TTL: tools probe for missing names all the time, git for objects
    /// and config files; a name created through the mount replaces it in the kernel, one
    /// created elsewhere invalidates it).
    pub fn lookup(&self, parent: u64, name: &OsStr) -> R<Option<FileAttr>> {
        // No entry can have a longer name: say so rather than "no such entry".
        if name.len() > 255 {
            return Err(FsError::NameTooLong);
        }
        match self.child(parent, name)? {
            Some(ino) => self.entry(ino).map(Some),
            None => Ok(None),
        }
    }

    /// FORGET: the kernel dropped `nlookup` references to `ino`.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        let mut tree = self.tree.lock();
        if let Some(n) = tree.get_mut(ino) {
            n.lookups = n.lookups.saturating_sub(nlookup);
        }
        tree.maybe_drop(ino);
    }

    pub fn getattr(&self, ino: u64) -> R<FileAttr> {
        let tree = self.tree.lock();
        self.attr_in(&tree, ino).ok_or(FsError::NotFound)
    }

    /// SETATTR: mode, owner, size and times (a change of owner clears set-ID bits as the kernel
    /// would, see `privs_to_kill`). Who may change what is the kernel's to check (see
    /// `serve.rs`: `default_permissions` wherever anyone but root can reach the mount).
    pub fn setattr(&self, caller: Caller, ino: u64, set: SetAttr) -> R<FileAttr> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime,
            fh,
        } = set;
        // `chown` with no owner given changes only the ctime, and still clears the bits (no other
        // call changes the ctime alone: the kernel's own time updates carry the mtime too).
        let ctime_only = ctime.is_some() && mode.is_none() && size.is_none() && atime.is_none() && mtime.is_none();
        let chown = uid.is_some() || gid.is_some() || ctime_only;
        let mode = mode.or_else(|| self.privs_to_kill(caller, ino, chown, size.is_some()));
        let times = SetTimes { mtime, atime, ctime };
        // The times a close writes back (mtime and ctime through the file, nothing else).
        let closing = fh.is_some()
            && mtime.is_some()
            && ctime.is_some()
            && atime.is_none()
            && mode.is_none()
            && size.is_none()
            && !chown;
        // A time a tool sets (utimens: `touch -d`, `tar -x`, `cp -p`), not the kernel's own
        // update at a close: a change of the session, sent to the server as a chmod is. A time
        // before the epoch is one the session cannot keep: refused before anything changes.
        let sets_mtime = mtime.is_some() && !closing;
        if sets_mtime {
            if let Some(TimeOrNow::SpecificTime(t)) = mtime
                && super::time_ns(t).is_none()
            {
                return Err(FsError::Invalid);
            }
            self.writable()?;
        }
        if uid.is_some() || gid.is_some() {
            self.chown(ino, uid, gid)?;
        }
        let before = closing.then(|| self.tree.lock().get(ino).map(|n| n.mtime)).flatten();
        let attr = self.do_setattr(ino, mode, size, times, fh.is_some())?;
        // The kernel's own times at a close are what this mount shows from now on: when the
        // file's bytes went up before them (an idle upload while it was still open), the server
        // gets the time too, or the next mount would show another.
        if sets_mtime || before.is_some_and(|t| t != attr.mtime) {
            self.send_mtime(ino);
        }
        self.written_by(caller, ino, true);
        // A close does not wait for the server, but it does not hide what is known: while an
        // upload of the file the server refused stands, the close fails too.
        if closing && let Some(r) = self.writeback.standing(ino) {
            return Err(FsError::Refused(r));
        }
        Ok(attr)
    }

    pub(super) fn do_setattr(
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
            local.set_len(size).map_err(FsError::from)?;
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
            let n = tree.get_mut(ino).ok_or(FsError::NotFound)?;
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
        let n = tree.get_mut(ino).ok_or(FsError::NotFound)?;
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
        self.attr_in(&tree, ino).ok_or(FsError::NotFound)
    }

    /// The mtime of `ino` was set through the mount: queued for the server at once, or, while
    /// the file holds writes not queued yet, carried by the upload that sends them (see
    /// `queue_upload`). Until the server acknowledges it, a listing leaves the local time as
    /// it is (the change is pending, as a chmod is).
    fn send_mtime(&self, ino: u64) {
        let mut tree = self.tree.lock();
        let path = tree.path(ino);
        let Some(n) = tree.get_mut(ino) else { return };
        if n.dirty {
            return;
        }
        let (Some(path), Some(mtime_ns)) = (path, super::time_ns(n.mtime)) else {
            return;
        };
        self.queue_op(&mut tree, RemoteOp::SetTimes { path, mtime_ns }, ino, &[ino]);
    }

    /// The owner and/or group of `ino` change: at once here, and queued for the server (after
    /// the file's first upload when the server has not seen it yet).
    fn chown(&self, ino: u64, uid: Option<u32>, gid: Option<u32>) -> R<()> {
        self.writable()?;
        let mut tree = self.tree.lock();
        let path = tree.path(ino);
        let n = tree.get_mut(ino).ok_or(FsError::NotFound)?;
        if uid.is_some() {
            n.uid = uid;
        }
        if gid.is_some() {
            n.gid = gid;
        }
        n.ctime = SystemTime::now();
        let Some(path) = path else { return Ok(()) };
        if n.owner_unsent || n.dirty && n.upload_seq == 0 {
            n.owner_unsent = true;
            return Ok(());
        }
        self.queue_op(&mut tree, RemoteOp::Chown { path, uid, gid }, ino, &[ino]);
        Ok(())
    }

    pub fn readlink(&self, ino: u64) -> R<OsString> {
        match self.tree.lock().get(ino).map(|n| &n.data) {
            Some(Data::Symlink(t)) => Ok(t.clone()),
            Some(_) => Err(FsError::Invalid),
            None => Err(FsError::NotFound),
        }
    }

    /// MKNOD: a regular file (the kernel's `create` when `create` answers "not implemented"),
    /// a FIFO, a socket or a device node (`rdev` as the kernel encodes it; the kernel lets
    /// only callers with `CAP_MKNOD` make devices).
    pub fn mknod(&self, caller: Caller, parent: u64, name: &OsStr, mode: u32, umask: u32, rdev: u32) -> R<FileAttr> {
        let kind = EntryKind::of_mode(mode).ok_or(FsError::NotPermitted)?;
        let perm = mode & !umask & 0o7777;
        if kind.is_special() {
            return self.mknod_special(caller, parent, name, kind, perm, rdev);
        }
        let file = Arc::new(self.staging.new_file());
        let (ino, _) = self.create_node(
            caller,
            parent,
            name,
            EntryKind::File,
            perm,
            Data::File(FileData::Local(file)),
        )?;
        let mut tree = self.tree.lock();
        if let Some(n) = tree.get_mut(ino) {
            n.dirty = true;
        }
        self.send_new_owner(&mut tree, ino);
        if self.no_flush.load(Ordering::SeqCst) {
            // The kernel's `create` without `open` (see `create`): the bytes follow as page
            // writes; a file left empty is sent once it settled.
            self.idle.touch(ino, idle_upload::SETTLE);
        } else {
            self.queue_upload(&mut tree, ino);
        }
        drop(tree);
        self.entry(ino)
    }

    fn mknod_special(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        kind: EntryKind,
        perm: u32,
        rdev: u32,
    ) -> R<FileAttr> {
        let (ino, path) = self.create_node(caller, parent, name, kind, perm, Data::Special)?;
        let mut tree = self.tree.lock();
        let rdev = match kind {
            EntryKind::CharDevice | EntryKind::BlockDevice => super::session_dev(rdev),
            _ => 0,
        };
        let perm = tree.get(ino).map_or(perm, |n| n.perm);
        if let Some(n) = tree.get_mut(ino) {
            n.rdev = rdev;
        }
        let op = RemoteOp::Mknod {
            path,
            kind,
            mode: perm,
            rdev,
        };
        self.queue_op(&mut tree, op, ino, &[parent, ino]);
        self.send_new_owner(&mut tree, ino);
        drop(tree);
        self.entry(ino)
    }

    pub fn mkdir(&self, caller: Caller, parent: u64, name: &OsStr, mode: u32, umask: u32) -> R<FileAttr> {
        let data = Data::Dir {
            children: Some(Default::default()),
            loaded_at: Some(std::time::Instant::now()),
            version: None,
        };
        let perm = mode & !umask & 0o7777;
        let (ino, path) = self.create_node(caller, parent, name, EntryKind::Dir, perm, data)?;
        let mut tree = self.tree.lock();
        self.queue_op(&mut tree, RemoteOp::Mkdir { path: path.clone() }, ino, &[parent, ino]);
        // The server makes directories 0755: a mode other than that (or set-group-ID inherited)
        // follows, as a chmod of the new directory would.
        let perm = tree.get(ino).map_or(perm, |n| n.perm);
        if perm != 0o755 {
            self.queue_op(&mut tree, RemoteOp::Chmod { path, mode: perm }, ino, &[ino]);
        }
        self.send_new_owner(&mut tree, ino);
        drop(tree);
        self.entry(ino)
    }

    pub fn unlink(&self, parent: u64, name: &OsStr) -> R<()> {
        self.remove(parent, name, false)
    }

    pub fn rmdir(&self, parent: u64, name: &OsStr) -> R<()> {
        self.remove(parent, name, true)
    }

    fn remove(&self, parent: u64, name: &OsStr, dir: bool) -> R<()> {
        self.writable()?;
        let ino = self.child(parent, name)?.ok_or(FsError::NotFound)?;
        let is_dir = self.tree.lock().get(ino).is_some_and(Node::is_dir);
        if dir != is_dir {
            return Err(if dir {
                FsError::NotADirectory
            } else {
                FsError::IsADirectory
            });
        }
        if dir {
            self.ensure_listed(ino)?;
        }
        let mut tree = self.tree.lock();
        if tree.lookup(parent, name) != Some(ino) {
            return Err(FsError::Changed);
        }
        if dir && tree.children(ino).is_some_and(|c| !c.is_empty()) {
            return Err(FsError::NotEmpty);
        }
        let path = tree.child_path(parent, name).ok_or(FsError::NotFound)?;
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

    pub fn symlink(&self, caller: Caller, parent: u64, name: &OsStr, target: &Path) -> R<FileAttr> {
        let target = target.to_str().map(str::to_owned).ok_or(FsError::Invalid)?;
        let data = Data::Symlink(OsString::from(&target));
        let (ino, path) = self.create_node(caller, parent, name, EntryKind::Symlink, 0o777, data)?;
        let mut tree = self.tree.lock();
        if let Some(n) = tree.get_mut(ino) {
            n.size = target.len() as u64;
            // A symlink's mode is always 0777 (set-group-ID of the directory aside).
            n.perm = 0o777;
        }
        let mtime_ns = tree.get(ino).and_then(|n| super::time_ns(n.mtime));
        self.queue_op(
            &mut tree,
            RemoteOp::Symlink {
                path: path.clone(),
                target,
            },
            ino,
            &[parent, ino],
        );
        // The server stamps a new symlink with its own time: the one this mount shows follows
        // (git records a symlink's times like a file's).
        if let Some(mtime_ns) = mtime_ns {
            self.queue_op(&mut tree, RemoteOp::SetTimes { path, mtime_ns }, ino, &[ino]);
        }
        self.send_new_owner(&mut tree, ino);
        drop(tree);
        self.entry(ino)
    }

    pub fn rename(&self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: RenameFlags) -> R<()> {
        self.do_rename(parent, name, newparent, newname, flags)
    }

    /// LINK: `ino` gets the further name `newname` in `newparent`: one inode with two names
    /// here, and a link on the server (which applies a change through either name to both).
    pub fn link(&self, ino: u64, newparent: u64, newname: &OsStr) -> R<FileAttr> {
        self.writable()?;
        Self::check_name(newname)?;
        if self.child(newparent, newname)?.is_some() {
            return Err(FsError::Exists);
        }
        let mut tree = self.tree.lock();
        if tree.lookup(newparent, newname).is_some() {
            return Err(FsError::Exists);
        }
        match tree.get(ino) {
            None => return Err(FsError::NotFound),
            Some(n) if n.is_dir() => return Err(FsError::NotPermitted),
            Some(_) => {}
        }
        let from = tree.path(ino).ok_or(FsError::NotFound)?;
        let to = tree.child_path(newparent, newname).ok_or(FsError::NotFound)?;
        // Bytes the server has not seen yet go up first: the link needs something to name.
        self.queue_upload(&mut tree, ino);
        tree.add_name(ino, newparent, newname.to_owned());
        if let Some(n) = tree.get_mut(ino) {
            n.ctime = SystemTime::now();
        }
        self.queue_op(&mut tree, RemoteOp::Link { from, to }, ino, &[newparent, ino]);
        self.touch_dir(&mut tree, newparent);
        drop(tree);
        self.entry(ino)
    }

    /// OPEN with open(2) `flags`: the file handle, or `None` when the kernel opens files itself
    /// (see `no_open`: it then keeps cached pages and sends no release; a read-only mount is
    /// mounted read-only, so the kernel refuses opens for writing; O_TRUNC comes as a setattr).
    pub fn open(&self, caller: Caller, ino: u64, flags: i32) -> R<Option<u64>> {
        if self.no_open.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if write && self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        if write && flags & libc::O_TRUNC != 0 {
            let kill = self.privs_to_kill(caller, ino, false, true);
            self.do_setattr(ino, kill, Some(0), SetTimes::default(), true)?;
        }
        match self.tree.lock().get(ino).map(Node::is_dir) {
            Some(true) => Err(FsError::IsADirectory),
            Some(false) => Ok(Some(handle_for(flags))),
            None => Err(FsError::NotFound),
        }
    }

    /// CREATE and open: the new file's attributes and handle, or `None` when the kernel creates
    /// with `mknod` and opens the file itself, as every other open (no `release` at the close
    /// then: a created file costs one request fewer).
    pub fn create(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> R<Option<(FileAttr, u64)>> {
        if self.no_open.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let file = Arc::new(self.staging.new_file());
        let perm = mode & !umask & 0o7777;
        let data = Data::File(FileData::Local(file));
        let (ino, _) = self.create_node(caller, parent, name, EntryKind::File, perm, data)?;
        let mut tree = self.tree.lock();
        if let Some(n) = tree.get_mut(ino) {
            n.dirty = true;
        }
        self.send_new_owner(&mut tree, ino);
        let attr = tree.get_mut(ino).map(|n| {
            n.dirty = true;
            n.lookups += 1;
            if self.no_flush.load(Ordering::SeqCst) {
                // A file created and closed unwritten sends nothing at its close.
                self.idle.touch(ino, idle_upload::SETTLE);
            }
        });
        let attr = attr.and_then(|()| self.attr_in(&tree, ino));
        drop(tree);
        attr.map(|a| Some((a, handle_for(flags)))).ok_or(FsError::NotFound)
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> R<Vec<u8>> {
        self.read_fresh(ino, offset, size)
    }

    /// WRITE of `data` at `offset` through handle `fh`; `kill_privs`: the kernel asks that the
    /// set-ID bits be cleared with it.
    pub fn write(&self, caller: Caller, ino: u64, fh: u64, offset: u64, data: &[u8], kill_privs: bool) -> R<u32> {
        let n = self.do_write(ino, fh, offset, data)?;
        let killed = kill_privs.then(|| self.tree.lock().get(ino).and_then(|n| killed_privs(n.perm)));
        if let Some(Some(mode)) = killed {
            let _ = self.do_setattr(ino, Some(mode), None, SetTimes::default(), true);
        }
        self.written_by(caller, ino, false);
        Ok(n)
    }

    /// FLUSH (a close): sends the file; `Ok(false)` when the mount does not want flushes ("not
    /// implemented" stops the kernel from asking at every close: nothing is ever sent from a
    /// read-only mount, and a writable one sends files at the setattr carrying a close's times,
    /// see `idle_upload`). A close does not wait for the server, but it does not hide what is
    /// known: an upload of this file the server refused makes the close fail too.
    pub fn flush(&self, ino: u64) -> R<bool> {
        if self.config.read_only || self.no_flush.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.queue_upload(&mut self.tree.lock(), ino);
        match self.writeback.standing(ino) {
            Some(r) => {
                tracing::warn!(refused = %r, "close of a file the server refused");
                Err(FsError::Refused(r))
            }
            None => Ok(true),
        }
    }

    /// RELEASE (only sent while the mount answers `open`, see `no_open`).
    pub fn release(&self, ino: u64) {
        let mut tree = self.tree.lock();
        self.queue_upload(&mut tree, ino);
        tree.maybe_drop(ino);
    }

    /// `fsync` of a file: its newest change (its upload or an entry change) is acknowledged, and
    /// with it every change queued before (the queue is acknowledged in order; changes queued
    /// later to other files are not waited for); EIO if the server stayed unreachable, or
    /// refused a change to the file that no later upload of it replaced.
    pub fn fsync(&self, ino: u64) -> R<()> {
        let seq = {
            let mut tree = self.tree.lock();
            self.queue_upload(&mut tree, ino);
            tree.get(ino).map_or_else(|| self.writeback.last_seq(), |n| n.local_seq)
        };
        self.writeback.wait_file(ino, seq).map_err(|e| {
            tracing::warn!(ino, error = %e, "fsync failed");
            FsError::NotSent(e)
        })
    }

    /// `fsync` of a directory. On the mount's root, a barrier for the whole mount: every write
    /// accepted so far is sent and acknowledged; EIO if the server refused anything since the
    /// previous `fsync` of the root. On another directory: everything queued so far; EIO if a
    /// change to the directory itself was refused.
    pub fn fsyncdir(&self, ino: u64) -> R<()> {
        let done = if ino == ROOT {
            self.queue_all_dirty();
            self.writeback.sync_all()
        } else {
            self.send_marked();
            self.writeback.wait_file(ino, self.writeback.last_seq())
        };
        done.map_err(|e| {
            tracing::warn!(ino, error = %e, "fsync of a directory failed");
            FsError::NotSent(e)
        })
    }

    /// READDIR from `offset`: each entry's inode, the offset after it, its kind and name ("."
    /// and ".." first), for as long as `add` takes them (`true`: full, that entry not added).
    pub fn readdir_into(
        &self,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(u64, u64, FileType, &OsStr) -> bool,
    ) -> R<()> {
        if offset == 0 {
            self.ensure_listed(ino)?;
        }
        let tree = self.tree.lock();
        let node = tree.get(ino).ok_or(FsError::NotFound)?;
        self.dir_cursors.read(
            ino,
            node.parent,
            offset,
            tree.children(ino),
            |child, next, name| match tree.get(child) {
                Some(c) => add(child, next, file_type(c.kind), name),
                None => false,
            },
        );
        Ok(())
    }

    /// [`Fs::readdir_into`], every entry from `offset`.
    pub fn readdir(&self, ino: u64, offset: u64) -> R<Vec<(u64, FileType, OsString)>> {
        let mut out = Vec::new();
        self.readdir_into(ino, offset, |child, _, kind, name| {
            out.push((child, kind, name.to_owned()));
            false
        })?;
        Ok(out)
    }

    /// READDIRPLUS from `offset` into `out`, until it is full: every entry added but "." and
    /// ".." counts as a lookup the kernel will forget.
    pub fn readdirplus(&self, ino: u64, offset: u64, out: &mut impl DirReplier) -> R<()> {
        if offset == 0 {
            self.ensure_listed(ino)?;
        }
        let ttl = self.ttl();
        let mut tree = self.tree.lock();
        let node = tree.get(ino).ok_or(FsError::NotFound)?;
        let mut added = Vec::new();
        self.dir_cursors
            .read(ino, node.parent, offset, tree.children(ino), |child, next, name| {
                let Some(attr) = self.attr_in(&tree, child) else {
                    return false;
                };
                if out.add(child, next, name, &ttl, &attr) {
                    return true;
                }
                if next > 2 {
                    added.push(child);
                }
                false
            });
        for child in added {
            if let Some(n) = tree.get_mut(child) {
                n.lookups += 1;
            }
        }
        Ok(())
    }

    /// ACCESS (asked only on mounts without `default_permissions`, which only root makes, see
    /// `serve.rs`): root may do anything but run a file that has no execute bit at all.
    pub fn access(&self, ino: u64, execute: bool) -> R<()> {
        match self.tree.lock().get(ino) {
            None => Err(FsError::NotFound),
            Some(n) if execute && !n.is_dir() && n.perm & 0o111 == 0 => Err(FsError::Denied),
            Some(_) => Ok(()),
        }
    }
}

/// The handle of a file opened with open(2) `flags`: whether writes append.
fn handle_for(flags: i32) -> u64 {
    if flags & libc::O_APPEND != 0 {
        super::APPEND_BIT
    } else {
        0
    }
}
