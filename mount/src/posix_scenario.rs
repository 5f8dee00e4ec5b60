//! The POSIX edge-case scenario run on a mount and on a plain temporary directory, whose
//! results are compared line by line and errno by errno: rename over files and directories
//! (with RENAME_NOREPLACE and RENAME_EXCHANGE), symlinks, truncate up and down, sparse writes,
//! O_APPEND, unlink and rename of open files, modes and mtimes, long names, owners (chown,
//! chgrp, lchown), FIFOs, sockets and device nodes, and hard links. Run as root (owners and
//! device nodes need it, as on any file system).
//!
//! Test code only (the `test-support` feature). It is shared by the lib's tests (a mount over
//! the in-memory backend) and the CLI's end-to-end tests (a real mount of a real server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
use nix::unistd::AccessFlags;

fn res<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => match e.raw_os_error() {
            Some(c) => format!("err {}", nix::errno::Errno::from_raw(c)),
            None => format!("err {e}"),
        },
    }
}

fn nix_res<T>(r: nix::Result<T>) -> String {
    res(r.map_err(std::io::Error::from))
}

fn read(p: &Path) -> String {
    match fs::read(p) {
        Ok(b) => format!("{:?}", String::from_utf8_lossy(&b)),
        Err(e) => res::<()>(Err(e)),
    }
}

fn names(dir: &Path) -> String {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<String> = rd.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v.join(",")
        }
        Err(e) => res::<()>(Err(e)),
    }
}

