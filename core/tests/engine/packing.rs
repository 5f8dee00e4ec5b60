//! Packing the object database: loose objects move into packs and small packs merge, with every
//! state still reading back byte for byte; a collection rewrites packs without what nothing
//! reaches, keeping the deltas of what stays; an object a write found in a pack stays through a
//! collection's grace period.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aether_core::{Engine, GcOptions, ObjectId, SessionId, SessionSource};

use crate::common::*;
use crate::gc::fsck;

fn objects_dir(e: &Engine) -> PathBuf {
    e.objects().odb.git_dir().join("objects")
}

/// Loose object files in the object database.
fn loose_count(e: &Engine) -> usize {
    std::fs::read_dir(objects_dir(e))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().len() == 2)
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum()
}

/// The pack indexes in the object database.
fn pack_indexes(e: &Engine) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(objects_dir(e).join("pack"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "idx"));
    v.sort();
    v
}

/// Make every pack look `age` old.
fn age_packs(e: &Engine, age: Duration) {
    for idx in pack_indexes(e) {
        let f = std::fs::File::open(idx.with_extension("pack")).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }
}

/// Run git on the engine's object database.
fn odb_git(e: &Engine, args: &[&str]) -> String {
    git(e.objects().odb.git_dir(), args)
}

async fn fork(e: &Engine, id: &SessionId) -> SessionId {
    let src = SessionSource::Session {
        id: id.clone(),
        at: None,
    };
    e.create_session(src, Default::default()).await.unwrap().id
}

#[tokio::test]
async fn packing_moves_loose_objects_into_one_pack_and_every_state_reads_back() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let mut files = Vec::new();
    for i in 0..2000u64 {
        let f = (format!("d{}/f{i}.txt", i % 40), noise(i, 200 + (i as usize % 700)));
        put(&e, &id, &f.0, &f.1).await;
        files.push(f);
    }
    let cp = e.checkpoint(&id, None).await.unwrap().checkpoint.commit.to_string();
    let f = fork(&e, &id).await;
    put(&e, &f, "fork.txt", b"the fork's own").await;
    let loose = loose_count(&e);
    assert!(loose >= 2000, "{loose} loose objects");

    // Fewer loose objects than asked for: nothing happens.
    let none = e.pack_objects(100_000_000).await.unwrap();
    assert_eq!(none.packs_written, 0, "{none:?}");
    assert_eq!(loose_count(&e), loose);

    let r = e.pack_objects(0).await.unwrap();
    assert_eq!(r.packs_written, 1, "{r:?}");
    assert_eq!(r.loose_objects_packed, loose as u64, "{r:?}");
    assert_eq!(loose_count(&e), 0, "every loose object is packed");
    assert_eq!(pack_indexes(&e).len(), 1);

    // More writes, packed again: the small pack merges into the new one.
    for i in 0..300u64 {
        put(&e, &f, &format!("more/{i}"), &noise(10_000 + i, 300)).await;
    }
    // A write of content already packed finds it there.
    put(&e, &f, "again.txt", &files[7].1).await;
    let r2 = e.pack_objects(0).await.unwrap();
    assert_eq!((r2.packs_written, r2.packs_removed), (1, 1), "{r2:?}");
    assert_eq!(pack_indexes(&e).len(), 1, "one pack, not one per pass");
    assert_eq!(loose_count(&e), 0);

    // Many passes in one process: gix's store has a fixed number of index slots, which packs
    // removed must give back.
    for round in 0..80u64 {
        put(&e, &f, &format!("round/{round}"), &noise(20_000 + round, 100)).await;
        let r = e.pack_objects(0).await.unwrap();
        assert_eq!((r.packs_written, r.packs_removed), (1, 1), "round {round}: {r:?}");
        assert!(get(&e, &id, &files[round as usize].0).await == files[round as usize].1);
    }
    assert_eq!(pack_indexes(&e).len(), 1);

    let check = |e: Engine| {
        let (files, id, f, cp) = (files.clone(), id.clone(), f.clone(), cp.clone());
        async move {
            for (p, d) in &files {
                assert!(get(&e, &id, p).await == *d, "{p}");
                assert!(get(&e, &f, p).await == *d, "fork {p}");
                assert!(e.read(&id, p, 0, None, Some(&cp)).await.unwrap() == *d, "{p} at {cp}");
            }
            assert_eq!(get(&e, &f, "fork.txt").await, b"the fork's own");
            assert!(get(&e, &f, "again.txt").await == files[7].1);
            for i in 0..300u64 {
                assert!(get(&e, &f, &format!("more/{i}")).await == noise(10_000 + i, 300));
            }
        }
    };
    check(e.engine.clone()).await;
    fsck(&e);
    // git itself checks the pack against its index.
    let idx = pack_indexes(&e).remove(0);
    odb_git(&e, &["verify-pack", idx.to_str().unwrap()]);
    let dir = e.dir.path().to_path_buf();
    drop(e.engine);
    check(Engine::open(config(&dir)).await.unwrap()).await;
}

