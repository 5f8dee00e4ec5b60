//! Owners (chown), special files (mknod) and hard links (link): what git cannot hold, kept in
//! the live session and through checkpoint, restore, fork and commit.

use aether_core::{BatchOp, Engine, ErrorKind, FileKind, SessionId, SessionSource, SpecialKind, Stat};

use crate::common::*;

async fn stat(e: &Engine, id: &SessionId, path: &str) -> Stat {
    e.stat(id, path, None)
        .await
        .unwrap_or_else(|err| panic!("stat {path}: {err}"))
}

async fn fork(e: &Engine, id: &SessionId) -> SessionId {
    e.create_session(
        SessionSource::Session {
            id: id.clone(),
            at: None,
        },
        Default::default(),
    )
    .await
    .unwrap()
    .id
}

fn owner(s: &Stat) -> (Option<u32>, Option<u32>) {
    (s.uid, s.gid)
}

/// Names and blob ids of the top level of a commit's tree.
fn commit_tree(e: &Engine, tree: &aether_core::ObjectId) -> Vec<(String, String)> {
    e.objects()
        .tree(tree)
        .unwrap()
        .entries
        .iter()
        .map(|t| (t.name.clone(), t.oid.to_hex().to_string()))
        .collect()
}

#[tokio::test]
async fn chown_round_trips_and_never_follows_a_symlink() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "f", b"x").await;
    e.symlink(&id, "l", "f").await.unwrap();
    assert_eq!(owner(&stat(&e, &id, "f").await), (None, None), "never set");

    let st = e.chown(&id, "f", Some(1000), Some(100)).await.unwrap();
    assert_eq!(owner(&st), (Some(1000), Some(100)));
    // Half of it: the other half stays.
    e.chown(&id, "f", None, Some(7)).await.unwrap();
    assert_eq!(owner(&stat(&e, &id, "f").await), (Some(1000), Some(7)));
    e.chown(&id, "f", Some(5), None).await.unwrap();
    assert_eq!(owner(&stat(&e, &id, "f").await), (Some(5), Some(7)));

    // A symlink's own owner; its target keeps its own.
    e.chown(&id, "l", Some(42), Some(43)).await.unwrap();
    assert_eq!(owner(&stat(&e, &id, "l").await), (Some(42), Some(43)));
    assert_eq!(owner(&stat(&e, &id, "f").await), (Some(5), Some(7)));

    // The root and a directory.
    e.mkdir(&id, "d", false).await.unwrap();
    e.chown(&id, "", Some(0), Some(0)).await.unwrap();
    e.chown(&id, "d", Some(9), None).await.unwrap();
    assert_eq!(owner(&stat(&e, &id, "").await), (Some(0), Some(0)));
    assert_eq!(owner(&stat(&e, &id, "d").await), (Some(9), None));

    let listed: Vec<_> = e
        .list(&id, "", false, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.stat.uid))
        .collect();
    assert_eq!(
        listed,
        [("d".into(), Some(9)), ("f".into(), Some(5)), ("l".into(), Some(42))]
    );
    assert_eq!(
        e.chown(&id, "missing", Some(1), None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn owner_survives_chmod_write_rename_checkpoint_restore_and_fork() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "f", b"one").await;
    e.mkdir(&id, "d", false).await.unwrap();
    put(&e, &id, "d/inner", b"in").await;
    e.chown(&id, "f", Some(1000), Some(1000)).await.unwrap();
    e.chown(&id, "d", Some(2000), Some(2000)).await.unwrap();
    e.chown(&id, "d/inner", Some(3000), Some(3000)).await.unwrap();

    e.chmod(&id, "f", 0o755).await.unwrap();
    assert_eq!(
        owner(&stat(&e, &id, "f").await),
        (Some(1000), Some(1000)),
        "after chmod"
    );
    put(&e, &id, "f", b"two").await;
    assert_eq!(
        owner(&stat(&e, &id, "f").await),
        (Some(1000), Some(1000)),
        "after a write"
    );
    e.write_at(&id, "f", 3, b"!".to_vec()).await.unwrap();
    e.truncate(&id, "f", 2).await.unwrap();
    assert_eq!(
        owner(&stat(&e, &id, "f").await),
        (Some(1000), Some(1000)),
        "after patch, truncate"
    );
    e.rename(&id, "f", "g").await.unwrap();
    assert_eq!(
        owner(&stat(&e, &id, "g").await),
        (Some(1000), Some(1000)),
        "after rename"
    );
    e.rename(&id, "d", "e").await.unwrap();
    assert_eq!(
        owner(&stat(&e, &id, "e").await),
        (Some(2000), Some(2000)),
        "a renamed dir"
    );
    assert_eq!(
        owner(&stat(&e, &id, "e/inner").await),
        (Some(3000), Some(3000)),
        "below it"
    );

    e.checkpoint(&id, None).await.unwrap();
    assert_eq!(
        owner(&stat(&e, &id, "g").await),
        (Some(1000), Some(1000)),
        "after checkpoint"
    );
    assert_eq!(
        owner(&e.stat(&id, "g", Some("checkpoints/1")).await.unwrap()),
        (Some(1000), Some(1000)),
        "read at the checkpoint"
    );
    // A chmod after the freeze rebuilds the entry from the residual: the owner stays.
    e.chmod(&id, "g", 0o600).await.unwrap();
    assert_eq!(
        owner(&stat(&e, &id, "g").await),
        (Some(1000), Some(1000)),
        "chmod after freeze"
    );

    e.chown(&id, "g", Some(1), Some(1)).await.unwrap();
    e.restore(&id, "checkpoints/1").await.unwrap();
    assert_eq!(
        owner(&stat(&e, &id, "g").await),
        (Some(1000), Some(1000)),
        "after restore"
    );
    assert_eq!(owner(&stat(&e, &id, "e/inner").await), (Some(3000), Some(3000)));

    let child = fork(&e, &id).await;
    assert_eq!(
        owner(&stat(&e, &child, "g").await),
        (Some(1000), Some(1000)),
        "in a fork"
    );
    assert_eq!(owner(&stat(&e, &child, "e").await), (Some(2000), Some(2000)));
}

