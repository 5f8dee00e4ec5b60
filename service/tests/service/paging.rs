use aether_core::Surface;
use aether_service::{Code, CommitRequest, ListSessions, PageRequest, Principal};

use crate::fixture;

#[tokio::test]
async fn session_pages_follow_the_cursor_to_the_end() {
    let f = fixture().await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(f.new_session().await);
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let req = ListSessions {
            page: PageRequest { limit: Some(2), after },
            ..Default::default()
        };
        let page = f
            .service
            .list_sessions(&Principal::admin(Surface::Rest), req)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|s| s.id.to_string()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, made);
    // 2 + 2 + 1: the short page is the last.
    assert_eq!(pages, 3);
    let all = f
        .service
        .list_sessions(&Principal::admin(Surface::Rest), ListSessions::default())
        .await
        .unwrap();
    assert_eq!(
        (all.items.len(), all.next),
        (5, None),
        "the default limit holds them all"
    );
    for limit in [0, 1001] {
        let req = ListSessions {
            page: PageRequest {
                limit: Some(limit),
                after: None,
            },
            ..Default::default()
        };
        let e = f
            .service
            .list_sessions(&Principal::admin(Surface::Rest), req)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::BadRequest, "{limit}");
    }
}

#[tokio::test]
async fn the_log_pages_by_commit_id() {
    let f = fixture().await;
    let id = f.new_session().await;
    let s = &f.service;
    for i in 0..3 {
        let w = aether_service::WriteFile {
            session: id.clone(),
            path: "f".into(),
            create_parents: true,
            ..Default::default()
        };
        let bytes = std::io::Cursor::new(format!("{i}").into_bytes());
        s.write_file(&Principal::admin(Surface::Rest), w, bytes).await.unwrap();
        let c = CommitRequest {
            message: format!("c{i}"),
            ..Default::default()
        };
        s.commit(&Principal::admin(Surface::Rest), &id, c).await.unwrap();
    }
    let page = |limit, after| PageRequest { limit, after };
    let first = s
        .log(&Principal::admin(Surface::Rest), &id, None, page(Some(2), None))
        .await
        .unwrap();
    let messages: Vec<_> = first.items.iter().map(|c| c.message.trim().to_owned()).collect();
    assert_eq!(messages, ["c2", "c1"]);
    let rest = s
        .log(&Principal::admin(Surface::Rest), &id, None, page(None, first.next))
        .await
        .unwrap();
    assert_eq!(rest.items[0].message.trim(), "c0");
    assert_eq!(rest.next, None);
    for bad in ["not-a-commit", ""] {
        let e = s
            .log(
                &Principal::admin(Surface::Rest),
                &id,
                None,
                page(None, Some(bad.into())),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::BadRequest, "after={bad:?}");
    }
}

#[tokio::test]
async fn a_cursor_that_names_no_session_is_bad_request() {
    let f = fixture().await;
    f.new_session().await;
    for bad in ["", "x", "01M96ZCGQDTNA6STYP5H8TRZJ4"] {
        let req = ListSessions {
            page: PageRequest {
                limit: None,
                after: Some(bad.into()),
            },
            ..Default::default()
        };
        let e = f
            .service
            .list_sessions(&Principal::admin(Surface::Rest), req)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::BadRequest, "after={bad:?}");
    }
}
