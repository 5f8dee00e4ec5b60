//! The use cases without a transport: authorization, paging and the choice of error codes,
//! against a real engine in a temporary data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod auth;
mod changes;
mod handoff;
mod origins;
mod paging;
mod reads;
mod resumed_writes;

use aether_core::Surface;
use aether_service::{CreateSession, Principal, Service, ServiceConfig};

pub struct Fixture {
    pub service: Service,
    /// The engine under `service`, to look at what a use case stored.
    pub engine: aether_core::Engine,
    pub admin_token: String,
    _dir: tempfile::TempDir,
}

pub const ADMIN_TOKEN: &str = "aet_admin_for_tests";

pub async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

/// A fixture whose service configuration `f` changed first.
pub async fn fixture_with(f: impl FnOnce(&mut ServiceConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engine = aether_core::Engine::open(aether_core::EngineConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let mut config = ServiceConfig {
        max_batch_bytes: 1 << 20,
        max_list_tree_entries: 100,
        git_import: Default::default(),
        handoff_timeout: std::time::Duration::from_millis(300),
        admission: Default::default(),
        quotas: Default::default(),
        gc: Default::default(),
        analytics: Default::default(),
        stale_mount: aether_service::DEFAULT_STALE_MOUNT,
    };
    f(&mut config);
    Fixture {
        service: Service::new(engine.clone(), ADMIN_TOKEN.to_owned(), config),
        engine,
        admin_token: ADMIN_TOKEN.to_owned(),
        _dir: dir,
    }
}

impl Fixture {
    /// The engine's data directory (`meta.db` is in it).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub async fn new_session(&self) -> String {
        self.service
            .create_session(&Principal::admin(Surface::Rest), CreateSession::default())
            .await
            .unwrap()
            .id
            .to_string()
    }

    /// A scoped principal (authenticated from its secret) with `access` to `sessions`.
    pub async fn token(&self, sessions: &[&str], access: &str) -> Principal {
        let (_, secret) = self
            .service
            .create_token(
                &Principal::admin(Surface::Rest),
                aether_service::CreateToken {
                    sessions: sessions.iter().map(|s| s.to_string()).collect(),
                    access: access.into(),
                    description: String::new(),
                },
            )
            .await
            .unwrap();
        self.service.authenticate(Some(&secret), Surface::Rest).await.unwrap()
    }
}
