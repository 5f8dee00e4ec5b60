//! `aether.v1.HistoryService`: checkpoints, restore, commits and the log.

use tonic::{Request, Response};

use aether_core::Identity;
use aether_proto::v1 as pb;
use aether_proto::v1::history_service_server::HistoryService;
use aether_service::{CommitRequest, PageRequest};

use super::status::{GrpcResult, status};
use super::{Api, convert};

#[tonic::async_trait]
impl HistoryService for Api {
    async fn create_checkpoint(&self, req: Request<pb::CreateCheckpointRequest>) -> GrpcResult<pb::Checkpoint> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let cp = self
            .service()
            .checkpoint(&caller, &r.session, r.message)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::checkpoint_outcome(cp))))
    }

    async fn list_checkpoints(
        &self,
        req: Request<pb::ListCheckpointsRequest>,
    ) -> GrpcResult<pb::ListCheckpointsResponse> {
        let caller = self.caller(&req).await?;
        let list = self
            .service()
            .list_checkpoints(&caller, &req.get_ref().session)
            .await
            .map_err(status)?;
        Ok(Api::handed(
            &caller,
            Response::new(pb::ListCheckpointsResponse {
                checkpoints: list.into_iter().map(convert::checkpoint).collect(),
            }),
        ))
    }

    async fn restore(&self, req: Request<pb::RestoreRequest>) -> GrpcResult<pb::RestoreResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let out = self
            .service()
            .restore(&caller, &r.session, &r.rev)
            .await
            .map_err(status)?;
        Ok(Api::handed(
            &caller,
            Response::new(pb::RestoreResponse {
                saved: out.saved.map(convert::checkpoint_outcome),
                restored_commit: out.restored_commit.to_hex().to_string(),
                tree: out.tree.to_hex().to_string(),
            }),
        ))
    }

    async fn create_commit(&self, req: Request<pb::CreateCommitRequest>) -> GrpcResult<pb::Commit> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let commit = CommitRequest {
            message: r.message,
            author: r.author.map(|a| Identity {
                name: a.name,
                email: a.email,
            }),
            branch: r.branch,
        };
        let c = self
            .service()
            .commit(&caller, &r.session, commit)
            .await
            .map_err(status)?;
        Ok(Api::handed(&caller, Response::new(convert::commit(c))))
    }

    async fn log(&self, req: Request<pb::LogRequest>) -> GrpcResult<pb::LogResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        // 0: the default.
        let page = PageRequest {
            limit: (r.limit > 0).then_some(u64::from(r.limit)),
            after: r.after,
        };
        let page = self
            .service()
            .log(&caller, &r.session, r.rev, page)
            .await
            .map_err(status)?;
        Ok(Api::handed(
            &caller,
            Response::new(pb::LogResponse {
                commits: page.items.into_iter().map(convert::commit).collect(),
                next: page.next,
            }),
        ))
    }

    async fn get_commit(&self, req: Request<pb::GetCommitRequest>) -> GrpcResult<pb::Commit> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        // 0: the default.
        let page = PageRequest {
            limit: (r.limit > 0).then_some(u64::from(r.limit)),
            after: r.after,
        };
        let shown = self
            .service()
            .show_commit(&caller, &r.session, &r.rev, page)
            .await
            .map_err(status)?;
        let mut c = convert::commit(shown.info);
        c.changes = shown.changes.into_iter().map(convert::change).collect();
        c.changes_next = shown.next;
        Ok(Api::handed(&caller, Response::new(c)))
    }
}
