//! Changes made through the mount, sent to the server in order by one worker thread. Calls
//! return as soon as the change is applied locally; `fsync` waits for the server's durable
//! acknowledgement. An unreachable server is retried with backoff; a waiter gives up with EIO
//! after the retry window, but the change stays queued: nothing written is dropped. A change
//! the server refuses for good is taken off the queue and recorded (`refused`), with the bytes
//! of an upload kept in `lost+found`; it is never reported as written: waiting for it fails.

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::mount::backend::{Backend, BackendError, Change, RemoteOp};
use crate::mount::events::{OwnChanges, expected_event};
use crate::mount::refused::{self, Refusal, Refusals};

pub use crate::mount::local_file::{LocalFile, Staging};

pub enum Job {
    /// An entry operation; `ino` is the inode it creates, removes, moves or changes (0: none),
    /// whose `fsync` fails if the server refuses it.
    Op { op: RemoteOp, ino: u64 },
    /// Upload the current bytes of `source` to `path`.
    Put {
        ino: u64,
        path: String,
        mode: u32,
        source: Arc<LocalFile>,
    },
}

impl Job {
    /// What a refusal of this job names: the kind of change and its path.
    fn describe(&self) -> (&'static str, String) {
        match self {
            Job::Op { op, .. } => refused::describe_op(op),
            Job::Put { path, .. } => ("upload", path.clone()),
        }
    }

    fn ino(&self) -> u64 {
        match self {
            Job::Op { ino, .. } | Job::Put { ino, .. } => *ino,
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<(u64, Job)>,
    next_seq: u64,
    acked: u64,
    /// Set while the head of the queue keeps failing: since when, and why.
    failing: Option<(Instant, String)>,
    /// Changes the server refused for good, and those left unsent at shutdown.
    refusals: Refusals,
    /// How many jobs at the head of the queue are being sent now.
    sending: usize,
    shutdown: bool,
    /// Threads in [`Writeback::wait_for`]: while any waits, the worker sends at once.
    waiters: usize,
    /// When the newest job was queued, and since when the worker has been holding the queue.
    last_enqueue: Option<Instant>,
    holding_since: Option<Instant>,
    /// The worker waits for work with the queue empty: only then does a new job wake it. While
    /// it holds a burst it wakes on its own at the end of the quiet time and sees what came.
    worker_idle: bool,
    /// How often the worker's wait ended (a measure of wake-ups; every one costs a thread switch).
    worker_wakes: u64,
    /// The worker thread has returned (or never started).
    worker_gone: bool,
}

/// An upload the server acknowledged: which file, its writeback sequence number, the content id
/// the server gave its bytes, and the local bytes that were sent.
pub struct Uploaded<'a> {
    pub ino: u64,
    pub seq: u64,
    pub content_id: &'a str,
    pub source: &'a Arc<LocalFile>,
}

pub type UploadHook = Box<dyn Fn(Uploaded<'_>) + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    backend: Arc<dyn Backend>,
    retry_window: Duration,
    lost_dir: PathBuf,
    own: Arc<OwnChanges>,
    on_upload: OnceLock<UploadHook>,
    gather: Gather,
}

pub struct Writeback {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The server stayed unreachable for the whole retry window.
    Unreachable(String),
    /// The server refused a change waited for (each one described).
    Refused(Vec<String>),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Unreachable(why) => write!(f, "the server stayed unreachable: {why}"),
            WaitError::Refused(what) => write!(f, "the server refused {}", what.join("; ")),
        }
    }
}

impl Writeback {
    /// `lost_dir` receives the bytes of uploads the server refused for good.
    pub fn start(backend: Arc<dyn Backend>, retry_window: Duration, lost_dir: PathBuf) -> Writeback {
        Writeback::start_with(backend, retry_window, lost_dir, Gather::default())
    }

