//! The mount against an in-memory server: POSIX behaviour compared with a local directory,
//! laziness, invalidation, and what happens when the server goes away.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;
use super::content_cache::ContentCache;
use super::events::RemoteEvent;
use super::fs::{AetherFs, MountConfig};
use super::memory_backend::MemoryBackend;
use super::writeback::Writeback;

struct Mounted {
    session: Option<fuser::BackgroundSession>,
    fs: AetherFs,
    dir: tempfile::TempDir,
    backend: Arc<MemoryBackend>,
    writeback: Arc<Writeback>,
    _work: tempfile::TempDir,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

fn mount(backend: Arc<MemoryBackend>, retry: Duration) -> Mounted {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ContentCache::new(64 << 20, Some((work.path().join("cache"), 1 << 30))).unwrap());
    let wb = Arc::new(Writeback::start(
        backend.clone() as Arc<dyn Backend>,
        retry,
        work.path().join("lost"),
    ));
    let cfg = MountConfig {
        read_only: false,
        ttl: Duration::from_secs(1),
        watched_ttl: Duration::from_secs(3600),
        uid: 0,
        gid: 0,
        staging_dir: work.path().join("staging"),
    };
    let fs = AetherFs::new(backend.clone() as Arc<dyn Backend>, cache, wb.clone(), cfg).unwrap();
    let handle = fs.clone();
    let invalidator = fs.invalidator();
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("aether-test".into())];
    config.n_threads = Some(4);
    let session = fuser::spawn_mount(fs, dir.path(), &config).unwrap();
    invalidator.connect(session.notifier());
    Mounted {
        session: Some(session),
        fs: handle,
        dir,
        backend,
        writeback: wb,
        _work: work,
    }
}

fn errno_of(r: std::io::Result<impl Sized>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!(
            "err {}",
            e.raw_os_error()
                .map_or_else(|| e.to_string(), |c| nix::errno::Errno::from_raw(c).to_string())
        ),
    }
}

