//! The FUSE adapter: the only code that sees fuser's requests and replies. Each handler takes
//! the request apart, calls the file system (`fs`) with plain arguments, and replies with what
//! it returns; a [`FsError`] becomes an errno here (through [`FsError::errno`]) and nowhere
//! else. What is purely a matter of the protocol (capabilities, "not implemented" answers that
//! stop the kernel from asking, statfs, extended attributes) is decided here too.
//!
//! No handler replies while the file system holds its tree: a reply wakes the asking process,
//! which may take this CPU at once, and every other mount thread would then queue behind a
//! descheduled holder.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::fs::{AetherFs, Caller, DirReplier, FsError, Negotiated, SetAttr, Touched};

/// What the adapter tells about the requests it serves: tests count them (how many reached
/// the mount is what the kernel's caches are measured by); the mount itself ignores them.
pub trait RequestObserver: Send + Sync + 'static {
    /// A request of kind `op` (`"lookup"`, `"open"`, `"setattr"`...).
    fn request(&self, _op: &'static str) {}
    /// A lookup, getattr or listing: a question the kernel's caches could not answer.
    fn asked(&self) {}
    /// A listing of kind `op` is computed and about to be sent to the kernel.
    fn listing_ready(&self, _op: &'static str) {}
}

/// Observes nothing.
pub struct Unobserved;

impl RequestObserver for Unobserved {}

/// The file system as fuser mounts it.
pub struct Fuse<O: RequestObserver = Unobserved> {
    fs: AetherFs,
    observer: O,
}

impl Fuse {
    pub fn new(fs: AetherFs) -> Fuse {
        Fuse::observed(fs, Unobserved)
    }
}

impl<O: RequestObserver> Fuse<O> {
    /// `fs`, telling `observer` about every request.
    pub fn observed(fs: AetherFs, observer: O) -> Fuse<O> {
        Fuse { fs, observer }
    }

    fn request(&self, op: &'static str) {
        self.fs.busy();
        self.observer.request(op);
    }

    /// `r` of a call that changed the mount (`touched`): before it is answered, the server
    /// learns that the mount holds changes it does not have, and other mounts of the session
    /// drop what they cached of what it touched (see `handoff`).
    fn changed<T>(&self, r: Result<T, FsError>, touched: Touched<'_>) -> Result<T, FsError> {
        if r.is_ok() {
            self.fs.announce_change(touched);
        }
        r
    }

    fn asked(&self, op: &'static str) {
        self.request(op);
        self.observer.asked();
    }
}

fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno())
}

