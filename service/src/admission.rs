//! Admission of blocking work: one semaphore, shared by every surface (REST, gRPC, git smart
//! HTTP) because they all come through [`Service`], caps how many use cases run blocking work
//! (ingest, imports, exports, packs, walks, metadata writes) at once. A use case takes a
//! [`Job`] before its first blocking step and holds it until that work is done (for an export or
//! a pack, until the stream ends); when every job is taken it fails at once with
//! [`Code::Overloaded`] and a retry hint, rather than queueing behind work it cannot see the end
//! of. Work that waits on its client (a request body still arriving, a response the client has
//! not read) must not hold a job: take it after the body's first bytes are in, and give it back
//! between pieces of a response (see [`Admission::wait`]).
//!
//! It never decides what a job is worth or who may run one: per-token quotas are a different
//! concern.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Service;
use crate::error::{Code, Result, ServiceError};

/// Most bytes of a request body read ahead (in memory) before a job is taken for it, so a
/// client that sends headers and no body holds no job and no blocking thread.
pub const BODY_READ_AHEAD: usize = 64 << 10;

/// The admission limits.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// Most use cases running blocking work at once.
    pub max_blocking_jobs: usize,
    /// What a refused caller is told to wait before trying again.
    pub retry_after: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_blocking_jobs: 64,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// The shared job semaphore. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admission {
    jobs: Arc<Semaphore>,
    /// For the pieces of streams already admitted (see the module docs).
    pieces: Arc<Semaphore>,
    config: AdmissionConfig,
}

/// A running job: the slot is free again when this is dropped.
#[derive(Debug)]
pub struct Job {
    _permit: OwnedSemaphorePermit,
    /// The caller's token's heavy-operation permit (see `quotas`), held as long as the job.
    _quota: Option<OwnedSemaphorePermit>,
}

impl Job {
    pub(crate) fn with_quota(mut self, permit: Option<OwnedSemaphorePermit>) -> Job {
        self._quota = permit;
        self
    }
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Admission {
        Admission {
            jobs: Arc::new(Semaphore::new(config.max_blocking_jobs.max(1))),
            pieces: Arc::new(Semaphore::new(config.max_blocking_jobs.max(1))),
            config,
        }
    }

    /// A job now, or `overloaded` (with `retry_after` in seconds as a detail) when all are taken.
    pub fn admit(&self, what: &str) -> Result<Job> {
        match self.jobs.clone().try_acquire_owned() {
            Ok(permit) => Ok(Job {
                _permit: permit,
                _quota: None,
            }),
            Err(_) => {
                tracing::debug!(
                    what,
                    max = self.config.max_blocking_jobs,
                    "refused: every blocking job is taken"
                );
                Err(overloaded(self.config.max_blocking_jobs, self.config.retry_after))
            }
        }
    }

    /// A slot once one is free, for the next piece of work of a stream already admitted (a
    /// response body read piece by piece), which must not fail half-way.
    pub async fn wait(&self) -> Job {
        let permit = self.pieces.clone().acquire_owned().await;
        // The semaphore is never closed.
        Job {
            _permit: permit.unwrap_or_else(|_| unreachable!("the job semaphore is never closed")),
            _quota: None,
        }
    }

    /// Jobs running now, pieces of streams included (for tests and metrics).
    pub fn running(&self) -> usize {
        2 * self.config.max_blocking_jobs.max(1) - self.jobs.available_permits() - self.pieces.available_permits()
    }

    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }
}

/// The error of a refused job.
pub fn overloaded(max: usize, retry_after: Duration) -> ServiceError {
    let secs = retry_after.as_secs().max(1);
    ServiceError::new(
        Code::Overloaded,
        format!("the server is busy ({max} blocking jobs running); try again in {secs} s"),
    )
    .with_detail("retry_after", secs.to_string())
}

/// `reader` with up to `limit` bytes already read from it (fewer only when it ended): awaits the
/// first bytes of a request body on the runtime, holding no thread. The bytes read stay in
/// front of the rest.
pub async fn read_ahead<R>(mut reader: R, limit: usize) -> Result<impl AsyncRead + Unpin + Send + 'static>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let mut head = Vec::with_capacity(limit.min(BODY_READ_AHEAD));
    (&mut reader)
        .take(limit as u64)
        .read_to_end(&mut head)
        .await
        .map_err(|e| ServiceError::bad_request(format!("the upload failed: {e}")))?;
    Ok(std::io::Cursor::new(head).chain(reader))
}

impl Service {
    /// The admission shared by every surface.
    pub fn admission(&self) -> &Admission {
        &self.inner.admission
    }

    /// A job for `what`, or `overloaded`.
    pub(crate) fn admit(&self, what: &str) -> Result<Job> {
        self.inner.admission.admit(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_over_the_cap_are_refused_at_once_and_freed_on_drop() {
        let a = Admission::new(AdmissionConfig {
            max_blocking_jobs: 2,
            retry_after: Duration::from_secs(3),
        });
        let one = a.admit("x").unwrap();
        let _two = a.admit("x").unwrap();
        let e = a.admit("x").unwrap_err();
        assert_eq!(e.code, Code::Overloaded);
        assert_eq!(e.details.get("retry_after").map(String::as_str), Some("3"));
        assert_eq!(a.running(), 2);
        drop(one);
        assert!(a.admit("x").is_ok());
    }

    #[tokio::test]
    async fn read_ahead_keeps_every_byte_in_order() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = read_ahead(std::io::Cursor::new(data.clone()), BODY_READ_AHEAD)
            .await
            .unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
        let mut r = read_ahead(tokio::io::empty(), BODY_READ_AHEAD).await.unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty());
    }
}
