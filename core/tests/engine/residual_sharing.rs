//! Residual state is shared, not copied (issue 25, item 1): what a fork or a checkpoint stores
//! follows what changed since the last freeze, not how many files the session wrote. Every
//! file written through the API keeps its own mtime, so each one stays in the residual; the
//! old design copied every such row on each fork and stored the whole list with each
//! checkpoint. Counted in stored rows and node bytes, never in time.

use aether_core::{BatchOp, CreateOptions, Engine, SessionId, SessionSource};

use crate::common::{empty_session, engine};

/// Write `n` files through the API, in directories of 100.
async fn write_files(e: &Engine, id: &SessionId, n: usize) {
    let ops: Vec<BatchOp> = (0..n)
        .map(|i| BatchOp::Put {
            path: format!("d{}/f{i}.txt", i / 100),
            data: format!("file {i}\n").into_bytes(),
            mode: None,
            create_parents: true,
            mtime: Some(1_000_000_000 + i as i64),
        })
        .collect();
    for chunk in ops.chunks(2000) {
        let out = e.apply_batch(id, chunk.to_vec()).await.unwrap();
        assert!(out.failed.is_none());
    }
}

/// Change 10 files spread over the session (round `r` picks different ones).
async fn change_ten(e: &Engine, id: &SessionId, n: usize, r: usize) {
    let ops: Vec<BatchOp> = (0..10)
        .map(|k| {
            let i = (r * 7919 + k * (n / 10)) % n;
            BatchOp::Put {
                path: format!("d{}/f{i}.txt", i / 100),
                data: format!("changed {r} {k}\n").into_bytes(),
                mode: None,
                create_parents: true,
                mtime: Some(2_000_000_000 + (r * 10 + k) as i64),
            }
        })
        .collect();
    assert!(e.apply_batch(id, ops).await.unwrap().failed.is_none());
}

/// Node bytes stored so far.
async fn node_bytes(e: &Engine) -> u64 {
    e.metadata().residuals.residual_usage().await.unwrap().1
}

/// Overlay rows stored for `id`.
async fn rows(e: &Engine, id: &SessionId) -> usize {
    e.metadata().overlays.load_overlay(id).await.unwrap().len()
}

struct Costs {
    /// Node bytes one fork (after 10 changes) stored, the most of several.
    fork_bytes: u64,
    /// Overlay rows the child of a fork got.
    fork_rows: usize,
    /// Node bytes one checkpoint of 10 changes stored, the most of several.
    checkpoint_bytes: u64,
    /// How much meta.db grew per checkpoint of 10 changes, on average (for the log only: the
    /// file grows in whole pages).
    db_growth: u64,
}

