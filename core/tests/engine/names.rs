//! Names: no entry is ever stored or shown with a name that is empty, `.`, `..`, or holds `/`
//! or NUL, whatever the path it came by; the root's attributes are the root's, never a child.

use aether_core::{BatchOp, ErrorKind, FileKind, WriteOptions};

use crate::common::*;

/// Every path of a session's recursive listing.
async fn all_paths(e: &aether_core::Engine, id: &aether_core::SessionId) -> Vec<String> {
    e.list(id, "", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect()
}

/// A listing that repeats the root would never end: these tests bound every walk.
async fn bounded_engine() -> TestEngine {
    engine_with(|c| c.limits.max_walk_entries = 10_000).await
}

#[tokio::test]
async fn a_chmod_of_the_root_keeps_it_out_of_its_own_listing() {
    let e = bounded_engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a/b", b"1").await;
    let st = e.chmod(&id, "", 0o700).await.unwrap();
    assert_eq!((st.kind, st.mode), (FileKind::Dir, 0o700));
    // The same through a batch (the mount's path), on the root spelled `/`.
    let out = e
        .apply_batch(
            &id,
            vec![BatchOp::Chmod {
                path: "/".into(),
                mode: 0o750,
            }],
        )
        .await
        .unwrap();
    assert!(out.failed.is_none(), "{:?}", out.failed);

    let check = |label: &'static str| {
        let e = &e.engine;
        let id = id.clone();
        async move {
            let root: Vec<String> = e
                .list(&id, "", false, None)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.name)
                .collect();
            assert_eq!(root, ["a"], "{label}: the root's own listing");
            assert_eq!(all_paths(e, &id).await, ["a", "a/b"], "{label}: recursive listing");
            let dirs = e.list_dirs(&id, "", 100, None).await.unwrap().dirs;
            let listed: Vec<_> = dirs.iter().map(|(p, _)| p.as_str().to_owned()).collect();
            assert_eq!(listed, ["", "a"], "{label}: ListDirs");
            assert_eq!(
                e.stat(&id, "", None).await.unwrap().mode,
                0o750,
                "{label}: stat of the root"
            );
        }
    };
    check("live").await;
    let cp = e.checkpoint(&id, None).await.unwrap();
    check("after a checkpoint").await;
    let at = format!("checkpoints/{}", cp.checkpoint.number);
    let then: Vec<_> = e
        .list(&id, "", true, Some(&at))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect();
    assert_eq!(then, ["a", "a/b"], "at the checkpoint");
    assert_eq!(e.stat(&id, "", Some(&at)).await.unwrap().mode, 0o750);

    let fork = e
        .create_session(
            aether_core::SessionSource::Session {
                id: id.clone(),
                at: None,
            },
            Default::default(),
        )
        .await
        .unwrap()
        .id;
    assert_eq!(all_paths(&e, &fork).await, ["a", "a/b"], "the fork");
    assert_eq!(e.stat(&fork, "", None).await.unwrap().mode, 0o750);
    e.restore(&id, &at).await.unwrap();
    check("after a restore").await;

    // A new engine on the same data loads the root's attributes from the store.
    let data = e.config().data_dir.clone();
    drop(e.engine);
    let mut cfg = aether_core::EngineConfig::new(data);
    cfg.limits.max_walk_entries = 10_000;
    let e2 = aether_core::Engine::open(cfg).await.unwrap();
    assert_eq!(all_paths(&e2, &id).await, ["a", "a/b"], "reopened");
    assert_eq!(e2.stat(&id, "", None).await.unwrap().mode, 0o750);
    drop(e.dir);
}

