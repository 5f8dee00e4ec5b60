//! The writeback queue against a recording backend: order, batching, retries, refusals.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::worker::*;
use super::*;
use crate::backend::{BatchReply, RemoteEntry, apply_one_by_one};
use crate::memory_backend::MemoryBackend;

/// The in-memory server, recording each batch it receives and able to fail a change of the
/// next batch as if the server went away at that point.
struct Recording {
    inner: MemoryBackend,
    batches: Mutex<Vec<Vec<Change>>>,
    puts: AtomicUsize,
    /// Calls that tried to reach the server (batches and streamed files).
    attempts: AtomicUsize,
    /// Fail the change at this index of the next batch long enough to have it with a
    /// retryable error (once).
    unavailable_at: Mutex<Option<usize>>,
}

impl Backend for Recording {
    fn list(&self, path: &str) -> crate::backend::BackendResult<Vec<RemoteEntry>> {
        self.inner.list(path)
    }
    fn read(&self, path: &str, id: &str, offset: u64, len: u64) -> crate::backend::BackendResult<Vec<u8>> {
        self.inner.read(path, id, offset, len)
    }
    fn put(
        &self,
        path: &str,
        mode: u32,
        size: u64,
        mtime_ns: Option<i64>,
        data: Box<dyn Read + Send>,
    ) -> crate::backend::BackendResult<String> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.inner.put(path, mode, size, mtime_ns, data)
    }
    fn apply(&self, op: &RemoteOp) -> crate::backend::BackendResult<()> {
        self.inner.apply(op)
    }
    fn apply_batch(&self, changes: &[Change]) -> crate::backend::BackendResult<BatchReply> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        // Only batches that reached the server: the worker may try one while it is down.
        if !self.inner.is_down() {
            self.batches.lock().push(changes.to_vec());
        }
        let mut cut = self.unavailable_at.lock();
        if cut.is_some_and(|at| at < changes.len())
            && let Some(at) = cut.take()
        {
            let mut reply = apply_one_by_one(&self.inner, &changes[..at])?;
            reply.failed = Some(BackendError::Unavailable("connection reset".into()));
            return Ok(reply);
        }
        apply_one_by_one(&self.inner, changes)
    }
}

fn recording() -> Arc<Recording> {
    Arc::new(Recording {
        inner: MemoryBackend::new(),
        batches: Mutex::new(Vec::new()),
        puts: AtomicUsize::new(0),
        attempts: AtomicUsize::new(0),
        unavailable_at: Mutex::new(None),
    })
}

fn local(data: &[u8]) -> Arc<LocalFile> {
    let staging = Staging::new(std::env::temp_dir());
    let file = staging.new_file();
    file.write_at(data, 0).unwrap();
    Arc::new(file)
}

fn put(ino: u64, path: &str, data: &[u8]) -> Job {
    Job::Put {
        ino,
        path: path.into(),
        mode: 0o644,
        mtime_ns: None,
        source: local(data),
    }
}

fn mkdir(path: &str) -> Job {
    Job::Op {
        op: RemoteOp::Mkdir { path: path.into() },
        ino: 0,
    }
}

fn start(backend: Arc<Recording>) -> (Writeback, tempfile::TempDir) {
    start_gathering(backend, Gather::default())
}

fn start_gathering(backend: Arc<Recording>, gather: Gather) -> (Writeback, tempfile::TempDir) {
    let lost = tempfile::tempdir().unwrap();
    let wb = Writeback::start_with(backend, Duration::from_secs(5), lost.path().join("lost"), gather);
    (wb, lost)
}