/// POSIX edge cases; returns one line per observable result.
fn scenario(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let p = |s: &str| root.join(s);
    let mut log = |what: &str, r: String| out.push(format!("{what}: {r}"));

    log("write a", errno_of(fs::write(p("a"), b"hello")));
    log("read a", format!("{:?}", fs::read(p("a")).ok()));
    log("write b", errno_of(fs::write(p("b"), b"bee")));
    log("rename a over b", errno_of(fs::rename(p("a"), p("b"))));
    log("read b", format!("{:?}", fs::read(p("b")).ok()));
    log("stat a", errno_of(fs::metadata(p("a"))));
    log("mkdir d", errno_of(fs::create_dir(p("d"))));
    log("mkdir d again", errno_of(fs::create_dir(p("d"))));
    log("mkdir e", errno_of(fs::create_dir(p("e"))));
    log("write d/x", errno_of(fs::write(p("d/x"), b"x")));
    log("rename e over d (non-empty)", errno_of(fs::rename(p("e"), p("d"))));
    log("rename d over e (empty)", errno_of(fs::rename(p("d"), p("e"))));
    log("read e/x", format!("{:?}", fs::read(p("e/x")).ok()));
    log("rename b over dir e", errno_of(fs::rename(p("b"), p("e"))));
    log("rename dir e over file b", errno_of(fs::rename(p("e"), p("b"))));
    log("mkdir e/sub", errno_of(fs::create_dir(p("e/sub"))));
    log("rename e into e/sub", errno_of(fs::rename(p("e"), p("e/sub/in"))));
    log("rmdir e (non-empty)", errno_of(fs::remove_dir(p("e"))));
    log("rmdir file b", errno_of(fs::remove_dir(p("b"))));
    log("unlink dir e", errno_of(fs::remove_file(p("e"))));
    log("unlink missing", errno_of(fs::remove_file(p("missing"))));
    // Symlinks.
    log("symlink l -> b", errno_of(std::os::unix::fs::symlink("b", p("l"))));
    log("readlink l", format!("{:?}", fs::read_link(p("l")).ok()));
    log("read through l", format!("{:?}", fs::read(p("l")).ok()));
    log(
        "lstat l is symlink",
        format!(
            "{}",
            fs::symlink_metadata(p("l"))
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false)
        ),
    );
    log("symlink ld -> e", errno_of(std::os::unix::fs::symlink("e", p("ld"))));
    log("read ld/x", format!("{:?}", fs::read(p("ld/x")).ok()));
    log(
        "symlink dangling",
        errno_of(std::os::unix::fs::symlink("nowhere", p("dang"))),
    );
    log("read dangling", errno_of(fs::read(p("dang"))));
    // Truncate up and down.
    log("write t", errno_of(fs::write(p("t"), b"0123456789")));
    let f = fs::OpenOptions::new().write(true).open(p("t")).unwrap();
    log("truncate down", errno_of(f.set_len(4)));
    log("truncate up", errno_of(f.set_len(8)));
    drop(f);
    log("read t", format!("{:?}", fs::read(p("t")).ok()));
    log("size t", format!("{:?}", fs::metadata(p("t")).map(|m| m.len()).ok()));
    // Sparse write.
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(p("sparse"))
        .unwrap();
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    f.write_all(b"end").unwrap();
    drop(f);
    let s = fs::read(p("sparse")).unwrap();
    log("sparse size", format!("{}", s.len()));
    log("sparse zeros", format!("{}", s[..3 << 20].iter().all(|b| *b == 0)));
    log("sparse tail", format!("{:?}", &s[3 << 20..]));
    // O_APPEND.
    fs::write(p("app"), b"one\n").unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(p("app")).unwrap();
    f.write_all(b"two\n").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"three\n").unwrap();
    drop(f);
    log(
        "append",
        format!("{:?}", String::from_utf8(fs::read(p("app")).unwrap())),
    );
    // Unlink of an open file.
    fs::write(p("open"), b"still here").unwrap();
    let mut f = fs::OpenOptions::new().read(true).write(true).open(p("open")).unwrap();
    log("unlink open", errno_of(fs::remove_file(p("open"))));
    log("stat unlinked", errno_of(fs::metadata(p("open"))));
    let mut buf = String::new();
    f.read_to_string(&mut buf).unwrap();
    log("read unlinked fd", buf.clone());
    log("write unlinked fd", errno_of(f.write_all(b"!")));
    drop(f);
    log("stat after close", errno_of(fs::metadata(p("open"))));
    // Modes.
    fs::write(p("exe"), b"#!/bin/sh\n").unwrap();
    log(
        "chmod 755",
        errno_of(fs::set_permissions(p("exe"), fs::Permissions::from_mode(0o755))),
    );
    log(
        "mode exe",
        format!("{:o}", fs::metadata(p("exe")).unwrap().mode() & 0o777),
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
        format!("{:o}", fs::metadata(p("private")).unwrap().mode() & 0o777),
    );
    // renameat2 flags.
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    fs::write(p("x1"), b"one").unwrap();
    fs::write(p("x2"), b"two").unwrap();
    log(
        "noreplace onto existing",
        errno_of(
            renameat2(AT_FDCWD, &p("x1"), AT_FDCWD, &p("x2"), RenameFlags::RENAME_NOREPLACE)
                .map_err(std::io::Error::from),
        ),
    );
    log(
        "noreplace onto new",
        errno_of(
            renameat2(AT_FDCWD, &p("x1"), AT_FDCWD, &p("x3"), RenameFlags::RENAME_NOREPLACE)
                .map_err(std::io::Error::from),
        ),
    );
    log(
        "exchange",
        errno_of(
            renameat2(AT_FDCWD, &p("x2"), AT_FDCWD, &p("x3"), RenameFlags::RENAME_EXCHANGE)
                .map_err(std::io::Error::from),
        ),
    );
    log("x2 after exchange", format!("{:?}", fs::read(p("x2")).ok()));
    log("x3 after exchange", format!("{:?}", fs::read(p("x3")).ok()));
    log(
        "exchange with missing",
        errno_of(
            renameat2(AT_FDCWD, &p("x2"), AT_FDCWD, &p("x9"), RenameFlags::RENAME_EXCHANGE)
                .map_err(std::io::Error::from),
        ),
    );
    // Listing.
    let mut names: Vec<String> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    log("ls", names.join(","));
    // Hard links last: the one documented difference.
    log("hard link", errno_of(fs::hard_link(p("exe"), p("exe2"))));
    out
}

