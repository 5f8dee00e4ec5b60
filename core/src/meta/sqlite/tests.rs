//! The SQLite store's migrations: a data directory written by an older version opens and reads
//! back as it was written.

use super::*;
use crate::meta::RevisionResidual;

fn attr(mode: u32) -> OverlayEntry {
    OverlayEntry::Attr {
        mode,
        mtime: 7,
        owner: None,
        link: None,
    }
}

#[tokio::test]
async fn version_3_moves_checkpoint_residuals_to_their_commits_and_keeps_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let id = SessionId::generate();
    let commit = ObjectId::from_bytes_or_panic(&[0xab; 20]);
    let residual = vec![
        (
            "".to_owned(),
            OverlayEntry::Dir {
                opaque: false,
                mode: 0o700,
                mtime: 1,
                owner: None,
            },
        ),
        (
            "a/empty".to_owned(),
            OverlayEntry::Dir {
                opaque: false,
                mode: 0o755,
                mtime: 2,
                owner: None,
            },
        ),
        ("f".to_owned(), attr(0o600)),
    ];
    // A data directory written by version 2, holding one checkpoint.
    {
        let mut conn = open_conn(&path).unwrap();
        conn.execute_batch("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .unwrap();
        let tx = conn.transaction().unwrap();
        for (version, sql) in &MIGRATIONS[..2] {
            tx.execute_batch(sql).unwrap();
            tx.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version])
                .unwrap();
        }
        tx.execute(
            "INSERT INTO checkpoints VALUES (?1, 1, ?2, ?2, 'one', 0, ?3)",
            params![
                id.as_str(),
                oid_text(&commit),
                serde_json::to_string(&residual).unwrap()
            ],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = SqliteMetaStore::open(&path).unwrap();
    let migrated = RevisionResidual {
        commit,
        residual: residual.clone(),
        base_mtime: None,
    };
    assert_eq!(store.revision_residual(&commit).await.unwrap(), Some(migrated.clone()));
    let cps = store.list_checkpoints(&id).await.unwrap();
    assert_eq!((cps.len(), cps[0].commit), (1, commit));

    // A second record of the same commit keeps the first: a revision never changes.
    let other = RevisionResidual {
        commit,
        residual: vec![("f".to_owned(), attr(0o644))],
        base_mtime: Some(3),
    };
    let m = Mutation {
        revision: Some(other),
        ..Default::default()
    };
    store.apply(&id, m).await.unwrap();
    assert_eq!(store.revision_residual(&commit).await.unwrap(), Some(migrated));
    let unknown = ObjectId::from_bytes_or_panic(&[0xcd; 20]);
    assert_eq!(store.revision_residual(&unknown).await.unwrap(), None);
}

#[tokio::test]
async fn version_4_keeps_older_events_without_an_origin_and_records_new_ones_with_theirs() {
    use crate::event::{EventKind, Surface};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let id = SessionId::generate();
    // A data directory written by version 3, holding one event.
    {
        let mut conn = open_conn(&path).unwrap();
        conn.execute_batch("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .unwrap();
        let tx = conn.transaction().unwrap();
        for (version, sql) in &MIGRATIONS[..3] {
            tx.execute_batch(sql).unwrap();
            tx.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version])
                .unwrap();
        }
        tx.execute(
            "INSERT INTO events (session_id, at, kind, path, detail) VALUES (?1, 5, 'write', 'f', '{}')",
            [id.as_str()],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = SqliteMetaStore::open(&path).unwrap();
    let mut event = NewEvent::new(EventKind::Chmod, Some("f"));
    event.origin = Origin {
        surface: Surface::Mount,
        principal: "admin".into(),
        mount: Some("m7".into()),
    };
    let m = Mutation {
        events: vec![event.clone()],
        ..Default::default()
    };
    store.apply(&id, m).await.unwrap();
    let events = store.events(&id, 0, 10).await.unwrap();
    let seen: Vec<_> = events.iter().map(|e| (e.kind, e.origin.clone())).collect();
    assert_eq!(seen, [(EventKind::Write, None), (EventKind::Chmod, Some(event.origin))]);
}
