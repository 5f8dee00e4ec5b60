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
        let at = r.at.as_deref();
        let root = r.path.trim_matches('/').to_owned();
        let max_entries = (r.max_entries as usize).min(MAX_ENTRIES);

        let first = engine.list(&id, &root, false, at).await.map_err(from_core)?;
        let contents = if r.inline_max > 0 {
            inline_contents(
                engine,
                &first,
                r.inline_max,
                r.inline_budget.min(MAX_INLINE_BUDGET),
                &r.inline_from,
            )
            .await?
        } else {
            Vec::new()
        };
        let mut total = first.len();
        // Depth first, so a walk in name order (find, git status) finds what it needs next.
        let mut stack: Vec<String> = subdirs(&first).rev().collect();
        let mut out = vec![pb::ListedDir {
            path: root,
            entries: first.into_iter().map(|e| convert::stat(e.stat)).collect(),
            contents,
        }];
        while total < max_entries
            && let Some(dir) = stack.pop()
        {
            // Gone meanwhile (or not readable): the client lists it itself when it gets there.
            let Ok(entries) = engine.list(&id, &dir, false, at).await else {
                continue;
            };
            if total + entries.len() > max_entries {
                break;
            }
            total += entries.len();
            stack.extend(subdirs(&entries).rev());
            out.push(pb::ListedDir {
                path: dir,
                entries: entries.into_iter().map(|e| convert::stat(e.stat)).collect(),
                contents: Vec::new(),
            });
        }
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            out.into_iter().map(Ok),
        ))))
    }
}

fn subdirs(entries: &[aether_core::DirEntry]) -> impl DoubleEndedIterator<Item = String> + '_ {
    entries
        .iter()
        .filter(|e| e.stat.kind == FileKind::Dir)
        .map(|e| e.stat.path.clone())
}

/// The bytes of the files among `entries` of at most `max` bytes, names from `from` on, until
/// `budget` bytes.
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
    let objects = engine.objects().clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(wanted.len());
        for (oid, size) in wanted {
            let data = objects.read_range(&oid, 0, size)?;
            out.push(pb::InlineContent {
                oid: oid.to_hex().to_string(),
                data,
            });
        }
        Ok::<_, aether_core::Error>(out)
    })
    .await
    .map_err(|e| tonic::Status::internal(format!("reading small files failed: {e}")))?;
    read.map_err(from_core)
}
