//! `aether.v1.BatchService`: many changes to one session in one call (`Engine::apply_batch`).
//! The mount sends what it queued this way instead of one request per change. A failing change
//! is part of the answer (its index and error), not the call's status: the changes before it
//! are applied and durable.

use tonic::{Request, Response, Status};

use aether_core::{BatchOp, Stat};
use aether_proto::v1 as pb;
use aether_proto::v1::batch_service_server::BatchService;

use super::status::{GrpcResult, from_core, invalid};
use super::{Api, convert};

/// Most changes in one batch.
pub const MAX_CHANGES: usize = 10_000;

/// Bytes a batch may take on the wire beyond its counted content (framing, field tags,
/// modes): what the server's decoder accepts over `max_batch_bytes`.
pub const WIRE_SLACK: usize = 64 + 32 * MAX_CHANGES;

fn op_of(change: pb::BatchChange) -> Result<BatchOp, Status> {
    use pb::batch_change::Op;
    Ok(match change.op {
        Some(Op::Put(p)) => BatchOp::Put {
            path: p.path,
            data: p.data,
            mode: p.mode,
            create_parents: !p.no_parents,
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
        None => return Err(invalid("a batch change names no operation")),
    })
}

/// Bytes of a change counted against the limit: its content and its paths.
fn weight(change: &pb::BatchChange) -> usize {
    use pb::batch_change::Op;
    match &change.op {
        Some(Op::Put(p)) => p.path.len() + p.data.len(),
        Some(Op::Mkdir(m)) => m.path.len(),
        Some(Op::Symlink(s)) => s.path.len() + s.target.len(),
        Some(Op::Delete(d)) => d.path.len(),
        Some(Op::Rmdir(r)) => r.path.len(),
        Some(Op::Rename(r)) => r.from.len() + r.to.len(),
        Some(Op::Chmod(c)) => c.path.len(),
        None => 0,
    }
}

/// Check the whole request against the limits before anything is applied.
fn check_limits(changes: &[pb::BatchChange], max_bytes: usize) -> Result<(), Status> {
    if changes.len() > MAX_CHANGES {
        return Err(invalid(format!(
            "a batch holds at most {MAX_CHANGES} changes, got {}",
            changes.len()
        )));
    }
    let total: usize = changes.iter().map(weight).sum();
    if total > max_bytes {
        return Err(from_core(aether_core::Error::TooLarge {
            what: format!("batch of {total} bytes of content and paths"),
            limit: max_bytes as u64,
        }));
    }
    Ok(())
}

fn result(stat: Option<Stat>) -> pb::Stat {
    stat.map(convert::stat).unwrap_or_default()
}

#[tonic::async_trait]
impl BatchService for Api {
    async fn apply_batch(&self, req: Request<pb::ApplyBatchRequest>) -> GrpcResult<pb::ApplyBatchResponse> {
        let id = self.for_session(&req, &req.get_ref().session, true).await?;
        let r = req.into_inner();
        check_limits(&r.changes, self.state.max_batch_bytes)?;
        let ops = r.changes.into_iter().map(op_of).collect::<Result<Vec<_>, _>>()?;
        let out = self.state.engine.apply_batch(&id, ops).await.map_err(from_core)?;
        let applied = out.applied.len() as u32;
        let error = out.failed.map(|(index, e)| {
            let kind = e.kind();
            let status = from_core(e);
            pb::BatchError {
                index: index as u32,
                code: status.code() as i32,
                aether_code: kind.code().to_owned(),
                message: status.message().to_owned(),
            }
        });
        Ok(Response::new(pb::ApplyBatchResponse {
            applied,
            results: out.applied.into_iter().map(result).collect(),
            error,
        }))
    }
}
