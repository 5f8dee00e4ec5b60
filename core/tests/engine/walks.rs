//! Walks over trees (recursive listings, commit diffs) are iterative and bounded: a tree
//! thousands of levels deep or a small repository describing millions of entries gives an
//! answer or a clear `too_large` error, never a stack overflow or unbounded memory; a listing
//! reads one state of the session without holding it.

use aether_core::ErrorKind;
use gix::ObjectId;

use crate::common::*;

/// A chain of `depth` directories named `d`, a file `f` at the bottom; the top tree's id.
fn deep_tree(repo: &gix::Repository, depth: usize) -> ObjectId {
    let blob = raw_blob(repo, b"bottom\n");
    let mut tree = raw_tree(repo, &[("100644", b"f", blob)]);
    for _ in 0..depth {
        tree = raw_tree(repo, &[("40000", b"d", tree)]);
    }
    tree
}

/// `fanout` directories per level, `levels` deep, `fanout` files at the bottom: fanout^(levels+1)
/// files described by `levels + 1` trees.
fn wide_tree(repo: &gix::Repository, fanout: usize, levels: usize) -> ObjectId {
    let blob = raw_blob(repo, b"x");
    let names: Vec<String> = (0..fanout).map(|i| format!("n{i:02}")).collect();
    let files: Vec<(&str, &[u8], ObjectId)> = names.iter().map(|n| ("100644", n.as_bytes(), blob)).collect();
    let mut tree = raw_tree(repo, &files);
    for _ in 0..levels {
        let dirs: Vec<(&str, &[u8], ObjectId)> = names.iter().map(|n| ("40000", n.as_bytes(), tree)).collect();
        tree = raw_tree(repo, &dirs);
    }
    tree
}

fn too_large<T>(r: Result<T, aether_core::Error>, what: &str) -> String {
    let Err(err) = r else {
        panic!("{what} must be refused as too large, it answered");
    };
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{what}: {err}");
    err.to_string()
}

#[tokio::test]
async fn a_tree_ten_thousand_levels_deep_gives_an_error_or_an_answer_never_a_crash() {
    let e = engine().await;
    let repo = raw_odb(&e);
    let id = session_at_tree(&e, deep_tree(&repo, 10_000)).await;
    let msg = too_large(e.list(&id, "", true, None).await, "the recursive listing");
    assert!(msg.contains("depth") && msg.contains("2048"), "{msg}");
    too_large(e.commit_changes(&id, "HEAD").await, "the commit's changes");
    // A mount's batched listing stops at the limit instead of walking on.
    let dirs = e.list_dirs(&id, "", 50_000, None).await.unwrap().dirs;
    assert_eq!(dirs.len(), 2048, "listings down to the depth limit");

    // With limits that allow it, the same walks answer (iteratively).
    let e2 = engine_with(|c| {
        c.limits.max_tree_depth = 20_000;
        c.limits.path.max_path_len = 40_000;
    })
    .await;
    let repo = raw_odb(&e2);
    let id = session_at_tree(&e2, deep_tree(&repo, 10_000)).await;
    // Counted batch by batch: the paths alone would be 100 MB.
    let (mut walk, mut count, mut longest) = (e2.walk(&id, "", true, None).await.unwrap(), 0, 0);
    loop {
        let (w, batch) = walk.next_batch(500).await.unwrap();
        if batch.is_empty() {
            break;
        }
        count += batch.len();
        longest = batch.iter().map(|d| d.stat.path.len()).max().unwrap_or(0).max(longest);
        walk = w;
    }
    assert_eq!((count, longest), (10_001, 10_000 * 2 + 1));
    let changes = e2.commit_changes(&id, "HEAD").await.unwrap();
    assert_eq!(changes.len(), 1);
    assert!(changes[0].path.ends_with("d/d/f"));
}

#[tokio::test]
async fn a_small_repository_describing_a_vast_tree_is_refused_as_too_large() {
    let e = engine_with(|c| c.limits.max_walk_entries = 50_000).await;
    let repo = raw_odb(&e);
    // 16^5 = 1,048,576 files from six tree objects.
    let id = session_at_tree(&e, wide_tree(&repo, 16, 4)).await;
    let msg = too_large(e.list(&id, "", true, None).await, "the recursive listing");
    assert!(msg.contains("50000"), "{msg}");
    too_large(e.commit_changes(&id, "HEAD").await, "the commit's changes");
    // The walk produced batches up to the limit, then the error.
    let mut walk = e.walk(&id, "", true, None).await.unwrap();
    let mut seen = 0;
    let err = loop {
        match walk.next_batch(1000).await {
            Ok((w, batch)) => {
                assert!(!batch.is_empty(), "the walk ended before the limit");
                assert!(batch.len() <= 1000);
                seen += batch.len();
                walk = w;
            }
            Err(err) => break err,
        }
    };
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(seen, 50_000);
    // A directory listing of one level still answers.
    assert_eq!(e.list(&id, "n00/n01", false, None).await.unwrap().len(), 16);
}

