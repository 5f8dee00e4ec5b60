//! The tree id of a session equals what the real git computes for the same files.

use std::path::{Path, PathBuf};
use std::process::Command;

use aether_core::{SessionSource, WriteOptions};

use crate::common::*;

fn fixture(dir: &Path, large: usize) -> PathBuf {
    let root = dir.join("tree");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/make_sample_tree.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&root)
        .arg(large.to_string())
        .status()
        .expect("bash");
    assert!(status.success(), "fixture script failed");
    root
}

fn git_write_tree(root: &Path) -> String {
    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    let tree = git(root, &["write-tree"]);
    std::fs::remove_dir_all(root.join(".git")).expect("remove .git");
    tree
}

#[tokio::test]
async fn directory_import_matches_git_write_tree_including_chunked_files() {
    let e = small_chunk_engine().await;
    let scratch = tempfile::tempdir().unwrap();
    let root = fixture(scratch.path(), 300_000);
    let expected = git_write_tree(&root);
    let s = e
        .create_session(SessionSource::Directory(root.clone()), Default::default())
        .await
        .unwrap();
    assert_eq!(s.base_tree.to_hex().to_string(), expected);
    let st = e.stat(&s.id, "large.bin", None).await.unwrap();
    assert!(st.chunked, "large.bin must live in the chunk store");
    let extents = st.extents.expect("extents");
    assert!(extents.len() > 10);
    assert_eq!(extents.iter().map(|x| x.length).sum::<u64>(), 300_000);
    assert_eq!(
        get(&e, &s.id, "large.bin").await,
        std::fs::read(root.join("large.bin")).unwrap()
    );
    assert_eq!(
        e.stat(&s.id, "empty-dir", None).await.unwrap().kind,
        aether_core::FileKind::Dir
    );
    assert_eq!(e.stat(&s.id, "run.sh", None).await.unwrap().mode, 0o755);
    assert_eq!(e.readlink(&s.id, "src/docs-link", None).await.unwrap(), "../docs");
}

#[tokio::test]
async fn tar_and_tar_gz_imports_match_git_write_tree() {
    let e = small_chunk_engine().await;
    let scratch = tempfile::tempdir().unwrap();
    let root = fixture(scratch.path(), 100_000);
    let expected = git_write_tree(&root);
    for (flag, name) in [("-cf", "t.tar"), ("-czf", "t.tar.gz")] {
        let archive = scratch.path().join(name);
        let status = Command::new("tar")
            .arg(flag)
            .arg(&archive)
            .arg("-C")
            .arg(&root)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let file = tokio::fs::File::open(&archive).await.unwrap();
        let s = e.import_tar(file, Default::default()).await.unwrap();
        assert_eq!(s.base_tree.to_hex().to_string(), expected, "{name}");
        assert_eq!(
            e.stat(&s.id, "empty-dir", None).await.unwrap().kind,
            aether_core::FileKind::Dir
        );
    }
}

