//! Conformance of the metadata stores, one suite per trait of `aether_core::meta`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aether_core::meta::memory::MemoryMetaStore;
use aether_core::meta::sqlite::SqliteMetaStore;
use aether_core::meta::{
    CheckpointRecord, ListQuery, MetaStores, Mutation, NewEvent, RevisionResidual, SessionRecord, SessionState,
};
use aether_core::overlay::OverlayEntry;
use aether_core::{Access, ErrorKind, ObjectId, SessionId, TokenRecord};
use aether_core::{EventKind, Origin, Surface};

use super::{KeepAlive, META};

pub fn sqlite() -> (MetaStores, KeepAlive) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
    (MetaStores::from_backend(Arc::new(store)), Box::new(dir))
}

pub fn memory() -> (MetaStores, KeepAlive) {
    (
        MetaStores::from_backend(Arc::new(MemoryMetaStore::default())),
        Box::new(()),
    )
}

type Make = fn() -> (MetaStores, KeepAlive);

fn oid(n: u8) -> ObjectId {
    ObjectId::from_bytes_or_panic(&[n; 20])
}

fn record(labels: &[(&str, &str)]) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate(),
        state: SessionState::Active,
        base_tree: oid(1),
        head: None,
        branch: "main".into(),
        parent: None,
        base_mtime: 5,
        created_at: 10,
        updated_at: 10,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        tags: BTreeSet::from(["t".to_string()]),
        checkpoint_seq: 0,
        commits: 3,
        // Round-trips through every store, as every other field does.
        origin_tree: Some(oid(2)),
        quota: aether_core::quota::Quota {
            bytes: Some(1 << 40),
            files: None,
        },
        retention: aether_core::retention::CheckpointRetention {
            keep_last: None,
            keep_days: Some(7),
        },
    }
}

fn attr(mtime: i64) -> OverlayEntry {
    OverlayEntry::Attr {
        mode: 0o644,
        mtime,
        owner: None,
        link: None,
    }
}

async fn new_session(s: &MetaStores, labels: &[(&str, &str)]) -> SessionRecord {
    let rec = record(labels);
    s.sessions
        .insert_session(&rec, Vec::new(), NewEvent::new(EventKind::Created, None))
        .await
        .unwrap();
    rec
}

fn upsert(rows: &[&str]) -> Mutation {
    Mutation {
        upsert: rows.iter().map(|k| (k.to_string(), attr(1))).collect(),
        ..Default::default()
    }
}