#[tokio::test]
async fn a_walk_reads_one_state_and_does_not_hold_the_session() {
    let e = engine().await;
    let id = empty_session(&e).await;
    for i in 0..50 {
        put(&e, &id, &format!("d{i:02}/f"), b"1").await;
    }
    let walk = e.walk(&id, "", true, None).await.unwrap();
    let (walk, first) = walk.next_batch(10).await.unwrap();
    assert_eq!(first.len(), 10);
    // Writes go on while the walk is open (it holds no lock), and it does not see them.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        put(&e, &id, "d49/new", b"2").await;
        e.delete(&id, "d48", true).await.unwrap();
    })
    .await
    .expect("writes are not blocked by an open walk");
    let mut all: Vec<String> = first.into_iter().map(|d| d.stat.path).collect();
    let mut walk = walk;
    loop {
        let (w, batch) = walk.next_batch(7).await.unwrap();
        if batch.is_empty() {
            break;
        }
        all.extend(batch.into_iter().map(|d| d.stat.path));
        walk = w;
    }
    // The state when the walk began, parents first: the root's entries, then each listing.
    let expected: Vec<String> = (0..50)
        .map(|i| format!("d{i:02}"))
        .chain((0..50).map(|i| format!("d{i:02}/f")))
        .collect();
    assert_eq!(all, expected);
    // The live state has the writes.
    let live: Vec<String> = e
        .list(&id, "", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect();
    assert!(live.contains(&"d49/new".to_owned()) && !live.contains(&"d48".to_owned()));
}

#[tokio::test]
async fn nested_listing_order_is_parents_first_then_each_subdirectory() {
    let e = engine().await;
    let id = empty_session(&e).await;
    for p in ["a/x/1", "a/y", "b/z/2", "c"] {
        put(&e, &id, p, b"1").await;
    }
    let all: Vec<String> = e
        .list(&id, "", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect();
    assert_eq!(all, ["a", "b", "c", "a/x", "a/y", "a/x/1", "b/z", "b/z/2"]);
    let sub: Vec<String> = e
        .list(&id, "a", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect();
    assert_eq!(sub, ["a/x", "a/y", "a/x/1"]);
    assert_eq!(
        e.walk(&id, "c", true, None)
            .await
            .unwrap()
            .next_batch(10)
            .await
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::NotADirectory)
    );
}

#[tokio::test]
async fn missing_parents_thousands_deep_are_created_in_order() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let deep = vec!["p"; 2000].join("/");
    put(&e, &id, &format!("{deep}/f"), b"deep").await;
    assert_eq!(get(&e, &id, &format!("{deep}/f")).await, b"deep");
    let listed = e.list(&id, "", true, None).await.unwrap();
    assert_eq!(listed.len(), 2001);
    e.checkpoint(&id, None).await.unwrap();
    assert_eq!(e.list(&id, "", true, None).await.unwrap().len(), 2001);
}

#[tokio::test]
async fn commit_changes_keep_their_order_when_files_and_directories_swap() {
    let e = engine().await;
    let id = empty_session(&e).await;
    for p in ["x", "y/a", "z/k", "z/deep/1"] {
        put(&e, &id, p, b"1").await;
    }
    e.commit(&id, "one".into(), None, None).await.unwrap();
    e.delete(&id, "x", false).await.unwrap();
    put(&e, &id, "x/b", b"2").await;
    e.delete(&id, "y", true).await.unwrap();
    put(&e, &id, "y", b"3").await;
    put(&e, &id, "z/k", b"4").await;
    e.delete(&id, "z/deep", true).await.unwrap();
    let c = e.commit(&id, "two".into(), None, None).await.unwrap();
    let changes: Vec<_> = e
        .commit_changes(&id, &c.id.to_hex().to_string())
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.change))
        .collect();
    use aether_core::diff::ChangeKind::*;
    // What is below a name first, then the name itself (as the recursive walk had it).
    assert_eq!(
        changes,
        [
            ("x/b".to_string(), Added),
            ("x".to_string(), Deleted),
            ("y/a".to_string(), Deleted),
            ("y".to_string(), Added),
            ("z/deep/1".to_string(), Deleted),
            ("z/k".to_string(), Modified),
        ]
    );
}

