//! Moving bytes between the engine's blocking readers/writers and HTTP bodies without holding a
//! whole file in memory: a bounded channel of 256 KiB pieces in each direction.

use std::io::{Read, Write};

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;

const PIECE: usize = 256 * 1024;

/// A response body of exactly `len` bytes fed by a blocking reader. A reader that fails, or
/// ends before `len` bytes, ends the body with an error: the client sees a broken transfer (the
/// connection is cut) rather than a short body it could take for the whole file, or a response
/// that never ends because fewer bytes came than `Content-Length` announced.
pub fn from_reader(reader: impl Read + Send + 'static, len: u64) -> Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader.take(len);
        loop {
            // No bigger than what is left: a 4 KiB file must not cost a zeroed 256 KiB buffer.
            let left = reader.limit();
            if left == 0 {
                break;
            }
            let mut buf = vec![0u8; PIECE.min(usize::try_from(left).unwrap_or(PIECE))];
            let piece = match reader.read(&mut buf) {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the content ended {left} bytes early"),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = piece.is_err();
            if let Err(e) = &piece {
                tracing::error!(error = %e, "a response body failed after its headers were sent");
            }
            if tx.blocking_send(piece).is_err() || failed {
                break; // the client went away, or the body ends broken
            }
        }
    });
    channel_body(rx)
}

pub fn channel_body(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A blocking writer whose bytes become a response body. Use it only from blocking threads.
pub struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub fn new() -> (Self, mpsc::Receiver<std::io::Result<Bytes>>) {
        let (tx, rx) = mpsc::channel(4);
        (
            ChannelWriter {
                tx,
                buf: Vec::with_capacity(PIECE),
            },
            rx,
        )
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
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

    #[tokio::test]
    async fn a_reader_that_ends_early_breaks_the_body() {
        let (data, err) = frames(from_reader(std::io::Cursor::new(vec![7u8; 1000]), 3000)).await;
        assert_eq!(data.len(), 1000);
        assert!(
            err.is_some_and(|e| e.contains("2000 bytes early")),
            "a short body must not end cleanly"
        );
    }

    #[tokio::test]
    async fn a_failing_reader_breaks_the_body_and_a_whole_one_ends_cleanly() {
        let failing = std::io::Cursor::new(vec![1u8; PIECE + 5]).chain(FailingReader);
        let (data, err) = frames(from_reader(failing, 2 * PIECE as u64)).await;
        assert_eq!(data.len(), PIECE + 5);
        assert!(err.is_some_and(|e| e.contains("disk on fire")));

        let (data, err) = frames(from_reader(
            std::io::Cursor::new(vec![2u8; 3 * PIECE]),
            2 * PIECE as u64 + 1,
        ))
        .await;
        assert_eq!((data.len(), err), (2 * PIECE + 1, None));
        let (data, err) = frames(from_reader(std::io::empty(), 0)).await;
        assert_eq!((data.len(), err), (0, None));
    }

    struct FailingReader;

    impl Read for FailingReader {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
}
