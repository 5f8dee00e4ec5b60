//! AetherFS use cases, shared by every surface (REST, gRPC, git smart HTTP, the mount's gRPC
//! service, and the surfaces to come). Each use case is one method of [`Service`] taking the
//! caller ([`Principal`]) and a typed request, and returning a typed result or one
//! [`ServiceError`]. Authorization, paging, limits, input validation and the choice of error
//! [`Code`] happen here, once; a surface decodes its request, calls one method, and encodes the
//! answer. This crate knows no transport: no axum, tonic or http types.

mod activity;
mod admission;
mod analytics;
mod batch;
mod changes;
mod counters;
pub mod error;
mod export;
mod files;
mod gc;
mod git;
mod handoff;
mod health;
mod history;
mod mount;
mod observe;
pub mod paging;
mod principal;
mod quotas;
mod sessions;
mod tokens;
mod tree;
mod usage;

use std::sync::Arc;

use aether_core::Engine;
use aether_gitbridge::import::ImportConfig;

pub use activity::{ActivityRequest, DEFAULT_ACTIVITY_PAGE};
pub use admission::{Admission, AdmissionConfig, BODY_READ_AHEAD, Job, overloaded, read_ahead};
pub use analytics::{
    AnalyticsConfig, AnalyticsQuery, AnalyticsReport, AnalyticsRequest, BucketCounts, BucketSize, Counts, DEFAULT_TOP,
    MAX_TOP, OperationLatency, PathActivity,
};
pub use batch::{BatchResult, MAX_CHANGES};
pub use changes::{Changes, ChangesSince, Everything, MAX_CHANGED_PATHS, SETTLE};
pub use counters::Totals;
pub use error::{Code, Result, ServiceError};
pub use export::{Export, ExportFormat, ExportTar};
pub use files::{MAX_PATCH_BYTES, PatchOp, ReadFile, WriteFile, check_mode};
pub use gc::GcConfig;
pub use git::{GitRepo, PackStream};
pub use handoff::{Attachment, Commands, MAX_ATTACHED, MountCommand, MountReport};
pub use health::{
    DEFAULT_STALE_MOUNT, HealthStatus, ImportHealth, LastError, MountHealth, QuotaHeadroom, SessionHealth,
};
pub use history::{Commit, CommitRequest};
pub use mount::{DirsListing, ListDirs, ListedDir, PIECE_ENTRIES};
pub use observe::{CountedReader, ServedFile};
pub use paging::{Page, PageRequest};
pub use principal::{Access, Identity, Principal, constant_time_eq, session_id};
pub use quotas::QuotaConfig;
pub use sessions::{CreateSession, EventFeed, ListSessions, SessionOptions, Source, UpdateSession, WatchFrom};
pub use tokens::CreateToken;
pub use tree::{DirListing, ListTree, Listing};

/// Limits of the use cases that are configured rather than fixed.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Most bytes of inline content and paths in one batch of changes.
    pub max_batch_bytes: usize,
    /// Most entries of a recursive listing answered in one message.
    pub max_list_tree_entries: usize,
    /// Limits and tools of sessions imported from git repositories.
    pub git_import: ImportConfig,
    /// How long a read or a freeze of a session waits for its mounts to hand their changes
    /// over (see `handoff`) before it goes on without them, saying so.
    pub handoff_timeout: std::time::Duration,
    /// How many use cases may run blocking work at once, and what a refused caller is told.
    pub admission: AdmissionConfig,
    /// What one scoped token may do: requests a second, heavy operations at once.
    pub quotas: QuotaConfig,
    /// Garbage collection: its grace period and schedule.
    pub gc: GcConfig,
    /// What the analytics keep (memory bounds, how far back).
    pub analytics: AnalyticsConfig,
    /// A mount holding a change the server does not have for longer than this makes its
    /// session's health `degraded`.
    pub stale_mount: std::time::Duration,
}

/// The use cases over one engine. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    admin_token: String,
    config: ServiceConfig,
    mounts: handoff::Mounts,
    admission: Admission,
    quotas: quotas::Quotas,
    analytics: Arc<analytics::Analytics>,
    health: health::HealthMemory,
    counters: Arc<counters::Counters>,
}

impl Service {
    pub fn new(engine: Engine, admin_token: String, config: ServiceConfig) -> Service {
        Service {
            inner: Arc::new(Inner {
                engine,
                admin_token,
                admission: Admission::new(config.admission.clone()),
                quotas: quotas::Quotas::new(config.quotas.clone()),
                analytics: Arc::new(analytics::Analytics::new(config.analytics.clone())),
                health: health::HealthMemory::new(config.analytics.max_sessions),
                counters: Default::default(),
                config,
                mounts: Default::default(),
            }),
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// Ready when the metadata store answers. Needs no caller: load balancers ask it bare.
    pub async fn ready(&self) -> Result<()> {
        self.engine()
            .list_sessions(&Default::default(), &aether_core::Page { limit: 1, after: None })
            .await?;
        Ok(())
    }
}