#[test]
fn posix_edge_cases_match_a_local_directory() {
    let local = tempfile::tempdir().unwrap();
    let expected = scenario(local.path());
    let m = mount(Arc::new(MemoryBackend::new()), Duration::from_secs(5));
    let got = scenario(m.dir.path());
    // Hard links are the one documented difference.
    let differences: Vec<_> = expected.iter().zip(&got).filter(|(e, g)| e != g).collect();
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert!(differences[0].1.starts_with("hard link: err EPERM"), "{differences:#?}");
    assert_eq!(expected.len(), got.len());

    // Everything reaches the server once the queue drains.
    m.writeback.wait(m.writeback.last_seq()).unwrap();
    assert_eq!(m.backend.file("b").as_deref(), Some(&b"hello"[..]));
    assert_eq!(m.backend.file("e/x").as_deref(), Some(&b"x"[..]));
    assert_eq!(m.backend.file("x2").as_deref(), Some(&b"one"[..]));
    assert_eq!(m.backend.file("x3").as_deref(), Some(&b"two"[..]));
    assert_eq!(m.backend.file("app").as_deref(), Some(&b"one\ntwo\nthree\n"[..]));
    assert_eq!(m.backend.file("t").as_deref(), Some(&b"0123\0\0\0\0"[..]));
    assert_eq!(m.backend.file("open"), None);
    assert_eq!(m.backend.mode("exe"), Some(0o755));
    assert_eq!(m.backend.mode("private"), Some(0o600));
    assert!(m.writeback.rejected().is_empty(), "{:?}", m.writeback.rejected());
}

#[test]
fn reads_are_lazy_and_cached_by_content() {
    let backend = Arc::new(MemoryBackend::new());
    let big: Vec<u8> = (0..(5u32 << 20)).map(|i| (i % 253) as u8).collect();
    backend
        .apply(&super::backend::RemoteOp::Mkdir { path: "dir".into() })
        .unwrap();
    backend.write_external("dir/big", &big);
    backend.write_external("small", b"tiny");
    let m = mount(backend.clone(), Duration::from_secs(5));
    assert_eq!(backend.reads.load(std::sync::atomic::Ordering::Relaxed), 0);
    let mut f = fs::File::open(m.dir.path().join("dir/big")).unwrap();
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    let mut buf = vec![0; 100];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(buf, big[3 << 20..(3 << 20) + 100]);
    let reads = backend.reads.load(std::sync::atomic::Ordering::Relaxed);
    assert!(reads <= 2, "a 100-byte read fetched {reads} blocks");
    assert_eq!(fs::read(m.dir.path().join("dir/big")).unwrap(), big);
    assert_eq!(fs::read(m.dir.path().join("small")).unwrap(), b"tiny");
}

#[test]
fn external_changes_show_up_within_a_second() {
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("f", b"v1");
    backend.write_external("same", b"aaaa");
    let m = mount(backend.clone(), Duration::from_secs(5));
    assert_eq!(fs::read(m.dir.path().join("f")).unwrap(), b"v1");
    assert_eq!(fs::read(m.dir.path().join("same")).unwrap(), b"aaaa");
    backend.write_external("f", b"version 2");
    // Same size: only an invalidation drops the kernel's cached pages.
    backend.write_external("same", b"bbbb");
    backend.write_external("g", b"new");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fs::read(m.dir.path().join("f")).unwrap(), b"version 2");
    assert_eq!(fs::read(m.dir.path().join("g")).unwrap(), b"new");
    assert_eq!(fs::read(m.dir.path().join("same")).unwrap(), b"bbbb");
}

#[test]
fn fsync_fails_with_eio_when_the_server_stays_away_and_keeps_the_data() {
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_millis(500));
    fs::read_dir(m.dir.path()).unwrap().for_each(drop);
    backend.set_down(true);
    let mut f = fs::File::create(m.dir.path().join("precious")).unwrap();
    f.write_all(b"do not lose me").unwrap();
    let err = f.sync_all().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    drop(f);
    backend.set_down(false);
    m.writeback
        .wait_for(m.writeback.last_seq(), Duration::from_secs(10))
        .unwrap();
    assert_eq!(backend.file("precious").as_deref(), Some(&b"do not lose me"[..]));
}

fn event(kind: &str, path: &str, detail: serde_json::Value) -> RemoteEvent {
    RemoteEvent::parse(kind, Some(path), &detail.to_string())
}