#[tokio::test]
async fn special_files_are_leaves_kept_outside_git() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "keep", b"k").await;
    let fifo = e.mknod(&id, "pipe", SpecialKind::Fifo, 0o644, 99).await.unwrap();
    assert_eq!(
        (fifo.kind, fifo.mode, fifo.rdev, fifo.size, fifo.nlink),
        (FileKind::Fifo, 0o644, 0, 0, 1)
    );
    let dev = e
        .mknod(&id, "tty", SpecialKind::CharDevice, 0o600, (4 << 8) | 1)
        .await
        .unwrap();
    assert_eq!((dev.kind, dev.rdev), (FileKind::CharDevice, (4 << 8) | 1));
    e.mknod(&id, "sock", SpecialKind::Socket, 0o755, 0).await.unwrap();
    e.mknod(&id, "blk", SpecialKind::BlockDevice, 0o660, 8).await.unwrap();

    assert_eq!(
        e.mknod(&id, "pipe", SpecialKind::Fifo, 0o644, 0)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        e.mknod(&id, "no/such", SpecialKind::Fifo, 0o644, 0)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound,
        "no parents are made"
    );
    assert_eq!(
        e.mknod(&id, "m", SpecialKind::Fifo, 0o10000, 0)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        e.read(&id, "pipe", 0, None, None).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "no bytes to read"
    );
    assert_eq!(
        e.write_at(&id, "tty", 0, b"x".to_vec()).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );

    // Leaves: chmod, chown, rename, delete.
    e.chmod(&id, "pipe", 0o600).await.unwrap();
    e.chown(&id, "pipe", Some(7), Some(8)).await.unwrap();
    e.rename(&id, "sock", "sock2").await.unwrap();
    e.delete(&id, "blk", false).await.unwrap();
    let st = stat(&e, &id, "pipe").await;
    assert_eq!(
        (st.kind, st.mode, st.uid, st.gid),
        (FileKind::Fifo, 0o600, Some(7), Some(8))
    );
    let names: Vec<_> = e
        .list(&id, "", false, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.stat.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("keep".into(), FileKind::File),
            ("pipe".into(), FileKind::Fifo),
            ("sock2".into(), FileKind::Socket),
            ("tty".into(), FileKind::CharDevice)
        ]
    );

    // Through a checkpoint, a commit, a restore and a fork; never in a git tree.
    let cp = e.checkpoint(&id, None).await.unwrap();
    let names: Vec<_> = commit_tree(&e, &cp.checkpoint.tree)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["keep"], "git trees cannot hold special files");
    assert_eq!(stat(&e, &id, "tty").await.rdev, (4 << 8) | 1);
    assert_eq!(
        e.stat(&id, "pipe", Some("checkpoints/1")).await.unwrap().kind,
        FileKind::Fifo
    );
    let commit = e.commit(&id, "c".into(), None, None).await.unwrap();
    let names: Vec<_> = commit_tree(&e, &commit.tree).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["keep"]);
    assert_eq!(
        stat(&e, &id, "sock2").await.kind,
        FileKind::Socket,
        "still live after commit"
    );

    e.delete(&id, "pipe", false).await.unwrap();
    e.restore(&id, "checkpoints/1").await.unwrap();
    let st = stat(&e, &id, "pipe").await;
    assert_eq!(
        (st.kind, st.mode, st.uid),
        (FileKind::Fifo, 0o600, Some(7)),
        "after restore"
    );

    let child = fork(&e, &id).await;
    assert_eq!(stat(&e, &child, "tty").await.rdev, (4 << 8) | 1, "in a fork");
    assert_eq!(stat(&e, &child, "sock2").await.kind, FileKind::Socket);
}

