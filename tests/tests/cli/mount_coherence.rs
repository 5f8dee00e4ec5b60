//! Changes made elsewhere (the API) to a directory that a process in the mount is working in:
//! the change must show up, and the process must keep a usable working directory (a kernel
//! entry invalidation of a directory detaches it from every process whose cwd it is, and then
//! getcwd() fails with ENOENT: cargo, rustup and shells stop working there).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::TestEnv;
use crate::mount_harness::{Mount, fuse_available};

/// A child that is killed if the test fails before waiting for it: a process left working in
/// the mount would keep it busy, so it could not be unmounted.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A python process that enters `dir`, says so, waits for `go`, then reports getcwd() and
/// what it lists in `.`.
const WATCHER: &str = r#"
import os, sys, time
os.chdir(sys.argv[1])
open(sys.argv[2], "w").close()
deadline = time.time() + 20
while not os.path.exists(sys.argv[3]) and time.time() < deadline:
    time.sleep(0.05)
try:
    print("cwd", os.getcwd())
except OSError as e:
    print("cwd error", e.errno)
print("ls", ",".join(sorted(os.listdir("."))))
"#;

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_directory_changed_elsewhere_stays_a_working_directory() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let (id, m) = Mount::of_new_session(&env);
    std::fs::create_dir(m.path("work")).unwrap();
    std::fs::write(m.path("work/local.txt"), b"local").unwrap();
    let ready = env.home().join("ready");
    let go = env.home().join("go");
    let child = Command::new("python3")
        .arg("-c")
        .arg(WATCHER)
        .arg(m.path("work"))
        .arg(&ready)
        .arg(&go)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(Some(child));
    wait_for(&ready);

    // Elsewhere: the directory's mode changes and a file appears in it.
    env.ok(&["fs", "chmod", &id, "700", "work"]);
    let local = env.home().join("api.txt");
    std::fs::write(&local, b"from the api").unwrap();
    env.ok(&["fs", "put", &id, local.to_str().unwrap(), "work/api.txt"]);
    // The mount promises visibility within about a second.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&go, b"").unwrap();

    let out = child.0.take().unwrap().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let work = std::fs::canonicalize(m.path("work")).unwrap();
    assert_eq!(
        stdout,
        format!("cwd {}\nls api.txt,local.txt\n", work.display()),
        "mount log:\n{}",
        m.log()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(m.path("work")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    m.unmount();
}

/// Two mounts of one session and the API: every change is recorded as coming from where it was
/// made (each mount under an id of its own, the CLI as gRPC), so each mount skips exactly its
/// own changes on the watch stream and shows the other's at once.
#[test]
fn each_mount_s_changes_carry_its_own_id_and_the_other_mount_shows_them() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let (id, a) = Mount::of_new_session(&env);
    let dir_b = env.home().join("mnt-b");
    std::fs::create_dir(&dir_b).unwrap();
    let b = Mount::new(&env, &id, &dir_b);
    // Both mounts list the root first, so each has a listing the other's change must replace.
    assert!(std::fs::read_dir(a.root()).unwrap().next().is_none());
    assert!(std::fs::read_dir(b.root()).unwrap().next().is_none());
    let write = |path: &Path, bytes: &[u8]| {
        let mut f = std::fs::File::create(path).unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f.sync_all().unwrap();
    };
    write(&a.path("from-a"), b"written on a");
    write(&b.path("from-b"), b"written on b");
    let local = env.home().join("api.txt");
    std::fs::write(&local, b"from the api").unwrap();
    env.ok(&["fs", "put", &id, local.to_str().unwrap(), "from-cli"]);

    // Each mount shows the other's file and the CLI's within the mount's promise (~1 s).
    let both = |m: &Mount<'_>| {
        ["from-a", "from-b", "from-cli"]
            .iter()
            .all(|f| std::fs::read(m.path(f)).is_ok_and(|b| !b.is_empty()))
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(both(&a) && both(&b), "a log:\n{}\nb log:\n{}", a.log(), b.log());
    assert_eq!(std::fs::read(a.path("from-b")).unwrap(), b"written on b");
    assert_eq!(std::fs::read(b.path("from-a")).unwrap(), b"written on a");

    // The event log names each origin.
    let mut watch = env
        .cmd(&["session", "watch", &id, "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    watch.kill().unwrap();
    let out = watch.wait_with_output().unwrap();
    let mut origin_of = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(path) = ev["path"].as_str() {
            origin_of.insert(path.to_owned(), ev["origin"].clone());
        }
    }
    let (oa, ob, oc) = (&origin_of["from-a"], &origin_of["from-b"], &origin_of["from-cli"]);
    for o in [oa, ob] {
        assert_eq!(
            (o["surface"].as_str(), o["principal"].as_str()),
            (Some("mount"), Some("admin")),
            "{o}"
        );
        let mount = o["mount"].as_str().unwrap_or_default();
        assert!(mount.len() == 16 && mount.bytes().all(|c| c.is_ascii_hexdigit()), "{o}");
    }
    assert_ne!(oa["mount"], ob["mount"], "each mount has its own id");
    assert_eq!(
        oc,
        &serde_json::json!({"surface": "grpc", "principal": "admin", "mount": null})
    );
    a.unmount();
    b.unmount();
}