    /// As `start`, gathering bursts as `gather` says.
    pub fn start_with(
        backend: Arc<dyn Backend>,
        retry_window: Duration,
        lost_dir: PathBuf,
        gather: Gather,
    ) -> Writeback {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_seq: 1,
                ..State::default()
            }),
            changed: Condvar::new(),
            backend,
            retry_window,
            lost_dir,
            own: Arc::new(OwnChanges::default()),
            on_upload: OnceLock::new(),
            gather,
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("aether-writeback".into())
            .spawn(move || {
                run(&worker_shared);
                worker_shared.state.lock().worker_gone = true;
                worker_shared.changed.notify_all();
            })
            .ok();
        if worker.is_none() {
            shared.state.lock().worker_gone = true;
            tracing::error!("cannot start the writeback thread");
        }
        Writeback {
            shared,
            worker: Mutex::new(worker),
        }
    }

    /// The changes this writeback sent whose watch events have not come back yet.
    pub fn own_changes(&self) -> Arc<OwnChanges> {
        self.shared.own.clone()
    }

    /// Called by the worker after each acknowledged upload (outside its locks). Set once.
    pub fn on_upload(&self, hook: UploadHook) {
        let _ = self.shared.on_upload.set(hook);
    }

    /// Queue `job`; returns its sequence number. An upload of a file already waiting at the tail
    /// of the queue (the same local bytes to the same path) is not queued twice: the worker sends
    /// the file's bytes as they are when sent, with the newer upload's mode.
    pub fn enqueue(&self, job: Job) -> u64 {
        let mut st = self.shared.state.lock();
        let unsent = st.queue.len() > st.sending.max(1);
        if let Job::Put {
            ino,
            path,
            mode,
            source,
        } = &job
            && let Some((
                seq,
                Job::Put {
                    ino: i,
                    path: p,
                    mode: m,
                    source: s,
                },
            )) = st.queue.back_mut()
            && i == ino
            && p == path
            && Arc::ptr_eq(s, source)
            && unsent
        {
            *m = *mode;
            return *seq;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.queue.push_back((seq, job));
        st.last_enqueue = Some(Instant::now());
        // A wake-up per job would cost a thread switch per change of a burst (thousands in a
        // checkout): the worker is woken to start a hold, or once the batch is full.
        if st.worker_idle || st.queue.len() == BATCH_CHANGES {
            self.shared.changed.notify_all();
        }
        seq
    }

    /// The newest sequence number handed out.
    pub fn last_seq(&self) -> u64 {
        self.shared.state.lock().next_seq - 1
    }

    /// Wait until every job up to `seq` is done with: acknowledged by the server, or refused
    /// for good. Gives up when the server has been failing and this waiter has waited the whole
    /// retry window.
    pub fn wait(&self, seq: u64) -> Result<(), WaitError> {
        self.wait_for(seq, self.shared.retry_window)
    }

    /// `fsync` of inode `ino` whose newest change is `seq`: as [`Writeback::wait`], and then an
    /// error while a refused change to `ino` stands (until an upload of it is acknowledged).
    pub fn wait_file(&self, ino: u64, seq: u64) -> Result<(), WaitError> {
        self.wait(seq)?;
        match self.shared.state.lock().refusals.standing(ino) {
            Some(r) => Err(WaitError::Refused(vec![r.to_string()])),
            None => Ok(()),
        }
    }

    /// `fsync` of the mount's root: wait for everything queued so far, then an error if the
    /// server refused anything since the previous `fsync` of the root had returned (each refusal
    /// fails the root's `fsync`s that were under way or started after it, once).
    pub fn sync_all(&self) -> Result<(), WaitError> {
        let from = self.shared.state.lock().refusals.reported_to_root();
        self.wait(self.last_seq())?;
        let refused = self.shared.state.lock().refusals.report_to_root(from);
        if refused.is_empty() {
            Ok(())
        } else {
            Err(WaitError::Refused(refused.iter().map(ToString::to_string).collect()))
        }
    }

    /// As `wait`, with a window of `patience`.
    pub fn wait_for(&self, seq: u64, patience: Duration) -> Result<(), WaitError> {
        let deadline = Instant::now() + patience;
        let mut st = self.shared.state.lock();
        if st.acked >= seq {
            return Ok(());
        }
        // The worker may be holding the queue to gather a burst: it sends as soon as it sees a
        // waiter.
        st.waiters += 1;
        self.shared.changed.notify_all();
        let outcome = loop {
            if st.acked >= seq {
                break Ok(());
            }
            if Instant::now() >= deadline
                && let Some((_, why)) = &st.failing
            {
                break Err(WaitError::Unreachable(why.clone()));
            }
            self.shared.changed.wait_for(&mut st, Duration::from_millis(100));
        };
        st.waiters -= 1;
        outcome
    }

    /// The newest sequence number the server acknowledged.
    pub fn acked(&self) -> u64 {
        self.shared.state.lock().acked
    }

    /// How often the worker has woken so far.
    #[cfg(test)]
    fn worker_wakes(&self) -> u64 {
        self.shared.state.lock().worker_wakes
    }

    pub fn pending(&self) -> usize {
        self.shared.state.lock().queue.len()
    }

    /// The refused change to `ino` that still stands (see [`Writeback::wait_file`]), if any.
    pub fn standing(&self, ino: u64) -> Option<Refusal> {
        let st = self.shared.state.lock();
        if st.refusals.count() == 0 {
            return None;
        }
        st.refusals.standing(ino).cloned()
    }

    /// Every change the server refused or [`Writeback::shutdown`] left unsent, in order.
    pub fn refused(&self) -> Vec<Refusal> {
        self.shared.state.lock().refusals.all().to_vec()
    }

    /// The changes the server does not hold now: refused or unsent, and not replaced since by
    /// an acknowledged upload of the same file.
    pub fn not_on_server(&self) -> Vec<Refusal> {
        self.shared.state.lock().refusals.outstanding()
    }

    /// Send everything still queued (waiting at most the retry window), then stop the worker.
    /// What could not be sent is recorded as refused (see [`Writeback::refused`]) with the bytes
    /// of its uploads kept in `lost+found`. Calling it again changes nothing.
    pub fn shutdown(&self) -> Result<(), WaitError> {
        let last = self.last_seq();
        let flushed = self.wait(last);
        let mut st = self.shared.state.lock();
        st.shutdown = true;
        self.shared.changed.notify_all();
        // The worker stops after its current try; a try that hangs is not waited for long.
        let deadline = Instant::now() + WORKER_STOP;
        while !st.worker_gone && Instant::now() < deadline {
            self.shared.changed.wait_until(&mut st, deadline);
        }
        let gone = st.worker_gone;
        let unsent: Vec<(u64, Job)> = st.queue.drain(..).collect();
        let why = match &st.failing {
            Some((_, e)) => format!("not sent before the mount stopped: {e}"),
            None => "not sent before the mount stopped".to_owned(),
        };
        drop(st);
        if gone && let Some(h) = self.worker.lock().take() {
            let _ = h.join();
        }
        if unsent.is_empty() {
            return flushed;
        }
        let kept: Vec<Refusal> = unsent
            .iter()
            .map(|(seq, job)| refusal(&self.shared, *seq, job, why.clone()))
            .collect();
        for r in &kept {
            tracing::error!(change = %r.change, path = %r.path, kept = ?r.kept, "{why}");
        }
        let mut st = self.shared.state.lock();
        for r in kept {
            st.refusals.record(r);
        }
        Err(flushed.err().unwrap_or(WaitError::Unreachable(why)))
    }
}

