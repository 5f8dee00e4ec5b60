//! The mount against an in-memory server: POSIX behaviour compared with a local directory,
//! laziness, invalidation, and what happens when the server goes away.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;
use super::content_cache::ContentCache;
use super::events::{EventKind, MountId, RemoteEvent};
use super::fs::{AetherFs, MountConfig};
use super::fuse::{Fuse, RequestObserver};
use super::idle_upload;
use super::memory_backend::MemoryBackend;
use super::writeback::Writeback;

/// The requests the kernel sent a test mount: by kind, and the lookups, getattrs and listings
/// (what the kernel's caches could not answer).
#[derive(Clone, Default)]
struct Counts {
    seen: Arc<parking_lot::Mutex<std::collections::HashMap<&'static str, u64>>>,
    asks: Arc<std::sync::atomic::AtomicU64>,
    /// Holds the next listing between being computed and being sent: it tells the first
    /// sender, then waits for the second to send.
    hold_listing: Arc<parking_lot::Mutex<Option<ListingGate>>>,
}

type ListingGate = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

impl RequestObserver for Counts {
    fn request(&self, op: &'static str) {
        *self.seen.lock().entry(op).or_default() += 1;
    }

    fn asked(&self) {
        self.asks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn listing_ready(&self, _op: &'static str) {
        let gate = self.hold_listing.lock().take();
        if let Some((computed, release)) = gate {
            let _ = computed.send(());
            let _ = release.recv();
        }
    }
}

impl Counts {
    /// How many requests of kind `op` (`"open"`, `"setattr"`...) the kernel sent.
    fn seen(&self, op: &str) -> u64 {
        self.seen.lock().get(op).copied().unwrap_or(0)
    }

    /// How many lookups, getattrs and listings the kernel sent.
    fn asks(&self) -> u64 {
        self.asks.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub(super) struct Mounted {
    session: Option<fuser::BackgroundSession>,
    pub(super) fs: AetherFs,
    counts: Counts,
    pub(super) dir: tempfile::TempDir,
    pub(super) backend: Arc<MemoryBackend>,
    pub(super) writeback: Arc<Writeback>,
    pub(super) cache: Arc<ContentCache>,
    _work: tempfile::TempDir,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.fs.stop_warming();
            let _ = s.umount_and_join();
        }
    }
}

impl Mounted {
    /// What `sync` on the mount's root promises: every change made so far is on the server.
    pub(super) fn synced(&self) {
        fs::File::open(self.dir.path()).unwrap().sync_all().unwrap();
        self.writeback.wait(self.writeback.last_seq()).unwrap();
    }