/// Wait up to 10 s for the server to acknowledge `seq` without anyone waiting on the queue.
fn acked_unasked(wb: &Writeback, seq: u64) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if wb.acked() >= seq {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

const LONG: Duration = Duration::from_secs(600);

/// A worker that holds every burst until someone waits (or the batch is full).
fn start_holding(backend: Arc<Recording>) -> (Writeback, tempfile::TempDir) {
    start_gathering(
        backend,
        Gather {
            quiet: LONG,
            max_hold: LONG,
        },
    )
}

#[test]
fn a_burst_is_held_and_goes_in_one_batch_once_someone_waits() {
    let backend = recording();
    let (wb, _lost) = start_holding(backend.clone());
    let mut last = wb.enqueue(mkdir("d"));
    for i in 0..200 {
        last = wb.enqueue(put(10 + i, &format!("d/f{i}"), b"x"));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        backend.batches.lock().is_empty(),
        "nothing is sent while the burst is held"
    );
    wb.wait(last).unwrap();
    let batches = backend.batches.lock().clone();
    assert_eq!(batches.len(), 1, "one batch");
    assert_eq!(batches[0].len(), 201);
    assert_eq!(backend.inner.file("d/f199").as_deref(), Some(&b"x"[..]));
}

#[test]
fn a_second_upload_of_a_waiting_file_is_folded_into_it_with_the_newer_mode() {
    let backend = recording();
    let (wb, _lost) = start_holding(backend.clone());
    let first = wb.enqueue(mkdir("d"));
    let source = local(b"x");
    let setid = wb.enqueue(Job::Put {
        ino: 7,
        path: "d/setid".into(),
        mode: 0o6755,
        mtime_ns: None,
        source: source.clone(),
    });
    // The file changed again and lost its set-ID bits while its upload still waited.
    let again = wb.enqueue(Job::Put {
        ino: 7,
        path: "d/setid".into(),
        mode: 0o644,
        mtime_ns: None,
        source,
    });
    assert_eq!(again, setid, "one upload");
    assert!(again > first);
    wb.wait(again).unwrap();
    assert_eq!(backend.inner.file("d/setid").as_deref(), Some(&b"x"[..]));
    assert_eq!(backend.inner.mode("d/setid"), Some(0o644), "the newer mode");
}

#[test]
fn jobs_queued_during_a_hold_do_not_wake_the_worker() {
    let backend = recording();
    let (wb, _lost) = start_holding(backend.clone());
    let mut last = wb.enqueue(mkdir("d"));
    // Give the worker time to wake for the first job and start holding.
    std::thread::sleep(Duration::from_millis(20));
    let at_hold = wb.worker_wakes();
    for i in 0..50 {
        last = wb.enqueue(put(10 + i, &format!("d/f{i}"), b"x"));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(wb.worker_wakes(), at_hold, "no wake-up per job while holding");
    assert!(backend.batches.lock().is_empty(), "still held");
    wb.wait(last).unwrap();
    assert_eq!(backend.batches.lock().len(), 1, "one batch once someone waits");
}

#[test]
fn a_held_burst_goes_once_quiet_or_once_held_long_enough() {
    // Quiet: nobody waits, the burst stops.
    let backend = recording();
    let (wb, _lost) = start_gathering(
        backend.clone(),
        Gather {
            quiet: Duration::from_millis(20),
            max_hold: LONG,
        },
    );
    let mut last = 0;
    for i in 0..10 {
        last = wb.enqueue(mkdir(&format!("q{i}")));
    }
    assert!(acked_unasked(&wb, last), "sent once quiet");
    assert_eq!(backend.batches.lock().len(), 1);
    // Held long enough: changes keep coming (here: never quiet for long enough).
    let backend = recording();
    let (wb, _lost) = start_gathering(
        backend.clone(),
        Gather {
            quiet: LONG,
            max_hold: Duration::from_millis(50),
        },
    );
    let last = wb.enqueue(mkdir("h"));
    assert!(acked_unasked(&wb, last), "sent after the longest hold");
    // A full batch does not wait at all.
    let backend = recording();
    let (wb, _lost) = start_holding(backend.clone());
    let mut last = 0;
    for i in 0..BATCH_CHANGES {
        last = wb.enqueue(mkdir(&format!("f{i}")));
    }
    assert!(acked_unasked(&wb, last), "a full batch is sent");
}

/// Queue `jobs` while the server is down, so that they are all waiting when it comes back.
fn queue_while_down(wb: &Writeback, backend: &Recording, jobs: Vec<Job>) -> u64 {
    backend.inner.set_down(true);
    let mut last = 0;
    for job in jobs {
        last = wb.enqueue(job);
    }
    // A try that took its changes before the last one was queued may still be under way:
    // after two more tries one surely took them all (the worker backs off 50 ms, then 100).
    let seen = backend.attempts.load(Ordering::SeqCst);
    let start = std::time::Instant::now();
    while backend.attempts.load(Ordering::SeqCst) < seen + 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "the worker stopped trying");
        std::thread::sleep(Duration::from_millis(5));
    }
    backend.inner.set_down(false);
    last
}

