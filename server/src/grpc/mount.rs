//! `aether.v1.MountService`: listings of a directory and the directories below it, and the
//! bytes of small files, in one call, so a mount walking a tree (find, git status) or reading
//! many small files (cat, grep) pays one round trip per batch instead of one per entry.

use tonic::codegen::BoxStream;
use tonic::{Request, Response};

use aether_core::{FileKind, ObjectId};
use aether_proto::v1 as pb;
use aether_proto::v1::mount_service_server::MountService;

use super::status::{GrpcResult, from_core};
use super::{Api, convert};

/// Most entries one call lists, whatever the client asks.
const MAX_ENTRIES: usize = 50_000;
/// Most inline bytes one call sends (the client accepts messages of 16 MiB).
const MAX_INLINE_BUDGET: u64 = 4 << 20;

#[tonic::async_trait]
impl MountService for Api {
    type ListDirsStream = BoxStream<pb::ListedDir>;

    async fn list_dirs(&self, req: Request<pb::ListDirsRequest>) -> GrpcResult<Self::ListDirsStream> {
        let id = self.for_session(&req, &req.get_ref().session, false).await?;
        let r = req.into_inner();
        let engine = &self.state.engine;
        let max_entries = (r.max_entries as usize).min(MAX_ENTRIES);
        let listed = engine
            .list_dirs(&id, &r.path, max_entries, r.at.as_deref())
            .await
            .map_err(from_core)?;
        let mut out = Vec::with_capacity(listed.len());
        for (i, (dir, entries)) in listed.into_iter().enumerate() {
            // Bytes of small files come with the first directory only: the one being read.
            let contents = if i == 0 && r.inline_max > 0 {
                let budget = r.inline_budget.min(MAX_INLINE_BUDGET);
                inline_contents(engine, &entries, r.inline_max, budget, &r.inline_from).await?
            } else {
                Vec::new()
            };
            out.push(pb::ListedDir {
                path: dir.as_str().to_owned(),
                entries: entries.into_iter().map(|e| convert::stat(e.stat)).collect(),
                contents,
            });
        }
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            out.into_iter().map(Ok),
        ))))
    }
}

/// The bytes of the files among `entries` of at most `max` bytes, names from `from` on, until
/// `budget` bytes. Each is read by the content id the listing gives it, so the bytes are the
/// listed version's whatever is written meanwhile, and the mount keys them by that id.
async fn inline_contents(
    engine: &aether_core::Engine,
    entries: &[aether_core::DirEntry],
    max: u64,
    budget: u64,
    from: &str,
) -> Result<Vec<pb::InlineContent>, tonic::Status> {
    let mut wanted: Vec<(ObjectId, u64)> = Vec::new();
    let mut bytes = 0;
    for e in entries {
        if e.stat.kind != FileKind::File || e.stat.size > max || e.stat.size == 0 || e.name.as_str() < from {
            continue;
        }
        let Some(oid) = e
            .stat
            .oid
            .as_deref()
            .and_then(|o| ObjectId::from_hex(o.as_bytes()).ok())
        else {
            continue;
        };
        if bytes + e.stat.size > budget {
            break;
        }
        bytes += e.stat.size;
        wanted.push((oid, e.stat.size));
    }
    let read = engine.read_contents(wanted).await.map_err(from_core)?;
    Ok(read
        .into_iter()
        .map(|(oid, data)| pb::InlineContent {
            oid: oid.to_hex().to_string(),
            data,
        })
        .collect())
}
