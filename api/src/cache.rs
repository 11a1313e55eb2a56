//! A small time-bounded cache for values that are read on every request and change rarely
//! (an account's opened callback credentials). Entries expire after a fixed time, can be
//! dropped at once when this process changes what they hold, and the whole map is cleared
//! when it reaches its size bound, so memory stays bounded without bookkeeping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Values by key, each kept for `ttl` after it was stored.
pub struct TtlCache<V> {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<String, (Instant, Arc<V>)>>,
    /// Bumped by every removal: a value read before a removal is not stored after it.
    generation: AtomicU64,
}

impl<V> TtlCache<V> {
    /// A cache keeping entries for `ttl` (zero: keeps nothing), with at most `max_entries`.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries: max_entries.max(1),
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The value stored under `key` less than `ttl` before `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<Arc<V>> {
        let entries = self.entries.lock().ok()?;
        let (stored, value) = entries.get(key)?;
        (now.saturating_duration_since(*stored) < self.ttl).then(|| value.clone())
    }

    /// Where removals stand: take it before reading what will be stored with [`put`].
    ///
    /// [`put`]: Self::put
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores `value` under `key` as of `now`, unless something was removed since
    /// `generation` was taken (the value may predate that change).
    pub fn put(&self, key: &str, value: Arc<V>, now: Instant, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= self.max_entries && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.to_owned(), (now, value));
    }

    /// Forgets `key` (its value changed or is gone).
    pub fn remove(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.remove(key);
        }
    }

    /// Entries held, expired ones included.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_time() {
        let cache = TtlCache::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        cache.put("a", Arc::new(1), t0, 0);
        assert_eq!(
            cache.get("a", t0 + Duration::from_secs(4)).as_deref(),
            Some(&1)
        );
        assert_eq!(cache.get("a", t0 + Duration::from_secs(5)), None);
        assert_eq!(cache.get("b", t0), None);
    }

    #[test]
    fn removed_entries_are_gone_at_once() {
        let cache = TtlCache::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        cache.put("a", Arc::new(1), t0, 0);
        cache.remove("a");
        assert_eq!(cache.get("a", t0), None);
    }

    #[test]
    fn a_value_read_before_a_removal_is_not_stored_after_it() {
        let cache = TtlCache::new(Duration::from_secs(5), 10);
        let t0 = Instant::now();
        let seen = cache.generation();
        // Meanwhile the account is edited and its entry dropped.
        cache.remove("a");
        cache.put("a", Arc::new(1), t0, seen);
        assert_eq!(cache.get("a", t0), None);
        cache.put("a", Arc::new(2), t0, cache.generation());
        assert_eq!(cache.get("a", t0).as_deref(), Some(&2));
    }

    #[test]
    fn a_zero_time_keeps_nothing() {
        let cache = TtlCache::new(Duration::ZERO, 10);
        let t0 = Instant::now();
        cache.put("a", Arc::new(1), t0, 0);
        assert!(cache.is_empty());
        assert_eq!(cache.get("a", t0), None);
    }

    #[test]
    fn a_full_cache_starts_over_instead_of_growing() {
        let cache = TtlCache::new(Duration::from_secs(5), 2);
        let t0 = Instant::now();
        cache.put("a", Arc::new(1), t0, 0);
        cache.put("b", Arc::new(2), t0, 0);
        cache.put("b", Arc::new(3), t0, 0);
        assert_eq!(cache.len(), 2);
        cache.put("c", Arc::new(4), t0, 0);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("c", t0).as_deref(), Some(&4));
        assert_eq!(cache.get("a", t0), None);
    }
}
