//! What a mount acknowledges is on the server. `aether unmount`, `SIGTERM` of the mount process
//! and `fsync` of the mount's root wait until the server acknowledged every write the mount
//! accepted; a write the server refused makes `fsync` fail and the unmount exit non-zero naming
//! it; a file open for writing keeps its name when another client replaces it. Real kernel
//! mounts against the in-process server; everything is read back over REST, never through the
//! mount that wrote it. With CI=true a machine that cannot mount is a failure, not a skip.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Rest, eventually, fuse_available, is_mounted, ok, timed};

/// Bytes that compress to nothing useful and differ for every seed (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Twenty files of a few MB (sizes off block boundaries) under `dir`, by name.
fn write_sources(dir: &Path, seed: u64) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    (0..20u64)
        .map(|i| {
            let name = format!("file-{i:02}.bin");
            let bytes = noise(seed * 100 + i, (2 << 20) + (i as usize) * 40_961);
            std::fs::write(dir.join(&name), &bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// Every file of `want` under `prefix` over REST, byte for byte; the first differences otherwise.
fn missing_on_server(rest: &Rest, session: &str, prefix: &str, want: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    want.iter()
        .filter_map(|(name, bytes)| {
            let path = format!("{prefix}{name}");
            match rest.get(session, &path) {
                None => Some(format!("{path}: missing")),
                Some(got) if got != *bytes => Some(format!("{path}: {} bytes, want {}", got.len(), bytes.len())),
                Some(_) => None,
            }
        })
        .collect()
}

fn cp_r(from: &Path, to: &Path) {
    ok(
        timed(Duration::from_secs(120), "cp").arg("-r").arg(from).arg(to),
        String::new,
    );
}

#[test]
fn unmount_returns_once_every_copied_file_is_on_the_server() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    for round in 0..3 {
        let src = env.home().join(format!("src-{round}"));
        let want = write_sources(&src, round);
        let (id, m) = Mount::of_new_session(&env);
        cp_r(&src, &m.path("copy"));
        m.unmount();
        // At once, on other surfaces: every file, every byte, in an export as file by file.
        let exported = rest.export_snapshot(&id);
        let in_export = want
            .iter()
            .filter(|(name, bytes)| {
                exported.get(&format!("copy/{name}"))
                    == Some(&crate::mount_harness::Node::File {
                        mode: 0o644,
                        size: bytes.len() as u64,
                        digest: crate::mount_harness::digest(bytes),
                    })
            })
            .count();
        assert_eq!(in_export, 20, "round {round}: files in an export right after unmount");
        let missing = missing_on_server(&rest, &id, "copy/", &want);
        assert!(
            missing.is_empty(),
            "round {round}: {} of 20 files not on the server right after unmount: {missing:?}",
            missing.len()
        );
    }
}

/// A mount made with its own `--cache-dir` still records itself where `aether unmount DIR` (what
/// the mount prints) looks: the unmount waits for the writes (it used to return at once, while
/// they were still being sent). An unmount that finds no record of a mounted directory cannot
/// wait for its process, so it refuses rather than unmount.
#[test]
fn unmount_never_returns_without_waiting_for_the_mount_process() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    let id = env.new_session();
    let dir = env.home().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    let cache = env.home().join("own-cache");
    let log = env.home().join("mount.log");
    let mount = || {
        env.ok(&[
            "mount",
            &id,
            dir.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
        ])
    };
    mount();
    let src = env.home().join("src");
    let want = write_sources(&src, 5);
    cp_r(&src, &dir.join("copy"));
    let r = env.run(&["unmount", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(!is_mounted(&dir));
    let missing = missing_on_server(&rest, &id, "copy/", &want);
    assert!(missing.is_empty(), "not on the server right after unmount: {missing:?}");

    mount();
    let records = env.home().join(".cache/aether/mounts");
    let pid_files: Vec<_> = std::fs::read_dir(&records)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .collect();
    assert_eq!(pid_files.len(), 1, "the mount records itself in {}", records.display());
    let pid: u32 = std::fs::read_to_string(&pid_files[0])
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .expect("the pid file names the mount process");
    std::fs::remove_file(&pid_files[0]).unwrap();
    let r = env.run(&["unmount", dir.to_str().unwrap()]);
    assert_ne!(
        r.code,
        0,
        "unmounted a mount whose process it cannot wait for: {}",
        r.transcript()
    );
    assert!(is_mounted(&dir), "unmounted without waiting");
    // The mount process still serves: stopping it by signal sends its writes and unmounts.
    Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    assert!(
        eventually(Duration::from_secs(30), || !is_mounted(&dir)),
        "SIGTERM did not unmount"
    );
}

/// The deterministic form of the lost writes of the concurrent run: a descriptor opened with
/// `O_TRUNC` (the empty file goes to the server), another client replaces the file, the
/// directory is listed (the name gets the other client's content), then the descriptor is
/// written and synced. The write must reach the server under the file's name (last writer wins),
/// or `fsync` must fail; never `fsync` returning 0 with the server keeping the other bytes.
#[test]
fn a_write_through_a_descriptor_whose_file_was_replaced_elsewhere_reaches_the_server() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    let (id, m) = Mount::of_new_session(&env);
    rest.put(&id, "f.txt", b"the first version");
    for round in 0..3 {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(m.path("f.txt"))
            .unwrap();
        // The truncation reaches the server on its own (the setattr is sent at once).
        assert!(
            eventually(Duration::from_secs(10), || rest
                .get(&id, "f.txt")
                .is_some_and(|b| b.is_empty())),
            "round {round}: the truncation never reached the server; log:\n{}",
            m.log()
        );
        let theirs = format!("round {round}: written by another client");
        rest.put(&id, "f.txt", theirs.as_bytes());
        // A listing through the mount takes the other client's version.
        assert!(
            eventually(Duration::from_secs(10), || {
                std::fs::read_dir(m.root()).unwrap().for_each(drop);
                std::fs::read(m.path("f.txt")).unwrap() == theirs.as_bytes()
            }),
            "round {round}: the other client's version never showed in the mount"
        );
        let mine = format!("round {round}: written through the descriptor");
        f.write_all(mine.as_bytes()).unwrap();
        let synced = f.sync_all();
        drop(f);
        let on_server = rest.get(&id, "f.txt").unwrap();
        match synced {
            Ok(()) => assert_eq!(
                String::from_utf8_lossy(&on_server),
                mine,
                "round {round}: fsync returned 0 but the server has other bytes; log:\n{}",
                m.log()
            ),
            Err(e) => panic!(
                "round {round}: fsync failed ({e}): the write was not sent; log:\n{}",
                m.log()
            ),
        }
        // The mount shows what the server holds under that name.
        assert_eq!(
            std::fs::read(m.path("f.txt")).unwrap(),
            mine.as_bytes(),
            "round {round}"
        );
    }
    m.unmount();
}

/// A file over the server's size limit is refused: its `fsync` fails, `fsync` of the mount's
/// root fails once (something was refused since the last one) and then flushes cleanly, and the
/// files that fit are all on the server as soon as it returns.
#[test]
fn a_file_over_the_size_limit_fails_fsync_and_fsync_of_the_root_flushes_the_rest() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::with_config(|c| c.max_file_size = 1 << 20);
    let rest = Rest::new(&env);
    let (id, m) = Mount::of_new_session(&env);
    let big = noise(7, (1 << 20) + 1);
    let err = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(m.path("too-big.bin"))?;
        f.write_all(&big)?;
        f.sync_all()
    })()
    .expect_err("fsync returned 0 for a file the server refused");
    assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    let root = std::fs::File::open(m.root()).unwrap();
    let err = root.sync_all().expect_err("fsync of the root hid a refused upload");
    assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    // Files that fit, never synced one by one: the root's fsync sends them all.
    let mut want = BTreeMap::new();
    for i in 0..30u64 {
        let bytes = noise(100 + i, 1000 + (i as usize) * 30_011);
        std::fs::write(m.path(&format!("ok-{i}.bin")), &bytes).unwrap();
        want.insert(format!("ok-{i}.bin"), bytes);
    }
    root.sync_all()
        .expect("nothing was refused since the last fsync of the root");
    drop(root);
    let missing = missing_on_server(&rest, &id, "", &want);
    assert!(
        missing.is_empty(),
        "not on the server after fsync of the root: {missing:?}"
    );
    let r = m.unmount_reporting();
    assert_ne!(r.code, 0, "{}", r.transcript());
    assert!(r.stderr.contains("too-big.bin"), "{}", r.transcript());
    assert_eq!(rest.get(&id, "too-big.bin"), None);
}

