//! Wall-clock time as the token manager sees it.
//!
//! Token expiry is shared between processes through the token store, so it is kept as
//! Unix milliseconds (not `Instant`, which means nothing to another process). Tests and
//! the simulator swap in a clock they can advance, so the 7200 s / 5 min rules run in
//! milliseconds.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of Unix time in milliseconds.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        system_now_unix_ms()
    }
}

/// The operating system's time in Unix milliseconds (0 if the clock is before 1970).
pub fn system_now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock showing `start_unix_ms`.
    pub fn new(start_unix_ms: i64) -> Self {
        Self {
            now_ms: Arc::new(AtomicI64::new(start_unix_ms)),
        }
    }

    /// A clock starting at the operating system's current time.
    pub fn starting_now() -> Self {
        Self::new(system_now_unix_ms())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `unix_ms`.
    pub fn set(&self, unix_ms: i64) {
        self.now_ms.store(unix_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new(1_000);
        let b = a.clone();
        a.advance(Duration::from_secs(7200));
        assert_eq!(b.now_unix_ms(), 7_201_000);
        b.set(5);
        assert_eq!(a.now_unix_ms(), 5);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now_unix_ms() > 1_704_067_200_000);
    }
}
