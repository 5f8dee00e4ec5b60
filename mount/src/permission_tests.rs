//! A mount every user may use (`--allow-other`, with the kernel's `default_permissions`): an
//! unprivileged process gets the kernel's checks by mode, owner and group, and what it creates
//! is its own. And owners, special files and hard links made through a mount come back the
//! same from a new mount of the session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::memory_backend::MemoryBackend;
use super::tests::{mount, mount_for_all};

/// The unprivileged user the checks run as.
const NOBODY: u32 = 65534;

/// Set in the environment of the test binary run again as another user (see `run_as`).
const CHILD_ENV: &str = "AETHER_TEST_PERMISSION_CHILD";

fn res<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e
            .raw_os_error()
            .map_or_else(|| e.to_string(), |c| format!("{:?}", nix::errno::Errno::from_raw(c))),
    }
}

/// The checks, run in the mount's root by `NOBODY` (the test binary run again: the workspace
/// has no unsafe code for a fork), one line each.
fn checks() -> Vec<(&'static str, String)> {
    use nix::sys::stat::futimens;
    use nix::sys::time::TimeSpec;
    use std::os::unix::fs::chown;
    let chmod = |name: &str, mode: u32| fs::set_permissions(name, fs::Permissions::from_mode(mode));
    let times =
        |name: &str, t: TimeSpec| fs::File::open(name).and_then(|f| futimens(&f, &t, &t).map_err(std::io::Error::from));
    let explicit = TimeSpec::new(1_000_000, 0);
    let write = |name: &str| {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(name)
    };
    vec![
        ("read a 0600 file of root's", res(fs::File::open("secret"))),
        ("read a 0644 file of root's", res(fs::File::open("public"))),
        ("write a 0644 file of root's", res(write("public"))),
        (
            "chown a file of root's",
            res(chown("public", Some(NOBODY), Some(NOBODY))),
        ),
        ("give away its own file", res(chown("theirs", Some(0), None))),
        (
            "chgrp its own file to a group it is not in",
            res(chown("theirs", None, Some(0))),
        ),
        (
            "chgrp its own file to its group",
            res(chown("theirs", None, Some(NOBODY))),
        ),
        ("chmod a file of root's", res(chmod("public", 0o666))),
        ("chmod its own file", res(chmod("theirs", 0o640))),
        (
            "chmod g+s its own file of a group it is not in",
            res(chmod("other-group", 0o2644)),
        ),
        ("set times of root's file", res(times("public", explicit))),
        (
            "touch root's file it may not write",
            res(times("public", TimeSpec::UTIME_NOW)),
        ),
        ("set times of its own file", res(times("theirs", explicit))),
        ("create in root's 0755 directory", res(write("new"))),
        ("create in a 0777 directory", res(write("shared/mine"))),
        ("mkdir in a 0777 directory", res(fs::create_dir("shared/sub"))),
    ]
}

/// What `checks` gives when run by `uid`:`gid` (no other groups) in `dir`.
fn run_as(dir: &Path, uid: u32, gid: u32) -> Vec<String> {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "permission_tests::checks_as_another_user", "--nocapture"])
        .env(CHILD_ENV, "1")
        .current_dir(dir)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CHECK "))
        .map(str::to_owned)
        .collect()
}

/// Not a test of its own: the other user's side of the next one.
#[test]
fn checks_as_another_user() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    for (what, result) in checks() {
        println!("CHECK {what}: {result}");
    }
}