/// How long [`Writeback::shutdown`] waits for the worker to end a try under way.
const WORKER_STOP: Duration = Duration::from_secs(10);

/// The record of `job` (queued as `seq`) not reaching the server because of `error`, keeping
/// the bytes of an upload in `lost+found`.
fn refusal(shared: &Shared, seq: u64, job: &Job, error: String) -> Refusal {
    let (change, path) = job.describe();
    let kept = match job {
        Job::Put { path, source, .. } => match refused::keep_bytes(&shared.lost_dir, path, source) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(error = %e, path = %path, "cannot keep the bytes of an upload the server does not hold");
                None
            }
        },
        Job::Op { .. } => None,
    };
    Refusal {
        seq,
        ino: job.ino(),
        path,
        change: change.to_owned(),
        error,
        kept,
    }
}

/// Uploads of different large files next to each other in the queue are sent together, this
/// many at most: no other change lies between them, so the order they land in does not matter,
/// and their round trips and the server's ingest overlap.
const PARALLEL_UPLOADS: usize = 8;

/// Files of at most this many bytes travel inside a batch; larger ones are streamed alone.
const INLINE_MAX: u64 = 512 << 10;
/// Most changes, and most bytes of content, in one batch (the server accepts 32 MiB by default).
const BATCH_CHANGES: usize = 2000;
const BATCH_BYTES: u64 = 8 << 20;

