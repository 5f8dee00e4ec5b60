//! A session's activity: its changes with who, through what, what and where, filtered and
//! paged; old events pruned, a session's newest always kept.

use aether_core::{ActivityQuery, EventKind, EventRetention, Origin, Surface};

use crate::common::*;

fn origin(surface: Surface, principal: &str, mount: Option<&str>) -> Origin {
    Origin {
        surface,
        principal: principal.to_owned(),
        mount: mount.map(str::to_owned),
    }
}

fn q() -> ActivityQuery {
    ActivityQuery {
        limit: 100,
        ..Default::default()
    }
}

#[tokio::test]
async fn activity_filters_by_who_what_where_and_when_and_pages() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let rest = e.acting_for(origin(Surface::Rest, "admin", None));
    let grpc = e.acting_for(origin(Surface::Grpc, "token:t1", None));
    let mount = e.acting_for(origin(Surface::Mount, "token:t1", Some("m-1")));
    put(&rest, &id, "src/a.rs", b"a").await;
    put(&grpc, &id, "src/b.rs", b"b").await;
    put(&mount, &id, "docs/c.md", b"c").await;
    let mid = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    mount.delete(&id, "src/a.rs", false).await.unwrap();

    let all = e.activity(&id, &q()).await.unwrap();
    let writes: Vec<_> = all.events.iter().filter(|e| e.kind == EventKind::Write).collect();
    assert_eq!(writes.len(), 3, "{:?}", all.events);
    assert_eq!(all.next, None);

    let by = |f: ActivityQuery| {
        let e = e.engine.clone();
        let id = id.clone();
        async move {
            e.activity(&id, &f)
                .await
                .unwrap()
                .events
                .into_iter()
                .map(|ev| (ev.kind, ev.path.unwrap_or_default()))
                .collect::<Vec<_>>()
        }
    };
    let token = by(ActivityQuery {
        principal: Some("token:t1".into()),
        ..q()
    })
    .await;
    assert_eq!(
        token,
        vec![
            (EventKind::Write, "src/b.rs".into()),
            (EventKind::Write, "docs/c.md".into()),
            (EventKind::Delete, "src/a.rs".into())
        ]
    );
    let mounted = by(ActivityQuery {
        surface: Some(Surface::Mount),
        ..q()
    })
    .await;
    assert_eq!(mounted.len(), 2, "{mounted:?}");
    let deletes_in_src = by(ActivityQuery {
        operations: vec![EventKind::Delete],
        path_prefix: Some("src".into()),
        ..q()
    })
    .await;
    assert_eq!(deletes_in_src, vec![(EventKind::Delete, "src/a.rs".into())]);
    // `sr` is no prefix of `src/...`: components, not bytes.
    assert!(
        by(ActivityQuery {
            path_prefix: Some("sr".into()),
            ..q()
        })
        .await
        .is_empty()
    );
    let later = by(ActivityQuery {
        since_ms: Some(mid + 1),
        ..q()
    })
    .await;
    assert_eq!(later, vec![(EventKind::Delete, "src/a.rs".into())]);

    // Pages of two, continued by `next`, give the same events in order.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = e
            .activity(&id, &ActivityQuery { after, limit: 2, ..q() })
            .await
            .unwrap();
        paged.extend(page.events.iter().map(|ev| ev.seq));
        match page.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(paged, all.events.iter().map(|ev| ev.seq).collect::<Vec<_>>());

    let err = e.activity(&id, &ActivityQuery { limit: 0, ..q() }).await.unwrap_err();
    assert_eq!(err.kind(), aether_core::ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn retention_prunes_by_count_and_age_and_keeps_each_sessions_newest() {
    let e = engine().await;
    let a = empty_session(&e).await;
    let b = empty_session(&e).await;
    for i in 0..10 {
        put(&e, &a, &format!("f{i}"), b"x").await;
    }
    put(&e, &b, "only", b"x").await;
    let removed = e
        .prune_events(&EventRetention {
            max_age_ms: None,
            max_per_session: Some(3),
        })
        .await
        .unwrap();
    assert!(removed >= 8, "{removed}");
    let left = e.activity(&a, &q()).await.unwrap().events;
    assert_eq!(left.len(), 3);
    assert_eq!(left.last().unwrap().path.as_deref(), Some("f9"));
    // Everything is older than "now minus nothing", yet each session keeps its newest.
    e.prune_events(&EventRetention {
        max_age_ms: Some(-1_000),
        max_per_session: None,
    })
    .await
    .unwrap();
    assert_eq!(e.activity(&a, &q()).await.unwrap().events.len(), 1);
    assert_eq!(e.activity(&b, &q()).await.unwrap().events.len(), 1);
}