/// The scenario; one line per observable result, in order.
pub fn scenario(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let p = |s: &str| root.join(s);
    let mut log = |what: &str, r: String| out.push(format!("{what}: {r}"));

    // Rename over files and directories.
    log("write a", res(fs::write(p("a"), b"hello")));
    log("write b", res(fs::write(p("b"), b"bee")));
    log("rename a over b", res(fs::rename(p("a"), p("b"))));
    log("read b", read(&p("b")));
    log("stat a", res(fs::metadata(p("a"))));
    log("rename b onto itself", res(fs::rename(p("b"), p("b"))));
    log("read b again", read(&p("b")));
    log("mkdir d", res(fs::create_dir(p("d"))));
    log("mkdir d again", res(fs::create_dir(p("d"))));
    log("mkdir e", res(fs::create_dir(p("e"))));
    log("write d/x", res(fs::write(p("d/x"), b"x")));
    log("rename e over d (non-empty)", res(fs::rename(p("e"), p("d"))));
    log("rename d over e (empty)", res(fs::rename(p("d"), p("e"))));
    log("read e/x", read(&p("e/x")));
    log("ls after dir rename", names(root));
    log("rename b over dir e", res(fs::rename(p("b"), p("e"))));
    log("rename dir e over file b", res(fs::rename(p("e"), p("b"))));
    log("mkdir e/sub", res(fs::create_dir(p("e/sub"))));
    log("rename e into e/sub", res(fs::rename(p("e"), p("e/sub/in"))));
    log("rename into missing parent", res(fs::rename(p("b"), p("nodir/b"))));
    log("rename under a file", res(fs::rename(p("e/x"), p("b/x"))));
    log("rename missing", res(fs::rename(p("missing"), p("m2"))));
    log("mkdir under a file", res(fs::create_dir(p("b/sub"))));
    log("rmdir e (non-empty)", res(fs::remove_dir(p("e"))));
    log("rmdir file b", res(fs::remove_dir(p("b"))));
    log("unlink dir e", res(fs::remove_file(p("e"))));
    log("unlink missing", res(fs::remove_file(p("missing"))));
    log("open missing", res(fs::File::open(p("missing"))));
    log(
        "create_new existing",
        res(fs::OpenOptions::new().write(true).create_new(true).open(p("b"))),
    );
    log(
        "open dir for writing",
        res(fs::OpenOptions::new().write(true).open(p("e"))),
    );
    log("read dir as file", res(fs::read(p("e"))));
    log("long name ok", res(fs::write(p(&"n".repeat(255)), b"long")));
    log("name too long", res(fs::write(p(&"n".repeat(256)), b"long")));
    log("stat of a name too long", res(fs::metadata(p(&"n".repeat(256)))));
    log("remove long name", res(fs::remove_file(p(&"n".repeat(255)))));
    // A directory tree moved as a whole, then its contents read at the new place.
    log("mkdir tree/a/b", res(fs::create_dir_all(p("tree/a/b"))));
    log("write tree/a/b/f", res(fs::write(p("tree/a/b/f"), b"deep")));
    log("rename tree to moved", res(fs::rename(p("tree"), p("moved"))));
    log("read moved/a/b/f", read(&p("moved/a/b/f")));
    log("stat tree", res(fs::metadata(p("tree"))));
    log("rmdir moved/a/b (non-empty)", res(fs::remove_dir(p("moved/a/b"))));
    log("unlink moved/a/b/f", res(fs::remove_file(p("moved/a/b/f"))));
    log("rmdir moved/a/b", res(fs::remove_dir(p("moved/a/b"))));
    log("ls moved/a", names(&p("moved/a")));

    // Symlinks.
    log("symlink l -> b", res(std::os::unix::fs::symlink("b", p("l"))));
    log("readlink l", format!("{:?}", fs::read_link(p("l")).ok()));
    log("read through l", read(&p("l")));
    log(
        "lstat l is symlink",
        format!(
            "{:?}",
            fs::symlink_metadata(p("l")).map(|m| m.file_type().is_symlink()).ok()
        ),
    );
    log("symlink over existing", res(std::os::unix::fs::symlink("x", p("l"))));
    log("readlink of a file", res(fs::read_link(p("b"))));
    log("symlink ld -> e", res(std::os::unix::fs::symlink("e", p("ld"))));
    log("read ld/x", read(&p("ld/x")));
    log("write through ld", res(fs::write(p("ld/new"), b"via link")));
    log("read e/new", read(&p("e/new")));
    log("rmdir symlink ld", res(fs::remove_dir(p("ld"))));
    log(
        "symlink dangling",
        res(std::os::unix::fs::symlink("nowhere", p("dang"))),
    );
    log("read dangling", read(&p("dang")));
    log("write through dangling creates", res(fs::write(p("dang"), b"made")));
    log("read nowhere", read(&p("nowhere")));
    log("symlink loop", res(std::os::unix::fs::symlink("loop", p("loop"))));
    log("read loop", read(&p("loop")));
    log("rename symlink l to l2", res(fs::rename(p("l"), p("l2"))));
    log("readlink l2", format!("{:?}", fs::read_link(p("l2")).ok()));
    log("unlink symlink l2", res(fs::remove_file(p("l2"))));
    log("b survives unlink of its link", read(&p("b")));

    // Truncate up and down.
    log("write t", res(fs::write(p("t"), b"0123456789")));
    let f = fs::OpenOptions::new().write(true).open(p("t")).unwrap();
    log("truncate down", res(f.set_len(4)));
    log("truncate up", res(f.set_len(8)));
    log("write past the end after truncate", res(f.write_all_at(b"Z", 10)));
    drop(f);
    log("read t", read(&p("t")));
    log("size t", format!("{:?}", fs::metadata(p("t")).map(|m| m.len()).ok()));
    log("truncate by path", nix_res(nix::unistd::truncate(&p("t"), 2)));
    log("read t after path truncate", read(&p("t")));
    log("truncate a dir", nix_res(nix::unistd::truncate(&p("e"), 0)));
    log(
        "open with O_TRUNC",
        res(fs::OpenOptions::new().write(true).truncate(true).open(p("t"))),
    );
    log(
        "size t after O_TRUNC",
        format!("{:?}", fs::metadata(p("t")).map(|m| m.len()).ok()),
    );

    // Sparse writes: a hole, a write in the hole, reads across the hole.
    let mut f = fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(p("sparse"))
        .unwrap();
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    f.write_all(b"end").unwrap();
    f.write_all_at(b"mid", 1 << 20).unwrap();
    let mut buf = [7u8; 8];
    log(
        "pread in the hole",
        format!("{:?}", f.read_at(&mut buf, 4096).map(|n| buf[..n].to_vec()).ok()),
    );
    let mut buf = [7u8; 16];
    log(
        "pread past the end",
        format!(
            "{:?}",
            f.read_at(&mut buf, (3 << 20) + 1).map(|n| buf[..n].to_vec()).ok()
        ),
    );
    drop(f);
    let s = fs::read(p("sparse")).unwrap();
    log("sparse size", format!("{}", s.len()));
    log(
        "sparse zeros",
        format!(
            "{} {}",
            s[..1 << 20].iter().all(|b| *b == 0),
            s[(1 << 20) + 3..3 << 20].iter().all(|b| *b == 0)
        ),
    );
    log("sparse mid", format!("{:?}", &s[1 << 20..(1 << 20) + 3]));
    log("sparse tail", format!("{:?}", &s[3 << 20..]));
    let f = fs::OpenOptions::new().write(true).open(p("sparse")).unwrap();
    log("extend sparse to 10 MiB", res(f.set_len(10 << 20)));
    drop(f);
    log(
        "sparse size after extend",
        format!("{:?}", fs::metadata(p("sparse")).map(|m| m.len()).ok()),
    );

    // O_APPEND: every write lands at the end, whatever the offset.
    log("write app", res(fs::write(p("app"), b"one\n")));
    let mut f = fs::OpenOptions::new().append(true).open(p("app")).unwrap();
    log("append two", res(f.write_all(b"two\n")));
    f.seek(SeekFrom::Start(0)).unwrap();
    log("append after seek 0", res(f.write_all(b"three\n")));
    log("pwrite on O_APPEND", res(f.write_at(b"four\n", 1)));
    drop(f);
    log("read app", read(&p("app")));
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(p("app2"))
        .unwrap();
    log("append to new", res(f.write_all(b"first")));
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    log(
        "read back through O_APPEND fd",
        format!("{:?}", f.read_to_string(&mut s).map(|_| s.clone()).ok()),
    );
    drop(f);

    // A directory's link count: 2 and one per subdirectory.
    log("mkdir nl", res(fs::create_dir(p("nl"))));
    log(
        "nlink empty dir",
        format!("{:?}", fs::metadata(p("nl")).map(|m| m.nlink()).ok()),
    );
    log("mkdir nl/a", res(fs::create_dir(p("nl/a"))));
    log("mkdir nl/b", res(fs::create_dir(p("nl/b"))));
    log("file nl/f", res(fs::write(p("nl/f"), b"f")));
    log(
        "nlink two subdirs",
        format!("{:?}", fs::metadata(p("nl")).map(|m| m.nlink()).ok()),
    );
    log("rmdir nl/a", res(fs::remove_dir(p("nl/a"))));
    log(
        "nlink one subdir",
        format!("{:?}", fs::metadata(p("nl")).map(|m| m.nlink()).ok()),
    );
    log(
        "nlink file",
        format!("{:?}", fs::metadata(p("nl/f")).map(|m| m.nlink()).ok()),
    );

    // Unlink of an open file: the descriptor keeps working, the name is gone.
    log("write open", res(fs::write(p("open"), b"still here")));
    let mut f = fs::OpenOptions::new().read(true).write(true).open(p("open")).unwrap();
    log("unlink open", res(fs::remove_file(p("open"))));
    log("stat unlinked", res(fs::metadata(p("open"))));
    let mut buf = String::new();
    log(
        "read unlinked fd",
        format!("{:?}", f.read_to_string(&mut buf).map(|_| buf.clone()).ok()),
    );
    log("write unlinked fd", res(f.write_all(b"!")));
    let mut buf = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    log(
        "reread unlinked fd",
        format!("{:?}", f.read_to_string(&mut buf).map(|_| buf.clone()).ok()),
    );
    log(
        "fstat size unlinked",
        format!("{:?}", f.metadata().map(|m| m.len()).ok()),
    );
    log(
        "fstat nlink unlinked",
        format!("{:?}", f.metadata().map(|m| m.nlink()).ok()),
    );
    log("recreate the name", res(fs::write(p("open"), b"new file")));
    log("unlinked fd still reads its own", {
        let mut buf = String::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        format!("{:?}", f.read_to_string(&mut buf).map(|_| buf.clone()).ok())
    });
    drop(f);
    log("read the new open", read(&p("open")));
    // A scratch file created, written and unlinked while open, never flushed before the unlink.
    let mut f = fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(p("scratch"))
        .unwrap();
    log("write scratch", res(f.write_all(b"scratch")));
    log("unlink scratch while open", res(fs::remove_file(p("scratch"))));
    log("write unlinked scratch", res(f.write_all(b" more")));
    log("read unlinked scratch", {
        let mut buf = String::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        format!("{:?}", f.read_to_string(&mut buf).map(|_| buf.clone()).ok())
    });
    drop(f);
    log("stat scratch after close", res(fs::metadata(p("scratch"))));
    // Renamed while open: writes through the descriptor land in the renamed file.
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(p("moving"))
        .unwrap();
    log("write before rename", res(f.write_all(b"before ")));
    log("rename open file", res(fs::rename(p("moving"), p("moved-file"))));
    log("write after rename", res(f.write_all(b"after")));
    drop(f);
    log("read moved-file", read(&p("moved-file")));
    log("stat moving", res(fs::metadata(p("moving"))));

    // Modes and times.
    log("write exe", res(fs::write(p("exe"), b"#!/bin/sh\necho ran\n")));
    log(
        "chmod 755",
        res(fs::set_permissions(p("exe"), fs::Permissions::from_mode(0o755))),
    );
    log(
        "mode exe",
        format!("{:o}", fs::metadata(p("exe")).unwrap().mode() & 0o7777),
    );
    log(
        "run exe",
        format!(
            "{:?}",
            std::process::Command::new(p("exe"))
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .ok()
        ),
    );
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(p("private"))
        .unwrap();
    drop(f);
    log(
        "mode private",
        format!("{:o}", fs::metadata(p("private")).unwrap().mode() & 0o7777),
    );
    // A file with no execute bit runs for nobody, root included; access(2) says the same.
    let access = |name: &str, how: AccessFlags| nix_res(nix::unistd::access(&p(name), how));
    log(
        "access private rw",
        access("private", AccessFlags::R_OK | AccessFlags::W_OK),
    );
    log("access private x", access("private", AccessFlags::X_OK));
    log("access exe x", access("exe", AccessFlags::X_OK));
    log("access missing", access("missing", AccessFlags::F_OK));
    log("run private", res(std::process::Command::new(p("private")).output()));
    log(
        "chmod dir 700",
        res(fs::set_permissions(p("e"), fs::Permissions::from_mode(0o700))),
    );
    log(
        "mode dir",
        format!("{:o}", fs::metadata(p("e")).unwrap().mode() & 0o7777),
    );
    log(
        "chmod dir back",
        res(fs::set_permissions(p("e"), fs::Permissions::from_mode(0o755))),
    );
    // Set-ID bits: a change of owner (even to the same one) clears set-user-ID, and set-group-ID
    // where the group may execute; a write or truncation by root keeps them.
    let mode_of = |name: &str| format!("{:o}", fs::metadata(p(name)).unwrap().mode() & 0o7777);
    let (uid, gid) = fs::metadata(root).map(|m| (m.uid(), m.gid())).unwrap();
    for (name, mode) in [("setid", 0o6755), ("setgid-noexec", 0o2644)] {
        log(&format!("write {name}"), res(fs::write(p(name), b"#!/bin/sh\n")));
        let chmod = fs::set_permissions(p(name), fs::Permissions::from_mode(mode));
        log(&format!("chmod {name} {mode:o}"), res(chmod));
        log(&format!("mode {name}"), mode_of(name));
        let chown = std::os::unix::fs::chown(p(name), Some(uid), Some(gid));
        log(&format!("chown {name} to its owner"), res(chown));
        log(&format!("mode {name} after chown"), mode_of(name));
    }
    log(
        "chmod setid 6755 again",
        res(fs::set_permissions(p("setid"), fs::Permissions::from_mode(0o6755))),
    );
    let f = fs::OpenOptions::new().append(true).open(p("setid")).unwrap();
    log("append to setid", res((&f).write_all(b"echo ran\n")));
    log("truncate setid", res(f.set_len(5)));
    drop(f);
    log("mode setid after write and truncate", mode_of("setid"));
    log(
        "chown setid to nobody new",
        res(std::os::unix::fs::chown(p("setid"), None, None)),
    );
    log("mode setid after chown without owner", mode_of("setid"));
    let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_456_789);
    let f = fs::File::options().write(true).open(p("b")).unwrap();
    log("set mtime", res(f.set_modified(when)));
    drop(f);
    log(
        "mtime b",
        format!("{:?}", fs::metadata(p("b")).map(|m| (m.mtime(), m.mtime_nsec())).ok()),
    );

    // renameat2 flags.
    log("write x1", res(fs::write(p("x1"), b"one")));
    log("write x2", res(fs::write(p("x2"), b"two")));
    log(
        "noreplace onto existing",
        nix_res(renameat2(
            AT_FDCWD,
            &p("x1"),
            AT_FDCWD,
            &p("x2"),
            RenameFlags::RENAME_NOREPLACE,
        )),
    );
    log(
        "noreplace onto new",
        nix_res(renameat2(
            AT_FDCWD,
            &p("x1"),
            AT_FDCWD,
            &p("x3"),
            RenameFlags::RENAME_NOREPLACE,
        )),
    );
    log(
        "exchange files",
        nix_res(renameat2(
            AT_FDCWD,
            &p("x2"),
            AT_FDCWD,
            &p("x3"),
            RenameFlags::RENAME_EXCHANGE,
        )),
    );
    log("x2 after exchange", read(&p("x2")));
    log("x3 after exchange", read(&p("x3")));
    log(
        "exchange file and dir",
        nix_res(renameat2(
            AT_FDCWD,
            &p("x2"),
            AT_FDCWD,
            &p("moved"),
            RenameFlags::RENAME_EXCHANGE,
        )),
    );
    log("read moved after exchange", read(&p("moved")));
    log("read x2/a after exchange", names(&p("x2/a")));
    log(
        "exchange with missing",
        nix_res(renameat2(
            AT_FDCWD,
            &p("x3"),
            AT_FDCWD,
            &p("x9"),
            RenameFlags::RENAME_EXCHANGE,
        )),
    );

    owners(root, &mut log);
    special_files(root, &mut log);
    hard_links(root, &mut log);

    // Listings of every directory left.
    log("ls", names(root));
    log("ls e", names(&p("e")));
    log("ls x2", names(&p("x2")));
    log("hard link", res(fs::hard_link(p("exe"), p("exe2"))));
    out
}

