//! Moving bytes between the engine's blocking readers/writers and HTTP bodies without holding a
//! whole file in memory: a bounded channel of 256 KiB pieces in each direction.

use std::io::{Read, Write};

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;

const PIECE: usize = 256 * 1024;

/// A response body fed by a blocking reader (at most `len` bytes).
pub fn from_reader(reader: impl Read + Send + 'static, len: u64) -> Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader.take(len);
        loop {
            // No bigger than what is left: a 4 KiB file must not cost a zeroed 256 KiB buffer.
            let mut buf = vec![0u8; PIECE.min(usize::try_from(reader.limit()).unwrap_or(PIECE)).max(1)];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break; // the client went away
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
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
