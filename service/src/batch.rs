//! Many changes to one session in one call (`Engine::apply_batch`): a mount sends what it
//! queued this way instead of one request per change. The whole batch is checked against the
//! limits before anything is applied; a failing change is part of the answer (its index and
//! error), the changes before it applied and durable.

use aether_core::{BatchOp, Stat};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::principal::{Access, Principal};

/// Most changes in one batch.
pub const MAX_CHANGES: usize = 10_000;

/// Bytes of a change counted against `max_batch_bytes`: its content and its paths.
fn weight(op: &BatchOp) -> usize {
    match op {
        BatchOp::Put { path, data, .. } => path.len() + data.len(),
        BatchOp::Mkdir { path, .. } | BatchOp::Delete { path, .. } | BatchOp::Rmdir { path } => path.len(),
        BatchOp::Symlink { path, target } => path.len() + target.len(),
        BatchOp::Rename { from, to } => from.len() + to.len(),
        BatchOp::Chmod { path, .. } | BatchOp::Chown { path, .. } | BatchOp::SetTimes { path, .. } => path.len(),
        BatchOp::Mknod { path, kind, .. } => path.len() + kind.len(),
        BatchOp::Link { from, to } => from.len() + to.len(),
    }
}

fn check_limits(ops: &[BatchOp], max_bytes: usize) -> Result<()> {
    if ops.len() > MAX_CHANGES {
        return Err(ServiceError::invalid(format!(
            "a batch holds at most {MAX_CHANGES} changes, got {}",
            ops.len()
        )));
    }
    let total: usize = ops.iter().map(weight).sum();
    if total > max_bytes {
        return Err(aether_core::Error::TooLarge {
            what: format!("batch of {total} bytes of content and paths"),
            limit: max_bytes as u64,
        }
        .into());
    }
    Ok(())
}

/// What a batch did: the result of every applied change in order, and the change that failed.
#[derive(Debug)]
pub struct BatchResult {
    pub applied: Vec<Option<Stat>>,
    pub failed: Option<(usize, ServiceError)>,
}

impl Service {
    pub async fn apply_batch(&self, p: &Principal, session: &str, ops: Vec<BatchOp>) -> Result<BatchResult> {
        let id = self.session(p, session, Access::Write)?;
        let written: usize = ops
            .iter()
            .map(|op| match op {
                BatchOp::Put { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        let meter = crate::observe::Meter::written(written as u64);
        self.observe_metered("batch", &id, None, meter, async {
            self.recall_before_write(p, &id).await;
            check_limits(&ops, self.config().max_batch_bytes)?;
            let _job = self.admit("batch")?;
            let out = self.engine_for(p).apply_batch(&id, ops).await?;
            Ok(BatchResult {
                applied: out.applied,
                failed: out.failed.map(|(i, e)| (i, e.into())),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn limits_count_changes_and_bytes() {
        let put = |n| BatchOp::Put {
            path: "ab".into(),
            data: vec![0; n],
            mode: None,
            create_parents: true,
            mtime: None,
        };
        assert!(check_limits(&[put(8)], 10).is_ok());
        assert_eq!(check_limits(&[put(9)], 10).unwrap_err().code, Code::TooLarge);
        let many = vec![BatchOp::Rmdir { path: "d".into() }; MAX_CHANGES + 1];
        assert_eq!(check_limits(&many, usize::MAX).unwrap_err().code, Code::InvalidArgument);
    }
}
