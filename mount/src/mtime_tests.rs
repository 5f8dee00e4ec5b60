//! Times set through a real kernel mount (utimensat: `touch -d`, `tar -x`, `cp -p`) are changes
//! of the session: they reach the server after the bytes they follow, a listing does not
//! revert them, and a remount shows them to the nanosecond.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::memory_backend::MemoryBackend;
use super::tests::mount;

/// 2001-02-03 04:05:06.123456789 UTC.
const T1: i64 = 981_173_106_123_456_789;
/// 1999-12-31 23:59:58.5 UTC.
const T2: i64 = 946_684_798_500_000_000;

fn mtime_ns(p: &std::path::Path) -> i64 {
    let m = fs::symlink_metadata(p).unwrap();
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn touch(args: &[&str], path: &std::path::Path) -> std::process::ExitStatus {
    Command::new("touch").args(args).arg(path).status().unwrap()
}

#[test]
fn times_set_through_the_mount_reach_the_server_and_a_remount_shows_them() {
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_secs(5));
    let p = |name: &str| m.dir.path().join(name);
    fs::create_dir(p("d")).unwrap();
    for i in 0..20 {
        // As `tar -x` does: write and close a file, then set its times at once.
        fs::write(p(&format!("d/f{i}")), format!("file {i}")).unwrap();
        assert!(touch(&["-d", "2001-02-03 04:05:06.123456789 UTC"], &p(&format!("d/f{i}"))).success());
    }
    // `cp -p`: the times through the open file (futimens, atime and mtime).
    let f = fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(p("copied"))
        .unwrap();
    std::io::Write::write_all(&mut &f, b"copied").unwrap();
    let when = UNIX_EPOCH + Duration::from_nanos(T2 as u64);
    f.set_times(fs::FileTimes::new().set_accessed(when).set_modified(when))
        .unwrap();
    drop(f);
    assert!(touch(&["-d", "1999-12-31 23:59:58.5 UTC"], &p("d")).success());
    fs::create_dir(p("e")).unwrap();
    std::os::unix::fs::symlink("d/f0", p("e/link")).unwrap();
    assert!(touch(&["-h", "-d", "2001-02-03 04:05:06.123456789 UTC"], &p("e/link")).success());

    // A time the session cannot keep is refused, and changes nothing.
    assert!(!touch(&["-d", "1960-01-01 UTC"], &p("d/f1")).success());

    let check = |dir: &std::path::Path, what: &str| {
        for i in 0..20 {
            assert_eq!(mtime_ns(&dir.join(format!("d/f{i}"))), T1, "{what}: d/f{i}");
        }
        assert_eq!(mtime_ns(&dir.join("copied")), T2, "{what}: copied");
        assert_eq!(mtime_ns(&dir.join("d")), T2, "{what}: d");
        assert_eq!(mtime_ns(&dir.join("e/link")), T1, "{what}: e/link");
    };
    check(m.dir.path(), "this mount");
    // Listing again (as `ls`, `git status`, `make` do) keeps them.
    for _ in 0..3 {
        let n = fs::read_dir(p("d")).unwrap().count();
        assert_eq!(n, 20);
        check(m.dir.path(), "after a listing");
    }
    m.synced();
    for i in 0..20 {
        assert_eq!(
            backend.mtime(&format!("d/f{i}")),
            Some(T1),
            "the server holds d/f{i}'s time"
        );
        assert_eq!(backend.file(&format!("d/f{i}")), Some(format!("file {i}").into_bytes()));
    }
    assert_eq!(backend.mtime("copied"), Some(T2));
    assert_eq!(backend.mtime("d"), Some(T2));
    check(m.dir.path(), "after the server acknowledged");
    drop(m);

    let again = mount(backend.clone(), Duration::from_secs(5));
    check(again.dir.path(), "a remount");
    // A later write is a later time again (the time is the file's, not fixed to it).
    fs::write(again.dir.path().join("d/f3"), b"rewritten").unwrap();
    again.synced();
    assert!(mtime_ns(&again.dir.path().join("d/f3")) > T1);
    assert!(backend.mtime("d/f3").unwrap() > T1);
}

/// What git records of a file in its index (`ino`, mtime, ctime, size), as the mount shows it.
fn git_stat(p: &std::path::Path) -> (u64, i64, i64, u64) {
    let m = fs::symlink_metadata(p).unwrap();
    (
        m.ino(),
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        m.size(),
    )
}

/// Path -> [`git_stat`] of every file and symlink below `root`.
fn stats(root: &std::path::Path) -> std::collections::BTreeMap<String, (u64, i64, i64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, git_stat(&path));
            }
        }
    }
    out
}

/// Issue 33, item 2: what `stat` shows for a file the mount wrote (the kernel's own times at
/// its close, the mount's inode number) is what the next mount shows, so a checkout written in
/// one mount is not re-hashed by git in the next. Before, the server stamped every upload with
/// its own time.
#[test]
fn files_written_through_a_mount_show_the_same_stat_in_the_next_mount() {
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_secs(5));
    let p = |name: &str| m.dir.path().join(name);
    fs::create_dir_all(p("src/deep")).unwrap();
    // Small files as a checkout writes them (open, write, close), some of them large enough to
    // be sent on their own rather than in a batch.
    for i in 0..30 {
        fs::write(p(&format!("src/f{i}")), format!("file {i}\n")).unwrap();
    }
    fs::write(p("src/deep/big"), vec![7u8; 3 << 20]).unwrap();
    // A file kept open and written in pieces with pauses: the mount may send its bytes before
    // the kernel sends the times of the last write at the close.
    {
        let mut f = fs::File::create(p("src/slow")).unwrap();
        for i in 0..3 {
            std::io::Write::write_all(&mut f, format!("piece {i}\n").as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(400));
        }
    }
    std::os::unix::fs::symlink("f0", p("src/link")).unwrap();
    m.synced();
    let written = stats(m.dir.path());
    assert_eq!(written.len(), 33);
    for (path, (_, mtime, ctime, _)) in &written {
        assert_eq!(
            mtime, ctime,
            "{path}: an entry only written shows its write time as ctime"
        );
        // The server holds the times the mount showed.
        assert_eq!(backend.mtime(path), Some(*mtime), "the server's time of {path}");
    }
    drop(m);

    let again = mount(backend.clone(), Duration::from_secs(5));
    let seen = stats(again.dir.path());
    for (path, want) in &written {
        let got = seen.get(path).unwrap_or_else(|| panic!("{path} is gone"));
        assert_eq!(got, want, "{path}: (ino, mtime, ctime, size) in the next mount");
    }
}
