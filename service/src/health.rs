//! A session's health: its attached mounts and how long each has held changes the server does
//! not have yet (from `handoff`), the import that is making it or failed to, the last error of
//! an operation on it (recorded by [`Service::observe`](crate::Service)), when it last changed,
//! and a summary: `ok`, or `degraded` with the reasons.
//!
//! What it remembers besides the stores (last errors, failed imports) is in memory, bounded by
//! the analytics' `max_sessions`, and gone after a restart.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;

use aether_core::{ErrorKind, EventKind, SessionId};

use crate::Service;
use crate::error::{Code, Result, ServiceError};
use crate::principal::{Access, Principal};

/// A mount whose oldest change the server does not have is older than this makes its session
/// `degraded`.
pub const DEFAULT_STALE_MOUNT: Duration = Duration::from_secs(30);
/// How long a failure of the server (storage, corruption) keeps a session `degraded`.
const RECENT_FAILURE_MS: i64 = 5 * 60_000;

/// The last failed operation of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub operation: &'static str,
    pub code: Code,
    pub message: String,
}

/// One attached mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountHealth {
    pub mount: String,
    /// Whether it may change the session (a read-only mount only listens).
    pub writer: bool,
    /// How long it has held changes the server does not have yet; `None` when it holds none.
    pub pending_for: Option<Duration>,
}

/// Where an import of a git repository into a new session stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportHealth {
    /// Still running: its latest progress (`{"phase": ..., "done": n, "total": n}`), if any yet.
    Running { progress: Option<serde_json::Value> },
    /// It failed and left no session (the id was reserved for it).
    Failed { at_ms: i64, code: Code, message: String },
}

/// What a session with a quota holds of its own against its limits, and what is left (see
/// `aether_core::quota`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaHeadroom {
    pub limit_bytes: Option<u64>,
    pub limit_files: Option<u64>,
    pub used_bytes: u64,
    pub used_files: u64,
    /// What is left under each limit (0 when over it); `None` without that limit.
    pub bytes_left: Option<u64>,
    pub files_left: Option<u64>,
}

/// `ok`, or `degraded` with reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    Ok,
    Degraded,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
        }
    }
}

/// The answer of [`Service::session_health`].
#[derive(Clone, Debug)]
pub struct SessionHealth {
    pub session: SessionId,
    pub status: HealthStatus,
    /// Why it is degraded, in words (empty when `ok`).
    pub reasons: Vec<String>,
    /// When the session last changed, milliseconds since the Unix epoch (`None` while it is
    /// being imported, or after its import failed).
    pub updated_at_ms: Option<i64>,
    pub mounts: Vec<MountHealth>,
    pub import: Option<ImportHealth>,
    pub last_error: Option<LastError>,
    /// Its quota's headroom; `None` without a quota.
    pub quota: Option<QuotaHeadroom>,
}

/// What health remembers that no store holds.
pub(crate) struct HealthMemory {
    cap: usize,
    last_errors: Mutex<HashMap<SessionId, LastError>>,
    failed_imports: Mutex<HashMap<SessionId, LastError>>,
}

/// Insert into a map of at most `cap` entries, dropping the oldest when it is full.
fn remember(map: &mut HashMap<SessionId, LastError>, cap: usize, id: &SessionId, e: LastError) {
    if !map.contains_key(id) && map.len() >= cap.max(1) {
        let oldest = map.iter().min_by_key(|(_, e)| e.at_ms).map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            map.remove(&k);
        }
    }
    map.insert(id.clone(), e);
}

impl HealthMemory {
    pub(crate) fn new(cap: usize) -> HealthMemory {
        HealthMemory {
            cap,
            last_errors: Mutex::default(),
            failed_imports: Mutex::default(),
        }
    }

    pub(crate) fn note_error(&self, id: &SessionId, operation: &'static str, e: &ServiceError, at_ms: i64) {
        let err = LastError {
            at_ms,
            operation,
            code: e.code,
            message: e.message.clone(),
        };
        remember(&mut self.last_errors.lock(), self.cap, id, err);
    }

