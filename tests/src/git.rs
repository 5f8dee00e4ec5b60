//! The real `git`, isolated from the machine's and the user's configuration, with pinned
//! identities and dates, under a time limit.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process;

/// `git ARGS` in `dir` (run under coreutils' `timeout`: 124 means it hung).
pub fn git(dir: &Path, limit: Duration) -> Command {
    let mut c = process::timed(limit, "git");
    c.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ada Lovelace")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Charles Babbage")
        .env("GIT_COMMITTER_EMAIL", "charles@example.com")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    c
}

/// `git ARGS` in `dir` (five minutes at most), expecting success; stdout.
pub fn ok_in(dir: &Path, args: &[&str]) -> String {
    process::ok(git(dir, Duration::from_secs(300)).args(args))
}

/// `git ARGS` in `dir` within `limit`; stdout, or the failure with both outputs.
pub fn run_in(dir: &Path, limit: Duration, args: &[&str]) -> Result<String, String> {
    process::run(git(dir, limit).args(args))
}
