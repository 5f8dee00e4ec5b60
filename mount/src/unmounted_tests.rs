//! The file system driven without a kernel (its request handlers called in the order a kernel
//! sends them): inodes replaced elsewhere while open, refused writes, plain calls and their
//! errnos, and changes made elsewhere told apart from the mount's own.

use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;
use super::content_cache::ContentCache;
use super::events::{EventKind, MountId};
use super::fs::{AetherFs, MountConfig};
use super::memory_backend::MemoryBackend;
use super::tests::event;
use super::writeback::Writeback;

/// The file system with no kernel: tests call its request handlers in the order a kernel sends
/// them (see `AetherFs::kernel_*`).
pub(crate) fn unmounted(backend: Arc<MemoryBackend>) -> (AetherFs, Arc<Writeback>, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let cache = Arc::new(ContentCache::new(64 << 20, None).unwrap());
    let wb = Arc::new(Writeback::start(
        backend.clone() as Arc<dyn Backend>,
        Duration::from_secs(5),
        work.path().join("lost"),
    ));
    let cfg = MountConfig {
        read_only: false,
        ttl: Duration::from_secs(1),
        watched_ttl: Duration::from_secs(3600),
        uid: 0,
        gid: 0,
        staging_dir: work.path().join("staging"),
        warm_at: None,
        mount_id: MountId::generate(),
    };
    let fs = AetherFs::new(backend as Arc<dyn Backend>, cache, wb.clone(), cfg).unwrap();
    // The watch stream is connected: listings are trusted until an event invalidates them.
    fs.set_watching(true);
    (fs, wb, work)
}

/// The lost writes of the concurrent run, deterministic: a descriptor opened with `O_TRUNC`
/// (the empty file is sent and acknowledged, and the local copy dropped), another client
/// replaces the file, the directory is listed (the name gets a new inode for the new content),
/// then the descriptor, which still holds the old inode, is written and synced.
#[test]
fn a_descriptor_keeps_writing_to_its_name_after_another_client_replaced_the_file() {
    use super::tree::ROOT;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("f", b"the first version");
    let (fs, wb, _work) = unmounted(backend.clone());
    // open(O_TRUNC): a lookup, then the truncating setattr, which sends the empty file.
    let old = fs.kernel_lookup(ROOT, "f").unwrap().expect("listed");
    fs.kernel_truncate(old, 0).unwrap();
    wb.wait(wb.last_seq()).unwrap();
    assert_eq!(backend.file("f").as_deref(), Some(&b""[..]));
    assert!(
        !fs.holds_local_bytes(old),
        "the acknowledged file refers to its content id"
    );
    // The watch stream brings the mount's own change back first.
    let empty = backend.oid("f").unwrap();
    fs.apply_event(&event(EventKind::Write, "f", serde_json::json!({"size": 0, "oid": empty})).by_mount(fs.mount_id()));
    // Another client replaces the file; its event makes the next listing ask the server.
    backend.write_external("f", b"bytes of another client");
    let oid = backend.oid("f").unwrap();
    fs.apply_event(&event(
        EventKind::Write,
        "f",
        serde_json::json!({"size": 23, "oid": oid}),
    ));
    let listed = fs.kernel_readdir(ROOT).unwrap();
    assert_eq!(listed.len(), 1);
    assert_ne!(listed[0].1, old, "new content elsewhere gets a new inode");
    // The descriptor writes through the inode it holds, and syncs.
    fs.kernel_write(old, 0, b"written through the descriptor").unwrap();
    fs.kernel_fsync(old).expect("the write was sent");
    assert_eq!(
        backend.file("f").as_deref(),
        Some(&b"written through the descriptor"[..]),
        "fsync returned 0: the server must hold the descriptor's bytes (last writer wins)"
    );
    // The name shows what the server holds: the last writer's inode and bytes.
    let now = fs.kernel_lookup(ROOT, "f").unwrap().unwrap();
    assert_eq!(now, old);
    assert_eq!(fs.kernel_read(now, 0, 100).unwrap(), b"written through the descriptor");
    assert!(wb.refused().is_empty(), "{:?}", wb.refused());
}

