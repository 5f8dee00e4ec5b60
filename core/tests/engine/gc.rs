//! Garbage collection: what deleted sessions held is reclaimed from disk, what any live
//! session, revision or fork reaches is kept byte for byte, and the object database stays
//! whole (`git fsck --full`).

use std::time::Duration;

use aether_core::retention::CheckpointRetention;
use aether_core::{CreateOptions, Engine, ErrorKind, ExpiryOptions, GcOptions, SessionId, SessionSource};

use crate::common::*;

fn now() -> GcOptions {
    GcOptions {
        dry_run: false,
        grace: Duration::ZERO,
        ..Default::default()
    }
}

/// Bytes of git objects and chunks on disk (what a collection can free; SQLite keeps its pages).
async fn stored(e: &Engine) -> u64 {
    let u = e.disk_usage().await.unwrap();
    u.objects + u.chunks
}

/// Small and large files of `seed`, none shared with another seed.
async fn write_unique(e: &Engine, id: &SessionId, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0..200u64 {
        files.push((format!("small/{i}.txt"), noise(seed * 1000 + i, 3000)));
    }
    for i in 0..3u64 {
        files.push((format!("large/{i}.bin"), noise(seed * 1000 + 500 + i, 3 << 20)));
    }
    for (p, d) in &files {
        put(e, id, p, d).await;
    }
    files
}

