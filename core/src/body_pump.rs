//! Feeding an async byte stream (an HTTP or gRPC request body) to the blocking ingest path.
//!
//! `SyncIoBridge` turns every `read` into a `block_on` of one async read, and an HTTP body
//! yields what arrived so far (often 16 to 64 KiB), so a large upload became tens of thousands
//! of park/unpark round trips between the ingest thread and the runtime. Here an async pump
//! fills pieces of up to [`PIECE`] bytes as data arrives and hands them over a small bounded
//! channel; the blocking reader takes whole pieces. Memory in flight stays bounded
//! (`DEPTH + 1` pieces), and the network receive overlaps with chunking and hashing. A piece is
//! handed over partial when the body pauses, and the work stops when its request is dropped
//! (see [`pumped`]): uploads and tar imports both read their bodies this way.

use std::io::Read;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// Largest piece handed to the blocking side.
const PIECE: usize = 1 << 20;
/// Pieces queued between the pump and the reader.
const DEPTH: usize = 4;
/// Longest a partial piece waits for more of the body before it is handed over as it is.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// The sending half: run [`Pump::run`] on the async side while the blocking side reads from the
/// paired [`PieceReader`].
pub(crate) struct Pump<R> {
    body: R,
    tx: mpsc::Sender<std::io::Result<Vec<u8>>>,
    /// Capacity of the pieces: no more than the announced size needs.
    piece: usize,
    /// Pieces the reader is done with, to fill again (fresh 1 MiB buffers cost page faults).
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

/// The blocking half: `Read` over the pieces; end of stream only when the pump says the body
/// ended (an empty piece). A pump that went away without saying so (its request was dropped:
/// the client left, or the server is shutting down) is an error, never a short, whole-looking
/// file.
pub(crate) struct PieceReader {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    spare: std::sync::mpsc::Sender<Vec<u8>>,
    ended: bool,
}

/// A pump over `body` and its reader. `size`, when known, caps the piece size, so a small body
/// does not allocate a full piece.
pub(crate) fn pump<R: AsyncRead + Unpin>(body: R, size: Option<u64>) -> (Pump<R>, PieceReader) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let (spare_tx, spare_rx) = std::sync::mpsc::channel();
    // One byte more than announced, so the reader can notice a body longer than its length.
    let piece = size.map_or(PIECE, |n| {
        usize::try_from(n.saturating_add(1)).unwrap_or(PIECE).min(PIECE)
    });
    (
        Pump {
            body,
            tx,
            piece,
            spare: spare_rx,
        },
        PieceReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            spare: spare_tx,
            ended: false,
        },
    )
}

/// `work` run on a blocking thread over `body`, which is read here, on the runtime, in large
/// pieces that the work takes whole: the two run at the same time. Dropping the returned future
/// (the request was dropped: its client left) drops the pump, so the work's next read fails and
/// it stops, removing what it staged, instead of waiting for a body that will never come.
pub(crate) async fn pumped<R, T>(
    body: R,
    size: Option<u64>,
    work: impl FnOnce(PieceReader) -> crate::Result<T> + Send + 'static,
) -> crate::Result<T>
where
    R: AsyncRead + Unpin + Send + 'static,
    T: Send + 'static,
{
    let (pump, reader) = pump(body, size);
    let work = crate::blocking::blocking(move || work(reader));
    let pump = pump.run();
    tokio::pin!(work, pump);
    let mut pumping = true;
    loop {
        tokio::select! {
            r = &mut work => return r,
            () = &mut pump, if pumping => pumping = false,
        }
    }
}

