//! A mount as a shared POSIX workspace, through the real server: made by root with
//! `--allow-other`, used by an unprivileged user, with owners, FIFOs, device nodes and hard
//! links that outlive the mount, a checkpoint and restore, and a fork.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, fuse_available};

const NOBODY: u32 = 65534;

/// Run `script` with `sh -c` as uid and gid 65534 (std drops root's supplementary groups when
/// it sets the uid); its exit code and what it printed.
fn as_nobody(script: &str) -> (i32, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn stat(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn root_only() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    fs::metadata("/proc/self").unwrap().uid()
}

/// What the shared workspace holds, checked on `root` (a mount of the session, a later one, or
/// of a fork or a restore).
fn check_state(root: &Path, log: &dyn Fn() -> String) {
    let owned = stat(&root.join("owned"));
    assert_eq!((owned.uid(), owned.gid()), (1000, 1001), "chown kept\n{}", log());
    let theirs = stat(&root.join("shared/by-nobody"));
    assert_eq!(
        (theirs.uid(), theirs.gid()),
        (NOBODY, NOBODY),
        "the creator owns its file"
    );
    let link = stat(&root.join("ln-target"));
    assert_eq!((link.uid(), link.gid()), (7, 8), "lchown of a symlink kept");
    assert!(stat(&root.join("pipe")).file_type().is_fifo());
    let dev = stat(&root.join("null"));
    assert!(dev.file_type().is_char_device(), "{:?}", dev.file_type());
    assert_eq!(dev.rdev(), libc::makedev(1, 3));
    let (a, b) = (stat(&root.join("a")), stat(&root.join("shared/b")));
    assert_eq!(a.ino(), b.ino(), "two names of one file are one inode");
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    assert_eq!(
        fs::read(root.join("shared/b")).unwrap(),
        fs::read(root.join("a")).unwrap()
    );
}

#[test]
fn a_mount_made_with_allow_other_is_a_shared_posix_workspace_that_outlives_it() {
    if !fuse_available() {
        return;
    }
    if !root_only() {
        // Switching users needs root; CI runs as root.
        assert!(std::env::var("CI").is_err(), "the shared-workspace test needs root");
        return;
    }
    let env = TestEnv::new();
    // Other users must reach the mount point through the test's home.
    fs::set_permissions(env.home(), fs::Permissions::from_mode(0o755)).unwrap();
    let id = env.new_session();
    let dir = env.home().join("m");
    let m = Mount::with_args(&env, &id, &dir, &["--allow-other"]);
    let p = |s: &str| m.path(s);

    // Root's files, and a directory anyone may write.
    fs::write(p("secret"), b"root only").unwrap();
    fs::set_permissions(p("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(p("public"), b"anyone").unwrap();
    fs::set_permissions(p("public"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(p("shared")).unwrap();
    fs::set_permissions(p("shared"), fs::Permissions::from_mode(0o777)).unwrap();

    // The unprivileged user: the kernel checks mode, uid and gid on the mount.
    let root = m.root().display().to_string();
    let (code, out) = as_nobody(&format!("cat {root}/public"));
    assert_eq!((code, out.as_str()), (0, "anyone"), "{}", m.log());
    let (code, out) = as_nobody(&format!("cat {root}/secret"));
    assert_ne!(code, 0, "nobody read a 0600 file of root's");
    assert!(out.contains("Permission denied"), "{out}");
    let (code, out) = as_nobody(&format!("chown {NOBODY} {root}/public"));
    assert_ne!(code, 0, "nobody took root's file");
    assert!(out.contains("Operation not permitted"), "{out}");
    let (code, out) = as_nobody(&format!("echo mine > {root}/shared/by-nobody"));
    assert_eq!(code, 0, "{out}\n{}", m.log());
    let (code, out) = as_nobody(&format!("echo x > {root}/not-writable"));
    assert_ne!(code, 0, "nobody wrote in root's 0755 directory");
    assert!(out.contains("Permission denied"), "{out}");

    // Root sets owners, makes a FIFO, a device node and a hard link.
    fs::write(p("owned"), b"theirs now").unwrap();
    std::os::unix::fs::chown(p("owned"), Some(1000), Some(1001)).unwrap();
    std::os::unix::fs::symlink("owned", p("ln-target")).unwrap();
    std::os::unix::fs::lchown(p("ln-target"), Some(7), Some(8)).unwrap();
    for (tool, args) in [
        ("mkfifo", &["-m", "644", "pipe"][..]),
        ("mknod", &["-m", "666", "null", "c", "1", "3"][..]),
    ] {
        let out = Command::new(tool).args(args).current_dir(m.root()).output().unwrap();
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    }
    fs::write(p("a"), b"one inode").unwrap();
    fs::hard_link(p("a"), p("shared/b")).unwrap();
    fs::write(p("shared/b"), b"written through the second name").unwrap();
    check_state(m.root(), &|| m.log());
    m.unmount();

    // Another mount of the session shows it all.
    let m = Mount::with_args(&env, &id, &dir, &["--allow-other"]);
    check_state(m.root(), &|| m.log());
    let (code, out) = as_nobody(&format!("cat {}/secret", m.root().display()));
    assert_ne!(code, 0, "the mode and owner of the secret survived: {out}");
    m.unmount();

    // A checkpoint keeps it; a restore after everything was removed brings it back.
    env.ok(&["checkpoint", "create", &id]);
    let m = Mount::new(&env, &id, &dir);
    for name in [
        "owned",
        "ln-target",
        "pipe",
        "null",
        "a",
        "shared/b",
        "shared/by-nobody",
    ] {
        fs::remove_file(m.path(name)).unwrap();
    }
    m.unmount();
    env.ok(&["checkpoint", "restore", &id, "checkpoints/1"]);
    let m = Mount::new(&env, &id, &dir);
    check_state(m.root(), &|| m.log());
    // A write after the restore still reaches both names.
    fs::write(m.path("a"), b"after the restore").unwrap();
    assert_eq!(fs::read(m.path("shared/b")).unwrap(), b"after the restore");
    m.unmount();

    // A fork shares it.
    let fork = env.ok(&["session", "fork", &id, "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = Mount::new(&env, &fork, &env.home().join("f"));
    check_state(m.root(), &|| m.log());
    assert_eq!(fs::read(m.path("shared/b")).unwrap(), b"after the restore");
    m.unmount();
}
