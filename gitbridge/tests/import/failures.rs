//! Failed imports: a clear typed error, and nothing left behind (no session, no refs, no
//! events, no scratch directory).

use std::time::Duration;

use aether_core::{ListFilter, Page};
use aether_gitbridge::import::{ImportConfig, ImportError};

use crate::fixture::*;

async fn assert_nothing_left(t: &TestEngine) {
    let sessions = t
        .engine
        .list_sessions(&ListFilter::default(), &Page::default())
        .await
        .unwrap();
    assert!(sessions.is_empty(), "{sessions:?}");
    let refs = t.engine.objects().odb.list_refs("refs/aether/").unwrap();
    assert!(refs.is_empty(), "{refs:?}");
    let tmp = t.data().join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "scratch left in {tmp:?}"
    );
}

#[tokio::test]
async fn bad_urls_and_refs_are_refused_before_fetching() {
    let t = engine().await;
    for url in [
        "ssh://example.com/repo.git",
        "relative/repo",
        "ext::sh -c true",
        "git://example.com/r",
    ] {
        let err = t.import(url, None).await.unwrap_err();
        assert!(matches!(err, ImportError::InvalidSource(_)), "{url}: {err}");
    }
    let err = t.import("/srv/repo.git", Some("HEAD~1")).await.unwrap_err();
    assert!(matches!(err, ImportError::InvalidSource(_)), "{err}");
    assert_nothing_left(&t).await;
}

#[tokio::test]
async fn missing_repository_unknown_ref_and_unreachable_server() {
    let scratch = tempfile::tempdir().unwrap();
    let src = history_repo(scratch.path(), "src", false);
    let t = engine().await;

    let missing = scratch.path().join("nope");
    let err = t.import(missing.to_str().unwrap(), None).await.unwrap_err();
    assert!(matches!(err, ImportError::SourceNotFound { .. }), "{err}");

    let err = t
        .import(src.to_str().unwrap(), Some("no-such-branch"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImportError::UnknownRef { rev, .. } if rev == "no-such-branch"),
        "{err}"
    );
    let err = t
        .import(src.to_str().unwrap(), Some("0123456789012345678901234567890123456789"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImportError::UnknownRef { .. }), "{err}");

    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = t
        .import(&format!("http://127.0.0.1:{port}/repo.git"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ImportError::SourceUnreachable { .. }), "{err}");

    // A repository without commits.
    let empty = scratch.path().join("empty.git");
    git(scratch.path(), &["init", "-q", "--bare", empty.to_str().unwrap()]);
    let err = t.import(empty.to_str().unwrap(), None).await.unwrap_err();
    assert!(matches!(err, ImportError::NothingToImport(_)), "{err}");

    assert_nothing_left(&t).await;
}

#[tokio::test]
async fn a_hung_fetch_times_out_and_an_oversized_one_is_stopped() {
    let scratch = tempfile::tempdir().unwrap();
    let src = history_repo(scratch.path(), "src", false);
    let t = engine().await;

    let (url, _hole) = aether_test_support::git_http::black_hole();
    let cfg = ImportConfig {
        fetch_timeout: Duration::from_secs(2),
        ..ImportConfig::default()
    };
    let started = std::time::Instant::now();
    let err = t.import_with(&format!("{url}/repo.git"), None, &cfg).await.unwrap_err();
    assert!(matches!(err, ImportError::TimedOut { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );

    // The fixture's pack is about 2.7 MB.
    let cfg = ImportConfig {
        max_bytes: 100_000,
        ..ImportConfig::default()
    };
    let err = t.import_with(src.to_str().unwrap(), None, &cfg).await.unwrap_err();
    assert!(matches!(err, ImportError::TooLarge { limit: 100_000, .. }), "{err}");
    assert_nothing_left(&t).await;
}

#[tokio::test]
async fn progress_is_readable_while_pending_and_gone_after_abort() {
    let t = engine().await;
    let pending = t.engine.begin_import();
    let id = pending.id().clone();
    pending
        .progress(serde_json::json!({"phase": "receiving objects", "percent": 50}))
        .await
        .unwrap();
    let events = t.engine.events(&id, 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind.as_str(), "import_progress");
    assert_eq!(events[0].detail["percent"], 50);
    // Not a session yet.
    assert!(t.engine.get_session(&id).await.is_err());
    pending.abort().await.unwrap();
    // After the abort the id is unknown again, and its events are gone from the store.
    assert!(t.engine.events(&id, 0, 10).await.is_err());
    let pending = t.engine.begin_import();
    assert_ne!(pending.id(), &id);
    drop(pending);
    assert_nothing_left(&t).await;
}

#[tokio::test]
async fn a_watcher_wakes_for_import_progress() {
    let t = engine().await;
    let pending = t.engine.begin_import();
    let id = pending.id().clone();
    // Subscribed before the event, read after the signal: what WatchEvents does.
    let mut watch = t.engine.watch(&id);
    let engine = t.engine.clone();
    let watcher = tokio::spawn(async move {
        assert!(watch.changed().await, "the engine went away");
        engine.events(&id, 0, 10).await.unwrap()
    });
    tokio::task::yield_now().await;
    pending
        .progress(serde_json::json!({"phase": "receiving objects", "percent": 10}))
        .await
        .unwrap();
    let events = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the watcher was not woken by the progress event")
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind.as_str(), "import_progress");
    assert_eq!(events[0].detail["percent"], 10);
    pending.abort().await.unwrap();
}
