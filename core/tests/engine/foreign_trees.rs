//! A commit git made is read in the session's spelling of names (its tree converted, names
//! compared as bytes); a commit the engine made is read as it is. Checked with the real git.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use aether_core::ObjectId;

use crate::common::*;

/// `git ARGS` in `dir`, isolated; stdout as bytes.
fn git_bytes(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git must be installed to run these tests");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Paths (bytes) of every file below `tree`, as git lists them.
fn files(objects_git: &Path, tree: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = git_bytes(objects_git, &["ls-tree", "-r", "-z", "--name-only", tree])
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_foreign_tree_is_converted_by_bytes_and_an_own_commit_is_not() {
    let e = engine().await;
    let src = e.dir.path().join("src");
    for dir in ["a/b/c/.git~~", "plain"] {
        std::fs::create_dir_all(src.join(dir)).unwrap();
    }
    std::fs::write(src.join(".git~"), "1").unwrap();
    std::fs::write(src.join("a/GIT~1~"), "2").unwrap();
    std::fs::write(src.join("a/b/c/.git~~/x"), "3").unwrap();
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"caf\xff.txt")), "4").unwrap();
    std::fs::write(src.join("plain/y"), "5").unwrap();
    git_bytes(e.dir.path(), &["init", "-q", "src"]);
    git_bytes(&src, &["add", "-A"]);
    git_bytes(&src, &["commit", "-q", "-m", "foreign"]);
    let objects_git = e.dir.path().join("data/objects.git");
    git_bytes(
        &objects_git,
        &["fetch", "-q", src.to_str().unwrap(), "HEAD:refs/test/foreign"],
    );
    let commit = String::from_utf8(git_bytes(&objects_git, &["rev-parse", "refs/test/foreign"])).unwrap();
    let commit = ObjectId::from_hex(commit.trim().as_bytes()).unwrap();

    let tree = e.session_tree(&commit).unwrap();
    let expected: Vec<&[u8]> = vec![b".git~~", b"a/GIT~1~~", b"a/b/c/.git~~~/x", b"caf\xff.txt", b"plain/y"];
    assert_eq!(
        files(&objects_git, &tree.to_string()),
        expected,
        "escaped as session names, bytes kept"
    );
    let subtree = |t: &str| String::from_utf8(git_bytes(&objects_git, &["rev-parse", &format!("{t}:plain")])).unwrap();
    assert_eq!(
        subtree(&tree.to_string()),
        subtree(&commit.to_string()),
        "an unchanged subtree is shared"
    );
    assert_eq!(e.session_tree(&commit).unwrap(), tree, "the same answer again");

    // A commit the engine writes says its tree needs no conversion, and git accepts it.
    let id = empty_session(&e).await;
    put(&e, &id, ".git/HEAD", b"ref: refs/heads/main\n").await;
    put(&e, &id, "GIT~1~", b"x").await;
    let cp = e.checkpoint(&id, None).await.unwrap().checkpoint;
    assert_eq!(e.session_tree(&cp.commit).unwrap(), cp.tree);
    let raw = String::from_utf8(git_bytes(&objects_git, &["cat-file", "commit", &cp.commit.to_string()])).unwrap();
    assert!(raw.contains("\naether-names escaped\n"), "{raw}");
    assert_eq!(
        files(&objects_git, &cp.tree.to_string()),
        [&b".git~/HEAD"[..], b"GIT~1~~"],
        "the session's spelling"
    );
    git_bytes(&objects_git, &["fsck", "--strict", "--no-dangling", "--no-progress"]);
}
