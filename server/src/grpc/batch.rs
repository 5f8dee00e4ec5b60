//! `aether.v1.BatchService`: many changes to one session in one call (`Service::apply_batch`,
//! which checks the limits). The mount sends what it queued this way instead of one request per
//! change. A failing change is part of the answer (its index and error), not the call's status:
//! the changes before it are applied and durable.

use tonic::{Request, Response, Status};

use aether_core::{BatchOp, Stat};
use aether_proto::v1 as pb;
use aether_proto::v1::batch_service_server::BatchService;
use aether_service::ServiceError;

use super::status::{GrpcResult, code_of, invalid, status};
use super::{Api, convert};

/// Bytes a batch may take on the wire beyond its counted content (framing, field tags,
/// modes): what the server's decoder accepts over `max_batch_bytes`.
pub const WIRE_SLACK: usize = 64 + 32 * aether_service::MAX_CHANGES;

fn op_of(change: pb::BatchChange) -> Result<BatchOp, Status> {
    use pb::batch_change::Op;
    Ok(match change.op {
        Some(Op::Put(p)) => BatchOp::Put {
            path: p.path,
            data: p.data,
            mode: p.mode,
            create_parents: !p.no_parents,
            mtime: p.mtime_ns,
        },
        Some(Op::Mkdir(m)) => BatchOp::Mkdir {
            path: m.path,
            parents: m.parents,
        },
        Some(Op::Symlink(s)) => BatchOp::Symlink {
            path: s.path,
            target: s.target,
        },
        Some(Op::Delete(d)) => BatchOp::Delete {
            path: d.path,
            recursive: d.recursive,
        },
        Some(Op::Rmdir(r)) => BatchOp::Rmdir { path: r.path },
        Some(Op::Rename(r)) => BatchOp::Rename { from: r.from, to: r.to },
        Some(Op::Chmod(c)) => BatchOp::Chmod {
            path: c.path,
            mode: c.mode,
        },
        Some(Op::Chown(c)) => BatchOp::Chown {
            path: c.path,
            uid: c.uid,
            gid: c.gid,
        },
        Some(Op::Mknod(m)) => BatchOp::Mknod {
            path: m.path,
            kind: m.kind,
            mode: m.mode,
            rdev: m.rdev,
        },
        Some(Op::Link(l)) => BatchOp::Link { from: l.from, to: l.to },
        Some(Op::SetTimes(t)) => BatchOp::SetTimes {
            path: t.path,
            mtime: t.mtime_ns,
        },
        None => return Err(invalid("a batch change names no operation")),
    })
}

fn result(stat: Option<Stat>) -> pb::Stat {
    stat.map(convert::stat).unwrap_or_default()
}

#[tonic::async_trait]
impl BatchService for Api {
    async fn apply_batch(&self, req: Request<pb::ApplyBatchRequest>) -> GrpcResult<pb::ApplyBatchResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let ops = r.changes.into_iter().map(op_of).collect::<Result<Vec<_>, _>>()?;
        let out = self
            .service()
            .apply_batch(&caller, &r.session, ops)
            .await
            .map_err(status)?;
        let applied = out.applied.len() as u32;
        let error = out.failed.map(|(index, e): (usize, ServiceError)| pb::BatchError {
            index: index as u32,
            code: code_of(e.code) as i32,
            aether_code: e.code.as_str().to_owned(),
            message: e.message,
        });
        Ok(Response::new(pb::ApplyBatchResponse {
            applied,
            results: out.applied.into_iter().map(result).collect(),
            error,
        }))
    }
}
