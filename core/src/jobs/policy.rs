//! Retry and concurrency policy per job kind, as pure functions.

use std::time::Duration;

use serde::Deserialize;

/// How one job kind runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindPolicy {
    /// Attempts before the job goes dead.
    pub max_attempts: u32,
    /// Longest one attempt may run, in seconds; past it the attempt fails (and may retry).
    pub timeout_secs: u64,
    /// Attempts of this kind running at once in one worker process.
    pub concurrency: usize,
    /// First retry delay, in milliseconds; each later one doubles, up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub backoff_max_ms: u64,
}

impl Default for KindPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            timeout_secs: 300,
            concurrency: 4,
            backoff_base_ms: 2_000,
            backoff_max_ms: 10 * 60 * 1000,
        }
    }
}

impl KindPolicy {
    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    /// Delay before the attempt after `failed_attempt` (1-based), with `jitter` in `0.0..=1.0`.
    pub fn retry_delay(&self, failed_attempt: u32, jitter: f64) -> Duration {
        backoff(
            failed_attempt,
            Duration::from_millis(self.backoff_base_ms),
            Duration::from_millis(self.backoff_max_ms),
            jitter,
        )
    }
}

/// Exponential backoff with "equal jitter": half the delay is fixed, half is random, so
/// delays still grow attempt over attempt while retries from many jobs spread out.
/// `attempt` is the 1-based number of the attempt that failed; `jitter` is in `0.0..=1.0`.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exponent).min(max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_cap() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        let no_jitter: Vec<u64> = (1..=7)
            .map(|a| backoff(a, base, max, 1.0).as_secs())
            .collect();
        assert_eq!(no_jitter, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_secs(1));
        assert_eq!(
            backoff(40, base, max, 1.0),
            max,
            "huge attempts do not overflow"
        );
    }

    #[test]
    fn jitter_keeps_delays_growing() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(3600);
        for attempt in 1..10 {
            let worst_next = backoff(attempt + 1, base, max, 0.0);
            let best_this = backoff(attempt, base, max, 1.0);
            assert!(worst_next >= best_this, "attempt {attempt}");
        }
    }
}
