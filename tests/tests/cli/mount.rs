//! `aether mount` against a real aetherd and a real kernel mount: reads and writes both ways,
//! isolation of forks, and unmount sending what is queued. With CI=true a machine that cannot
//! mount is a failure, not a skip.

use std::time::Duration;

use crate::env::TestEnv;
use crate::mount_harness::{eventually, fuse_available};

struct Mounted<'a> {
    env: &'a TestEnv,
    dir: tempfile::TempDir,
}

impl Mounted<'_> {
    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let dir = self.dir.path().to_str().unwrap().to_owned();
        let _ = self.env.run(&["unmount", &dir]);
    }
}

fn mount<'a>(env: &'a TestEnv, session: &str, extra: &[&str]) -> Mounted<'a> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["mount", session, dir.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    env.ok(&args);
    Mounted { env, dir }
}

#[test]
fn files_flow_both_ways_between_the_mount_and_the_api() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let local = env.home().join("seed.txt");
    std::fs::write(&local, b"from the api\n").unwrap();
    env.ok(&["fs", "put", &id, local.to_str().unwrap(), "docs/seed.txt"]);

    let m = mount(&env, &id, &[]);
    assert_eq!(std::fs::read(m.path("docs/seed.txt")).unwrap(), b"from the api\n");

    // Written through the mount, fsynced: the server has it.
    {
        use std::io::Write;
        std::fs::create_dir(m.path("src")).unwrap();
        let mut f = std::fs::File::create(m.path("src/main.rs")).unwrap();
        f.write_all(b"fn main() {}\n").unwrap();
        f.sync_all().unwrap();
    }
    let cat = env.ok(&["fs", "cat", &id, "src/main.rs"]);
    assert_eq!(cat.stdout, "fn main() {}\n");

    // Written through the API: visible in the mount within a second or so.
    std::fs::write(&local, b"changed elsewhere\n").unwrap();
    env.ok(&["fs", "put", &id, local.to_str().unwrap(), "docs/seed.txt"]);
    assert!(
        eventually(Duration::from_secs(2), || std::fs::read(m.path("docs/seed.txt"))
            .unwrap()
            == b"changed elsewhere\n"),
        "the API's write did not show up in the mount"
    );

    // Closed without fsync, then unmounted: unmount waits until the server has it.
    std::fs::write(m.path("late.txt"), b"sent at close").unwrap();
    std::fs::rename(m.path("late.txt"), m.path("docs/late.txt")).unwrap();
    drop(m);
    assert_eq!(env.ok(&["fs", "cat", &id, "docs/late.txt"]).stdout, "sent at close");
    assert_eq!(env.run(&["fs", "stat", &id, "late.txt"]).code, 3);
}

#[test]
fn mounts_of_two_forks_are_isolated_and_at_is_read_only() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let local = env.home().join("f");
    std::fs::write(&local, b"base").unwrap();
    env.ok(&["fs", "put", &id, local.to_str().unwrap(), "f"]);
    env.ok(&["checkpoint", "create", &id]);
    let a = env.ok(&["session", "fork", &id, "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = env.ok(&["session", "fork", &id, "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ma = mount(&env, &a, &[]);
    let mb = mount(&env, &b, &[]);
    std::fs::write(ma.path("f"), b"changed in a").unwrap();
    std::fs::write(ma.path("only-a"), b"a").unwrap();
    assert_eq!(std::fs::read(mb.path("f")).unwrap(), b"base");
    assert!(!mb.path("only-a").exists());
    drop(ma);
    assert_eq!(env.ok(&["fs", "cat", &a, "f"]).stdout, "changed in a");
    assert_eq!(env.ok(&["fs", "cat", &b, "f"]).stdout, "base");

    let ro = mount(&env, &id, &["--at", "checkpoints/1"]);
    assert_eq!(std::fs::read(ro.path("f")).unwrap(), b"base");
    let err = std::fs::write(ro.path("f"), b"nope").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
}

#[test]
fn mount_errors_are_clear() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let r = env.run(&["mount", "s_doesnotexist", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.transcript());
    assert!(
        r.stderr.contains("error:") && r.stderr.contains("hint:"),
        "{}",
        r.transcript()
    );
    let r = env.run(&["mount", "whatever", "/nonexistent/dir/for/aether"]);
    assert_eq!(r.code, 3, "{}", r.transcript());
    let r = env.run(&["unmount", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.transcript());
}

/// SIGTERM while a process still uses the mount: stopping would leave that process with "not
/// connected", so the mount keeps serving and says why; once the directory is free, the next
/// SIGTERM unmounts and the mount process exits after sending what was queued.
#[test]
fn a_busy_mount_keeps_serving_through_sigterm_and_stops_at_the_next_once_free() {
    use crate::mount_harness::{Mount, is_mounted};
    use std::io::{Read, Seek, Write};
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let (id, m) = Mount::of_new_session(&env);
    let mut held = std::fs::File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(m.path("held.txt"))
        .unwrap();
    held.write_all(b"written while the mount is asked to stop").unwrap();

    m.terminate();
    let logged = eventually(Duration::from_secs(5), || m.log().contains("the mount is busy"));
    assert!(logged, "no busy message after SIGTERM; mount log:\n{}", m.log());
    assert!(m.is_running(), "the mount process exited while the mount was busy");
    assert!(is_mounted(m.root()), "the busy mount was detached");
    // Still served: the open file reads back, new files can be made.
    held.rewind().unwrap();
    let mut back = String::new();
    held.read_to_string(&mut back).unwrap();
    assert_eq!(back, "written while the mount is asked to stop");
    std::fs::write(m.path("after.txt"), b"made after the first SIGTERM").unwrap();
    drop(held);

    m.terminate();
    let exited = eventually(Duration::from_secs(20), || !m.is_running());
    assert!(
        exited,
        "the second SIGTERM did not stop the free mount; log:\n{}",
        m.log()
    );
    assert!(!is_mounted(m.root()), "the mount process exited but left the mount");
    assert_eq!(
        env.ok(&["fs", "cat", &id, "held.txt"]).stdout,
        "written while the mount is asked to stop"
    );
    assert_eq!(
        env.ok(&["fs", "cat", &id, "after.txt"]).stdout,
        "made after the first SIGTERM"
    );
    m.forget();
}