#[tokio::test]
async fn bad_names_are_refused_on_every_mutation_path() {
    let e = bounded_engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "ok/f", b"1").await;
    let before = all_paths(&e, &id).await;
    let events = e.events(&id, 0, 1000).await.unwrap().len();
    let opts = WriteOptions {
        create_parents: true,
        ..Default::default()
    };
    for bad in ["..", "a/..", "../x", "a/../b", "a//b", "//x", "a\0b", "ok/\0"] {
        let refused = |r: Result<(), aether_core::Error>, what: &str| {
            let err = r.expect_err(&format!("{what} {bad:?} must be refused"));
            assert_eq!(err.kind(), ErrorKind::InvalidPath, "{what} {bad:?}: {err}");
        };
        refused(e.write_bytes(&id, bad, b"x".to_vec(), opts).await.map(drop), "write");
        refused(
            e.write_file(&id, bad, &b"x"[..], opts).await.map(drop),
            "streamed write",
        );
        refused(e.write_at(&id, bad, 0, b"x".to_vec()).await.map(drop), "range write");
        refused(e.truncate(&id, bad, 0).await.map(drop), "truncate");
        refused(e.mkdir(&id, bad, true).await.map(drop), "mkdir");
        refused(e.symlink(&id, bad, "target").await.map(drop), "symlink");
        refused(e.chmod(&id, bad, 0o600).await.map(drop), "chmod");
        refused(e.rename(&id, "ok/f", bad).await, "rename to");
        refused(e.rename(&id, bad, "ok/g").await, "rename from");
        refused(e.delete(&id, bad, true).await, "delete");
        refused(e.rmdir(&id, bad).await, "rmdir");
        let ops = [
            BatchOp::Put {
                path: bad.into(),
                data: b"x".to_vec(),
                mode: None,
                create_parents: true,
                mtime: None,
            },
            BatchOp::Mkdir {
                path: bad.into(),
                parents: true,
            },
            BatchOp::Symlink {
                path: bad.into(),
                target: "t".into(),
            },
            BatchOp::Delete {
                path: bad.into(),
                recursive: true,
            },
            BatchOp::Rmdir { path: bad.into() },
            BatchOp::Rename {
                from: "ok/f".into(),
                to: bad.into(),
            },
            BatchOp::Chmod {
                path: bad.into(),
                mode: 0o600,
            },
        ];
        for op in ops {
            let batch = vec![op.clone()];
            let out = e.apply_batch(&id, batch).await.unwrap();
            let (index, err) = out.failed.expect("a batch change with a bad name fails");
            assert_eq!((index, err.kind()), (0, ErrorKind::InvalidPath), "{op:?}: {err}");
            assert!(out.applied.is_empty());
        }
    }
    assert_eq!(all_paths(&e, &id).await, before, "nothing changed");
    assert_eq!(
        e.events(&id, 0, 1000).await.unwrap().len(),
        events,
        "nothing was recorded"
    );
}

#[tokio::test]
async fn names_a_git_tree_must_not_hold_never_become_entries() {
    let e = bounded_engine().await;
    let repo = raw_odb(&e);
    let blob = raw_blob(&repo, b"hostile\n");
    let inner = raw_tree(&repo, &[("100644", b"f", blob)]);
    // Every name here but `ok` and `sub` is one git's own fsck refuses and no session may
    // hold; the entries are in git's order (a tree's name followed by `/`).
    let tree = raw_tree(
        &repo,
        &[
            ("100644", b"", blob),
            ("40000", b"..", inner),
            ("40000", b".", inner),
            ("100644", b"a/b", blob),
            ("100644", b"ok", blob),
            ("40000", b"sub", inner),
            ("40000", b"x/..", inner),
        ],
    );
    let id = session_at_tree(&e, tree).await;
    assert_eq!(all_paths(&e, &id).await, ["ok", "sub", "sub/f"]);
    let root: Vec<String> = e
        .list(&id, "", false, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(root, ["ok", "sub"]);
    // The session works: a write, a checkpoint (a freeze edits the hostile tree) and a read.
    put(&e, &id, "sub/g", b"2").await;
    let cp = e.checkpoint(&id, None).await.unwrap();
    assert_eq!(all_paths(&e, &id).await, ["ok", "sub", "sub/f", "sub/g"]);
    let at = format!("checkpoints/{}", cp.checkpoint.number);
    assert_eq!(e.read(&id, "sub/g", 0, None, Some(&at)).await.unwrap(), b"2");
}

#[tokio::test]
async fn edit_tree_refuses_to_write_a_name_no_session_may_hold() {
    use aether_core::odb::TreeEdit;
    use gix::objs::tree::EntryKind;
    let e = engine().await;
    let odb = &e.objects().odb;
    let blob = odb.write_blob(b"x").unwrap();
    for bad in ["..", "a/..", "a/./b", "a//b", "", "/a", "a/", "a\0b"] {
        for edit in [
            TreeEdit::Upsert {
                path: bad.into(),
                kind: EntryKind::Blob,
                oid: blob,
            },
            TreeEdit::Remove { path: bad.into() },
        ] {
            let err = odb
                .edit_tree(odb.empty_tree(), std::slice::from_ref(&edit))
                .expect_err(&format!("{edit:?} must be refused"));
            assert_eq!(err.kind(), ErrorKind::InvalidPath, "{edit:?}: {err}");
        }
    }
    let ok = odb
        .edit_tree(
            odb.empty_tree(),
            &[TreeEdit::Upsert {
                path: "a/.b/c".into(),
                kind: EntryKind::Blob,
                oid: blob,
            }],
        )
        .unwrap();
    assert_ne!(ok, odb.empty_tree());
}
