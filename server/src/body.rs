//! Moving bytes between the engine's blocking readers/writers and HTTP bodies without holding a
//! whole file in memory: a bounded channel of 256 KiB pieces in each direction.
//!
//! A response read from a blocking reader never holds a blocking thread while its client is
//! slow: an async task waits (on the runtime) for room in the channel, then takes a job
//! (`Admission::wait`) and a blocking thread only for the read of one piece. A client that takes
//! nothing for the stall time ends the body (broken), so its reader and memory are let go.

use std::io::{Read, Write};
use std::time::Duration;

use aether_service::Admission;
use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Size of the pieces a response is read and sent in.
pub(crate) const PIECE: usize = 256 * 1024;

/// How a streamed response paces its reads.
#[derive(Clone, Debug)]
pub struct Feed {
    /// The jobs each piece's read waits for.
    pub jobs: Admission,
    /// Longest the client may take nothing before the response is given up.
    pub stall: Duration,
}

/// Read exactly `len` bytes of `reader` in pieces, each as `make(piece)` into `tx`, from an async
/// task: the reader is on a blocking thread only while it reads one piece, and only once the
/// channel has room for it. A reader that fails, or ends before `len` bytes, gives one `Err`
/// piece and stops. Stops quietly when the receiver is gone or takes nothing for `feed.stall`.
pub fn spawn_reader<R, T>(
    reader: R,
    len: u64,
    feed: Feed,
    tx: mpsc::Sender<T>,
    mut make: impl FnMut(std::io::Result<Vec<u8>>) -> T + Send + 'static,
) where
    R: Read + Send + 'static,
    T: Send + 'static,
{
    // In the request's span, so the reads' log lines carry its id like the rest of it.
    let span = tracing::Span::current();
    let task = async move {
        let mut reader = reader.take(len);
        loop {
            let left = reader.limit();
            if left == 0 {
                break;
            }
            // Room first: a client that reads nothing parks this task, not a thread.
            let slot = match tokio::time::timeout(feed.stall, tx.reserve()).await {
                Ok(Ok(slot)) => slot,
                Ok(Err(_)) => break, // the client went away
                Err(_) => {
                    tracing::debug!(stall = ?feed.stall, "a client read nothing for the stall time; its response is given up");
                    break;
                }
            };
            let job = feed.jobs.wait().await;
            let size = PIECE.min(usize::try_from(left).unwrap_or(PIECE));
            let span = tracing::Span::current();
            let read = tokio::task::spawn_blocking(move || {
                span.in_scope(|| {
                    // No bigger than what is left: a 4 KiB file must not cost a zeroed 256 KiB
                    // buffer.
                    let mut buf = vec![0u8; size];
                    let got = reader.read(&mut buf);
                    (reader, buf, got)
                })
            })
            .await;
            drop(job);
            let (r, mut buf, got) = match read {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(error = %e, "a response body's read failed after its headers were sent");
                    slot.send(make(Err(std::io::Error::other(format!("a read failed: {e}")))));
                    break;
                }
            };
            reader = r;
            let piece = match got {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the content ended {left} bytes early"),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    Ok(buf)
                }
                Err(e) => Err(e),
            };
            let failed = piece.is_err();
            if let Err(e) = &piece {
                tracing::error!(error = %e, "a response body failed after its headers were sent");
            }
            slot.send(make(piece));
            if failed {
                break; // the body ends broken
            }
        }
    };
    tokio::spawn(tracing::Instrument::instrument(task, span));
}

/// A response body of exactly `len` bytes fed by a blocking reader. A reader that fails, or
/// ends before `len` bytes, ends the body with an error: the client sees a broken transfer (the
/// connection is cut) rather than a short body it could take for the whole file, or a response
/// that never ends because fewer bytes came than `Content-Length` announced.
pub fn from_reader(reader: impl Read + Send + 'static, len: u64, feed: Feed) -> Body {
    // One piece queued: with what hyper buffers, a parked download holds well under 1 MiB.
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(1);
    spawn_reader(reader, len, feed, tx, |piece| piece.map(Bytes::from));
    // Pieces that stop before `len` (the reader was given up) end the body broken.
    Body::from_stream(futures_util::stream::unfold(
        (rx, len, false),
        |(mut rx, left, done)| async move {
            if done {
                return None;
            }
            match rx.recv().await {
                Some(Ok(b)) => {
                    let left = left.saturating_sub(b.len() as u64);
                    Some((Ok(b), (rx, left, false)))
                }
                Some(Err(e)) => Some((Err(e), (rx, left, true))),
                None if left > 0 => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the response was given up {left} bytes before its end"),
                    )),
                    (rx, left, true),
                )),
                None => None,
            }
        },
    ))
}