#[tokio::test]
async fn a_special_file_replaces_a_committed_file() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "x", b"file").await;
    e.checkpoint(&id, None).await.unwrap();
    e.delete(&id, "x", false).await.unwrap();
    e.mknod(&id, "x", SpecialKind::Fifo, 0o644, 0).await.unwrap();
    let cp = e.checkpoint(&id, None).await.unwrap();
    assert!(
        commit_tree(&e, &cp.checkpoint.tree).is_empty(),
        "the file is gone from git"
    );
    assert_eq!(stat(&e, &id, "x").await.kind, FileKind::Fifo);
    let child = fork(&e, &id).await;
    assert_eq!(stat(&e, &child, "x").await.kind, FileKind::Fifo);
}

#[tokio::test]
async fn hard_links_share_content_and_attributes() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a", b"one").await;
    e.mkdir(&id, "d", false).await.unwrap();
    let st = e.link(&id, "a", "d/b").await.unwrap();
    assert_eq!(st.nlink, 2);
    let group = st.link.expect("a link group");
    assert_eq!(stat(&e, &id, "a").await.link, Some(group));
    assert_eq!(stat(&e, &id, "a").await.nlink, 2);

    // A write through one name is seen through the other; so are chmod, chown, truncate.
    put(&e, &id, "d/b", b"two").await;
    assert_eq!(get(&e, &id, "a").await, b"two");
    e.write_at(&id, "a", 3, b"!".to_vec()).await.unwrap();
    assert_eq!(get(&e, &id, "d/b").await, b"two!");
    e.chmod(&id, "a", 0o700).await.unwrap();
    e.chown(&id, "d/b", Some(11), Some(12)).await.unwrap();
    let (a, b) = (stat(&e, &id, "a").await, stat(&e, &id, "d/b").await);
    assert_eq!(
        (a.mode, a.uid, a.gid, a.oid.clone()),
        (0o700, Some(11), Some(12), b.oid.clone())
    );
    assert_eq!((b.mode, b.mtime_ns), (0o700, a.mtime_ns));

    // A third name, then a delete: the others stay, nlink drops.
    let c = e.link(&id, "d/b", "c").await.unwrap();
    assert_eq!((c.nlink, c.link), (3, Some(group)));
    e.delete(&id, "a", false).await.unwrap();
    assert_eq!(stat(&e, &id, "d/b").await.nlink, 2);
    e.delete(&id, "c", false).await.unwrap();
    let b = stat(&e, &id, "d/b").await;
    assert_eq!(b.nlink, 1);
    assert_eq!(get(&e, &id, "d/b").await, b"two!", "content stays");

    // Rename keeps the group.
    e.link(&id, "d/b", "a").await.unwrap();
    e.rename(&id, "d/b", "moved").await.unwrap();
    put(&e, &id, "moved", b"three").await;
    assert_eq!(get(&e, &id, "a").await, b"three");
    assert_eq!(stat(&e, &id, "a").await.nlink, 2);
    // A renamed directory holding a name keeps it in the group.
    e.link(&id, "a", "d/inner").await.unwrap();
    e.rename(&id, "d", "d2").await.unwrap();
    put(&e, &id, "a", b"four").await;
    assert_eq!(get(&e, &id, "d2/inner").await, b"four");
    assert_eq!(stat(&e, &id, "moved").await.nlink, 3);
}

#[tokio::test]
async fn link_refuses_directories_existing_names_and_missing_sources() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "f", b"x").await;
    e.mkdir(&id, "d", false).await.unwrap();
    let cases = [
        ("d", "d2", ErrorKind::IsADirectory),
        ("", "root2", ErrorKind::IsADirectory),
        ("f", "d", ErrorKind::AlreadyExists),
        ("f", "f", ErrorKind::AlreadyExists),
        ("missing", "g", ErrorKind::NotFound),
        ("f", "no/such/g", ErrorKind::NotFound),
    ];
    for (from, to, kind) in cases {
        assert_eq!(e.link(&id, from, to).await.unwrap_err().kind(), kind, "{from} -> {to}");
    }
    let st = stat(&e, &id, "f").await;
    assert_eq!((st.nlink, st.link), (1, None), "nothing changed");
    // A symlink and a special file can have a second name.
    e.symlink(&id, "s", "f").await.unwrap();
    assert_eq!(
        e.link(&id, "s", "s2").await.unwrap().symlink_target.as_deref(),
        Some("f")
    );
    e.mknod(&id, "p", SpecialKind::Fifo, 0o644, 0).await.unwrap();
    assert_eq!(e.link(&id, "p", "p2").await.unwrap().kind, FileKind::Fifo);
}

