//! The worker thread: takes changes off the queue in order, gathers bursts into batches, sends
//! them (small changes in one batch call, large files streamed, several at once), retries what
//! failed to reach the server and records what the server refused.

use super::*;

/// Uploads of different large files next to each other in the queue are sent together, this
/// many at most: no other change lies between them, so the order they land in does not matter,
/// and their round trips and the server's ingest overlap.
pub(super) const PARALLEL_UPLOADS: usize = 8;

/// Files of at most this many bytes travel inside a batch; larger ones are streamed alone.
pub(super) const INLINE_MAX: u64 = 512 << 10;
/// Most changes, and most bytes of content, in one batch (the server accepts 32 MiB by default).
pub(super) const BATCH_CHANGES: usize = 2000;
pub(super) const BATCH_BYTES: u64 = 8 << 20;

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
pub(super) enum Sending {
    /// Entry operations and small files, in order, in one batch call.
    Batch,
    /// Uploads of distinct large files, in parallel.
    Uploads,
}

pub(super) fn is_small(job: &Job) -> bool {
    match job {
        Job::Op { .. } => true,
        Job::Put { source, .. } => source.size().is_ok_and(|n| n <= INLINE_MAX),
    }
}

/// The head of the queue to send next: a run of operations and small files (in order, in one
/// batch), or a run of uploads of distinct large files.
pub(super) fn next_batch(st: &State) -> (Sending, Vec<(u64, Job)>) {
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
pub(super) fn send_uploads(shared: &Shared, batch: &[(u64, Job)]) -> Vec<Result<Option<String>, BackendError>> {
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
pub(super) fn send_batch(shared: &Shared, batch: &[(u64, Job)]) -> Vec<Result<Option<String>, BackendError>> {
    let mut changes = Vec::with_capacity(batch.len());
    let mut unreadable = None;
    for (_, job) in batch {
        match job {
            Job::Op { op, .. } => changes.push(Change::Op(op.clone())),
            Job::Put {
                path,
                mode,
                mtime_ns,
                source,
                ..
            } => {
                match source.contents() {
                    Ok(data) => changes.push(Change::Put {
                        path: path.clone(),
                        mode: *mode,
                        data,
                        mtime_ns: *mtime_ns,
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
pub(super) fn hold_until(st: &mut State, gather: Gather) -> Option<Instant> {
    let full = st.queue.len() >= BATCH_CHANGES;
    if full || st.waiters > 0 || st.shutdown || st.failing.is_some() {
        return None;
    }
    let now = Instant::now();
    let since = *st.holding_since.get_or_insert(now);
    let until = (st.last_enqueue.unwrap_or(now) + gather.quiet).min(since + gather.max_hold);
    (now < until).then_some(until)
}

pub(super) fn run(shared: &Shared) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let (how, batch) = {
            let mut st = shared.state.lock();
            loop {
                if !st.queue.is_empty() {
                    if let Some(until) = hold_until(&mut st, shared.gather) {
                        shared.changed.wait_until(&mut st, until);
                        #[cfg(test)]
                        {
                            st.worker_wakes += 1;
                        }
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
                #[cfg(test)]
                {
                    st.worker_wakes += 1;
                }
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
                    let r = refusal(shared, *seq, job, e.to_string(), e.errno());
                    tracing::error!(error = %e, errno = %refused::errno_name(r.errno), change = %r.change,
                        path = %r.path, kept = ?r.kept, "the server refused a change made through the mount");
                    refused.push(r);
                }
            }
        }
        for r in &refused {
            shared.journal(r);
        }
        {
            let mut st = shared.state.lock();
            let mut replaced = Vec::new();
            for (ino, seq) in uploaded {
                replaced.extend(st.refusals.uploaded(ino, seq));
            }
            // Journaled before any waiter is told (rare: only when a refusal is replaced), so
            // `aether mount status` after an `fsync` that returned 0 shows it replaced.
            if !replaced.is_empty()
                && let Some(j) = shared.journal.get()
            {
                j.replaced(&replaced);
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

pub(super) fn clone_job(job: &Job) -> Job {
    match job {
        Job::Op { op, ino } => Job::Op {
            op: op.clone(),
            ino: *ino,
        },
        Job::Put {
            ino,
            path,
            mode,
            mtime_ns,
            source,
        } => Job::Put {
            ino: *ino,
            path: path.clone(),
            mode: *mode,
            mtime_ns: *mtime_ns,
            source: source.clone(),
        },
    }
}

/// Send one change; an upload returns the content id the server gave the bytes.
pub(super) fn send(shared: &Shared, job: &Job) -> Result<Option<String>, BackendError> {
    match job {
        Job::Op { op, .. } => shared.backend.apply(op).map(|()| None),
        Job::Put {
            path,
            mode,
            mtime_ns,
            source,
            ..
        } => {
            let reader = FileReader::whole(source.clone()).map_err(|e| BackendError::Other(e.to_string()))?;
            shared
                .backend
                .put(path, *mode, reader.end, *mtime_ns, Box::new(reader))
                .map(Some)
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
