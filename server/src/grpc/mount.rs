//! `aether.v1.MountService`: listings of a directory and the directories below it, and the
//! bytes of small files, in one call (`Service::list_dirs`).

use tonic::codegen::BoxStream;
use tonic::{Request, Response};

use aether_proto::v1 as pb;
use aether_proto::v1::mount_service_server::MountService;
use aether_service::ListDirs;

use super::status::{GrpcResult, status};
use super::{Api, convert};

#[tonic::async_trait]
impl MountService for Api {
    type ListDirsStream = BoxStream<pb::ListedDir>;

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
        let listed = self.service().list_dirs(&caller, list).await.map_err(status)?;
        let out = listed.into_iter().map(|dir| {
            Ok(pb::ListedDir {
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
            })
        });
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            out.collect::<Vec<_>>(),
        ))))
    }
}
