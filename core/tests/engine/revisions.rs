//! Reads at a revision (a checkpoint, a commit on a branch, a commit id) show the POSIX details
//! of the state it was made from (empty directories, modes), as restore and fork at it do; a
//! read resolves a path to one content and serves only that content's bytes.

use std::collections::BTreeMap;
use std::io::Read;

use aether_core::{Engine, ErrorKind, FileKind, Opened, SessionId, SessionSource};

use crate::common::*;

/// The state every test below commits: empty directories (one nested), and files and a
/// directory whose modes git cannot hold.
async fn posix_state(e: &Engine, id: &SessionId) {
    e.mkdir(id, "empty/a/b", true).await.unwrap();
    e.mkdir(id, "e2", false).await.unwrap();
    put(e, id, "secret", b"s").await;
    e.chmod(id, "secret", 0o600).await.unwrap();
    put(e, id, "ro", b"r").await;
    e.chmod(id, "ro", 0o444).await.unwrap();
    put(e, id, "private/x", b"x").await;
    e.chmod(id, "private", 0o700).await.unwrap();
}

/// Kind and mode of every path (recursive listing) at `at`.
async fn shape(e: &Engine, id: &SessionId, at: Option<&str>) -> BTreeMap<String, (FileKind, u32)> {
    e.list(id, "", true, at)
        .await
        .unwrap_or_else(|err| panic!("list at {at:?}: {err}"))
        .into_iter()
        .map(|d| (d.stat.path, (d.stat.kind, d.stat.mode)))
        .collect()
}

fn expected() -> BTreeMap<String, (FileKind, u32)> {
    [
        ("e2", FileKind::Dir, 0o755),
        ("empty", FileKind::Dir, 0o755),
        ("empty/a", FileKind::Dir, 0o755),
        ("empty/a/b", FileKind::Dir, 0o755),
        ("private", FileKind::Dir, 0o700),
        ("private/x", FileKind::File, 0o644),
        ("ro", FileKind::File, 0o444),
        ("secret", FileKind::File, 0o600),
    ]
    .into_iter()
    .map(|(p, k, m)| (p.to_owned(), (k, m)))
    .collect()
}

