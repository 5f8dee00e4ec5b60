//! Nothing the server did not keep is acknowledged, one test per kind of refusal, on real
//! kernel mounts against a real aetherd: a token that may only read mounts read-only (EROFS at
//! once, and `aether mount` says why); a file over `--max-file-size` fails its `fsync` and
//! `close` with EFBIG; a session archived while mounted fails them with EROFS (and mounts
//! read-only once archived); a token revoked while mounted fails them with EACCES. Each refused
//! change makes `aether unmount` exit non-zero naming it, is listed by `aether mount status`
//! with its errno and the place its bytes are kept, and is never on the server. 0 false
//! successes: no `fsync` of a refused change returns 0, and no `close` that reaches the mount
//! while the refusal stands does (a `close` does not wait for the server, see
//! `assert_refused`). With CI=true a machine that cannot mount is a failure, not a skip.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use aether_service::{Code, ServiceError};

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Rest, fuse_available};

/// What the calls of writing a file returned: each `Ok` or its errno.
#[derive(Debug)]
struct Written {
    write: Result<(), i32>,
    fsync: Result<(), i32>,
    close: Result<(), i32>,
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Create `path`, write `bytes`, `fsync`, and `close(2)` the descriptor, as a program would.
fn write_fsync_close(path: &Path, bytes: &[u8]) -> Written {
    let mut f = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let write = f.write_all(bytes).map_err(errno);
    let fsync = f.sync_all().map_err(errno);
    // close(2) itself: dropping a File ignores what close returns.
    let close = nix::unistd::close(f).map_err(|e| e as i32);
    Written { write, fsync, close }
}

/// A refused file: its `fsync` fails with `want`. The `close` right after either fails the same
/// way or returns 0: it does not wait for the server, and once `fsync` has reported the refusal
/// the kernel has nothing left to send at the close (the mount answers no flush request, for
/// speed). Never another errno.
fn assert_refused(w: &Written, want: i32, what: &str) {
    assert_eq!(w.write, Ok(()), "{what}: the write itself lands in the page cache");
    assert_eq!(w.fsync, Err(want), "{what}: fsync (want errno {want}): {w:?}");
    assert!(
        w.close == Ok(()) || w.close == Err(want),
        "{what}: close (want 0 or errno {want}): {w:?}"
    );
}

/// Open `path` again, append `bytes` and `close(2)` it without `fsync`, as a second program
/// would: while the refusal of the file stands, that close fails with its errno.
fn append_close(path: &Path, bytes: &[u8]) -> Written {
    let mut f = File::options()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let write = f.write_all(bytes).map_err(errno);
    let close = nix::unistd::close(f).map_err(|e| e as i32);
    Written {
        write,
        fsync: Ok(()),
        close,
    }
}

/// A second write and close of a refused file: the close reports the refusal (never 0).
fn assert_close_refused(path: &Path, want: i32, what: &str) {
    let w = append_close(path, b" and more");
    assert_eq!(w.write, Ok(()), "{what}: {w:?}");
    assert_eq!(
        w.close,
        Err(want),
        "{what}: close of a refused file (want errno {want}): {w:?}"
    );
}

/// `fsync` of `path` opened again (a later program checking the file).
fn fsync_again(path: &Path) -> Result<(), i32> {
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(errno)
}

/// `aether mount status DIR --json`: the exit code and what it listed.
fn status(env: &TestEnv, dir: &Path) -> (i32, serde_json::Value) {
    let r = env.run(&["mount", "status", dir.to_str().unwrap(), "--json"]);
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.transcript()));
    (r.code, v)
}

/// The refusals `aether mount status` lists for `path`.
fn listed<'v>(status: &'v serde_json::Value, path: &str) -> Vec<&'v serde_json::Value> {
    status["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == path)
        .collect()
}

