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

use crate::backend::{Backend, BackendError, Change, RemoteOp};
use crate::lost_found::Journal;
use crate::refused::{self, Refusal, Refusals};

pub use crate::local_file::{LocalFile, Staging};
use worker::{BATCH_CHANGES, run};
pub use worker::{FileReader, Gather};

mod worker;

pub enum Job {
    /// An entry operation; `ino` is the inode it creates, removes, moves or changes (0: none),
    /// whose `fsync` fails if the server refuses it.
    Op { op: RemoteOp, ino: u64 },
    /// Upload the current bytes of `source` to `path`, the file's mtime becoming `mtime_ns`
    /// (the one the mount shows; `None`: the server's time of the upload).
    Put {
        ino: u64,
        path: String,
        mode: u32,
        mtime_ns: Option<i64>,
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
    /// How often the worker's wait ended (a measure of wake-ups; every one costs a thread
    /// switch). Counted in tests only.
    #[cfg(test)]
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
    on_upload: OnceLock<UploadHook>,
    /// Where refusals are recorded for `aether mount status` (set once, by the mount).
    journal: OnceLock<Journal>,
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
    /// The server refused a change waited for (each one, with why and its errno).
    Refused(Vec<Refusal>),
}

impl WaitError {
    /// The errno the `fsync` or `close` that waited fails with: the refusals' own (see
    /// [`refused::common_errno`]), `EIO` when the server could not be reached.
    pub fn errno(&self) -> i32 {
        match self {
            WaitError::Unreachable(_) => libc::EIO,
            WaitError::Refused(list) => refused::common_errno(list),
        }
    }
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Unreachable(why) => write!(f, "the server stayed unreachable: {why}"),
            WaitError::Refused(what) => {
                let what: Vec<String> = what.iter().map(ToString::to_string).collect();
                write!(f, "the server refused {}", what.join("; "))
            }
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
            on_upload: OnceLock::new(),
            journal: OnceLock::new(),
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

    /// Record every refusal from now on in `journal` too (see `lost_found`). Set once.
    pub fn journal_to(&self, journal: Journal) {
        let _ = self.shared.journal.set(journal);
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
            mtime_ns,
            source,
        } = &job
            && let Some((
                seq,
                Job::Put {
                    ino: i,
                    path: p,
                    mode: m,
                    mtime_ns: t,
                    source: s,
                },
            )) = st.queue.back_mut()
            && i == ino
            && p == path
            && Arc::ptr_eq(s, source)
            && unsent
        {
            *m = *mode;
            *t = *mtime_ns;
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
            Some(r) => Err(WaitError::Refused(vec![r.clone()])),
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
            Err(WaitError::Refused(refused))
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

    /// The mount dropped inode `ino`: see [`Refusals::gone`].
    pub fn inode_gone(&self, ino: u64) {
        let mut st = self.shared.state.lock();
        let (last, done) = (st.next_seq - 1, st.acked);
        st.refusals.gone(ino, last, done);
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
            .map(|(seq, job)| refusal(&self.shared, *seq, job, why.clone(), libc::EIO))
            .collect();
        for r in &kept {
            tracing::error!(change = %r.change, path = %r.path, kept = ?r.kept, "{why}");
            self.shared.journal(r);
        }
        let mut st = self.shared.state.lock();
        for r in kept {
            st.refusals.record(r);
        }
        Err(flushed.err().unwrap_or(WaitError::Unreachable(why)))
    }
}

impl Shared {
    /// Record `r` in the journal, if the mount keeps one.
    fn journal(&self, r: &Refusal) {
        if let Some(j) = self.journal.get() {
            j.refused(r);
        }
    }
}

/// How long [`Writeback::shutdown`] waits for the worker to end a try under way.
const WORKER_STOP: Duration = Duration::from_secs(10);

/// The record of `job` (queued as `seq`) not reaching the server because of `error` (which a
/// waiter sees as `errno`), keeping the bytes of an upload in `lost+found`.
fn refusal(shared: &Shared, seq: u64, job: &Job, error: String, errno: i32) -> Refusal {
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
        errno,
        kept,
    }
}

#[cfg(test)]
mod tests;