    /// Wait up to `limit` for the server to hold `want` at `path`.
    fn server_gets(&self, path: &str, want: &[u8], limit: Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if self.backend.file(path).as_deref() == Some(want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

pub(super) fn mount(backend: Arc<MemoryBackend>, retry: Duration) -> Mounted {
    mount_with_cache(backend, retry, None)
}

/// A mount whose disk cache is `cache_dir` (its own when `None`).
pub(super) fn mount_with_cache(
    backend: Arc<MemoryBackend>,
    retry: Duration,
    cache_dir: Option<&std::path::Path>,
) -> Mounted {
    mount_with_options(backend, retry, cache_dir, false, None)
}

/// A mount every user may use, the kernel checking permissions (`aether mount --allow-other`).
pub(super) fn mount_for_all(backend: Arc<MemoryBackend>) -> Mounted {
    mount_with_options(backend, Duration::from_secs(5), None, true, None)
}

/// A mount whose new nodes are numbered as `numbering` says (a tiny span forces collisions).
pub(super) fn mount_numbered(backend: Arc<MemoryBackend>, numbering: super::ino::Numbering) -> Mounted {
    mount_with_options(backend, Duration::from_secs(5), None, false, Some(numbering))
}

/// A mount for its user only, or (`for_all`) as `aether mount --allow-other` makes it.
fn mount_with_options(
    backend: Arc<MemoryBackend>,
    retry: Duration,
    cache_dir: Option<&std::path::Path>,
    for_all: bool,
    numbering: Option<super::ino::Numbering>,
) -> Mounted {
    let work = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = cache_dir.map_or_else(|| work.path().join("cache"), std::path::Path::to_path_buf);
    let cache = Arc::new(ContentCache::new(64 << 20, Some((cache_dir, 1 << 30))).unwrap());
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
        warm_at: Some(dir.path().to_path_buf()),
        mount_id: MountId::generate(),
    };
    let mut fs = AetherFs::new(backend.clone() as Arc<dyn Backend>, cache.clone(), wb.clone(), cfg).unwrap();
    if let Some(n) = numbering {
        fs = fs.with_numbering(n);
    }
    let handle = fs.clone();
    let invalidator = fs.invalidator();
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("aether-test".into())];
    if for_all {
        config.mount_options.push(fuser::MountOption::DefaultPermissions);
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(4);
    let counts = Counts::default();
    let session = fuser::spawn_mount(Fuse::observed(fs, counts.clone()), dir.path(), &config).unwrap();
    invalidator.connect(session.notifier());
    Mounted {
        session: Some(session),
        fs: handle,
        counts,
        dir,
        backend,
        writeback: wb,
        cache,
        _work: work,
    }
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

#[test]
fn fsync_waits_for_its_own_file_not_for_changes_queued_after_it() {
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_millis(500));
    let mut f = fs::File::create(m.dir.path().join("journal")).unwrap();
    f.write_all(b"entry 1").unwrap();
    f.sync_all().unwrap();
    assert_eq!(backend.file("journal").as_deref(), Some(&b"entry 1"[..]));
    // A change to something else that cannot reach the server yet.
    backend.set_down(true);
    fs::create_dir(m.dir.path().join("elsewhere")).unwrap();
    // The journal has nothing unsent: its fsync has nothing to wait for.
    f.sync_all().unwrap();
    backend.set_down(false);
    m.writeback
        .wait_for(m.writeback.last_seq(), Duration::from_secs(10))
        .unwrap();
    assert!(backend.is_dir("elsewhere"));
}

/// An event of a change made elsewhere (not by the mount under test).
pub(super) fn event(kind: EventKind, path: &str, detail: serde_json::Value) -> RemoteEvent {
    RemoteEvent::new(kind, Some(path), &detail)
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
    m.synced();
    // The mount's own changes come back on the stream: nothing is listed again.
    let oid = backend.oid("sub/mine").unwrap();
    let mine = |e: RemoteEvent| e.by_mount(m.fs.mount_id());
    m.fs.apply_event(&mine(event(EventKind::Mkdir, "sub", serde_json::json!(null))));
    m.fs.apply_event(&mine(event(
        EventKind::Write,
        "sub/mine",
        serde_json::json!({"size": 12, "oid": oid}),
    )));
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
    m.fs.apply_event(&event(
        EventKind::Write,
        "theirs",
        serde_json::json!({"size": 2, "oid": oid}),
    ));
    backend
        .apply(&super::backend::RemoteOp::Mkdir { path: "new".into() })
        .unwrap();
    backend.write_external("new/deep", b"x");
    m.fs.apply_event(&event(EventKind::Write, "new/deep", serde_json::json!({"size": 1})));
    backend
        .apply(&super::backend::RemoteOp::Unlink {
            path: "sub/mine".into(),
        })
        .unwrap();
    m.fs.apply_event(&event(EventKind::Delete, "sub/mine", serde_json::json!({})));
    // The invalidations go out from their own thread: give them a moment, far less than a TTL.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(fs::read(p("theirs")).unwrap(), b"v2");
    assert_eq!(fs::read(p("new/deep")).unwrap(), b"x");
    let gone = fs::metadata(p("sub/mine")).unwrap_err();
    assert_eq!(gone.raw_os_error(), Some(libc::ENOENT));
}

/// A listing computed just before a change made elsewhere and sent to the kernel just after its
/// invalidation: the kernel must not keep it (it kept it for good when the directory's listing
/// was invalidated before its entry; CI saw a mount list its root without a file for 5 s).
#[test]
fn a_listing_in_flight_when_a_change_arrives_is_not_kept_by_the_kernel() {
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("a", b"a");
    let m = mount(backend.clone(), Duration::from_secs(5));
    m.fs.set_watching(true);
    let root = m.dir.path().to_path_buf();
    let names = move || -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let (computed_tx, computed) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    *m.counts.hold_listing.lock() = Some((computed_tx, release_rx));
    let first = std::thread::spawn({
        let names = names.clone();
        move || names()
    });
    computed
        .recv_timeout(Duration::from_secs(10))
        .expect("the listing was computed");
    backend.write_external("b", b"b");
    m.fs.apply_event(&event(EventKind::Write, "b", serde_json::json!({"size": 1})));
    // The invalidations go out from their own thread while the listing is held.
    std::thread::sleep(Duration::from_millis(300));
    release.send(()).unwrap();
    assert_eq!(
        first.join().unwrap(),
        ["a"],
        "the listing held was computed before the change"
    );
    let start = std::time::Instant::now();
    while names() != ["a", "b"] && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        names(),
        ["a", "b"],
        "the kernel kept the listing computed before the change"
    );
}

/// A listing the server computed before the mount's unlink reached it, answered after the
/// unlink was acknowledged: the name must not come back (it did when the mount read the
/// acknowledgement counter after the listing returned: a ghost entry, and a name that a later
/// rename of a just-closed file could not find).
#[test]
fn a_listing_overtaken_by_an_acknowledged_change_does_not_undo_it() {
    use std::os::unix::fs::MetadataExt;
    let backend = Arc::new(MemoryBackend::new());
    backend
        .apply(&super::backend::RemoteOp::Mkdir { path: "d".into() })
        .unwrap();
    backend.write_external("d/gone", b"x");
    let m = mount(backend.clone(), Duration::from_secs(5));
    m.fs.set_watching(true);
    let d = fs::metadata(m.dir.path().join("d")).unwrap().ino();
    let names = |entries: Vec<(u64, fuser::FileType, std::ffi::OsString)>| -> Vec<String> {
        entries
            .into_iter()
            .map(|(_, _, n)| n.into_string().unwrap())
            .filter(|n| n != "." && n != "..")
            .collect()
    };
    assert_eq!(names(m.fs.readdir(d, 0).unwrap()), ["gone"]);
    // A change made elsewhere makes the mount list `d` again; that listing is held at the
    // server once computed.
    backend.write_external("d/other", b"y");
    m.fs.apply_event(&event(EventKind::Write, "d/other", serde_json::json!({"size": 1})));
    let (computed_tx, computed) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    backend.hold_next_list(computed_tx, release_rx);
    let fs2 = m.fs.clone();
    let listing = std::thread::spawn(move || fs2.readdir(d, 0).map(names));
    computed
        .recv_timeout(Duration::from_secs(10))
        .expect("the listing was computed");
    m.fs.unlink(d, std::ffi::OsStr::new("gone")).unwrap();
    m.writeback.wait(m.writeback.last_seq()).unwrap();
    assert!(backend.file("d/gone").is_none(), "the server took the unlink");
    release.send(()).unwrap();
    let listed = listing.join().unwrap().unwrap();
    assert_eq!(
        listed,
        ["other"],
        "the held listing brought back what the mount removed"
    );
    let gone = m.fs.lookup(d, std::ffi::OsStr::new("gone"));
    assert!(matches!(gone, Ok(None) | Err(_)), "{gone:?}");
}

/// Wait until the kernel cache refresh has done everything marked.
fn warmed(m: &Mounted) {
    let start = std::time::Instant::now();
    while !m.fs.warm_idle() {
        assert!(start.elapsed() < Duration::from_secs(10), "the refresh never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stat every path and list every directory among `paths`; returns how many requests that cost.
fn asks_for(m: &Mounted, paths: &[std::path::PathBuf]) -> u64 {
    let before = m.counts.asks();
    // Every stat first, as git's index refresh does: a listing would refresh its entries.
    let mut dirs = Vec::new();
    for p in paths {
        // lstat(2), as git calls it.
        let st = nix::sys::stat::lstat(p).unwrap();
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            dirs.push(p);
        }
    }
    for d in dirs {
        fs::read_dir(d).unwrap().for_each(|e| drop(e.unwrap()));
    }
    m.counts.asks() - before
}

#[test]
fn what_the_mount_changed_is_cached_by_the_kernel_again_once_quiet() {
    let m = mount(Arc::new(MemoryBackend::new()), Duration::from_secs(5));
    m.fs.set_watching(true);
    let p = |s: &str| m.dir.path().join(s);
    // A checkout: directories and files created, some removed and renamed. Every close and
    // every entry change makes the kernel forget attributes or a listing.
    let mut paths = vec![m.dir.path().to_path_buf()];
    for d in ["a", "a/b", "a/b/c", "d"] {
        fs::create_dir(p(d)).unwrap();
        paths.push(p(d));
        for i in 0..12 {
            let f = format!("{d}/f{i}");
            fs::write(p(&f), format!("file {f}")).unwrap();
            paths.push(p(&f));
        }
    }
    fs::remove_file(p("a/f0")).unwrap();
    fs::rename(p("d/f0"), p("a/b/moved")).unwrap();
    paths.retain(|x| *x != p("a/f0") && *x != p("d/f0"));
    paths.push(p("a/b/moved"));
    warmed(&m);
    assert_eq!(asks_for(&m, &paths), 0, "stats and listings after the refresh");

    // Files written in place: their directory's listing is still cached, so they are stat'ed.
    for f in ["a/f1", "a/b/c/f2", "d/f3"] {
        let mut file = fs::OpenOptions::new().append(true).open(p(f)).unwrap();
        file.write_all(b" and more").unwrap();
    }
    warmed(&m);
    assert_eq!(asks_for(&m, &paths), 0, "stats after files were appended to");
    assert_eq!(fs::read(p("a/b/c/f2")).unwrap(), b"file a/b/c/f2 and more");

    // Without the refresh, the same changes cost the kernel requests again.
    m.fs.stop_warming();
    fs::write(p("a/new"), b"x").unwrap();
    assert!(asks_for(&m, &paths) > 0, "the kernel asks when nothing refreshed it");
    m.synced();
}

#[test]
fn uploaded_files_drop_their_local_copy_and_read_back_from_the_cache() {
    use std::sync::atomic::Ordering::Relaxed;
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_secs(5));
    for i in 0..200 {
        fs::write(m.dir.path().join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    let mut kept = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.dir.path().join("open"))
        .unwrap();
    kept.write_all(b"first").unwrap();
    kept.sync_all().unwrap();
    m.synced();
    // Every small file the server acknowledged drops its local copy, even one still open.
    let start = std::time::Instant::now();
    while m.fs.local_files() > 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(m.fs.local_files(), 0);
    let reads = backend.reads.load(Relaxed);
    for i in 0..200 {
        assert_eq!(
            fs::read(m.dir.path().join(format!("f{i}"))).unwrap(),
            format!("file {i}").as_bytes()
        );
    }
    // The file still open is written again through its descriptor: a local copy again, made
    // from the cache.
    kept.write_all(b" second").unwrap();
    drop(kept);
    assert_eq!(
        backend.reads.load(Relaxed),
        reads,
        "small uploaded files are read and written again from memory"
    );
    m.synced();
    assert_eq!(backend.file("open").as_deref(), Some(&b"first second"[..]));
    // Writing again after the upload materializes the file from the cache.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.dir.path().join("f7"))
        .unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    m.synced();
    assert_eq!(backend.file("f7").as_deref(), Some(&b"file 7!"[..]));
}

#[test]
fn large_files_written_again_keep_their_local_copy() {
    use std::sync::atomic::Ordering::Relaxed;
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_secs(5));
    let p = m.dir.path().join("db");
    let mut want: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 251) as u8).collect();
    fs::write(&p, &want).unwrap();
    m.synced();
    let reads = backend.reads.load(Relaxed);
    // A database's pattern: small writes in place, each made durable, over a large file.
    let mut f = fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
    for round in 0..5u8 {
        let at = u64::from(round) * 1_000_003;
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[round; 100]).unwrap();
        f.sync_all().unwrap();
        want[at as usize..at as usize + 100].fill(round);
    }
    drop(f);
    m.synced();
    assert_eq!(
        backend.reads.load(Relaxed),
        reads,
        "the large file was downloaded again"
    );
    assert!(
        backend.file("db").as_deref() == Some(&want[..]),
        "the server has the last bytes"
    );
    assert_eq!(m.fs.local_files(), 1, "the large file keeps its local copy");
}

