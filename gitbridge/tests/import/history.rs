//! Successful imports: ids, refs, files, large files and progress match the source.

use std::collections::BTreeMap;
use std::path::Path;

use aether_core::{FileKind, Identity, SessionRecord, WriteOptions};

use crate::fixture::*;

/// `git log --format=%H <rev>` of the source equals the session's log from that rev.
async fn assert_same_log(t: &TestEngine, s: &SessionRecord, src: &Path, rev: Option<&str>, git_rev: &str) {
    let ours: Vec<String> = t
        .engine
        .log(&s.id, rev.map(str::to_owned), None, 1000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    let theirs: Vec<String> = git(src, &["log", "--format=%H", git_rev])
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!theirs.is_empty());
    assert_eq!(ours, theirs, "log of {git_rev}");
}

/// Every file of `rev` in the source reads back from the session byte for byte, with its mode.
async fn assert_same_files(t: &TestEngine, s: &SessionRecord, src: &Path, rev: &str, min_files: usize) {
    let at = Some(rev);
    let listing = git(
        src,
        &[
            "ls-tree",
            "-r",
            "-z",
            "--format=%(objectmode) %(objectname) %(path)",
            rev,
        ],
    );
    let mut count = 0;
    for entry in listing.split('\0').filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(3, ' ');
        let (mode, oid, path) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let expected = git_bytes(src, &["cat-file", "blob", oid]);
        let stat = t.engine.stat(&s.id, path, at).await.unwrap();
        assert_eq!(stat.oid.as_deref(), Some(oid), "{path}");
        match mode {
            "120000" => {
                assert_eq!(stat.kind, FileKind::Symlink, "{path}");
                let target = t.engine.readlink(&s.id, path, at).await.unwrap();
                assert_eq!(target.as_bytes(), &expected[..], "{path}");
            }
            _ => {
                assert_eq!(stat.kind, FileKind::File, "{path}");
                assert_eq!(stat.mode & 0o111 != 0, mode == "100755", "exec bit of {path}");
                let got = t.engine.read(&s.id, path, 0, None, at).await.unwrap();
                assert!(got == expected, "content of {path}");
            }
        }
        count += 1;
    }
    assert!(
        count >= min_files,
        "expected at least {min_files} files at {rev}, saw {count}"
    );
}

fn source_refs(src: &Path) -> BTreeMap<String, String> {
    git(
        src,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads/",
            "refs/tags/",
        ],
    )
    .lines()
    .map(|l| {
        let (name, oid) = l.split_once(' ').unwrap();
        (name.strip_prefix("refs/").unwrap().to_owned(), oid.to_owned())
    })
    .collect()
}

fn session_refs(t: &TestEngine, s: &SessionRecord) -> BTreeMap<String, String> {
    let prefix = format!("refs/aether/sessions/{}/", s.id);
    // Read the refs with the real git: the session's refs must point at what the source's do
    // (annotated tags at the tag object, not peeled).
    git(
        &t.data().join("objects.git"),
        &["for-each-ref", "--format=%(refname) %(objectname)", &prefix],
    )
    .lines()
    .map(|l| {
        let (name, oid) = l.split_once(' ').unwrap();
        (name.strip_prefix(prefix.as_str()).unwrap().to_owned(), oid.to_owned())
    })
    .collect()
}

