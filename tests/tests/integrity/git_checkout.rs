//! A git checkout stays clean across mounts: a repository with files over 1 MiB (chunked, read
//! in several blocks by readahead threads), symlinks whose targets hold `./` and `..`, and a
//! packed `.git`, imported with `--from-dir`; `git status` is clean after a cold mount (empty
//! cache), after a remount with the warm cache and in a fork's mount, and `git fsck --full`
//! passes in the mount.
//!
//! Scale: `AETHER_INTEGRITY_CHECKOUT_FILES=N` generates N files with
//! `fixtures/make_linux_like_tree.py` (default 400; 78579 is Linux 6.1's shape), or
//! `AETHER_INTEGRITY_CHECKOUT=DIR` uses an existing checkout (its `.git` included).

use std::path::{Path, PathBuf};
use std::time::Duration;

use aether_tests::env::Env;
use aether_tests::mount::{Mount, MountOptions};
use aether_tests::report::Differences;
use aether_tests::{git, prereq, process, seeded};

use crate::{env, step};

const MIB: usize = 1 << 20;
/// Git commands on a Linux-sized tree take minutes in a debug build.
const GIT_LIMIT: Duration = Duration::from_secs(1800);

/// The checkout to import: the one named by `AETHER_INTEGRITY_CHECKOUT`, or a generated one.
fn checkout(env: &Env) -> PathBuf {
    if let Ok(dir) = std::env::var("AETHER_INTEGRITY_CHECKOUT") {
        return PathBuf::from(dir);
    }
    let files: u64 = std::env::var("AETHER_INTEGRITY_CHECKOUT_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let dir = env.home().join("checkout");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/make_linux_like_tree.py");
    step(&format!("make_linux_like_tree.py --files {files}"), || {
        process::ok(process::timed(GIT_LIMIT, "python3").arg(&script).arg(&dir).args([
            "--files",
            &files.to_string(),
            "--seed",
            "32",
        ]))
    });
    // Whatever the scale: files over 1 MiB and symlinks with `./` and `..`.
    let big = dir.join("firmware");
    std::fs::create_dir_all(&big).unwrap();
    for (i, size) in [
        3 * MIB / 2,
        9 * MIB / 4,
        3 * MIB,
        9 * MIB / 2,
        5 * MIB,
        6 * MIB,
        5 * MIB / 2,
        7 * MIB / 2,
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(
            big.join(format!("blob-{i}.bin")),
            seeded::bytes(32, &format!("blob-{i}"), size),
        )
        .unwrap();
    }
    let links = dir.join("links");
    std::fs::create_dir_all(&links).unwrap();
    for (name, target) in [
        ("up", "../firmware/blob-0.bin"),
        ("here", "./up"),
        ("dotdot-dot", "../.././x"),
        ("double", "..//firmware//blob-1.bin"),
    ] {
        std::os::unix::fs::symlink(target, links.join(name)).unwrap();
    }
    let g = |args: &[&str]| process::ok(git::git(&dir, GIT_LIMIT).args(args));
    step("git init, add, commit, gc", || {
        g(&["init", "-q", "-b", "main"]);
        g(&["config", "core.autocrlf", "false"]);
        g(&["add", "-A"]);
        g(&["commit", "-q", "-m", "checkout"]);
        g(&["gc", "-q"]);
    });
    assert_eq!(
        process::ok(git::git(&dir, GIT_LIMIT).args(["status", "--porcelain"])),
        ""
    );
    dir
}

/// Mount `session`, run `git status` and (with `fsck`) `git fsck --full` in the repository,
/// unmount; what failed goes to `diffs` under `surface`.
fn status_in_mount(env: &Env, session: &str, cache: &Path, surface: &str, fsck: bool, diffs: &Differences) {
    let opts = MountOptions {
        cache_dir: Some(cache.to_owned()),
        ..Default::default()
    };
    let m = match Mount::new(env, session, &env.dir("m"), &opts) {
        Ok(m) => m,
        Err(e) => {
            diffs.add(surface, "(mount)", e);
            return;
        }
    };
    let repo = m.root();
    match step(&format!("{surface}: git status"), || {
        git::run_in(repo, GIT_LIMIT, &["status", "--porcelain"])
    }) {
        Ok(out) if out.is_empty() => {}
        Ok(out) => {
            let lines: Vec<&str> = out.lines().collect();
            diffs.add(
                surface,
                "(git status)",
                format!(
                    "{} paths not clean, the first ones:\n{}",
                    lines.len(),
                    lines[..lines.len().min(30)].join("\n")
                ),
            );
        }
        Err(e) => diffs.add(surface, "(git status)", e),
    }
    // `git status` trusts the stat data the index holds (the cold mount's status refreshed it),
    // so a second look hashes every file: an index made from HEAD outside the mount, with no
    // stat data, makes git compare every file's bytes.
    let index = env.home().join(format!("index-{}", surface.replace(' ', "-")));
    let _ = std::fs::remove_file(&index);
    let with_index = |args: &[&str]| process::run(git::git(repo, GIT_LIMIT).env("GIT_INDEX_FILE", &index).args(args));
    let hashed = with_index(&["read-tree", "HEAD"]).and_then(|_| {
        step(&format!("{surface}: git status hashing every file"), || {
            with_index(&["status", "--porcelain"])
        })
    });
    match hashed {
        Ok(out) if out.is_empty() => {}
        Ok(out) => {
            let lines: Vec<&str> = out.lines().collect();
            diffs.add(
                surface,
                "(every file hashed)",
                format!(
                    "{} paths differ from HEAD, the first ones:\n{}",
                    lines.len(),
                    lines[..lines.len().min(30)].join("\n")
                ),
            );
        }
        Err(e) => diffs.add(surface, "(every file hashed)", e),
    }
    if fsck
        && let Err(e) = step(&format!("{surface}: git fsck"), || {
            git::run_in(repo, GIT_LIMIT, &["fsck", "--full", "--no-progress"])
        })
    {
        diffs.add(surface, "(git fsck)", e);
    }
    if let Err(e) = m.unmount() {
        diffs.add(surface, "(unmount)", e);
    }
}

#[test]
fn git_checkout_stays_clean_across_mounts() {
    if !prereq::fuse_and_git("git_checkout_stays_clean_across_mounts")
        || !prereq::python3("git_checkout_stays_clean_across_mounts")
    {
        return;
    }
    let env = env();
    let dir = checkout(&env);
    let s = step("aether session create --from-dir", || {
        env.create_session_within(&["--from-dir", dir.to_str().unwrap()], GIT_LIMIT)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let cache = env.dir("cache");
    let diffs = Differences::new();
    status_in_mount(&env, &s, &cache, "cold mount", true, &diffs);
    status_in_mount(&env, &s, &cache, "remount, warm cache", false, &diffs);
    match env.rest.fork(&s, None) {
        Ok(f) => status_in_mount(&env, &f, &cache, "fork's mount", false, &diffs),
        Err(e) => diffs.add("fork's mount", "(fork)", e),
    }
    diffs.assert_none("git checkout across mounts");
}
