//! Modification times are session state: set like a mode (set_times, a write with its mtime,
//! a batch change), kept through checkpoints, and brought back to the nanosecond by restore and
//! `fork --at`, for entries with a residual of their own and for entries untouched since the
//! base alike. A checkpoint records one base mtime, never a row per untouched file.

use std::collections::BTreeMap;

use aether_core::{BatchOp, Engine, ErrorKind, EventKind, SessionId, SessionSource, WriteOptions};
use rusqlite::Connection;

use crate::common::*;

/// Path -> mtime (ns) of every entry, the root included, at `at`.
async fn mtimes(e: &Engine, id: &SessionId, at: Option<&str>) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = e
        .list(id, "", true, at)
        .await
        .unwrap_or_else(|err| panic!("list at {at:?}: {err}"))
        .into_iter()
        .map(|d| (d.stat.path, d.stat.mtime_ns))
        .collect();
    out.insert("/".into(), e.stat(id, "", at).await.unwrap().mtime_ns);
    out
}

/// A session whose base holds files and a directory no write ever touched (as a git import
/// or a tar import makes them).
async fn session_with_base(e: &Engine, files: usize) -> SessionId {
    let repo = raw_odb(e);
    let blob = raw_blob(&repo, b"base\n");
    let mut sub: Vec<(String, gix::ObjectId)> = (0..files).map(|i| (format!("f{i:05}"), blob)).collect();
    sub.sort();
    let sub_entries: Vec<(&str, &[u8], gix::ObjectId)> =
        sub.iter().map(|(n, o)| ("100644", n.as_bytes(), *o)).collect();
    let sub_tree = raw_tree(&repo, &sub_entries);
    let root = raw_tree(
        &repo,
        &[
            ("100644", b"base.c", blob),
            ("40000", b"many", sub_tree),
            ("100644", b"other.c", blob),
        ],
    );
    session_at_tree(e, root).await
}

const OLD: i64 = 1_234_567_890_123_456_789;
const OLDER: i64 = 987_654_321_000_000_001;