/// Two descriptors, one on the inode a listing gave the name, one still on the replaced inode:
/// the later writer takes the name, and what the other one wrote first still reaches the server
/// before it (its `fsync` returning 0 is true), never dropped because its inode lost the name.
#[test]
fn writes_through_both_inodes_of_a_replaced_file_all_reach_the_server_the_last_one_wins() {
    use super::tree::ROOT;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("f", b"v1");
    let (fs, wb, _work) = unmounted(backend.clone());
    let old = fs.kernel_lookup(ROOT, "f").unwrap().unwrap();
    fs.kernel_truncate(old, 0).unwrap();
    wb.wait(wb.last_seq()).unwrap();
    let empty = backend.oid("f").unwrap();
    fs.apply_event(&event(EventKind::Write, "f", serde_json::json!({"size": 0, "oid": empty})).by_mount(fs.mount_id()));
    backend.write_external("f", b"v2 elsewhere");
    fs.apply_event(&event(EventKind::Write, "f", serde_json::json!({"size": 12})));
    fs.kernel_readdir(ROOT).unwrap();
    let new = fs.kernel_lookup(ROOT, "f").unwrap().unwrap();
    assert_ne!(new, old);
    // Written through the new inode, not sent yet; then through the old descriptor.
    fs.kernel_write(new, 0, b"through the new inode").unwrap();
    fs.kernel_write(old, 0, b"through the old descriptor").unwrap();
    assert_eq!(fs.kernel_fsync(new), Ok(()));
    assert!(
        backend.ever_held(b"through the new inode"),
        "fsync returned 0 for bytes never sent"
    );
    assert_eq!(fs.kernel_fsync(old), Ok(()));
    assert_eq!(backend.file("f").as_deref(), Some(&b"through the old descriptor"[..]));
    assert_eq!(
        fs.kernel_lookup(ROOT, "f").unwrap(),
        Some(old),
        "the last writer has the name"
    );
}

/// A name the file no longer has by anyone's choice (removed elsewhere, or renamed away through
/// the mount) takes the descriptor's writes nowhere, as on a local file system: no name comes
/// back to life.
#[test]
fn a_file_removed_elsewhere_is_not_brought_back_by_a_descriptor_still_open() {
    use super::tree::ROOT;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("f", b"v1");
    let (fs, wb, _work) = unmounted(backend.clone());
    let old = fs.kernel_lookup(ROOT, "f").unwrap().unwrap();
    fs.kernel_truncate(old, 0).unwrap();
    wb.wait(wb.last_seq()).unwrap();
    let empty = backend.oid("f").unwrap();
    fs.apply_event(&event(EventKind::Write, "f", serde_json::json!({"size": 0, "oid": empty})).by_mount(fs.mount_id()));
    // Replaced, listed (the old inode is bound to the name), then removed and listed again.
    backend.write_external("f", b"v2 elsewhere");
    fs.apply_event(&event(EventKind::Write, "f", serde_json::json!({"size": 12})));
    fs.kernel_readdir(ROOT).unwrap();
    backend
        .apply(&super::backend::RemoteOp::Unlink { path: "f".into() })
        .unwrap();
    fs.apply_event(&event(EventKind::Delete, "f", serde_json::json!({})));
    assert!(fs.kernel_readdir(ROOT).unwrap().is_empty());
    fs.kernel_write(old, 0, b"into an unlinked file").unwrap();
    fs.kernel_fsync(old).unwrap();
    assert_eq!(backend.file("f"), None);
    assert_eq!(fs.kernel_lookup(ROOT, "f").unwrap(), None);

    // The same when the name is renamed away through the mount: the newer file moves, the
    // descriptor on the replaced inode neither follows it nor brings the old name back.
    backend.write_external("h", b"v1");
    fs.apply_event(&event(EventKind::Write, "h", serde_json::json!({"size": 2})));
    fs.kernel_readdir(ROOT).unwrap();
    let old = fs.kernel_lookup(ROOT, "h").unwrap().unwrap();
    fs.kernel_truncate(old, 0).unwrap();
    wb.wait(wb.last_seq()).unwrap();
    let empty = backend.oid("h").unwrap();
    fs.apply_event(&event(EventKind::Write, "h", serde_json::json!({"size": 0, "oid": empty})).by_mount(fs.mount_id()));
    backend.write_external("h", b"v2 elsewhere");
    fs.apply_event(&event(EventKind::Write, "h", serde_json::json!({"size": 12})));
    fs.kernel_readdir(ROOT).unwrap();
    fs.kernel_rename(ROOT, "h", ROOT, "moved").unwrap();
    fs.kernel_write(old, 0, b"through the old descriptor").unwrap();
    fs.kernel_fsync(old).unwrap();
    fs.kernel_fsyncdir(ROOT).unwrap();
    assert_eq!(backend.file("moved").as_deref(), Some(&b"v2 elsewhere"[..]));
    assert_eq!(backend.file("h"), None);
}