async fn keys(s: &MetaStores, id: &SessionId) -> Vec<String> {
    s.overlays
        .load_overlay(id)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

pub async fn session_store_suite(name: &str, make: Make) {
    let (s, _keep) = make();
    let a = new_session(&s, &[("team", "a"), ("env", "ci")]).await;
    let b = new_session(&s, &[("team", "b")]).await;
    let mut c = new_session(&s, &[("team", "a")]).await;
    assert_eq!(
        s.sessions.get_session(&a.id).await.unwrap(),
        Some(a.clone()),
        "{name}: round trip"
    );
    assert_eq!(s.sessions.get_session(&SessionId::generate()).await.unwrap(), None);

    let dup = s
        .sessions
        .insert_session(&a, Vec::new(), NewEvent::new(EventKind::Created, None))
        .await
        .unwrap_err();
    assert_eq!(
        dup.kind(),
        ErrorKind::Conflict,
        "{name}: an id taken is a conflict: {dup}"
    );

    let all = |after: Option<SessionId>, limit| ListQuery {
        after,
        limit,
        ..Default::default()
    };
    let ids = |v: Vec<SessionRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.sessions.list_sessions(&all(None, 10)).await.unwrap()),
        [a.id.clone(), b.id.clone(), c.id.clone()],
        "{name}"
    );
    assert_eq!(
        ids(s.sessions.list_sessions(&all(Some(a.id.clone()), 1)).await.unwrap()),
        std::slice::from_ref(&b.id),
        "{name}: paging"
    );
    let team_a = ListQuery {
        labels: vec![("team".into(), "a".into())],
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(s.sessions.list_sessions(&team_a).await.unwrap()),
        [a.id.clone(), c.id.clone()],
        "{name}"
    );
    let both = ListQuery {
        labels: vec![("team".into(), "a".into()), ("env".into(), "ci".into())],
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(s.sessions.list_sessions(&both).await.unwrap()),
        std::slice::from_ref(&a.id),
        "{name}: every label"
    );

    // A record replaced, labels and tags included; then the state filter.
    c.state = SessionState::Archived;
    c.labels = BTreeMap::from([("k".into(), "v".into())]);
    c.tags = BTreeSet::new();
    c.head = Some(oid(2));
    s.sessions
        .apply(
            &c.id,
            Mutation {
                record: Some(c.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.sessions.get_session(&c.id).await.unwrap(), Some(c.clone()), "{name}");
    let archived = ListQuery {
        state: Some(SessionState::Archived),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(s.sessions.list_sessions(&archived).await.unwrap()),
        [c.id.clone()],
        "{name}"
    );

    // `touch` moves updated_at only.
    s.sessions
        .apply(
            &a.id,
            Mutation {
                touch: Some(99),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let touched = s.sessions.get_session(&a.id).await.unwrap().unwrap();
    assert_eq!(
        touched,
        SessionRecord {
            updated_at: 99,
            ..a.clone()
        },
        "{name}"
    );

    // All or nothing: a batch whose last change fails leaves no trace of the first.
    let ghost = SessionId::generate();
    let failing = vec![
        upsert(&["x"]),
        Mutation {
            touch: Some(1),
            ..Default::default()
        },
    ];
    let err = s.sessions.apply_all(&ghost, failing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{name}: {err}");
    assert!(
        keys(&s, &ghost).await.is_empty(),
        "{name}: nothing of a failed batch is stored"
    );
    let failing = vec![
        upsert(&["y"]),
        Mutation {
            record: Some(SessionRecord {
                id: ghost.clone(),
                ..a.clone()
            }),
            ..Default::default()
        },
    ];
    assert_eq!(
        s.sessions.apply_all(&ghost, failing).await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "{name}"
    );
    assert!(keys(&s, &ghost).await.is_empty(), "{name}");
    s.sessions
        .apply_all(&a.id, vec![upsert(&["p"]), upsert(&["q"])])
        .await
        .unwrap();
    assert_eq!(keys(&s, &a.id).await, ["p", "q"], "{name}");

    // Delete drops the session's rows; a second delete is not found.
    s.sessions
        .apply(
            &a.id,
            Mutation {
                checkpoint: Some(checkpoint(1)),
                revision: Some(RevisionResidual {
                    commit: oid(3),
                    residual: vec![("f".into(), attr(1))],
                    base_mtime: Some(7),
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.sessions.delete_session(&a.id).await.unwrap();
    assert_eq!(s.sessions.get_session(&a.id).await.unwrap(), None, "{name}");
    assert!(keys(&s, &a.id).await.is_empty(), "{name}: overlay gone");
    assert!(
        s.revisions.list_checkpoints(&a.id).await.unwrap().is_empty(),
        "{name}: checkpoints gone"
    );
    assert!(
        s.events.events(&a.id, 0, 100).await.unwrap().is_empty(),
        "{name}: events gone"
    );
    assert!(
        s.revisions.revision_residual(&oid(3)).await.unwrap().is_some(),
        "{name}: revisions stay"
    );
    let again = s.sessions.delete_session(&a.id).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::NotFound, "{name}");
    assert_eq!(again.to_string(), format!("session {} not found", a.id), "{name}");
}

fn checkpoint(number: u64) -> CheckpointRecord {
    CheckpointRecord {
        number,
        commit: oid(number as u8 + 10),
        tree: oid(1),
        message: format!("checkpoint {number}"),
        created_at: 7,
    }
}

pub async fn overlay_store_suite(name: &str, make: Make) {
    let (s, _keep) = make();
    let a = new_session(&s, &[]).await;
    let id = &a.id;
    let rows = ["a", "a/x", "a/y/z", "a.b", "a0", "ab", "b", "\u{e9}"];
    s.sessions.apply(id, upsert(&rows)).await.unwrap();
    let mut sorted = rows.to_vec();
    sorted.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(keys(&s, id).await, sorted, "{name}: bytewise order");

    let entry = OverlayEntry::Dir {
        opaque: true,
        mode: 0o700,
        mtime: 3,
        owner: None,
    };
    let m = Mutation {
        remove_below: vec!["a".into()],
        remove: vec!["b".into()],
        upsert: vec![("ab".into(), entry.clone())],
        ..Default::default()
    };
    s.sessions.apply(id, m).await.unwrap();
    assert_eq!(
        keys(&s, id).await,
        ["a", "a.b", "a0", "ab", "\u{e9}"],
        "{name}: below a, not beside it"
    );
    let loaded = s.overlays.load_overlay(id).await.unwrap();
    assert_eq!(
        loaded.iter().find(|(k, _)| k == "ab").unwrap().1,
        entry,
        "{name}: upsert replaces"
    );

    let root = (
        String::new(),
        OverlayEntry::Dir {
            opaque: false,
            mode: 0o755,
            mtime: 1,
            owner: None,
        },
    );
    s.sessions
        .apply(
            id,
            Mutation {
                remove_below: vec![String::new()],
                upsert: vec![root.clone(), ("n".into(), attr(2))],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&s, id).await,
        ["", "n"],
        "{name}: below the root is everything but the root"
    );
    s.sessions
        .apply(
            id,
            Mutation {
                clear_overlay: true,
                upsert: vec![("after".into(), attr(2))],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(keys(&s, id).await, ["after"], "{name}: cleared, then upserted");

    // The POSIX details: owners (each half optional), special files, hard-link groups; in
    // the overlay and in a revision's residual.
    let owner = |uid, gid| Some(aether_core::Owner { uid, gid });
    let posix = vec![
        (
            "dev".to_string(),
            OverlayEntry::Special {
                kind: aether_core::SpecialKind::CharDevice,
                rdev: u64::MAX,
                mode: 0o620,
                mtime: 5,
                owner: owner(Some(0), Some(5)),
                link: Some(3),
            },
        ),
        (
            "f".to_string(),
            OverlayEntry::File {
                oid: oid(7),
                size: 2,
                mode: 0o644,
                mtime: 6,
                owner: owner(Some(u32::MAX), None),
                link: Some(u64::MAX),
            },
        ),
        (
            "g".to_string(),
            OverlayEntry::Attr {
                mode: 0o600,
                mtime: 7,
                owner: owner(None, Some(9)),
                link: Some(3),
            },
        ),
        (
            "l".to_string(),
            OverlayEntry::Symlink {
                target: "f".into(),
                mtime: 8,
                owner: owner(Some(1), Some(2)),
                link: Some(4),
            },
        ),
        (
            "p".to_string(),
            OverlayEntry::Special {
                kind: aether_core::SpecialKind::Fifo,
                rdev: 0,
                mode: 0o644,
                mtime: 9,
                owner: None,
                link: None,
            },
        ),
        (
            "t".to_string(),
            OverlayEntry::Graft {
                tree: oid(8),
                mode: 0o755,
                mtime: 10,
                owner: owner(Some(3), None),
            },
        ),
    ];
    let c = new_session(&s, &[]).await;
    s.sessions
        .apply(
            &c.id,
            Mutation {
                upsert: posix.clone(),
                revision: Some(RevisionResidual {
                    commit: oid(42),
                    residual: posix.clone(),
                    base_mtime: Some(1_234_567_891),
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        s.overlays.load_overlay(&c.id).await.unwrap(),
        posix,
        "{name}: POSIX details"
    );
    assert_eq!(
        s.revisions.revision_residual(&oid(42)).await.unwrap(),
        Some(RevisionResidual {
            commit: oid(42),
            residual: posix,
            base_mtime: Some(1_234_567_891),
        }),
        "{name}: POSIX details in a residual"
    );

    // What an older version may have stored (the raw stores take it; the engine's checks don't).
    let b = new_session(&s, &[]).await;
    let damaged = ["", "..", "a//b", "x/", "/y", "c/./d", "z\0"];
    let mut all: Vec<&str> = damaged.to_vec();
    all.extend(["fine", "fine/too", "...", ".hidden"]);
    s.sessions.apply(&b.id, upsert(&all)).await.unwrap();
    let suspect: BTreeSet<String> = s
        .overlays
        .suspect_overlay_rows()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.session == b.id)
        .inspect(|r| assert_eq!(r.entry, Some(attr(1)), "{name}"))
        .map(|r| r.path)
        .collect();
    for d in damaged {
        assert!(suspect.contains(d), "{name}: {d:?} must be found: {suspect:?}");
    }
    for sound in ["fine", "fine/too", "...", ".hidden"] {
        assert!(!suspect.contains(sound), "{name}: {sound:?} is sound");
    }
}

pub async fn revision_store_suite(name: &str, make: Make) {
    let (s, _keep) = make();
    let a = new_session(&s, &[]).await;
    for n in [2, 1] {
        s.sessions
            .apply(
                &a.id,
                Mutation {
                    checkpoint: Some(checkpoint(n)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let again = CheckpointRecord {
        message: "again".into(),
        ..checkpoint(2)
    };
    s.sessions
        .apply(
            &a.id,
            Mutation {
                checkpoint: Some(again.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        s.revisions.list_checkpoints(&a.id).await.unwrap(),
        [checkpoint(1), again],
        "{name}"
    );
    assert!(
        s.revisions
            .list_checkpoints(&SessionId::generate())
            .await
            .unwrap()
            .is_empty()
    );

    let first = vec![("f".to_string(), attr(1)), ("d".to_string(), OverlayEntry::Deleted)];
    for (residual, base_mtime) in [(first.clone(), None), (vec![("g".to_string(), attr(9))], Some(5))] {
        s.sessions
            .apply(
                &a.id,
                Mutation {
                    revision: Some(RevisionResidual {
                        commit: oid(4),
                        residual,
                        base_mtime,
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    assert_eq!(
        s.revisions.revision_residual(&oid(4)).await.unwrap(),
        Some(RevisionResidual {
            commit: oid(4),
            residual: first,
            base_mtime: None,
        }),
        "{name}: the first record stays"
    );
    assert_eq!(s.revisions.revision_residual(&oid(5)).await.unwrap(), None, "{name}");
}

pub async fn event_store_suite(name: &str, make: Make) {
    let (s, _keep) = make();
    let a = new_session(&s, &[]).await;
    let b = new_session(&s, &[]).await;
    let pending = SessionId::generate();
    assert_eq!(s.events.last_event_seq(&pending).await.unwrap(), 0, "{name}");
    let from_mount = Origin {
        surface: Surface::Mount,
        principal: "token:t1".into(),
        mount: Some("m-1".into()),
    };
    for (id, kind, origin) in [
        (&a.id, EventKind::Write, from_mount.clone()),
        (&b.id, EventKind::Write, Origin::server()),
        (&pending, EventKind::ImportProgress, Origin::server()),
        (&a.id, EventKind::Delete, Origin::server()),
    ] {
        let mut event = NewEvent::new(kind, Some("p")).with(serde_json::json!({"n": 1}));
        event.origin = origin;
        let m = Mutation {
            events: vec![event],
            ..Default::default()
        };
        s.sessions.apply(id, m).await.unwrap();
    }
    let ev = s.events.events(&a.id, 0, 100).await.unwrap();
    let kinds: Vec<_> = ev.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "write", "delete"], "{name}");
    assert!(ev.windows(2).all(|w| w[0].seq < w[1].seq), "{name}: increasing");
    assert_eq!(
        (ev[1].path.as_deref(), &ev[1].detail),
        (Some("p"), &serde_json::json!({"n": 1})),
        "{name}"
    );
    assert!(ev.iter().all(|e| e.session == a.id));
    assert_eq!(
        ev[1].origin.as_ref(),
        Some(&from_mount),
        "{name}: the origin comes back"
    );
    assert_eq!(ev[2].origin.as_ref(), Some(&Origin::server()), "{name}");
    assert_eq!(s.events.last_event_seq(&a.id).await.unwrap(), ev[2].seq, "{name}");
    let after = s.events.events(&a.id, ev[0].seq, 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, ev[1].seq, "{name}: after a cursor, limited");
    assert_eq!(
        s.events.events(&pending, 0, 10).await.unwrap().len(),
        1,
        "{name}: events before a session exists"
    );
    s.events.delete_events(&pending).await.unwrap();
    assert!(s.events.events(&pending, 0, 10).await.unwrap().is_empty(), "{name}");
    assert_eq!(
        s.events.events(&b.id, 0, 10).await.unwrap().len(),
        2,
        "{name}: others untouched"
    );
}

pub async fn token_store_suite(name: &str, make: Make) {
    let (s, _keep) = make();
    let token = |id: &str, hash: &str, at| TokenRecord {
        id: id.into(),
        sessions: BTreeSet::from([SessionId::generate()]),
        access: Access::Write,
        description: format!("token {id}"),
        created_at: at,
        hash: hash.into(),
    };
    let (t2, t1) = (token("tok_b", "h2", 5), token("tok_a", "h1", 9));
    s.tokens.insert_token(&t1).await.unwrap();
    s.tokens.insert_token(&t2).await.unwrap();
    assert_eq!(
        s.tokens.list_tokens().await.unwrap(),
        [t2.clone(), t1.clone()],
        "{name}: oldest first"
    );
    assert_eq!(s.tokens.find_token("h1").await.unwrap(), Some(t1.clone()), "{name}");
    assert_eq!(s.tokens.find_token("nope").await.unwrap(), None);
    for dup in [token("tok_a", "h3", 1), token("tok_c", "h2", 1)] {
        let err = s.tokens.insert_token(&dup).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{name}: {err}");
    }
    s.tokens.delete_token("tok_a").await.unwrap();
    assert_eq!(s.tokens.list_tokens().await.unwrap(), [t2], "{name}");
    let err = s.tokens.delete_token("tok_a").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{name}");
    assert_eq!(err.to_string(), "token 'tok_a' not found", "{name}");
}

#[tokio::test]
async fn session_stores_conform() {
    for (name, make) in META {
        session_store_suite(name, *make).await;
    }
}

#[tokio::test]
async fn overlay_stores_conform() {
    for (name, make) in META {
        overlay_store_suite(name, *make).await;
    }
}

#[tokio::test]
async fn revision_stores_conform() {
    for (name, make) in META {
        revision_store_suite(name, *make).await;
    }
}

#[tokio::test]
async fn event_stores_conform() {
    for (name, make) in META {
        event_store_suite(name, *make).await;
    }
}

#[tokio::test]
async fn token_stores_conform() {
    for (name, make) in META {
        token_store_suite(name, *make).await;
    }
}

/// The shared residual trees: nodes stored once, a session's root, unset paths, revisions by
/// root (first record kept, in either form), sharing at insert, and the collection of nodes no
/// root reaches.
pub async fn residual_store_suite(name: &str, make: Make) {
    use aether_core::meta::RevisionRoot;
    use aether_core::residual::Residual;

    let (s, _keep) = make();
    let a = new_session(&s, &[]).await;
    let (big, nodes) = Residual::build((0..500).map(|i| (format!("d/f{i}"), attr(i))));
    assert!(nodes.len() > 3, "{name}: several nodes");
    let freeze = Mutation {
        nodes: nodes.clone(),
        residual: Some(big.clone()),
        ..Default::default()
    };
    s.sessions.apply(&a.id, upsert(&["pending"])).await.unwrap();
    s.sessions.apply(&a.id, freeze).await.unwrap();
    let stored = s.residuals.session_residual(&a.id).await.unwrap();
    assert_eq!(stored.root, big.root(), "{name}");
    assert!(keys(&s, &a.id).await.is_empty(), "{name}: a freeze drops the rows");
    let (count, bytes) = s.residuals.residual_usage().await.unwrap();
    assert_eq!(count, nodes.len() as u64, "{name}");
    assert_eq!(bytes, nodes.iter().map(|n| n.data.len() as u64).sum::<u64>(), "{name}");

    // The nodes load back into the same residual.
    let r2 = s.residuals.clone();
    let loaded = Residual::load(big.root(), |ids| {
        let r2 = r2.clone();
        async move { r2.residual_nodes(ids).await }
    })
    .await
    .unwrap();
    assert_eq!(loaded.root(), big.root(), "{name}");
    assert_eq!(loaded.len(), 500, "{name}");

    // Unset paths and rows over the frozen residual; storing a node twice keeps one.
    let m = Mutation {
        nodes: nodes[..1].to_vec(),
        upsert: vec![("d/f1".into(), attr(-1))],
        unset: vec!["d/f2".into(), "d/f2".into()],
        ..Default::default()
    };
    s.sessions.apply(&a.id, m).await.unwrap();
    assert_eq!(
        s.residuals.residual_usage().await.unwrap().0,
        nodes.len() as u64,
        "{name}"
    );
    let stored = s.residuals.session_residual(&a.id).await.unwrap();
    assert_eq!(stored.unset, ["d/f2"], "{name}");
    assert_eq!(keys(&s, &a.id).await, ["d/f1"], "{name}");

    // A fork shares the root; a root not stored is refused and stores nothing.
    let child = record(&[]);
    s.sessions
        .insert_session_sharing(&child, big.root(), Vec::new(), NewEvent::new(EventKind::Created, None))
        .await
        .unwrap();
    assert_eq!(
        s.residuals.session_residual(&child.id).await.unwrap().root,
        big.root(),
        "{name}"
    );
    let (other, _) = Residual::build([("x".to_owned(), attr(1))]);
    let ghost = record(&[]);
    let err = s
        .sessions
        .insert_session_sharing(
            &ghost,
            other.root(),
            Vec::new(),
            NewEvent::new(EventKind::Created, None),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{name}: {err}");
    assert_eq!(s.sessions.get_session(&ghost.id).await.unwrap(), None, "{name}");

    // A revision by root; the first record of a commit is kept, in either form.
    let (small, small_nodes) = Residual::build([("only".to_owned(), attr(3))]);
    let m = Mutation {
        nodes: small_nodes,
        revision_root: Some(RevisionRoot {
            commit: oid(9),
            root: small.root(),
            base_mtime: 4,
        }),
        revision: Some(RevisionResidual {
            commit: oid(8),
            residual: vec![("listed".into(), attr(1))],
            base_mtime: Some(2),
        }),
        ..Default::default()
    };
    s.sessions.apply(&a.id, m).await.unwrap();
    let again = Mutation {
        revision_root: Some(RevisionRoot {
            commit: oid(8),
            root: big.root(),
            base_mtime: 0,
        }),
        revision: Some(RevisionResidual {
            commit: oid(9),
            residual: Vec::new(),
            base_mtime: None,
        }),
        ..Default::default()
    };
    s.sessions.apply(&a.id, again).await.unwrap();
    let by_root = s.revisions.revision_root(&oid(9)).await.unwrap().unwrap();
    assert_eq!((by_root.root, by_root.base_mtime), (small.root(), 4), "{name}");
    assert_eq!(
        s.revisions.revision_root(&oid(8)).await.unwrap(),
        None,
        "{name}: listed"
    );
    let listed = s.revisions.revision_residual(&oid(8)).await.unwrap().unwrap();
    assert_eq!(listed.residual, vec![("listed".to_owned(), attr(1))], "{name}");

    // Collection: roots of sessions and revisions keep their nodes; the rest goes.
    let mut roots = s.residuals.residual_roots().await.unwrap();
    roots.sort();
    let mut want = vec![big.root().unwrap(), small.root().unwrap()];
    want.sort();
    assert_eq!(roots, want, "{name}");
    let (stray, stray_nodes) = Residual::build((0..50).map(|i| (format!("stray{i}"), attr(i))));
    s.sessions
        .apply(
            &a.id,
            Mutation {
                nodes: stray_nodes.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let dry = s.residuals.collect_residual_nodes(true).await.unwrap();
    assert_eq!(dry.unreachable_nodes, stray_nodes.len() as u64, "{name}: {dry:?}");
    assert_eq!(dry.deleted_nodes, 0, "{name}");
    let before = s.residuals.residual_usage().await.unwrap().0;
    let done = s.residuals.collect_residual_nodes(false).await.unwrap();
    assert_eq!(done.deleted_nodes, stray_nodes.len() as u64, "{name}");
    assert_eq!(
        s.residuals.residual_usage().await.unwrap().0,
        before - done.deleted_nodes,
        "{name}"
    );
    assert!(
        s.residuals
            .residual_nodes(vec![stray.root().unwrap()])
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
    assert_eq!(
        s.residuals.reachable_residual_nodes().await.unwrap().len() as u64,
        done.reachable_nodes,
        "{name}"
    );
    // Deleting both sessions leaves only the revisions' roots.
    s.sessions.delete_session(&a.id).await.unwrap();
    s.sessions.delete_session(&child.id).await.unwrap();
    assert_eq!(
        s.residuals.residual_roots().await.unwrap(),
        [small.root().unwrap()],
        "{name}"
    );
    let last = s.residuals.collect_residual_nodes(false).await.unwrap();
    assert_eq!(last.reachable_nodes, 1, "{name}: {last:?}");
    assert_eq!(s.residuals.residual_usage().await.unwrap().0, 1, "{name}");
}

#[tokio::test]
async fn residual_stores_conform() {
    for (name, make) in META {
        residual_store_suite(name, *make).await;
    }
}
