use aether_core::Surface;
use aether_service::{Code, CreateSession, CreateToken, Identity, ListSessions, Principal, ReadFile, WriteFile};

use crate::fixture;

#[tokio::test]
async fn authentication_tells_admin_scoped_and_unknown_callers_apart() {
    let f = fixture().await;
    let s = &f.service;
    assert!(
        s.authenticate(Some(&f.admin_token), Surface::Rest)
            .await
            .unwrap()
            .is_admin()
    );
    for bad in [None, Some(""), Some("aet_wrong"), Some(&f.admin_token[1..])] {
        let e = s.authenticate(bad, Surface::Rest).await.unwrap_err();
        assert_eq!(e.code, Code::Unauthorized, "{bad:?}");
    }
    let id = f.new_session().await;
    let p = f.token(&[&id], "read").await;
    assert!(matches!(p.identity, Identity::Scoped(_)));
}

#[tokio::test]
async fn scoped_tokens_read_or_write_only_their_sessions() {
    let f = fixture().await;
    let s = &f.service;
    let mine = f.new_session().await;
    let other = f.new_session().await;
    let reader = f.token(&[&mine], "read").await;
    let writer = f.token(&[&mine], "write").await;
    let write = |session: &str| WriteFile {
        session: session.to_owned(),
        path: "f".into(),
        create_parents: true,
        ..Default::default()
    };

    s.write_file(&writer, write(&mine), &b"x"[..]).await.unwrap();
    let e = s.write_file(&reader, write(&mine), &b"y"[..]).await.unwrap_err();
    assert_eq!(e.code, Code::Forbidden);
    assert!(e.message.contains("may only read"), "{}", e.message);
    let read = ReadFile {
        session: mine.clone(),
        path: "f".into(),
        ..Default::default()
    };
    assert_eq!(s.open_file(&reader, read).await.unwrap().size(), 1);

    // Another session: neither read nor written, and not listed.
    let e = s.get_session(&writer, &other).await.unwrap_err();
    assert_eq!(e.code, Code::Forbidden);
    assert!(e.message.contains("no access"), "{}", e.message);
    let e = s.write_file(&writer, write(&other), &b"z"[..]).await.unwrap_err();
    assert_eq!(e.code, Code::Forbidden);
    let listed = s.list_sessions(&reader, ListSessions::default()).await.unwrap();
    let ids: Vec<_> = listed.items.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(ids, std::slice::from_ref(&mine));

    // Admin-only use cases.
    for p in [&reader, &writer] {
        let e = s.create_session(p, CreateSession::default()).await.unwrap_err();
        assert_eq!(e.code, Code::Forbidden);
        assert_eq!(s.delete_session(p, &mine).await.unwrap_err().code, Code::Forbidden);
        assert_eq!(s.list_tokens(p).await.unwrap_err().code, Code::Forbidden);
        let e = s.create_token(p, CreateToken::default()).await.unwrap_err();
        assert_eq!(e.code, Code::Forbidden);
    }
    // A malformed session id names no session, for every caller.
    assert_eq!(
        s.get_session(&Principal::admin(Surface::Rest), "nope")
            .await
            .unwrap_err()
            .code,
        Code::NotFound
    );
}
