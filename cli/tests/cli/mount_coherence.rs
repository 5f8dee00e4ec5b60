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
