//! Per-session quotas: limits on the files and bytes a session holds of its own (what it does
//! not share with the state it was forked from; see `usage`), so 30 forks of a 4 GB base do not
//! each count 4 GB.
//!
//! Enforcement is exact at the limit and cheap away from it. Each session keeps an upper bound
//! of its own usage: the exact figure at its last measure plus everything a change since could
//! have added (a written file its whole size, a grafted directory all it holds). A change that
//! keeps the bound under the limit goes ahead on the bound alone; one that would not is measured
//! exactly on the state it would leave (the tree a checkpoint would write, costing what changed
//! since the last freeze) and refused, changing nothing, when that state is over the limit and
//! the change adds anything. A change that only removes is never refused, so a session over its
//! quota (lowered below its usage) can always be cleaned up. A change whose effect cannot be
//! bounded cheaply (a restore, a freeze) forgets the bound; the next write measures again.
//! This module holds the limits; `quota_check` enforces them.

use serde::{Deserialize, Serialize};

/// Limits of a session (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Bytes of regular files the session holds of its own.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Files and symbolic links the session holds of its own.
    #[serde(default)]
    pub files: Option<u64>,
}

impl Quota {
    pub fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.files.is_none()
    }

    /// The first limit `(bytes, files)` goes over, as `(what, limit, used)`.
    pub(crate) fn over(&self, bytes: u64, files: u64) -> Option<(&'static str, u64, u64)> {
        match (self.bytes, self.files) {
            (Some(limit), _) if bytes > limit => Some(("bytes", limit, bytes)),
            (_, Some(limit)) if files > limit => Some(("files", limit, files)),
            _ => None,
        }
    }
}