/// `git fsck --full` of the object database finds nothing wrong but the links to large
/// blobs, which live in the chunk store by design (each must have its manifest there).
pub(crate) fn fsck(e: &TestEngine) {
    let out = std::process::Command::new("git")
        .args(["fsck", "--full", "--no-dangling", "--no-progress"])
        .current_dir(e.dir.path().join("data/objects.git"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git must be installed to run these tests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let large = |oid: &str| {
        let oid = aether_core::ObjectId::from_hex(oid.trim().as_bytes()).unwrap();
        assert!(
            e.objects().manifest(&oid).unwrap().is_some(),
            "git fsck: {oid} is missing and is no large blob: {text}"
        );
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        if line.starts_with("notice: HEAD points to an unborn branch") || line == "notice: No default references" {
            continue;
        }
        if let Some(oid) = line.strip_prefix("missing blob ") {
            large(oid);
            continue;
        }
        assert!(line.starts_with("broken link from"), "git fsck: {text}");
        let to = lines.next().unwrap_or_default();
        large(
            to.strip_prefix("to    blob ")
                .unwrap_or_else(|| panic!("git fsck: {text}")),
        );
    }
}

async fn assert_files(e: &Engine, id: &SessionId, files: &[(String, Vec<u8>)]) {
    for (p, d) in files {
        assert!(get(e, id, p).await == *d, "{p} changed");
    }
}

#[tokio::test]
async fn a_deleted_sessions_bytes_are_reclaimed_and_everything_live_is_kept() {
    let e = engine().await;
    // A session that stays, with a checkpoint, a fork and a change after it.
    let keep = empty_session(&e).await;
    let kept = write_unique(&e, &keep, 1).await;
    e.checkpoint(&keep, None).await.unwrap();
    put(&e, &keep, "after.txt", b"after the checkpoint").await;
    let fork = e
        .create_session(
            SessionSource::Session {
                id: keep.clone(),
                at: None,
            },
            Default::default(),
        )
        .await
        .unwrap()
        .id;
    put(&e, &fork, "fork-only.txt", b"the fork's").await;
    let first = e.collect_garbage(now()).await.unwrap();
    assert_eq!(first.loose_objects_removed, 0, "nothing is garbage yet: {first:?}");
    assert_eq!(first.chunks.chunks, 0, "{first:?}");

    // A session holding N unique bytes, with checkpoints and rewrites, then deleted.
    let before = stored(&e).await;
    let doomed = empty_session(&e).await;
    write_unique(&e, &doomed, 2).await;
    e.checkpoint(&doomed, None).await.unwrap();
    put(&e, &doomed, "small/0.txt", &noise(77, 3000)).await;
    e.checkpoint(&doomed, None).await.unwrap();
    let with = stored(&e).await;
    let unique = with - before;
    e.delete_session(&doomed).await.unwrap();
    let deleted = stored(&e).await;

    let dry = e.collect_garbage(GcOptions { dry_run: true, ..now() }).await.unwrap();
    assert!(dry.loose_objects_removed > 200, "{dry:?}");
    assert_eq!(stored(&e).await, deleted, "a dry run removes nothing");

    let report = e.collect_garbage(now()).await.unwrap();
    assert_eq!(report.loose_objects_removed, dry.loose_objects_removed, "{report:?}");
    let after = stored(&e).await;
    let reclaimed = with - after;
    assert!(
        reclaimed * 100 >= unique * 95,
        "reclaimed {reclaimed} of {unique} unique bytes: {report:?}"
    );
    assert!(report.revisions_removed >= 2, "{report:?}");
    assert!(
        report.residual_nodes_removed > 0,
        "the deleted session's residual trees: {report:?}"
    );

    // Everything live reads back, in the session, its fork and its checkpoint.
    assert_files(&e, &keep, &kept).await;
    assert_files(&e, &fork, &kept).await;
    assert_eq!(get(&e, &fork, "fork-only.txt").await, b"the fork's");
    let cp = e.list_checkpoints(&keep).await.unwrap();
    let at = cp[0].commit.to_string();
    let (p, d) = &kept[5];
    assert!(e.read(&keep, p, 0, None, Some(&at)).await.unwrap() == *d);
    fsck(&e);

    // A fresh engine on the same data sees the same.
    let again = e.collect_garbage(now()).await.unwrap();
    assert_eq!(again.loose_objects_removed, 0, "{again:?}");
    assert_eq!(again.chunks.chunks, 0, "{again:?}");
}

#[tokio::test]
async fn objects_younger_than_the_grace_period_are_kept() {
    let e = engine().await;
    let id = empty_session(&e).await;
    write_unique(&e, &id, 3).await;
    e.delete_session(&id).await.unwrap();
    let r = e.collect_garbage(GcOptions::default()).await.unwrap();
    assert_eq!(r.loose_objects_removed, 0, "{r:?}");
    assert_eq!(r.manifests_removed, 0, "{r:?}");
    assert_eq!(r.chunks.chunks, 0, "{r:?}");
}

/// Writes, rewrites, forks, checkpoints and deletes run on three sessions while collections
/// and packing passes run back to back with no grace period (each collection rewrites the packs
/// holding garbage). Writes reuse contents of deleted sessions (a write
/// that finds its object already stored, which a collection may be removing at that moment).
/// Afterwards, and on a fresh engine, every acknowledged state reads back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collections_while_writing_forking_and_deleting_lose_nothing() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    type Files = BTreeMap<String, Vec<u8>>;
    let e = engine().await;
    let stop = Arc::new(AtomicBool::new(false));
    // Contents every writer draws from: most become garbage and come back again and again.
    let pool: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..40u64)
            .map(|i| {
                if i % 10 == 9 {
                    noise(900 + i, 1_200_000)
                } else {
                    noise(900 + i, 2_000)
                }
            })
            .collect(),
    );
    let collector = {
        let (e, stop) = (e.engine.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0u32;
            while !stop.load(Ordering::Relaxed) {
                e.collect_garbage(now()).await.unwrap();
                runs += 1;
                tokio::task::yield_now().await;
            }
            runs
        })
    };
    // Background packing too: loose objects into packs, small packs merged, back to back.
    let packer = {
        let (e, stop) = (e.engine.clone(), stop.clone());
        tokio::spawn(async move {
            let mut passes = 0u32;
            while !stop.load(Ordering::Relaxed) {
                passes += e.pack_objects(0).await.unwrap().packs_written as u32;
                tokio::task::yield_now().await;
            }
            passes
        })
    };
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let (e, pool) = (e.engine.clone(), pool.clone());
        writers.push(tokio::spawn(async move {
            // Every state that must survive: (session, files), and checkpoints by commit.
            let mut live: Vec<(SessionId, Files)> = Vec::new();
            let mut revisions: Vec<(SessionId, String, Files)> = Vec::new();
            let id = empty_session(&e).await;
            let mut files = Files::new();
            for i in 0..120u64 {
                let content = pool[((w * 7 + i * 13) % pool.len() as u64) as usize].clone();
                let path = format!("w{w}/f{}", i % 25);
                put(&e, &id, &path, &content).await;
                files.insert(path, content);
                match i % 20 {
                    5 => {
                        let cp = e.checkpoint(&id, None).await.unwrap().checkpoint;
                        revisions.push((id.clone(), cp.commit.to_string(), files.clone()));
                    }
                    11 => {
                        // A fork that writes its own, and one that is deleted.
                        let src = SessionSource::Session {
                            id: id.clone(),
                            at: None,
                        };
                        let f = e.create_session(src, Default::default()).await.unwrap().id;
                        let mut ff = files.clone();
                        let extra = pool[(i as usize + 3) % pool.len()].clone();
                        put(&e, &f, "fork.bin", &extra).await;
                        ff.insert("fork.bin".into(), extra);
                        live.push((f, ff));
                        let src = SessionSource::Session {
                            id: id.clone(),
                            at: None,
                        };
                        let doomed = e.create_session(src, Default::default()).await.unwrap().id;
                        put(&e, &doomed, "gone.bin", &pool[(i as usize + 5) % pool.len()]).await;
                        e.delete_session(&doomed).await.unwrap();
                    }
                    17 => {
                        // A whole session written and deleted: its contents become garbage.
                        let tmp = empty_session(&e).await;
                        for k in 0..5usize {
                            put(&e, &tmp, &format!("t{k}"), &pool[(i as usize + k) % pool.len()]).await;
                        }
                        e.delete_session(&tmp).await.unwrap();
                    }
                    _ => {}
                }
            }
            live.push((id, files));
            (live, revisions)
        }));
    }
    let mut live = Vec::new();
    let mut revisions = Vec::new();
    for w in writers {
        let (l, r) = w.await.unwrap();
        live.extend(l);
        revisions.extend(r);
    }
    stop.store(true, Ordering::Relaxed);
    let runs = collector.await.unwrap();
    assert!(runs >= 2, "collections ran while writing: {runs}");
    let passes = packer.await.unwrap();
    assert!(passes >= 2, "packing passes wrote packs while writing: {passes}");
    e.collect_garbage(now()).await.unwrap();

    let check = |e: Engine| {
        let (live, revisions) = (live.clone(), revisions.clone());
        async move {
            for (id, files) in &live {
                for (p, d) in files {
                    assert!(get(&e, id, p).await == *d, "{id} {p} lost");
                }
            }
            for (id, at, files) in &revisions {
                for (p, d) in files {
                    let got = e.read(id, p, 0, None, Some(at)).await.unwrap();
                    assert!(got == *d, "{id} {p} at {at} lost");
                }
            }
        }
    };
    check(e.engine.clone()).await;
    fsck(&e);
    let dir = e.dir.path().to_path_buf();
    drop(e.engine);
    let reopened = Engine::open(config(&dir)).await.unwrap();
    check(reopened).await;
}