/// How the worker gathers a burst of changes (a checkout, an untar, `rm -rf`) into few large
/// batches rather than sending them as they come: each batch costs the server a transaction
/// and a handful of thread wake-ups, and on two cores that work competes with the tool making
/// the burst. The worker holds the queue until no change has come for `quiet`, for at most
/// `max_hold`, and not at all once a batch is full, the server is failing, or anyone waits for
/// the server (`fsync`, unmount).
#[derive(Debug, Clone, Copy)]
pub struct Gather {
    pub quiet: Duration,
    pub max_hold: Duration,
}

impl Default for Gather {
    /// A few milliseconds of quiet end a burst; what another client sees waits 50 ms at most.
    fn default() -> Gather {
        Gather {
            quiet: Duration::from_millis(2),
            max_hold: Duration::from_millis(50),
        }
    }
}

/// How the head of the queue is sent.
enum Sending {
    /// Entry operations and small files, in order, in one batch call.
    Batch,
    /// Uploads of distinct large files, in parallel.
    Uploads,
}

fn is_small(job: &Job) -> bool {
    match job {
        Job::Op { .. } => true,
        Job::Put { source, .. } => source.size().is_ok_and(|n| n <= INLINE_MAX),
    }
}

/// The head of the queue to send next: a run of operations and small files (in order, in one
/// batch), or a run of uploads of distinct large files.
fn next_batch(st: &State) -> (Sending, Vec<(u64, Job)>) {
    let mut batch: Vec<(u64, Job)> = Vec::new();
    let Some((_, head)) = st.queue.front() else {
        return (Sending::Batch, batch);
    };
    if is_small(head) {
        let mut bytes = 0u64;
        for (seq, job) in &st.queue {
            if batch.len() >= BATCH_CHANGES || bytes >= BATCH_BYTES || !is_small(job) {
                break;
            }
            if let Job::Put { source, .. } = job {
                bytes += source.size().unwrap_or(0);
            }
            batch.push((*seq, clone_job(job)));
        }
        return (Sending::Batch, batch);
    }
    for (seq, job) in &st.queue {
        let fits = match job {
            Job::Put { path, .. } if !is_small(job) => {
                batch.len() < PARALLEL_UPLOADS
                    && !batch
                        .iter()
                        .any(|(_, j)| matches!(j, Job::Put { path: p, .. } if p == path))
            }
            _ => false,
        };
        if !fits {
            break;
        }
        batch.push((*seq, clone_job(job)));
    }
    (Sending::Uploads, batch)
}

/// Send a run of large uploads in parallel: one result per job.
fn send_uploads(shared: &Shared, batch: &[(u64, Job)]) -> Vec<Result<Option<String>, BackendError>> {
    if batch.len() == 1 {
        return vec![send(shared, &batch[0].1)];
    }
    std::thread::scope(|scope| {
        let running: Vec<_> = batch
            .iter()
            .map(|(_, job)| scope.spawn(move || send(shared, job)))
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BackendError::Other("upload thread panicked".into())))
            })
            .collect()
    })
}

