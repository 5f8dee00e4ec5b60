//! An upload's bytes as a stream of gRPC messages, read on a blocking thread in whole pieces.
//! A failed read cancels the call rather than end the stream short: a short stream would be
//! committed by the server as a truncated file.

use std::io::Read;

use futures_util::Stream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// Size of the pieces an upload is sent in.
pub const PIECE: usize = 1 << 20;

/// A piece of an upload, or why reading it failed (`reading NAME failed: ...`).
type Piece = Result<Vec<u8>, String>;

/// Read `reader` into whole pieces; a read error is sent as the last piece.
fn pump(mut reader: Box<dyn Read + Send>, tx: mpsc::Sender<Piece>, name: &str) {
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
                    let _ = tx.blocking_send(Err(format!("reading {name} failed: {e}")));
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

/// The messages of an upload of `reader` (named `name` in errors): the first piece goes into
/// `first` (sent alone for an empty input), later ones through `make`. A failed read stalls
/// the stream (so the call cannot complete with a short upload) and is handed to [`upload`]
/// through the returned receiver.
pub fn messages<M: Send + 'static>(
    rt: &Handle,
    reader: Box<dyn Read + Send>,
    name: String,
    first: M,
    set: fn(&mut M, Vec<u8>),
    make: fn(Vec<u8>) -> M,
) -> (impl Stream<Item = M> + Send + 'static, oneshot::Receiver<String>) {
    let (tx, rx) = mpsc::channel::<Piece>(4);
    rt.spawn_blocking(move || pump(reader, tx, &name));
    let (fail_tx, fail_rx) = oneshot::channel();
    let stream = futures_util::stream::unfold(
        (rx, Some(first), Some(fail_tx)),
        move |(mut rx, head, mut fail)| async move {
            let piece = match rx.recv().await {
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    if let Some(f) = fail.take() {
                        let _ = f.send(e);
                    }
                    std::future::pending::<()>().await;
                    None
                }
                None => None,
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
            Some((msg, (rx, None, fail)))
        },
    );
    (stream, fail_rx)
}

/// Run an upload call, cancelling it (dropping the call resets its stream, so the server commits
/// nothing) when reading the local side fails; `Err` carries why reading failed.
pub async fn upload<T>(
    call: impl std::future::Future<Output = T>,
    failed: oneshot::Receiver<String>,
) -> Result<T, String> {
    tokio::select! {
        Ok(e) = failed => Err(e),
        r = call => Ok(r),
    }
}
