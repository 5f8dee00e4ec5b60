//! `aether mount` and `aether unmount` as a shell runs them, their output piped into a program
//! that has already gone (`aether mount ... | true`, a `| head` that has read enough): the
//! commands still succeed (the mount is made, the unmount waits) and nothing panics, in the
//! commands or in the background mount process, whose log file holds plain text.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::env::{Run, TestEnv};
use crate::mount_harness::{fuse_available, is_mounted};

/// `aether ARGS` with its standard output a pipe nobody reads: the read end is closed before
/// the command writes anything, so every write to it fails with EPIPE.
fn into_closed_pipe(env: &TestEnv, args: &[&str]) -> Run {
    let mut child = env
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Detaches the mount if the test fails before its unmount (the mount process then stops).
struct Detach<'a>(&'a Path);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        if is_mounted(self.0) {
            let _ = Command::new("fusermount3").arg("-uz").arg(self.0).status();
        }
    }
}

#[test]
fn mount_and_unmount_into_a_closed_pipe_succeed_without_panics_and_log_plain_text() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let dir = env.home().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    let _detach = Detach(&dir);
    let log = env.home().join("mount.log");
    let args = [
        "mount",
        &id,
        dir.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
        "--log-level",
        "debug",
    ];
    let r = into_closed_pipe(&env, &args);
    assert!(
        !r.stderr.contains("panicked"),
        "aether mount panicked: {}",
        r.transcript()
    );
    assert_eq!(r.code, 0, "aether mount | (closed): {}", r.transcript());
    assert!(is_mounted(&dir));
    std::fs::write(dir.join("a.txt"), b"through the mount\n").unwrap();
    assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"through the mount\n");
    let r = into_closed_pipe(&env, &["unmount", dir.to_str().unwrap()]);
    assert!(
        !r.stderr.contains("panicked"),
        "aether unmount panicked: {}",
        r.transcript()
    );
    assert_eq!(r.code, 0, "aether unmount | (closed): {}", r.transcript());
    assert!(!is_mounted(&dir));
    // `aether unmount` returns once the mount process has exited: its log is complete.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "the mount process panicked:\n{text}");
    assert!(
        !text.contains('\u{1b}'),
        "the log file holds colour codes:\n{}",
        text.escape_debug()
    );
    assert_eq!(
        env.ok(&["fs", "cat", &id, "a.txt"]).stdout,
        "through the mount\n",
        "the write reached the server"
    );
}