fn token(env: &TestEnv, session: &str, access: &str) -> (String, String) {
    let t = env
        .ok(&["token", "create", "--session", session, "--access", access, "--json"])
        .json();
    (
        t["id"].as_str().unwrap().to_owned(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

/// The unmount of a mount with refused changes: non-zero, naming each path with its errno.
fn assert_unmount_names(m: Mount<'_>, names: &[(&str, &str)]) {
    let log = m.log();
    let r = m.unmount_reporting();
    assert_ne!(r.code, 0, "unmount exited 0 with refused changes: {}", r.transcript());
    for (path, errno) in names {
        assert!(
            r.stderr.lines().any(|l| l.contains(path) && l.contains(errno)),
            "unmount does not name {path} with {errno}: {}",
            r.transcript()
        );
        assert!(
            log.lines().any(|l| l.contains("refused") && l.contains(path)),
            "the mount's log does not name the refusal of {path}:\n{log}"
        );
    }
}

/// Every code the server can answer with, as the mount takes it: the errno an `fsync` or
/// `close` waiting for a change so refused fails with, or `None` for a failure to reach the
/// server (retried for `--retry-secs`, then EIO, the change kept queued). Exhaustive: a new
/// code must be placed here.
fn expected_errno(code: Code) -> Option<i32> {
    match code {
        Code::NotFound => Some(libc::ENOENT),
        Code::AlreadyExists => Some(libc::EEXIST),
        Code::NotADirectory => Some(libc::ENOTDIR),
        Code::IsADirectory => Some(libc::EISDIR),
        Code::NotEmpty => Some(libc::ENOTEMPTY),
        Code::Stale => Some(libc::ESTALE),
        Code::InvalidPath
        | Code::InvalidArgument
        | Code::InvalidJson
        | Code::BadRequest
        | Code::UriTooLong
        | Code::HeadersTooLarge
        | Code::UnsupportedMediaType => Some(libc::EINVAL),
        Code::ReadOnly => Some(libc::EROFS),
        Code::TooLarge => Some(libc::EFBIG),
        Code::QuotaExceeded => Some(libc::EDQUOT),
        Code::Unauthorized | Code::Forbidden => Some(libc::EACCES),
        Code::IsASymlink
        | Code::IsASpecialFile
        | Code::Conflict
        | Code::RangeNotSatisfiable
        | Code::MethodNotAllowed
        | Code::Corrupt
        | Code::Storage
        | Code::Internal => Some(libc::EIO),
        Code::SourceUnreachable
        | Code::SourceTimeout
        | Code::Unavailable
        | Code::RequestTimeout
        | Code::ClientClosed
        | Code::Overloaded
        | Code::RateLimited => None,
    }
}

/// The server's own statuses (server/src/grpc/status.rs) through the mount's mapping
/// (mount/src/grpc_backend.rs): no kernel needed.
#[test]
fn every_server_code_reaches_a_waiting_fsync_as_its_documented_errno() {
    for code in Code::ALL {
        let status = aether_server::grpc::status::status(ServiceError::new(code, "m"));
        let e = aether_mount::grpc_backend::backend_error(&status);
        match expected_errno(code) {
            Some(want) => {
                assert!(!e.is_retryable(), "{code} is retried: {e:?}");
                assert_eq!(e.errno(), want, "{code} became {e:?}");
            }
            None => assert!(e.is_retryable(), "{code} is not retried: {e:?}"),
        }
    }
}

/// A token that may only read the session mounts read-only: every change fails at once with
/// EROFS, `aether mount` says why (human and `--json`), reads work, and nothing is left for the
/// unmount or `aether mount status` to report (the mount acknowledged nothing).
#[test]
fn a_token_that_may_only_read_mounts_read_only() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    let id = env.new_session();
    rest.put(&id, "existing.txt", b"kept");
    rest.put(&id, "d/inner.txt", b"inner");
    let (token_id, secret) = token(&env, &id, "read");
    let m = Mount::with_token(&env, &id, &env.home().join("m"), &secret);
    assert!(
        m.stdout().contains("read-only") && m.stdout().contains(&token_id) && m.stdout().contains("EROFS"),
        "aether mount does not say it is read-only: {}",
        m.stdout()
    );
    assert_eq!(std::fs::read(m.path("existing.txt")).unwrap(), b"kept");
    let rofs = |what: &str, r: std::io::Result<()>| {
        assert_eq!(r.map_err(errno), Err(libc::EROFS), "{what}");
    };
    rofs("create", File::create(m.path("new.txt")).map(drop));
    rofs(
        "open for writing",
        File::options().write(true).open(m.path("existing.txt")).map(drop),
    );
    rofs(
        "truncate",
        File::options()
            .write(true)
            .truncate(true)
            .open(m.path("existing.txt"))
            .map(drop),
    );
    rofs("mkdir", std::fs::create_dir(m.path("newdir")));
    rofs("unlink", std::fs::remove_file(m.path("existing.txt")));
    rofs("rmdir", std::fs::remove_dir_all(m.path("d")));
    rofs("rename", std::fs::rename(m.path("existing.txt"), m.path("moved.txt")));
    rofs(
        "chmod",
        std::fs::set_permissions(m.path("existing.txt"), std::fs::Permissions::from_mode(0o600)),
    );
    rofs("symlink", std::os::unix::fs::symlink("existing.txt", m.path("link")));
    assert_eq!(std::fs::read(m.path("d/inner.txt")).unwrap(), b"inner");

    // The same with --json: the answer says so too.
    let m2 = Mount::with_token_and_args(&env, &id, &env.home().join("m2"), &secret, &["--json"]);
    let said: serde_json::Value = serde_json::from_str(m2.stdout()).unwrap();
    assert_eq!(said["read_only"], true, "{said}");
    assert!(said["note"].as_str().unwrap().contains("may only read"), "{said}");
    m2.unmount();

    // Nothing was acknowledged, so nothing is missing: the unmount and the status say so.
    let dir = m.root().to_owned();
    m.unmount();
    let (code, listed) = status(&env, &dir);
    assert_eq!((code, listed["standing"].as_u64()), (0, Some(0)), "{listed}");
    assert_eq!(rest.get(&id, "existing.txt").as_deref(), Some(&b"kept"[..]));
    assert_eq!(rest.get(&id, "new.txt"), None);
}

/// A file over the server's `--max-file-size`: EFBIG from `fsync` and `close`, again from a
/// later `fsync`, a non-zero unmount naming it, and its bytes in lost+found, listed by
/// `aether mount status` (while mounted and after).
#[test]
fn a_file_over_the_size_limit_fails_fsync_and_close_with_efbig() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::with_config(|c| c.max_file_size = 1 << 20);
    let rest = Rest::new(&env);
    let (id, m) = Mount::of_new_session(&env);
    let big: Vec<u8> = (0..(1u32 << 20) + 1).map(|i| (i % 251) as u8).collect();
    let w = write_fsync_close(&m.path("big.bin"), &big);
    assert_refused(&w, libc::EFBIG, "big.bin");
    assert_eq!(fsync_again(&m.path("big.bin")), Err(libc::EFBIG), "a later fsync");
    assert_close_refused(&m.path("big.bin"), libc::EFBIG, "big.bin");
    // A file that fits is not held back by the refused one.
    let ok = write_fsync_close(&m.path("fits.txt"), b"small");
    assert_eq!((ok.fsync, ok.close), (Ok(()), Ok(())), "{ok:?}");

    let dir = m.root().to_owned();
    let (code, live) = status(&env, &dir);
    assert_ne!(code, 0, "mount status exits 0 with a standing refusal: {live}");
    let entries = listed(&live, "big.bin");
    assert!(!entries.is_empty(), "{live}");
    for e in &entries {
        assert_eq!(
            (e["errno"].as_str(), e["change"].as_str()),
            (Some("EFBIG"), Some("upload")),
            "{e}"
        );
        assert_eq!(e["session"], id.as_str());
        let kept = e["kept"].as_str().expect("the bytes are kept");
        assert!(kept.contains("lost+found"), "{e}");
        // The first refusal keeps the file as written; the later ones (the append) keep more.
        let bytes = std::fs::read(kept).unwrap();
        assert!(
            bytes.starts_with(&big),
            "{kept}: {} bytes, not the file's {}",
            bytes.len(),
            big.len()
        );
    }
    let first = std::fs::read(entries[0]["kept"].as_str().unwrap()).unwrap();
    assert!(first == big, "the first kept copy is the file as written");
    // The human form names the change, the errno and the kept bytes; the hint how to forget.
    let human = env.run(&["mount", "status", dir.to_str().unwrap()]);
    assert_eq!(human.code, 1, "{}", human.transcript());
    assert!(
        human.stdout.contains("upload of big.bin")
            && human.stdout.contains("(EFBIG)")
            && human.stdout.contains("bytes kept in"),
        "{}",
        human.transcript()
    );
    assert!(human.stderr.contains("refusals.jsonl"), "{}", human.transcript());
    assert_unmount_names(m, &[("big.bin", "EFBIG")]);
    let (code, after) = status(&env, &dir);
    assert_ne!(code, 0, "{after}");
    assert!(!listed(&after, "big.bin").is_empty(), "{after}");
    // Without a mount point: every mount that used the cache directory.
    let all = env.run(&["mount", "status", "--json"]);
    assert_eq!(all.code, 1, "{}", all.transcript());
    assert!(all.stdout.contains("big.bin"), "{}", all.transcript());
    assert!(listed(&after, "fits.txt").is_empty(), "{after}");
    assert_eq!(rest.get(&id, "big.bin"), None);
    assert_eq!(rest.get(&id, "fits.txt").as_deref(), Some(&b"small"[..]));
}

/// A session over its quota takes no more bytes through a mount: the `fsync` of a file that
/// would go over fails with EDQUOT and it is never on the server; a file that fits (the quota
/// counts what the session holds of its own) is kept; `aether session usage` says what it holds.
#[test]
fn a_file_over_the_session_quota_fails_fsync_with_edquot() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    let created = env.ok(&[
        "session",
        "create",
        "--quota-bytes",
        "64K",
        "--quota-files",
        "10",
        "--json",
    ]);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(created.json()["quota"]["bytes"], 65536, "{}", created.transcript());
    let m = Mount::new(&env, &id, &env.home().join("m"));
    let fits: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let ok = write_fsync_close(&m.path("fits.bin"), &fits);
    assert_eq!((ok.fsync, ok.close), (Ok(()), Ok(())), "{ok:?}");
    let over: Vec<u8> = (0..40_000u32).map(|i| (i % 241) as u8).collect();
    let w = write_fsync_close(&m.path("over.bin"), &over);
    assert_refused(&w, libc::EDQUOT, "over.bin");
    assert_unmount_names(m, &[("over.bin", "EDQUOT")]);
    assert_eq!(rest.get(&id, "over.bin"), None, "a refused file is not on the server");
    assert_eq!(rest.get(&id, "fits.bin").as_deref(), Some(&fits[..]));
    let usage = env.ok(&["session", "usage", &id, "--json"]).json();
    assert_eq!(
        (usage["files"].as_u64(), usage["unique_bytes"].as_u64()),
        (Some(1), Some(40_000)),
        "{usage}"
    );
    assert_eq!(usage["quota"]["bytes"], 65536, "{usage}");
    // The activity log names the write the mount sent, with its surface; the refused one is
    // not in it.
    let activity = env.ok(&["activity", &id, "--surface", "mount", "--json"]);
    let writes: Vec<serde_json::Value> = activity
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "write")
        .collect();
    assert_eq!(writes.len(), 1, "{}", activity.transcript());
    assert_eq!(writes[0]["path"], "fits.bin", "{}", activity.transcript());
    assert_eq!(writes[0]["origin"]["surface"], "mount");
    assert_eq!(writes[0]["origin"]["principal"], "admin");
}