/// A write the server refuses for good (here: a token that may only read) is never reported as
/// written: `fsync` of the file fails until an upload of it is acknowledged, `fsync` of the root
/// fails once, and the end of the mount names it and keeps its bytes.
#[test]
fn a_refused_write_fails_fsync_until_the_file_is_sent_and_the_end_of_the_mount_reports_it() {
    use super::tree::ROOT;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("f", b"on the server");
    backend.write_external("g", b"also there");
    let (fs, wb, _work) = unmounted(backend.clone());
    let f = fs.kernel_lookup(ROOT, "f").unwrap().unwrap();
    let g = fs.kernel_lookup(ROOT, "g").unwrap().unwrap();
    backend.set_read_only(true);
    fs.kernel_truncate(f, 0).unwrap();
    fs.kernel_write(f, 0, b"refused").unwrap();
    // The token may not write: EACCES, the refusal's own errno.
    assert_eq!(fs.kernel_fsync(f), Err(libc::EACCES));
    assert_eq!(fs.kernel_fsync(f), Err(libc::EACCES), "still not on the server");
    assert_eq!(fs.kernel_fsync(g), Ok(()), "nothing was written to g");
    assert_eq!(fs.kernel_fsyncdir(ROOT), Err(libc::EACCES));
    assert_eq!(
        fs.kernel_fsyncdir(ROOT),
        Ok(()),
        "each refusal fails the root's fsync once"
    );
    assert_eq!(backend.file("f").as_deref(), Some(&b"on the server"[..]));
    // Written again once the server takes it: the refusal no longer stands.
    backend.set_read_only(false);
    fs.kernel_write(f, 7, b" then accepted").unwrap();
    assert_eq!(fs.kernel_fsync(f), Ok(()));
    assert_eq!(backend.file("f").as_deref(), Some(&b"refused then accepted"[..]));
    // Another refused change, left unsynced: the end of the mount reports it with its bytes.
    backend.set_read_only(true);
    fs.kernel_truncate(g, 4).unwrap();
    assert!(fs.finish().is_ok(), "everything queued was done with");
    let refused = wb.refused();
    // f's truncation and its write, then g's truncation.
    assert_eq!(refused.len(), 3, "{refused:?}");
    let last = &refused[2];
    assert_eq!((last.change.as_str(), last.path.as_str()), ("upload", "g"));
    assert_eq!(std::fs::read(last.kept.as_ref().unwrap()).unwrap(), b"also");
    // f's refusals were replaced by its accepted upload: only g is not on the server.
    let missing: Vec<String> = wb.not_on_server().into_iter().map(|r| r.path).collect();
    assert_eq!(missing, ["g"]);
}

/// The file system's calls without a kernel: plain arguments in, a typed error out, and the
/// errno the FUSE adapter turns it into.
#[test]
fn the_file_system_answers_plain_calls_with_typed_errors() {
    use super::fs::FsError;
    use super::tree::ROOT;
    use std::ffi::OsStr;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("f", b"content");
    let (fs, _wb, _work) = unmounted(backend);
    let name = OsStr::new;
    let me = super::fs::Caller { pid: 1, uid: 0, gid: 0 };
    assert!(fs.lookup(ROOT, name("missing")).unwrap().is_none(), "a negative entry");
    let f = fs.lookup(ROOT, name("f")).unwrap().expect("listed").ino.0;
    assert_eq!(fs.read(f, 0, 100).unwrap(), b"content");
    let d = fs.mkdir(me, ROOT, name("d"), 0o755, 0o022).unwrap();
    assert_eq!(d.perm, 0o755);
    let again = fs.mkdir(me, ROOT, name("d"), 0o755, 0).unwrap_err();
    assert!(matches!(again, FsError::Exists), "{again:?}");
    assert_eq!(again.errno(), libc::EEXIST);
    assert!(matches!(fs.rmdir(ROOT, name("nothing")), Err(FsError::NotFound)));
    assert!(matches!(fs.rmdir(ROOT, name("f")), Err(FsError::NotADirectory)));
    assert!(matches!(fs.readlink(f), Err(FsError::Invalid)));
    assert!(matches!(fs.link(d.ino.0, ROOT, name("d2")), Err(FsError::NotPermitted)));
    assert!(matches!(fs.link(f, ROOT, name("d")), Err(FsError::Exists)));
    let dir = fs.mknod(me, ROOT, name("p"), libc::S_IFDIR | 0o755, 0, 0).unwrap_err();
    assert_eq!(dir.errno(), libc::EPERM);
    let long = "x".repeat(256);
    assert_eq!(
        fs.mkdir(me, ROOT, name(&long), 0o755, 0).unwrap_err().errno(),
        libc::ENAMETOOLONG
    );
    fs.rmdir(ROOT, name("d")).unwrap();
    assert!(fs.lookup(ROOT, name("d")).unwrap().is_none());
}

