//! An upload's bytes as a stream of gRPC messages: a blocking thread reads the local side in whole
//! pieces, the stream turns them into messages, and a failed read cancels the call rather than
//! end the stream short (a short stream would be committed by the server as a truncated file).
//! The CLI and the mount both upload with it; each names its own error type `E`.

use std::future::Future;
use std::io::Read;

use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

/// Size of the pieces an upload is sent in.
pub const PIECE: usize = 1 << 20;

/// A piece of an upload, or why producing it failed.
pub type Piece<E> = Result<Vec<u8>, E>;

/// Read `reader` into whole pieces (call on a blocking thread); a read error becomes the last
/// piece, as `on_error` describes it.
pub fn pump<E>(
    mut reader: Box<dyn Read + Send>,
    tx: mpsc::Sender<Piece<E>>,
    on_error: impl FnOnce(std::io::Error) -> E,
) {
    loop {
        let mut buf = vec![0u8; PIECE];
        let mut filled = 0;
        // Fill whole pieces so messages stay few and large.
        while filled < PIECE {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(on_error(e)));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buf.truncate(filled);
        let last = filled < PIECE;
        if tx.blocking_send(Ok(buf)).is_err() || last {
            return;
        }
    }
}

/// Messages made from pieces: the first piece goes into `first` (sent alone for an empty
/// input), later ones through `make`. `seen` hears each piece's length, and `None` when the
/// pieces end or fail. A failed piece stalls the stream (so the call cannot complete with a
/// short upload) and is handed to [`upload`] through the returned receiver.
pub fn messages<M, E, S>(
    rx: mpsc::Receiver<Piece<E>>,
    seen: S,
    first: M,
    set: fn(&mut M, Vec<u8>),
    make: fn(Vec<u8>) -> M,
) -> (impl Stream<Item = M> + Send + 'static, oneshot::Receiver<E>)
where
    M: Send + 'static,
    E: Send + 'static,
    S: FnMut(Option<usize>) + Send + 'static,
{
    let (fail_tx, fail_rx) = oneshot::channel();
    let stream = futures_util::stream::unfold(
        (rx, Some(first), seen, Some(fail_tx)),
        move |(mut rx, head, mut seen, mut fail)| async move {
            let piece = match rx.recv().await {
                Some(Ok(p)) => {
                    seen(Some(p.len()));
                    Some(p)
                }
                Some(Err(e)) => {
                    seen(None);
                    if let Some(f) = fail.take() {
                        let _ = f.send(e);
                    }
                    std::future::pending::<()>().await;
                    None
                }
                None => {
                    seen(None);
                    None
                }
            };
            let msg = match (head, piece) {
                (Some(mut h), Some(p)) => {
                    set(&mut h, p);
                    h
                }
                (Some(h), None) => h,
                (None, Some(p)) => make(p),
                (None, None) => return None,
            };
            Some((msg, (rx, None, seen, fail)))
        },
    );
    (stream, fail_rx)
}

/// Run an upload call, cancelling it (dropping the call resets its stream, so the server commits
/// nothing) when producing the pieces failed; `Err` carries why.
pub async fn upload<T, E>(call: impl Future<Output = T>, failed: oneshot::Receiver<E>) -> Result<T, E> {
    tokio::select! {
        Ok(e) = failed => Err(e),
        r = call => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// Gives `good` bytes, then fails.
    struct Failing {
        good: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.good == 0 {
                return Err(std::io::Error::other("disk gone"));
            }
            let n = buf.len().min(self.good);
            buf[..n].fill(7);
            self.good -= n;
            Ok(n)
        }
    }

    fn start(reader: Box<dyn Read + Send>) -> mpsc::Receiver<Piece<String>> {
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || pump(reader, tx, |e| format!("reading failed: {e}")));
        rx
    }

    #[tokio::test]
    async fn pieces_become_messages_and_every_byte_is_seen() {
        let data: Vec<u8> = (0..PIECE * 2 + 5).map(|i| i as u8).collect();
        let mut lens = Vec::new();
        let counted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let c = counted.clone();
        let (stream, failed) = messages(
            start(Box::new(std::io::Cursor::new(data.clone()))),
            move |n| c.lock().unwrap().push(n),
            Vec::new(),
            |m, p| m.extend(p),
            |p| p,
        );
        let sent: Vec<Vec<u8>> = upload(stream.collect::<Vec<_>>(), failed).await.unwrap();
        lens.extend(sent.iter().map(Vec::len));
        assert_eq!(lens, [PIECE, PIECE, 5]);
        assert_eq!(sent.concat(), data);
        let counted = counted.lock().unwrap().clone();
        assert_eq!(counted[..3], [Some(PIECE), Some(PIECE), Some(5)]);
        assert!(counted[3..].iter().all(Option::is_none), "then the end: {counted:?}");
    }

    #[tokio::test]
    async fn a_failed_read_cancels_the_call_instead_of_ending_it_short() {
        let (stream, failed) = messages(
            start(Box::new(Failing { good: PIECE + 10 })),
            |_| {},
            Vec::new(),
            |m, p| m.extend(p),
            |p| p,
        );
        // The call would complete (with a short upload) if the stream ended.
        let r = upload(stream.collect::<Vec<_>>(), failed).await;
        let e = r.expect_err("a short upload completed");
        assert!(e.contains("disk gone"), "{e}");
    }

    #[tokio::test]
    async fn an_empty_input_is_the_first_message_alone() {
        let (stream, failed) = messages(
            start(Box::new(std::io::empty())),
            |_| {},
            vec![1u8],
            |m, p| m.extend(p),
            |p| p,
        );
        let sent = upload(stream.collect::<Vec<_>>(), failed).await.unwrap();
        assert_eq!(sent, [vec![1u8]]);
    }
}