/// The bytes of meta.db's pages in use (free pages, left by the rows a freeze dropped, do not
/// count: the file would not grow until they are used up).
fn settled_size(dir: &std::path::Path) -> u64 {
    let path = dir.join("data").join("meta.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let pragma = |p: &str| {
        conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    (pragma("page_count") - pragma("freelist_count")) * pragma("page_size")
}

async fn costs(n: usize) -> Costs {
    let e = engine().await;
    let id = empty_session(&e).await;
    write_files(&e, &id, n).await;
    // Every file and directory has its row, unless a background freeze (every 4,096 changes
    // since the last) already moved them into the shared residual.
    assert!(rows(&e, &id).await <= n + n / 100);
    // The first freeze stores the whole residual, once.
    e.checkpoint(&id, None).await.unwrap();
    assert_eq!(rows(&e, &id).await, 0, "a freeze leaves no rows");
    let root = e.metadata().residuals.session_residual(&id).await.unwrap().root;
    assert!(root.is_some());

    let mut c = Costs {
        fork_bytes: 0,
        fork_rows: 0,
        checkpoint_bytes: 0,
        db_growth: 0,
    };
    let rounds = 4;
    let mut grown = 0;
    for r in 1..=rounds {
        change_ten(&e, &id, n, r).await;
        let before = node_bytes(&e).await;
        let source = SessionSource::Session {
            id: id.clone(),
            at: None,
        };
        let child = e.create_session(source, CreateOptions::default()).await.unwrap().id;
        c.fork_bytes = c.fork_bytes.max(node_bytes(&e).await - before);
        c.fork_rows = c.fork_rows.max(rows(&e, &child).await);
        assert_eq!(
            e.metadata().residuals.session_residual(&child).await.unwrap().root,
            e.metadata().residuals.session_residual(&id).await.unwrap().root,
            "the child shares its parent's residual"
        );
        // The child shows every mtime its parent does.
        let a = e.stat(&id, "d0/f1.txt", None).await.unwrap();
        let b = e.stat(&child, "d0/f1.txt", None).await.unwrap();
        assert_eq!(a.mtime_ns, b.mtime_ns);

        let size = settled_size(e.dir.path());
        change_ten(&e, &id, n, r + 100).await;
        let before = node_bytes(&e).await;
        e.checkpoint(&id, None).await.unwrap();
        c.checkpoint_bytes = c.checkpoint_bytes.max(node_bytes(&e).await - before);
        grown += settled_size(e.dir.path()).saturating_sub(size);
    }
    c.db_growth = grown / rounds as u64;
    c
}

#[tokio::test]
async fn fork_and_checkpoint_store_what_changed_not_what_the_session_wrote() {
    let small = costs(1_000).await;
    let large = costs(20_000).await;
    eprintln!(
        "1k files: fork {} B, {} rows, checkpoint {} B (meta.db +{} B); 20k files: fork {} B, {} rows, checkpoint {} B (meta.db +{} B)",
        small.fork_bytes,
        small.fork_rows,
        small.checkpoint_bytes,
        small.db_growth,
        large.fork_bytes,
        large.fork_rows,
        large.checkpoint_bytes,
        large.db_growth
    );
    assert_eq!((small.fork_rows, large.fork_rows), (0, 0), "a fork copies no row");
    // 20 times the files: the bytes grow with the depth of the tree (a level or two), never
    // with the files (a copied residual would store 20 times as much).
    assert!(
        large.fork_bytes <= 3 * small.fork_bytes.max(1024),
        "fork: {} B at 20k files vs {} B at 1k",
        large.fork_bytes,
        small.fork_bytes
    );
    assert!(
        large.checkpoint_bytes <= 3 * small.checkpoint_bytes.max(1024),
        "checkpoint: {} B at 20k files vs {} B at 1k",
        large.checkpoint_bytes,
        small.checkpoint_bytes
    );
    assert!(large.checkpoint_bytes < 16 * 1024, "{} B", large.checkpoint_bytes);
}

/// What a data directory written before residuals were shared holds: a session's whole
/// residual as overlay rows and a revision's as a list. Both keep loading, show the same
/// mtimes and modes, and the session moves to a shared tree at its next freeze.
#[tokio::test]
async fn sessions_and_revisions_stored_as_rows_and_lists_keep_loading() {
    use aether_core::residual::Residual;

    let dir = tempfile::tempdir().unwrap();
    let cfg = || crate::common::config(dir.path());
    let (id, listed, stats) = {
        let e = Engine::open(cfg()).await.unwrap();
        let id = empty_session(&e).await;
        write_files(&e, &id, 300).await;
        e.chmod(&id, "d1/f150.txt", 0o600).await.unwrap();
        e.checkpoint(&id, None).await.unwrap();
        let root = e.metadata().residuals.session_residual(&id).await.unwrap().root;
        let stores = e.metadata().residuals.clone();
        let frozen = Residual::load(root, |ids| {
            let stores = stores.clone();
            async move { stores.residual_nodes(ids).await }
        })
        .await
        .unwrap();
        let listed: Vec<(String, aether_core::overlay::OverlayEntry)> =
            frozen.map().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(listed.len() > 64, "recorded by root");
        let mut stats = Vec::new();
        for p in ["d0/f0.txt", "d1/f150.txt", "d2/f299.txt", "d2"] {
            stats.push(e.stat(&id, p, None).await.unwrap());
        }
        (id, listed, stats)
    };
    // Rewrite the store as an older version left it.
    {
        let db = rusqlite::Connection::open(dir.path().join("data").join("meta.db")).unwrap();
        db.execute("UPDATE sessions SET residual_root = NULL WHERE id = ?1", [id.as_str()])
            .unwrap();
        for (k, v) in &listed {
            db.execute(
                "INSERT INTO overlay_entries (session_id, path, entry) VALUES (?1, ?2, ?3)",
                rusqlite::params![id.as_str(), k, serde_json::to_string(v).unwrap()],
            )
            .unwrap();
        }
        let n = db
            .execute(
                "UPDATE revision_residuals SET residual = ?1, root = NULL",
                [serde_json::to_string(&listed).unwrap()],
            )
            .unwrap();
        assert_eq!(n, 1);
        db.execute("DELETE FROM residual_nodes", []).unwrap();
    }
    let e = Engine::open(cfg()).await.unwrap();
    let paths = ["d0/f0.txt", "d1/f150.txt", "d2/f299.txt", "d2"];
    for (p, before) in paths.iter().zip(&stats) {
        let now = e.stat(&id, p, None).await.unwrap();
        assert_eq!((now.mtime_ns, now.mode), (before.mtime_ns, before.mode), "{p}");
        let at = e.stat(&id, p, Some("checkpoints/1")).await.unwrap();
        assert_eq!(
            (at.mtime_ns, at.mode),
            (before.mtime_ns, before.mode),
            "{p} at the revision"
        );
    }
    // A fork at the listed revision gets rows, as before; a fork of the session shares a tree.
    let at = SessionSource::Session {
        id: id.clone(),
        at: Some("checkpoints/1".into()),
    };
    let child_at = e.create_session(at, CreateOptions::default()).await.unwrap().id;
    assert_eq!(rows(&e, &child_at).await, listed.len());
    let child = e
        .create_session(
            SessionSource::Session {
                id: id.clone(),
                at: None,
            },
            CreateOptions::default(),
        )
        .await
        .unwrap()
        .id;
    assert_eq!(rows(&e, &id).await, 0, "the fork froze the session into a shared tree");
    assert_eq!(rows(&e, &child).await, 0);
    for s in [&id, &child, &child_at] {
        for (p, before) in paths.iter().zip(&stats) {
            let now = e.stat(s, p, None).await.unwrap();
            assert_eq!((now.mtime_ns, now.mode), (before.mtime_ns, before.mode), "{p} in {s}");
        }
    }
    // Restoring the listed revision loses nothing and shows it exactly.
    e.set_times(&id, "d0/f0.txt", 5).await.unwrap();
    let out = e.restore(&id, "checkpoints/1").await.unwrap();
    assert!(out.saved.is_some());
    let now = e.stat(&id, "d0/f0.txt", None).await.unwrap();
    assert_eq!(now.mtime_ns, stats[0].mtime_ns);
    let saved = e.stat(&id, "d0/f0.txt", Some("checkpoints/2")).await.unwrap();
    assert_eq!(saved.mtime_ns, 5, "the discarded state was checkpointed");
}
