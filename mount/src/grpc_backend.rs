//! The mount's backend over aetherd's gRPC API: blocking calls on a tokio runtime the mount owns.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::runtime::Handle;
use tonic::Code;

use aether_proto::upload;
use aether_proto::v1 as pb;

use crate::backend::{
    Backend, BackendError, BackendResult, BatchReply, Change, EntryKind, RemoteEntry, RemoteOp, apply_one_by_one,
};
use crate::content_layout::ChunkRef;

use crate::verify::unhex;
use aether_proto::remote::Remote;

/// Largest `Stat` answer the mount accepts: the extents of a file of about 200 GiB.
const MAX_STAT_MESSAGE: usize = 256 << 20;

pub struct GrpcBackend {
    rt: Handle,
    client: Remote,
    session: String,
    /// A revision for a read-only view (checkpoint or commit).
    at: Option<String>,
    counts: CallCounts,
}

/// Calls of one kind: how many, the content bytes they brought, and the time spent waiting
/// for them (summed over concurrent callers).
#[derive(Default)]
struct Counter {
    calls: AtomicU64,
    bytes: AtomicU64,
    nanos: AtomicU64,
}

impl Counter {
    fn add(&self, bytes: u64, since: Instant) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.nanos
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn show(&self, name: &str) -> String {
        format!(
            "{name} {} calls {} bytes {} ms",
            self.calls.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.nanos.load(Ordering::Relaxed) / 1_000_000
        )
    }
}

/// What the mount asked of the server, for its log at the end (where a cold command's time
/// went: round trips, bytes, waiting).
#[derive(Default)]
struct CallCounts {
    list: Counter,
    list_dirs: Counter,
    read: Counter,
    chunks: Counter,
}

impl GrpcBackend {
    pub fn new(rt: Handle, client: Remote, session: String, at: Option<String>) -> GrpcBackend {
        GrpcBackend {
            rt,
            client,
            session,
            at,
            counts: CallCounts::default(),
        }
    }

    /// The calls made so far, one line (`list`, `list_dirs` with inline bytes, `read`,
    /// `chunks`).
    pub fn call_counts(&self) -> String {
        let c = &self.counts;
        [
            c.list.show("list"),
            c.list_dirs.show("list_dirs"),
            c.read.show("read"),
            c.chunks.show("chunks"),
        ]
        .join(", ")
    }
}

/// A status as the mount's error. The server's machine-readable `aether-code` decides when it
/// names a code the mount tells apart; the gRPC code otherwise (a server or proxy that sends
/// none). Never the message: it is for people. The errno each becomes is
/// [`BackendError::errno`]; `docs/mount.md` lists what a user sees.
pub fn backend_error(s: &tonic::Status) -> BackendError {
    let msg = s.message().to_owned();
    let code = s
        .metadata()
        .get("aether-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match code {
        "not_found" => return BackendError::NotFound(msg),
        "already_exists" => return BackendError::Exists(msg),
        "not_a_directory" => return BackendError::NotDir(msg),
        "is_a_directory" => return BackendError::IsDir(msg),
        "not_empty" => return BackendError::NotEmpty(msg),
        "stale" => return BackendError::Stale(msg),
        "read_only" => return BackendError::ReadOnly(msg),
        "too_large" => return BackendError::TooLarge(msg),
        "quota_exceeded" => return BackendError::QuotaExceeded(msg),
        "unauthorized" => return BackendError::Unauthenticated(msg),
        "forbidden" => return BackendError::Denied(msg),
        // The mount's token is over its rate: a wait, then the same call again (not EDQUOT).
        "rate_limited" => return BackendError::Unavailable(msg),
        _ => {}
    }
    match s.code() {
        Code::NotFound => BackendError::NotFound(msg),
        Code::AlreadyExists => BackendError::Exists(msg),
        // Without `too_large`: a quota or a count, not the size of this request.
        Code::ResourceExhausted => BackendError::QuotaExceeded(msg),
        Code::InvalidArgument => BackendError::Invalid(msg),
        Code::PermissionDenied => BackendError::Denied(msg),
        Code::Unauthenticated => BackendError::Unauthenticated(msg),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => BackendError::Unavailable(msg),
        _ => BackendError::Other(msg),
    }
}

