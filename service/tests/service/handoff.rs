//! The server's side of the exact handoff: dirty mounts are recalled before a read or a
//! freeze, their answer is awaited, a mount that does not answer is named in an event after the
//! configured time, and a mount is never recalled for its own reads.

use std::time::{Duration, Instant};

use aether_core::{EventKind, Surface};
use aether_service::{Attachment, Code, Commands, MountCommand, MountReport, Principal, ReadFile, Service, WatchFrom};

use crate::fixture;

fn read(session: &str) -> ReadFile {
    ReadFile {
        session: session.to_owned(),
        path: "f".into(),
        ..Default::default()
    }
}

/// The detail of the session's last `handoff_incomplete` event.
async fn last_incomplete(s: &Service, id: &str) -> serde_json::Value {
    let admin = Principal::admin(Surface::Rest);
    let mut feed = s.watch_events(&admin, id, WatchFrom::After(0)).await.unwrap();
    let mut incomplete = None;
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(200), feed.events.recv()).await {
        if e.kind == EventKind::HandoffIncomplete {
            incomplete = Some(e.detail);
        }
    }
    incomplete.expect("a handoff_incomplete event")
}

#[tokio::test]
async fn a_dirty_mount_is_recalled_before_a_read_and_the_read_waits_for_its_answer() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let admin = Principal::admin(Surface::Rest);
    let mount = Principal::admin(Surface::Grpc).from_mount("m-1").unwrap();
    let (att, mut commands) = s.attach_mount(&mount, &id).await.unwrap();

    // Clean: a read recalls nobody.
    s.stat(&admin, &id, "", None).await.unwrap();
    assert!(commands.try_recv().is_err(), "a clean mount is not recalled");

    att.report(MountReport::Dirty(1)).await.unwrap();
    assert_eq!(commands.recv().await, Some(MountCommand::Ack(1)));
    // The mount's own reads never wait for itself.
    s.stat(&mount, &id, "", None).await.unwrap();
    assert!(commands.try_recv().is_err());

    // Another caller's read waits until the mount has handed its changes over.
    let (s2, id2) = (s.clone(), id.clone());
    let reader = tokio::spawn(async move {
        let started = Instant::now();
        let got = s2.open_file(&admin, read(&id2)).await.map(|f| f.size());
        (got, started.elapsed())
    });
    let Some(MountCommand::Recall(n)) = commands.recv().await else {
        panic!("the dirty mount is recalled")
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // What the mount sends before it answers is what the read sees.
    let w = aether_service::WriteFile {
        session: id.clone(),
        path: "f".into(),
        size: None,
        mode: None,
        create_parents: false,
        offset: 0,
        mtime: None,
    };
    s.write_file(&mount, w, &b"handed over"[..]).await.unwrap();
    att.report(MountReport::Recalled {
        recall: n,
        refused: 0,
        error: None,
    })
    .await
    .unwrap();
    let (got, waited) = reader.await.unwrap();
    assert_eq!(got.unwrap(), 11);
    assert!(waited >= Duration::from_millis(100), "{waited:?}");

    // Clean again: no more recalls.
    att.report(MountReport::Clean(1)).await.unwrap();
    s.stat(&Principal::admin(Surface::Rest), &id, "f", None).await.unwrap();
    assert!(commands.try_recv().is_err());
}

#[tokio::test]
async fn a_mount_that_does_not_answer_is_waited_for_at_most_the_timeout_and_named_in_an_event() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let admin = Principal::admin(Surface::Rest);
    let mount = Principal::admin(Surface::Grpc).from_mount("m-silent").unwrap();
    let (att, mut commands) = s.attach_mount(&mount, &id).await.unwrap();
    att.report(MountReport::Dirty(1)).await.unwrap();
    assert_eq!(commands.recv().await, Some(MountCommand::Ack(1)));

    let started = Instant::now();
    let cp = s.checkpoint(&admin, &id, None).await.unwrap();
    let waited = started.elapsed();
    assert!(cp.checkpoint.number > 0, "the checkpoint goes on without the mount");
    // The fixture's handoff timeout is 300 ms.
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(matches!(commands.try_recv(), Ok(MountCommand::Recall(_))));

    let detail = last_incomplete(s, &id).await;
    assert_eq!(detail["mounts"], serde_json::json!(["m-silent"]));
    assert_eq!(detail["for"], "checkpoint");

    // Detached: nothing to wait for any more, so nothing goes on without it.
    drop(att);
    let after = Principal::admin(Surface::Rest);
    s.checkpoint(&after, &id, None).await.unwrap();
    assert!(after.incomplete_handoffs().is_empty());
    assert_eq!(admin.incomplete_handoffs(), ["m-silent"]);
}

