//! `aether.v1.HistoryService`: checkpoints, restore, commits and the log.

use tonic::{Request, Response};

use aether_core::{Identity, ObjectId};
use aether_proto::v1 as pb;
use aether_proto::v1::history_service_server::HistoryService;

use super::status::{GrpcResult, from_core, invalid, page_limit};
use super::{Api, convert};

#[tonic::async_trait]
impl HistoryService for Api {
    async fn create_checkpoint(&self, req: Request<pb::CreateCheckpointRequest>) -> GrpcResult<pb::Checkpoint> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let message = req.into_inner().message;
        let cp = self.state.engine.checkpoint(&id, message).await.map_err(from_core)?;
        Ok(Response::new(convert::checkpoint_outcome(cp)))
    }

    async fn list_checkpoints(
        &self,
        req: Request<pb::ListCheckpointsRequest>,
    ) -> GrpcResult<pb::ListCheckpointsResponse> {
        let id = self.for_session(&req, &req.get_ref().session, false).await?;
        let list = self.state.engine.list_checkpoints(&id).await.map_err(from_core)?;
        Ok(Response::new(pb::ListCheckpointsResponse {
            checkpoints: list.into_iter().map(convert::checkpoint).collect(),
        }))
    }

    async fn restore(&self, req: Request<pb::RestoreRequest>) -> GrpcResult<pb::RestoreResponse> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let rev = req.into_inner().rev;
        let out = self.state.engine.restore(&id, &rev).await.map_err(from_core)?;
        Ok(Response::new(pb::RestoreResponse {
            saved: out.saved.map(convert::checkpoint_outcome),
            restored_commit: out.restored_commit.to_hex().to_string(),
            tree: out.tree.to_hex().to_string(),
        }))
    }

    async fn create_commit(&self, req: Request<pb::CreateCommitRequest>) -> GrpcResult<pb::Commit> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let r = req.into_inner();
        let author = r.author.map(|a| Identity {
            name: a.name,
            email: a.email,
        });
        let c = self
            .state
            .engine
            .commit(&id, r.message, author, r.branch)
            .await
            .map_err(from_core)?;
        Ok(Response::new(convert::commit(c)))
    }

    async fn log(&self, req: Request<pb::LogRequest>) -> GrpcResult<pb::LogResponse> {
        let id = self.for_session(&req, &req.get_ref().session, false).await?;
        let r = req.into_inner();
        let limit = page_limit(r.limit, 50)?;
        let after = r
            .after
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(|a| ObjectId::from_hex(a.as_bytes()).map_err(|_| invalid(format!("'{a}' is not a commit id"))))
            .transpose()?;
        let commits = self
            .state
            .engine
            .log(&id, r.rev, after, limit)
            .await
            .map_err(from_core)?;
        let next = if commits.len() == limit {
            commits.last().map(|c| c.id.to_hex().to_string())
        } else {
            None
        };
        Ok(Response::new(pb::LogResponse {
            commits: commits.into_iter().map(convert::commit).collect(),
            next,
        }))
    }

    async fn get_commit(&self, req: Request<pb::GetCommitRequest>) -> GrpcResult<pb::Commit> {
        let id = self.for_session(&req, &req.get_ref().session, false).await?;
        let rev = req.into_inner().rev;
        let engine = &self.state.engine;
        let info = engine.show_commit(&id, &rev).await.map_err(from_core)?;
        let changes = engine.commit_changes(&id, &rev).await.map_err(from_core)?;
        let mut c = convert::commit(info);
        c.changes = changes.into_iter().map(convert::change).collect();
        Ok(Response::new(c))
    }
}