#[test]
fn queued_changes_go_in_one_batch_in_order() {
    let backend = recording();
    let (wb, _lost) = start(backend.clone());
    let mut jobs = vec![mkdir("d")];
    for i in 0..100 {
        jobs.push(put(10 + i, &format!("d/f{i}"), format!("file {i}").as_bytes()));
    }
    jobs.push(Job::Op {
        op: RemoteOp::Rename {
            from: "d/f0".into(),
            to: "d/renamed".into(),
        },
        ino: 10,
    });
    let last = queue_while_down(&wb, &backend, jobs);
    wb.wait(last).unwrap();
    // The batch that carried everything.
    let batches = backend.batches.lock().clone();
    let full = batches.last().unwrap();
    assert_eq!(full.len(), 102, "all queued changes in one batch");
    assert_eq!(full[0], Change::Op(RemoteOp::Mkdir { path: "d".into() }));
    assert!(matches!(&full[1], Change::Put { path, data, .. } if path == "d/f0" && data == b"file 0"));
    assert_eq!(
        backend.puts.load(Ordering::SeqCst),
        0,
        "small files travel inside the batch"
    );
    assert_eq!(backend.inner.file("d/renamed").as_deref(), Some(&b"file 0"[..]));
    assert_eq!(backend.inner.file("d/f99").as_deref(), Some(&b"file 99"[..]));
    assert!(wb.refused().is_empty());
    assert_eq!(wb.pending(), 0);
}

#[test]
fn a_refused_change_in_the_middle_is_rejected_and_the_rest_still_applied() {
    let backend = recording();
    let (wb, lost) = start(backend.clone());
    let jobs = vec![
        mkdir("a"),
        put(2, "a/f", b"before"),
        put(3, "missing/g", b"refused"), // no such parent: refused for good
        put(4, "a/h", b"after"),
    ];
    let last = queue_while_down(&wb, &backend, jobs);
    wb.wait(last).unwrap();
    assert_eq!(wb.acked(), last);
    assert_eq!(backend.inner.file("a/f").as_deref(), Some(&b"before"[..]));
    assert_eq!(backend.inner.file("a/h").as_deref(), Some(&b"after"[..]));
    assert_eq!(backend.inner.file("missing/g"), None);
    let refused = wb.refused();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (refused[0].change.as_str(), refused[0].path.as_str()),
        ("upload", "missing/g")
    );
    // The refused bytes are kept, never dropped silently.
    let kept: Vec<_> = std::fs::read_dir(lost.path().join("lost")).unwrap().collect();
    assert_eq!(kept.len(), 1);
    // The change after the refused one went in a batch of its own.
    let batches = backend.batches.lock().clone();
    assert_eq!(batches.last().unwrap().len(), 1);
}

#[test]
fn a_batch_cut_by_an_unreachable_server_resends_from_the_cut() {
    let backend = recording();
    let (wb, _lost) = start(backend.clone());
    *backend.unavailable_at.lock() = Some(2);
    let jobs = vec![
        mkdir("x"),
        put(2, "x/one", b"1"),
        put(3, "x/two", b"2"),
        put(4, "x/three", b"3"),
    ];
    let last = queue_while_down(&wb, &backend, jobs);
    wb.wait(last).unwrap();
    assert!(backend.unavailable_at.lock().is_none(), "the cut happened");
    for (p, d) in [("x/one", b"1"), ("x/two", b"2"), ("x/three", b"3")] {
        assert_eq!(backend.inner.file(p).as_deref(), Some(&d[..]), "{p}");
    }
    assert!(wb.refused().is_empty(), "{:?}", wb.refused());
    // Nothing before the cut was sent twice: the resent batches start at the cut.
    let batches = backend.batches.lock().clone();
    let sent_mkdir = batches
        .iter()
        .flatten()
        .filter(|c| matches!(c, Change::Op(RemoteOp::Mkdir { .. })))
        .count();
    assert_eq!(sent_mkdir, 1, "{batches:?}");
}

