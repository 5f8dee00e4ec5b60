//! Sessions held in memory stay within their byte budget (`CacheConfig::session_bytes`): idle
//! sessions beyond it are evicted and loaded again on their next use exactly as after a
//! restart, and no write is lost to an eviction racing it (see `loaded` in core).

use std::sync::Arc;

use aether_core::{Engine, SessionId};

use crate::common::*;

/// What a file shows: bytes, mode, mtime.
async fn shown(e: &Engine, id: &SessionId, path: &str) -> (Vec<u8>, u32, i64) {
    let st = e.stat(id, path, None).await.unwrap();
    (get(e, id, path).await, st.mode, st.mtime_ns)
}

#[tokio::test]
async fn sessions_beyond_the_budget_are_evicted_and_read_back_exactly() {
    let cap = 64 << 10;
    let t = engine_with(|c| c.caches.session_bytes = cap).await;
    let e = &t.engine;
    let mut recorded = Vec::new();
    for s in 0..40u32 {
        let id = empty_session(e).await;
        let mut files = Vec::new();
        for f in 0..20u32 {
            let path = format!("d{}/f{f}", f % 3);
            put(e, &id, &path, format!("session {s} file {f}").as_bytes()).await;
            if f % 4 == 0 {
                e.chmod(&id, &path, 0o700 + f).await.unwrap();
            }
            if f % 5 == 0 {
                e.set_times(&id, &path, 1_000_000_000 * i64::from(s * 100 + f) + 7)
                    .await
                    .unwrap();
            }
            files.push((path.clone(), shown(e, &id, &path).await));
        }
        e.symlink(&id, "link", "d0/f0").await.unwrap();
        let usage = e.cache_usage();
        assert!(
            usage.sessions <= cap,
            "session {s}: {} bytes held, cap {cap}",
            usage.sessions
        );
        recorded.push((id, files));
    }
    let (loaded, _) = e.sessions_in_memory();
    assert!(loaded < 40, "all 40 sessions still loaded");
    assert!(e.sessions_evicted() > 0);
    // Every session, evicted or not, reads back as it was written.
    for (id, files) in &recorded {
        for (path, was) in files {
            assert_eq!(&shown(e, id, path).await, was, "{id} {path}");
        }
        let link = e.stat(id, "link", None).await.unwrap();
        assert_eq!(link.symlink_target.as_deref(), Some("d0/f0"));
        assert!(e.cache_usage().sessions <= cap);
    }
}

#[tokio::test]
async fn a_write_racing_evictions_is_never_lost() {
    // A budget no session fits in: every idle session is evicted at every load and write.
    let t = engine_with(|c| c.caches.session_bytes = 1).await;
    let e = t.engine.clone();
    let id = empty_session(&e).await;
    let others: Vec<SessionId> = {
        let mut v = Vec::new();
        for i in 0..8 {
            let o = empty_session(&e).await;
            put(&e, &o, "x", format!("{i}").as_bytes()).await;
            v.push(o);
        }
        v
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Loads of other sessions, each sweeping the table.
    let churn = {
        let (e, stop) = (e.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = &others[n as usize % others.len()];
                e.stat(o, "x", None).await.unwrap();
                n += 1;
            }
            n
        })
    };
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (e, id) = (e.clone(), id.clone());
            tokio::spawn(async move {
                for i in 0..25 {
                    let path = format!("w{w}/f{i:02}");
                    put(&e, &id, &path, format!("{w}:{i}").as_bytes()).await;
                    // Every earlier write of this writer still shows: a second handle loaded
                    // beside the first would miss the writes made through the other.
                    let listed = e.list(&id, &format!("w{w}"), false, None).await.unwrap();
                    assert_eq!(listed.len(), i + 1, "writer {w} after {i}: {listed:?}");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(churn.await.unwrap() > 0);
    assert!(e.sessions_evicted() > 10, "only {} evictions", e.sessions_evicted());
    for w in 0..6 {
        for i in 0..25 {
            assert_eq!(
                get(&e, &id, &format!("w{w}/f{i:02}")).await,
                format!("{w}:{i}").as_bytes()
            );
        }
    }
    // The memory agrees with the store: a fresh engine on the same data reads the same.
    let seen = |l: Vec<aether_core::DirEntry>| -> Vec<_> {
        l.into_iter()
            .map(|d| (d.stat.path, d.stat.oid, d.stat.mode, d.stat.mtime_ns))
            .collect()
    };
    let listed = seen(e.list(&id, "", true, None).await.unwrap());
    assert_eq!(listed.len(), 6 + 6 * 25);
    let fresh = Engine::open(config(t.dir.path())).await.unwrap();
    assert_eq!(seen(fresh.list(&id, "", true, None).await.unwrap()), listed);
}

#[tokio::test]
async fn a_session_kept_loaded_is_never_evicted() {
    let t = engine_with(|c| c.caches.session_bytes = 1).await;
    let e = &t.engine;
    let id = empty_session(e).await;
    put(e, &id, "f", b"1").await;
    let kept = e.keep_loaded(&id).await.unwrap();
    let before = e.sessions_evicted();
    for i in 0..5 {
        let o = empty_session(e).await;
        put(e, &o, "x", format!("{i}").as_bytes()).await;
    }
    assert!(e.sessions_evicted() > before);
    let (loaded, _) = e.sessions_in_memory();
    assert!(loaded >= 1);
    assert!(e.cache_usage().sessions > 1, "the kept session is counted");
    drop(kept);
    // Idle now: the next sweep may take it.
    let o = empty_session(e).await;
    put(e, &o, "x", b"y").await;
    assert_eq!(get(e, &id, "f").await, b"1");
}
