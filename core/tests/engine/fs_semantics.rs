use aether_core::{ErrorKind, FileKind, WriteOptions};

use crate::common::*;

#[tokio::test]
async fn write_read_stat_and_list() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "src/main.rs", b"fn main() {}\n").await;
    put(&e, &id, "README", b"hello").await;
    assert_eq!(get(&e, &id, "src/main.rs").await, b"fn main() {}\n");
    assert_eq!(e.read(&id, "README", 1, Some(3), None).await.unwrap(), b"ell");
    assert_eq!(e.read(&id, "README", 10, Some(3), None).await.unwrap(), b"");

    let st = e.stat(&id, "README", None).await.unwrap();
    assert_eq!(st.kind, FileKind::File);
    assert_eq!(st.size, 5);
    assert_eq!(st.mode, 0o644);
    assert_eq!(
        st.oid.as_deref(),
        Some("b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"),
        "git blob id of 'hello'"
    );
    assert!(!st.chunked);

    let root: Vec<_> = e
        .list(&id, "", false, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.stat.kind))
        .collect();
    assert_eq!(
        root,
        [
            ("README".to_string(), FileKind::File),
            ("src".to_string(), FileKind::Dir)
        ]
    );
    let all: Vec<_> = e
        .list(&id, "/", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect();
    assert_eq!(all, ["README", "src", "src/main.rs"]);
}

#[tokio::test]
async fn bad_paths_are_rejected_and_change_nothing() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let long = "n".repeat(300);
    let err = e
        .write_bytes(&id, &long, b"x".to_vec(), WriteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "over-long name");
    for bad in ["../etc/passwd", "a/../../b", "a//b", "x\0y", "/../x"] {
        let err = e
            .write_bytes(&id, bad, b"x".to_vec(), WriteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidPath, "{bad:?}");
    }
    assert!(e.list(&id, "", true, None).await.unwrap().is_empty());
    let events = e.events(&id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 1, "only the creation event: {events:?}");
}

#[tokio::test]
async fn posix_errors() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "d/f", b"1").await;
    fn kind<T>(r: Result<T, aether_core::Error>) -> ErrorKind {
        r.map(|_| ()).unwrap_err().kind()
    }

    assert_eq!(
        kind(e.write_bytes(&id, "nope/f", vec![], WriteOptions::default()).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(e.write_bytes(&id, "d/f/g", vec![], WriteOptions::default()).await),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(e.write_bytes(&id, "d", vec![], WriteOptions::default()).await),
        ErrorKind::IsADirectory
    );
    assert_eq!(kind(e.read(&id, "d", 0, None, None).await), ErrorKind::IsADirectory);
    assert_eq!(kind(e.read(&id, "missing", 0, None, None).await), ErrorKind::NotFound);
    assert_eq!(kind(e.mkdir(&id, "d", false).await), ErrorKind::AlreadyExists);
    assert_eq!(kind(e.mkdir(&id, "x/y", false).await), ErrorKind::NotFound);
    assert_eq!(kind(e.delete(&id, "d", false).await), ErrorKind::NotEmpty);
    assert_eq!(kind(e.rmdir(&id, "d/f").await), ErrorKind::NotADirectory);
    assert_eq!(kind(e.list(&id, "d/f", false, None).await), ErrorKind::NotADirectory);
    assert_eq!(kind(e.delete(&id, "", true).await), ErrorKind::InvalidArgument);
    assert_eq!(kind(e.rename(&id, "d", "d/sub").await), ErrorKind::InvalidArgument);
    assert_eq!(kind(e.symlink(&id, "d/f", "x").await), ErrorKind::AlreadyExists);
    assert_eq!(kind(e.readlink(&id, "d/f", None).await), ErrorKind::InvalidArgument);
    assert_eq!(kind(e.chmod(&id, "d/f", 0o100000).await), ErrorKind::InvalidArgument);
    assert_eq!(get(&e, &id, "d/f").await, b"1", "failed operations changed nothing");
}

