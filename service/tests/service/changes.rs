//! The query behind `aether fsmonitor`: paths changed since a position of the event log, under
//! a prefix, and "everything" whenever the log cannot answer exactly.

use aether_core::Surface;
use aether_service::{Changes, ChangesSince, Everything, Principal, Service, WriteFile};

use crate::{Fixture, fixture};

async fn write(s: &Service, id: &str, path: &str, bytes: &'static [u8]) {
    let w = WriteFile {
        session: id.to_owned(),
        path: path.into(),
        create_parents: true,
        ..Default::default()
    };
    s.write_file(&admin(), w, bytes).await.unwrap();
}

fn admin() -> Principal {
    Principal::admin(Surface::Rest)
}

async fn since(s: &Service, id: &str, since: Option<i64>, prefix: &str) -> Changes {
    let req = ChangesSince {
        session: id.to_owned(),
        since,
        prefix: prefix.to_owned(),
    };
    s.changes_since(&admin(), req).await.unwrap()
}

/// A session with `repo/a` and `outside`, and a position after them.
async fn start(f: &Fixture) -> (String, i64) {
    let id = f.new_session().await;
    write(&f.service, &id, "repo/a", b"a").await;
    write(&f.service, &id, "outside", b"o").await;
    let first = since(&f.service, &id, None, "repo").await;
    assert_eq!(first.everything, Some(Everything::UnknownPosition));
    assert!(first.paths.is_empty());
    assert!(first.position > 0);
    (id, first.position)
}

#[tokio::test]
async fn paths_since_a_position_under_the_prefix_with_both_names_of_a_rename_and_linked_names() {
    let f = fixture().await;
    let s = &f.service;
    let (id, pos) = start(&f).await;
    let nothing = since(s, &id, Some(pos), "repo").await;
    assert_eq!(
        (nothing.everything, nothing.paths.len(), nothing.position),
        (None, 0, pos)
    );

    write(s, &id, "repo/b", b"b").await;
    write(s, &id, "outside", b"changed").await;
    write(s, &id, "repository/x", b"not under repo").await;
    s.mkdir(&admin(), &id, "repo/sub", true).await.ok();
    s.rename(&admin(), &id, "repo/a", "repo/sub/a2").await.unwrap();
    s.link(&admin(), &id, "repo/b", "repo/hard").await.unwrap();
    write(s, &id, "repo/b", b"b through both names").await;
    s.chmod(&admin(), &id, "repo/sub/a2", 0o755).await.unwrap();

    let got = since(s, &id, Some(pos), "/repo/").await;
    assert_eq!(got.everything, None);
    let want = ["a", "a/", "b", "hard", "sub", "sub/", "sub/a2", "sub/a2/"];
    assert_eq!(got.paths, want);
    // These changes are younger than the settling time: the next answer names them again.
    assert_eq!(
        got.position, pos,
        "a position never passes changes other mounts may not show yet"
    );

    // At the root, paths are the session's own.
    let root = since(s, &id, Some(pos), "").await;
    assert!(root.paths.contains(&"outside".to_owned()));
    assert!(root.paths.contains(&"repository/x".to_owned()));
    assert!(root.paths.contains(&"repo/b".to_owned()));

    // Once settled, the position moves past them and they are not named again.
    tokio::time::sleep(aether_service::SETTLE).await;
    let settled = since(s, &id, Some(pos), "repo").await;
    assert_eq!(settled.paths, want);
    assert!(settled.position > pos);
    let after = since(s, &id, Some(settled.position), "repo").await;
    assert_eq!((after.everything, after.paths.len()), (None, 0));
}

#[tokio::test]
async fn a_restore_since_means_everything() {
    let f = fixture().await;
    let s = &f.service;
    let (id, pos) = start(&f).await;
    let cp = s.checkpoint(&admin(), &id, None).await.unwrap();
    let unchanged = since(s, &id, Some(pos), "repo").await;
    assert_eq!(unchanged.everything, None, "a checkpoint changes no file");
    write(s, &id, "repo/a", b"changed").await;
    s.restore(&admin(), &id, &format!("checkpoints/{}", cp.checkpoint.number))
        .await
        .unwrap();
    let got = since(s, &id, Some(pos), "repo").await;
    assert_eq!(got.everything, Some(Everything::Reset));
    assert!(got.paths.is_empty());
}

#[tokio::test]
async fn unknown_and_foreign_positions_mean_everything() {
    let f = fixture().await;
    let s = &f.service;
    let (id, pos) = start(&f).await;
    for bad in [None, Some(0), Some(-3), Some(pos + 1_000_000)] {
        let got = since(s, &id, bad, "repo").await;
        assert_eq!(got.everything, Some(Everything::UnknownPosition), "{bad:?}");
        assert_eq!(got.position, pos, "{bad:?}");
    }
    // A position of another session's log is not one of this one's events.
    let (_other, theirs) = start(&f).await;
    write(s, &id, "repo/a", b"later").await;
    let got = since(s, &id, Some(theirs), "repo").await;
    assert_eq!(got.everything, Some(Everything::Pruned));
}

#[tokio::test]
async fn a_change_of_the_prefix_itself_means_everything() {
    let f = fixture().await;
    let s = &f.service;
    let (id, pos) = start(&f).await;
    s.rename(&admin(), &id, "repo", "moved").await.unwrap();
    let got = since(s, &id, Some(pos), "repo").await;
    assert_eq!(got.everything, Some(Everything::PrefixChanged));
    // Elsewhere it is two ordinary names.
    let root = since(s, &id, Some(pos), "").await;
    assert_eq!(root.everything, None);
    assert!(root.paths.contains(&"moved/".to_owned()) && root.paths.contains(&"repo/".to_owned()));
}

#[tokio::test]
async fn a_pruned_log_means_everything() {
    let f = fixture().await;
    let s = &f.service;
    let (id, pos) = start(&f).await;
    write(s, &id, "repo/a", b"changed").await;
    assert_eq!(since(s, &id, Some(pos), "repo").await.everything, None);
    // Drop the oldest events up to the position, as a retention policy would.
    let db = rusqlite::Connection::open(f.data_dir().join("meta.db")).unwrap();
    db.execute(
        "DELETE FROM events WHERE session_id = ?1 AND seq <= ?2",
        rusqlite::params![id, pos],
    )
    .unwrap();
    let got = since(s, &id, Some(pos), "repo").await;
    assert_eq!(got.everything, Some(Everything::Pruned));
}

#[tokio::test]
async fn a_scoped_token_needs_read_access_and_prefixes_are_checked() {
    let f = fixture().await;
    let (id, pos) = start(&f).await;
    let other = f.new_session().await;
    let p = f.token(&[&other], "read").await;
    let req = ChangesSince {
        session: id.clone(),
        since: Some(pos),
        prefix: String::new(),
    };
    assert!(f.service.changes_since(&p, req).await.is_err());
    let req = ChangesSince {
        session: id,
        since: Some(pos),
        prefix: "a/../b".into(),
    };
    let e = f.service.changes_since(&admin(), req).await.unwrap_err();
    assert_eq!(e.code, aether_service::Code::BadRequest);
}
