//! `ping`: sleeps, reports progress, and returns what it got. For tests and benchmarks;
//! it can also fail on purpose to exercise retries.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use wxpilot_core::jobs::KindPolicy;

use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// Longest sleep a ping may ask for.
pub const MAX_SLEEP_MS: u64 = 10 * 60 * 1000;

/// What a ping job is asked to do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingPayload {
    /// How long to sleep, in milliseconds (at most ten minutes).
    #[serde(default)]
    pub sleep_ms: u64,
    /// Progress updates spread over the sleep (at most 100).
    #[serde(default)]
    pub steps: u32,
    /// Returned as is.
    #[serde(default)]
    pub echo: Value,
    /// Fail this many first attempts with a retryable error.
    #[serde(default)]
    pub fail_times: u32,
    /// Fail with a permanent error (straight to dead).
    #[serde(default)]
    pub fail_permanently: bool,
}

impl PingPayload {
    /// Checks the bounds; the API calls this before queueing.
    pub fn validate(&self) -> Result<(), String> {
        if self.sleep_ms > MAX_SLEEP_MS {
            return Err(format!("sleep_ms must be at most {MAX_SLEEP_MS}"));
        }
        if self.steps > 100 {
            return Err("steps must be at most 100".into());
        }
        Ok(())
    }
}

/// The `ping` kind.
pub struct Ping;

impl JobHandler for Ping {
    fn kind(&self) -> &'static str {
        "ping"
    }

    fn default_policy(&self) -> KindPolicy {
        KindPolicy {
            max_attempts: 3,
            timeout_secs: 15 * 60,
            concurrency: 64,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
        }
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let ping: PingPayload = super::parse_payload("ping", payload)?;
            ping.validate().map_err(JobError::Permanent)?;
            if ping.fail_permanently {
                return Err(JobError::Permanent("asked to fail permanently".into()));
            }
            let steps = ping.steps.max(1);
            let slice = Duration::from_millis(ping.sleep_ms / u64::from(steps));
            for step in 1..=steps {
                if !slice.is_zero() {
                    tokio::time::sleep(slice).await;
                }
                if ping.steps > 0 {
                    let percent = u8::try_from(step * 100 / steps).unwrap_or(100);
                    ctx.progress(percent, &format!("step {step} of {steps}"))
                        .await;
                }
            }
            if ctx.attempt <= ping.fail_times {
                return Err(JobError::Retryable(format!(
                    "asked to fail {} time(s); this was attempt {}",
                    ping.fail_times, ctx.attempt
                )));
            }
            Ok(JobOutput::new(json!({
                "echo": ping.echo,
                "slept_ms": ping.sleep_ms,
                "attempt": ctx.attempt,
            })))
        })
    }
}
