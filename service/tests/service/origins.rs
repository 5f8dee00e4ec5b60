//! Every change is recorded with who made it and through what, so a client knows its own
//! changes when they come back on the event stream.

use aether_core::{EventKind, Origin, Surface};
use aether_service::{Code, Principal, WatchFrom, WriteFile};

use crate::fixture;

fn write(session: &str, path: &str) -> WriteFile {
    WriteFile {
        session: session.to_owned(),
        path: path.to_owned(),
        size: None,
        mode: None,
        create_parents: false,
        offset: 0,
        mtime: None,
    }
}

#[tokio::test]
async fn a_change_carries_the_surface_principal_and_mount_of_its_caller() {
    let f = fixture().await;
    let id = f.new_session().await;
    let scoped = f.token(&[&id], "write").await;
    let mount = scoped.clone().from_mount("m-1").unwrap();
    let grpc = Principal::admin(Surface::Grpc);
    let s = &f.service;
    s.write_file(&mount, write(&id, "a"), &b"1"[..]).await.unwrap();
    s.write_file(&grpc, write(&id, "b"), &b"2"[..]).await.unwrap();
    s.write_file(&scoped, write(&id, "c"), &b"3"[..]).await.unwrap();

    let mut feed = s.watch_events(&grpc, &id, WatchFrom::After(0)).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let e = feed.events.recv().await.unwrap().unwrap();
        seen.push((e.kind, e.path, e.origin.unwrap()));
    }
    let token = scoped.origin().principal;
    assert!(token.starts_with("token:"), "{token}");
    let origin = |surface, principal: &str, mount: Option<&str>| Origin {
        surface,
        principal: principal.to_owned(),
        mount: mount.map(str::to_owned),
    };
    assert_eq!(
        seen,
        [
            (EventKind::Created, None, origin(Surface::Rest, "admin", None)),
            (
                EventKind::Write,
                Some("a".into()),
                origin(Surface::Mount, &token, Some("m-1"))
            ),
            (EventKind::Write, Some("b".into()), origin(Surface::Grpc, "admin", None)),
            (EventKind::Write, Some("c".into()), origin(Surface::Rest, &token, None)),
        ]
    );
}

#[tokio::test]
async fn a_malformed_mount_id_is_refused() {
    for bad in ["", "has space", "x/y", &"m".repeat(65)] {
        let e = Principal::admin(Surface::Grpc).from_mount(bad).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument, "{bad:?}");
    }
}
