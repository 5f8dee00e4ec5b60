//! `aether.v1.FileService`: streamed reads and writes, range writes, and the namespace.

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use aether_core::{FileKind, Opened, WriteOptions};
use aether_proto::v1 as pb;
use aether_proto::v1::file_service_server::FileService;

use super::status::{GrpcResult, from_core, invalid, too_large};
use super::streams::{first, read_to_stream, reader_of};
use super::{Api, convert};

/// Bytes gathered per engine call when a write resumes at an offset.
const RESUME_BATCH: usize = 8 << 20;
/// Entries walked per step of a recursive `ListTree`.
const LIST_BATCH: usize = 4096;

fn mode(m: Option<u32>) -> Result<Option<u32>, Status> {
    match m {
        Some(m) if m > 0o7777 => Err(invalid(format!(
            "mode must be permission bits (at most 7777 octal), got {m:o}"
        ))),
        m => Ok(m),
    }
}

#[tonic::async_trait]
impl FileService for Api {
    type ReadFileStream = BoxStream<pb::ReadFileResponse>;

    async fn read_file(&self, req: Request<pb::ReadFileRequest>) -> GrpcResult<Self::ReadFileStream> {
        let id = self.for_session(&req, &req.get_ref().session, false).await?;
        let r = req.into_inner();
        let opened = self
            .state
            .engine
            .open_file(&id, &r.path, r.at.as_deref(), r.content_id.as_deref())
            .await
            .map_err(from_core)?;
        let file = match opened {
            Opened::File(f) => f,
            Opened::NotAFile(stat) if stat.kind == FileKind::Dir => {
                return Err(from_core(aether_core::Error::IsADirectory { path: stat.path }));
            }
            Opened::NotAFile(stat) => {
                return Err(Status::failed_precondition(format!(
                    "'{}' is a symbolic link to '{}'",
                    stat.path,
                    stat.symlink_target.unwrap_or_default()
                )));
            }
        };
        if r.offset > file.size() {
            return Err(Status::out_of_range(format!(
                "offset {} is past the end of '{}' ({} bytes)",
                r.offset,
                file.stat().path,
                file.size()
            )));
        }
        // Every message carries bytes of this one content; the first names it.
        let len = file.clip(r.offset, r.length.unwrap_or(u64::MAX));
        let reader = file.reader(r.offset, len);
        let mut head = Some(convert::stat(file.into_stat()));
        Ok(Response::new(read_to_stream(
            reader,
            r.offset,
            len,
            move |offset, data, _| pb::ReadFileResponse {
                offset,
                data,
                stat: head.take(),
            },
        )))
    }

    async fn write_file(&self, req: Request<Streaming<pb::WriteFileRequest>>) -> GrpcResult<pb::Stat> {
        let principal = self.caller(&req).await?;
        let mut stream = req.into_inner();
        let head = first(&mut stream).await?;
        let id = super::session_id(&head.session)?;
        principal.require(&id, true).map_err(super::status::from_api)?;
        let engine = &self.state.engine;
        let stat = if head.offset == 0 {
            let opts = WriteOptions {
                size: head.size,
                mode: mode(head.mode)?,
                create_parents: !head.no_parents,
            };
            let reader = reader_of(head.data, stream, |m: pb::WriteFileRequest| m.data);
            engine.write_file(&id, &head.path, reader, opts).await
        } else {
            // Resume: keep the first `offset` bytes, replace everything after them.
            let mut at = head.offset;
            let mut buf = head.data;
            loop {
                let next = stream.message().await?;
                let done = next.is_none();
                if let Some(m) = next {
                    buf.extend_from_slice(&m.data);
                }
                if buf.len() >= RESUME_BATCH || (done && !buf.is_empty()) {
                    let n = buf.len() as u64;
                    engine
                        .write_at(&id, &head.path, at, std::mem::take(&mut buf))
                        .await
                        .map_err(from_core)?;
                    at += n;
                }
                if done {
                    break;
                }
            }
            engine.truncate(&id, &head.path, at).await
        };
        Ok(Response::new(convert::stat(stat.map_err(from_core)?)))
    }