#[test]
fn with_the_watch_connected_only_foreign_changes_invalidate_and_they_do_at_once() {
    use std::sync::atomic::Ordering::Relaxed;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("theirs", b"v1");
    let m = mount(backend.clone(), Duration::from_secs(5));
    m.fs.set_watching(true);
    let p = |s: &str| m.dir.path().join(s);
    fs::create_dir(p("sub")).unwrap();
    fs::write(p("sub/mine"), b"written here").unwrap();
    assert_eq!(fs::read(p("theirs")).unwrap(), b"v1");
    m.writeback.wait(m.writeback.last_seq()).unwrap();
    // The mount's own changes come back on the stream: nothing is listed again.
    let oid = backend.oid("sub/mine").unwrap();
    m.fs.apply_event(&event("mkdir", "sub", serde_json::json!(null)));
    m.fs.apply_event(&event("write", "sub/mine", serde_json::json!({"size": 12, "oid": oid})));
    let lists = backend.lists.load(Relaxed);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(fs::read(p("sub/mine")).unwrap(), b"written here");
    let names: Vec<_> = fs::read_dir(p("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["mine"]);
    assert_eq!(fs::read(p("theirs")).unwrap(), b"v1");
    assert_eq!(
        backend.lists.load(Relaxed),
        lists,
        "listed again without a foreign change"
    );

    // Someone else changes a file (same size: only an invalidation drops the kernel's pages),
    // creates one in a directory the mount never saw, and removes the mount's file.
    backend.write_external("theirs", b"v2");
    let oid = backend.oid("theirs").unwrap();
    m.fs.apply_event(&event("write", "theirs", serde_json::json!({"size": 2, "oid": oid})));
    backend
        .apply(&super::backend::RemoteOp::Mkdir { path: "new".into() })
        .unwrap();
    backend.write_external("new/deep", b"x");
    m.fs.apply_event(&event("write", "new/deep", serde_json::json!({"size": 1})));
    backend
        .apply(&super::backend::RemoteOp::Unlink {
            path: "sub/mine".into(),
        })
        .unwrap();
    m.fs.apply_event(&event("delete", "sub/mine", serde_json::json!({})));
    // The invalidations go out from their own thread: give them a moment, far less than a TTL.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(fs::read(p("theirs")).unwrap(), b"v2");
    assert_eq!(fs::read(p("new/deep")).unwrap(), b"x");
    let gone = fs::metadata(p("sub/mine")).unwrap_err();
    assert_eq!(gone.raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn uploaded_files_drop_their_local_copy_and_read_back_from_the_cache() {
    use std::sync::atomic::Ordering::Relaxed;
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_secs(5));
    for i in 0..200 {
        fs::write(m.dir.path().join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    let kept = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.dir.path().join("open"))
        .unwrap();
    kept.sync_all().unwrap();
    m.writeback.wait(m.writeback.last_seq()).unwrap();
    // Only the file still open keeps a local copy (and its descriptor). The kernel sends
    // `release` after `close` returns: allow it a moment.
    let start = std::time::Instant::now();
    while m.fs.local_files() > 1 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(m.fs.local_files(), 1);
    let reads = backend.reads.load(Relaxed);
    for i in 0..200 {
        assert_eq!(
            fs::read(m.dir.path().join(format!("f{i}"))).unwrap(),
            format!("file {i}").as_bytes()
        );
    }
    assert_eq!(
        backend.reads.load(Relaxed),
        reads,
        "small uploaded files are read from memory"
    );
    drop(kept);
    // Writing again after the upload materializes the file from the cache.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.dir.path().join("f7"))
        .unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    m.writeback.wait(m.writeback.last_seq()).unwrap();
    assert_eq!(backend.file("f7").as_deref(), Some(&b"file 7!"[..]));
}

#[test]
fn cached_missing_names_and_listings_follow_changes_from_both_sides() {
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("keep", b"k");
    backend.write_external("goes", b"g");
    let m = mount(backend.clone(), Duration::from_secs(5));
    m.fs.set_watching(true);
    let p = |s: &str| m.dir.path().join(s);
    let names = || {
        let mut v: Vec<String> = fs::read_dir(m.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    // Missing names are remembered by the kernel (negative entries); listings are kept across
    // opens. Both must still follow every change.
    for _ in 0..2 {
        assert_eq!(
            fs::metadata(p("theirs")).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        assert_eq!(fs::metadata(p("mine")).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(names(), ["goes", "keep"]);
    }
    fs::write(p("mine"), b"local").unwrap();
    assert_eq!(fs::read(p("mine")).unwrap(), b"local");
    assert_eq!(names(), ["goes", "keep", "mine"]);

    backend.write_external("theirs", b"remote");
    m.fs.apply_event(&event("write", "theirs", serde_json::json!({"size": 6})));
    backend
        .apply(&super::backend::RemoteOp::Unlink { path: "goes".into() })
        .unwrap();
    m.fs.apply_event(&event("delete", "goes", serde_json::json!({})));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(fs::read(p("theirs")).unwrap(), b"remote");
    assert_eq!(names(), ["keep", "mine", "theirs"]);
    assert_eq!(fs::metadata(p("goes")).unwrap_err().raw_os_error(), Some(libc::ENOENT));
}