fn owner(p: &Path) -> String {
    match fs::symlink_metadata(p) {
        Ok(m) => format!("{}:{}", m.uid(), m.gid()),
        Err(e) => res::<()>(Err(e)),
    }
}

/// chown, chgrp and lchown (as root): kept, and a symlink's own owner apart from its target's.
fn owners(root: &Path, log: &mut impl FnMut(&str, String)) {
    let p = |s: &str| root.join(s);
    use std::os::unix::fs::{chown, lchown};
    log("write own", res(fs::write(p("own"), b"owned")));
    log("chown own 1234:5678", res(chown(p("own"), Some(1234), Some(5678))));
    log("owner own", owner(&p("own")));
    log("chgrp own 42", res(chown(p("own"), None, Some(42))));
    log("owner own after chgrp", owner(&p("own")));
    log("symlink ownl -> own", res(std::os::unix::fs::symlink("own", p("ownl"))));
    log("lchown ownl 77:88", res(lchown(p("ownl"), Some(77), Some(88))));
    log("owner ownl", owner(&p("ownl")));
    log("owner own after lchown of its link", owner(&p("own")));
    log("chown through ownl 99:99", res(chown(p("ownl"), Some(99), Some(99))));
    log("owner own after chown through link", owner(&p("own")));
    log("owner ownl after chown through it", owner(&p("ownl")));
    log("mkdir owndir", res(fs::create_dir(p("owndir"))));
    log("chown owndir 5:6", res(chown(p("owndir"), Some(5), Some(6))));
    log("owner owndir", owner(&p("owndir")));
    log("write owndir/f", res(fs::write(p("owndir/f"), b"f")));
    log("owner of a new file (the caller's)", owner(&p("owndir/f")));
    log("chown missing", res(chown(p("missing"), Some(1), Some(1))));
}

