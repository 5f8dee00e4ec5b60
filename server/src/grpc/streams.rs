//! Byte streams between the engine's blocking readers/writers and gRPC message streams, in
//! pieces of 256 KiB with a bounded channel, so no file is ever held whole in memory.

use std::io::Read;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Status, Streaming};

use crate::body::{Feed, spawn_reader};

/// A response stream fed from a channel.
pub fn channel_stream<T: Send + 'static>(rx: mpsc::Receiver<Result<T, Status>>) -> BoxStream<T> {
    Box::pin(receiver_stream(rx))
}

/// What `rx` receives, as a stream that ends once every sender is gone.
pub fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Send exactly `len` bytes of `reader` as messages made by `make(offset, data, first)` (one
/// message, with no data, when `len` is 0). A reader that fails or ends before `len` bytes ends
/// the stream with an error status, never with a short stream that looks complete. The reads
/// hold a blocking thread only while they read (see `body::spawn_reader`).
pub fn read_to_stream<T: Send + 'static>(
    reader: impl Read + Send + 'static,
    start: u64,
    len: u64,
    feed: Feed,
    mut make: impl FnMut(u64, Vec<u8>, bool) -> T + Send + 'static,
) -> BoxStream<T> {
    let (tx, rx) = mpsc::channel::<Result<T, Status>>(1);
    if len == 0 {
        let _ = tx.try_send(Ok(make(start, Vec::new(), true)));
        return channel_stream(rx);
    }
    let mut offset = start;
    let mut first = true;
    spawn_reader(reader, len, feed, tx, move |piece| match piece {
        Ok(buf) => {
            let n = buf.len() as u64;
            let msg = make(offset, buf, first);
            first = false;
            offset += n;
            Ok(msg)
        }
        Err(e) => Err(Status::internal(format!("reading failed: {e}"))),
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use futures_util::StreamExt;

    use super::*;
    use crate::body::PIECE;

    /// (offset, length) of every message until the end or the first error, and that error.
    async fn messages(reader: impl Read + Send + 'static, start: u64, len: u64) -> (Vec<(u64, usize)>, Option<Status>) {
        let feed = Feed {
            jobs: aether_service::Admission::new(Default::default()),
            stall: std::time::Duration::from_secs(30),
        };
        let mut stream = read_to_stream(reader, start, len, feed, |offset, data, _| (offset, data.len()));
        let mut out = Vec::new();
        while let Some(m) = stream.next().await {
            match m {
                Ok(m) => out.push(m),
                Err(s) => return (out, Some(s)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn a_reader_that_ends_early_ends_the_stream_with_an_error() {
        let (msgs, err) = messages(std::io::Cursor::new(vec![0u8; PIECE + 10]), 7, 2 * PIECE as u64).await;
        assert_eq!(msgs, [(7, PIECE), (7 + PIECE as u64, 10)]);
        let err = err.expect("a short stream must not end cleanly");
        assert_eq!(err.code(), tonic::Code::Internal);
        assert!(err.message().contains("ended"), "{}", err.message());
    }

    #[tokio::test]
    async fn whole_reads_end_cleanly_and_an_empty_read_sends_one_message() {
        let (msgs, err) = messages(std::io::Cursor::new(vec![0u8; 3 * PIECE]), 0, PIECE as u64 + 1).await;
        assert_eq!((msgs, err.is_none()), (vec![(0, PIECE), (PIECE as u64, 1)], true));
        let (msgs, err) = messages(std::io::empty(), 5, 0).await;
        assert_eq!((msgs, err.is_none()), (vec![(5, 0)], true));
    }
}
