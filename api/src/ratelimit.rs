//! A small in-process limiter for password sign-in: after too many failures for one
//! account (or from one address) within a window, further attempts get 429 until the
//! window passes. Per process; behind several replicas each keeps its own count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per key and window.
pub const MAX_FAILURES: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys kept before old ones are dropped.
const MAX_KEYS: usize = 10_000;

/// Failed sign-ins by key.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    /// `Err(seconds until allowed)` when `key` is locked out now.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some((count, since))
                if *count >= MAX_FAILURES && now.duration_since(*since) < WINDOW =>
            {
                Err((WINDOW - now.duration_since(*since)).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure for `key`.
    pub fn record_failure(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Forgets `key` after a success.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_max_failures_then_recovers() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(limiter.check("a", start).is_ok());
            limiter.record_failure("a", start);
        }
        assert!(limiter.check("a", start).is_err());
        assert!(limiter.check("b", start).is_ok(), "other keys unaffected");
        assert!(
            limiter.check("a", start + WINDOW).is_ok(),
            "the window passes"
        );
        limiter.reset("a");
        assert!(limiter.check("a", start).is_ok());
    }
}
