//! Running totals since the server started, for Prometheus (`/metrics` reads them at scrape
//! time): bytes of file content read and written on every surface, garbage collections and
//! what they removed, loose objects packed, imports by outcome, and the mounts attached now.

use std::sync::atomic::{AtomicU64, Ordering};

use aether_core::GcReport;

use crate::Service;

/// Totals since start; each only grows.
#[derive(Default)]
pub(crate) struct Counters {
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    gc_runs: AtomicU64,
    gc_deferred: AtomicU64,
    gc_failed: AtomicU64,
    gc_bytes_removed: AtomicU64,
    gc_objects_removed: AtomicU64,
    objects_packed: AtomicU64,
    imports_ok: AtomicU64,
    imports_failed: AtomicU64,
}

/// A copy of the totals, read at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Collections that ran, were deferred (an import running), or failed.
    pub gc_runs: u64,
    pub gc_deferred: u64,
    pub gc_failed: u64,
    pub gc_bytes_removed: u64,
    /// Loose and packed objects, manifests and chunks removed.
    pub gc_objects_removed: u64,
    /// Loose objects moved into packs (background passes and collections).
    pub objects_packed: u64,
    pub imports_ok: u64,
    pub imports_failed: u64,
    /// Mounts attached now (the gRPC `Attach` streams open).
    pub mounts_attached: u64,
}

impl Counters {
    pub(crate) fn gc<E>(&self, out: &Result<GcReport, E>) {
        match out {
            Ok(r) if r.deferred.is_some() => self.gc_deferred.fetch_add(1, Ordering::Relaxed),
            Ok(r) => {
                self.gc_bytes_removed.fetch_add(r.bytes_removed, Ordering::Relaxed);
                let objects =
                    r.loose_objects_removed + r.packed_objects_removed + r.manifests_removed + r.chunks.chunks;
                self.gc_objects_removed.fetch_add(objects, Ordering::Relaxed);
                self.objects_packed.fetch_add(r.loose_objects_packed, Ordering::Relaxed);
                self.gc_runs.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => self.gc_failed.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// A background packing pass moved `n` loose objects into a pack.
    pub(crate) fn packed(&self, n: u64) {
        self.objects_packed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn import<T, E>(&self, out: &Result<T, E>) {
        let n = if out.is_ok() {
            &self.imports_ok
        } else {
            &self.imports_failed
        };
        n.fetch_add(1, Ordering::Relaxed);
    }
}

impl Service {
    /// The running totals since start (for operators: read by `/metrics` after its own check).
    pub fn totals(&self) -> Totals {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Totals {
            bytes_read: get(&c.bytes_read),
            bytes_written: get(&c.bytes_written),
            gc_runs: get(&c.gc_runs),
            gc_deferred: get(&c.gc_deferred),
            gc_failed: get(&c.gc_failed),
            gc_bytes_removed: get(&c.gc_bytes_removed),
            gc_objects_removed: get(&c.gc_objects_removed),
            objects_packed: get(&c.objects_packed),
            imports_ok: get(&c.imports_ok),
            imports_failed: get(&c.imports_failed),
            mounts_attached: self.inner.mounts.attached() as u64,
        }
    }
}
