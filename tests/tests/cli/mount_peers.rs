//! Two mounts of one session: once a system call that changed one mount has returned (a
//! `close` after writes, `rename`, `unlink`, `mkdir`, `chmod`, `symlink`), the other mount shows
//! the change to every call that starts afterwards, although its kernel had cached the old
//! state. Each round caches the old state in mount B first, then changes it in mount A, then
//! looks in B at once, with no sleep: a stale answer is counted, and none may be seen. The same
//! holds for a read-only mount, and for a `git commit` (index and refs replaced by rename).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Rest, fuse_available, ok};

const ROUNDS: usize = 20;

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

/// Mounts A and B of `session` (B made with `b_args`).
fn two_mounts<'a>(env: &'a TestEnv, session: &str, b_args: &[&str]) -> (Mount<'a>, Mount<'a>) {
    let a = Mount::new(env, session, &env.home().join("a"));
    let b = Mount::with_args(env, session, &env.home().join("b"), b_args);
    (a, b)
}

/// Every kind of change made in `a` seen at once in `b`; the stale answers, described.
fn stale_answers(a: &Mount, b: &Mount) -> Vec<String> {
    let mut stale = Vec::new();
    std::fs::create_dir_all(a.path("d")).unwrap();
    for i in 0..ROUNDS {
        // Overwrite in place (open with O_TRUNC, write, close).
        let f = format!("d/over-{}", i % 3);
        std::fs::write(a.path(&f), format!("old {i}")).unwrap();
        let _ = read(&b.path(&f));
        let _ = read(&b.path(&f));
        let new = format!("new contents {i}, longer than before");
        std::fs::write(a.path(&f), &new).unwrap();
        if read(&b.path(&f)).as_deref() != Some(new.as_bytes()) {
            stale.push(format!("overwrite {f} round {i}: {:?}", read(&b.path(&f))));
        }

        // A new name B had looked up (and cached as missing).
        let n = format!("d/new-{i}");
        assert!(!b.path(&n).exists());
        std::fs::write(a.path(&n), b"fresh").unwrap();
        if read(&b.path(&n)).as_deref() != Some(&b"fresh"[..]) {
            stale.push(format!("create {n}: {:?}", read(&b.path(&n))));
        }

        // Rename over a file B had cached (an editor's save, git's index and refs).
        let t = format!("d/target-{}", i % 2);
        std::fs::write(a.path(&t), format!("before {i}")).unwrap();
        let _ = read(&b.path(&t));
        std::fs::write(a.path("d/tmp"), format!("after {i}")).unwrap();
        std::fs::rename(a.path("d/tmp"), a.path(&t)).unwrap();
        if read(&b.path(&t)).as_deref() != Some(format!("after {i}").as_bytes()) {
            stale.push(format!("rename over {t} round {i}: {:?}", read(&b.path(&t))));
        }

        // Delete.
        let _ = read(&b.path(&n));
        std::fs::remove_file(a.path(&n)).unwrap();
        if b.path(&n).exists() {
            stale.push(format!("delete {n}: still there"));
        }

        // Mkdir, chmod, symlink.
        let dir = format!("d/dir-{i}");
        assert!(!b.path(&dir).exists());
        std::fs::create_dir(a.path(&dir)).unwrap();
        if !b.path(&dir).is_dir() {
            stale.push(format!("mkdir {dir}: not a directory in B"));
        }
        let mode = if i % 2 == 0 { 0o600 } else { 0o640 };
        let _ = std::fs::metadata(b.path(&t));
        std::fs::set_permissions(a.path(&t), std::fs::Permissions::from_mode(mode)).unwrap();
        let seen = std::fs::metadata(b.path(&t)).map(|m| m.permissions().mode() & 0o7777);
        if seen.as_ref().ok() != Some(&mode) {
            stale.push(format!("chmod {t} to {mode:o} round {i}: {seen:?}"));
        }
        let l = format!("d/link-{i}");
        assert!(std::fs::symlink_metadata(b.path(&l)).is_err());
        std::os::unix::fs::symlink(format!("over-{}", i % 3), a.path(&l)).unwrap();
        let target = std::fs::read_link(b.path(&l)).ok();
        if target.as_deref() != Some(Path::new(&format!("over-{}", i % 3))) {
            stale.push(format!("symlink {l}: {target:?}"));
        }
    }
    stale
}