fn caller(req: &Request) -> Caller {
    Caller {
        pid: req.pid(),
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// The attributes of a negative entry: inode 0 tells the kernel the name does not exist, and it
/// keeps the answer for the TTL.
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

fn reply_empty(r: Result<(), FsError>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

fn reply_entry(r: Result<FileAttr, FsError>, ttl: &Duration, reply: ReplyEntry) {
    match r {
        Ok(attr) => reply.entry(ttl, &attr, Generation(0)),
        Err(e) => reply.error(errno(&e)),
    }
}

struct PlusReplier<'a>(&'a mut ReplyDirectoryPlus);

impl DirReplier for PlusReplier<'_> {
    fn add(&mut self, ino: u64, offset: u64, name: &OsStr, ttl: &Duration, attr: &FileAttr) -> bool {
        self.0.add(INodeNo(ino), offset, name, ttl, attr, Generation(0))
    }
}

impl<O: RequestObserver> Filesystem for Fuse<O> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS | InitFlags::FUSE_CACHE_SYMLINKS);
        // Listings carry every entry's attributes (the kernel then needs no lookup per entry).
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        let _ = config.set_max_readahead(1 << 20);
        // Writes land in the kernel's page cache and reach the mount in large pieces, at the
        // latest on close (flush) and fsync, which is all the mount promises anyway.
        let writeback_cache = !self.fs.read_only() && config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE).is_ok();
        let no_open_support = config.capabilities().contains(InitFlags::FUSE_NO_OPEN_SUPPORT);
        let kills_privs = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2).is_ok();
        self.fs.start(Negotiated {
            writeback_cache,
            no_open_support,
            kills_privs,
        });
        Ok(())
    }

    fn destroy(&mut self) {
        // The kernel wrote every dirty page before this; files it wrote back without a close
        // may still be marked only, and are dirty. What cannot be sent is reported by the
        // mount process (`serve.rs`) from the writeback's record.
        if let Err(e) = self.fs.finish() {
            tracing::error!(error = %e, "unmounted with changes the server does not hold");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.asked("lookup");
        match self.fs.lookup(parent.0, name) {
            Ok(Some(attr)) => reply.entry(&self.fs.ttl(), &attr, Generation(0)),
            Ok(None) => reply.entry(&self.fs.ttl(), &negative_attr(), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.asked("getattr");
        match self.fs.getattr(ino.0) {
            Ok(attr) => reply.attr(&self.fs.ttl(), &attr),
            Err(e) => reply.error(errno(&e)),
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
        self.request("setattr");
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime,
            fh: fh.map(|h| h.0),
        };
        match self.changed(self.fs.setattr(caller(req), ino.0, set), Touched::Node(ino.0)) {
            Ok(attr) => reply.attr(&self.fs.ttl(), &attr),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.request("readlink");
        match self.fs.readlink(ino.0) {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        self.request("mknod");
        reply_entry(
            self.changed(
                self.fs.mknod(caller(req), parent.0, name, mode, umask, rdev),
                Touched::Name(parent.0, name),
            ),
            &self.fs.ttl(),
            reply,
        );
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.request("mkdir");
        reply_entry(
            self.changed(
                self.fs.mkdir(caller(req), parent.0, name, mode, umask),
                Touched::Name(parent.0, name),
            ),
            &self.fs.ttl(),
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.request("unlink");
        reply_empty(
            self.changed(self.fs.unlink(parent.0, name), Touched::Name(parent.0, name)),
            reply,
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.request("rmdir");
        reply_empty(
            self.changed(self.fs.rmdir(parent.0, name), Touched::Name(parent.0, name)),
            reply,
        );
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        self.request("symlink");
        reply_entry(
            self.changed(
                self.fs.symlink(caller(req), parent.0, link_name, target),
                Touched::Name(parent.0, link_name),
            ),
            &self.fs.ttl(),
            reply,
        );
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
        self.request("rename");
        reply_empty(
            self.changed(
                self.fs.rename(parent.0, name, newparent.0, newname, flags),
                Touched::Renamed(parent.0, name, newparent.0, newname),
            ),
            reply,
        );
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        self.request("link");
        reply_entry(
            self.changed(self.fs.link(ino.0, newparent.0, newname), Touched::Node(ino.0)),
            &self.fs.ttl(),
            reply,
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.request("open");
        match self.fs.open(caller(req), ino.0, flags.0) {
            Ok(Some(fh)) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            // "Not implemented": the kernel opens this file and every later one itself, keeping
            // cached pages (FOPEN_KEEP_CACHE), and sends no release.
            Ok(None) => reply.error(Errno::ENOSYS),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.request("create");
        match self.changed(
            self.fs.create(caller(req), parent.0, name, mode, umask, flags),
            Touched::Name(parent.0, name),
        ) {
            Ok(Some((attr, fh))) => reply.created(
                &self.fs.ttl(),
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            // "Not implemented": the kernel then creates with `mknod` and opens the file itself.
            Ok(None) => reply.error(Errno::ENOSYS),
            Err(e) => reply.error(errno(&e)),
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
        self.request("read");
        match self.fs.read(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
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
        self.request("write");
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self.changed(
            self.fs.write(caller(req), ino.0, fh.0, offset, data, kill),
            Touched::Written(ino.0),
        ) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.request("flush");
        match self.fs.flush(ino.0) {
            Ok(true) => reply.ok(),
            // "Not implemented" stops the kernel from asking at every close.
            Ok(false) => reply.error(Errno::ENOSYS),
            Err(e) => reply.error(errno(&e)),
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
        self.request("release");
        self.fs.release(ino.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.request("fsync");
        reply_empty(self.fs.fsync(ino.0), reply);
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.request("fsyncdir");
        reply_empty(self.fs.fsyncdir(ino.0), reply);
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
        self.asked("readdir");
        let listed = self.fs.readdir_into(ino.0, offset, |child, next, kind, name| {
            reply.add(INodeNo(child), next, kind, name)
        });
        match listed {
            Ok(()) => {
                self.observer.listing_ready("readdir");
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        self.asked("readdirplus");
        match self.fs.readdirplus(ino.0, offset, &mut PlusReplier(&mut reply)) {
            Ok(()) => {
                self.observer.listing_ready("readdirplus");
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.request("statfs");
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

    fn access(&self, _req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.request("access");
        reply_empty(self.fs.access(ino.0, mask.contains(fuser::AccessFlags::X_OK)), reply);
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