#[tokio::test]
async fn a_read_only_mount_attaches_to_listen_and_cannot_report_changes() {
    let f = fixture().await;
    let id = f.new_session().await;
    let s = &f.service;
    let not_a_mount = Principal::admin(Surface::Grpc);
    assert_eq!(
        s.attach_mount(&not_a_mount, &id).await.err().unwrap().code,
        Code::InvalidArgument
    );
    let reader = f.token(&[&id], "read").await.from_mount("m-r").unwrap();
    let (att, _commands) = s.attach_mount(&reader, &id).await.unwrap();
    assert_eq!(
        att.report(MountReport::Dirty(1)).await.err().unwrap().code,
        Code::Forbidden
    );
    let changed = MountReport::Changed {
        id: 1,
        paths: vec!["f".into()],
    };
    assert_eq!(att.report(changed).await.err().unwrap().code, Code::Forbidden);
    let other = f.new_session().await;
    let stranger = f.token(&[&other], "read").await.from_mount("m-s").unwrap();
    assert_eq!(
        s.attach_mount(&stranger, &id).await.err().unwrap().code,
        Code::Forbidden
    );
    let missing = "01hzzzzzzzzzzzzzzzzzzzzzzz";
    let admin_mount = Principal::admin(Surface::Grpc).from_mount("m-a").unwrap();
    assert_eq!(
        s.attach_mount(&admin_mount, missing).await.err().unwrap().code,
        Code::NotFound
    );
}

/// The next command within `ms`, if any.
async fn next_within(commands: &mut Commands, ms: u64) -> Option<MountCommand> {
    tokio::time::timeout(Duration::from_millis(ms), commands.recv())
        .await
        .ok()
        .flatten()
}

/// Attach `second` to `id` while the mount of `first` is attached: the attachment completes
/// only once that mount answered the peer count it was sent.
async fn attach_second(
    s: &Service,
    id: &str,
    first: (&Attachment, &mut Commands),
    second: &Principal,
) -> (Attachment, Commands) {
    let (s2, id2, p2) = (s.clone(), id.to_owned(), second.clone());
    let attaching = tokio::spawn(async move { s2.attach_mount(&p2, &id2).await });
    let Some(MountCommand::Peers { id: n, count: 1 }) = next_within(first.1, 2000).await else {
        panic!("the attached mount learns of the second")
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!attaching.is_finished(), "attached before the first mount knew of it");
    first.0.report(MountReport::PeersSeen(n)).await.unwrap();
    let (att, mut commands) = attaching.await.unwrap().unwrap();
    assert!(
        matches!(
            next_within(&mut commands, 1000).await,
            Some(MountCommand::Peers { count: 1, .. })
        ),
        "the second mount learns of the first"
    );
    (att, commands)
}

