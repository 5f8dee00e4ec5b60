//! Whole-tree requests hold memory bounded by configuration, not by the tree's size (issue 34):
//! a walk, an export or a paged diff over a 200,000-entry directory holds the directory's tree
//! (once, in the tree cache) and no node or change per entry, and the caches stop at their byte
//! caps.
//!
//! Peak memory is measured, not estimated: the test builds the session, then runs again in a
//! child process (this test binary, filtered to that one test) that opens the same data
//! directory, caches the tree, resets its peak RSS (`/proc/self/clear_refs`), runs the request
//! and prints its peak RSS above the RSS before. A child runs nothing else and never built the
//! fixture (whose freed buffers would hide growth), so what it prints is the request's.

use std::process::Command;

use aether_core::{Engine, SessionId};
use gix::ObjectId;

use crate::common::*;

/// Entries of the wide directory.
const WIDE: usize = 200_000;
/// Most the peak RSS of a walk or an export of it may rise above the RSS before it. A node per
/// entry (what a directory's listing used to build whole) is about 40 MiB here.
const BOUND_KIB: u64 = 12 << 10;

const CHILD: &str = "AETHER_BOUNDED_MEMORY_CHILD";

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse().ok()))
        })
        .unwrap_or(0)
}

/// Build the wide session, then run test `name` alone in a child process on it and return what
/// the child measured: its peak RSS above its RSS before the request, in KiB.
fn measured_in_child(name: &str) -> u64 {
    let rt = runtime();
    let TestEngine { engine, dir } = rt.block_on(engine());
    let id = rt.block_on(wide_session(&engine));
    drop(engine);
    drop(rt);
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .env(format!("{CHILD}_SESSION"), id.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {name} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("peak_above_kib=").map(|(_, v)| v))
        .and_then(|v| v.trim().parse().ok())
        .inspect(|kib| eprintln!("{name}: peak RSS rose {kib} KiB"))
        .unwrap_or_else(|| panic!("child {name} printed no measurement: {stdout}"))
}

/// In the child: reset the peak RSS, run `f`, print the peak above the RSS before.
fn measure(f: impl FnOnce()) {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS (Linux 4.0 or later)");
    let before = status_kib("VmRSS:");
    f();
    let peak = status_kib("VmHWM:");
    println!("peak_above_kib={}", peak.saturating_sub(before));
}

/// A session whose root holds [`WIDE`] files (one blob) and 3 directories.
async fn wide_session(e: &Engine) -> SessionId {
    let repo = raw_odb(e);
    let blob = raw_blob(&repo, b"x");
    let sub = raw_tree(&repo, &[("100644", b"inner", blob)]);
    let names: Vec<String> = (0..WIDE).map(|i| format!("f{i:07}")).collect();
    let mut entries: Vec<(&str, &[u8], ObjectId)> = names.iter().map(|n| ("100644", n.as_bytes(), blob)).collect();
    for d in ["g1", "g2", "g3"] {
        entries.push(("40000", d.as_bytes(), sub));
    }
    let tree = raw_tree(&repo, &entries);
    session_at_tree(e, tree).await
}