/// A session archived while mounted takes no more changes: EROFS from the `fsync` and `close`
/// of a file written afterwards and from the `fsync` of a directory made afterwards.
#[test]
fn a_session_archived_while_mounted_fails_fsync_and_close_with_erofs() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    let (id, m) = Mount::of_new_session(&env);
    let before = write_fsync_close(&m.path("before.txt"), b"before");
    assert_eq!((before.fsync, before.close), (Ok(()), Ok(())), "{before:?}");
    env.ok(&["session", "archive", &id]);
    let w = write_fsync_close(&m.path("after.txt"), b"after");
    assert_refused(&w, libc::EROFS, "after.txt");
    assert_close_refused(&m.path("after.txt"), libc::EROFS, "after.txt");
    std::fs::create_dir(m.path("newdir")).unwrap();
    let dir = File::open(m.path("newdir")).unwrap();
    assert_eq!(
        dir.sync_all().map_err(errno),
        Err(libc::EROFS),
        "fsync of a new directory"
    );
    drop(dir);

    let root = m.root().to_owned();
    let (code, live) = status(&env, &root);
    assert_ne!(code, 0, "{live}");
    assert!(
        listed(&live, "after.txt").iter().all(|e| e["errno"] == "EROFS") && !listed(&live, "after.txt").is_empty(),
        "{live}"
    );
    assert_unmount_names(m, &[("after.txt", "EROFS"), ("newdir", "EROFS")]);
    assert_eq!(rest.get(&id, "before.txt").as_deref(), Some(&b"before"[..]));
    assert_eq!(rest.get(&id, "after.txt"), None);

    // Mounted again now that it is archived: read-only from the start, and it says so.
    let again = Mount::new(&env, &id, &env.home().join("again"));
    assert!(
        again.stdout().contains("read-only") && again.stdout().contains("archived"),
        "{}",
        again.stdout()
    );
    assert_eq!(
        File::create(again.path("late.txt")).map(drop).map_err(errno),
        Err(libc::EROFS)
    );
    assert_eq!(std::fs::read(again.path("before.txt")).unwrap(), b"before");
    again.unmount();
}