#[test]
fn another_user_gets_the_kernels_checks_by_mode_owner_and_group() {
    let backend = Arc::new(MemoryBackend::new());
    let m = mount_for_all(backend.clone());
    let root = m.dir.path();
    let p = |s: &str| root.join(s);
    let set_mode = |name: &str, mode: u32| fs::set_permissions(p(name), fs::Permissions::from_mode(mode)).unwrap();
    fs::write(p("secret"), b"root only").unwrap();
    set_mode("secret", 0o600);
    fs::write(p("public"), b"for all").unwrap();
    set_mode("public", 0o644);
    fs::write(p("theirs"), b"nobody's").unwrap();
    std::os::unix::fs::chown(p("theirs"), Some(NOBODY), Some(NOBODY)).unwrap();
    fs::write(p("other-group"), b"nobody's, root's group").unwrap();
    std::os::unix::fs::chown(p("other-group"), Some(NOBODY), Some(0)).unwrap();
    fs::create_dir(p("shared")).unwrap();
    set_mode("shared", 0o777);
    let got = run_as(root, NOBODY, NOBODY);
    let want = [
        "read a 0600 file of root's: EACCES",
        "read a 0644 file of root's: ok",
        "write a 0644 file of root's: EACCES",
        "chown a file of root's: EPERM",
        "give away its own file: EPERM",
        "chgrp its own file to a group it is not in: EPERM",
        "chgrp its own file to its group: ok",
        "chmod a file of root's: EPERM",
        "chmod its own file: ok",
        "chmod g+s its own file of a group it is not in: ok",
        "set times of root's file: EPERM",
        "touch root's file it may not write: EACCES",
        "set times of its own file: ok",
        "create in root's 0755 directory: EACCES",
        "create in a 0777 directory: ok",
        "mkdir in a 0777 directory: ok",
    ];
    assert_eq!(got, want);
    // What it made is its own, here and on the server.
    for name in ["shared/mine", "shared/sub"] {
        let meta = fs::metadata(p(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY), "{name}");
    }
    let theirs = fs::metadata(p("theirs")).unwrap();
    assert_eq!(theirs.mode() & 0o7777, 0o640);
    assert_eq!(theirs.mtime(), 1_000_000);
    let mode = fs::metadata(p("other-group")).unwrap().mode() & 0o7777;
    assert_eq!(
        mode, 0o644,
        "set-group-ID cleared: the caller is not in the file's group"
    );
    m.synced();
    for name in ["shared/mine", "shared/sub", "theirs"] {
        assert_eq!(backend.owner(name), Some((Some(NOBODY), Some(NOBODY))), "{name}");
    }
    assert_eq!(
        backend.owner("public"),
        Some((None, None)),
        "root's own: the mount's user"
    );
}

/// One line per entry: kind, mode, owner, device number, names.
fn describe(root: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| {
            let m = fs::symlink_metadata(root.join(name)).unwrap();
            format!(
                "{name}: {:o} {}:{} rdev {} nlink {}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.rdev(),
                m.nlink()
            )
        })
        .collect()
}

#[test]
fn owners_special_files_and_links_come_back_from_a_new_mount() {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_secs(5));
    let root = m.dir.path().to_path_buf();
    let p = |s: &str| root.join(s);
    fs::write(p("f"), b"one file, two names").unwrap();
    std::os::unix::fs::chown(p("f"), Some(1000), Some(2000)).unwrap();
    fs::create_dir(p("d")).unwrap();
    std::os::unix::fs::chown(p("d"), None, Some(300)).unwrap();
    fs::set_permissions(p("d"), fs::Permissions::from_mode(0o2775)).unwrap();
    // A set-group-ID directory gives new entries its group, and new directories its bit.
    fs::write(p("d/new"), b"n").unwrap();
    fs::create_dir(p("d/sub")).unwrap();
    fs::hard_link(p("f"), p("d/g")).unwrap();
    fs::hard_link(p("f"), p("h")).unwrap();
    fs::remove_file(p("h")).unwrap();
    nix::unistd::mkfifo(&p("d/fifo"), Mode::from_bits_truncate(0o620)).unwrap();
    mknod(
        &p("tty"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        makedev(4, 64),
    )
    .unwrap();
    std::os::unix::fs::chown(p("tty"), Some(0), Some(5)).unwrap();
    std::os::unix::fs::symlink("f", p("l")).unwrap();
    std::os::unix::fs::lchown(p("l"), Some(7), Some(8)).unwrap();
    let names = ["f", "d", "d/new", "d/sub", "d/g", "d/fifo", "tty", "l"];
    let before = describe(&root, &names);
    let same_inode =
        |root: &Path| fs::metadata(root.join("f")).unwrap().ino() == fs::metadata(root.join("d/g")).unwrap().ino();
    assert!(same_inode(&root));
    let sgid = |r: &str| fs::metadata(root.join(r)).unwrap().mode() & libc::S_ISGID;
    assert_ne!(sgid("d/sub"), 0, "{before:#?}");
    assert_eq!(fs::metadata(p("d/new")).unwrap().gid(), 300);
    m.synced();
    drop(m);

    let again = mount(backend, Duration::from_secs(5));
    let after = describe(again.dir.path(), &names);
    assert_eq!(before, after);
    assert!(
        same_inode(again.dir.path()),
        "two names of one file are one inode again"
    );
    // A write through one name is read through the other at once.
    fs::write(again.dir.path().join("d/g"), b"changed through d/g").unwrap();
    assert_eq!(fs::read(again.dir.path().join("f")).unwrap(), b"changed through d/g");
}
