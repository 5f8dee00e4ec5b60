//! Sessions held in memory, within a byte budget: the sum of what the loaded sessions weigh
//! (`engine::weigh`: each one's overlay, the paths changed since its freeze, the contents it
//! remembers for readers), and the eviction of idle sessions, least recently used first, once
//! the sum passes [`crate::CacheConfig::session_bytes`]. An evicted session is loaded again on
//! its next use, exactly as after a restart: its state is the metadata store's.
//!
//! It must never let a session have two live handles: two write locks would let two writers
//! plan against different states, and the memory of one would miss the other's change. Two
//! rules keep it so:
//!
//! - A handle is evicted only when the table holds its one reference, checked under the
//!   table's lock. Every other reference is made by cloning one the table handed out (under the
//!   same lock) or one a task still holds, so none exists and none can appear: no reader,
//!   writer, write in flight or attached mount (which keeps one, see
//!   `Engine::keep_loaded`) has it.
//! - A session being loaded is never evicted. A load reads the store, then inserts unless
//!   another load won; were the winner evicted before the slower load inserted, the slower
//!   one's state, read before the winner's writes, would come back to life. Loads register
//!   under the table's lock when they find the session absent, and eviction skips them.
//!
//! It never evicts to make room for the caller's own session: a session bigger than the budget
//! stays while it is used, and the sum then exceeds the budget until it is idle.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::ids::SessionId;

/// What a loaded session weighs besides its overlay: its record, locks and table entry.
pub(crate) const HANDLE_BYTES: u64 = 1024;
/// What a path changed since the freeze weighs (its key in the dirty set).
pub(crate) const DIRTY_BYTES: u64 = 96;
/// What a content remembered for a reader weighs (see `held`).
pub(crate) const HELD_BYTES: u64 = 64;
/// A handle no longer in the table (its session was deleted): its weight is not counted.
const GONE: u64 = u64::MAX;

/// The accounting of the sessions in memory (see the module).
pub(crate) struct Loaded {
    budget: u64,
    /// The sum of the weights of the handles in the table.
    total: AtomicU64,
    /// A clock for least-recently-used order.
    tick: AtomicU64,
    /// Sessions being loaded, and by how many loads.
    loading: Mutex<HashMap<SessionId, usize>>,
    evictions: AtomicU64,
}

/// A handle's share of the accounting, kept in the handle.
#[derive(Default)]
pub(crate) struct Weight {
    /// Its weight as counted in [`Loaded::total`] (0 until counted, [`GONE`] once removed).
    bytes: AtomicU64,
    /// The tick of its last use.
    used: AtomicU64,
}

/// While alive, the session is registered as being loaded (see the module).
pub(crate) struct LoadingGuard<'a> {
    loaded: &'a Loaded,
    id: SessionId,
}

impl Drop for LoadingGuard<'_> {
    fn drop(&mut self) {
        let mut loading = self.loaded.loading.lock();
        if let Some(n) = loading.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                loading.remove(&self.id);
            }
        }
    }
}

impl Loaded {
    pub fn new(budget: u64) -> Loaded {
        Loaded {
            budget,
            total: AtomicU64::new(0),
            tick: AtomicU64::new(0),
            loading: Mutex::default(),
            evictions: AtomicU64::new(0),
        }
    }

