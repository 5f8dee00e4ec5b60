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

/// A foreign tree whose symlink target is longer than any a session takes (4,096 bytes) is
/// refused when it is converted (an import, a read of that revision), naming the symlink: a
/// stat of it would read the whole blob.
#[tokio::test]
async fn a_foreign_symlink_longer_than_a_target_can_be_is_refused() {
    let e = engine().await;
    let src = e.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    git_bytes(e.dir.path(), &["init", "-q", "src"]);
    let objects_git = e.dir.path().join("data/objects.git");
    // Git stores a symlink's target as a blob, so nothing stops one of 10,000 bytes.
    let blob_of = |n: usize| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "head -c {n} /dev/zero | tr '\\0' 'x' | git hash-object -w --stdin"
            ))
            .current_dir(&src)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let commit_of = |target: &str, name: &str| {
        let inner = mktree(&src, &format!("120000 blob {target}\t{name}\n"));
        let root = mktree(&src, &format!("040000 tree {inner}\td\n"));
        let commit = String::from_utf8(git_bytes(&src, &["commit-tree", &root, "-m", name])).unwrap();
        git_bytes(&src, &["update-ref", &format!("refs/heads/{name}"), commit.trim()]);
        git_bytes(
            &objects_git,
            &[
                "fetch",
                "-q",
                src.to_str().unwrap(),
                &format!("refs/heads/{name}:refs/test/{name}"),
            ],
        );
        ObjectId::from_hex(commit.trim().as_bytes()).unwrap()
    };
    let fine = commit_of(&blob_of(4096), "fine");
    e.session_tree(&fine).expect("a 4,096-byte target is a target");
    let commit = commit_of(&blob_of(10_000), "long");
    let err = e.session_tree(&commit).unwrap_err();
    assert_eq!(err.kind(), aether_core::ErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("'long'"), "{err}");
}

fn mktree(dir: &Path, entries: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .arg("mktree")
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(entries.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
