//! Changes made through the mount, sent to the server in order by one worker thread. Calls
//! return as soon as the change is applied locally; `fsync` waits for the server's durable
//! acknowledgement. An unreachable server is retried with backoff; a waiter gives up with EIO
//! after the retry window, but the change stays queued: nothing written is dropped.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::mount::backend::{Backend, BackendError, RemoteOp};
use crate::mount::events::{OwnChanges, expected_event};

/// A file's bytes held locally while it is written.
pub struct LocalFile {
    pub file: File,
}

impl LocalFile {
    pub fn size(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

pub enum Job {
    Op(RemoteOp),
    /// Upload the current bytes of `source` to `path`.
    Put {
        ino: u64,
        path: String,
        mode: u32,
        source: Arc<LocalFile>,
    },
}

impl Job {
    fn describe(&self) -> String {
        match self {
            Job::Op(op) => format!("{op:?}"),
            Job::Put { path, .. } => format!("upload of {path}"),
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
    /// Changes the server refused for good (kept for `errors()` and the log).
    rejected: Vec<String>,
    /// How many jobs at the head of the queue are being sent now.
    sending: usize,
    shutdown: bool,
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
}

pub struct Writeback {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The server stayed unreachable for the whole retry window.
    Unreachable(String),
}

impl Writeback {
    /// `lost_dir` receives the bytes of uploads the server refused for good.
    pub fn start(backend: Arc<dyn Backend>, retry_window: Duration, lost_dir: PathBuf) -> Writeback {
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
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("aether-writeback".into())
            .spawn(move || run(&worker_shared))
            .ok();
        if worker.is_none() {
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
    /// of the queue is not queued twice: the worker sends the file's bytes as they are when sent.
    pub fn enqueue(&self, job: Job) -> u64 {
        let mut st = self.shared.state.lock();
        if let Job::Put { ino, path, .. } = &job
            && let Some((seq, Job::Put { ino: i, path: p, .. })) = st.queue.back()
            && i == ino
            && p == path
            && st.queue.len() > st.sending.max(1)
        {
            return *seq;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.queue.push_back((seq, job));
        self.shared.changed.notify_all();
        seq
    }

    /// The newest sequence number handed out.
    pub fn last_seq(&self) -> u64 {
        self.shared.state.lock().next_seq - 1
    }

    /// Wait until every job up to `seq` is acknowledged by the server. Gives up when the server
    /// has been failing and this waiter has waited the whole retry window.
    pub fn wait(&self, seq: u64) -> Result<(), WaitError> {
        self.wait_for(seq, self.shared.retry_window)
    }

    /// As `wait`, with a window of `patience`.
    pub fn wait_for(&self, seq: u64, patience: Duration) -> Result<(), WaitError> {
        let deadline = Instant::now() + patience;
        let mut st = self.shared.state.lock();
        loop {
            if st.acked >= seq {
                return Ok(());
            }
            if Instant::now() >= deadline
                && let Some((_, why)) = &st.failing
            {
                return Err(WaitError::Unreachable(why.clone()));
            }
            self.shared.changed.wait_for(&mut st, Duration::from_millis(100));
        }
    }

    /// The newest sequence number the server acknowledged.
    pub fn acked(&self) -> u64 {
        self.shared.state.lock().acked
    }

    pub fn pending(&self) -> usize {
        self.shared.state.lock().queue.len()
    }

    pub fn rejected(&self) -> Vec<String> {
        self.shared.state.lock().rejected.clone()
    }

    /// Send everything still queued (waiting at most the retry window), then stop the worker.
    pub fn shutdown(&self) -> Result<(), WaitError> {
        let last = self.last_seq();
        let flushed = self.wait(last);
        self.shared.state.lock().shutdown = true;
        self.shared.changed.notify_all();
        if flushed.is_ok()
            && let Some(h) = self.worker.lock().take()
        {
            let _ = h.join();
        }
        flushed
    }
}

/// Uploads of different files next to each other in the queue are sent together, this many at
/// most: no other change lies between them, so the order they land in does not matter, and
/// their round trips and the server's ingest overlap.
const PARALLEL_UPLOADS: usize = 8;

/// The head of the queue to send next: one change, or a run of uploads of distinct paths.
fn next_batch(st: &State) -> Vec<(u64, Job)> {
    let mut batch: Vec<(u64, Job)> = Vec::new();
    for (seq, job) in &st.queue {
        let fits = match (batch.first(), job) {
            (None, _) => true,
            (Some((_, Job::Put { .. })), Job::Put { path, .. }) => {
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
    batch
}

fn run(shared: &Shared) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let batch = {
            let mut st = shared.state.lock();
            loop {
                if !st.queue.is_empty() {
                    let batch = next_batch(&st);
                    st.sending = batch.len();
                    break batch;
                }
                if st.shutdown {
                    return;
                }
                shared.changed.wait(&mut st);
            }
        };
        let results: Vec<Result<Option<String>, BackendError>> = if batch.len() == 1 {
            vec![send(shared, &batch[0].1)]
        } else {
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
        };
        // Any change that may succeed later: keep the whole batch queued and send it again (an
        // upload sent twice stores the same bytes twice, which changes nothing).
        if let Some((job, e)) = batch
            .iter()
            .zip(&results)
            .find_map(|((_, job), r)| r.as_ref().err().filter(|e| e.is_retryable()).map(|e| (job, e)))
        {
            {
                let mut st = shared.state.lock();
                st.sending = 0;
                if st.failing.is_none() {
                    tracing::warn!(error = %e, change = %job.describe(), "server unreachable; retrying");
                    st.failing = Some((Instant::now(), e.to_string()));
                }
                shared.changed.notify_all();
                if st.shutdown {
                    return;
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
            continue;
        }
        backoff = Duration::from_millis(50);
        let mut refused = Vec::new();
        for ((seq, job), result) in batch.iter().zip(results) {
            match result {
                Ok(content_id) => {
                    if let (Some(hook), Job::Put { ino, source, .. }, Some(id)) =
                        (shared.on_upload.get(), job, content_id.as_deref())
                    {
                        hook(Uploaded {
                            ino: *ino,
                            seq: *seq,
                            content_id: id,
                            source,
                        });
                    }
                }
                Err(e) => {
                    let what = job.describe();
                    tracing::error!(error = %e, change = %what, "the server refused a change made through the mount");
                    refused.push(match keep_lost(shared, job) {
                        Some(p) => format!("{what}: {e} (bytes kept in {})", p.display()),
                        None => format!("{what}: {e}"),
                    });
                }
            }
        }
        let mut st = shared.state.lock();
        st.rejected.extend(refused);
        for _ in 0..batch.len() {
            st.queue.pop_front();
        }
        st.sending = 0;
        if let Some((seq, _)) = batch.last() {
            st.acked = *seq;
        }
        st.failing = None;
        shared.changed.notify_all();
    }
}

fn clone_job(job: &Job) -> Job {
    match job {
        Job::Op(op) => Job::Op(op.clone()),
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
        Job::Op(op) => {
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

/// Save the bytes of a refused upload so they are never lost silently.
fn keep_lost(shared: &Shared, job: &Job) -> Option<PathBuf> {
    let Job::Put { path, source, .. } = job else {
        return None;
    };
    let name = format!("{}-{}", crate::mount::now_ns(), path.replace('/', "%2F"));
    let dest = shared.lost_dir.join(name);
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(&shared.lost_dir)?;
        let mut out = File::create(&dest)?;
        std::io::copy(&mut FileReader::whole(source.clone())?, &mut out)?;
        Ok(())
    };
    match copy() {
        Ok(()) => Some(dest),
        Err(e) => {
            tracing::error!(error = %e, "cannot keep the bytes of a refused upload");
            None
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
        let n = self.source.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
