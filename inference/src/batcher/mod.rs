//! Dynamic batching in the manner of text-generation-inference's router: callers push
//! requests into a bounded [`RequestQueue`]; one batcher thread per model admits them by
//! token budget, batch size and wait time, runs a step, and hands results back, skipping
//! requests whose caller has gone.
//!
//! - [`EmbedBatcher`]: texts from many requests run as one batch, packed one after
//!   another on the CPU and padded to the longest on a GPU.
//! - [`GenerateBatcher`]: continuous batching. Sequences decode together, each with its
//!   own KV cache and position; new requests join between decode steps (their prompts are
//!   processed in the same forward pass as the running sequences' next tokens), finished
//!   or cancelled ones leave.

mod embed;
mod generate;
mod metrics;
pub mod queue;

pub use embed::EmbedBatcher;
pub use generate::{GenerateBatcher, GenerateJob};
pub use metrics::BatcherMetrics;
pub use queue::{BatchCost, BatchingConfig, RequestQueue, admissible};

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a batcher keeps, for benchmarks, and its Prometheus instruments.
pub struct BatcherStats {
    /// Forward passes run.
    pub steps: AtomicU64,
    /// Rows (texts or sequences) summed over all passes.
    pub rows: AtomicU64,
    /// Most rows in one pass.
    pub max_rows: AtomicU64,
    metrics: BatcherMetrics,
}

/// How long a batcher lets an idle queue fill: `max_wait_ms` after a batch that had
/// company, nothing after a lone request.
pub fn fill_wait(last_rows: usize, config: &BatchingConfig) -> std::time::Duration {
    if last_rows > 1 {
        std::time::Duration::from_millis(config.max_wait_ms)
    } else {
        std::time::Duration::ZERO
    }
}

impl BatcherStats {
    fn new(metrics: BatcherMetrics) -> Self {
        Self {
            steps: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            max_rows: AtomicU64::new(0),
            metrics,
        }
    }

    /// The batcher's instruments (to register where metrics are served).
    pub fn metrics(&self) -> &BatcherMetrics {
        &self.metrics
    }

    fn record(&self, rows: usize) {
        self.metrics.observe_batch(rows);
        self.steps.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.max_rows.fetch_max(rows as u64, Ordering::Relaxed);
    }

    /// Mean rows per forward pass so far (0 before the first).
    pub fn mean_rows(&self) -> f64 {
        let steps = self.steps.load(Ordering::Relaxed);
        if steps == 0 {
            0.0
        } else {
            self.rows.load(Ordering::Relaxed) as f64 / steps as f64
        }
    }
}
