//! A session's activity: its event log (every change, with when, who, through which surface,
//! what and where) queried by time range, principal, surface, operation and path prefix, in
//! pages. A page looks at a bounded number of events whatever the filter matches, and says
//! where to continue; old events are pruned by age and count (see [`EventRetention`]), always
//! keeping each session's newest, which anchors change feeds (`changes` answers "pruned" for a
//! position older than what is kept).

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::{EventKind, Surface};
use crate::ids::SessionId;
use crate::meta::Event;

/// Events looked at per page at most, matching or not.
pub const SCAN_PER_PAGE: usize = 10_000;
/// Most events a page returns.
pub const MAX_PAGE: usize = 1_000;

/// Which events of a session to return.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    /// Continue after this sequence number (0: from the oldest kept).
    pub after: i64,
    /// Milliseconds since the epoch, inclusive / exclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// `admin`, `token:<id>`, `server`.
    pub principal: Option<String>,
    pub surface: Option<Surface>,
    /// Any of these operations (all when empty).
    pub operations: Vec<EventKind>,
    /// Events at this path or below it (a normalized session path; empty: everywhere).
    pub path_prefix: Option<String>,
    /// At most this many (1 to [`MAX_PAGE`]).
    pub limit: usize,
}

/// A page of activity.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityPage {
    pub events: Vec<Event>,
    /// Where the next page continues, when there may be more.
    pub next: Option<i64>,
}

/// How much of every session's event log is kept.
#[derive(Debug, Clone, Default)]
pub struct EventRetention {
    /// Events older than this many milliseconds are removed.
    pub max_age_ms: Option<i64>,
    /// At most this many events per session are kept (the newest).
    pub max_per_session: Option<u64>,
}

impl ActivityQuery {
    fn matches(&self, e: &Event) -> bool {
        if self.since_ms.is_some_and(|t| e.at < t) || self.until_ms.is_some_and(|t| e.at >= t) {
            return false;
        }
        if !self.operations.is_empty() && !self.operations.contains(&e.kind) {
            return false;
        }
        if let Some(p) = &self.principal
            && e.origin.as_ref().is_none_or(|o| &o.principal != p)
        {
            return false;
        }
        if let Some(s) = self.surface
            && e.origin.as_ref().is_none_or(|o| o.surface != s)
        {
            return false;
        }
        match self.path_prefix.as_deref() {
            None | Some("") => true,
            Some(prefix) => e.path.as_deref().is_some_and(|path| {
                path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
            }),
        }
    }
}

impl Engine {
    /// A page of session `id`'s activity matching `q` (see the module docs).
    pub async fn activity(&self, id: &SessionId, q: &ActivityQuery) -> Result<ActivityPage> {
        if q.limit == 0 || q.limit > MAX_PAGE {
            return Err(Error::InvalidArgument(format!("limit must be 1 to {MAX_PAGE}")));
        }
        self.get_session(id).await?;
        if let (Some(a), Some(b)) = (q.since_ms, q.until_ms)
            && a >= b
        {
            // An empty range: nothing happened in it.
            return Ok(ActivityPage {
                events: Vec::new(),
                next: None,
            });
        }
        let mut out = Vec::new();
        let mut cursor = q.after.max(0);
        let mut scanned = 0usize;
        loop {
            let batch = self.events(id, cursor, 1_000).await?;
            let Some(last) = batch.last() else {
                return Ok(ActivityPage {
                    events: out,
                    next: None,
                });
            };
            let last_seq = last.seq;
            let full = batch.len() == 1_000;
            for e in batch {
                cursor = e.seq;
                scanned += 1;
                if q.until_ms.is_some_and(|t| e.at >= t) && e.at > q.until_ms.unwrap_or(i64::MAX) + 60_000 {
                    // Well past the range (clocks move forward, events come in order): done.
                    return Ok(ActivityPage {
                        events: out,
                        next: None,
                    });
                }
                if q.matches(&e) {
                    out.push(e);
                    if out.len() == q.limit {
                        return Ok(ActivityPage {
                            events: out,
                            next: Some(cursor),
                        });
                    }
                }
            }
            if !full {
                return Ok(ActivityPage {
                    events: out,
                    next: None,
                });
            }
            if scanned >= SCAN_PER_PAGE {
                return Ok(ActivityPage {
                    events: out,
                    next: Some(last_seq),
                });
            }
        }
    }

    /// Remove events past `retention` from every session's log (keeping each one's newest);
    /// how many were removed.
    pub async fn prune_events(&self, retention: &EventRetention) -> Result<u64> {
        let older_than = retention.max_age_ms.map(|age| crate::ids::now_millis() - age);
        self.inner
            .meta
            .events
            .prune_events(older_than, retention.max_per_session)
            .await
    }
}
