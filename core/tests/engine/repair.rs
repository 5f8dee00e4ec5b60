//! Repair of what older versions stored: damaged overlay rows and checkpoint residuals written
//! straight into `meta.db` while no engine ran (or behind a running engine's back) are
//! repaired when the engine opens (or loads the session), and the repair is persisted.

use aether_core::overlay::OverlayEntry;
use aether_core::{Engine, EngineConfig, SessionId};
use rusqlite::{Connection, params};

use crate::common::*;

fn meta_db(data: &std::path::Path) -> Connection {
    Connection::open(data.join("meta.db")).unwrap()
}

fn file_entry(e: &Engine) -> String {
    let oid = e.objects().odb.write_blob(b"ghost").unwrap();
    serde_json::to_string(&OverlayEntry::File {
        oid,
        size: 5,
        mode: 0o644,
        mtime: 0,
        owner: None,
        link: None,
    })
    .unwrap()
}

fn dir_entry(opaque: bool, mode: u32) -> String {
    serde_json::to_string(&OverlayEntry::Dir {
        opaque,
        mode,
        mtime: 7,
        owner: None,
    })
    .unwrap()
}

fn insert_row(db: &Connection, id: &SessionId, path: &str, entry: &str) {
    db.execute(
        "INSERT OR REPLACE INTO overlay_entries (session_id, path, entry) VALUES (?1, ?2, ?3)",
        params![id.as_str(), path, entry],
    )
    .unwrap();
}