#[test]
fn the_kernel_opens_files_without_asking_the_mount() {
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("there", b"from the server");
    let m = mount(backend.clone(), Duration::from_secs(5));
    let p = |s: &str| m.dir.path().join(s);
    fs::write(p("mine"), b"local").unwrap();
    for i in 0..20 {
        assert_eq!(fs::read(p("there")).unwrap(), b"from the server");
        assert_eq!(
            fs::read(p("mine")).unwrap(),
            format!("local{}", "+".repeat(i)).as_bytes()
        );
        let mut f = fs::OpenOptions::new().append(true).open(p("mine")).unwrap();
        f.write_all(b"+").unwrap();
    }
    // The first open answers "not implemented"; the kernel asks no more.
    assert!(
        m.counts.seen("open") <= 1,
        "{} opens reached the mount",
        m.counts.seen("open")
    );
    // Appends through the kernel's cache land at the end; truncation at open still truncates.
    assert_eq!(
        fs::read(p("mine")).unwrap(),
        format!("local{}", "+".repeat(20)).as_bytes()
    );
    fs::write(p("mine"), b"short").unwrap();
    m.synced();
    assert_eq!(backend.file("mine").as_deref(), Some(&b"short"[..]));
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
    m.fs.apply_event(&event(EventKind::Write, "theirs", serde_json::json!({"size": 6})));
    backend
        .apply(&super::backend::RemoteOp::Unlink { path: "goes".into() })
        .unwrap();
    m.fs.apply_event(&event(EventKind::Delete, "goes", serde_json::json!({})));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(fs::read(p("theirs")).unwrap(), b"remote");
    assert_eq!(names(), ["keep", "mine", "theirs"]);
    assert_eq!(fs::metadata(p("goes")).unwrap_err().raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn closes_send_written_files_without_a_flush_per_close() {
    use std::os::unix::fs::FileExt;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("there", b"from the server");
    let m = mount(backend.clone(), Duration::from_secs(5));
    let p = |s: &str| m.dir.path().join(s);
    // Created and written within one clock tick, a file's times are current at its close, which
    // sends pages only (see `coarse_now`): the file follows within the settle time.
    fs::write(p("new"), b"created").unwrap();
    assert!(m.server_gets("new", b"created", idle_upload::SETTLE * 50));
    // Truncated and rewritten in the same clock tick, the close sends pages only: the file
    // follows within the settle time, long before the kernel's writeback would.
    for round in 0..20u8 {
        let body = format!("round {round}");
        fs::write(p("new"), &body).unwrap();
        assert!(
            m.server_gets("new", body.as_bytes(), idle_upload::SETTLE * 50),
            "round {round}: {:?}",
            backend.file("new").map(|b| String::from_utf8_lossy(&b).into_owned())
        );
    }
    // Created and closed unwritten.
    drop(fs::File::create(p("empty")).unwrap());
    assert!(m.server_gets("empty", b"", idle_upload::SETTLE * 50));
    // Written in place through a descriptor kept open, then closed.
    let f = fs::OpenOptions::new().write(true).open(p("new")).unwrap();
    f.write_all_at(b"R", 0).unwrap();
    drop(f);
    assert!(m.server_gets("new", b"Round 19", idle_upload::SETTLE * 50));
    // Reading costs no request at close: the first flush answers "not implemented".
    for _ in 0..50 {
        assert_eq!(fs::read(p("there")).unwrap(), b"from the server");
        assert_eq!(fs::read(p("new")).unwrap(), b"Round 19");
    }
    assert!(
        m.counts.seen("flush") <= 1,
        "{} flushes reached the mount",
        m.counts.seen("flush")
    );
}

#[test]
fn pages_the_kernel_writes_back_on_its_own_reach_the_server_while_the_file_stays_open() {
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_secs(5));
    let mut f = fs::File::create(m.dir.path().join("log")).unwrap();
    f.write_all(b"line 1\n").unwrap();
    // syncfs(2) makes the kernel's flusher write the page and the times: no close, no fsync.
    // (Not sync(2): it would wait on every other test's mount too.)
    let synced = std::process::Command::new("sync")
        .arg("-f")
        .arg(m.dir.path().join("log"))
        .status()
        .unwrap();
    assert!(synced.success());
    assert!(
        m.server_gets("log", b"line 1\n", idle_upload::IDLE * 3),
        "{:?}",
        backend.file("log")
    );
    f.write_all(b"line 2\n").unwrap();
    drop(f);
    assert!(m.server_gets("log", b"line 1\nline 2\n", idle_upload::SETTLE * 50));
}

#[test]
fn a_created_file_costs_no_release_nor_times_at_its_close_and_a_chown_no_getattr() {
    let backend = Arc::new(MemoryBackend::new());
    let m = mount(backend.clone(), Duration::from_secs(5));
    let p = |i: u32| m.dir.path().join(format!("f{i}"));
    // A new file carries the kernel's coarse time, so a write within the same clock tick leaves
    // its times current, and its close writes pages and no times. The kernel's clock reads later
    // than the coarse one within a tick where a file system handed out a fine-grained time (other
    // tests do), so a round of creates may miss; with the times always sent, every round would.
    let mut files = 0;
    let quiet_round = (0..50).any(|round| {
        let setattrs = m.counts.seen("setattr");
        for _ in 0..5 {
            fs::write(p(files), format!("file {files}")).unwrap();
            files += 1;
        }
        let at_close = m.counts.seen("setattr") - setattrs;
        std::thread::sleep(Duration::from_millis(5 * (round % 2)));
        at_close < 5
    });
    assert!(quiet_round, "every close of {files} new files sent its times");
    // The kernel creates with mknod (the mount answered create "not implemented") and opens the
    // file itself: nothing to release at the close.
    assert!(m.counts.seen("create") <= 1, "{} creates", m.counts.seen("create"));
    assert!(
        m.counts.seen("mknod") + 1 >= u64::from(files),
        "{} mknods",
        m.counts.seen("mknod")
    );
    assert_eq!(m.counts.seen("release"), 0);
    for i in 0..files {
        let want = format!("file {i}");
        assert!(
            m.server_gets(&format!("f{i}"), want.as_bytes(), idle_upload::SETTLE * 50),
            "f{i}"
        );
    }

    // The mount clears set-ID bits at a change of owner itself: the kernel sends the chown
    // alone, without reading the attributes first.
    let (uid, gid) = fs::metadata(m.dir.path()).map(|d| (d.uid(), d.gid())).unwrap();
    for i in 0..files {
        fs::set_permissions(p(i), fs::Permissions::from_mode(0o4755)).unwrap();
    }
    let (getattrs, setattrs) = (m.counts.seen("getattr"), m.counts.seen("setattr"));
    for i in 0..files {
        std::os::unix::fs::chown(p(i), Some(uid), Some(gid)).unwrap();
    }
    assert_eq!(m.counts.seen("getattr"), getattrs, "getattrs before chown");
    assert_eq!(m.counts.seen("setattr") - setattrs, u64::from(files));
    for i in 0..files {
        assert_eq!(fs::metadata(p(i)).unwrap().mode() & 0o7777, 0o755, "f{i}");
    }
    m.synced();
    assert_eq!(backend.mode("f0"), Some(0o755));
}

#[test]
fn a_written_file_keeps_the_times_the_kernel_gave_it_once_the_kernel_forgets_it() {
    let m = mount(Arc::new(MemoryBackend::new()), Duration::from_secs(5));
    let p = |i: u32| m.dir.path().join(format!("t{i}"));
    let mtimes = || {
        (0..20)
            .map(|i| {
                fs::metadata(p(i))
                    .map(|d| (d.mtime(), d.mtime_nsec(), d.ctime(), d.ctime_nsec()))
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    for i in 0..20 {
        fs::write(p(i), format!("file {i}")).unwrap();
        // Written after a pause, outside the tick of its creation: the times the kernel sets
        // at the write reach the mount at the close.
        let mut f = fs::OpenOptions::new().append(true).open(p(i)).unwrap();
        if i % 2 == 1 {
            std::thread::sleep(Duration::from_millis(10));
        }
        f.write_all(b" more").unwrap();
    }
    let seen = mtimes();
    // The kernel drops the inodes and asks the mount for them again: the times must not move
    // (git's index and make compare them).
    for i in 0..20 {
        m.fs.forget_in_kernel(std::ffi::OsStr::new(&format!("t{i}")));
    }
    std::thread::sleep(Duration::from_millis(200));
    let lookups = m.counts.seen("lookup");
    assert_eq!(mtimes(), seen);
    assert_eq!(m.counts.seen("lookup") - lookups, 20, "every file was looked up again");
}
