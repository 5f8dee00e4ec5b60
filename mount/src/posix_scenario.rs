//! The POSIX edge-case scenario run on a mount and on a plain temporary directory, whose
//! results are compared line by line and errno by errno: rename over files and directories
//! (with RENAME_NOREPLACE and RENAME_EXCHANGE), symlinks, truncate up and down, sparse writes,
//! O_APPEND, unlink and rename of open files, modes and mtimes, long names, and hard links
//! last (the one documented difference: EPERM on a mount).
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

    // Listings of every directory left.
    log("ls", names(root));
    log("ls e", names(&p("e")));
    log("ls x2", names(&p("x2")));
    // Hard links last: the one documented difference.
    log("hard link", res(fs::hard_link(p("exe"), p("exe2"))));
    out
}