/// The keys stored for `id`, in order.
fn stored_keys(db: &Connection, id: &SessionId) -> Vec<String> {
    let mut stmt = db
        .prepare("SELECT path FROM overlay_entries WHERE session_id = ?1 ORDER BY path")
        .unwrap();
    stmt.query_map([id.as_str()], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn stored_entry(db: &Connection, id: &SessionId, path: &str) -> Option<OverlayEntry> {
    db.query_row(
        "SELECT entry FROM overlay_entries WHERE session_id = ?1 AND path = ?2",
        params![id.as_str(), path],
        |r| r.get::<_, String>(0),
    )
    .ok()
    .map(|j| serde_json::from_str(&j).unwrap())
}

fn bounded(data: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(data);
    c.limits.max_walk_entries = 10_000;
    c
}

async fn paths(e: &Engine, id: &SessionId) -> Vec<String> {
    e.list(id, "", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect()
}

const DAMAGED: [&str; 8] = ["a//b", "./x", "x/.", "x/..", "..", "/lead", "trail/", "nul\0"];

#[tokio::test]
async fn damaged_rows_are_repaired_when_the_engine_opens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (keys, file_root, opaque_root, checkpointed) = {
        let e = Engine::open(bounded(&data)).await.unwrap();
        let keys = e
            .create_session(aether_core::SessionSource::Empty, Default::default())
            .await
            .unwrap()
            .id;
        put(&e, &keys, "a/b", b"real").await;
        let file_root = empty_session(&e).await;
        put(&e, &file_root, "kept", b"1").await;
        let opaque_root = empty_session(&e).await;
        put(&e, &opaque_root, "kept", b"1").await;
        let checkpointed = empty_session(&e).await;
        put(&e, &checkpointed, "f", b"1").await;
        e.checkpoint(&checkpointed, None).await.unwrap();
        let entry = file_entry(&e);
        drop(e);

        // What an older version (or a hand) left in the store while nothing ran.
        let db = meta_db(&data);
        for key in DAMAGED {
            insert_row(&db, &keys, key, &entry);
        }
        insert_row(&db, &file_root, "", &entry);
        insert_row(&db, &opaque_root, "", &dir_entry(true, 0o711));
        let commit: String = db
            .query_row(
                "SELECT commit_id FROM checkpoints WHERE session_id = ?1",
                [checkpointed.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        let residual: String = db
            .query_row(
                "SELECT residual FROM revision_residuals WHERE commit_id = ?1",
                [commit.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        let mut residual: Vec<(String, OverlayEntry)> = serde_json::from_str(&residual).unwrap();
        residual.push(("x/../y".into(), serde_json::from_str(&entry).unwrap()));
        residual.push((String::new(), serde_json::from_str(&entry).unwrap()));
        db.execute(
            "UPDATE revision_residuals SET residual = ?2 WHERE commit_id = ?1",
            params![commit.as_str(), serde_json::to_string(&residual).unwrap()],
        )
        .unwrap();
        (keys, file_root, opaque_root, checkpointed)
    };

    let e = Engine::open(bounded(&data)).await.unwrap();
    // Repaired at open, before anything touched these sessions.
    let db = meta_db(&data);
    assert_eq!(
        stored_keys(&db, &keys),
        ["a", "a/b"],
        "damaged keys are gone from the store"
    );
    assert_eq!(
        stored_keys(&db, &file_root),
        ["kept"],
        "a file stored as the root is gone"
    );
    assert_eq!(
        stored_entry(&db, &opaque_root, ""),
        Some(OverlayEntry::Dir {
            opaque: false,
            mode: 0o711,
            mtime: 7,
            owner: None,
        }),
        "a directory stored as the root keeps only the root's attributes"
    );
    for id in [&keys, &file_root, &opaque_root] {
        let repairs: Vec<_> = e
            .events(id, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|ev| ev.kind.as_str() == "repair")
            .collect();
        assert_eq!(repairs.len(), 1, "one repair event for {id}");
    }

    assert_eq!(paths(&e, &keys).await, ["a", "a/b"]);
    assert_eq!(paths(&e, &file_root).await, ["kept"]);
    assert_eq!(paths(&e, &opaque_root).await, ["kept"]);
    assert_eq!(e.stat(&opaque_root, "", None).await.unwrap().mode, 0o711);
    assert_eq!(get(&e, &keys, "a/b").await, b"real");

    // A revision's residual (a record written once) is repaired as it is read, before a restore
    // stores it as the overlay or a read at the revision uses it.
    assert_eq!(
        e.list(&checkpointed, "", true, Some("checkpoints/1"))
            .await
            .unwrap()
            .iter()
            .map(|d| d.stat.path.clone())
            .collect::<Vec<_>>(),
        ["f"]
    );
    e.restore(&checkpointed, "checkpoints/1").await.unwrap();
    assert_eq!(paths(&e, &checkpointed).await, ["f"]);
    assert!(stored_keys(&db, &checkpointed).iter().all(|k| k == "f"));

    // Writes keep working, and a new engine finds nothing more to repair.
    put(&e, &keys, "a/c", b"2").await;
    drop(e);
    let e = Engine::open(bounded(&data)).await.unwrap();
    let again = e.events(&keys, 0, 1000).await.unwrap();
    assert_eq!(again.iter().filter(|ev| ev.kind.as_str() == "repair").count(), 1);
    assert_eq!(paths(&e, &keys).await, ["a", "a/b", "a/c"]);
}

#[tokio::test]
async fn rows_damaged_behind_a_running_engine_are_repaired_when_the_session_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = {
        let e = Engine::open(bounded(&data)).await.unwrap();
        let id = empty_session(&e).await;
        put(&e, &id, "a/b", b"real").await;
        id
    };
    // The engine opens (nothing to repair), then the rows are damaged before the session loads.
    let e = Engine::open(bounded(&data)).await.unwrap();
    let db = meta_db(&data);
    let entry = file_entry(&e);
    for key in DAMAGED {
        insert_row(&db, &id, key, &entry);
    }
    insert_row(&db, &id, "", &entry);
    let listed: Vec<_> = e
        .list(&id, "", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect();
    assert_eq!(listed, ["a", "a/b"]);
    assert_eq!(stored_keys(&db, &id), ["a", "a/b"], "the repair is persisted");
}