fn changed(id: u64, paths: &[&str]) -> MountReport {
    MountReport::Changed {
        id,
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_change_is_acknowledged_only_once_every_other_mount_dropped_its_paths() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let m1 = Principal::admin(Surface::Grpc).from_mount("m-1").unwrap();
    let m2 = Principal::admin(Surface::Grpc).from_mount("m-2").unwrap();
    let (a1, mut c1) = s.attach_mount(&m1, &id).await.unwrap();
    assert_eq!(next_within(&mut c1, 100).await, None, "alone: no peer count to hear");
    let (a2, mut c2) = attach_second(s, &id, (&a1, &mut c1), &m2).await;
    // Only what a mount listed can be in its kernel: m-2 lists the root.
    s.list(&m2, &id, "", None).await.unwrap();

    a1.report(changed(7, &["f", "g"])).await.unwrap();
    let Some(MountCommand::Invalidate { id: n, paths }) = next_within(&mut c2, 1000).await else {
        panic!("the other mount is told to drop the paths")
    };
    assert_eq!(&*paths, ["f", "g"]);
    assert_eq!(
        next_within(&mut c1, 150).await,
        None,
        "acknowledged before the other mount answered"
    );
    a2.report(MountReport::Invalidated(n)).await.unwrap();
    assert_eq!(next_within(&mut c1, 1000).await, Some(MountCommand::Changed(7)));
    assert_eq!(
        next_within(&mut c2, 100).await,
        None,
        "the changing mount itself is not told"
    );

    // A changed mount is dirty: another caller's read recalls it.
    let admin = Principal::admin(Surface::Rest);
    let (s2, id2) = (s.clone(), id.clone());
    let reader = tokio::spawn(async move { s2.stat(&admin, &id2, "", None).await });
    let Some(MountCommand::Recall(r)) = next_within(&mut c1, 1000).await else {
        panic!("the changed mount is recalled")
    };
    a1.report(MountReport::Recalled {
        recall: r,
        refused: 0,
        error: None,
    })
    .await
    .unwrap();
    reader.await.unwrap().unwrap();

    // The second mount goes: the first learns it is alone, and its changes wait for nobody.
    drop(a2);
    assert!(matches!(
        next_within(&mut c1, 1000).await,
        Some(MountCommand::Peers { count: 0, .. })
    ));
    a1.report(changed(8, &["x"])).await.unwrap();
    assert_eq!(next_within(&mut c1, 1000).await, Some(MountCommand::Changed(8)));
}

#[tokio::test]
async fn a_mount_that_does_not_drop_a_change_is_waited_for_at_most_the_timeout_and_named() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let m1 = Principal::admin(Surface::Grpc).from_mount("m-1").unwrap();
    let m2 = Principal::admin(Surface::Grpc).from_mount("m-deaf").unwrap();
    let (a1, mut c1) = s.attach_mount(&m1, &id).await.unwrap();
    let (_a2, mut c2) = attach_second(s, &id, (&a1, &mut c1), &m2).await;
    s.list(&m2, &id, "", None).await.unwrap();
    let started = Instant::now();
    a1.report(changed(1, &["f"])).await.unwrap();
    assert!(matches!(
        next_within(&mut c2, 1000).await,
        Some(MountCommand::Invalidate { .. })
    ));
    assert_eq!(next_within(&mut c1, 2000).await, Some(MountCommand::Changed(1)));
    let waited = started.elapsed();
    // The fixture's handoff timeout is 300 ms.
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    let detail = last_incomplete(s, &id).await;
    assert_eq!(detail["mounts"], serde_json::json!(["m-deaf"]));
    assert_eq!(detail["for"], "invalidate");
}