fn kind(p: &Path) -> String {
    use std::os::unix::fs::FileTypeExt;
    match fs::symlink_metadata(p) {
        Ok(m) => {
            let t = m.file_type();
            let k = if t.is_fifo() {
                "fifo"
            } else if t.is_socket() {
                "socket"
            } else if t.is_char_device() {
                "char"
            } else if t.is_block_device() {
                "block"
            } else if t.is_file() {
                "file"
            } else {
                "other"
            };
            let rdev = m.rdev();
            format!(
                "{k} {:o} rdev {}:{}",
                m.mode() & 0o7777,
                nix::sys::stat::major(rdev),
                nix::sys::stat::minor(rdev)
            )
        }
        Err(e) => res::<()>(Err(e)),
    }
}

/// FIFOs, sockets and (as root) device nodes: made, shown with their kind and device number,
/// and a FIFO carries bytes between two threads as a local one does.
fn special_files(root: &Path, log: &mut impl FnMut(&str, String)) {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let p = |s: &str| root.join(s);
    let mode = Mode::from_bits_truncate(0o640);
    log("mkfifo fifo", nix_res(nix::unistd::mkfifo(&p("fifo"), mode)));
    log("kind fifo", kind(&p("fifo")));
    log("mkfifo fifo again", nix_res(nix::unistd::mkfifo(&p("fifo"), mode)));
    log("mknod sock", nix_res(mknod(&p("sock"), SFlag::S_IFSOCK, mode, 0)));
    log("kind sock", kind(&p("sock")));
    log(
        "mknod null",
        nix_res(mknod(&p("null"), SFlag::S_IFCHR, mode, makedev(1, 3))),
    );
    log("kind null", kind(&p("null")));
    log(
        "mknod blk",
        nix_res(mknod(&p("blk"), SFlag::S_IFBLK, mode, makedev(259, 70_000))),
    );
    log("kind blk", kind(&p("blk")));
    let path = p("fifo");
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(b"through the pipe")
    });
    let mut got = String::new();
    let read = fs::File::open(p("fifo")).and_then(|mut f| f.read_to_string(&mut got));
    log(
        "read fifo",
        format!("{:?} {:?}", read.map(|_| got), writer.join().ok().map(res)),
    );
    log("rename fifo", res(fs::rename(p("fifo"), p("fifo2"))));
    log("kind fifo2", kind(&p("fifo2")));
    log("unlink sock", res(fs::remove_file(p("sock"))));
    log("kind sock after unlink", kind(&p("sock")));
}

