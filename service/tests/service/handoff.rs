//! The server's side of the exact handoff: dirty mounts are recalled before a read or a
//! freeze, their answer is awaited, a mount that does not answer is named in an event after the
//! configured time, and a mount is never recalled for its own reads.

use std::time::{Duration, Instant};

use aether_core::{EventKind, Surface};
use aether_service::{Code, MountCommand, MountReport, Principal, ReadFile, WatchFrom};

use crate::fixture;

fn read(session: &str) -> ReadFile {
    ReadFile {
        session: session.to_owned(),
        path: "f".into(),
        ..Default::default()
    }
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

    let mut feed = s.watch_events(&admin, &id, WatchFrom::After(0)).await.unwrap();
    let mut incomplete = None;
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(200), feed.events.recv()).await {
        if e.kind == EventKind::HandoffIncomplete {
            incomplete = Some(e.detail);
        }
    }
    let detail = incomplete.expect("a handoff_incomplete event");
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
async fn only_a_mount_that_may_write_attaches() {
    let f = fixture().await;
    let id = f.new_session().await;
    let s = &f.service;
    let not_a_mount = Principal::admin(Surface::Grpc);
    assert_eq!(
        s.attach_mount(&not_a_mount, &id).await.err().unwrap().code,
        Code::InvalidArgument
    );
    let reader = f.token(&[&id], "read").await.from_mount("m-r").unwrap();
    assert_eq!(s.attach_mount(&reader, &id).await.err().unwrap().code, Code::Forbidden);
    let missing = "01hzzzzzzzzzzzzzzzzzzzzzzz";
    let admin_mount = Principal::admin(Surface::Grpc).from_mount("m-a").unwrap();
    assert_eq!(
        s.attach_mount(&admin_mount, missing).await.err().unwrap().code,
        Code::NotFound
    );
}
