//! `aether.v1.FileService`: streamed reads and writes, range writes, and the namespace.

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Streaming};

use aether_proto::v1 as pb;
use aether_proto::v1::file_service_server::FileService;
use aether_service::{ListTree, PatchOp, ReadFile, ServiceError, WriteFile};

use super::status::{GrpcResult, invalid, status};
use super::streams::{first, read_to_stream, reader_of};
use super::{Api, convert};

/// Entries per message of a streamed listing (`WalkTree`).
const WALK_BATCH: usize = 1024;

#[tonic::async_trait]
impl FileService for Api {
    type ReadFileStream = BoxStream<pb::ReadFileResponse>;
    type WalkTreeStream = BoxStream<pb::Listing>;

    async fn read_file(&self, req: Request<pb::ReadFileRequest>) -> GrpcResult<Self::ReadFileStream> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let read = ReadFile {
            session: r.session,
            path: r.path,
            at: r.at,
            content_id: r.content_id,
            opened: r.opened,
            offset: r.offset,
        };
        // The stat the first message carries and every byte come from this one opened version.
        let file = self.service().open_file(&caller, read).await.map_err(status)?;
        let len = file.clip(r.offset, r.length.unwrap_or(u64::MAX));
        let reader = file.reader(r.offset, len);
        let mut head = Some(convert::stat(file.into_stat()));
        Ok(Api::handed(
            &caller,
            Response::new(read_to_stream(
                reader,
                r.offset,
                len,
                self.state.feed(),
                move |offset, data, _| pb::ReadFileResponse {
                    offset,
                    data,
                    stat: head.take(),
                },
            )),
        ))
    }

    async fn write_file(&self, req: Request<Streaming<pb::WriteFileRequest>>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let mut stream = req.into_inner();
        let head = first(&mut stream).await?;
        let write = WriteFile {
            session: head.session,
            path: head.path,
            size: head.size,
            mode: head.mode,
            create_parents: !head.no_parents,
            offset: head.offset,
            mtime: head.mtime_ns,
        };
        let reader = reader_of(head.data, stream, |m: pb::WriteFileRequest| m.data);
        let stat = self
            .service()
            .write_file(&caller, write, reader)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(stat))))
    }

    async fn patch_file(&self, req: Request<pb::PatchFileRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let op = match r.op {
            Some(pb::patch_file_request::Op::Write(w)) => PatchOp::Write {
                offset: w.offset,
                data: w.data,
            },
            Some(pb::patch_file_request::Op::Truncate(size)) => PatchOp::Truncate(size),
            None => return Err(invalid("give one of write or truncate")),
        };
        let stat = self
            .service()
            .patch_file(&caller, &r.session, &r.path, op)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(stat))))
    }

    async fn delete_file(&self, req: Request<pb::DeleteFileRequest>) -> GrpcResult<pb::Empty> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        self.service()
            .delete(&caller, &r.session, &r.path, r.recursive)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(pb::Empty {})))
    }

    async fn stat(&self, req: Request<pb::StatRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let service = self.service();
        let s = match r.content_id.as_deref() {
            Some(content) => {
                service
                    .stat_opened(&caller, &r.session, &r.path, r.at.as_deref(), content)
                    .await
            }
            None => service.stat(&caller, &r.session, &r.path, r.at.as_deref()).await,
        }
        .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }

    /// One message: a recursive listing is walked up to `max_list_tree_entries` entries and
    /// refused past them (MountService.ListDirs and REST stream a tree of any size).
    async fn list_tree(&self, req: Request<pb::ListTreeRequest>) -> GrpcResult<pb::Listing> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let path = r.path.trim_matches('/').to_owned();
        let list = ListTree {
            session: r.session,
            path: r.path,
            recursive: r.recursive,
            at: r.at,
        };
        let listing = self.service().list_tree(&caller, list).await.map_err(status)?;
        Ok(Api::handed(
            &caller,
            Response::new(pb::Listing {
                path,
                entries: listing.entries.into_iter().map(|e| convert::stat(e.stat)).collect(),
                seq: listing.seq,
            }),
        ))
    }

    /// A stream: the walk's first batch is taken before the answer starts (an error about the
    /// path is the call's status), every later one when the client asks for the next message.
    async fn walk_tree(&self, req: Request<pb::ListTreeRequest>) -> GrpcResult<Self::WalkTreeStream> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let path = r.path.trim_matches('/').to_owned();
        let walk = if r.recursive {
            self.service().walk(&caller, &r.session, &r.path, r.at.as_deref()).await
        } else {
            self.service()
                .walk_one(&caller, &r.session, &r.path, r.at.as_deref())
                .await
        }
        .map_err(status)?;
        // Every message shows the one pinned state the walk reads.
        let seq = walk.seq();
        let (walk, first) = walk
            .next_batch(WALK_BATCH)
            .await
            .map_err(|e| status(ServiceError::from(e)))?;
        let message = move |entries: Vec<aether_core::DirEntry>| pb::Listing {
            path: path.clone(),
            entries: entries.into_iter().map(|e| convert::stat(e.stat)).collect(),
            seq,
        };
        let head = futures_util::stream::once(std::future::ready(Ok(message(first))));
        let rest = futures_util::stream::unfold(Some(walk), move |walk| {
            let message = message.clone();
            async move {
                match walk?.next_batch(WALK_BATCH).await {
                    Ok((_, batch)) if batch.is_empty() => None,
                    Ok((walk, batch)) => Some((Ok(message(batch)), Some(walk))),
                    Err(e) => {
                        tracing::warn!(error = %e, "a streamed listing stopped after its first message");
                        Some((Err(status(ServiceError::from(e))), None))
                    }
                }
            }
        });
        let out = futures_util::StreamExt::chain(head, rest);
        Ok(Api::handed(&caller, Response::new(Box::pin(out))))
    }

    async fn rename(&self, req: Request<pb::RenameRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .rename(&caller, &r.session, &r.from, &r.to)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }

    async fn mkdir(&self, req: Request<pb::MkdirRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .mkdir(&caller, &r.session, &r.path, r.parents)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }

    async fn symlink(&self, req: Request<pb::SymlinkRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .symlink(&caller, &r.session, &r.path, &r.target)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }

    async fn chmod(&self, req: Request<pb::ChmodRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .chmod(&caller, &r.session, &r.path, r.mode)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }

    async fn chown(&self, req: Request<pb::ChownRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .chown(&caller, &r.session, &r.path, r.uid, r.gid)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }

    async fn mknod(&self, req: Request<pb::MknodRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .mknod(&caller, &r.session, &r.path, &r.kind, r.mode, r.rdev)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }

    async fn link(&self, req: Request<pb::LinkRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .link(&caller, &r.session, &r.from, &r.to)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }

    async fn set_times(&self, req: Request<pb::SetTimesRequest>) -> GrpcResult<pb::Stat> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .set_times(&caller, &r.session, &r.path, r.mtime_ns)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::stat(s))))
    }
}
