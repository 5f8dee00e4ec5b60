//! Where use cases are measured: [`Service::observe`] runs one use case of one session, times
//! it, and records its operation, outcome, latency and bytes in the analytics and its failure as
//! the session's last error (see `health`). Every surface calls the same use cases, so this is
//! the one place that sees REST, gRPC, git and mounts alike; handlers measure nothing.
//!
//! A read's bytes leave after its use case returned (the surface streams them): the file it
//! opened ([`ServedFile`]) adds what is read from it to the analytics as it is read.

use std::future::Future;
use std::io::Read;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncRead, ReadBuf};

use aether_core::{ContentReader, OpenFile, SessionId, Stat};

use crate::Service;
use crate::analytics::{Analytics, Sample};
use crate::error::Result;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Bytes a use case moved, filled while it runs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Meter {
    pub read: Arc<AtomicU64>,
    pub written: Arc<AtomicU64>,
}

impl Meter {
    pub(crate) fn written(n: u64) -> Meter {
        let m = Meter::default();
        m.written.store(n, Ordering::Relaxed);
        m
    }
}

impl Service {
    /// Run `work`, the use case `operation` of session `id` (at `path`, when it names one),
    /// and record it (see the module docs).
    pub(crate) async fn observe<T>(
        &self,
        operation: &'static str,
        id: &SessionId,
        path: Option<&str>,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.observe_metered(operation, id, path, Meter::default(), work).await
    }

    /// Bytes read for a caller after its request's work was observed (a listing's pieces).
    pub(crate) fn count_read(&self, bytes: u64) {
        self.inner.counters.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// [`Service::observe`], with the bytes `meter` holds once `work` is done.
    pub(crate) async fn observe_metered<T>(
        &self,
        operation: &'static str,
        id: &SessionId,
        path: Option<&str>,
        meter: Meter,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let out = work.await;
        let at_ms = now_ms();
        let (read, written) = (
            meter.read.load(Ordering::Relaxed),
            meter.written.load(Ordering::Relaxed),
        );
        self.inner.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
        self.inner.counters.bytes_written.fetch_add(written, Ordering::Relaxed);
        self.inner.analytics.record(&Sample {
            at_ms,
            operation,
            session: Some(id),
            path: path.map(|p| p.trim_matches('/')),
            latency: started.elapsed(),
            ok: out.is_ok(),
            bytes_read: read,
            bytes_written: written,
        });
        if let Err(e) = &out {
            self.inner.health.note_error(id, operation, e, at_ms);
        }
        out
    }

    /// `file`, counting the bytes read from it into session `id`'s analytics.
    pub(crate) fn served(&self, id: &SessionId, file: OpenFile) -> ServedFile {
        ServedFile {
            file,
            tally: Tally {
                analytics: self.inner.analytics.clone(),
                counters: self.inner.counters.clone(),
                session: id.clone(),
            },
        }
    }
}

#[derive(Clone)]
struct Tally {
    analytics: Arc<Analytics>,
    counters: Arc<crate::counters::Counters>,
    session: SessionId,
}

impl Tally {
    fn add(&self, bytes: u64) {
        self.counters.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        self.analytics.add_read(now_ms(), &self.session, bytes);
    }
}

/// A file opened for reading (see [`aether_core::OpenFile`]): its bytes, when read, count as
/// the session's bytes read.
pub struct ServedFile {
    file: OpenFile,
    tally: Tally,
}

impl Deref for ServedFile {
    type Target = OpenFile;

    fn deref(&self) -> &OpenFile {
        &self.file
    }
}

impl ServedFile {
    /// See [`OpenFile::read`].
    pub async fn read(&self, offset: u64, len: u64) -> aether_core::Result<Vec<u8>> {
        let data = self.file.read(offset, len).await?;
        self.tally.add(data.len() as u64);
        Ok(data)
    }

    /// See [`OpenFile::reader`].
    pub fn reader(&self, offset: u64, len: u64) -> CountedReader<ContentReader> {
        CountedReader {
            inner: self.file.reader(offset, len),
            tally: self.tally.clone(),
        }
    }

    pub fn into_stat(self) -> Stat {
        self.file.into_stat()
    }
}

/// A [`ServedFile`]'s reader: the bytes that pass through it count in the analytics as they
/// are read (before the surface sends them).
pub struct CountedReader<R> {
    inner: R,
    tally: Tally,
}

impl<R: Read> Read for CountedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.tally.add(n as u64);
        Ok(n)
    }
}

/// An upload's reader, adding the bytes that pass through it to `into`.
pub(crate) struct Counting<R> {
    pub inner: R,
    pub into: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.into.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}
