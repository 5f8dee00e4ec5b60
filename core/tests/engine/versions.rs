//! A listing carries the version of the state it shows (`Listed::seq`): exactly the changes
//! whose events are numbered up to it, whatever is written meanwhile.

use std::collections::BTreeSet;

use aether_core::{BatchOp, Engine, EventKind, SessionId};

use crate::common::{config, empty_session, engine, put};

/// Paths of the files the session's events created up to `seq` (the test only creates).
async fn written_up_to(e: &Engine, id: &SessionId, seq: i64) -> BTreeSet<String> {
    let events = e.events(id, 0, 10_000).await.unwrap();
    assert!(events.len() < 10_000, "the test reads every event at once");
    events
        .into_iter()
        .filter(|ev| ev.seq <= seq && ev.kind == EventKind::Write)
        .filter_map(|ev| ev.path)
        .collect()
}

async fn listed(e: &Engine, id: &SessionId) -> (BTreeSet<String>, i64) {
    let l = e.list_dirs(id, "", 0, None).await.unwrap();
    let names = l.dirs[0].1.iter().map(|d| d.name.as_str().to_owned()).collect();
    (names, l.seq.expect("a live listing has a version"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listing_shows_exactly_the_changes_numbered_up_to_its_version() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let (names, first) = listed(&e, &id).await;
    assert!(names.is_empty());
    put(&e, &id, "one", b"1").await;
    let (names, seq) = listed(&e, &id).await;
    assert!(seq > first, "a change moves the version");
    assert_eq!(names, written_up_to(&e, &id, seq).await);

    // Writers (single writes and batches) race a lister: every listing holds the files whose
    // events are numbered up to its version, and no other.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (e, id) = (e.engine.clone(), id.clone());
            tokio::spawn(async move {
                for i in 0..40 {
                    if i % 4 == 0 {
                        let ops = (0..3)
                            .map(|k| BatchOp::Put {
                                path: format!("b{w}-{i}-{k}"),
                                data: vec![b'b'],
                                mode: None,
                                create_parents: false,
                                mtime: None,
                            })
                            .collect();
                        let out = e.apply_batch(&id, ops).await.unwrap();
                        assert!(out.failed.is_none());
                    } else {
                        put(&e, &id, &format!("w{w}-{i}"), b"w").await;
                    }
                }
            })
        })
        .collect();
    let mut listings = Vec::new();
    while !writers.iter().all(|w| w.is_finished()) {
        listings.push(listed(&e, &id).await);
    }
    for w in writers {
        w.await.unwrap();
    }
    listings.push(listed(&e, &id).await);
    assert!(listings.len() > 2, "the lister ran alongside the writers");
    let mut versions = BTreeSet::new();
    for (names, seq) in &listings {
        assert_eq!(names, &written_up_to(&e, &id, *seq).await, "listing at version {seq}");
        versions.insert(*seq);
    }
    assert!(versions.len() > 1, "listings saw different versions: {versions:?}");
    let (all, last) = listings.last().unwrap();
    assert_eq!(all.len(), 1 + 4 * (30 + 10 * 3));

    // A session loaded by a new engine starts at its newest event.
    let crate::common::TestEngine { engine, dir } = e;
    drop(engine);
    let again = Engine::open(config(dir.path())).await.unwrap();
    let (names, seq) = listed(&again, &id).await;
    assert_eq!((&names, seq), (all, *last));
}

#[tokio::test]
async fn a_listing_at_a_revision_has_no_version() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "f", b"x").await;
    let cp = e.checkpoint(&id, None).await.unwrap();
    let at = format!("checkpoints/{}", cp.checkpoint.number);
    assert_eq!(e.list_dirs(&id, "", 0, Some(&at)).await.unwrap().seq, None);
}