#[tokio::test]
async fn delete_rename_mkdir_symlink_chmod() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a/b/c.txt", b"c").await;
    put(&e, &id, "a/top.txt", b"t").await;
    e.mkdir(&id, "a/empty", false).await.unwrap();
    e.mkdir(&id, "p/q/r", true).await.unwrap();
    e.mkdir(&id, "p/q/r", true)
        .await
        .expect("mkdir -p of an existing directory is fine");

    // Directory rename carries files, subdirectories and empty directories.
    e.rename(&id, "a", "z").await.unwrap();
    assert_eq!(e.stat(&id, "a", None).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(get(&e, &id, "z/b/c.txt").await, b"c");
    assert_eq!(e.stat(&id, "z/empty", None).await.unwrap().kind, FileKind::Dir);

    // File rename replaces an existing file.
    e.rename(&id, "z/top.txt", "z/b/c.txt").await.unwrap();
    assert_eq!(get(&e, &id, "z/b/c.txt").await, b"t");
    assert_eq!(
        e.stat(&id, "z/top.txt", None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    e.symlink(&id, "link", "z/b/c.txt").await.unwrap();
    assert_eq!(e.readlink(&id, "link", None).await.unwrap(), "z/b/c.txt");
    assert_eq!(e.stat(&id, "link", None).await.unwrap().kind, FileKind::Symlink);

    e.chmod(&id, "z/b/c.txt", 0o755).await.unwrap();
    assert_eq!(e.stat(&id, "z/b/c.txt", None).await.unwrap().mode, 0o755);

    e.delete(&id, "z", true).await.unwrap();
    e.rmdir(&id, "p/q/r").await.unwrap();
    let all: Vec<_> = e
        .list(&id, "", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect();
    assert_eq!(all, ["link", "p", "p/q"]);
}

#[tokio::test]
async fn random_writes_and_truncate() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "f", b"hello world").await;
    e.write_at(&id, "f", 6, b"WORLD".to_vec()).await.unwrap();
    assert_eq!(get(&e, &id, "f").await, b"hello WORLD");
    e.write_at(&id, "f", 13, b"!".to_vec()).await.unwrap();
    assert_eq!(get(&e, &id, "f").await, b"hello WORLD\0\0!");
    e.truncate(&id, "f", 5).await.unwrap();
    assert_eq!(get(&e, &id, "f").await, b"hello");
    e.truncate(&id, "f", 7).await.unwrap();
    assert_eq!(get(&e, &id, "f").await, b"hello\0\0");
    assert_eq!(
        e.write_at(&id, "nope", 0, b"x".to_vec()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn mtimes_and_empty_dirs_survive_checkpoints_and_reopen() {
    let t = engine().await;
    let id = empty_session(&t).await;
    put(&t, &id, "f", b"x").await;
    t.mkdir(&id, "empty", false).await.unwrap();
    t.chmod(&id, "f", 0o600).await.unwrap();
    let before = t.stat(&id, "f", None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    t.checkpoint(&id, None).await.unwrap();
    let after = t.stat(&id, "f", None).await.unwrap();
    assert_eq!((after.mtime_ns, after.mode), (before.mtime_ns, 0o600));
    assert_eq!(t.stat(&id, "empty", None).await.unwrap().kind, FileKind::Dir);

    let cfg = config(t.dir.path());
    drop(t.engine);
    let reopened = aether_core::Engine::open(cfg).await.unwrap();
    let again = reopened.stat(&id, "f", None).await.unwrap();
    assert_eq!((again.mtime_ns, again.mode), (before.mtime_ns, 0o600));
    assert_eq!(reopened.stat(&id, "empty", None).await.unwrap().kind, FileKind::Dir);
}

#[tokio::test]
async fn streamed_write_of_unknown_length() {
    let e = small_chunk_engine().await;
    let id = empty_session(&e).await;
    let data = noise(7, 50_000);
    let (mut tx, rx) = tokio::io::duplex(1024);
    let feed = data.clone();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        tx.write_all(&feed).await.unwrap();
    });
    let st = e.write_file(&id, "s", rx, WriteOptions::default()).await.unwrap();
    writer.await.unwrap();
    assert!(st.chunked);
    assert_eq!(get(&e, &id, "s").await, data);
    let expected = gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, &data).unwrap();
    assert_eq!(st.oid.unwrap(), expected.to_hex().to_string());
}

#[tokio::test]
async fn size_limits_are_enforced() {
    let e = engine_with(|c| c.limits.max_file_size = 100).await;
    let id = empty_session(&e).await;
    let err = e
        .write_bytes(&id, "big", vec![0; 101], WriteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(e.stat(&id, "big", None).await.unwrap_err().kind(), ErrorKind::NotFound);
    let err = e
        .write_file(&id, "big", std::io::Cursor::new(vec![0; 101]), WriteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "unknown-length stream over the limit");
    let lying = WriteOptions {
        size: Some(10),
        ..Default::default()
    };
    let err = e
        .write_file(&id, "short", std::io::Cursor::new(vec![0; 5]), lying)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidArgument,
        "declared size differs from the body"
    );
}

#[tokio::test]
async fn list_dirs_lists_depth_first_within_a_budget_at_one_revision() {
    let e = engine().await;
    let id = empty_session(&e).await;
    for p in ["a/1", "a/2", "a/x/deep/f", "b/1", "c/1", "top"] {
        put(&e, &id, p, b"x").await;
    }
    let paths = |listed: &[(aether_core::SessionPath, Vec<aether_core::DirEntry>)]| -> Vec<String> {
        listed.iter().map(|(p, _)| p.as_str().to_owned()).collect()
    };
    let all = e.list_dirs(&id, "/", 100, None).await.unwrap().dirs;
    assert_eq!(paths(&all), ["", "a", "a/x", "a/x/deep", "b", "c"]);
    let names: Vec<&str> = all[1].1.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["1", "2", "x"], "each listing is the directory's whole listing");
    // 4 (root) + 3 (a) + 1 (a/x) = 8; a/x/deep's entry would make 9.
    assert_eq!(
        paths(&e.list_dirs(&id, "", 8, None).await.unwrap().dirs),
        ["", "a", "a/x"]
    );
    // The first listing comes whole even over the budget.
    let first = e.list_dirs(&id, "", 0, None).await.unwrap().dirs;
    assert_eq!((paths(&first), first[0].1.len()), (vec![String::new()], 4));

    // At a checkpoint: the listings of that state, whatever changed since.
    let cp = e.checkpoint(&id, None).await.unwrap();
    e.delete(&id, "a", true).await.unwrap();
    put(&e, &id, "d/new", b"y").await;
    let at = format!("checkpoints/{}", cp.checkpoint.number);
    let then = e.list_dirs(&id, "", 100, Some(&at)).await.unwrap().dirs;
    assert_eq!(paths(&then), ["", "a", "a/x", "a/x/deep", "b", "c"]);
    let now = e.list_dirs(&id, "", 100, None).await.unwrap().dirs;
    assert_eq!(paths(&now), ["", "b", "c", "d"]);

    assert_eq!(
        e.list_dirs(&id, "top", 10, None).await.unwrap_err().kind(),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        e.list_dirs(&id, "nope", 10, None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn read_contents_gives_each_blob_whole_and_refuses_a_size_that_is_not_the_blobs() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let big = vec![7u8; 3 << 20]; // chunked in the chunk store
    put(&e, &id, "small", b"hello\n").await;
    put(&e, &id, "big", &big).await;
    let oid = |p: &'static str| {
        let e = &e;
        let id = &id;
        async move {
            let s = e.stat(id, p, None).await.unwrap();
            aether_core::ObjectId::from_hex(s.oid.unwrap().as_bytes()).unwrap()
        }
    };
    let (small, large) = (oid("small").await, oid("big").await);
    let got = e
        .read_contents(vec![(small, 6), (large, big.len() as u64)])
        .await
        .unwrap();
    assert_eq!(got[0], (small, b"hello\n".to_vec()));
    assert!(got[1].0 == large && got[1].1 == big);
    // A size other than the blob's (a listing that does not describe it) is refused, never
    // served short or long.
    for (oid, size) in [
        (small, 5),
        (small, 7),
        (large, big.len() as u64 - 1),
        (large, big.len() as u64 + 1),
    ] {
        assert!(
            e.read_contents(vec![(oid, size)]).await.is_err(),
            "{oid} as {size} bytes"
        );
    }
}