fn kind_of(kind: &str) -> EntryKind {
    // A kind newer than this mount shows as a file, as before kinds were added.
    EntryKind::parse(kind).unwrap_or(EntryKind::File)
}

fn entry(s: pb::Stat) -> RemoteEntry {
    let name = s.path.rsplit('/').next().unwrap_or(&s.path).to_owned();
    RemoteEntry {
        name,
        kind: kind_of(&s.kind),
        size: s.size,
        mode: s.mode,
        mtime_ns: s.mtime_ns,
        content_id: s.oid,
        symlink_target: s.symlink_target,
        uid: s.uid,
        gid: s.gid,
        rdev: s.rdev,
        nlink: s.nlink,
        link: s.link,
    }
}

impl Backend for GrpcBackend {
    fn list(&self, path: &str) -> BackendResult<Vec<RemoteEntry>> {
        let req = pb::ListTreeRequest {
            session: self.session.clone(),
            path: path.to_owned(),
            recursive: false,
            at: self.at.clone(),
        };
        let mut files = self.client.files();
        let since = Instant::now();
        // Streamed: a directory of any size lists (the one-message ListTree has a bound).
        let entries = self.rt.block_on(async move {
            let mut stream = files.walk_tree(req).await.map_err(|s| backend_error(&s))?.into_inner();
            let mut entries = Vec::new();
            while let Some(m) = stream.message().await.map_err(|s| backend_error(&s))? {
                entries.extend(m.entries.into_iter().map(entry));
            }
            Ok::<_, crate::backend::BackendError>(entries)
        })?;
        self.counts.list.add(0, since);
        Ok(entries)
    }

    fn list_dirs(
        &self,
        path: &str,
        opts: &crate::prefetch::ListDirs,
    ) -> BackendResult<Vec<crate::prefetch::ListedDir>> {
        let req = pb::ListDirsRequest {
            session: self.session.clone(),
            path: path.to_owned(),
            at: self.at.clone(),
            max_entries: opts.max_entries,
            inline_max: opts.inline_max,
            inline_budget: opts.inline_budget,
            inline_from: opts.inline_from.clone(),
        };
        let mut mount = self.client.mount();
        let since = Instant::now();
        let batched = self.rt.block_on(async move {
            let mut stream = match mount.list_dirs(req).await {
                Ok(r) => r.into_inner(),
                // A server without the batched call.
                Err(s) if s.code() == Code::Unimplemented => return Ok(None),
                Err(s) => return Err(backend_error(&s)),
            };
            // A directory comes in one message or more, the last without `more`.
            let mut out: Vec<crate::prefetch::ListedDir> = Vec::new();
            let mut open = false;
            while let Some(d) = stream.message().await.map_err(|s| backend_error(&s))? {
                let entries = d.entries.into_iter().map(entry);
                let contents = d.contents.into_iter().map(|c| (c.oid, c.data));
                match out.last_mut() {
                    Some(dir) if open && dir.path == d.path => {
                        dir.entries.extend(entries);
                        dir.contents.extend(contents);
                    }
                    _ if open => {
                        return Err(BackendError::Other(format!(
                            "the server listed {:?} before the end of {:?}",
                            d.path,
                            out.last().map(|dir| dir.path.as_str()).unwrap_or_default()
                        )));
                    }
                    _ => out.push(crate::prefetch::ListedDir {
                        path: d.path,
                        entries: entries.collect(),
                        contents: contents.collect(),
                        seq: d.seq,
                    }),
                }
                open = d.more;
            }
            // A directory below whose end did not come is incomplete: not used. The one asked
            // for always ends, or the call failed.
            if open && out.pop().is_some() && out.is_empty() {
                return Err(BackendError::Other(format!(
                    "the server's listing of {path:?} ended early"
                )));
            }
            Ok(Some(out))
        })?;
        match batched {
            Some(dirs) => {
                let bytes = dirs.iter().flat_map(|d| &d.contents).map(|(_, b)| b.len() as u64).sum();
                self.counts.list_dirs.add(bytes, since);
                Ok(dirs)
            }
            None => crate::prefetch::list_dirs_one_by_one(self, path, opts),
        }
    }