#[tokio::test]
async fn local_import_keeps_history_refs_files_and_chunks_large_blobs() {
    let scratch = tempfile::tempdir().unwrap();
    let src = history_repo(scratch.path(), "src", false);
    let t = engine().await;
    let s = t.import(src.to_str().unwrap(), None).await.unwrap();

    let head = git(&src, &["rev-parse", "main"]);
    assert_eq!(s.head.map(|h| h.to_string()), Some(head.clone()));
    assert_eq!(s.branch, "main");
    assert_eq!(s.base_tree.to_string(), git(&src, &["rev-parse", "main^{tree}"]));
    assert_same_log(&t, &s, &src, None, "main").await;
    assert_same_log(&t, &s, &src, Some("feature"), "feature").await;
    assert_same_log(&t, &s, &src, Some("v0.1.1"), "v0.1.1").await;
    assert_same_files(&t, &s, &src, "main", 9).await;
    assert_same_files(&t, &s, &src, "light-asset", 8).await;
    assert_eq!(session_refs(&t, &s), source_refs(&src));

    // Both large blobs in history (the tip's and an older one) are chunked, and stored only
    // there: the pack installed in objects.git leaves them out.
    let objects_git = t.data().join("objects.git");
    for rev in ["main:assets.bin", "light-asset:assets.bin"] {
        let oid = git(&src, &["rev-parse", rev]);
        let stat = t
            .engine
            .stat(&s.id, "assets.bin", Some(rev.split(':').next().unwrap()))
            .await
            .unwrap();
        assert!(stat.chunked, "{rev} should be chunked");
        assert_eq!(stat.oid.as_deref(), Some(oid.as_str()));
        assert!(
            !git_ok(&objects_git, &["cat-file", "-e", &oid]),
            "{rev} is also in objects.git"
        );
    }
    // Everything else is there, readable by the real git too.
    assert!(git_ok(&objects_git, &["cat-file", "-e", &format!("{head}^{{tree}}")]));

    // Progress was recorded while it ran, then the creation.
    let events = t.engine.events(&s.id, 0, 1000).await.unwrap();
    let phases: Vec<String> = events
        .iter()
        .filter(|e| e.kind.as_str() == "import_progress")
        .filter_map(|e| e.detail["phase"].as_str().map(str::to_owned))
        .collect();
    assert!(phases.iter().any(|p| p == "receiving objects"), "{phases:?}");
    assert!(phases.iter().any(|p| p == "chunking large files"), "{phases:?}");
    let last = events.last().unwrap();
    assert_eq!(last.kind.as_str(), "created");
    assert_eq!(last.detail["source"], "git");
    assert_eq!(last.detail["large_files"], 2);

    // The scratch directory is gone.
    let tmp = t.data().join("tmp");
    assert_eq!(std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0), 0);

    // A new commit descends from the imported head, on the imported branch.
    t.engine
        .write_bytes(&s.id, "NEW.txt", b"new\n".to_vec(), WriteOptions::default())
        .await
        .unwrap();
    let author = Identity {
        name: "Ada".into(),
        email: "ada@example.com".into(),
    };
    let c = t
        .engine
        .commit(&s.id, "after import".into(), Some(author), None)
        .await
        .unwrap();
    assert_eq!(
        c.parents.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![head.clone()]
    );
    let log = t.engine.log(&s.id, None, None, 2).await.unwrap();
    assert_eq!(log[1].id.to_string(), head);
    // The real git agrees: the session's branch is the source's main plus one commit.
    let branch = format!("refs/aether/sessions/{}/heads/main", s.id);
    assert_eq!(git(&objects_git, &["rev-parse", &format!("{branch}~1")]), head);
}

#[tokio::test]
async fn smart_http_import_at_an_annotated_tag() {
    let scratch = tempfile::tempdir().unwrap();
    let src = history_repo(scratch.path(), "work", false);
    let root = scratch.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    git(
        scratch.path(),
        &[
            "clone",
            "-q",
            "--bare",
            src.to_str().unwrap(),
            root.join("repo.git").to_str().unwrap(),
        ],
    );
    let server = aether_test_support::git_http::serve(&root);
    let t = engine().await;

    let s = t
        .import(&format!("{}/repo.git", server.base), Some("v0.1"))
        .await
        .unwrap();
    let v01 = git(&src, &["rev-parse", "v0.1^{commit}"]);
    assert_eq!(s.head.map(|h| h.to_string()), Some(v01.clone()));
    // The source's main is elsewhere, so commits go to a branch of their own.
    assert_eq!(s.branch, "import");
    assert_same_files(&t, &s, &src, "v0.1", 4).await;
    assert_same_log(&t, &s, &src, Some("main"), "main").await;
    assert_eq!(session_refs(&t, &s), source_refs(&src));
    let c = t.engine.commit(&s.id, "on the tag".into(), None, None).await.unwrap();
    assert_eq!(c.parents[0].to_string(), v01);

    // A second import of the same repository (file://, by branch) reuses the stored objects.
    let again = t
        .import(
            &format!("file://{}", root.join("repo.git").display()),
            Some("refs/heads/feature"),
        )
        .await
        .unwrap();
    assert_eq!(again.branch, "feature");
    assert_eq!(
        again.head.map(|h| h.to_string()),
        Some(git(&src, &["rev-parse", "feature"]))
    );
    assert_same_files(&t, &again, &src, "feature", 9).await;
}

#[tokio::test]
async fn import_by_commit_id_and_names_that_are_not_utf8() {
    let scratch = tempfile::tempdir().unwrap();
    let src = history_repo(scratch.path(), "src", true);
    let t = engine().await;
    let merge = git(&src, &["rev-parse", "main~1"]);
    let s = t.import(src.to_str().unwrap(), Some(&merge)).await.unwrap();
    assert_eq!(s.head.map(|h| h.to_string()), Some(merge.clone()));
    assert_same_log(&t, &s, &src, None, &merge).await;

    // At main, one file's name is the byte 0xff: the import works; core shows the name with
    // U+FFFD in its place, and the content is readable under that name.
    let s = t.import(src.to_str().unwrap(), None).await.unwrap();
    let names: Vec<String> = t
        .engine
        .list(&s.id, "", false, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&"caf\u{fffd}.txt".to_owned()), "{names:?}");
    let got = t.engine.read(&s.id, "caf\u{fffd}.txt", 0, None, None).await.unwrap();
    assert_eq!(got, b"latin-1 name\n");
    // The commit ids are the source's, untouched by the lossy display.
    assert_same_log(&t, &s, &src, None, "main").await;
}
