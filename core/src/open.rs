//! Opening an engine: the stores named by configuration (through the factory in `stores`,
//! checked by `meta_check`), then the repair of what older versions stored (see `repair`).
//! The top of the engine's modules: nothing below it calls into it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::blocking::blocking;
use crate::config::EngineConfig;
use crate::engine::{Engine, Inner};
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::objects::Objects;
use crate::repair::plan;

impl Engine {
    /// Open (creating on first use) the data directory and the stores `config.stores` names; by
    /// default all of them live in the data directory: `objects.git/`, `chunks/`, `meta.db`.
    pub async fn open(config: EngineConfig) -> Result<Engine> {
        config.validate()?;
        crate::stores::validate(&config.stores)?;
        let cfg = config.clone();
        let (objects, meta) = blocking(move || {
            std::fs::create_dir_all(&cfg.data_dir)
                .map_err(Error::io(format!("creating data directory {}", cfg.data_dir.display())))?;
            let stores = crate::stores::open(&cfg)?;
            let objects = Objects::new(
                stores.objects,
                stores.chunks,
                cfg.large_file_threshold,
                cfg.chunking,
                cfg.git_cache_bytes,
                cfg.caches,
            );
            Ok((objects, stores.meta))
        })
        .await?;
        let revision_bytes = config.caches.revision_bytes;
        let session_bytes = config.caches.session_bytes;
        let engine = Engine::from_inner(Arc::new(Inner {
            config,
            objects: Arc::new(objects),
            meta: crate::meta_check::checked(meta),
            sessions: Mutex::new(HashMap::new()),
            loaded: crate::loaded::Loaded::new(session_bytes),
            changes: crate::changes::Changes::new(),
            imports: Default::default(),
            revisions: crate::revision_cache::RevisionCache::new(revision_bytes),
            spelling: Default::default(),
            usage: Default::default(),
        }));
        engine.repair_stored().await?;
        Ok(engine)
    }

    /// Repair every damaged overlay row of every session (see `repair`).
    async fn repair_stored(&self) -> Result<()> {
        let rows = self.inner.meta.overlays.suspect_overlay_rows().await?;
        let mut by_session: BTreeMap<SessionId, Vec<_>> = BTreeMap::new();
        for row in rows {
            by_session.entry(row.session).or_default().push((row.path, row.entry));
        }
        for (id, rows) in by_session {
            let (m, repairs) = plan(rows.iter().map(|(k, e)| (k.as_str(), e.as_ref())));
            if !repairs.is_empty() {
                self.persist_repairs(&id, m, &repairs).await?;
            }
        }
        Ok(())
    }
}