    fn read(&self, path: &str, content_id: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        let req = pb::ReadFileRequest {
            session: self.session.clone(),
            path: path.to_owned(),
            at: self.at.clone(),
            offset,
            length: Some(len),
            content_id: Some(content_id.to_owned()),
            // An open descriptor keeps reading the version it opened, replaced or not.
            opened: true,
        };
        let mut files = self.client.files();
        let since = Instant::now();
        let got = self.rt.block_on(async move {
            let mut stream = files.read_file(req).await.map_err(|s| backend_error(&s))?.into_inner();
            let mut out = Vec::with_capacity(len.min(1 << 24) as usize);
            let mut first = true;
            while let Some(msg) = stream.message().await.map_err(|s| backend_error(&s))? {
                if first {
                    first = false;
                    // The bytes are cached under `content_id`: refuse anything else.
                    let oid = msg.stat.as_ref().and_then(|s| s.oid.as_deref());
                    if oid != Some(content_id) {
                        return Err(BackendError::Stale(format!("{path} changed on the server")));
                    }
                }
                // Every message continues where the previous one ended.
                if msg.offset != offset + out.len() as u64 {
                    return Err(BackendError::Other(format!(
                        "{path}: the server sent bytes at {} where {} was next",
                        msg.offset,
                        offset + out.len() as u64
                    )));
                }
                if out.len() as u64 + msg.data.len() as u64 > len {
                    return Err(BackendError::Other(format!(
                        "{path}: the server sent more than the {len} bytes asked for"
                    )));
                }
                out.extend_from_slice(&msg.data);
            }
            Ok(out)
        });
        if let Ok(out) = &got {
            self.counts.read.add(out.len() as u64, since);
        }
        got
    }

    fn chunks(&self, path: &str, content_id: &str) -> BackendResult<Option<Vec<ChunkRef>>> {
        let req = pb::StatRequest {
            session: self.session.clone(),
            path: path.to_owned(),
            at: self.at.clone(),
            // The layout of the version the mount opened, replaced or not.
            content_id: Some(content_id.to_owned()),
        };
        // A file's extents grow with its size (about 80 bytes per 64 KiB chunk).
        let mut files = self.client.files().max_decoding_message_size(MAX_STAT_MESSAGE);
        let since = Instant::now();
        let stat = self
            .rt
            .block_on(files.stat(req))
            .map_err(|s| backend_error(&s))?
            .into_inner();
        self.counts.chunks.add(0, since);
        if stat.kind != "file" || stat.oid.as_deref() != Some(content_id) {
            return Err(BackendError::Stale(format!("{path} changed on the server")));
        }
        if !stat.chunked {
            return Ok(None);
        }
        stat.extents
            .iter()
            .map(|e| {
                let bad = || BackendError::Other(format!("{path}: the server sent a malformed extent {e:?}"));
                Ok(ChunkRef {
                    offset: e.offset,
                    len: u32::try_from(e.length).map_err(|_| bad())?,
                    blake3: unhex::<32>(&e.blake3).ok_or_else(bad)?,
                })
            })
            .collect::<BackendResult<Vec<_>>>()
            .map(Some)
    }