/// All the pages of a commit's changes, `limit` at a time, following each page's cursor; every
/// page but the last is full.
async fn changes_in_pages(
    e: &aether_core::Engine,
    id: &aether_core::SessionId,
    rev: &str,
    limit: usize,
) -> Vec<aether_core::diff::Change> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = e.commit_changes_page(id, rev, after.as_deref(), limit).await.unwrap();
        assert!(page.len() <= limit, "a page of {} for a limit of {limit}", page.len());
        let full = page.len() == limit;
        after = page.last().map(|c| c.path.clone());
        all.extend(page);
        if !full {
            return all;
        }
    }
}

#[tokio::test]
async fn a_diff_of_200k_changes_is_served_in_pages_each_change_exactly_once() {
    // Above the walk limit: only pages can serve it.
    let e = engine_with(|c| c.limits.max_walk_entries = 100_000).await;
    let repo = raw_odb(&e);
    // 22^4 = 234,256 files, all added by the session's root commit.
    let id = session_at_tree(&e, wide_tree(&repo, 22, 3)).await;
    too_large(e.commit_changes(&id, "HEAD").await, "the commit's changes");
    let head = e.log(&id, None, None, 1).await.unwrap()[0].id.to_hex().to_string();
    let limit = 1000;
    let mut after: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0;
    loop {
        let page = e
            .commit_changes_page(&id, &head, after.as_deref(), limit)
            .await
            .unwrap();
        pages += 1;
        assert!(page.len() <= limit);
        for c in &page {
            assert_eq!(c.change, aether_core::diff::ChangeKind::Added);
            assert!(seen.insert(c.path.clone()), "{} served twice", c.path);
        }
        if page.len() < limit {
            assert_eq!(page.len(), 234_256 % limit, "only the last page is short");
            break;
        }
        after = page.last().map(|c| c.path.clone());
    }
    assert_eq!(pages, 234_256 / limit + 1);
    let names: Vec<String> = (0..22).map(|i| format!("n{i:02}")).collect();
    let mut expected = 0;
    for a in &names {
        for b in &names {
            for c in &names {
                for d in &names {
                    assert!(seen.contains(&format!("{a}/{b}/{c}/{d}")), "{a}/{b}/{c}/{d} missing");
                    expected += 1;
                }
            }
        }
    }
    assert_eq!(seen.len(), expected);
}

#[tokio::test]
async fn pages_of_changes_concatenate_to_the_whole_diff_whatever_their_size() {
    let e = engine().await;
    let id = empty_session(&e).await;
    for p in ["x", "y/a", "z/k", "z/deep/1", "z/deep/2", "w/v/u", "w/v/t/s"] {
        put(&e, &id, p, b"1").await;
    }
    e.commit(&id, "one".into(), None, None).await.unwrap();
    e.delete(&id, "x", false).await.unwrap();
    put(&e, &id, "x/b", b"2").await;
    put(&e, &id, "x/a/c", b"2").await;
    e.delete(&id, "y", true).await.unwrap();
    put(&e, &id, "y", b"3").await;
    put(&e, &id, "z/k", b"4").await;
    e.delete(&id, "z/deep", true).await.unwrap();
    e.delete(&id, "w/v/t", true).await.unwrap();
    put(&e, &id, "w/v/t", b"5").await;
    put(&e, &id, "w/v/u", b"6").await;
    let c = e.commit(&id, "two".into(), None, None).await.unwrap();
    let rev = c.id.to_hex().to_string();
    let whole = e.commit_changes(&id, &rev).await.unwrap();
    assert_eq!(whole.len(), 11, "{whole:?}");
    for limit in 1..=whole.len() + 1 {
        assert_eq!(changes_in_pages(&e, &id, &rev, limit).await, whole, "pages of {limit}");
    }
    // A cursor that names no change still splits the order where that path would be.
    let after_w = e.commit_changes_page(&id, &rev, Some("w/v/zz"), 100).await.unwrap();
    assert_eq!(after_w, whole[whole.iter().position(|c| c.path == "x/a/c").unwrap()..]);
    let after_x = e.commit_changes_page(&id, &rev, Some("x/b/q"), 100).await.unwrap();
    assert_eq!(after_x[0].path, "x/b");
}

/// Collects a [`aether_core::DirsWalk`] piece by piece: (directory, entries) in order, whether
/// each directory got its last piece, and the largest piece.
async fn pieces(mut walk: aether_core::DirsWalk, max: usize) -> (Vec<(String, Vec<String>, bool)>, usize) {
    let (mut dirs, mut largest): (Vec<(String, Vec<String>, bool)>, usize) = (Vec::new(), 0);
    loop {
        let (w, piece) = walk.next_piece(max).await.unwrap();
        let Some(piece) = piece else { return (dirs, largest) };
        largest = largest.max(piece.entries.len());
        let names = piece.entries.into_iter().map(|d| d.name.as_str().to_owned());
        match dirs.last_mut() {
            Some((dir, entries, false)) if *dir == piece.path.as_str() => entries.extend(names),
            _ => dirs.push((piece.path.as_str().to_owned(), names.collect(), false)),
        }
        dirs.last_mut().unwrap().2 = piece.last;
        walk = w;
    }
}

