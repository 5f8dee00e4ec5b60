//! Batches (`Engine::apply_batch`): changes applied in order against the state the ones before
//! them left, one transaction, the failing change reported with its index.

use aether_core::{BatchOp, Engine, ErrorKind, FileKind};

use crate::common::*;

fn put_op(path: &str, data: &[u8]) -> BatchOp {
    BatchOp::Put {
        path: path.into(),
        data: data.to_vec(),
        mode: None,
        create_parents: false,
        mtime: None,
    }
}

fn mkdir(path: &str) -> BatchOp {
    BatchOp::Mkdir {
        path: path.into(),
        parents: false,
    }
}

async fn kinds_of_events(e: &Engine, id: &aether_core::SessionId) -> Vec<(String, Option<String>)> {
    e.events(id, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|ev| ev.kind.as_str() != "created")
        .map(|ev| (ev.kind.as_str().to_owned(), ev.path))
        .collect()
}

#[tokio::test]
async fn a_batch_sees_the_changes_before_each_change_and_persists_them_all() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let ops = vec![
        mkdir("d"),
        put_op("d/a", b"alpha"),
        BatchOp::Rename {
            from: "d".into(),
            to: "e".into(),
        },
        put_op("e/b", b"beta"),
        BatchOp::Chmod {
            path: "e/b".into(),
            mode: 0o600,
        },
        BatchOp::Symlink {
            path: "link".into(),
            target: "e/a".into(),
        },
        mkdir("gone"),
        BatchOp::Rmdir { path: "gone".into() },
        put_op("tmp", b"x"),
        BatchOp::Delete {
            path: "tmp".into(),
            recursive: false,
        },
    ];
    let out = e.apply_batch(&id, ops).await.unwrap();
    assert!(out.failed.is_none(), "{:?}", out.failed);
    assert_eq!(out.applied.len(), 10);
    let put_stat = out.applied[1].as_ref().expect("a put has a stat");
    assert_eq!(put_stat.size, 5);
    assert_eq!(
        put_stat.oid,
        e.stat(&id, "e/a", None).await.unwrap().oid,
        "the put's blob id"
    );
    assert!(out.applied[2].is_none(), "a rename has no stat");

    let check = |e: Engine, id: aether_core::SessionId| async move {
        assert_eq!(get(&e, &id, "e/a").await, b"alpha");
        assert_eq!(get(&e, &id, "e/b").await, b"beta");
        assert_eq!(e.stat(&id, "e/b", None).await.unwrap().mode, 0o600);
        assert_eq!(e.readlink(&id, "link", None).await.unwrap(), "e/a");
        for gone in ["d", "gone", "tmp"] {
            assert_eq!(
                e.stat(&id, gone, None).await.unwrap_err().kind(),
                ErrorKind::NotFound,
                "{gone}"
            );
        }
        let mut names: Vec<_> = e
            .list(&id, "", true, None)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.stat.path, d.stat.kind))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            names,
            [
                ("e".to_string(), FileKind::Dir),
                ("e/a".to_string(), FileKind::File),
                ("e/b".to_string(), FileKind::File),
                ("link".to_string(), FileKind::Symlink),
            ]
        );
    };
    check(e.engine.clone(), id.clone()).await;

    // One event per change, in the batch's order.
    let events = kinds_of_events(&e, &id).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "mkdir", "write", "rename", "write", "chmod", "symlink", "mkdir", "delete", "write", "delete"
        ]
    );

    // Durable: a fresh engine on the same data directory sees the same state.
    let TestEngine { engine, dir } = e;
    drop(engine);
    let reopened = Engine::open(config(dir.path())).await.unwrap();
    check(reopened, id).await;
}

#[tokio::test]
async fn a_failing_change_stops_the_batch_and_keeps_the_changes_before_it() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let ops = vec![
        mkdir("x"),
        put_op("x/f", b"kept"),
        mkdir("x"), // already exists
        put_op("y", b"never"),
    ];
    let out = e.apply_batch(&id, ops).await.unwrap();
    assert_eq!(out.applied.len(), 2);
    let (index, err) = out.failed.expect("the third change fails");
    assert_eq!(index, 2);
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(get(&e, &id, "x/f").await, b"kept");
    assert_eq!(e.stat(&id, "y", None).await.unwrap_err().kind(), ErrorKind::NotFound);
    let events = kinds_of_events(&e, &id).await;
    assert_eq!(
        events,
        [
            ("mkdir".to_string(), Some("x".to_string())),
            ("write".to_string(), Some("x/f".to_string()))
        ]
    );

    let TestEngine { engine, dir } = e;
    drop(engine);
    let reopened = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(get(&reopened, &id, "x/f").await, b"kept");
    assert_eq!(
        reopened.stat(&id, "y", None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn bad_input_fails_at_its_own_index() {
    let e = engine().await;
    let id = empty_session(&e).await;
    // A put into a missing parent (no create_parents) fails when planned; a bad path, a bad
    // mode and a bad symlink target fail before anything is planned: all report their index.
    let cases: Vec<(BatchOp, ErrorKind)> = vec![
        (put_op("missing/f", b"x"), ErrorKind::NotFound),
        (put_op("a/../../etc", b"x"), ErrorKind::InvalidPath),
        (
            BatchOp::Chmod {
                path: "ok".into(),
                mode: 0o17777,
            },
            ErrorKind::InvalidArgument,
        ),
        (
            BatchOp::Symlink {
                path: "l".into(),
                target: String::new(),
            },
            ErrorKind::InvalidArgument,
        ),
    ];
    for (n, (bad, kind)) in cases.into_iter().enumerate() {
        let first = format!("ok{n}");
        let out = e
            .apply_batch(&id, vec![put_op(&first, b"1"), bad.clone(), put_op("after", b"2")])
            .await
            .unwrap();
        let (index, err) = out.failed.unwrap_or_else(|| panic!("{bad:?} should fail"));
        assert_eq!((index, err.kind()), (1, kind), "{bad:?}: {err}");
        assert_eq!(out.applied.len(), 1);
        assert_eq!(get(&e, &id, &first).await, b"1");
        assert_eq!(
            e.stat(&id, "after", None).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}

#[tokio::test]
async fn a_read_only_session_refuses_the_whole_batch() {
    let e = engine().await;
    let id = empty_session(&e).await;
    e.archive_session(&id).await.unwrap();
    let err = e.apply_batch(&id, vec![put_op("f", b"x")]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly);
}