/// A change made elsewhere to a path the mount just changed itself is told apart by its origin,
/// not taken for the mount's own echo: it arrives before the mount's own event here (as it does
/// when the server applied the other client's change second, or refused the mount's), and the
/// mount shows the other client's bytes. Matching by kind and path would have swallowed it and
/// kept serving the mount's own, replaced, bytes.
#[test]
fn a_foreign_change_to_a_path_the_mount_just_wrote_is_not_taken_for_its_own() {
    use super::tree::ROOT;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("f", b"v1");
    let (fs, wb, _work) = unmounted(backend.clone());
    let ino = fs.kernel_lookup(ROOT, "f").unwrap().unwrap();
    fs.kernel_write(ino, 0, b"v2 here").unwrap();
    fs.kernel_fsync(ino).unwrap();
    wb.wait(wb.last_seq()).unwrap();
    let ours = backend.oid("f").unwrap();
    // Another client replaces the file; its event comes first.
    backend.write_external("f", b"theirs, longer");
    let theirs = backend.oid("f").unwrap();
    fs.apply_event(&event(
        EventKind::Write,
        "f",
        serde_json::json!({"size": 14, "oid": theirs}),
    ));
    // Then the echo of the mount's own write, which changes nothing.
    fs.apply_event(&event(EventKind::Write, "f", serde_json::json!({"size": 7, "oid": ours})).by_mount(fs.mount_id()));
    fs.kernel_readdir(ROOT).unwrap();
    let now = fs.kernel_lookup(ROOT, "f").unwrap().unwrap();
    assert_eq!(fs.kernel_read(now, 0, 100).unwrap(), b"theirs, longer");
}

/// Numbers come back within a mount (see `ino`): a file made where a refused one was removed
/// gets the path's number again, and must not inherit the refusal. Its close reports its own
/// fate only; the old refusal is still reported as not on the server.
#[test]
fn a_new_file_with_the_number_of_a_refused_and_removed_one_does_not_inherit_the_refusal() {
    use super::backend::BackendError;
    use super::tree::ROOT;
    use std::ffi::OsStr;
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("big", b"on the server");
    let (fs, wb, _work) = unmounted(backend.clone());
    let old = fs.kernel_lookup(ROOT, "big").unwrap().unwrap();
    backend.refuse_changes(Some(BackendError::TooLarge("over --max-file-size".into())));
    fs.kernel_truncate(old, 0).unwrap();
    fs.kernel_write(old, 0, b"far too large").unwrap();
    assert_eq!(fs.kernel_fsync(old), Err(libc::EFBIG));
    backend.refuse_changes(None);
    // Removed, and forgotten by the kernel: the node is gone and its number free.
    fs.unlink(ROOT, OsStr::new("big")).unwrap();
    fs.forget(old, 1);
    wb.wait(wb.last_seq()).unwrap();
    // The server is away: nothing the new file does is acknowledged at its close.
    backend.set_down(true);
    let me = super::fs::Caller { pid: 1, uid: 0, gid: 0 };
    let (attr, _) = fs
        .create(me, ROOT, OsStr::new("big"), 0o644, 0o022, 0)
        .unwrap()
        .expect("the mount answers create");
    assert_eq!(attr.ino.0, old, "the path's number again");
    fs.kernel_write(old, 0, b"small").unwrap();
    assert_eq!(fs.kernel_flush(old), Ok(()), "the close of the new file");
    backend.set_down(false);
    fs.kernel_fsync(old).unwrap();
    assert_eq!(backend.file("big").as_deref(), Some(&b"small"[..]));
    assert!(
        wb.not_on_server()
            .iter()
            .any(|r| r.path == "big" && r.errno == libc::EFBIG),
        "{:?}",
        wb.not_on_server()
    );
}
