//! A session's activity (its event log, queried): see `aether_core::activity`.

use aether_core::{ActivityPage, ActivityQuery, EventKind, Surface};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::principal::{Access, Principal};

/// Events returned when the caller does not say how many.
pub const DEFAULT_ACTIVITY_PAGE: usize = 100;

/// Which activity of a session to return; text fields as a surface received them.
#[derive(Clone, Debug, Default)]
pub struct ActivityRequest {
    pub session: String,
    /// Continue after this sequence number (a page's `next`).
    pub after: Option<i64>,
    /// Milliseconds since the epoch: from (inclusive), until (exclusive).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// `admin`, `token:<id>` or `server`.
    pub principal: Option<String>,
    /// `rest`, `grpc`, `git`, `mount`, `server`.
    pub surface: Option<String>,
    /// Operations (event kinds: `write`, `delete`, `rename`, ...), any of them.
    pub operations: Vec<String>,
    /// Events at this path or below it.
    pub path_prefix: Option<String>,
    pub limit: Option<usize>,
}

impl Service {
    /// A page of session `req.session`'s activity, oldest first.
    pub async fn activity(&self, p: &Principal, req: ActivityRequest) -> Result<ActivityPage> {
        let id = self.session(p, &req.session, Access::Read)?;
        if req.after.is_some_and(|a| a < 0) {
            return Err(ServiceError::invalid("after must be a sequence number (0 or more)"));
        }
        let surface = req
            .surface
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Surface>().map_err(|_| {
                    ServiceError::invalid(format!("unknown surface '{s}' (rest, grpc, git, mount, server)"))
                })
            })
            .transpose()?;
        let operations = req
            .operations
            .iter()
            .flat_map(|o| o.split(','))
            .filter(|o| !o.is_empty())
            .map(|o| {
                o.parse::<EventKind>()
                    .map_err(|_| ServiceError::invalid(format!("unknown operation '{o}'")))
            })
            .collect::<Result<Vec<_>>>()?;
        let q = ActivityQuery {
            after: req.after.unwrap_or(0),
            since_ms: req.since_ms,
            until_ms: req.until_ms,
            principal: req.principal.filter(|p| !p.is_empty()),
            surface,
            operations,
            path_prefix: req.path_prefix.map(|p| p.trim_matches('/').to_owned()),
            limit: req.limit.unwrap_or(DEFAULT_ACTIVITY_PAGE),
        };
        let _job = self.admit("activity")?;
        Ok(self.engine().activity(&id, &q).await?)
    }
}