#[tokio::test]
async fn restore_and_fork_at_keep_every_mtime_to_the_nanosecond() {
    let e = engine().await;
    let id = session_with_base(&e, 20).await;
    // Touched entries: set times, a write, a write carrying its own mtime, a directory.
    e.set_times(&id, "base.c", OLD).await.unwrap();
    put(&e, &id, "new/written", b"w").await;
    e.write_bytes(
        &id,
        "new/copied",
        b"c".to_vec(),
        WriteOptions {
            mtime: Some(OLDER),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    e.set_times(&id, "many", OLDER + 5).await.unwrap();
    let before = mtimes(&e, &id, None).await;
    assert_eq!(before["base.c"], OLD);
    assert_eq!(before["new/copied"], OLDER);
    assert_eq!(before["many"], OLDER + 5);
    // Untouched entries show the session's base mtime, with its nanoseconds.
    let base = before["other.c"];
    assert_eq!(before["many/f00003"], base);

    let cp = e.checkpoint(&id, None).await.unwrap();
    assert_eq!(mtimes(&e, &id, None).await, before, "a checkpoint changes no mtime");
    let at_cp = format!("checkpoints/{}", cp.checkpoint.number);
    assert_eq!(mtimes(&e, &id, Some(&at_cp)).await, before, "read at the checkpoint");

    // A fork of the live state shows what the parent shows.
    let fork = e
        .create_session(
            SessionSource::Session {
                id: id.clone(),
                at: None,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(mtimes(&e, &fork.id, None).await, before, "fork");

    // Change what the checkpoint must bring back; wait so `now` and the commit's second differ.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    e.set_times(&id, "base.c", 5).await.unwrap();
    put(&e, &id, "other.c", b"changed").await;
    e.set_times(&id, "new/copied", 7).await.unwrap();

    let forked_at = e
        .create_session(
            SessionSource::Session {
                id: id.clone(),
                at: Some(at_cp.clone()),
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(mtimes(&e, &forked_at.id, None).await, before, "fork --at");

    let restored = e.restore(&id, &at_cp).await.unwrap();
    assert!(restored.saved.is_some());
    assert_eq!(mtimes(&e, &id, None).await, before, "restore");
    // A second restore to the same state has nothing to save: the mtimes are the same.
    assert!(e.restore(&id, &at_cp).await.unwrap().saved.is_none());
    // The fork of the restored session, and a checkpoint of it, show the same again.
    let cp2 = e.checkpoint(&id, None).await.unwrap();
    let at_cp2 = format!("checkpoints/{}", cp2.checkpoint.number);
    assert_eq!(mtimes(&e, &id, Some(&at_cp2)).await, before);
    e.restore(
        &id,
        &format!("checkpoints/{}", restored.saved.unwrap().checkpoint.number),
    )
    .await
    .unwrap();
    let changed = mtimes(&e, &id, None).await;
    assert_eq!((changed["base.c"], changed["new/copied"]), (5, 7), "the saved state");
    assert_eq!(changed["many/f00003"], base, "untouched entries kept their base mtime");
}

#[tokio::test]
async fn a_checkpoint_records_one_base_mtime_and_no_row_per_untouched_file() {
    let e = engine().await;
    let id = session_with_base(&e, 2_000).await;
    e.set_times(&id, "base.c", OLD).await.unwrap();
    let base = e.stat(&id, "many/f01999", None).await.unwrap().mtime_ns;
    let cp = e.checkpoint(&id, None).await.unwrap();
    let db = Connection::open(e.dir.path().join("data").join("meta.db")).unwrap();
    let (residual, base_mtime): (String, Option<i64>) = db
        .query_row(
            "SELECT residual, base_mtime FROM revision_residuals WHERE commit_id = ?1",
            [cp.checkpoint.commit.to_hex().to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let rows: Vec<(String, serde_json::Value)> = serde_json::from_str(&residual).unwrap();
    let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["base.c"], "only the touched entry has a row");
    assert_eq!(base_mtime, Some(base), "the base mtime, once");
}

#[tokio::test]
async fn set_times_is_a_change_like_chmod() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a", b"a").await;
    e.link(&id, "a", "b").await.unwrap();
    e.mkdir(&id, "d", false).await.unwrap();
    e.symlink(&id, "d/l", "../a").await.unwrap();
    let after = e.event_cursor(&id).await.unwrap();

    let st = e.set_times(&id, "a", OLD).await.unwrap();
    assert_eq!(st.mtime_ns, OLD);
    assert_eq!(
        e.stat(&id, "b", None).await.unwrap().mtime_ns,
        OLD,
        "every name of a hard link"
    );
    assert_eq!(e.set_times(&id, "d/l", 3).await.unwrap().mtime_ns, 3, "a symlink's own");
    assert_eq!(e.stat(&id, "a", None).await.unwrap().mtime_ns, OLD, "not its target's");
    e.set_times(&id, "d", 4).await.unwrap();
    e.set_times(&id, "", 6).await.unwrap();
    assert_eq!(e.stat(&id, "", None).await.unwrap().mtime_ns, 6, "the root's own");
    assert_eq!(
        e.read(&id, "a", 0, None, None).await.unwrap(),
        b"a",
        "content unchanged"
    );

    let events = e.events(&id, after, 100).await.unwrap();
    let first = &events[0];
    assert_eq!((first.kind, first.path.as_deref()), (EventKind::SetTimes, Some("a")));
    assert_eq!(first.detail["mtime_ns"], serde_json::json!(OLD));
    assert_eq!(first.detail["linked"], serde_json::json!(["b"]));

    // Bad input is refused with a typed error and changes nothing.
    let err = e.set_times(&id, "a", -1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = e
        .write_bytes(
            &id,
            "a",
            b"x".to_vec(),
            WriteOptions {
                mtime: Some(i64::MIN),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        e.set_times(&id, "missing", 1).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(e.stat(&id, "a", None).await.unwrap().mtime_ns, OLD);

    // A batch: a put, then its times (what a mount sends after `tar -x` wrote a file).
    let out = e
        .apply_batch(
            &id,
            vec![
                BatchOp::Put {
                    path: "t/x".into(),
                    data: b"x".to_vec(),
                    mode: None,
                    create_parents: true,
                    mtime: None,
                },
                BatchOp::SetTimes {
                    path: "t/x".into(),
                    mtime: OLDER,
                },
                BatchOp::SetTimes {
                    path: "t/x".into(),
                    mtime: -5,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.applied.len(), 2);
    assert_eq!(
        out.failed.as_ref().map(|(i, e)| (*i, e.kind())),
        Some((2, ErrorKind::InvalidArgument))
    );
    assert_eq!(e.stat(&id, "t/x", None).await.unwrap().mtime_ns, OLDER);
}
