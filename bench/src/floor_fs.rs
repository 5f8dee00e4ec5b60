//! The floor of the mount benchmarks: the least a FUSE file system costs on this machine.
//!
//! `aether-bench __floor-fs DIR` mounts a file system that keeps everything in memory and does
//! nothing else: no server, no upload queue, no cache, no persistence. It asks the kernel for
//! exactly what `aether mount` asks for (writeback cache, no open, no opendir, no flush, no
//! xattrs, readdirplus, parallel directory operations, killpriv v2, the same mount options and
//! threads), so the kernel sends it the same requests. Whatever a workload costs on it over the
//! native file system is the price of the kernel's FUSE protocol on this machine, which no FUSE
//! mount can get under; the rest of `aether mount`'s time is its own.
//!
//! It is a benchmark reference, not a product: one lock over one table, file contents in
//! `Vec`s, and the POSIX the benchmarks' tools (git, tar, find, cat, rm) need.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aether_mount::coarse_now;
use aether_mount::cpu_latency;
use aether_mount::fs::killed_privs;
use aether_mount::fuse::negative_attr;
use anyhow::{Context, Result, bail};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

/// The argument that makes this binary serve the floor file system on a directory.
pub const FLOOR_ARG: &str = "__floor-fs";

/// What the kernel may cache entries and attributes for: nothing changes behind its back.
const TTL: Duration = Duration::from_secs(3600);
const ROOT: u64 = 1;

enum Content {
    Dir(BTreeMap<OsString, u64>),
    File(Vec<u8>),
    Symlink(OsString),
}

struct Node {
    parent: u64,
    perm: u32,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    content: Content,
    /// Lookups the kernel holds; a removed node goes when they are forgotten.
    lookups: u64,
    linked: bool,
}