/// A git repository with history whose pack holds deltas: `keep` and `doomed` branches share
/// a base; each commit rewrites a few lines of a large text file.
fn repository_with_deltas(dir: &Path) -> (String, String) {
    git(dir, &["init", "-q", "-b", "keep", "."]);
    let mut lines: Vec<String> = (0..3000).map(|i| format!("line {i} {:x}", i * 7919)).collect();
    let commit = |lines: &[String], n: usize| {
        std::fs::write(dir.join("big.txt"), lines.join("\n")).unwrap();
        std::fs::write(dir.join(format!("small{n}.txt")), format!("small file {n}\n")).unwrap();
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", &format!("c{n}")]);
    };
    for n in 0..15 {
        lines[n * 100] = format!("kept change {n}");
        commit(&lines, n);
    }
    git(dir, &["checkout", "-q", "-b", "doomed"]);
    for n in 15..30 {
        lines[n * 90 + 1] = format!("doomed change {n} {}", "x".repeat(n));
        commit(&lines, n);
    }
    git(dir, &["repack", "-adf", "-q", "--depth=50", "--window=50"]);
    (git(dir, &["rev-parse", "keep"]), git(dir, &["rev-parse", "doomed"]))
}

/// Objects of `verify-pack -v` that are stored as deltas, with their bases.
fn deltas(e: &Engine, idx: &Path) -> Vec<(String, String)> {
    odb_git(e, &["verify-pack", "-v", idx.to_str().unwrap()])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 7)
        .map(|w| (w[0].to_owned(), w[6].to_owned()))
        .collect()
}