#[tokio::test]
async fn a_mounts_batched_listing_comes_in_bounded_pieces_from_one_state() {
    let e = engine().await;
    let repo = raw_odb(&e);
    // The root: 5,000 files and three directories (4 entries, 16, then 5,000 below them).
    let blob = raw_blob(&repo, b"x");
    let names: Vec<String> = (0..5000).map(|i| format!("f{i:04}")).collect();
    let wide: Vec<(&str, &[u8], ObjectId)> = names.iter().map(|n| ("100644", n.as_bytes(), blob)).collect();
    let wide_tree = raw_tree(&repo, &wide);
    let four = raw_tree(&repo, &wide[..4]);
    let sixteen = raw_tree(&repo, &wide[..16]);
    let mut root = wide.clone();
    root.extend([
        ("40000", &b"a"[..], four),
        ("40000", b"b", sixteen),
        ("40000", b"c", wide_tree),
    ]);
    root.sort_by(|x, y| x.1.cmp(y.1));
    let id = session_at_tree(&e, raw_tree(&repo, &root)).await;

    // Everything fits: the root in pieces of at most 700, then a, b and c (itself in pieces).
    let walk = e.walk_dirs(&id, "", 20_000, None).await.unwrap();
    assert!(walk.seq().is_some(), "a live walk has a version");
    let (dirs, largest) = pieces(walk, 700).await;
    assert!(largest <= 700, "a piece of {largest} entries");
    let shown: Vec<(&str, usize, bool)> = dirs.iter().map(|(d, n, l)| (d.as_str(), n.len(), *l)).collect();
    assert_eq!(
        shown,
        [("", 5003, true), ("a", 4, true), ("b", 16, true), ("c", 5000, true)]
    );
    assert_eq!(dirs[3].1, names, "c's entries in name order, none twice");

    // The budget: the root alone is past it, so nothing below is listed, yet the root is whole.
    let (dirs, _) = pieces(e.walk_dirs(&id, "", 1000, None).await.unwrap(), 700).await;
    let shown: Vec<(&str, usize, bool)> = dirs.iter().map(|(d, n, l)| (d.as_str(), n.len(), *l)).collect();
    assert_eq!(shown, [("", 5003, true)]);
    // Room for a and b (5,023 in all) but not c: the walk stops before it.
    let (dirs, _) = pieces(e.walk_dirs(&id, "", 5100, None).await.unwrap(), 700).await;
    let shown: Vec<(&str, usize, bool)> = dirs.iter().map(|(d, n, l)| (d.as_str(), n.len(), *l)).collect();
    assert_eq!(shown, [("", 5003, true), ("a", 4, true), ("b", 16, true)]);

    // A walk reads the state it was opened on: writes meanwhile are not in it.
    let walk = e.walk_dirs(&id, "c", 0, None).await.unwrap();
    let before = walk.seq().unwrap();
    put(&e, &id, "c/zzz", b"new").await;
    e.delete(&id, "c/f0000", false).await.unwrap();
    let (dirs, _) = pieces(walk, 1000).await;
    assert_eq!(dirs.len(), 1);
    assert_eq!(dirs[0].1, names);
    let after = e.walk_dirs(&id, "c", 0, None).await.unwrap();
    assert!(after.seq().unwrap() > before);
    let (dirs, _) = pieces(after, 1000).await;
    assert_eq!(dirs[0].1.len(), 5000);
    assert_eq!(dirs[0].1.last().map(String::as_str), Some("zzz"));

    // An empty directory is one empty last piece; errors about the path come with the first.
    put(&e, &id, "empty/x", b"").await;
    e.delete(&id, "empty/x", false).await.unwrap();
    let (dirs, _) = pieces(e.walk_dirs(&id, "empty", 10, None).await.unwrap(), 10).await;
    assert_eq!(dirs, [("empty".to_owned(), Vec::<String>::new(), true)]);
    for (path, kind) in [("nope", ErrorKind::NotFound), ("c/f0001", ErrorKind::NotADirectory)] {
        let walk = e.walk_dirs(&id, path, 10, None).await.unwrap();
        let Err(err) = walk.next_piece(10).await else {
            panic!("{path} listed");
        };
        assert_eq!(err.kind(), kind, "{path}: {err}");
    }
}
