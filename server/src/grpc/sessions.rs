//! `aether.v1.SessionService`: lifecycle, tar import/export, and the watch stream.

use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use aether_proto::v1 as pb;
use aether_proto::v1::session_service_server::SessionService;
use aether_service::{
    ChangesSince, CreateSession, ExportFormat, ExportTar, ListSessions, PageRequest, SessionOptions, Source,
    UpdateSession, WatchFrom,
};

use super::status::{GrpcResult, status};
use super::streams::{channel_stream, first, reader_of};
use super::{Api, convert};
use crate::body::ChannelWriter;

/// Response metadata of `WatchEvents`: the cursor the stream starts after.
const CURSOR_HEADER: &str = "aether-cursor";

fn options(
    labels: impl IntoIterator<Item = (String, String)>,
    tags: Vec<String>,
    branch: Option<String>,
    quota: Option<pb::Quota>,
    retention: Option<pb::Retention>,
) -> SessionOptions {
    SessionOptions {
        labels: labels.into_iter().collect(),
        tags: tags.into_iter().collect(),
        branch,
        quota: convert::quota_of(quota),
        retention: convert::retention_of(retention),
    }
}

#[tonic::async_trait]
impl SessionService for Api {
    async fn create_session(&self, req: Request<pb::CreateSessionRequest>) -> GrpcResult<pb::Session> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let source = match r.source {
            None => Source::Empty,
            Some(pb::create_session_request::Source::Session(s)) => Source::Session {
                session: s.session,
                at: s.at,
            },
            Some(pb::create_session_request::Source::Git(g)) => Source::Git {
                url: g.url,
                rev: g.r#ref,
            },
        };
        let req = CreateSession {
            source,
            options: options(r.labels, r.tags, r.branch, r.quota, r.retention),
        };
        let s = self.service().create_session(&caller, req).await.map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::session(s))))
    }

    async fn list_sessions(&self, req: Request<pb::ListSessionsRequest>) -> GrpcResult<pb::ListSessionsResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let req = ListSessions {
            labels: r.labels.into_iter().collect(),
            state: r.state,
            // 0: the default.
            page: PageRequest {
                limit: (r.limit > 0).then_some(u64::from(r.limit)),
                after: r.after,
            },
        };
        let page = self.service().list_sessions(&caller, req).await.map_err(status)?;
        Ok(Api::handed(
            &caller,
            Response::new(pb::ListSessionsResponse {
                sessions: page.items.into_iter().map(convert::session).collect(),
                next: page.next,
            }),
        ))
    }

    async fn get_session(&self, req: Request<pb::GetSessionRequest>) -> GrpcResult<pb::Session> {
        let caller = self.caller(&req).await?;
        let s = self
            .service()
            .get_session(&caller, &req.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::session(s))))
    }

    async fn update_session(&self, req: Request<pb::UpdateSessionRequest>) -> GrpcResult<pb::Session> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let mut labels: std::collections::BTreeMap<_, _> =
            r.set_labels.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for k in r.remove_labels {
            labels.insert(k, None);
        }
        let update = UpdateSession {
            labels,
            tags: r.replace_tags.then(|| r.tags.into_iter().collect()),
            quota: convert::quota_of(r.quota),
            retention: convert::retention_of(r.retention),
        };
        let s = self
            .service()
            .update_session(&caller, &r.id, update)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::session(s))))
    }

    async fn fork_session(&self, req: Request<pb::ForkSessionRequest>) -> GrpcResult<pb::Session> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let s = self
            .service()
            .fork_session(
                &caller,
                &r.id,
                r.at,
                options(r.labels, r.tags, None, r.quota, r.retention),
            )
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::session(s))))
    }

    async fn archive_session(&self, req: Request<pb::GetSessionRequest>) -> GrpcResult<pb::Session> {
        let caller = self.caller(&req).await?;
        let s = self
            .service()
            .archive_session(&caller, &req.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::session(s))))
    }

    async fn delete_session(&self, req: Request<pb::GetSessionRequest>) -> GrpcResult<pb::Empty> {
        let caller = self.caller(&req).await?;
        self.service()
            .delete_session(&caller, &req.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(pb::Empty {})))
    }

    async fn import_tar(&self, req: Request<Streaming<pb::ImportTarRequest>>) -> GrpcResult<pb::Session> {
        let caller = self.caller(&req).await?;
        // Refused before the stream is read.
        caller.require_admin().map_err(status)?;
        let mut stream = req.into_inner();
        let head = first(&mut stream).await?;
        let opts = options(head.labels, head.tags, None, head.quota, None);
        let reader = reader_of(head.data, stream, |m: pb::ImportTarRequest| m.data);
        let s = self.service().import_tar(&caller, reader, opts).await.map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::session(s))))
    }

    type ExportTarStream = BoxStream<pb::Chunk>;

    async fn export_tar(&self, req: Request<pb::ExportTarRequest>) -> GrpcResult<Self::ExportTarStream> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let req = ExportTar {
            session: r.id,
            at: r.at,
            format: if r.gzip { ExportFormat::TarGz } else { ExportFormat::Tar },
        };
        let export = self.service().export_tar(&caller, req).await.map_err(status)?;
        let (writer, mut bytes_rx) = ChannelWriter::new(self.state.response_stall);
        let errors = writer.error_sender();
        tokio::spawn(async move {
            let session = export.session.clone();
            if let Err(e) = export.write_to(writer).await {
                tracing::warn!(session = %session, error = %e, "grpc export failed mid-stream");
                let _ = errors.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        });
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(piece) = bytes_rx.recv().await {
                let msg = piece
                    .map(|b| pb::Chunk { data: b.to_vec() })
                    .map_err(|e| Status::internal(format!("export failed: {e}")));
                let failed = msg.is_err();
                if tx.send(msg).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Api::handed(&caller, Response::new(channel_stream(rx))))
    }

    type WatchEventsStream = BoxStream<pb::Event>;

    async fn watch_events(&self, req: Request<pb::WatchEventsRequest>) -> GrpcResult<Self::WatchEventsStream> {
        let caller = self.caller(&req).await?;
        let r = req.get_ref();
        let from = if r.from_now {
            WatchFrom::Now
        } else {
            WatchFrom::After(r.after_seq)
        };
        let feed = self
            .service()
            .watch_events(&caller, &r.id, from)
            .await
            .map_err(status)?;
        let stream = futures_util::stream::unfold(feed.events, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item.map(convert::event).map_err(status), rx))
        });
        let mut resp = Response::new(Box::pin(stream) as Self::WatchEventsStream);
        resp.metadata_mut().insert(CURSOR_HEADER, feed.start.into());
        Ok(resp)
    }

    async fn get_activity(&self, req: Request<pb::GetActivityRequest>) -> GrpcResult<pb::ActivityPage> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let req = aether_service::ActivityRequest {
            session: r.id,
            after: r.after,
            since_ms: r.since_ms,
            until_ms: r.until_ms,
            principal: r.principal,
            surface: r.surface,
            operations: r.operations,
            path_prefix: r.path_prefix,
            limit: r.limit.map(|l| l as usize),
        };
        let page = self.service().activity(&caller, req).await.map_err(status)?;
        let resp = pb::ActivityPage {
            events: page.events.into_iter().map(convert::event).collect(),
            next: page.next,
        };
        Ok(Api::handed(&caller, Response::new(resp)))
    }

    async fn get_analytics(&self, req: Request<pb::GetAnalyticsRequest>) -> GrpcResult<pb::Analytics> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let req = aether_service::AnalyticsRequest {
            session: r.session,
            bucket: r.bucket,
            since_ms: r.since_ms,
            until_ms: r.until_ms,
            top: r.top.map(u64::from),
        };
        let report = self.service().analytics(&caller, req).await.map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::analytics(report))))
    }

    async fn get_session_health(&self, req: Request<pb::GetSessionRequest>) -> GrpcResult<pb::SessionHealth> {
        let caller = self.caller(&req).await?;
        let health = self
            .service()
            .session_health(&caller, &req.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::health(health))))
    }

    async fn changes_since(&self, req: Request<pb::ChangesSinceRequest>) -> GrpcResult<pb::ChangesSinceResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let req = ChangesSince {
            session: r.id,
            since: r.since,
            prefix: r.prefix,
        };
        let c = self.service().changes_since(&caller, req).await.map_err(status)?;
        let resp = pb::ChangesSinceResponse {
            position: c.position,
            everything: c.everything.is_some(),
            reason: c.everything.map(|e| e.as_str().to_owned()).unwrap_or_default(),
            paths: c.paths,
        };
        Ok(Api::handed(&caller, Response::new(resp)))
    }
}