    /// Register a load of `id`. Call it holding the table's lock, having found `id` absent.
    pub fn start_loading(&self, id: &SessionId) -> LoadingGuard<'_> {
        *self.loading.lock().entry(id.clone()).or_default() += 1;
        LoadingGuard {
            loaded: self,
            id: id.clone(),
        }
    }

    /// Note a use of the handle weighing `w`.
    pub fn used(&self, w: &Weight) {
        w.used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The bytes the sessions in memory weigh now.
    pub fn bytes(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Sessions evicted since the engine opened.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Count the handle of weight `w` at `now` bytes, what it weighs now (call it after a
    /// change of its state, and once it is in the table). A handle removed from the table is
    /// not counted again.
    pub fn reweigh(&self, w: &Weight, now: u64) {
        let mut old = w.bytes.load(Ordering::Relaxed);
        loop {
            if old == GONE {
                return;
            }
            match w
                .bytes
                .compare_exchange_weak(old, now, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(seen) => old = seen,
            }
        }
        if now >= old {
            self.total.fetch_add(now - old, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(old - now, Ordering::Relaxed);
        }
    }

    /// Stop counting the handle of weight `w`, which left the table.
    pub fn removed(&self, w: &Weight) {
        let old = w.bytes.swap(GONE, Ordering::AcqRel);
        if old != GONE {
            self.total.fetch_sub(old, Ordering::Relaxed);
        }
    }

    /// Evict idle sessions, least recently used first, until the sum is within the budget
    /// (down to 7/8 of it, so that a sweep is not needed at every load), if it is over it.
    pub fn sweep<H>(&self, table: &Mutex<HashMap<SessionId, Arc<H>>>, weight: impl Fn(&H) -> &Weight) {
        if self.bytes() <= self.budget {
            return;
        }
        let mut table = table.lock();
        let loading = self.loading.lock();
        let mut idle: Vec<(u64, SessionId)> = table
            .iter()
            // The table's reference is the only one: see the module.
            .filter(|(id, h)| Arc::strong_count(h) == 1 && !loading.contains_key(*id))
            .map(|(id, h)| (weight(h).used.load(Ordering::Relaxed), id.clone()))
            .collect();
        drop(loading);
        idle.sort_unstable();
        let target = self.budget - self.budget / 8;
        for (_, id) in idle {
            if self.bytes() <= target {
                break;
            }
            if let Some(h) = table.remove(&id) {
                self.removed(weight(&h));
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::engine::Engine;

    async fn engine(dir: &std::path::Path) -> Engine {
        let mut c = EngineConfig::new(dir.join("data"));
        // Nothing fits: every idle session is evicted at every sweep.
        c.caches.session_bytes = 1;
        Engine::open(c).await.unwrap()
    }

    async fn session(e: &Engine) -> SessionId {
        e.create_session(crate::SessionSource::Empty, Default::default())
            .await
            .unwrap()
            .id
    }

    #[tokio::test]
    async fn a_held_handle_is_never_replaced_by_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path()).await;
        let id = session(&e).await;
        let held = e.handle(&id).await.unwrap();
        let before = e.sessions_evicted();
        for _ in 0..4 {
            let other = session(&e).await;
            e.handle(&other).await.unwrap();
        }
        assert!(e.sessions_evicted() > before, "the sweeps evicted nothing");
        assert!(Arc::ptr_eq(&held, &e.handle(&id).await.unwrap()), "a second handle");
        drop(held);
        // Idle now: evicted by the next sweep, and a new handle on the next use.
        let other = session(&e).await;
        e.handle(&other).await.unwrap();
        assert!(!e.inner.sessions.lock().contains_key(&id));
    }

    #[tokio::test]
    async fn a_session_being_loaded_is_not_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path()).await;
        let id = session(&e).await;
        // Idle in the table, and a (slower) load of it under way.
        let loading = e.inner.loaded.start_loading(&id);
        let other = session(&e).await;
        e.handle(&other).await.unwrap();
        assert!(
            e.inner.sessions.lock().contains_key(&id),
            "evicted while a load of it was under way"
        );
        drop(loading);
        let other = session(&e).await;
        e.handle(&other).await.unwrap();
        assert!(!e.inner.sessions.lock().contains_key(&id));
    }

    #[tokio::test]
    async fn the_sum_follows_the_handles_in_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EngineConfig::new(dir.path().join("data"));
        c.caches.session_bytes = 1 << 30;
        let e = Engine::open(c).await.unwrap();
        let ids = [session(&e).await, session(&e).await];
        let sum = || {
            let table = e.inner.sessions.lock();
            table.values().map(|h| crate::engine::weigh(h)).sum::<u64>()
        };
        assert_eq!(e.inner.loaded.bytes(), sum());
        let before = e.inner.loaded.bytes();
        e.write_bytes(&ids[0], "f", b"x".to_vec(), Default::default())
            .await
            .unwrap();
        assert!(e.inner.loaded.bytes() > before);
        assert_eq!(e.inner.loaded.bytes(), sum());
        e.delete_session(&ids[1]).await.unwrap();
        assert_eq!(e.inner.loaded.bytes(), sum());
    }
}
