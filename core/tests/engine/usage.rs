//! Usage figures of sessions and forks after known writes, and quotas enforced on them.

use std::collections::HashSet;

use aether_core::quota::Quota;
use aether_core::{BatchOp, CreateOptions, Engine, ErrorKind, SessionId, SessionSource, SessionUpdate, SessionUsage};

use crate::common::*;

async fn fork(e: &Engine, parent: &SessionId, quota: Option<Quota>) -> SessionId {
    e.create_session(
        SessionSource::Session {
            id: parent.clone(),
            at: None,
        },
        CreateOptions {
            quota,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id
}

async fn usage(e: &Engine, id: &SessionId) -> SessionUsage {
    e.session_usage(id).await.unwrap()
}

/// `(files, directories, symlinks, bytes, unique_files, unique_bytes, shared_bytes, cow_bytes)`.
fn figures(u: &SessionUsage) -> [u64; 8] {
    [
        u.files,
        u.directories,
        u.symlinks,
        u.bytes,
        u.unique_files,
        u.unique_bytes,
        u.shared_bytes,
        u.cow_bytes,
    ]
}

#[tokio::test]
async fn a_session_and_its_fork_report_exact_unique_shared_and_copied_bytes() {
    let e = engine().await;
    let parent = empty_session(&e).await;
    put(&e, &parent, "a/one", &noise(1, 100)).await;
    put(&e, &parent, "a/two", &noise(2, 200)).await;
    put(&e, &parent, "b/three", &noise(3, 300)).await;
    e.symlink(&parent, "link", "a/one").await.unwrap();
    e.mkdir(&parent, "empty", false).await.unwrap();
    // Not forked: all of it is its own.
    assert_eq!(figures(&usage(&e, &parent).await), [3, 3, 1, 600, 4, 600, 0, 600]);

    let child = fork(&e, &parent, None).await;
    assert_eq!(
        figures(&usage(&e, &child).await),
        [3, 3, 1, 600, 0, 0, 600, 0],
        "a fork holds nothing of its own"
    );

    // New content, a changed file, a moved directory, a copy of the parent's content and a
    // removal: only the first two are the fork's own.
    put(&e, &child, "c", &noise(4, 50)).await;
    put(&e, &child, "a/one", &noise(5, 120)).await;
    e.rename(&child, "b", "b2").await.unwrap();
    put(&e, &child, "d", &noise(2, 200)).await;
    e.delete(&child, "a/two", false).await.unwrap();
    let u = usage(&e, &child).await;
    // a/one 120 + b2/three 300 + c 50 + d 200.
    assert_eq!(figures(&u), [4, 3, 1, 670, 2, 170, 500, 170], "{u:?}");

    // The same after a checkpoint (the state is frozen into a new tree), a commit, and a
    // restart; checkpoints and commits are counted.
    e.checkpoint(&child, None).await.unwrap();
    e.commit(&child, "one".into(), None, None).await.unwrap();
    assert_eq!(figures(&usage(&e, &child).await), figures(&u));
    assert_eq!(
        figures(&usage(&e, &parent).await),
        [3, 3, 1, 600, 4, 600, 0, 600],
        "the parent is unchanged"
    );
    let TestEngine { engine, dir } = e;
    drop(engine);
    let reopened = Engine::open(config(dir.path())).await.unwrap();
    let after = reopened.session_usage(&child).await.unwrap();
    assert_eq!(figures(&after), figures(&u), "the origin survives a restart");
    assert_eq!((after.checkpoints, after.commits), (1, 1));
}

#[tokio::test]
async fn a_one_byte_change_of_a_large_file_costs_its_new_chunks() {
    let e = small_chunk_engine().await;
    let parent = empty_session(&e).await;
    let data = noise(7, 200_000);
    put(&e, &parent, "big", &data).await;
    let before: HashSet<String> = e
        .stat(&parent, "big", None)
        .await
        .unwrap()
        .extents
        .unwrap()
        .into_iter()
        .map(|x| x.blake3)
        .collect();
    let u = usage(&e, &parent).await;
    assert_eq!((u.large_files, u.large_bytes), (1, 200_000));
    assert!(u.chunks >= 200_000 / 4096, "{u:?}");
    assert_eq!(u.large_stored_bytes, 200_000, "noise has no repeated chunk");

    let child = fork(&e, &parent, None).await;
    e.write_at(&child, "big", 100_000, vec![data[100_000] ^ 0xff])
        .await
        .unwrap();
    let extents = e.stat(&child, "big", None).await.unwrap().extents.unwrap();
    let mut seen = HashSet::new();
    let new_bytes: u64 = extents
        .iter()
        .filter(|x| !before.contains(&x.blake3) && seen.insert(x.blake3.clone()))
        .map(|x| x.length)
        .sum();
    let u = usage(&e, &child).await;
    assert_eq!((u.unique_files, u.unique_bytes), (1, 200_000), "the file changed");
    assert_eq!(u.cow_bytes, new_bytes, "only the new chunks cost");
    assert!(new_bytes > 0 && new_bytes <= 3 * 4096, "{new_bytes}");
}

#[tokio::test]
async fn zeros_are_one_chunk_and_the_dedup_ratio_says_so() {
    let e = small_chunk_engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "zeros", &vec![0u8; 400_000]).await;
    let u = usage(&e, &id).await;
    assert_eq!((u.bytes, u.large_bytes), (400_000, 400_000));
    // One all-zero chunk of the maximum size, and the shorter one at the end.
    let stored = 4096 + 400_000 % 4096;
    assert_eq!(u.large_stored_bytes, stored);
    assert_eq!(u.cow_bytes, stored);
    assert!(u.chunks >= 400_000 / 4096);
}

fn quota(bytes: u64, files: u64) -> Option<Quota> {
    Some(Quota {
        bytes: Some(bytes),
        files: Some(files),
    })
}

async fn expect_over(res: aether_core::Result<impl std::fmt::Debug>, what: &str) {
    match res {
        Err(err) => assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{what}: {err}"),
        Ok(v) => panic!("{what}: accepted over the quota: {v:?}"),
    }
}

#[tokio::test]
async fn a_quota_refuses_what_goes_over_it_and_changes_nothing() {
    let e = engine().await;
    let id = e
        .create_session(
            SessionSource::Empty,
            CreateOptions {
                quota: quota(1000, 5),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    put(&e, &id, "a", &noise(1, 600)).await;
    expect_over(
        e.write_bytes(&id, "b", noise(2, 600), Default::default()).await,
        "bytes",
    )
    .await;
    assert_eq!(e.stat(&id, "b", None).await.unwrap_err().kind(), ErrorKind::NotFound);
    put(&e, &id, "b", &noise(2, 400)).await; // exactly 1000
    expect_over(
        e.write_bytes(&id, "c", vec![1], Default::default()).await,
        "one byte more",
    )
    .await;
    // Files: two so far; three empty files and a symlink make six.
    for name in ["e1", "e2", "e3"] {
        put(&e, &id, name, b"").await;
    }
    expect_over(e.symlink(&id, "l", "a").await, "files").await;
    // Growing a file is refused; replacing it with less and removing are not.
    expect_over(e.write_at(&id, "a", 600, vec![7]).await, "append").await;
    put(&e, &id, "a", &noise(3, 100)).await;
    e.delete(&id, "e1", false).await.unwrap();
    e.delete(&id, "e2", false).await.unwrap();
    e.symlink(&id, "l", "a").await.unwrap();
    // Four files (a, b, e3, l) of 500 bytes.
    // A batch stops at the change that goes over; the ones before it are kept.
    let out = e
        .apply_batch(
            &id,
            vec![
                BatchOp::Put {
                    path: "f".into(),
                    data: noise(4, 400),
                    mode: None,
                    create_parents: false,
                    mtime: None,
                },
                BatchOp::Put {
                    path: "g".into(),
                    data: noise(5, 400),
                    mode: None,
                    create_parents: false,
                    mtime: None,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.applied.len(), 1);
    let (at, err) = out.failed.unwrap();
    assert_eq!((at, err.kind()), (1, ErrorKind::QuotaExceeded), "{err}");
    // Lowered under what it holds: only removals pass; raised: writes pass again.
    let limits = |quota| SessionUpdate {
        quota,
        ..Default::default()
    };
    e.update_session(&id, limits(quota(100, 100))).await.unwrap();
    expect_over(
        e.write_bytes(&id, "h", vec![1], Default::default()).await,
        "over a lowered quota",
    )
    .await;
    e.delete(&id, "f", false).await.unwrap();
    e.update_session(&id, limits(Some(Quota::default()))).await.unwrap();
    put(&e, &id, "h", &noise(6, 5000)).await;
}

#[tokio::test]
async fn forks_inherit_quotas_and_count_only_their_own_bytes() {
    let e = engine().await;
    let parent = e
        .create_session(
            SessionSource::Empty,
            CreateOptions {
                quota: quota(1000, 100),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    put(&e, &parent, "dir/a", &noise(1, 900)).await;
    let child = fork(&e, &parent, None).await;
    assert_eq!(e.get_session(&child).await.unwrap().quota, quota(1000, 100).unwrap());
    // The parent's 900 bytes are not the child's: 900 more of its own fit.
    put(&e, &child, "b", &noise(2, 900)).await;
    // Moving the parent's directory costs nothing.
    e.rename(&child, "dir", "moved").await.unwrap();
    put(&e, &child, "c", &noise(3, 100)).await;
    expect_over(e.write_bytes(&child, "d", vec![1], Default::default()).await, "fork").await;
    let u = usage(&e, &child).await;
    assert_eq!((u.bytes, u.unique_bytes, u.shared_bytes), (1900, 1000, 900));
    // A fork given its own quota uses it.
    let roomy = fork(&e, &parent, quota(10_000, 100)).await;
    put(&e, &roomy, "big", &noise(4, 5000)).await;
}

#[tokio::test]
async fn an_import_over_its_quota_is_refused() {
    let e = engine().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), noise(1, 2000)).unwrap();
    let err = e
        .create_session(
            SessionSource::Directory(src.path().to_owned()),
            CreateOptions {
                quota: quota(1000, 10),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{err}");
    let listed = e.list_sessions(&Default::default(), &Default::default()).await.unwrap();
    assert!(listed.is_empty(), "no session was created: {listed:?}");
}

/// A session that writes without checkpoints is frozen in the background once it holds 4,096
/// changes since its last freeze, so a usage figure or a quota's exact measure never freezes
/// more than that: its stored residual gets a root, every entry keeps its mode, mtime, size and
/// content id exactly (in the session, after a restart and in a fork of it), and the bytes read
/// back as written.
#[tokio::test]
async fn many_changes_without_a_checkpoint_are_frozen_in_the_background() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let before = e.metadata().residuals.session_residual(&id).await.unwrap();
    assert!(before.root.is_none());
    let ops: Vec<BatchOp> = (0..5000)
        .map(|i| BatchOp::Put {
            path: format!("d{}/f{i}", i / 100),
            data: format!("{i}").into_bytes(),
            mode: Some(if i % 3 == 0 { 0o755 } else { 0o640 }),
            create_parents: true,
            mtime: Some(1_000_000_000 + i as i64),
        })
        .collect();
    // The attributes as written, read back before any freeze could run (the first 1,000).
    let first = e.apply_batch(&id, ops[..1000].to_vec()).await.unwrap();
    assert!(first.failed.is_none());
    let written = e.list(&id, "", true, None).await.unwrap();
    for chunk in ops[1000..].chunks(1000) {
        let out = e.apply_batch(&id, chunk.to_vec()).await.unwrap();
        assert!(out.failed.is_none());
    }
    let mut frozen = false;
    for _ in 0..200 {
        if e.metadata()
            .residuals
            .session_residual(&id)
            .await
            .unwrap()
            .root
            .is_some()
        {
            frozen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(frozen, "no background freeze after 5,000 changes");
    let attrs = |l: Vec<aether_core::DirEntry>| -> Vec<(String, u32, i64, u64, Option<String>)> {
        l.into_iter()
            .map(|d| (d.name, d.stat.mode, d.stat.mtime_ns, d.stat.size, d.stat.oid))
            .collect()
    };
    let now = attrs(e.list(&id, "", true, None).await.unwrap());
    assert_eq!(now.len(), 5000 + 50);
    let mut kept: Vec<_> = attrs(written).into_iter().collect();
    kept.retain(|(name, ..)| now.iter().any(|(n, ..)| n == name));
    for entry in &kept {
        assert!(now.contains(entry), "changed by the freeze: {entry:?}");
    }
    // And those are what was written.
    for (name, mode, mtime, ..) in now.iter().filter(|(n, ..)| n.contains("/f")) {
        let i: i64 = name.rsplit("/f").next().unwrap().parse().unwrap();
        let want = if i % 3 == 0 { 0o755 } else { 0o640 };
        assert_eq!((mode & 0o7777, *mtime), (want, 1_000_000_000 + i), "{name}");
    }
    for i in [0usize, 2500, 4999] {
        assert_eq!(
            get(&e, &id, &format!("d{}/f{i}", i / 100)).await,
            format!("{i}").into_bytes()
        );
    }
    let child = fork(&e, &id, None).await;
    assert_eq!(
        attrs(e.list(&child, "", true, None).await.unwrap()),
        now,
        "a fork shows the same"
    );
    let u = usage(&e, &id).await;
    assert_eq!((u.files, u.directories, u.unique_files), (5000, 50, 5000));
    let TestEngine { engine, dir } = e;
    drop(engine);
    let reopened = Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(
        attrs(reopened.list(&id, "", true, None).await.unwrap()),
        now,
        "the same after a restart"
    );
}