/// Send a run of operations and small files in one batch. The results cover a prefix of the
/// batch: the changes applied, then the one that failed (if any); the rest were not tried.
fn send_batch(shared: &Shared, batch: &[(u64, Job)]) -> Vec<Result<Option<String>, BackendError>> {
    let mut changes = Vec::with_capacity(batch.len());
    let mut unreadable = None;
    for (_, job) in batch {
        match job {
            Job::Op { op, .. } => changes.push(Change::Op(op.clone())),
            Job::Put { path, mode, source, .. } => {
                match source.contents() {
                    Ok(data) => changes.push(Change::Put {
                        path: path.clone(),
                        mode: *mode,
                        data,
                    }),
                    Err(e) => {
                        // The local copy cannot be read: send what comes before it; it fails.
                        unreadable = Some(BackendError::Other(format!("reading the local copy of {path}: {e}")));
                        break;
                    }
                }
            }
        }
    }
    for change in &changes {
        match change {
            Change::Op(op) => {
                let (kind, path) = expected_event(op);
                shared.own.record(kind, path);
            }
            Change::Put { path, .. } => shared.own.record("write", path),
        }
    }
    let mut results: Vec<Result<Option<String>, BackendError>> = Vec::new();
    if !changes.is_empty() {
        match shared.backend.apply_batch(&changes) {
            Ok(reply) => {
                results.extend(reply.done.into_iter().map(Ok));
                if let Some(e) = reply.failed {
                    results.push(Err(e));
                    return results;
                }
            }
            Err(e) => return vec![Err(e)],
        }
    }
    if let Some(e) = unreadable {
        results.push(Err(e));
    }
    results
}

/// Until when the worker should keep gathering before it sends the queue, if it should.
fn hold_until(st: &mut State, gather: Gather) -> Option<Instant> {
    let full = st.queue.len() >= BATCH_CHANGES;
    if full || st.waiters > 0 || st.shutdown || st.failing.is_some() {
        return None;
    }
    let now = Instant::now();
    let since = *st.holding_since.get_or_insert(now);
    let until = (st.last_enqueue.unwrap_or(now) + gather.quiet).min(since + gather.max_hold);
    (now < until).then_some(until)
}

fn run(shared: &Shared) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let (how, batch) = {
            let mut st = shared.state.lock();
            loop {
                if !st.queue.is_empty() {
                    if let Some(until) = hold_until(&mut st, shared.gather) {
                        shared.changed.wait_until(&mut st, until);
                        st.worker_wakes += 1;
                        continue;
                    }
                    st.holding_since = None;
                    let (how, batch) = next_batch(&st);
                    st.sending = batch.len();
                    break (how, batch);
                }
                if st.shutdown {
                    return;
                }
                st.worker_idle = true;
                shared.changed.wait(&mut st);
                st.worker_idle = false;
                st.worker_wakes += 1;
            }
        };
        let results = match how {
            Sending::Batch => send_batch(shared, &batch),
            Sending::Uploads => send_uploads(shared, &batch),
        };
        // The jobs before the first change that may succeed later are done (acknowledged or
        // refused for good); that one and the rest stay queued and are sent again (an upload
        // sent twice stores the same bytes twice, which changes nothing).
        let retry_at = results
            .iter()
            .position(|r| r.as_ref().is_err_and(BackendError::is_retryable));
        let settled = retry_at.unwrap_or(results.len()).min(batch.len());
        let mut refused = Vec::new();
        let mut uploaded = Vec::new();
        for ((seq, job), result) in batch.iter().zip(results.iter()).take(settled) {
            match result {
                Ok(content_id) => {
                    if let Job::Put { ino, source, .. } = job {
                        uploaded.push((*ino, *seq));
                        if let (Some(hook), Some(id)) = (shared.on_upload.get(), content_id.as_deref()) {
                            hook(Uploaded {
                                ino: *ino,
                                seq: *seq,
                                content_id: id,
                                source,
                            });
                        }
                    }
                }
                Err(e) => {
                    let r = refusal(shared, *seq, job, e.to_string());
                    tracing::error!(error = %e, change = %r.change, path = %r.path, kept = ?r.kept,
                        "the server refused a change made through the mount");
                    refused.push(r);
                }
            }
        }
        {
            let mut st = shared.state.lock();
            for (ino, seq) in uploaded {
                st.refusals.uploaded(ino, seq);
            }
            for r in refused {
                st.refusals.record(r);
            }
            for _ in 0..settled {
                st.queue.pop_front();
            }
            st.sending = 0;
            if settled > 0 {
                st.acked = batch[settled - 1].0;
            }
            if let Some(i) = retry_at {
                let e = results[i].as_ref().err().map(ToString::to_string).unwrap_or_default();
                if st.failing.is_none() {
                    let (change, path) = batch[i].1.describe();
                    tracing::warn!(error = %e, change, path = %path, "server unreachable; retrying");
                    st.failing = Some((Instant::now(), e));
                }
            } else {
                st.failing = None;
            }
            shared.changed.notify_all();
            if retry_at.is_some() && st.shutdown {
                return;
            }
        }
        if retry_at.is_some() {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
        } else {
            backoff = Duration::from_millis(50);
        }
    }
}