fn links(p: &Path) -> String {
    fs::metadata(p).map_or_else(|e| res::<()>(Err(e)), |m| m.nlink().to_string())
}

fn same_inode(a: &Path, b: &Path) -> String {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => format!("{}", a.ino() == b.ino()),
        (a, b) => format!("{} {}", res(a), res(b)),
    }
}

/// Hard links: one inode with two names, nlink counted, a write through one name read through
/// the other, a name unlinked or renamed while the other stays.
fn hard_links(root: &Path, log: &mut impl FnMut(&str, String)) {
    let p = |s: &str| root.join(s);
    log("write h1", res(fs::write(p("h1"), b"linked")));
    log("link h1 h2", res(fs::hard_link(p("h1"), p("h2"))));
    log("h1 and h2 one inode", same_inode(&p("h1"), &p("h2")));
    log("nlink h1", links(&p("h1")));
    log("nlink h2", links(&p("h2")));
    log("write through h2", res(fs::write(p("h2"), b"changed via h2")));
    log("read h1", read(&p("h1")));
    let f = fs::OpenOptions::new().append(true).open(p("h1"));
    log("append through h1", res(f.and_then(|mut f| f.write_all(b", then h1"))));
    log("read h2", read(&p("h2")));
    log(
        "chmod h1 600",
        res(fs::set_permissions(p("h1"), fs::Permissions::from_mode(0o600))),
    );
    log(
        "mode h2",
        format!("{:?}", fs::metadata(p("h2")).map(|m| m.mode() & 0o7777).ok()),
    );
    let ctime = |q: &Path| fs::metadata(q).map(|m| (m.ctime(), m.ctime_nsec())).ok();
    let before = ctime(&p("h2"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    log("unlink h1", res(fs::remove_file(p("h1"))));
    log(
        "ctime of h2 moved by the unlink of h1",
        format!("{}", ctime(&p("h2")) > before),
    );
    log("nlink h2 after unlink", links(&p("h2")));
    log("read h2 after unlink", read(&p("h2")));
    log("link h2 h3", res(fs::hard_link(p("h2"), p("h3"))));
    log("rename h3 h4", res(fs::rename(p("h3"), p("h4"))));
    log("stat h3", res(fs::metadata(p("h3"))));
    log("h2 and h4 one inode", same_inode(&p("h2"), &p("h4")));
    log("nlink h4", links(&p("h4")));
    log("write h6", res(fs::write(p("h6"), b"replaces a linked name")));
    let before = ctime(&p("h4"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    log(
        "rename h6 over h2 (h4 keeps the inode)",
        res(fs::rename(p("h6"), p("h2"))),
    );
    log(
        "ctime of h4 moved by losing h2",
        format!("{}", ctime(&p("h4")) > before),
    );
    log("nlink h4 after losing h2", links(&p("h4")));
    log("link h4 h2 again", res(fs::hard_link(p("h4"), p("h2"))));
    log("rename h4 onto its other name h2", res(fs::rename(p("h4"), p("h2"))));
    log(
        "names after renaming onto a link",
        format!("{} {}", read(&p("h2")), read(&p("h4"))),
    );
    log("mkdir hd", res(fs::create_dir(p("hd"))));
    log("link h2 into hd", res(fs::hard_link(p("h2"), p("hd/h5"))));
    log("read hd/h5", read(&p("hd/h5")));
    log("nlink h2 with three names", links(&p("h2")));
    log("rename h2 into hd", res(fs::rename(p("h2"), p("hd/h2"))));
    log("hd/h2 and hd/h5 one inode", same_inode(&p("hd/h2"), &p("hd/h5")));
    log("link onto an existing name", res(fs::hard_link(p("hd/h2"), p("b"))));
    log("link a directory", res(fs::hard_link(p("hd"), p("hd2"))));
    log("link a missing file", res(fs::hard_link(p("missing"), p("m3"))));
    log("symlink sl -> hd/h5", res(std::os::unix::fs::symlink("hd/h5", p("sl"))));
    log(
        "link a symlink",
        nix_res(nix::unistd::linkat(
            AT_FDCWD,
            &p("sl"),
            AT_FDCWD,
            &p("sl2"),
            nix::fcntl::AtFlags::empty(),
        )),
    );
    log("readlink sl2", format!("{:?}", fs::read_link(p("sl2")).ok()));
    log("link a fifo", res(fs::hard_link(p("fifo2"), p("fifo3"))));
    log("kind fifo3", kind(&p("fifo3")));
    log(
        "nlink fifo3",
        format!("{:?}", fs::symlink_metadata(p("fifo3")).map(|m| m.nlink()).ok()),
    );
    // The kernel keeps a regular file's ctime itself; a FIFO's comes from the file system.
    let fifo_ctime = |q: &Path| fs::symlink_metadata(q).map(|m| (m.ctime(), m.ctime_nsec())).ok();
    log("link fifo3 fifo4", res(fs::hard_link(p("fifo3"), p("fifo4"))));
    let before = fifo_ctime(&p("fifo3"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    log("unlink fifo4", res(fs::remove_file(p("fifo4"))));
    log(
        "ctime of fifo3 moved by the unlink of fifo4",
        format!("{}", fifo_ctime(&p("fifo3")) > before),
    );
    log("link fifo3 fifo5", res(fs::hard_link(p("fifo3"), p("fifo5"))));
    log(
        "mkfifo fifo6",
        nix_res(nix::unistd::mkfifo(
            &p("fifo6"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )),
    );
    let before = fifo_ctime(&p("fifo3"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    log("rename fifo6 over fifo5", res(fs::rename(p("fifo6"), p("fifo5"))));
    log(
        "ctime of fifo3 moved by losing fifo5",
        format!("{}", fifo_ctime(&p("fifo3")) > before),
    );
    // An open file keeps its bytes when one of its names goes, and nlink counts down.
    let f = fs::File::open(p("hd/h5")).unwrap();
    log("unlink hd/h5 while open", res(fs::remove_file(p("hd/h5"))));
    log(
        "fstat nlink after unlink of one name",
        format!("{:?}", f.metadata().map(|m| m.nlink()).ok()),
    );
    log("unlink hd/h2 while open", res(fs::remove_file(p("hd/h2"))));
    log(
        "fstat nlink after unlink of the last",
        format!("{:?}", f.metadata().map(|m| m.nlink()).ok()),
    );
    drop(f);
}