#[tokio::test]
async fn hard_links_survive_checkpoint_restore_fork_and_commit() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a", b"one").await;
    e.link(&id, "a", "b").await.unwrap();
    let cp = e.checkpoint(&id, None).await.unwrap();
    let tree = commit_tree(&e, &cp.checkpoint.tree);
    assert_eq!(tree.len(), 2);
    assert_eq!(tree[0].1, tree[1].1, "both names, one blob");
    assert_eq!(stat(&e, &id, "b").await.nlink, 2, "after checkpoint");
    put(&e, &id, "a", b"after checkpoint").await;
    assert_eq!(get(&e, &id, "b").await, b"after checkpoint");

    e.restore(&id, "checkpoints/1").await.unwrap();
    assert_eq!(get(&e, &id, "b").await, b"one");
    assert_eq!(stat(&e, &id, "a").await.nlink, 2, "after restore");
    put(&e, &id, "b", b"after restore").await;
    assert_eq!(
        get(&e, &id, "a").await,
        b"after restore",
        "a write after restore reaches both"
    );
    e.chmod(&id, "a", 0o600).await.unwrap();
    assert_eq!(stat(&e, &id, "b").await.mode, 0o600);

    let child = fork(&e, &id).await;
    put(&e, &child, "a", b"in the fork").await;
    assert_eq!(get(&e, &child, "b").await, b"in the fork");
    assert_eq!(get(&e, &id, "b").await, b"after restore", "the parent is apart");

    let commit = e.commit(&id, "c".into(), None, None).await.unwrap();
    let tree = commit_tree(&e, &commit.tree);
    assert_eq!(tree.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(tree[0].1, tree[1].1);
}

#[tokio::test]
async fn directory_nlink_counts_subdirectories() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "d/x/f", b"1").await;
    put(&e, &id, "d/y/f", b"1").await;
    put(&e, &id, "d/f", b"1").await;
    e.mkdir(&id, "d/empty", false).await.unwrap();
    assert_eq!(stat(&e, &id, "d").await.nlink, 5);
    e.checkpoint(&id, None).await.unwrap();
    assert_eq!(stat(&e, &id, "d").await.nlink, 5, "from the base tree");
    e.delete(&id, "d/x", true).await.unwrap();
    e.mkdir(&id, "d/z", false).await.unwrap();
    e.mkdir(&id, "d/z2", false).await.unwrap();
    assert_eq!(stat(&e, &id, "d").await.nlink, 6, "base and overlay together");
    let listed = e.list(&id, "", false, None).await.unwrap();
    assert_eq!(listed[0].stat.nlink, 6, "in a listing too");
    assert_eq!(stat(&e, &id, "").await.nlink, 3);
}

#[tokio::test]
async fn batches_chown_mknod_and_link() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let out = e
        .apply_batch(
            &id,
            vec![
                BatchOp::Put {
                    path: "a".into(),
                    data: b"x".to_vec(),
                    mode: None,
                    create_parents: false,
                    mtime: None,
                },
                BatchOp::Link {
                    from: "a".into(),
                    to: "b".into(),
                },
                BatchOp::Chown {
                    path: "a".into(),
                    uid: Some(5),
                    gid: None,
                },
                BatchOp::Put {
                    path: "b".into(),
                    data: b"y".to_vec(),
                    mode: None,
                    create_parents: false,
                    mtime: None,
                },
                BatchOp::Mknod {
                    path: "p".into(),
                    kind: "fifo".into(),
                    mode: 0o600,
                    rdev: 0,
                },
                BatchOp::Mknod {
                    path: "q".into(),
                    kind: "pipe".into(),
                    mode: 0o600,
                    rdev: 0,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.applied.len(), 5);
    let (i, err) = out.failed.expect("the unknown kind fails");
    assert_eq!((i, err.kind()), (5, ErrorKind::InvalidArgument));
    assert_eq!(out.applied[1].as_ref().unwrap().nlink, 2);
    assert_eq!(get(&e, &id, "a").await, b"y", "a batch write reaches the other name");
    assert_eq!(stat(&e, &id, "b").await.uid, Some(5));
    assert_eq!(stat(&e, &id, "p").await.kind, FileKind::Fifo);
    assert_eq!(e.stat(&id, "q", None).await.unwrap_err().kind(), ErrorKind::NotFound);
}
