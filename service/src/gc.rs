//! Garbage collection as a use case (admin only), and its schedule.

use std::time::Duration;

use aether_core::{EventRetention, ExpiryOptions, GcOptions, GcReport};

use crate::Service;
use crate::error::Result;
use crate::principal::Principal;

/// When and how collections run.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// Objects written (or found stored again) this recently are kept.
    pub grace: Duration,
    /// Time between background collections; `None`: none run.
    pub interval: Option<Duration>,
    /// Time between checks for loose objects to pack; `None`: no background packing.
    pub pack_interval: Option<Duration>,
    /// How many loose objects (estimated) a check packs from.
    pub pack_loose_objects: u64,
    /// How much of each session's activity (event log) is kept, pruned with each collection.
    pub events: EventRetention,
    /// Checkpoints and archived sessions that expire before each collection.
    pub expiry: ExpiryOptions,
}

impl GcConfig {
    fn options(&self, dry_run: bool) -> GcOptions {
        GcOptions {
            dry_run,
            grace: self.grace,
            events: self.events.clone(),
            expiry: self.expiry,
        }
    }
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            grace: Duration::from_secs(3600),
            interval: Some(Duration::from_secs(3600)),
            pack_interval: Some(Duration::from_secs(60)),
            pack_loose_objects: 16_384,
            events: EventRetention {
                max_age_ms: Some(30 * 24 * 3600 * 1000),
                max_per_session: Some(100_000),
            },
            expiry: ExpiryOptions::default(),
        }
    }
}

impl Service {
    /// The options of a collection as configured.
    pub fn gc_options(&self, dry_run: bool) -> GcOptions {
        self.config().gc.options(dry_run)
    }

    /// Collect garbage now (see `aether_core::gc`); with `dry_run`, only count.
    pub async fn collect_garbage(&self, p: &Principal, dry_run: bool) -> Result<GcReport> {
        p.require_admin()?;
        let _job = self.admit("garbage collection")?;
        let out = self.engine().collect_garbage(self.config().gc.options(dry_run)).await;
        if !dry_run {
            self.inner.counters.gc(&out);
        }
        Ok(out?)
    }

    /// Check for loose objects to pack every `pack_interval` of the configuration (see
    /// `aether_core::repack`) until the returned task is aborted; none when it is `None`.
    pub fn spawn_pack_schedule(&self) -> Option<tokio::task::JoinHandle<()>> {
        let interval = self.config().gc.pack_interval?;
        Some(self.every(interval, true, |service| async move {
            let min = service.config().gc.pack_loose_objects;
            match service.engine().pack_objects(min).await {
                Ok(r) => service.inner.counters.packed(r.loose_objects_packed),
                Err(e) => tracing::warn!(error = %e, "background packing failed"),
            }
        }))
    }

    /// Run a collection every `interval` of the configuration until the returned task is
    /// aborted (none when the interval is `None`). A failed or deferred collection is logged
    /// and tried again at the next tick. The first runs one interval after start.
    pub fn spawn_gc_schedule(&self) -> Option<tokio::task::JoinHandle<()>> {
        let interval = self.config().gc.interval?;
        Some(self.every(interval, false, |service| async move {
            let out = service
                .engine()
                .collect_garbage(service.config().gc.options(false))
                .await;
            service.inner.counters.gc(&out);
            match out {
                Ok(r) if r.deferred.is_some() => {
                    tracing::info!(why = ?r.deferred, "scheduled garbage collection deferred")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduled garbage collection failed"),
            }
        }))
    }

    /// Run `pass` every `interval` (at once first when `at_start`, else one interval after
    /// start) until the returned task is aborted; a late pass delays the next ones.
    fn every<F, Fut>(&self, interval: Duration, at_start: bool, pass: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn(Service) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let service = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick completes at once.
            if !at_start {
                tick.tick().await;
            }
            loop {
                tick.tick().await;
                pass(service.clone()).await;
            }
        })
    }
}
