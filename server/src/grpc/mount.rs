//! `aether.v1.MountService`: listings of a directory and the directories below it, and the
//! bytes of small files, in one call (`Service::list_dirs`); a mount's handoff channel
//! (`Service::attach_mount`).

use futures_util::StreamExt;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use aether_proto::v1 as pb;
use aether_proto::v1::mount_service_server::MountService;
use aether_service::{ListDirs, MountCommand, MountReport};

use super::status::{GrpcResult, status};
use super::streams::receiver_stream;
use super::{Api, convert};

#[tonic::async_trait]
impl MountService for Api {
    type ListDirsStream = BoxStream<pb::ListedDir>;
    type AttachStream = BoxStream<pb::MountCommand>;

    async fn attach(&self, req: Request<Streaming<pb::MountReport>>) -> GrpcResult<Self::AttachStream> {
        use pb::mount_report::Report;
        let caller = self.caller(&req).await?;
        let mut reports = req.into_inner();
        let session = match reports.message().await? {
            Some(pb::MountReport {
                report: Some(Report::Session(s)),
            }) => s,
            _ => return Err(Status::invalid_argument("the first report names the session")),
        };
        let (attachment, commands) = self.service().attach_mount(&caller, &session).await.map_err(status)?;
        // Never evicted from memory while attached (see `Service::keep_loaded`).
        let loaded = self.service().keep_loaded(&caller, &session).await.map_err(status)?;
        // Reports are read while the mount stays attached; the attachment goes with the stream.
        tokio::spawn(async move {
            let _loaded = loaded;
            loop {
                let report = match reports.message().await {
                    Ok(Some(pb::MountReport { report: Some(r) })) => r,
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                };
                let report = match report {
                    Report::Session(_) => continue,
                    Report::Dirty(n) => MountReport::Dirty(n),
                    Report::Clean(n) => MountReport::Clean(n),
                    Report::Recalled(r) => MountReport::Recalled {
                        recall: r.recall,
                        refused: r.refused,
                        error: r.error,
                    },
                    Report::Changed(c) => MountReport::Changed {
                        id: c.id,
                        paths: c.paths,
                    },
                    Report::Invalidated(n) => MountReport::Invalidated(n),
                    Report::PeersSeen(n) => MountReport::PeersSeen(n),
                };
                if let Err(e) = attachment.report(report).await {
                    tracing::debug!(mount = attachment.mount(), error = %e, "a mount's report was refused; detaching it");
                    break;
                }
            }
        });
        let out = receiver_stream(commands).map(|c| {
            use pb::mount_command::Command;
            Ok(pb::MountCommand {
                command: Some(match c {
                    MountCommand::Ack(n) => Command::Ack(n),
                    MountCommand::Recall(n) => Command::Recall(n),
                    MountCommand::Changed(n) => Command::Changed(n),
                    MountCommand::Invalidate { id, paths } => Command::Invalidate(pb::Invalidate {
                        id,
                        paths: paths.to_vec(),
                    }),
                    MountCommand::Peers { id, count } => Command::Peers(pb::Peers { id, count }),
                }),
            })
        });
        Ok(Api::handed(&caller, Response::new(Box::pin(out))))
    }

    async fn list_dirs(&self, req: Request<pb::ListDirsRequest>) -> GrpcResult<Self::ListDirsStream> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let list = ListDirs {
            session: r.session,
            path: r.path,
            at: r.at,
            max_entries: r.max_entries as usize,
            inline_max: r.inline_max,
            inline_budget: r.inline_budget,
            inline_from: r.inline_from,
        };
        let mut listing = self.service().list_dirs(&caller, list).await.map_err(status)?;
        // The first piece before the answer: an error about the path is the call's status.
        let first = listing.next().await.map_err(status)?;
        let first = futures_util::stream::iter(first.map(|dir| Ok(listed_dir(dir))));
        // The rest as the client takes them: one piece at a time is held (see `DirsListing`).
        let rest = futures_util::stream::unfold(Some(listing), |listing| async move {
            let mut listing = listing?;
            match listing.next().await {
                Ok(Some(dir)) => Some((Ok(listed_dir(dir)), Some(listing))),
                Ok(None) => None,
                Err(e) => Some((Err(status(e)), None)),
            }
        });
        Ok(Api::handed(&caller, Response::new(Box::pin(first.chain(rest)))))
    }
}

fn listed_dir(dir: aether_service::ListedDir) -> pb::ListedDir {
    pb::ListedDir {
        path: dir.path,
        entries: dir.entries.into_iter().map(|e| convert::stat(e.stat)).collect(),
        contents: dir
            .contents
            .into_iter()
            .map(|(oid, data)| pb::InlineContent {
                oid: oid.to_hex().to_string(),
                data,
            })
            .collect(),
        seq: dir.seq,
        more: !dir.last,
    }
}