/// Checkpoints a retention policy no longer keeps lose their ref and record before a
/// collection, which then reclaims what only they reached; the server's policy applies to a
/// session without its own; archived sessions unchanged too long are deleted; a dry run
/// counts and changes nothing.
#[tokio::test]
async fn expired_checkpoints_and_archived_sessions_are_reclaimed() {
    let e = engine().await;
    let own = CheckpointRetention {
        keep_last: Some(2),
        keep_days: None,
    };
    let kept = e
        .create_session(
            SessionSource::Empty,
            CreateOptions {
                retention: Some(own),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    // Five checkpoints, each of a different 1 MiB file at the same path.
    for n in 1..=5u64 {
        put(&e, &kept, "f.bin", &noise(900 + n, 1 << 20)).await;
        e.checkpoint(&kept, None).await.unwrap();
    }
    // A session without a policy follows the server's (keep the last one).
    let follows = empty_session(&e).await;
    for n in 1..=3u64 {
        put(&e, &follows, "g.txt", &noise(950 + n, 1000)).await;
        e.checkpoint(&follows, None).await.unwrap();
    }
    // A fork made at a checkpoint that will expire keeps what it forked.
    let fork_at_2 = e
        .create_session(
            SessionSource::Session {
                id: kept.clone(),
                at: Some("checkpoints/2".into()),
            },
            Default::default(),
        )
        .await
        .unwrap()
        .id;
    let archived = empty_session(&e).await;
    put(&e, &archived, "h.txt", b"old").await;
    e.archive_session(&archived).await.unwrap();
    let expiry = ExpiryOptions {
        checkpoints: CheckpointRetention {
            keep_last: Some(1),
            keep_days: None,
        },
        archived_after: Some(Duration::ZERO),
    };
    // After a restart: replaced contents are no longer held for open descriptors (`held`),
    // so only the checkpoints keep the old versions.
    let TestEngine { engine, dir } = e;
    drop(engine);
    let e = TestEngine {
        engine: Engine::open(config(dir.path())).await.unwrap(),
        dir,
    };

    let dry = e
        .collect_garbage(GcOptions {
            dry_run: true,
            expiry,
            ..now()
        })
        .await
        .unwrap();
    assert_eq!((dry.expired.checkpoints, dry.expired.sessions), (3 + 2, 1), "{dry:?}");
    assert_eq!(
        e.list_checkpoints(&kept).await.unwrap().len(),
        5,
        "a dry run changes nothing"
    );
    e.get_session(&archived).await.unwrap();

    let before = stored(&e).await;
    let report = e.collect_garbage(GcOptions { expiry, ..now() }).await.unwrap();
    assert_eq!(
        (report.expired.checkpoints, report.expired.sessions),
        (5, 1),
        "{report:?}"
    );
    let numbers = |id: SessionId| {
        let e = &e;
        async move {
            let cps = e.list_checkpoints(&id).await.unwrap();
            cps.iter().map(|c| c.number).collect::<Vec<_>>()
        }
    };
    assert_eq!(numbers(kept.clone()).await, [4, 5]);
    assert_eq!(numbers(follows.clone()).await, [3]);
    assert_eq!(
        e.get_session(&archived).await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "the archived session expired"
    );
    // An expired checkpoint is gone on every read; a kept one reads as it was.
    let gone = e
        .read(&kept, "f.bin", 0, None, Some("checkpoints/1"))
        .await
        .unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
    assert_eq!(
        e.read(&kept, "f.bin", 0, None, Some("checkpoints/4")).await.unwrap(),
        noise(904, 1 << 20)
    );
    assert_eq!(get(&e, &kept, "f.bin").await, noise(905, 1 << 20));
    // Two of the three expired 1 MiB versions are reclaimed (unique noise); the fork keeps
    // the one it was made from, and the history below it.
    let freed = before.saturating_sub(stored(&e).await);
    assert!(freed >= (1 << 20) * 95 / 100, "freed {freed} bytes: {report:?}");
    assert_eq!(get(&e, &fork_at_2, "f.bin").await, noise(902, 1 << 20));
    fsck(&e);
    // Nothing more expires on the next collection; a ref a crash left behind (naming no
    // checkpoint the session records) is removed by it.
    let stray = format!("refs/aether/sessions/{kept}/checkpoints/99");
    let head = e.get_session(&kept).await.unwrap().head.unwrap();
    e.objects().odb.set_ref(&stray, head, "test: a stray ref").unwrap();
    let again = e.collect_garbage(GcOptions { expiry, ..now() }).await.unwrap();
    assert_eq!((again.expired.checkpoints, again.expired.sessions), (0, 0));
    assert_eq!(e.objects().odb.find_ref(&stray).unwrap(), None);
    assert_eq!(numbers(kept.clone()).await, [4, 5]);
}