#[test]
fn what_one_mount_changed_is_what_another_mount_shows_once_the_call_returned() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let (a, b) = two_mounts(&env, &id, &[]);
    let stale = stale_answers(&a, &b);
    assert!(
        stale.is_empty(),
        "{} stale answers in B:\n{}",
        stale.len(),
        stale.join("\n")
    );
    // Both ways: B changes, A looks.
    std::fs::remove_dir_all(b.path("d")).unwrap();
    let stale = stale_answers(&b, &a);
    assert!(
        stale.is_empty(),
        "{} stale answers in A:\n{}",
        stale.len(),
        stale.join("\n")
    );
}

#[test]
fn a_read_only_mount_sees_a_change_once_the_writing_mount_returned() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let (a, b) = two_mounts(&env, &id, &["--ro"]);
    let stale = stale_answers(&a, &b);
    assert!(
        stale.is_empty(),
        "{} stale answers in B:\n{}",
        stale.len(),
        stale.join("\n")
    );
}

fn git(dir: &Path, args: &[&str]) -> String {
    ok(&mut crate::mount_harness::git(dir, args), || {
        format!("git {args:?} in {}", dir.display())
    })
}

#[test]
fn a_commit_in_one_mount_is_the_other_mounts_head_at_once() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let (a, b) = two_mounts(&env, &id, &[]);
    git(a.root(), &["init", "-q", "-b", "main"]);
    std::fs::write(a.path("f"), b"0").unwrap();
    git(a.root(), &["add", "f"]);
    git(a.root(), &["commit", "-q", "-m", "c0"]);
    let mut stale = Vec::new();
    for i in 1..=5 {
        // B reads HEAD, the index and the ref, so its kernel caches them.
        git(b.root(), &["log", "-1", "--format=%s"]);
        git(b.root(), &["status", "--porcelain"]);
        std::fs::write(a.path("f"), i.to_string()).unwrap();
        git(a.root(), &["commit", "-q", "-am", &format!("c{i}")]);
        let head = git(b.root(), &["log", "-1", "--format=%s"]);
        if head.trim() != format!("c{i}") {
            stale.push(format!("after c{i} B's HEAD is {}", head.trim()));
        }
        let status = git(b.root(), &["status", "--porcelain"]);
        if !status.trim().is_empty() {
            stale.push(format!("after c{i} B's status: {status}"));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

/// A descriptor open in a mount while the file is replaced elsewhere (over the API, and by a
/// rename over it in another mount) keeps reading the version it opened, as on a local disk,
/// never an error: it used to read the session root (EISDIR), then ESTALE for the parts it had
/// not read yet.
#[test]
fn a_descriptor_open_while_its_file_is_replaced_elsewhere_keeps_reading_the_version_it_opened() {
    use std::io::{Read, Seek, SeekFrom};
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let (a, b) = two_mounts(&env, &id, &[]);
    let rest = Rest::new(&env);
    let new = vec![b'n'; 200_000];
    for round in 0..4u32 {
        // Written elsewhere, new bytes each round, and large: mount A reads them from the
        // server, and what the descriptor has not read yet is fetched after the replacement.
        let old: Vec<u8> = (0..32u32 << 20)
            .map(|i| (i.wrapping_mul(round + 3) % 251) as u8)
            .collect();
        rest.put(&id, "f", &old);
        let opened = crate::mount_harness::eventually(std::time::Duration::from_secs(5), || {
            let mut first = vec![0; 4096];
            std::fs::File::open(a.path("f"))
                .and_then(|mut f| f.read_exact(&mut first))
                .is_ok_and(|()| first == old[..4096])
        });
        assert!(opened, "round {round}: mount A never showed the version written");
        let mut fd = std::fs::File::open(a.path("f")).unwrap();
        let mut first = vec![0; 4096];
        fd.read_exact(&mut first).unwrap();
        if round % 2 == 0 {
            rest.put(&id, "f", &new);
        } else {
            std::fs::write(b.path("tmp"), &new).unwrap();
            std::fs::rename(b.path("tmp"), b.path("f")).unwrap();
        }
        fd.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        let read = fd.read_to_end(&mut all);
        assert!(
            read.is_ok(),
            "round {round}: reading the open descriptor failed: {read:?}"
        );
        assert!(
            all == old,
            "round {round}: not the version opened ({} bytes, first {:?})",
            all.len(),
            all.first()
        );
        // A new open sees the new version (a change over the API arrives by the watch stream).
        let current = crate::mount_harness::eventually(std::time::Duration::from_secs(5), || {
            std::fs::read(a.path("f")).is_ok_and(|got| got == new)
        });
        assert!(current, "round {round}: a new open never saw the new version");
    }
}