#[tokio::test]
async fn reads_forks_and_restores_at_a_commit_or_checkpoint_keep_its_posix_details() {
    let e = engine().await;
    let id = empty_session(&e).await;
    posix_state(&e, &id).await;
    let commit = e.commit(&id, "posix".into(), None, None).await.unwrap();
    let cp = e.checkpoint(&id, None).await.unwrap();
    // Change everything the revisions must not show.
    e.delete(&id, "empty", true).await.unwrap();
    e.delete(&id, "e2", false).await.unwrap();
    e.chmod(&id, "secret", 0o644).await.unwrap();
    e.chmod(&id, "private", 0o755).await.unwrap();
    put(&e, &id, "later", b"l").await;
    assert_ne!(shape(&e, &id, None).await, expected());

    let commit_hex = commit.id.to_hex().to_string();
    for at in ["heads/main", "main", commit_hex.as_str(), "checkpoints/1", "HEAD"] {
        assert_eq!(shape(&e, &id, Some(at)).await, expected(), "listing at {at}");
        let st = e.stat(&id, "secret", Some(at)).await.unwrap();
        assert_eq!(st.mode, 0o600, "stat at {at}");
        assert_eq!(e.read(&id, "ro", 0, None, Some(at)).await.unwrap(), b"r");
    }
    assert_ne!(cp.checkpoint.commit, commit.id);

    // A fork at the commit starts from the same details, and so does a restore.
    let fork = e
        .create_session(
            SessionSource::Session {
                id: id.clone(),
                at: Some("heads/main".into()),
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(shape(&e, &fork.id, None).await, expected(), "fork at heads/main");
    // The fork reads its parent's commit by id with the parent's record.
    assert_eq!(
        shape(&e, &fork.id, Some(&commit_hex)).await,
        expected(),
        "fork reading the commit id"
    );

    let restored = e.restore(&id, "heads/main").await.unwrap();
    assert!(restored.saved.is_some(), "the changed state is saved first");
    assert_eq!(shape(&e, &id, None).await, expected(), "restored to heads/main");
    let again = e.restore(&id, &commit_hex).await.unwrap();
    assert!(
        again.saved.is_none(),
        "the same state with the same details: nothing to save"
    );
    // The state saved before the restore is a revision like any other.
    let saved = restored.saved.unwrap().checkpoint.number;
    let at_saved = shape(&e, &id, Some(&format!("checkpoints/{saved}"))).await;
    assert!(at_saved.contains_key("later") && !at_saved.contains_key("empty"));
    assert_eq!(at_saved["secret"].1, 0o644);
}

#[tokio::test]
async fn an_open_file_reads_the_version_it_resolved() {
    let e = small_chunk_engine().await;
    let id = empty_session(&e).await;
    let v1 = noise(1, 50_000);
    put(&e, &id, "big", &v1).await;
    put(&e, &id, "small", b"small v1").await;
    let Opened::File(big) = e.open_file(&id, "big", None, None).await.unwrap() else {
        panic!("a file")
    };
    let Opened::File(small) = e.open_file(&id, "small", None, None).await.unwrap() else {
        panic!("a file")
    };
    assert!(big.chunked() && !small.chunked());
    let v1_oid = big.oid().to_hex().to_string();
    assert_eq!(big.stat().oid.as_deref(), Some(v1_oid.as_str()));

    // New versions of other sizes replace both files.
    put(&e, &id, "big", &noise(2, 9_000)).await;
    put(&e, &id, "small", b"v2").await;
    assert_eq!(small.read(0, u64::MAX).await.unwrap(), b"small v1");
    assert_eq!(small.read(6, 100).await.unwrap(), b"v1", "clipped to the content's end");
    assert_eq!(big.size(), v1.len() as u64);
    let mut got = Vec::new();
    big.reader(1_000, 30_000).read_to_end(&mut got).unwrap();
    assert_eq!(got, &v1[1_000..31_000]);
    assert_eq!(big.reader(49_000, u64::MAX).remaining(), 1_000);

    // A read naming content the path no longer holds is stale, and reads nothing.
    let stale = e.open_file(&id, "big", None, Some(&v1_oid)).await.err().unwrap();
    assert_eq!(stale.kind(), ErrorKind::Stale);
    assert!(stale.to_string().contains(&v1_oid), "{stale}");
    // Unless the reader opened that version earlier (a descriptor open in a mount): this
    // session held it lately (see `held`), so it is read as a local disk reads an open file.
    let Opened::File(old) = e.open_opened(&id, "big", None, &v1_oid).await.unwrap() else {
        panic!("a file")
    };
    assert_eq!((old.size(), old.chunked()), (v1.len() as u64, true));
    assert_eq!(old.read(0, u64::MAX).await.unwrap(), v1);
    let layout = e.stat_opened(&id, "big", None, &v1_oid).await.unwrap();
    let extents = layout.extents.expect("the chunks of the version opened");
    assert_eq!(extents.iter().map(|x| x.length).sum::<u64>(), v1.len() as u64);
    assert_eq!(layout.oid.as_deref(), Some(v1_oid.as_str()));
    let small_v1 = small.oid().to_hex().to_string();
    e.delete(&id, "small", false).await.unwrap();
    let Opened::File(removed) = e.open_opened(&id, "small", None, &small_v1).await.unwrap() else {
        panic!("a file")
    };
    assert_eq!(
        removed.read(0, u64::MAX).await.unwrap(),
        b"small v1",
        "once removed too"
    );
    // Content the session never held is stale, even when the store has it (another session's).
    let other = empty_session(&e).await;
    put(&e, &other, "theirs", b"another session's bytes").await;
    let Opened::File(theirs) = e.open_file(&other, "theirs", None, None).await.unwrap() else {
        panic!("a file")
    };
    let theirs = theirs.oid().to_hex().to_string();
    let never = e.open_opened(&id, "big", None, &theirs).await.err().unwrap();
    assert_eq!(never.kind(), ErrorKind::Stale);
    let Opened::File(now) = e.open_file(&id, "big", None, None).await.unwrap() else {
        panic!("a file")
    };
    let now_oid = now.oid().to_hex().to_string();
    assert!(matches!(
        e.open_file(&id, "big", None, Some(&now_oid)).await,
        Ok(Opened::File(f)) if f.oid() == now.oid()
    ));
    e.mkdir(&id, "d", false).await.unwrap();
    for (path, what) in [("missing", "gone"), ("d", "a directory")] {
        let err = e.open_file(&id, path, None, Some(&now_oid)).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Stale, "{path}");
        assert!(err.to_string().contains(what), "{err}");
    }
    let bad = e.open_file(&id, "big", None, Some("not-an-id")).await.err().unwrap();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument);
    assert!(matches!(
        e.open_file(&id, "d", None, None).await,
        Ok(Opened::NotAFile(st)) if st.kind == FileKind::Dir
    ));
    assert_eq!(
        e.open_file(&id, "missing", None, None).await.err().unwrap().kind(),
        ErrorKind::NotFound
    );
}