/// A token revoked while mounted: the server no longer accepts it, so a change made afterwards
/// fails its `fsync` and `close` with EACCES (permission is gone; the session itself is not
/// read-only), and the unmount names it.
#[test]
fn a_token_revoked_while_mounted_fails_fsync_and_close_with_eacces() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    let id = env.new_session();
    let (token_id, secret) = token(&env, &id, "write");
    let m = Mount::with_token(&env, &id, &env.home().join("m"), &secret);
    assert!(!m.stdout().contains("read-only"), "{}", m.stdout());
    let before = write_fsync_close(&m.path("before.txt"), b"before");
    assert_eq!((before.fsync, before.close), (Ok(()), Ok(())), "{before:?}");
    env.ok(&["token", "revoke", &token_id]);
    let w = write_fsync_close(&m.path("after.txt"), b"after");
    assert_refused(&w, libc::EACCES, "after.txt");
    assert_close_refused(&m.path("after.txt"), libc::EACCES, "after.txt");

    let root = m.root().to_owned();
    let (code, live) = status(&env, &root);
    assert_ne!(code, 0, "{live}");
    let entries = listed(&live, "after.txt");
    assert!(
        !entries.is_empty() && entries.iter().all(|e| e["errno"] == "EACCES"),
        "{live}"
    );
    assert_unmount_names(m, &[("after.txt", "EACCES")]);
    assert_eq!(rest.get(&id, "before.txt").as_deref(), Some(&b"before"[..]));
    assert_eq!(rest.get(&id, "after.txt"), None);
}
