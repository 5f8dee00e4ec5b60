//! Streaming bytes up and down: local files, standard input/output, directories as tar, with
//! progress bars. Nothing is held whole in memory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures_util::Stream;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use aether_proto::upload;
use aether_proto::v1 as pb;

use crate::Out;
use crate::args::ExportArgs;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output;
use crate::progress::Progress;
use aether_proto::upload::PIECE;

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// A piece of an upload, or why reading the local side failed (which must cancel the upload,
/// never end it short: a short stream would be committed as a truncated file).
pub type Piece = upload::Piece<CliError>;

/// Pieces of a local file (or standard input) from a blocking reader thread; the size when known.
pub fn read_pieces(local: &Path, out: Out, what: &str) -> Result<(Option<u64>, mpsc::Receiver<Piece>, Progress)> {
    let (reader, size): (Box<dyn Read + Send>, Option<u64>) = if is_dash(local) {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = std::fs::File::open(local).map_err(|e| CliError::io(format!("cannot open {}", local.display()), e))?;
        let meta = f
            .metadata()
            .map_err(|e| CliError::io(format!("cannot read {}", local.display()), e))?;
        if meta.is_dir() {
            return Err(CliError::usage(
                format!("{} is a directory", local.display()),
                "upload a directory with 'aether session create --from-dir DIR'",
            ));
        }
        (Box::new(f), Some(meta.len()))
    };
    let progress = Progress::new(out, what, size);
    let (tx, rx) = mpsc::channel::<Piece>(4);
    let name = local.display().to_string();
    tokio::task::spawn_blocking(move || {
        upload::pump(reader, tx, |e| CliError::io(format!("reading {name} failed"), e))
    });
    Ok((size, rx, progress))
}

/// A directory as a tar stream (see [`super::dir_archive`]), made on a blocking thread.
pub fn tar_pieces(dir: &Path) -> Result<mpsc::Receiver<Piece>> {
    if !dir.is_dir() {
        return Err(CliError::new(
            crate::error::Kind::NotFound,
            format!("{} is not a directory", dir.display()),
            "give --from-dir an existing directory",
        ));
    }
    let (tx, rx) = mpsc::channel::<Piece>(4);
    let dir: PathBuf = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let errors = tx.clone();
        let writer = ChanWriter {
            tx,
            buf: Vec::with_capacity(PIECE),
        };
        let result =
            super::dir_archive::archive_dir(&dir, writer, |warning| crate::log(1, warning)).and_then(|mut w| w.flush());
        if let Err(e) = result {
            let _ = errors.blocking_send(Err(CliError::io(format!("archiving {} failed", dir.display()), e)));
        }
    });
    Ok(rx)
}

struct ChanWriter {
    tx: mpsc::Sender<Piece>,
    buf: Vec<u8>,
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

/// Messages made from pieces (see [`upload::messages`]), counted by `progress`.
pub fn messages<M: Send + 'static>(
    rx: mpsc::Receiver<Piece>,
    progress: Progress,
    first: M,
    set: fn(&mut M, Vec<u8>),
    make: fn(Vec<u8>) -> M,
) -> (impl Stream<Item = M> + Send + 'static, oneshot::Receiver<CliError>) {
    let seen = move |n: Option<usize>| match n {
        Some(n) => progress.inc(n as u64),
        None => progress.finish(),
    };
    upload::messages(rx, seen, first, set, make)
}

/// Run an upload call, cancelling it when reading the local side fails (see [`upload::upload`]).
pub async fn upload<T>(
    call: impl std::future::Future<Output = Result<T>>,
    failed: oneshot::Receiver<CliError>,
) -> Result<T> {
    upload::upload(call, failed).await?
}

/// Where downloaded bytes go: a file (appended to when resuming) or standard output.
pub async fn open_sink(local: &Path, append: bool) -> Result<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> {
    if is_dash(local) {
        return Ok(Box::new(Stdout(tokio::io::stdout())));
    }
    let mut opts = tokio::fs::OpenOptions::new();
    opts.create(true).write(true);
    if append {
        opts.append(true);
    } else {
        opts.truncate(true);
    }
    let f = opts
        .open(local)
        .await
        .map_err(|e| CliError::io(format!("cannot write {}", local.display()), e))?;
    Ok(Box::new(f))
}

/// Standard output as a download's sink: a reader that closed the pipe (`aether export - | head
/// -c 10`) ends the process quietly, as every command's printed output does
/// (`output::print_line`).
struct Stdout(tokio::io::Stdout);

fn closed_pipe_exits<T>(r: std::io::Result<T>) -> std::io::Result<T> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(output::EXIT_CLOSED_STDOUT),
        other => other,
    }
}

impl tokio::io::AsyncWrite for Stdout {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0)
            .poll_write(cx, buf)
            .map(closed_pipe_exits)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx).map(closed_pipe_exits)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx).map(closed_pipe_exits)
    }
}

pub async fn export(c: &Client, a: ExportArgs, out: Out) -> Result<()> {
    let name = a.output.to_string_lossy();
    let gzip = a.gzip || name.ends_with(".tar.gz") || name.ends_with(".tgz");
    let mut stream = c
        .sessions()
        .export_tar(pb::ExportTarRequest {
            id: a.session.clone(),
            at: a.at.clone(),
            gzip,
        })
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    let mut sink = open_sink(&a.output, false).await?;
    let progress = Progress::new(out, "export", None);
    let mut total = 0u64;
    while let Some(chunk) = stream.message().await.map_err(|s| c.err(s))? {
        sink.write_all(&chunk.data)
            .await
            .map_err(|e| CliError::io(format!("cannot write {}", a.output.display()), e))?;
        total += chunk.data.len() as u64;
        progress.set(total);
    }
    sink.flush()
        .await
        .map_err(|e| CliError::io(format!("cannot write {}", a.output.display()), e))?;
    progress.finish();
    if out.json {
        output::print_json(&serde_json::json!({
            "session": a.session,
            "output": a.output.display().to_string(),
            "format": if gzip { "tar.gz" } else { "tar" },
            "bytes": total,
        }));
    } else if !is_dash(&a.output) {
        outln!(
            "exported {} to {} ({})",
            a.session,
            a.output.display(),
            output::size(total)
        );
    }
    Ok(())
}