fn clone_job(job: &Job) -> Job {
    match job {
        Job::Op { op, ino } => Job::Op {
            op: op.clone(),
            ino: *ino,
        },
        Job::Put {
            ino,
            path,
            mode,
            source,
        } => Job::Put {
            ino: *ino,
            path: path.clone(),
            mode: *mode,
            source: source.clone(),
        },
    }
}

/// Send one change; an upload returns the content id the server gave the bytes.
fn send(shared: &Shared, job: &Job) -> Result<Option<String>, BackendError> {
    match job {
        Job::Op { op, .. } => {
            let (kind, path) = expected_event(op);
            shared.own.record(kind, path);
            shared.backend.apply(op).map(|()| None)
        }
        Job::Put { path, mode, source, .. } => {
            let reader = FileReader::whole(source.clone()).map_err(|e| BackendError::Other(e.to_string()))?;
            shared.own.record("write", path);
            shared.backend.put(path, *mode, reader.end, Box::new(reader)).map(Some)
        }
    }
}

/// Reads a local file by position, without sharing a cursor with writers.
pub struct FileReader {
    source: Arc<LocalFile>,
    pos: u64,
    end: u64,
}

impl FileReader {
    /// The file's bytes as they are now.
    pub fn whole(source: Arc<LocalFile>) -> std::io::Result<FileReader> {
        let end = source.size()?;
        Ok(FileReader { source, pos: 0, end })
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.source.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::mount::backend::{BatchReply, RemoteEntry, apply_one_by_one};
    use crate::mount::memory_backend::MemoryBackend;

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
        fn list(&self, path: &str) -> crate::mount::backend::BackendResult<Vec<RemoteEntry>> {
            self.inner.list(path)
        }
        fn read(&self, path: &str, id: &str, offset: u64, len: u64) -> crate::mount::backend::BackendResult<Vec<u8>> {
            self.inner.read(path, id, offset, len)
        }
        fn put(
            &self,
            path: &str,
            mode: u32,
            size: u64,
            data: Box<dyn Read + Send>,
        ) -> crate::mount::backend::BackendResult<String> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.attempts.fetch_add(1, Ordering::SeqCst);
            self.inner.put(path, mode, size, data)
        }
        fn apply(&self, op: &RemoteOp) -> crate::mount::backend::BackendResult<()> {
            self.inner.apply(op)
        }
        fn apply_batch(&self, changes: &[Change]) -> crate::mount::backend::BackendResult<BatchReply> {
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
            source: source.clone(),
        });
        // The file changed again and lost its set-ID bits while its upload still waited.
        let again = wb.enqueue(Job::Put {
            ino: 7,
            path: "d/setid".into(),
            mode: 0o644,
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
                assert!(what[0].contains("upload of missing/g"), "{what:?}");
                assert!(
                    what[0].contains(&lost.path().join("lost").display().to_string()),
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
            source: copy.clone(),
        });
        let second = wb.enqueue(Job::Put {
            ino: 8,
            path: "g".into(),
            mode: 0o600,
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
}