/// In the child: the engine on the parent's data directory and its wide session, the session's
/// tree and file sizes cached (what the tree cache holds is not what is measured).
async fn child_session() -> (Engine, SessionId) {
    let dir = std::env::var_os(CHILD).unwrap();
    let id: SessionId = std::env::var(format!("{CHILD}_SESSION")).unwrap().parse().unwrap();
    let e = Engine::open(config(std::path::Path::new(&dir))).await.unwrap();
    e.stat(&id, "f0000000", None).await.unwrap();
    (e, id)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_recursive_walk_of_a_wide_directory_holds_no_node_per_entry() {
    if std::env::var_os(CHILD).is_none() {
        let kib = measured_in_child("bounded_memory::a_recursive_walk_of_a_wide_directory_holds_no_node_per_entry");
        assert!(
            kib < BOUND_KIB,
            "the walk's peak RSS rose {kib} KiB (bound {BOUND_KIB} KiB)"
        );
        return;
    }
    let rt = runtime();
    let (e, id) = rt.block_on(child_session());
    let mut walk = rt.block_on(e.walk(&id, "", true, None)).unwrap();
    let mut seen = 0;
    measure(|| {
        loop {
            let batch = walk.next_blocking(256).unwrap();
            if batch.is_empty() {
                break;
            }
            seen += batch.len();
        }
    });
    assert_eq!(seen, WIDE + 3 + 3, "every entry, the subdirectories' too");
}

#[test]
fn an_export_of_a_wide_directory_holds_no_node_per_entry() {
    if std::env::var_os(CHILD).is_none() {
        let kib = measured_in_child("bounded_memory::an_export_of_a_wide_directory_holds_no_node_per_entry");
        assert!(
            kib < BOUND_KIB,
            "the export's peak RSS rose {kib} KiB (bound {BOUND_KIB} KiB)"
        );
        return;
    }
    let rt = runtime();
    let (e, id) = rt.block_on(child_session());
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = Counted(counted.clone());
    measure(|| rt.block_on(e.export_tar(&id, None, false, sink)).unwrap());
    // A header per entry at least.
    assert!(counted.load(std::sync::atomic::Ordering::Relaxed) > (WIDE as u64) * 512);
}

#[test]
fn a_diff_of_a_wide_directory_is_served_in_pages_holding_no_change_per_entry() {
    if std::env::var_os(CHILD).is_none() {
        let kib = measured_in_child(
            "bounded_memory::a_diff_of_a_wide_directory_is_served_in_pages_holding_no_change_per_entry",
        );
        assert!(
            kib < BOUND_KIB,
            "the paged diff's peak RSS rose {kib} KiB (bound {BOUND_KIB} KiB)"
        );
        return;
    }
    let rt = runtime();
    let (e, id) = rt.block_on(child_session());
    let limit = 1000;
    let (mut served, mut pages) = (0, 0);
    measure(|| {
        // Only the cursor is kept between pages: the changes are in path order, each after the
        // one before, so counting them and checking the order proves each came exactly once.
        let mut after: Option<String> = None;
        loop {
            let page = rt
                .block_on(e.commit_changes_page(&id, "HEAD", after.as_deref(), limit))
                .unwrap();
            pages += 1;
            assert!(page.len() <= limit);
            for c in &page {
                if let Some(prev) = &after {
                    assert!(c.path.as_str() > prev.as_str(), "{} after {prev}", c.path);
                }
                after = Some(c.path.clone());
            }
            served += page.len();
            if page.len() < limit {
                break;
            }
        }
    });
    // Every file of the root and one in each of the 3 directories, added by the root commit.
    assert_eq!(served, WIDE + 3);
    assert_eq!(pages, (WIDE + 3) / limit + 1);
}

/// Counts the bytes written, keeps none.
struct Counted(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_tree_cache_stops_at_its_byte_cap() {
    let cap = 256 << 10;
    let t = engine_with(|c| c.caches.tree_bytes = cap).await;
    let e = &t.engine;
    let repo = raw_odb(e);
    // 64 directories of 500 files each, every directory a distinct tree (about 30 KiB decoded).
    let mut dirs = Vec::new();
    let names: Vec<String> = (0..500).map(|i| format!("file{i:04}")).collect();
    for d in 0..64u32 {
        let blob = raw_blob(&repo, format!("{d}").as_bytes());
        let files: Vec<(&str, &[u8], ObjectId)> = names.iter().map(|n| ("100644", n.as_bytes(), blob)).collect();
        dirs.push((format!("d{d:02}"), raw_tree(&repo, &files)));
    }
    let root: Vec<(&str, &[u8], ObjectId)> = dirs.iter().map(|(n, t)| ("40000", n.as_bytes(), *t)).collect();
    let tree = raw_tree(&repo, &root);
    let id = session_at_tree(e, tree).await;
    let mut walk = e.walk(&id, "", true, None).await.unwrap();
    let mut seen = 0;
    loop {
        let (next, batch) = walk.next_batch(1000).await.unwrap();
        if batch.is_empty() {
            break;
        }
        seen += batch.len();
        walk = next;
        assert!(
            e.cache_usage().trees <= cap,
            "over the cap mid-walk: {:?}",
            e.cache_usage()
        );
    }
    assert_eq!(seen, 64 + 64 * 500);
    let usage = e.cache_usage();
    assert!(usage.trees > 0 && usage.trees <= cap, "{usage:?}");
    assert!(
        e.objects().cached_trees() < 65,
        "{} trees kept under a cap that holds fewer than 10",
        e.objects().cached_trees()
    );
}