#[test]
fn large_files_are_streamed_and_keep_their_place_between_batches() {
    let backend = recording();
    let (wb, _lost) = start(backend.clone());
    let big = vec![7u8; (INLINE_MAX + 1) as usize];
    let jobs = vec![
        mkdir("big"),
        put(2, "big/blob", &big),
        Job::Op {
            op: RemoteOp::Rename {
                from: "big/blob".into(),
                to: "big/moved".into(),
            },
            ino: 2,
        },
    ];
    let last = queue_while_down(&wb, &backend, jobs);
    wb.wait(last).unwrap();
    assert_eq!(backend.puts.load(Ordering::SeqCst), 1, "the large file was streamed");
    assert_eq!(backend.inner.file("big/moved").map(|d| d.len()), Some(big.len()));
    assert!(wb.refused().is_empty(), "{:?}", wb.refused());
}

#[test]
fn a_refused_upload_fails_waiting_for_that_file_until_a_later_upload_of_it_is_acknowledged() {
    let backend = recording();
    let (wb, lost) = start(backend.clone());
    let before = wb.enqueue(put(2, "f", b"fine"));
    let refused = wb.enqueue(put(3, "missing/g", b"refused")); // no such parent
    let after = wb.enqueue(put(4, "h", b"fine too"));
    // Everything is done with; only the refused file's wait fails, with what and why.
    wb.wait(after).unwrap();
    assert_eq!(wb.wait_file(2, before), Ok(()));
    assert_eq!(wb.wait_file(4, after), Ok(()));
    match wb.wait_file(3, refused) {
        Err(WaitError::Refused(what)) => {
            let what = what[0].to_string();
            assert!(what.contains("upload of missing/g"), "{what:?}");
            assert!(
                what.contains(&lost.path().join("lost").display().to_string()),
                "{what:?}"
            );
        }
        other => panic!("waiting for a refused upload: {other:?}"),
    }
    // Waiting again for the same file still fails: the bytes are not on the server.
    assert!(wb.wait_file(3, wb.last_seq()).is_err());
    // The root's fsync reports it once.
    assert!(matches!(wb.sync_all(), Err(WaitError::Refused(_))));
    assert_eq!(wb.sync_all(), Ok(()));
    // A refused change to a directory fails waiting for that directory.
    let dir = wb.enqueue(Job::Op {
        op: RemoteOp::Mkdir {
            path: "no/such/parent".into(),
        },
        ino: 9,
    });
    assert!(matches!(wb.wait_file(9, dir), Err(WaitError::Refused(_))));
    // Once the file can be uploaded, its wait succeeds again.
    wb.enqueue(mkdir("missing"));
    let again = wb.enqueue(put(3, "missing/g", b"refused once"));
    assert_eq!(wb.wait_file(3, again), Ok(()));
    assert_eq!(backend.inner.file("missing/g").as_deref(), Some(&b"refused once"[..]));
    assert_eq!(wb.refused().len(), 2, "the history keeps every refusal");
}

#[test]
fn acknowledgements_name_the_sequence_and_the_bytes_of_the_upload_they_answer() {
    let backend = recording();
    let (wb, _lost) = start_holding(backend.clone());
    let seen: Arc<Mutex<Vec<(u64, u64, String)>>> = Arc::default();
    let hook_seen = seen.clone();
    wb.on_upload(Box::new(move |u: Uploaded<'_>| {
        hook_seen.lock().push((u.ino, u.seq, u.content_id.to_owned()));
    }));
    // The file's upload waits behind another change; then the file gets a new local copy
    // (it was settled and written again) and is queued again: that is another version,
    // never folded into the waiting upload of the old copy.
    wb.enqueue(mkdir("d"));
    let old = wb.enqueue(put(7, "f", b"old bytes"));
    let new = wb.enqueue(put(7, "f", b"new bytes"));
    assert_ne!(old, new, "an upload of other local bytes was folded into a waiting one");
    // The same copy queued again is folded: one upload, one sequence number.
    let copy = local(b"same copy");
    let first = wb.enqueue(Job::Put {
        ino: 8,
        path: "g".into(),
        mode: 0o644,
        mtime_ns: None,
        source: copy.clone(),
    });
    let second = wb.enqueue(Job::Put {
        ino: 8,
        path: "g".into(),
        mode: 0o600,
        mtime_ns: None,
        source: copy,
    });
    assert_eq!(first, second);
    wb.wait(second).unwrap();
    assert_eq!(backend.inner.file("f").as_deref(), Some(&b"new bytes"[..]));
    assert_eq!(backend.inner.mode("g"), Some(0o600));
    let seen = seen.lock().clone();
    let id = |data: &[u8]| {
        let b = MemoryBackend::new();
        b.write_external("x", data);
        b.oid("x").unwrap()
    };
    assert_eq!(
        seen,
        vec![
            (7, old, id(b"old bytes")),
            (7, new, id(b"new bytes")),
            (8, first, id(b"same copy")),
        ]
    );
}