    async fn patch_file(&self, req: Request<pb::PatchFileRequest>) -> GrpcResult<pb::Stat> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let r = req.into_inner();
        let engine = &self.state.engine;
        let stat = match r.op {
            Some(pb::patch_file_request::Op::Write(w)) => engine.write_at(&id, &r.path, w.offset, w.data).await,
            Some(pb::patch_file_request::Op::Truncate(size)) => engine.truncate(&id, &r.path, size).await,
            None => return Err(invalid("give one of write or truncate")),
        };
        Ok(Response::new(convert::stat(stat.map_err(from_core)?)))
    }

    async fn delete_file(&self, req: Request<pb::DeleteFileRequest>) -> GrpcResult<pb::Empty> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let r = req.into_inner();
        self.state
            .engine
            .delete(&id, &r.path, r.recursive)
            .await
            .map_err(from_core)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn stat(&self, req: Request<pb::StatRequest>) -> GrpcResult<pb::Stat> {
        let id = self.for_session(&req, &req.get_ref().session, false).await?;
        let r = req.into_inner();
        let s = self
            .state
            .engine
            .stat(&id, &r.path, r.at.as_deref())
            .await
            .map_err(from_core)?;
        Ok(Response::new(convert::stat(s)))
    }

    /// One message: a recursive listing is walked up to `max_list_tree_entries` entries and
    /// refused past them (MountService.ListDirs and REST stream a tree of any size).
    async fn list_tree(&self, req: Request<pb::ListTreeRequest>) -> GrpcResult<pb::Listing> {
        let id = self.for_session(&req, &req.get_ref().session, false).await?;
        let r = req.into_inner();
        let engine = &self.state.engine;
        let path = r.path.trim_matches('/').to_owned();
        if !r.recursive {
            let entries = engine
                .list(&id, &r.path, false, r.at.as_deref())
                .await
                .map_err(from_core)?;
            return Ok(Response::new(pb::Listing {
                path,
                entries: entries.into_iter().map(|e| convert::stat(e.stat)).collect(),
            }));
        }
        let cap = self.state.max_list_tree_entries;
        let mut walk = engine
            .walk(&id, &r.path, true, r.at.as_deref())
            .await
            .map_err(from_core)?;
        let mut entries = Vec::new();
        loop {
            let (next, batch) = walk.next_batch(LIST_BATCH).await.map_err(from_core)?;
            if batch.is_empty() {
                break;
            }
            if entries.len() + batch.len() > cap {
                return Err(too_large(format!(
                    "a recursive ListTree answers with at most {cap} entries (max_list_tree_entries) \
                     and '/{path}' holds more; list it with MountService.ListDirs or \
                     GET /v1/sessions/{id}/tree/{path}?recursive=true, which stream"
                )));
            }
            entries.extend(batch.into_iter().map(|e| convert::stat(e.stat)));
            walk = next;
        }
        Ok(Response::new(pb::Listing { path, entries }))
    }

    async fn rename(&self, req: Request<pb::RenameRequest>) -> GrpcResult<pb::Stat> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let r = req.into_inner();
        let engine = &self.state.engine;
        engine.rename(&id, &r.from, &r.to).await.map_err(from_core)?;
        let s = engine.stat(&id, &r.to, None).await.map_err(from_core)?;
        Ok(Response::new(convert::stat(s)))
    }

    async fn mkdir(&self, req: Request<pb::MkdirRequest>) -> GrpcResult<pb::Stat> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let r = req.into_inner();
        let s = self
            .state
            .engine
            .mkdir(&id, &r.path, r.parents)
            .await
            .map_err(from_core)?;
        Ok(Response::new(convert::stat(s)))
    }

    async fn symlink(&self, req: Request<pb::SymlinkRequest>) -> GrpcResult<pb::Stat> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let r = req.into_inner();
        let s = self
            .state
            .engine
            .symlink(&id, &r.path, &r.target)
            .await
            .map_err(from_core)?;
        Ok(Response::new(convert::stat(s)))
    }

    async fn chmod(&self, req: Request<pb::ChmodRequest>) -> GrpcResult<pb::Stat> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let r = req.into_inner();
        let m = mode(Some(r.mode))?.unwrap_or(r.mode);
        let s = self.state.engine.chmod(&id, &r.path, m).await.map_err(from_core)?;
        Ok(Response::new(convert::stat(s)))
    }
}
