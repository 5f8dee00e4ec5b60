//! Analytics and health without a transport: exact operation and byte counts of known traffic,
//! the last error of a session, and the memory bound when many distinct paths are touched.

use aether_core::Surface;
use aether_service::{AnalyticsRequest, Code, Principal, ReadFile, WriteFile};

use crate::{fixture, fixture_with};

fn of(session: &str) -> AnalyticsRequest {
    AnalyticsRequest {
        session: Some(session.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn known_writes_and_reads_give_exact_counts() {
    let f = fixture().await;
    let s = &f.service;
    let p = Principal::admin(Surface::Grpc);
    let id = f.new_session().await;
    let other = f.new_session().await;
    for (path, data) in [("a", &b"12345"[..]), ("b", &b"1234567890"[..]), ("a", &b"123"[..])] {
        let w = WriteFile {
            session: id.clone(),
            path: path.into(),
            ..Default::default()
        };
        s.write_file(&p, w, data).await.unwrap();
    }
    let read = ReadFile {
        session: id.clone(),
        path: "b".into(),
        ..Default::default()
    };
    let file = s.open_file(&p, read).await.unwrap();
    assert_eq!(file.read(2, 100).await.unwrap().len(), 8);
    let e = s.stat(&p, &id, "missing", None).await.unwrap_err();
    assert_eq!(e.code, Code::NotFound);

    let r = s.analytics(&p, of(&id)).await.unwrap();
    assert_eq!(r.totals.operations, 5, "{r:?}");
    assert_eq!(r.totals.errors, 1);
    assert_eq!(r.totals.bytes_written, 18);
    assert_eq!(r.totals.bytes_read, 8);
    assert_eq!(r.top_paths[0].path, "a");
    assert_eq!(r.top_paths[0].operations, 2);
    let quiet = s.analytics(&p, of(&other)).await.unwrap();
    assert_eq!(quiet.totals.operations, 0, "{quiet:?}");
    assert!(quiet.buckets.is_empty());

    let h = s.session_health(&p, &id).await.unwrap();
    let last = h.last_error.expect("the failed stat");
    assert_eq!((last.operation, last.code), ("stat", Code::NotFound));
    assert!(h.quota.is_none());
    assert!(h.mounts.is_empty());

    // Bad queries change nothing and say why.
    let bad = |r: AnalyticsRequest| async { s.analytics(&p, r).await.unwrap_err().code };
    let week = AnalyticsRequest {
        bucket: Some("week".into()),
        ..Default::default()
    };
    assert_eq!(bad(week).await, Code::InvalidArgument);
    let zero = AnalyticsRequest {
        top: Some(0),
        ..Default::default()
    };
    assert_eq!(bad(zero).await, Code::InvalidArgument);
}

#[tokio::test]
async fn ten_thousand_distinct_paths_keep_the_tracked_set_at_its_cap() {
    let f = fixture_with(|c| c.analytics.max_paths = 64).await;
    let s = &f.service;
    let p = Principal::admin(Surface::Rest);
    let id = f.new_session().await;
    let w = WriteFile {
        session: id.clone(),
        path: "hot".into(),
        ..Default::default()
    };
    s.write_file(&p, w, &b"x"[..]).await.unwrap();
    for i in 0..10_000 {
        let _ = s.stat(&p, &id, &format!("cold/{i}"), None).await;
        if i % 20 == 0 {
            s.stat(&p, &id, "hot", None).await.unwrap();
        }
    }
    let r = s
        .analytics(
            &p,
            AnalyticsRequest {
                top: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.max_paths, 64);
    assert_eq!(r.tracked_paths, 64, "the tracked set stays at its cap");
    assert!(r.top_paths.len() <= 64 * r.buckets.len(), "{}", r.top_paths.len());
    assert_eq!(r.top_paths[0].path, "hot", "the hot path survives the churn");
    assert_eq!(r.totals.operations, 1 + 10_000 + 500);
    assert_eq!(r.totals.errors, 10_000);
}