impl<R: AsyncRead + Unpin> Pump<R> {
    /// Read the body to its end (or until the reader goes away), sending full pieces, or what
    /// came when the body paused for [`FLUSH_AFTER`]; a read error is passed on to the reader.
    pub(crate) async fn run(mut self) {
        loop {
            let mut buf = match self.spare.try_recv() {
                Ok(mut b) => {
                    b.clear();
                    b
                }
                Err(_) => Vec::with_capacity(self.piece),
            };
            let mut end = false;
            while buf.len() < buf.capacity() {
                let partial = !buf.is_empty();
                let read = self.body.read_buf(&mut buf);
                // A partial piece waits for more only briefly: a client that pauses (or stalls
                // for good) still has what it sent read, so an import over a limit is refused
                // at the entry over it, not when the body idle timeout cuts the request.
                // (`read_buf` is cancel safe: a read given up took nothing.)
                let read = if !partial {
                    read.await
                } else {
                    match tokio::time::timeout(FLUSH_AFTER, read).await {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                };
                match read {
                    Ok(0) => {
                        end = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = self.tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            if !buf.is_empty() && self.tx.send(Ok(buf)).await.is_err() {
                return; // the reader stopped (done or failed)
            }
            if end {
                // The end, said explicitly: an empty piece.
                let _ = self.tx.send(Ok(Vec::new())).await;
                return;
            }
        }
    }
}

impl Read for PieceReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(piece)) if piece.is_empty() => self.ended = true,
                Some(Ok(piece)) => {
                    let done = std::mem::replace(&mut self.cur, piece);
                    if done.capacity() > 0 {
                        let _ = self.spare.send(done); // the pump may be gone: then it is freed
                    }
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the request body was abandoned before its end",
                    ));
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::pump;

    /// An async reader that yields `data` in pieces of at most `step` bytes, then optionally fails.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        fail_at_end: bool,
    }

    impl tokio::io::AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.pos == self.data.len() && self.fail_at_end {
                return std::task::Poll::Ready(Err(std::io::Error::other("client went away")));
            }
            let n = self.step.min(buf.remaining()).min(self.data.len() - self.pos);
            let (from, to) = (self.pos, self.pos + n);
            buf.put_slice(&self.data[from..to]);
            self.pos = to;
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn trickle(len: usize, fail_at_end: bool) -> (Vec<u8>, Trickle) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let t = Trickle {
            data: data.clone(),
            pos: 0,
            step: 7_777,
            fail_at_end,
        };
        (data, t)
    }

    /// What a client sent before it paused reaches the reader while the body is still open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paused_body_hands_over_what_it_sent() {
        use tokio::io::AsyncWriteExt;
        let (mut client, body) = tokio::io::duplex(64 << 10);
        client.write_all(&[7u8; 1000]).await.unwrap();
        let (p, mut reader) = pump(body, None);
        let pumping = tokio::spawn(p.run());
        let read = tokio::task::spawn_blocking(move || {
            let mut got = [0u8; 1000];
            reader.read_exact(&mut got).map(|()| got)
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("the bytes sent before the pause were held back")
            .unwrap()
            .unwrap();
        assert_eq!(got, [7u8; 1000]);
        drop(client);
        pumping.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pieces_arrive_whole_and_in_order() {
        for (len, size) in [
            (0, Some(0)),
            (10, Some(10)),
            (3 << 20, None),
            ((1 << 20) + 5, Some((1 << 20) + 5)),
        ] {
            let (want, body) = trickle(len, false);
            let (p, mut reader) = pump(body, size);
            let read = tokio::task::spawn_blocking(move || {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).map(|_| got)
            });
            p.run().await;
            let got = read.await.expect("reader thread").expect("read");
            assert_eq!(got.len(), want.len());
            assert!(got == want, "content differs for a body of {len} bytes");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_error_reaches_the_reader() {
        let (_, body) = trickle(100_000, true);
        let (p, mut reader) = pump(body, None);
        let read = tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got)
        });
        p.run().await;
        let err = read
            .await
            .expect("reader thread")
            .expect_err("the error must not look like an end");
        assert_eq!(err.to_string(), "client went away");
    }

    /// A pump dropped mid-body (its request was cancelled) is an error for the reader, not the
    /// end of a shorter file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_pump_is_an_error_not_an_end() {
        let (_, body) = trickle(10, false);
        let (p, mut reader) = pump(body, None);
        drop(p);
        let read = tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got)
        });
        let err = read
            .await
            .expect("reader thread")
            .expect_err("an abandoned body ended cleanly");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pump_stops_when_the_reader_goes_away() {
        let (_, body) = trickle(20 << 20, false);
        let (p, reader) = pump(body, None);
        drop(reader);
        // Returns instead of reading 20 MiB into a closed channel forever.
        tokio::time::timeout(std::time::Duration::from_secs(10), p.run())
            .await
            .expect("the pump kept going after its reader was dropped");
    }
}