/// `aether mount -f` as this test's child, so its exit code can be read.
struct Foreground {
    child: Option<Child>,
    dir: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Foreground {
    fn start(env: &TestEnv, session: &str, name: &str) -> Foreground {
        let dir = env.home().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let log = env.home().join(format!("{name}.log"));
        let mut child = env
            .cmd(&[
                "mount",
                "-f",
                session,
                dir.to_str().unwrap(),
                "--log-file",
                log.to_str().unwrap(),
                "--log-level",
                "info",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("mounted"), "{line}");
        assert!(is_mounted(&dir));
        Foreground {
            child: Some(child),
            dir,
            log,
        }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.join(rel)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code once the process is gone.
    fn terminate(&mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        ok(
            Command::new("kill").arg("-TERM").arg(child.id().to_string()),
            String::new,
        );
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the mount process outlived SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.dir)
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn sigterm_sends_everything_before_the_mount_process_exits_and_says_what_was_refused() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::with_config(|c| c.max_file_size = 3 << 20);
    let rest = Rest::new(&env);
    let id = env.new_session();
    let src = env.home().join("src");
    let want = write_sources(&src, 42);
    let mut m = Foreground::start(&env, &id, "fg");
    cp_r(&src, &m.path("copy"));
    assert_eq!(m.terminate(), 0, "log:\n{}", m.log());
    assert!(!is_mounted(&m.dir));
    let missing = missing_on_server(&rest, &id, "copy/", &want);
    assert!(missing.is_empty(), "not on the server after SIGTERM: {missing:?}");

    // A refused file: the process exits non-zero and its log names the file and lost+found.
    let mut m = Foreground::start(&env, &id, "fg2");
    std::fs::write(m.path("over.bin"), noise(9, (3 << 20) + 1)).unwrap();
    std::fs::write(m.path("fits.txt"), b"small").unwrap();
    let code = m.terminate();
    let log = m.log();
    assert_ne!(code, 0, "log:\n{log}");
    assert!(log.contains("over.bin") && log.contains("lost+found"), "log:\n{log}");
    assert_eq!(rest.get(&id, "fits.txt").as_deref(), Some(&b"small"[..]));
}

/// The mount's root: a mode change is the root's own attribute, shown at once and after a
/// remount; the root is never shown as an entry of itself; `chown` to its owner and new times
/// behave as on any directory; a rename fails as for any mount point.
#[test]
fn the_mount_root_keeps_its_own_attributes() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    let (id, m) = Mount::of_new_session(&env);
    std::fs::write(m.path("a.txt"), b"a").unwrap();
    std::fs::set_permissions(m.root(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(m.root()), 0o700);
    let meta = std::fs::metadata(m.root()).unwrap();
    std::os::unix::fs::chown(m.root(), Some(meta.uid()), Some(meta.gid())).unwrap();
    ok(
        Command::new("touch").arg("-d").arg("@981173106").arg(m.root()),
        String::new,
    );
    assert_eq!(std::fs::metadata(m.root()).unwrap().mtime(), 981_173_106);
    assert_eq!(mode(m.root()), 0o700);
    let err = std::fs::rename(m.root(), env.home().join("elsewhere")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    File::open(m.root()).unwrap().sync_all().unwrap();
    // A change elsewhere makes the mount list the root again: its entries, never itself.
    rest.put(&id, "b.txt", b"b");
    assert!(
        eventually(Duration::from_secs(5), || names_of(m.root()) == ["a.txt", "b.txt"]),
        "the root lists {:?}",
        names_of(m.root())
    );
    assert_eq!(mode(m.root()), 0o700);
    m.unmount();
    let m = Mount::new(&env, &id, &env.home().join("m"));
    assert_eq!(mode(m.root()), 0o700, "the root's mode after a remount");
    assert_eq!(names_of(m.root()), ["a.txt", "b.txt"]);
    m.unmount();
}

fn names_of(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `chmod 700` of the mount's root changes the root's mode and nothing else the session holds:
/// its listings (the recursive one too) answer at once with the entries it had. The server
/// keeps the root out of its own listing (its side of this); the mount sends the mode only.
#[test]
fn a_chmod_of_the_mount_root_leaves_the_session_listable() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let rest = Rest::new(&env);
    let (id, m) = Mount::of_new_session(&env);
    std::fs::create_dir(m.path("d")).unwrap();
    std::fs::write(m.path("d/a.txt"), b"a").unwrap();
    std::fs::set_permissions(m.root(), std::fs::Permissions::from_mode(0o700)).unwrap();
    File::open(m.root()).unwrap().sync_all().unwrap();
    // The one-level listing first: a server that lists the root as its own entry would walk it
    // forever in the recursive one.
    let shallow = rest
        .listing(&id, "", false, Duration::from_secs(10))
        .expect("the root's listing answers");
    let paths = |v: &serde_json::Value| -> Vec<String> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(paths(&shallow), ["d"], "{shallow}");
    let deep = rest
        .listing(&id, "", true, Duration::from_secs(10))
        .expect("the recursive listing answers");
    assert_eq!(paths(&deep), ["d", "d/a.txt"], "{deep}");
    m.unmount();
    let m = Mount::new(&env, &id, &env.home().join("m"));
    assert_eq!(
        std::fs::metadata(m.root()).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    m.unmount();
}