    fn note_failed_import(&self, id: &SessionId, e: &ServiceError, at_ms: i64) {
        let err = LastError {
            at_ms,
            operation: "import",
            code: e.code,
            message: e.message.clone(),
        };
        remember(&mut self.failed_imports.lock(), self.cap, id, err);
    }
}

impl Service {
    /// The health of session `raw`, or of the import reserving that id (see the module docs).
    pub async fn session_health(&self, p: &Principal, raw: &str) -> Result<SessionHealth> {
        let id = self.session(p, raw, Access::Read)?;
        let mut reasons = Vec::new();
        let (updated_at_ms, import, limits) = match self.engine().get_session(&id).await {
            Ok(record) => (Some(record.updated_at), None, record.quota),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                (None, Some(self.import_health(&id).await.ok_or(e)?), Default::default())
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(ImportHealth::Failed { message, .. }) = &import {
            reasons.push(format!("its import failed: {message}"));
        }
        let stale = self.config().stale_mount;
        let mounts = self.inner.mounts.health(&id);
        for m in &mounts {
            if let Some(age) = m.pending_for.filter(|age| *age > stale) {
                reasons.push(format!(
                    "mount {} has held changes the server does not have for {} s (over {} s)",
                    m.mount,
                    age.as_secs(),
                    stale.as_secs()
                ));
            }
        }
        let quota = if limits.is_unlimited() {
            None
        } else {
            let usage = self.engine().session_usage(&id).await?;
            let (used_bytes, used_files) = (usage.unique_bytes, usage.unique_files);
            if let Some((what, limit, used)) =
                [("bytes", limits.bytes, used_bytes), ("files", limits.files, used_files)]
                    .into_iter()
                    .find_map(|(what, limit, used)| limit.filter(|l| used > *l).map(|l| (what, l, used)))
            {
                reasons.push(format!("it holds {used} {what} of its own, over its quota of {limit}"));
            }
            Some(QuotaHeadroom {
                limit_bytes: limits.bytes,
                limit_files: limits.files,
                used_bytes,
                used_files,
                bytes_left: limits.bytes.map(|l| l.saturating_sub(used_bytes)),
                files_left: limits.files.map(|l| l.saturating_sub(used_files)),
            })
        };
        let last_error = self.inner.health.last_errors.lock().get(&id).cloned();
        if let Some(e) = &last_error
            && e.code.is_internal()
            && crate::observe::now_ms() - e.at_ms < RECENT_FAILURE_MS
        {
            reasons.push(format!("{} failed on the server: {}", e.operation, e.message));
        }
        Ok(SessionHealth {
            session: id,
            status: if reasons.is_empty() {
                HealthStatus::Ok
            } else {
                HealthStatus::Degraded
            },
            reasons,
            updated_at_ms,
            mounts,
            import,
            last_error,
            quota,
        })
    }

    /// The import that reserved `id`: failed (remembered), or still running (its progress
    /// events are readable before the session exists); `None` when there is none.
    async fn import_health(&self, id: &SessionId) -> Option<ImportHealth> {
        if let Some(e) = self.inner.health.failed_imports.lock().get(id) {
            return Some(ImportHealth::Failed {
                at_ms: e.at_ms,
                code: e.code,
                message: e.message.clone(),
            });
        }
        let mut after = 0;
        let mut progress = None;
        loop {
            let events = self.engine().events(id, after, 1000).await.ok()?;
            let Some(last) = events.last() else { break };
            after = last.seq;
            let full = events.len() == 1000;
            if let Some(e) = events.into_iter().rev().find(|e| e.kind == EventKind::ImportProgress) {
                progress = Some(e.detail);
            }
            if !full {
                break;
            }
        }
        Some(ImportHealth::Running { progress })
    }

    /// The outcome of a git import that reserved `reserved`: when it failed, the id is
    /// remembered and named in the error's `session` detail, so the caller can ask for its
    /// health.
    pub(crate) fn imported<T>(&self, out: Result<T>, reserved: &OnceLock<SessionId>) -> Result<T> {
        match (out, reserved.get()) {
            (Err(e), Some(id)) => {
                self.inner.health.note_failed_import(id, &e, crate::observe::now_ms());
                Err(e.with_detail("session", id.as_str()))
            }
            (out, _) => out,
        }
    }
}