impl Node {
    fn new(parent: u64, perm: u32, req: &Request, content: Content) -> Node {
        let now = coarse_now();
        Node {
            parent,
            perm,
            uid: req.uid(),
            gid: req.gid(),
            atime: now,
            mtime: now,
            ctime: now,
            content,
            lookups: 0,
            linked: true,
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, size, nlink) = match &self.content {
            Content::Dir(_) => (FileType::Directory, 4096, 2),
            Content::File(data) => (FileType::RegularFile, data.len() as u64, u32::from(self.linked)),
            Content::Symlink(t) => (FileType::Symlink, t.len() as u64, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.ctime,
            kind,
            perm: (self.perm & 0o7777) as u16,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn children(&self) -> Option<&BTreeMap<OsString, u64>> {
        match &self.content {
            Content::Dir(c) => Some(c),
            _ => None,
        }
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

struct Table {
    nodes: HashMap<u64, Node>,
    next: u64,
}

type R<T> = std::result::Result<T, Errno>;

impl Table {
    fn node(&self, ino: u64) -> R<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> R<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir_mut(&mut self, ino: u64) -> R<&mut BTreeMap<OsString, u64>> {
        match &mut self.node_mut(ino)?.content {
            Content::Dir(c) => Ok(c),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> R<Option<u64>> {
        let children = self.node(parent)?.children().ok_or(Errno::ENOTDIR)?;
        Ok(children.get(name).copied())
    }

    /// One more lookup of `ino`, and its attributes.
    fn looked_up(&mut self, ino: u64) -> R<FileAttr> {
        let n = self.node_mut(ino)?;
        n.lookups += 1;
        Ok(n.attr(ino))
    }

    fn add(&mut self, parent: u64, name: &OsStr, node: Node) -> R<FileAttr> {
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        if self.child(parent, name)?.is_some() {
            return Err(Errno::EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, node);
        let now = coarse_now();
        self.dir_mut(parent)?.insert(name.to_owned(), ino);
        let p = self.node_mut(parent)?;
        (p.mtime, p.ctime) = (now, now);
        self.looked_up(ino)
    }

    fn unlinked(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.linked = false;
            n.ctime = SystemTime::now();
        }
        self.maybe_drop(ino);
    }

    fn maybe_drop(&mut self, ino: u64) {
        if self.nodes.get(&ino).is_some_and(|n| !n.linked && n.lookups == 0) {
            self.nodes.remove(&ino);
        }
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> R<()> {
        let ino = self.child(parent, name)?.ok_or(Errno::ENOENT)?;
        match (self.node(ino)?.children(), dir) {
            (Some(c), true) if !c.is_empty() => return Err(Errno::ENOTEMPTY),
            (Some(_), false) => return Err(Errno::EISDIR),
            (None, true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.remove(name);
        let now = SystemTime::now();
        let p = self.node_mut(parent)?;
        (p.mtime, p.ctime) = (now, now);
        self.unlinked(ino);
        Ok(())
    }

    fn rename(&mut self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: RenameFlags) -> R<()> {
        let from = self.child(parent, name)?.ok_or(Errno::ENOENT)?;
        let to = self.child(newparent, newname)?;
        if newname.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        if self.node(from)?.children().is_some() && self.is_within(newparent, from) {
            return Err(Errno::EINVAL);
        }
        let now = SystemTime::now();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let to = to.ok_or(Errno::ENOENT)?;
            if self.node(to)?.children().is_some() && self.is_within(parent, to) {
                return Err(Errno::EINVAL);
            }
            self.dir_mut(parent)?.insert(name.to_owned(), to);
            self.dir_mut(newparent)?.insert(newname.to_owned(), from);
            self.node_mut(to)?.parent = parent;
        } else {
            if let Some(to) = to {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                if to == from {
                    return Ok(());
                }
                match (self.node(from)?.children(), self.node(to)?.children()) {
                    (Some(_), None) => return Err(Errno::ENOTDIR),
                    (None, Some(_)) => return Err(Errno::EISDIR),
                    (Some(_), Some(c)) if !c.is_empty() => return Err(Errno::ENOTEMPTY),
                    _ => {}
                }
                self.unlinked(to);
            }
            self.dir_mut(parent)?.remove(name);
            self.dir_mut(newparent)?.insert(newname.to_owned(), from);
        }
        let n = self.node_mut(from)?;
        n.parent = newparent;
        n.ctime = now;
        for p in [parent, newparent] {
            let p = self.node_mut(p)?;
            (p.mtime, p.ctime) = (now, now);
        }
        Ok(())
    }

    /// Whether `ino` is `dir` or below it.
    fn is_within(&self, mut ino: u64, dir: u64) -> bool {
        loop {
            if ino == dir {
                return true;
            }
            match self.nodes.get(&ino) {
                Some(n) if ino != ROOT => ino = n.parent,
                _ => return false,
            }
        }
    }
}

pub struct FloorFs {
    table: Mutex<Table>,
}

impl FloorFs {
    pub fn new(uid: u32, gid: u32) -> FloorFs {
        let now = SystemTime::now();
        let root = Node {
            parent: ROOT,
            perm: 0o755,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            content: Content::Dir(BTreeMap::new()),
            lookups: 1,
            linked: true,
        };
        FloorFs {
            table: Mutex::new(Table {
                nodes: HashMap::from([(ROOT, root)]),
                next: ROOT + 1,
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn entry(reply: ReplyEntry, attr: R<FileAttr>) {
    match attr {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, r: R<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for FloorFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS | InitFlags::FUSE_CACHE_SYMLINKS);
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE);
        let _ = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut t = self.table();
        match t.child(parent.0, name) {
            Ok(Some(ino)) => entry(reply, t.looked_up(ino)),
            // A negative entry the kernel keeps, as `aether mount` answers.
            Ok(None) => reply.entry(&TTL, &negative_attr(), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut t = self.table();
        if let Some(n) = t.nodes.get_mut(&ino.0) {
            n.lookups = n.lookups.saturating_sub(nlookup);
        }
        t.maybe_drop(ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.table().node(ino.0) {
            Ok(n) => reply.attr(&TTL, &n.attr(ino.0)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut t = self.table();
        let n = match t.node_mut(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        if let Some(size) = size {
            match &mut n.content {
                Content::File(data) => data.resize(size as usize, 0),
                Content::Dir(_) => return reply.error(Errno::EISDIR),
                Content::Symlink(_) => return reply.error(Errno::EINVAL),
            }
        }
        let chown = uid.is_some() || gid.is_some();
        if let Some(mode) = mode {
            n.perm = mode & 0o7777;
        } else if chown && n.children().is_none() {
            n.perm = killed_privs(n.perm).unwrap_or(n.perm);
        }
        n.uid = uid.unwrap_or(n.uid);
        n.gid = gid.unwrap_or(n.gid);
        n.atime = atime.map_or(n.atime, time);
        n.mtime = mtime.map_or(n.mtime, time);
        n.ctime = ctime.unwrap_or_else(SystemTime::now);
        reply.attr(&TTL, &n.attr(ino.0));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.table().node(ino.0).map(|n| &n.content) {
            Ok(Content::Symlink(t)) => reply.data(t.as_encoded_bytes()),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let node = Node::new(parent.0, mode & !umask & 0o7777, req, Content::File(Vec::new()));
        entry(reply, self.table().add(parent.0, name, node));
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let node = Node::new(parent.0, mode & !umask & 0o7777, req, Content::Dir(BTreeMap::new()));
        entry(reply, self.table().add(parent.0, name, node));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.table().remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.table().remove(parent.0, name, true));
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let node = Node::new(parent.0, 0o777, req, Content::Symlink(target.as_os_str().to_owned()));
        entry(reply, self.table().add(parent.0, link_name, node));
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
        empty(reply, self.table().rename(parent.0, name, newparent.0, newname, flags));
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::ENOSYS);
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
        match self.table().node(ino.0).map(|n| &n.content) {
            Ok(Content::File(data)) => {
                let start = (offset as usize).min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                reply.data(&data[start..end]);
            }
            Ok(Content::Dir(_)) => reply.error(Errno::EISDIR),
            Ok(Content::Symlink(_)) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut t = self.table();
        let n = match t.node_mut(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            n.perm = killed_privs(n.perm).unwrap_or(n.perm);
        }
        let Content::File(file) = &mut n.content else {
            return reply.error(Errno::EISDIR);
        };
        let Some(end) = (offset as usize).checked_add(data.len()) else {
            return reply.error(Errno::EFBIG);
        };
        if file.len() < end {
            file.resize(end, 0);
        }
        file[offset as usize..end].copy_from_slice(data);
        reply.written(data.len() as u32);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let t = self.table();
        let n = match t.node(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let Some(children) = n.children() else {
            return reply.error(Errno::ENOTDIR);
        };
        let dots = [(ino.0, OsStr::new(".")), (n.parent, OsStr::new(".."))];
        let all = dots
            .into_iter()
            .chain(children.iter().map(|(k, v)| (*v, k.as_os_str())));
        for (i, (child, name)) in all.enumerate().skip(offset as usize) {
            let kind = t
                .nodes
                .get(&child)
                .map_or(FileType::RegularFile, |c| c.attr(child).kind);
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let mut t = self.table();
        let n = match t.node(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let Some(children) = n.children() else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all: Vec<(u64, OsString)> = vec![(ino.0, ".".into()), (n.parent, "..".into())];
        all.extend(children.iter().map(|(k, v)| (*v, k.clone())));
        for (i, (child, name)) in all.into_iter().enumerate().skip(offset as usize) {
            let Some(c) = t.nodes.get_mut(&child) else { continue };
            if reply.add(
                INodeNo(child),
                (i + 1) as u64,
                &name,
                &TTL,
                &c.attr(child),
                Generation(0),
            ) {
                break;
            }
            if i >= 2 {
                c.lookups += 1;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = 1u64 << 32;
        reply.statfs(blocks, blocks, blocks, 1 << 32, 1 << 32, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let answer = self.table().node(ino.0).and_then(|n| {
            let exec = mask.contains(fuser::AccessFlags::X_OK);
            if exec && n.children().is_none() && n.perm & 0o111 == 0 {
                Err(Errno::EACCES)
            } else {
                Ok(())
            }
        });
        empty(reply, answer);
    }
}

/// `__floor-fs DIR`: mount the floor file system on DIR, print `ready` once mounted, and serve
/// until DIR is unmounted.
pub fn serve(args: &[String]) -> Result<()> {
    let [dir] = args else {
        bail!("usage: aether-bench {FLOOR_ARG} DIR");
    };
    let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    let mut options = vec![fuser::MountOption::FSName("aether-floor".into())];
    // As `aether mount`: root's mounts go without `default_permissions`.
    if uid != 0 {
        options.push(fuser::MountOption::DefaultPermissions);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.n_threads = Some(std::thread::available_parallelism().map_or(2, |n| n.get().min(8)));
    config.clone_fd = true;
    // As `aether mount` while busy (`cpu_latency.rs` there): idle CPUs poll instead of halting,
    // for as long as the file is open. Without it every round trip waits for a halted vCPU.
    let _latency = cpu_latency::open_hint(cpu_latency::DEVICE.as_ref()).ok();
    let session =
        fuser::spawn_mount(FloorFs::new(uid, gid), dir, &config).with_context(|| format!("mounting on {dir}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    session.join().context("serving the floor file system")
}

/// A floor file system mounted by a child process; unmounted on drop.
pub struct FloorMount {
    pub dir: std::path::PathBuf,
    child: std::process::Child,
}

impl FloorMount {
    pub fn mount(dir: &Path) -> Result<FloorMount> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = std::process::Command::new(exe)
            .arg(FLOOR_ARG)
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting the floor file system")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("the floor file system's stdout")?;
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let status = child.wait()?;
            bail!("the floor file system did not mount on {} ({status})", dir.display());
        }
        Ok(FloorMount {
            dir: dir.to_path_buf(),
            child,
        })
    }
}

impl Drop for FloorMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(&self.dir)
            .status();
        if self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(100));
            if self.child.try_wait().ok().flatten().is_none() {
                let _ = std::process::Command::new("fusermount3")
                    .arg("-u")
                    .arg("-z")
                    .arg(&self.dir)
                    .status();
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    use super::FloorFs;

    /// Each step's outcome: what it read, or the errno it failed with.
    fn scenario(root: &Path) -> Vec<String> {
        let p = |name: &str| root.join(name);
        let show = |r: std::io::Result<String>| match r {
            Ok(s) => s,
            Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(-1)),
        };
        let mut out = Vec::new();
        let mut step = |r: std::io::Result<String>| out.push(show(r));
        step(fs::write(p("a"), "hello").and_then(|()| fs::read_to_string(p("a"))));
        step(
            fs::create_dir(p("d"))
                .and_then(|()| fs::write(p("d/x"), "old"))
                .map(|()| String::new()),
        );
        step(fs::remove_dir(p("d")).map(|()| String::new()));
        step(fs::rename(p("a"), p("d/x")).and_then(|()| fs::read_to_string(p("d/x"))));
        step(fs::read_to_string(p("a")));
        step(
            std::os::unix::fs::symlink("d/x", p("l"))
                .and_then(|()| fs::read_link(p("l")))
                .map(|t| t.display().to_string()),
        );
        step(fs::read_to_string(p("l")));
        let truncate = |len: u64| fs::OpenOptions::new().write(true).open(p("d/x"))?.set_len(len);
        step(truncate(2).and_then(|()| fs::read(p("d/x"))).map(|b| format!("{b:?}")));
        step(truncate(6).and_then(|()| fs::read(p("d/x"))).map(|b| format!("{b:?}")));
        step(
            fs::create_dir(p("d/sub"))
                .and_then(|()| fs::rename(p("d"), p("d/sub/d")))
                .map(|()| String::new()),
        );
        step(fs::remove_file(p("d")).map(|()| String::new()));
        step(fs::remove_dir(p("d/x")).map(|()| String::new()));
        step(
            fs::create_dir(p("e"))
                .and_then(|()| fs::rename(p("e"), p("d")))
                .map(|()| String::new()),
        );
        step(
            fs::remove_dir(p("d/sub"))
                .and_then(|()| fs::rename(p("d/x"), p("d/sub")))
                .map(|()| String::new()),
        );
        let suid = || -> std::io::Result<String> {
            fs::set_permissions(p("d/sub"), fs::Permissions::from_mode(0o4755))?;
            let before = fs::metadata(p("d/sub"))?.mode() & 0o7777;
            let meta = fs::metadata(p("d/sub"))?;
            std::os::unix::fs::chown(p("d/sub"), Some(meta.uid()), Some(meta.gid()))?;
            Ok(format!("{before:o} -> {:o}", fs::metadata(p("d/sub"))?.mode() & 0o7777))
        };
        step(suid());
        step(fs::hard_link(p("d/sub"), p("h")).map(|()| String::new()));
        let mut names: Vec<String> = fs::read_dir(root)
            .and_then(|d| {
                d.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        out.push(names.join(" "));
        out
    }

    #[test]
    fn the_floor_answers_like_a_native_directory() {
        if !Path::new("/dev/fuse").exists() {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI=true but /dev/fuse is missing: the floor's test must run in CI"
            );
            eprintln!("skipped: no /dev/fuse");
            return;
        }
        let (native, mnt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut config = fuser::Config::default();
        config.mount_options = vec![fuser::MountOption::FSName("aether-floor-test".into())];
        config.n_threads = Some(2);
        let uid = nix::unistd::getuid().as_raw();
        let session = fuser::spawn_mount(FloorFs::new(uid, nix::unistd::getgid().as_raw()), mnt.path(), &config)
            .expect("mounting the floor");
        let (want, got) = (scenario(native.path()), scenario(mnt.path()));
        session.umount_and_join().unwrap();
        // Hard links are refused (as by `aether mount`); everything else as natively.
        const LINK: usize = 15;
        assert_eq!(
            (want[LINK].as_str(), got[LINK].clone()),
            ("", format!("errno {}", libc::EPERM))
        );
        let strip = |v: &[String]| -> Vec<String> {
            let mut v = v.to_vec();
            v.remove(LINK);
            if let Some(names) = v.last_mut() {
                *names = names.replace(" h", "");
            }
            v
        };
        assert_eq!(strip(&got), strip(&want));
        assert_eq!(got[2], format!("errno {}", libc::ENOTEMPTY), "{got:?}");
    }
}