#[test]
fn shutdown_keeps_what_could_not_be_sent_and_says_so() {
    let backend = recording();
    let lost = tempfile::tempdir().unwrap();
    let wb = Writeback::start(backend.clone(), Duration::from_millis(300), lost.path().join("lost"));
    backend.inner.set_down(true);
    wb.enqueue(mkdir("d"));
    wb.enqueue(put(5, "d/f", b"unsent bytes"));
    let err = wb.shutdown().unwrap_err();
    assert!(matches!(err, WaitError::Unreachable(_)), "{err:?}");
    let refused = wb.refused();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].change, "mkdir");
    assert_eq!(refused[1].path, "d/f");
    let kept = refused[1].kept.as_ref().expect("the upload's bytes are kept");
    assert_eq!(std::fs::read(kept).unwrap(), b"unsent bytes");
    assert!(refused[1].error.contains("not sent"), "{:?}", refused[1]);
    // Nothing is sent after the shutdown, even once the server is back.
    backend.inner.set_down(false);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!backend.inner.is_dir("d"));
    assert_eq!(wb.pending(), 0);
}

/// Every refusal and every unsent change goes to the lost+found journal as it happens, with
/// its errno; an accepted later upload of the same file marks the refusal replaced there.
#[test]
fn refusals_replacements_and_unsent_changes_are_journaled_with_their_errno() {
    use crate::lost_found::{Journal, list};
    let backend = recording();
    let lost = tempfile::tempdir().unwrap();
    let lost_dir = lost.path().join("lost");
    let wb = Writeback::start(backend.clone(), Duration::from_millis(300), lost_dir.clone());
    let mount = std::path::Path::new("/mnt/journaled");
    wb.journal_to(Journal::new(&lost_dir, mount, "s1"));
    let refused = wb.enqueue(put(3, "missing/g", b"refused")); // no such parent
    wb.wait(refused).unwrap();
    let listed = list(&lost_dir, Some(mount)).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            listed[0].refusal.path.as_str(),
            listed[0].refusal.errno,
            listed[0].replaced
        ),
        ("missing/g", libc::ENOENT, false)
    );
    assert!(listed[0].bytes_present);
    wb.enqueue(mkdir("missing"));
    let again = wb.enqueue(put(3, "missing/g", b"accepted"));
    assert_eq!(wb.wait_file(3, again), Ok(()));
    assert!(
        list(&lost_dir, Some(mount)).unwrap()[0].replaced,
        "the later upload replaced it"
    );
    // Unsent when the mount stops: journaled too, as EIO, bytes kept.
    backend.inner.set_down(true);
    wb.enqueue(put(4, "h", b"unsent"));
    assert!(wb.shutdown().is_err());
    let listed = list(&lost_dir, Some(mount)).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let unsent = &listed[1];
    assert_eq!((unsent.refusal.path.as_str(), unsent.refusal.errno), ("h", libc::EIO));
    assert_eq!(std::fs::read(unsent.refusal.kept.as_ref().unwrap()).unwrap(), b"unsent");
    assert!(
        list(&lost_dir, Some(std::path::Path::new("/mnt/other")))
            .unwrap()
            .is_empty()
    );
}
