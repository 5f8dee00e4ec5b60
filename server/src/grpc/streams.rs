//! Byte streams between the engine's blocking readers/writers and gRPC message streams, in
//! pieces of 256 KiB with a bounded channel, so no file is ever held whole in memory.

use std::io::Read;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Status, Streaming};

/// Size of the pieces sent to clients.
pub const PIECE: usize = 256 * 1024;

/// A response stream fed from a channel.
pub fn channel_stream<T: Send + 'static>(rx: mpsc::Receiver<Result<T, Status>>) -> BoxStream<T> {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Send up to `len` bytes of `reader` as messages made by `make(offset, data, first)`.
pub fn read_to_stream<T: Send + 'static>(
    reader: impl Read + Send + 'static,
    start: u64,
    len: u64,
    mut make: impl FnMut(u64, Vec<u8>, bool) -> T + Send + 'static,
) -> BoxStream<T> {
    let (tx, rx) = mpsc::channel::<Result<T, Status>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader.take(len);
        let mut offset = start;
        let mut first = true;
        loop {
            let mut buf = vec![0u8; PIECE];
            match reader.read(&mut buf) {
                Ok(0) if !first => break,
                Ok(n) => {
                    buf.truncate(n);
                    let msg = make(offset, buf, first);
                    first = false;
                    offset += n as u64;
                    if tx.blocking_send(Ok(msg)).is_err() || n == 0 {
                        break; // the client went away, or an empty file was sent
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(format!("reading failed: {e}"))));
                    break;
                }
            }
        }
    });
    channel_stream(rx)
}

/// The `data` of a client stream's messages as an `AsyncRead`, starting with `first`.
pub fn reader_of<M: Send + 'static>(
    first: Vec<u8>,
    rest: Streaming<M>,
    data: impl Fn(M) -> Vec<u8> + Send + 'static,
) -> impl tokio::io::AsyncRead + Unpin + Send + 'static {
    let head = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(first))]);
    let tail = rest.map(move |m| {
        m.map(|m| Bytes::from(data(m)))
            .map_err(|s| std::io::Error::other(format!("client stream failed: {}", s.message())))
    });
    tokio_util::io::StreamReader::new(head.chain(tail))
}

/// Wait for the first message of a client stream: it carries the request's options.
pub async fn first<M>(stream: &mut Streaming<M>) -> Result<M, Status> {
    stream
        .message()
        .await?
        .ok_or_else(|| super::status::invalid("the stream ended before its first message"))
}