#[tokio::test]
async fn writes_through_the_api_then_checkpoint_match_git() {
    let e = small_chunk_engine().await;
    let scratch = tempfile::tempdir().unwrap();
    let root = fixture(scratch.path(), 50_000);
    let s = e
        .create_session(SessionSource::Directory(root.clone()), Default::default())
        .await
        .unwrap();
    // The same edits on disk and in the session.
    let big = noise(3, 20_000);
    std::fs::write(root.join("src/main.rs"), b"changed\n").unwrap();
    std::fs::write(root.join("new-large.bin"), &big).unwrap();
    std::fs::remove_file(root.join("a-b")).unwrap();
    std::fs::rename(root.join("src/nested"), root.join("moved")).unwrap();
    std::fs::create_dir_all(root.join("fresh/dir")).unwrap();
    std::fs::write(root.join("fresh/dir/x"), b"x").unwrap();
    std::os::unix::fs::symlink("fresh", root.join("fresh-link")).unwrap();
    e.write_bytes(&s.id, "src/main.rs", b"changed\n".to_vec(), WriteOptions::default())
        .await
        .unwrap();
    e.write_bytes(&s.id, "new-large.bin", big, WriteOptions::default())
        .await
        .unwrap();
    e.delete(&s.id, "a-b", false).await.unwrap();
    e.rename(&s.id, "src/nested", "moved").await.unwrap();
    put(&e, &s.id, "fresh/dir/x", b"x").await;
    e.symlink(&s.id, "fresh-link", "fresh").await.unwrap();
    e.chmod(&s.id, "moved/file-1.txt", 0o755).await.unwrap();
    let mut perms = std::fs::metadata(root.join("moved/file-1.txt")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(root.join("moved/file-1.txt"), perms).unwrap();

    let expected = git_write_tree(&root);
    assert_eq!(e.current_tree(&s.id).await.unwrap().to_hex().to_string(), expected);
    let cp = e.checkpoint(&s.id, None).await.unwrap();
    assert_eq!(cp.checkpoint.tree.to_hex().to_string(), expected);

    // The checkpoint is a real commit under the session's ref namespace, readable by git.
    let git_dir = t_git_dir(&e);
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(&git_dir)
        .args(["rev-parse", &format!("{}^{{tree}}", cp.ref_name)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    let reflog = Command::new("git")
        .arg("--git-dir")
        .arg(&git_dir)
        .args(["reflog", "show", &cp.ref_name])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&reflog.stdout).contains("checkpoint"),
        "reflog is on"
    );
}

fn t_git_dir(e: &TestEngine) -> PathBuf {
    e.dir.path().join("data/objects.git")
}

/// A session may hold a nested repository: `.git` (and every name git reserves for itself) is
/// stored escaped in trees, so checkpoints stay checkoutable by git and read back unchanged.
#[tokio::test]
async fn a_nested_dot_git_is_escaped_in_trees_and_read_back_unchanged() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, ".git/HEAD", b"ref: refs/heads/main\n").await;
    put(&e, &id, ".git~", b"a name that looks escaped").await;
    put(&e, &id, ".gitignore", b"target\n").await;
    put(&e, &id, "sub/.GIT/x", b"x").await;
    let cp = e.checkpoint(&id, None).await.unwrap();

    // In git's eyes: escaped names, every one of which git accepts on checkout.
    let git_dir = t_git_dir(&e);
    let git_dir_str = git_dir.to_str().unwrap();
    let commit = cp.checkpoint.commit.to_hex().to_string();
    let names = git(
        &git_dir,
        &["--git-dir", git_dir_str, "ls-tree", "-r", "--name-only", &commit],
    );
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [".gitignore", ".git~/HEAD", ".git~~", "sub/.GIT~/x"]
    );
    let scratch = tempfile::tempdir().unwrap();
    let checkout = scratch.path().join("co");
    std::fs::create_dir(&checkout).unwrap();
    git(&checkout, &["init", "-q"]);
    git(&checkout, &["fetch", "-q", git_dir_str, &cp.ref_name]);
    git(&checkout, &["checkout", "-q", "FETCH_HEAD"]);
    assert_eq!(
        std::fs::read(checkout.join(".git~/HEAD")).unwrap(),
        b"ref: refs/heads/main\n"
    );
    assert_eq!(std::fs::read(checkout.join("sub/.GIT~/x")).unwrap(), b"x");

    // In the session's eyes, through the frozen tree of a fork: the names as they were written.
    let fork = e
        .create_session(
            SessionSource::Session {
                id: id.clone(),
                at: Some(commit),
            },
            Default::default(),
        )
        .await
        .unwrap()
        .id;
    let mut root: Vec<String> = e
        .list(&fork, "", false, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    root.sort();
    assert_eq!(root, [".git", ".gitignore", ".git~", "sub"]);
    assert_eq!(get(&e, &fork, ".git/HEAD").await, b"ref: refs/heads/main\n");
    assert_eq!(get(&e, &fork, ".git~").await, b"a name that looks escaped");
    assert_eq!(get(&e, &fork, "sub/.GIT/x").await, b"x");
    e.rename(&fork, ".git", "moved").await.unwrap();
    e.rename(&fork, "moved", ".git").await.unwrap();
    assert_eq!(e.current_tree(&fork).await.unwrap(), cp.checkpoint.tree);
}

/// Small files are loose objects at the configured zlib level. At 0 (stored, the default) and
/// at 9 alike, git reads every one back byte for byte and `git fsck` finds nothing wrong,
/// including an empty file and files across the 64 KiB stored-block size.
#[tokio::test]
async fn loose_objects_at_every_level_are_read_by_git() {
    for level in [0, 9] {
        let e = engine_with(|c| c.loose_compression = level).await;
        let s = empty_session(&e).await;
        let files: Vec<(String, Vec<u8>)> = [0usize, 1, 65_535, 65_536, 200_001]
            .iter()
            .map(|&n| (format!("f{n}"), noise(n as u64, n)))
            .collect();
        for (path, data) in &files {
            put(&e, &s, path, data).await;
        }
        let cp = e.checkpoint(&s, None).await.unwrap();
        let git_dir = t_git_dir(&e);
        for (path, data) in &files {
            let out = Command::new("git")
                .arg("--git-dir")
                .arg(&git_dir)
                .args(["cat-file", "blob", &format!("{}:{path}", cp.ref_name)])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "level {level}, {path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout == *data, "level {level}: git reads {path} back differently");
        }
        // Fails the test when git finds anything wrong.
        git(&git_dir, &["fsck", "--strict", "--no-dangling"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.loose_compression = 10;
    let refused = aether_core::Engine::open(cfg).await;
    assert!(
        matches!(refused, Err(aether_core::Error::InvalidArgument(_))),
        "level 10 is refused"
    );
}

#[tokio::test]
async fn a_blob_already_packed_is_not_written_loose_again() {
    let e = engine_with(|_| {}).await;
    let s = empty_session(&e).await;
    let data = noise(7, 5_000);
    put(&e, &s, "a", &data).await;
    let cp = e.checkpoint(&s, None).await.unwrap();
    let git_dir = t_git_dir(&e);
    let oid = git(&git_dir, &["rev-parse", &format!("{}:a", cp.ref_name)]);
    let loose = git_dir.join("objects").join(&oid[..2]).join(&oid[2..]);
    assert!(loose.exists(), "the first write is loose");
    // A pack appears behind the engine's back, as a push or an import writes one.
    git(&git_dir, &["repack", "-a", "-d", "-q"]);
    git(&git_dir, &["prune-packed"]);
    assert!(!loose.exists());
    put(&e, &s, "b", &data).await;
    assert!(!loose.exists(), "the same bytes again are found in the new pack");
    put(&e, &s, "c", b"new bytes after the pack").await;
    let cp = e.checkpoint(&s, None).await.unwrap();
    assert_eq!(git(&git_dir, &["rev-parse", &format!("{}:b", cp.ref_name)]), oid);
    git(&git_dir, &["cat-file", "-e", &format!("{}:c", cp.ref_name)]);
    git(&git_dir, &["fsck", "--strict", "--no-dangling"]);
}