#[tokio::test]
async fn a_collection_rewrites_packs_without_their_garbage_and_keeps_their_deltas() {
    let e = engine().await;
    let src = tempfile::tempdir().unwrap();
    let (keep, doomed) = repository_with_deltas(src.path());
    let only_doomed: Vec<String> = git(src.path(), &["rev-list", "--objects", "doomed", "--not", "keep"])
        .lines()
        .map(|l| l[..40].to_owned())
        .collect();
    let kept: Vec<String> = git(src.path(), &["rev-list", "--objects", "keep"])
        .lines()
        .map(|l| l[..40].to_owned())
        .collect();
    assert!(only_doomed.len() >= 45 && kept.len() >= 45);
    // The repository's pack into the object database, as an import moves it; only `keep` is
    // referenced.
    let pack_dir = objects_dir(&e).join("pack");
    std::fs::create_dir_all(&pack_dir).unwrap();
    for f in std::fs::read_dir(src.path().join(".git/objects/pack"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(f.path(), pack_dir.join(f.file_name())).unwrap();
    }
    let old_idx = pack_indexes(&e).remove(0);
    let old_deltas = deltas(&e, &old_idx);
    assert!(old_deltas.len() > 20, "git made deltas: {old_deltas:?}");
    // Deltas of kept objects against kept bases stay deltas (the others are written whole).
    let staying = old_deltas
        .iter()
        .filter(|(oid, base)| !only_doomed.contains(oid) && !only_doomed.contains(base))
        .count();
    assert!(staying >= 5, "{old_deltas:?}");
    e.objects()
        .odb
        .set_ref("refs/heads/keep", ObjectId::from_hex(keep.as_bytes()).unwrap(), "test")
        .unwrap();
    // A session too, whose loose objects get packed with the rest.
    let id = empty_session(&e).await;
    put(&e, &id, "a.txt", b"a session's file").await;

    // Within the grace period, nothing packed is garbage.
    let young = e.collect_garbage(GcOptions::default()).await.unwrap();
    assert_eq!(young.packed_objects_removed, 0, "{young:?}");
    age_packs(&e, Duration::from_secs(7200));

    let grace = GcOptions {
        grace: Duration::from_secs(3600),
        ..Default::default()
    };
    let dry = e
        .collect_garbage(GcOptions {
            dry_run: true,
            ..grace.clone()
        })
        .await
        .unwrap();
    assert_eq!(dry.packed_objects_removed, only_doomed.len() as u64, "{dry:?}");
    assert!(
        odb_git(&e, &["cat-file", "-t", &doomed]) == "commit",
        "a dry run removes nothing"
    );

    let r = e.collect_garbage(grace).await.unwrap();
    assert_eq!(r.packed_objects_removed, only_doomed.len() as u64, "{r:?}");
    assert!(r.packed_bytes_removed > 0 && r.packs_written == 1, "{r:?}");
    let new_idx = pack_indexes(&e);
    assert_eq!(new_idx.len(), 1, "{new_idx:?}");
    assert_ne!(new_idx[0], old_idx);
    // What stays is whole, still as deltas; what nothing reached is gone.
    let batch = |ids: &[String]| {
        let mut child = std::process::Command::new("git")
            .args(["cat-file", "--batch-check"])
            .current_dir(e.objects().odb.git_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ids.join("\n").as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let present = batch(&kept);
    assert!(!present.contains("missing"), "{present}");
    let gone = batch(&only_doomed);
    assert_eq!(
        gone.lines().filter(|l| l.ends_with(" missing")).count(),
        only_doomed.len(),
        "{gone}"
    );
    let new_deltas = deltas(&e, &new_idx[0]);
    assert_eq!(new_deltas.len(), staying, "{new_deltas:?}");
    // Its size is not compared: a kept object whose delta base was garbage is written whole
    // (no new deltas are computed), which can outweigh what was dropped.
    assert_eq!(get(&e, &id, "a.txt").await, b"a session's file");
    assert_eq!(loose_count(&e), 0);
    fsck(&e);
}

#[tokio::test]
async fn an_object_a_write_finds_in_a_pack_stays_through_the_grace_period() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let content = noise(42, 5000);
    put(&e, &id, "x", &content).await;
    // Its root tree is written too, then everything is packed and becomes garbage.
    e.checkpoint(&id, None).await.unwrap();
    e.pack_objects(0).await.unwrap();
    e.delete_session(&id).await.unwrap();
    let odb = &e.objects().odb;
    let oid = ObjectId::from_hex(
        gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, &content)
            .unwrap()
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let edit = aether_core::odb::TreeEdit::Upsert {
        path: "x".into(),
        kind: gix::objs::tree::EntryKind::Blob,
        oid,
    };
    let grace = GcOptions {
        grace: Duration::from_secs(3600),
        ..Default::default()
    };
    // Garbage in an old pack; then a write (as an import's, which references what it wrote
    // only when it ends) finds the tree there: the tree and the blob it names stay.
    age_packs(&e, Duration::from_secs(7200));
    let tree = odb.edit_tree(odb.empty_tree(), std::slice::from_ref(&edit)).unwrap();
    let r = e.collect_garbage(grace.clone()).await.unwrap();
    assert_eq!(r.packed_objects_removed, 0, "the pack was freshened: {r:?}");
    assert!(odb.contains(&tree) && odb.contains(&oid));
    // The same when a write finds the blob.
    age_packs(&e, Duration::from_secs(7200));
    assert_eq!(odb.write_blob(&content).unwrap(), oid);
    let r = e.collect_garbage(grace.clone()).await.unwrap();
    assert_eq!(r.packed_objects_removed, 0, "the pack was freshened: {r:?}");
    assert!(odb.read_blob(&oid).unwrap() == content);

    // Old again and found by nothing: collected.
    age_packs(&e, Duration::from_secs(7200));
    let r = e.collect_garbage(grace).await.unwrap();
    assert!(r.packed_objects_removed >= 2, "{r:?}");
    assert!(!odb.contains(&oid), "collected");
    assert!(!odb.contains(&tree), "collected");
    // Written again afterwards, it is stored anew (the removed pack is forgotten).
    assert_eq!(odb.write_blob(&content).unwrap(), oid);
    assert!(odb.read_blob(&oid).unwrap() == content);
    fsck(&e);
}

#[tokio::test]
async fn a_collection_removes_what_an_interrupted_pass_left() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a", b"kept").await;
    let pack_dir = objects_dir(&e).join("pack");
    std::fs::create_dir_all(&pack_dir).unwrap();
    let old = SystemTime::now() - Duration::from_secs(7200);
    let leftover = |name: &str, modified: SystemTime| {
        let path = pack_dir.join(name);
        std::fs::write(&path, b"half a pack").unwrap();
        std::fs::File::open(&path).unwrap().set_modified(modified).unwrap();
        path
    };
    let temp = leftover("tmp_aether_pack_1_0", SystemTime::now());
    let orphan = leftover("pack-0000000000000000000000000000000000000000.pack", old);
    // One without its index yet, as a git import moves it in: young, so it stays.
    let arriving = leftover("pack-1111111111111111111111111111111111111111.pack", SystemTime::now());
    e.collect_garbage(GcOptions {
        grace: Duration::ZERO,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(!temp.exists() && !orphan.exists());
    assert!(arriving.exists());
    assert_eq!(get(&e, &id, "a").await, b"kept");
}