pub fn channel_body(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A blocking writer whose bytes become a response body. Use it only from blocking threads.
/// A client that takes nothing for the stall time fails the writer (`TimedOut`), so the
/// blocking work writing into it stops instead of waiting for that client forever.
pub struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    stall: Duration,
    runtime: tokio::runtime::Handle,
}

impl ChannelWriter {
    /// Call on the runtime (it keeps a handle to wait on the channel with a deadline).
    pub fn new(stall: Duration) -> (Self, mpsc::Receiver<std::io::Result<Bytes>>) {
        let (tx, rx) = mpsc::channel(4);
        (
            ChannelWriter {
                tx,
                buf: Vec::with_capacity(PIECE),
                stall,
                runtime: tokio::runtime::Handle::current(),
            },
            rx,
        )
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        match self.runtime.block_on(self.tx.send_timeout(Ok(piece), self.stall)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
            }
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing for {:?}", self.stall),
            )),
        }
    }

    /// A handle to end the body with an error later, so the client sees a broken transfer
    /// rather than a short one.
    pub fn error_sender(&self) -> mpsc::Sender<std::io::Result<Bytes>> {
        self.tx.clone()
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// A body's bytes until its end or its first error.
    async fn frames(body: Body) -> (Vec<u8>, Option<String>) {
        let mut stream = body.into_data_stream();
        let mut data = Vec::new();
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(d) => data.extend_from_slice(&d),
                Err(e) => return (data, Some(e.to_string())),
            }
        }
        (data, None)
    }

    fn feed() -> Feed {
        Feed {
            jobs: Admission::new(Default::default()),
            stall: std::time::Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn a_reader_that_ends_early_breaks_the_body() {
        let (data, err) = frames(from_reader(std::io::Cursor::new(vec![7u8; 1000]), 3000, feed())).await;
        assert_eq!(data.len(), 1000);
        assert!(
            err.is_some_and(|e| e.contains("2000 bytes early")),
            "a short body must not end cleanly"
        );
    }

    #[tokio::test]
    async fn a_failing_reader_breaks_the_body_and_a_whole_one_ends_cleanly() {
        let failing = std::io::Cursor::new(vec![1u8; PIECE + 5]).chain(FailingReader);
        let (data, err) = frames(from_reader(failing, 2 * PIECE as u64, feed())).await;
        assert_eq!(data.len(), PIECE + 5);
        assert!(err.is_some_and(|e| e.contains("disk on fire")));

        let (data, err) = frames(from_reader(
            std::io::Cursor::new(vec![2u8; 3 * PIECE]),
            2 * PIECE as u64 + 1,
            feed(),
        ))
        .await;
        assert_eq!((data.len(), err), (2 * PIECE + 1, None));
        let (data, err) = frames(from_reader(std::io::empty(), 0, feed())).await;
        assert_eq!((data.len(), err), (0, None));
    }

    /// A reader nobody reads from holds no blocking thread and no job: the piece reads wait
    /// for room in the channel on the runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unread_body_holds_no_job() {
        let f = Feed {
            jobs: Admission::new(aether_service::AdmissionConfig {
                max_blocking_jobs: 1,
                retry_after: std::time::Duration::from_secs(1),
            }),
            stall: std::time::Duration::from_secs(30),
        };
        let bodies: Vec<Body> = (0..20)
            .map(|_| from_reader(std::io::repeat(1).take(64 << 20), 64 << 20, f.clone()))
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(f.jobs.running(), 0, "an unread body holds a job");
        assert!(f.jobs.admit("side").is_ok());
        drop(bodies);
    }

    /// A client that reads nothing for the stall time ends the body.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_reader_is_given_up() {
        let f = Feed {
            jobs: Admission::new(Default::default()),
            stall: std::time::Duration::from_millis(200),
        };
        let body = from_reader(std::io::repeat(1).take(64 << 20), 64 << 20, f);
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let (data, err) = frames(body).await;
        assert!(data.len() < 2 << 20, "{} bytes", data.len());
        assert!(err.is_some(), "a given-up body must end broken, not short and clean");
    }

    struct FailingReader;

    impl Read for FailingReader {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
}