    fn put(
        &self,
        path: &str,
        mode: u32,
        size: u64,
        mtime_ns: Option<i64>,
        data: Box<dyn Read + Send>,
    ) -> BackendResult<String> {
        let head = pb::WriteFileRequest {
            session: self.session.clone(),
            path: path.to_owned(),
            mode: Some(mode),
            no_parents: true,
            size: Some(size),
            offset: 0,
            mtime_ns,
            data: Vec::new(),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let name = path.to_owned();
        self.rt
            .spawn_blocking(move || upload::pump(data, tx, |e| format!("reading {name} failed: {e}")));
        let (stream, failed) = upload::messages(
            rx,
            |_| {},
            head,
            |m, data| m.data = data,
            |data| pb::WriteFileRequest {
                data,
                ..Default::default()
            },
        );
        let mut files = self.client.files();
        let call = files.write_file(stream);
        let stat = match self.rt.block_on(upload::upload(call, failed)) {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => return Err(backend_error(&status)),
            // Reading the local copy failed: the call was dropped and the server kept nothing.
            Err(why) => return Err(BackendError::Other(why)),
        };
        if stat.size != size {
            return Err(BackendError::Other(format!(
                "{path}: the server stored {} bytes of {size}",
                stat.size
            )));
        }
        Ok(stat.oid.unwrap_or_default())
    }

    fn apply_batch(&self, changes: &[Change]) -> BackendResult<BatchReply> {
        use pb::batch_change::Op;
        let to_pb = |c: &Change| pb::BatchChange {
            op: Some(match c.clone() {
                Change::Put {
                    path,
                    mode,
                    data,
                    mtime_ns,
                } => Op::Put(pb::BatchPut {
                    path,
                    data,
                    mode: Some(mode),
                    no_parents: true,
                    mtime_ns,
                }),
                Change::Op(RemoteOp::Mkdir { path }) => Op::Mkdir(pb::BatchMkdir { path, parents: false }),
                Change::Op(RemoteOp::Symlink { path, target }) => Op::Symlink(pb::BatchSymlink { path, target }),
                Change::Op(RemoteOp::Unlink { path }) => Op::Delete(pb::BatchDelete { path, recursive: false }),
                Change::Op(RemoteOp::Rmdir { path }) => Op::Delete(pb::BatchDelete { path, recursive: false }),
                Change::Op(RemoteOp::Rename { from, to }) => Op::Rename(pb::BatchRename { from, to }),
                Change::Op(RemoteOp::Chmod { path, mode }) => Op::Chmod(pb::BatchChmod { path, mode }),
                Change::Op(RemoteOp::Chown { path, uid, gid }) => Op::Chown(pb::BatchChown { path, uid, gid }),
                Change::Op(RemoteOp::Mknod { path, kind, mode, rdev }) => Op::Mknod(pb::BatchMknod {
                    path,
                    kind: kind.as_str().to_owned(),
                    mode,
                    rdev,
                }),
                Change::Op(RemoteOp::Link { from, to }) => Op::Link(pb::BatchLink { from, to }),
                Change::Op(RemoteOp::SetTimes { path, mtime_ns }) => Op::SetTimes(pb::BatchSetTimes { path, mtime_ns }),
            }),
        };
        let req = pb::ApplyBatchRequest {
            session: self.session.clone(),
            changes: changes.iter().map(to_pb).collect(),
        };
        let mut batch = self.client.batch();
        let resp = match self.rt.block_on(batch.apply_batch(req)) {
            Ok(r) => r.into_inner(),
            // A server without batches: one call per change.
            Err(s) if s.code() == Code::Unimplemented => return apply_one_by_one(self, changes),
            Err(s) => return Err(backend_error(&s)),
        };
        let applied = resp.applied as usize;
        if applied > changes.len() || resp.results.len() != applied {
            return Err(BackendError::Other(format!(
                "the server answered a batch of {} changes with {applied} applied and {} results",
                changes.len(),
                resp.results.len()
            )));
        }
        let done = changes
            .iter()
            .zip(resp.results)
            .map(|(c, stat)| match c {
                Change::Put { .. } => Some(stat.oid.unwrap_or_default()),
                Change::Op(_) => None,
            })
            .collect();
        let failed = resp.error.map(|e| {
            let mut md = tonic::metadata::MetadataMap::new();
            if let Ok(v) = e.aether_code.parse() {
                md.insert("aether-code", v);
            }
            backend_error(&tonic::Status::with_metadata(Code::from(e.code), e.message, md))
        });
        Ok(BatchReply { done, failed })
    }

    fn apply(&self, op: &RemoteOp) -> BackendResult<()> {
        let session = self.session.clone();
        let mut files = self.client.files();
        let result = self.rt.block_on(async move {
            match op.clone() {
                RemoteOp::Mkdir { path } => files
                    .mkdir(pb::MkdirRequest {
                        session,
                        path,
                        parents: false,
                    })
                    .await
                    .map(drop),
                RemoteOp::Symlink { path, target } => files
                    .symlink(pb::SymlinkRequest { session, path, target })
                    .await
                    .map(drop),
                RemoteOp::Unlink { path } | RemoteOp::Rmdir { path } => files
                    .delete_file(pb::DeleteFileRequest {
                        session,
                        path,
                        recursive: false,
                    })
                    .await
                    .map(drop),
                RemoteOp::Rename { from, to } => files.rename(pb::RenameRequest { session, from, to }).await.map(drop),
                RemoteOp::Chmod { path, mode } => files.chmod(pb::ChmodRequest { session, path, mode }).await.map(drop),
                RemoteOp::Chown { path, uid, gid } => files
                    .chown(pb::ChownRequest {
                        session,
                        path,
                        uid,
                        gid,
                    })
                    .await
                    .map(drop),
                RemoteOp::Mknod { path, kind, mode, rdev } => files
                    .mknod(pb::MknodRequest {
                        session,
                        path,
                        kind: kind.as_str().to_owned(),
                        mode,
                        rdev,
                    })
                    .await
                    .map(drop),
                RemoteOp::Link { from, to } => files.link(pb::LinkRequest { session, from, to }).await.map(drop),
                RemoteOp::SetTimes { path, mtime_ns } => files
                    .set_times(pb::SetTimesRequest {
                        session,
                        path,
                        mtime_ns,
                    })
                    .await
                    .map(drop),
            }
        });
        result.map_err(|s| backend_error(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, aether_code: Option<&'static str>) -> tonic::Status {
        let mut md = tonic::metadata::MetadataMap::new();
        if let Some(c) = aether_code {
            md.insert("aether-code", tonic::metadata::MetadataValue::from_static(c));
        }
        tonic::Status::with_metadata(code, "m", md)
    }

    /// What each refusal the server can give a change becomes for the `fsync` or `close` that
    /// waits for it (the gRPC code and `aether-code` are the server's, server/src/grpc/status.rs).
    #[test]
    fn each_refusal_reaches_the_kernel_as_its_errno() {
        let cases = [
            // Over --max-file-size, or a batch over the server's byte limit.
            (Code::ResourceExhausted, Some("too_large"), libc::EFBIG),
            // An archived session is read-only (FailedPrecondition, like a conflict: only the
            // aether-code tells them apart).
            (Code::FailedPrecondition, Some("read_only"), libc::EROFS),
            // A token revoked while mounted, and a token that may only read.
            (Code::Unauthenticated, Some("unauthorized"), libc::EACCES),
            (Code::PermissionDenied, Some("forbidden"), libc::EACCES),
            // A quota-like limit: resource exhausted without `too_large`.
            (Code::ResourceExhausted, None, libc::EDQUOT),
            (Code::ResourceExhausted, Some("quota"), libc::EDQUOT),
            (Code::ResourceExhausted, Some("quota_exceeded"), libc::EDQUOT),
            // The same refusals from a server that sends no aether-code.
            (Code::PermissionDenied, None, libc::EACCES),
            (Code::Unauthenticated, None, libc::EACCES),
            // Anything else refused: EIO.
            (Code::FailedPrecondition, Some("conflict"), libc::EIO),
            (Code::FailedPrecondition, Some("is_a_symlink"), libc::EIO),
            (Code::Internal, Some("storage"), libc::EIO),
            (Code::Internal, Some("corrupt"), libc::EIO),
            (Code::OutOfRange, Some("range_not_satisfiable"), libc::EIO),
            (Code::Unimplemented, Some("method_not_allowed"), libc::EIO),
            // The entry-level answers keep their own errno.
            (Code::NotFound, Some("not_found"), libc::ENOENT),
            (Code::AlreadyExists, Some("already_exists"), libc::EEXIST),
            (Code::FailedPrecondition, Some("not_a_directory"), libc::ENOTDIR),
            (Code::FailedPrecondition, Some("is_a_directory"), libc::EISDIR),
            (Code::FailedPrecondition, Some("not_empty"), libc::ENOTEMPTY),
            (Code::FailedPrecondition, Some("stale"), libc::ESTALE),
            (Code::InvalidArgument, Some("invalid_path"), libc::EINVAL),
        ];
        for (code, aether_code, errno) in cases {
            let e = backend_error(&status(code, aether_code));
            assert_eq!(e.errno(), errno, "{code:?} {aether_code:?} became {e:?}");
            assert!(
                !e.is_retryable(),
                "{code:?} {aether_code:?} is a refusal, not a failure to reach"
            );
        }
    }

    #[test]
    fn failures_to_reach_the_server_are_retried_not_refused() {
        for (code, aether_code) in [
            (Code::Unavailable, Some("unavailable")),
            (Code::Unavailable, None),
            (Code::DeadlineExceeded, Some("timeout")),
            (Code::Cancelled, None),
            (Code::Unknown, None),
            (Code::ResourceExhausted, Some("rate_limited")),
        ] {
            assert!(backend_error(&status(code, aether_code)).is_retryable(), "{code:?}");
        }
    }
}
