//! Files whose names look like the session's escape of a nested repository (`.git~`, `GIT~1~`,
//! `.GIT~~`: git accepts them) import under those names, apart from a `.git` the session makes
//! itself; the imported refs keep their commit ids; the session's own commits, fetched by git
//! and imported again, read as the session did.

use std::path::Path;

use aether_core::{FileKind, SessionId, WriteOptions};

use crate::fixture::*;

/// A repository with files named like escapes, at the top and deeper, and a directory too.
fn escapes_repo(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("escapes");
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    std::fs::create_dir_all(repo.join("deep/.git~")).unwrap();
    for (name, data) in [
        (".git~", "a file named .git~\n"),
        ("GIT~1~", "a file named GIT~1~\n"),
        ("sub/.GIT~~", "a file named .GIT~~\n"),
        ("sub/plain", "plain\n"),
        ("deep/.git~/inside", "in a directory named .git~\n"),
        (".gitignore", "*.o\n"),
    ] {
        std::fs::write(repo.join(name), data).unwrap();
    }
    git(dir, &["init", "-q", "-b", "main", repo.to_str().unwrap()]);
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@x",
            "commit",
            "-q",
            "-m",
            "escapes",
        ],
    );
    repo
}

async fn names(t: &TestEngine, id: &SessionId, dir: &str) -> Vec<String> {
    t.engine
        .list(id, dir, false, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

async fn read(t: &TestEngine, id: &SessionId, path: &str) -> String {
    String::from_utf8(t.engine.read(id, path, 0, None, None).await.unwrap()).unwrap()
}

#[tokio::test]
async fn names_like_escapes_import_verbatim_and_stay_apart_from_the_sessions_own_git() {
    let scratch = tempfile::tempdir().unwrap();
    let src = escapes_repo(scratch.path());
    let t = engine().await;
    let s = t.import(src.to_str().unwrap(), None).await.unwrap();

    assert_eq!(
        names(&t, &s.id, "").await,
        [".gitignore", ".git~", "GIT~1~", "deep", "sub"]
    );
    assert_eq!(names(&t, &s.id, "sub").await, [".GIT~~", "plain"]);
    assert_eq!(names(&t, &s.id, "deep").await, [".git~"]);
    assert_eq!(read(&t, &s.id, ".git~").await, "a file named .git~\n");
    assert_eq!(read(&t, &s.id, "GIT~1~").await, "a file named GIT~1~\n");
    assert_eq!(read(&t, &s.id, "sub/.GIT~~").await, "a file named .GIT~~\n");
    assert_eq!(
        read(&t, &s.id, "deep/.git~/inside").await,
        "in a directory named .git~\n"
    );

    // The refs keep the source's commits; the source's tree is untouched.
    let head = git(&src, &["rev-parse", "main"]);
    assert_eq!(s.head.map(|h| h.to_string()), Some(head.clone()));
    let objects_git = t.data().join("objects.git");
    let branch = format!("refs/aether/sessions/{}/heads/main", s.id);
    assert_eq!(git(&objects_git, &["rev-parse", &branch]), head);
    assert_eq!(
        git(&objects_git, &["ls-tree", "--name-only", &head]),
        git(&src, &["ls-tree", "--name-only", "main"])
    );

    // The session makes its own nested repository: both live side by side.
    let opts = WriteOptions {
        create_parents: true,
        ..Default::default()
    };
    t.engine
        .write_bytes(&s.id, ".git/HEAD", b"ref: refs/heads/main\n".to_vec(), opts)
        .await
        .unwrap();
    assert_eq!(
        names(&t, &s.id, "").await,
        [".git", ".gitignore", ".git~", "GIT~1~", "deep", "sub"]
    );
    assert_eq!(t.engine.stat(&s.id, ".git", None).await.unwrap().kind, FileKind::Dir);
    assert_eq!(read(&t, &s.id, ".git~").await, "a file named .git~\n");

    // Committed, then fetched by git: git sees the nested repository as `.git~/` and the file
    // as `.git~~` (the session's spelling), and the history below is the source's.
    let c = t.engine.commit(&s.id, "own .git".into(), None, None).await.unwrap();
    assert_eq!(c.parents[0].to_string(), head);
    let copy = scratch.path().join("copy");
    git(scratch.path(), &["init", "-q", copy.to_str().unwrap()]);
    git(
        &copy,
        &[
            "fetch",
            "-q",
            objects_git.to_str().unwrap(),
            &format!("{branch}:refs/heads/main"),
        ],
    );
    git(&copy, &["checkout", "-q", "main"]);
    let tree = git(&copy, &["ls-tree", "-r", "--name-only", "HEAD"]);
    let tree: Vec<&str> = tree.lines().collect();
    for expected in [".git~/HEAD", ".git~~", "GIT~1~~", "sub/.GIT~~~", "deep/.git~~/inside"] {
        assert!(tree.contains(&expected), "{expected} in {tree:?}");
    }
    assert_eq!(git(&copy, &["rev-parse", "HEAD~1"]), head);

    // Imported again, the session's commit reads as the session did: still apart.
    let again = t.import(copy.to_str().unwrap(), None).await.unwrap();
    assert_eq!(
        names(&t, &again.id, "").await,
        [".git", ".gitignore", ".git~", "GIT~1~", "deep", "sub"]
    );
    assert_eq!(read(&t, &again.id, ".git/HEAD").await, "ref: refs/heads/main\n");
    assert_eq!(read(&t, &again.id, ".git~").await, "a file named .git~\n");
    assert_eq!(read(&t, &again.id, "sub/.GIT~~").await, "a file named .GIT~~\n");

    // A commit a git client made on top (no engine header) is foreign again: git's names.
    std::fs::write(copy.join("added-by-git"), "git\n").unwrap();
    git(&copy, &["add", "-A"]);
    git(
        &copy,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@x",
            "commit",
            "-q",
            "-m",
            "by git",
        ],
    );
    let foreign = t.import(copy.to_str().unwrap(), None).await.unwrap();
    assert_eq!(
        names(&t, &foreign.id, "").await,
        [
            ".gitignore",
            ".git~",
            ".git~~",
            "GIT~1~~",
            "added-by-git",
            "deep",
            "sub"
        ]
    );
    assert_eq!(read(&t, &foreign.id, ".git~/HEAD").await, "ref: refs/heads/main\n");
    assert_eq!(read(&t, &foreign.id, ".git~~").await, "a file named .git~\n");
}
