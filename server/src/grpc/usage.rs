//! `aether.v1.UsageService`: what a session holds and what the server stores.

use tonic::{Request, Response};

use aether_proto::v1 as pb;
use aether_proto::v1::usage_service_server::UsageService;

use super::status::{GrpcResult, status};
use super::{Api, convert};

#[tonic::async_trait]
impl UsageService for Api {
    async fn get_session_usage(&self, req: Request<pb::GetSessionRequest>) -> GrpcResult<pb::SessionUsage> {
        let caller = self.caller(&req).await?;
        let id = req.into_inner().id;
        let u = self.service().session_usage(&caller, &id).await.map_err(status)?;
        Ok(Api::handed(
            &caller,
            Response::new(pb::SessionUsage {
                id,
                files: u.files,
                directories: u.directories,
                symlinks: u.symlinks,
                special_files: u.special_files,
                bytes: u.bytes,
                unique_files: u.unique_files,
                unique_bytes: u.unique_bytes,
                shared_bytes: u.shared_bytes,
                cow_bytes: u.cow_bytes,
                large_files: u.large_files,
                large_bytes: u.large_bytes,
                chunks: u.chunks,
                large_stored_bytes: u.large_stored_bytes,
                dedup_ratio: aether_core::dedup_ratio(u.large_bytes, u.large_stored_bytes),
                checkpoints: u.checkpoints,
                commits: u.commits,
                quota: Some(convert::quota(u.quota)),
            }),
        ))
    }

    async fn get_server_usage(&self, req: Request<pb::Empty>) -> GrpcResult<pb::ServerUsage> {
        let caller = self.caller(&req).await?;
        let u = self.service().server_usage(&caller).await.map_err(status)?;
        let d = u.disk;
        Ok(Api::handed(
            &caller,
            Response::new(pb::ServerUsage {
                sessions: u.sessions,
                files: u.files,
                bytes: u.bytes,
                unique_bytes: u.unique_bytes,
                objects_bytes: d.objects,
                chunks_bytes: d.chunks,
                metadata_bytes: d.metadata,
                cache_bytes: d.cache,
                dedup_ratio: aether_core::dedup_ratio(u.bytes, d.objects + d.chunks),
            }),
        ))
    }
}
