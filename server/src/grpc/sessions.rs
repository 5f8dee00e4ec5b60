//! `aether.v1.SessionService`: lifecycle, tar import/export, and the watch stream.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use aether_core::{CreateOptions, ListFilter, Page, SessionSource, SessionState};
use aether_proto::v1 as pb;
use aether_proto::v1::session_service_server::SessionService;

use super::status::{GrpcResult, from_api, from_core, invalid, page_limit};
use super::streams::{channel_stream, first, reader_of};
use super::{Api, convert, session_id};
use crate::body::ChannelWriter;

/// Events read from the store per query while catching up.
const EVENT_PAGE: usize = 500;
/// Response metadata of `WatchEvents`: the cursor the stream starts after.
const CURSOR_HEADER: &str = "aether-cursor";

fn options(
    labels: impl IntoIterator<Item = (String, String)>,
    tags: Vec<String>,
    branch: Option<String>,
) -> CreateOptions {
    CreateOptions {
        labels: labels.into_iter().collect(),
        tags: tags.into_iter().collect(),
        branch,
    }
}

#[tonic::async_trait]
impl SessionService for Api {
    async fn create_session(&self, req: Request<pb::CreateSessionRequest>) -> GrpcResult<pb::Session> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let source = match r.source {
            None => SessionSource::Empty,
            Some(pb::create_session_request::Source::Session(s)) => SessionSource::Session {
                id: session_id(&s.session)?,
                at: s.at,
            },
            Some(pb::create_session_request::Source::Git(g)) => {
                let source = aether_gitbridge::import::GitSource {
                    url: g.url,
                    rev: g.r#ref,
                };
                let opts = options(r.labels, r.tags, r.branch);
                let s = aether_gitbridge::import::import_git(&self.state.engine, &source, opts, &self.state.git_import)
                    .await
                    .map_err(|e| from_api(e.into()))?;
                return Ok(Response::new(convert::session(s)));
            }
        };
        let s = self
            .state
            .engine
            .create_session(source, options(r.labels, r.tags, r.branch))
            .await
            .map_err(from_core)?;
        Ok(Response::new(convert::session(s)))
    }

    async fn list_sessions(&self, req: Request<pb::ListSessionsRequest>) -> GrpcResult<pb::ListSessionsResponse> {
        let principal = self.caller(&req).await?;
        let r = req.into_inner();
        let state = match r.state.as_deref() {
            None | Some("") => None,
            Some(s) => Some(SessionState::parse(s).ok_or_else(|| invalid(format!("unknown state '{s}'")))?),
        };
        let limit = page_limit(r.limit, 100)?;
        let after = r
            .after
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(session_id)
            .transpose()?;
        let filter = ListFilter {
            labels: r.labels.into_iter().collect(),
            state,
        };
        let page = self
            .state
            .engine
            .list_sessions(&filter, &Page { limit, after })
            .await
            .map_err(from_core)?;
        let next = if page.len() == limit {
            page.last().map(|s| s.id.to_string())
        } else {
            None
        };
        let sessions = page
            .into_iter()
            .filter(|s| principal.sees(&s.id))
            .map(convert::session)
            .collect();
        Ok(Response::new(pb::ListSessionsResponse { sessions, next }))
    }

    async fn get_session(&self, req: Request<pb::GetSessionRequest>) -> GrpcResult<pb::Session> {
        let id = self.for_session(&req, &req.get_ref().id, false).await?;
        let s = self.state.engine.get_session(&id).await.map_err(from_core)?;
        Ok(Response::new(convert::session(s)))
    }

    async fn update_session(&self, req: Request<pb::UpdateSessionRequest>) -> GrpcResult<pb::Session> {
        let id = self.for_session(&req, &req.get_ref().id, true).await?;
        let r = req.into_inner();
        let mut labels: BTreeMap<String, Option<String>> =
            r.set_labels.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for k in r.remove_labels {
            labels.insert(k, None);
        }
        let tags = r.replace_tags.then(|| r.tags.into_iter().collect::<BTreeSet<_>>());
        let s = self
            .state
            .engine
            .update_session(&id, labels, tags)
            .await
            .map_err(from_core)?;
        Ok(Response::new(convert::session(s)))
    }

    async fn fork_session(&self, req: Request<pb::ForkSessionRequest>) -> GrpcResult<pb::Session> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let source = SessionSource::Session {
            id: session_id(&r.id)?,
            at: r.at,
        };
        let s = self
            .state
            .engine
            .create_session(source, options(r.labels, r.tags, None))
            .await
            .map_err(from_core)?;
        Ok(Response::new(convert::session(s)))
    }

    async fn archive_session(&self, req: Request<pb::GetSessionRequest>) -> GrpcResult<pb::Session> {
        let id = self.for_session(&req, &req.get_ref().id, true).await?;
        let s = self.state.engine.archive_session(&id).await.map_err(from_core)?;
        Ok(Response::new(convert::session(s)))
    }

    async fn delete_session(&self, req: Request<pb::GetSessionRequest>) -> GrpcResult<pb::Empty> {
        self.admin(&req).await?;
        let id = session_id(&req.get_ref().id)?;
        self.state.engine.delete_session(&id).await.map_err(from_core)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn import_tar(&self, req: Request<Streaming<pb::ImportTarRequest>>) -> GrpcResult<pb::Session> {
        self.admin(&req).await?;
        let mut stream = req.into_inner();
        let head = first(&mut stream).await?;
        let opts = options(head.labels, head.tags, None);
        let reader = reader_of(head.data, stream, |m: pb::ImportTarRequest| m.data);
        let s = self.state.engine.import_tar(reader, opts).await.map_err(from_core)?;
        Ok(Response::new(convert::session(s)))
    }

    type ExportTarStream = BoxStream<pb::Chunk>;

    async fn export_tar(&self, req: Request<pb::ExportTarRequest>) -> GrpcResult<Self::ExportTarStream> {
        let id = self.for_session(&req, &req.get_ref().id, false).await?;
        let r = req.into_inner();
        // Fail before the stream starts when the session or revision does not exist.
        self.state
            .engine
            .stat(&id, "", r.at.as_deref())
            .await
            .map_err(from_core)?;
        let (writer, mut bytes_rx) = ChannelWriter::new();
        let errors = writer.error_sender();
        let engine = self.state.engine.clone();
        let session = id.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.export_tar(&session, r.at.as_deref(), r.gzip, writer).await {
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
        Ok(Response::new(channel_stream(rx)))
    }

    type WatchEventsStream = BoxStream<pb::Event>;

    async fn watch_events(&self, req: Request<pb::WatchEventsRequest>) -> GrpcResult<Self::WatchEventsStream> {
        let id = self.for_session(&req, &req.get_ref().id, false).await?;
        let engine = self.state.engine.clone();
        // Subscribe before the first read so nothing written in between is missed.
        let mut watch = engine.watch(&id);
        let mut cursor = match req.get_ref().from_now {
            true => engine.event_cursor(&id).await.map_err(from_core)?,
            false => req.get_ref().after_seq,
        };
        // Fail now (not inside the stream) for a session that does not exist.
        let mut batch = engine.events(&id, cursor, EVENT_PAGE).await.map_err(from_core)?;
        let start = cursor;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let full = batch.len() == EVENT_PAGE;
                for e in batch.drain(..) {
                    cursor = e.seq;
                    if tx.send(Ok(convert::event(e))).await.is_err() {
                        return;
                    }
                }
                if !full {
                    tokio::select! {
                        more = watch.changed() => if !more { return },
                        () = tx.closed() => return,
                    }
                }
                match engine.events(&id, cursor, EVENT_PAGE).await {
                    Ok(b) => batch = b,
                    Err(e) => {
                        let _ = tx.send(Err(from_core(e))).await;
                        return;
                    }
                }
            }
        });
        let mut resp = Response::new(channel_stream(rx));
        resp.metadata_mut().insert(CURSOR_HEADER, start.into());
        Ok(resp)
    }
}
