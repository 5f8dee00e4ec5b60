//! Prerequisites of the test suites (FUSE, git, GNU tar, python3, schemathesis). On a developer
//! machine a missing one skips the test that needs it with a note on stderr; with `CI=true` it is
//! a failure, so CI can never pass by skipping.

use std::path::Path;
use std::process::{Command, Stdio};

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `what` is missing for `test`: `false` (skip), or a panic with `CI=true`.
pub fn missing(what: &str, test: &str) -> bool {
    if in_ci() {
        panic!("CI=true but {what} is missing: {test} must run in CI (.ci/run installs it)");
    }
    eprintln!("skipping {test}: {what} is missing (CI=true makes this a failure)");
    false
}

fn tool_runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The kernel can mount FUSE file systems here (`/dev/fuse`), and we may unmount them.
pub fn fuse(test: &str) -> bool {
    if !Path::new("/dev/fuse").exists() {
        return missing("/dev/fuse", test);
    }
    true
}

pub fn git(test: &str) -> bool {
    tool_runs("git", "--version") || missing("git", test)
}

/// GNU tar (sparse archives, `--format=gnu|pax`).
pub fn gnu_tar(test: &str) -> bool {
    let gnu = Command::new("tar")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU tar"));
    gnu || missing("GNU tar", test)
}

pub fn schemathesis(test: &str) -> bool {
    tool_runs("schemathesis", "--version") || missing("schemathesis (pip install schemathesis)", test)
}

pub fn promtool(test: &str) -> bool {
    tool_runs("promtool", "--version") || missing("promtool (Debian package prometheus)", test)
}

pub fn python3(test: &str) -> bool {
    tool_runs("python3", "--version") || missing("python3", test)
}

/// Everything a test that mounts and uses git needs.
pub fn fuse_and_git(test: &str) -> bool {
    fuse(test) && git(test)
}
