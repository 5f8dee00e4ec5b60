//! A least-recently-used cache bounded in bytes: each value is weighed when it is put, and the
//! least recently used values go until the total fits the cap again. What a cache of decoded
//! trees holds grows with the trees' sizes, not their number (one 200k-entry directory weighs
//! as much as thousands of small ones), so a cap in entries bounds nothing. Knows nothing of
//! what it caches beyond the weight it is given.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;
use parking_lot::Mutex;

/// Bytes a cache entry costs beyond its value's own weight (the key, the LRU's links and the
/// hash table slot), roughly: what makes many tiny values count.
pub const ENTRY_OVERHEAD: u64 = 64;

/// A cache holding values of at most `cap` bytes together (weights as given to
/// [`ByteLru::put`]); thread-safe, each call under one short lock.
pub struct ByteLru<K: Hash + Eq, V> {
    inner: Mutex<Held<K, V>>,
    cap: u64,
    /// The bytes held now, readable without the lock (metrics).
    bytes: AtomicU64,
}

struct Held<K: Hash + Eq, V> {
    lru: LruCache<K, (V, u64)>,
    bytes: u64,
}

impl<K: Hash + Eq, V: Clone> ByteLru<K, V> {
    /// An empty cache of at most `cap` bytes; 0 keeps nothing.
    pub fn new(cap: u64) -> Self {
        ByteLru {
            inner: Mutex::new(Held {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            cap,
            bytes: AtomicU64::new(0),
        }
    }

    /// The value of `key`, made the most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        self.inner.lock().lru.get(key).map(|(v, _)| v.clone())
    }

    /// The value of `key`, its place in the order unchanged (cheaper for lookups that come in
    /// bulk, such as every file's size during a listing).
    pub fn peek(&self, key: &K) -> Option<V> {
        self.inner.lock().lru.peek(key).map(|(v, _)| v.clone())
    }

    /// Keep `value` weighing `weight` bytes (plus [`ENTRY_OVERHEAD`]), then drop the least
    /// recently used values until the total fits the cap. A value heavier than the whole cap is
    /// not kept (it would push out everything else and then itself).
    pub fn put(&self, key: K, value: V, weight: u64) {
        let weight = weight.saturating_add(ENTRY_OVERHEAD);
        let mut held = self.inner.lock();
        if weight > self.cap {
            if let Some((_, (_, old))) = held.lru.pop_entry(&key) {
                held.bytes -= old;
            }
            self.bytes.store(held.bytes, Ordering::Relaxed);
            return;
        }
        if let Some((_, old)) = held.lru.push(key, (value, weight)) {
            // `push` returns the replaced value of the same key, or the evicted one (never
            // here: the LRU is unbounded).
            held.bytes -= old.1;
        }
        held.bytes += weight;
        while held.bytes > self.cap {
            match held.lru.pop_lru() {
                Some((_, (_, w))) => held.bytes -= w,
                None => break,
            }
        }
        self.bytes.store(held.bytes, Ordering::Relaxed);
    }

    /// Forget `key`'s value, if held.
    pub fn remove(&self, key: &K) {
        let mut held = self.inner.lock();
        if let Some((_, w)) = held.lru.pop(key) {
            held.bytes -= w;
        }
        self.bytes.store(held.bytes, Ordering::Relaxed);
    }

    /// Bytes held now, as weighed.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The most bytes it holds.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Values held now.
    pub fn len(&self) -> usize {
        self.inner.lock().lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_at_its_byte_cap_evicts_the_least_recently_used() {
        let w = 1000;
        let cache = ByteLru::new(3 * (w + ENTRY_OVERHEAD));
        for k in 0..3u32 {
            cache.put(k, k, w);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.bytes(), 3 * (w + ENTRY_OVERHEAD));
        cache.get(&0);
        cache.put(3, 3, w);
        assert_eq!(cache.len(), 3, "one out for one in");
        assert!(cache.peek(&1).is_none(), "1 was the least recently used");
        assert!(cache.peek(&0).is_some() && cache.peek(&2).is_some() && cache.peek(&3).is_some());
        // One heavy value pushes out as many light ones as it needs.
        cache.put(4, 4, 2 * w + ENTRY_OVERHEAD);
        assert!(cache.bytes() <= cache.cap());
        assert_eq!(cache.len(), 2);
        assert!(cache.peek(&4).is_some() && cache.peek(&3).is_some());
    }

    #[test]
    fn a_value_heavier_than_the_cap_is_not_kept_and_replacing_reweighs() {
        let cache = ByteLru::new(10_000);
        cache.put("a", 1, 100);
        cache.put("b", 2, 20_000);
        assert!(cache.peek(&"b").is_none());
        assert_eq!(cache.bytes(), 100 + ENTRY_OVERHEAD);
        cache.put("a", 3, 500);
        assert_eq!(cache.peek(&"a"), Some(3));
        assert_eq!(cache.bytes(), 500 + ENTRY_OVERHEAD);
        cache.remove(&"a");
        assert!(cache.is_empty() && cache.bytes() == 0);
        cache.put("a", 3, 500);
        // A replacement too heavy for the cache drops the old value too: never a stale one.
        cache.put("a", 4, 20_000);
        assert!(cache.peek(&"a").is_none());
        assert_eq!(cache.bytes(), 0);
        let none = ByteLru::new(0);
        none.put(1, 1, 0);
        assert!(none.is_empty());
    }
}
