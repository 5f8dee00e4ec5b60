//! The mount's picture is versioned: a listing carries the version of the session state it
//! shows, events their numbers, and the mount applies what is newer than what it holds (see
//! `recent_events`). Against the in-memory server, through a real kernel mount.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::backend::{Backend, RemoteOp};
use super::events::{EventKind, RemoteEvent};
use super::memory_backend::MemoryBackend;
use super::tests::{Mounted, mount};

/// The root's names as the mount answers them (not the kernel's cache of them).
fn listed(m: &Mounted) -> Vec<String> {
    let mut v: Vec<String> =
        m.fs.readdir(super::tree::ROOT, 0)
            .unwrap()
            .into_iter()
            .map(|(_, _, n)| n.into_string().unwrap())
            .filter(|n| n != "." && n != "..")
            .collect();
    v.sort();
    v
}

fn names(m: &Mounted) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(m.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// The event another client's change makes, numbered as the server numbered it.
fn numbered(backend: &MemoryBackend, kind: EventKind, path: &str, detail: serde_json::Value) -> RemoteEvent {
    RemoteEvent {
        seq: backend.version(),
        ..RemoteEvent::new(kind, Some(path), &detail)
    }
}

/// A first listing computed before a change made elsewhere and merged after its event arrived:
/// nothing of the directory was loaded when the event came, so only the listing's version can
/// tell it predates the change. It used to be trusted for the watched TTL (an hour).
#[test]
fn a_first_listing_older_than_an_event_that_came_meanwhile_is_brought_up_to_date() {
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("a", b"a");
    let m = mount(backend.clone(), Duration::from_secs(5));
    m.fs.set_watching(true);
    let (computed_tx, computed) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    backend.hold_next_list(computed_tx, release_rx);
    let dir = m.dir.path().to_path_buf();
    let first = std::thread::spawn(move || fs::read_dir(dir).unwrap().count());
    computed
        .recv_timeout(Duration::from_secs(10))
        .expect("the first listing was computed");
    backend.write_external("b", b"b");
    m.fs.apply_event(&numbered(
        &backend,
        EventKind::Write,
        "b",
        serde_json::json!({"size": 1}),
    ));
    release.send(()).unwrap();
    assert_eq!(first.join().unwrap(), 1, "the held listing predates the change");
    let start = std::time::Instant::now();
    while names(&m) != ["a", "b"] && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(names(&m), ["a", "b"], "the listing older than the event was trusted");
}

/// An event whose change the mount's listing shows already lists nothing again; one numbered
/// above the listing's version does. (Renames were always listed again: a name present at the
/// destination may be the file it replaced.)
#[test]
fn an_event_a_listing_shows_already_changes_nothing_and_a_newer_one_does() {
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("a", b"a");
    let m = mount(backend.clone(), Duration::from_secs(5));
    m.fs.set_watching(true);
    backend
        .apply(&RemoteOp::Rename {
            from: "a".into(),
            to: "c".into(),
        })
        .unwrap();
    let rename = RemoteEvent {
        to: Some("c".into()),
        ..numbered(&backend, EventKind::Rename, "a", serde_json::json!({"to": "c"}))
    };
    assert_eq!(listed(&m), ["c"]);
    let lists = backend.lists.load(Ordering::SeqCst);
    // The watch stream is slower than the listing: the rename arrives after it.
    m.fs.apply_event(&rename);
    assert_eq!(listed(&m), ["c"]);
    assert_eq!(
        backend.lists.load(Ordering::SeqCst),
        lists,
        "a change the listing showed made the mount list again"
    );
    // The same change numbered after the listing's version is applied: listed again.
    backend.write_external("d", b"d");
    m.fs.apply_event(&numbered(
        &backend,
        EventKind::Write,
        "d",
        serde_json::json!({"size": 1}),
    ));
    let start = std::time::Instant::now();
    while listed(&m) != ["c", "d"] && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(listed(&m), ["c", "d"]);
    assert!(backend.lists.load(Ordering::SeqCst) > lists);
}