/// Two mounts changing at once may each hold a directory lock the other's invalidation needs:
/// the later-attached mount's change does not wait for the earlier one while that one waits
/// itself, so neither waits out the timeout; the earlier one's change still waits for the
/// later one's answer.
#[tokio::test]
async fn two_mounts_changing_at_once_do_not_wait_for_each_other() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let m1 = Principal::admin(Surface::Grpc).from_mount("m-1").unwrap();
    let m2 = Principal::admin(Surface::Grpc).from_mount("m-2").unwrap();
    let (a1, mut c1) = s.attach_mount(&m1, &id).await.unwrap();
    let (a2, mut c2) = attach_second(s, &id, (&a1, &mut c1), &m2).await;
    s.list(&m1, &id, "", None).await.unwrap();
    s.list(&m2, &id, "", None).await.unwrap();

    // The later mount changes first and waits for the earlier one...
    a2.report(changed(1, &["b"])).await.unwrap();
    let Some(MountCommand::Invalidate { id: for_1, .. }) = next_within(&mut c1, 1000).await else {
        panic!("m-1 is told of m-2's change")
    };
    assert_eq!(next_within(&mut c2, 100).await, None);
    // ...which changes too before answering (its kernel now holds the lock m-2's change needs).
    let started = Instant::now();
    a1.report(changed(1, &["a"])).await.unwrap();
    // m-2 hears of m-1's change and is not kept waiting for a mount that waits itself (in
    // either order).
    let mut acked_2 = None;
    let mut for_2 = None;
    for _ in 0..2 {
        match next_within(&mut c2, 1000).await {
            Some(MountCommand::Changed(1)) => acked_2 = Some(started.elapsed()),
            Some(MountCommand::Invalidate { id, .. }) => for_2 = Some(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    let acked_2 = acked_2.expect("m-2's change acknowledged");
    assert!(acked_2 < Duration::from_millis(250), "{acked_2:?}");
    let for_2 = for_2.expect("m-2 told of m-1's change");
    assert_eq!(next_within(&mut c1, 100).await, None, "m-1 waits for m-2's answer");
    a2.report(MountReport::Invalidated(for_2)).await.unwrap();
    assert_eq!(next_within(&mut c1, 1000).await, Some(MountCommand::Changed(1)));
    // m-1's late answer to the first invalidation changes nothing.
    a1.report(MountReport::Invalidated(for_1)).await.unwrap();
}

/// A mount's kernel can only hold entries of directories the mount listed: a change elsewhere
/// reaches it only then (a listing under way counts from before its recall), so a mount that
/// never looked costs the changing mount nothing.
#[tokio::test]
async fn a_change_reaches_only_mounts_that_listed_its_directory() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let m1 = Principal::admin(Surface::Grpc).from_mount("m-1").unwrap();
    let m2 = Principal::admin(Surface::Grpc).from_mount("m-2").unwrap();
    let (a1, mut c1) = s.attach_mount(&m1, &id).await.unwrap();
    let (a2, mut c2) = attach_second(s, &id, (&a1, &mut c1), &m2).await;
    let admin = Principal::admin(Surface::Rest);
    s.mkdir(&admin, &id, "d/e", true).await.unwrap();

    a1.report(changed(1, &["d/x"])).await.unwrap();
    assert_eq!(next_within(&mut c1, 1000).await, Some(MountCommand::Changed(1)));
    assert_eq!(next_within(&mut c2, 100).await, None, "m-2 listed nothing");

    // Listing d/e (alone) concerns d/e's entries, not d's. (m-1 says it is clean, so the
    // listing recalls nobody.)
    a1.report(MountReport::Clean(0)).await.unwrap();
    s.list(&m2, &id, "d/e", None).await.unwrap();
    a1.report(changed(2, &["d/x"])).await.unwrap();
    assert_eq!(next_within(&mut c1, 1000).await, Some(MountCommand::Changed(2)));
    a1.report(changed(3, &["d/e/y"])).await.unwrap();
    let Some(MountCommand::Invalidate { id: n, .. }) = next_within(&mut c2, 1000).await else {
        panic!("m-2 listed d/e")
    };
    a2.report(MountReport::Invalidated(n)).await.unwrap();
    assert_eq!(next_within(&mut c1, 1000).await, Some(MountCommand::Changed(3)));

    // A listing of the root and what lies below it covers every directory it returned.
    let walk = aether_service::ListDirs {
        session: id.clone(),
        path: String::new(),
        max_entries: 100,
        ..Default::default()
    };
    a1.report(MountReport::Clean(0)).await.unwrap();
    let mut listing = s.list_dirs(&m2, walk).await.unwrap();
    while listing.next().await.unwrap().is_some() {}
    a1.report(changed(4, &["d/z"])).await.unwrap();
    assert!(matches!(
        next_within(&mut c2, 1000).await,
        Some(MountCommand::Invalidate { .. })
    ));
}

/// An API change after a mount's close must not be undone by that close's upload landing
/// later: the dirty mount is recalled before the change is applied. A mount's own changes
/// recall nobody.
#[tokio::test]
async fn an_api_change_recalls_dirty_mounts_first() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let m = Principal::admin(Surface::Grpc).from_mount("m-1").unwrap();
    let (att, mut commands) = s.attach_mount(&m, &id).await.unwrap();
    att.report(MountReport::Dirty(1)).await.unwrap();
    assert_eq!(next_within(&mut commands, 1000).await, Some(MountCommand::Ack(1)));

    s.mkdir(&m, &id, "own", false).await.unwrap();
    assert_eq!(
        next_within(&mut commands, 100).await,
        None,
        "a mount's own change recalls nobody"
    );

    let admin = Principal::admin(Surface::Rest);
    let (s2, id2) = (s.clone(), id.clone());
    let change = tokio::spawn(async move { s2.mkdir(&admin, &id2, "api", false).await });
    let Some(MountCommand::Recall(n)) = next_within(&mut commands, 1000).await else {
        panic!("the dirty mount is recalled before the API change")
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!change.is_finished(), "the change waits for the recall");
    att.report(MountReport::Recalled {
        recall: n,
        refused: 0,
        error: None,
    })
    .await
    .unwrap();
    change.await.unwrap().unwrap();
}
