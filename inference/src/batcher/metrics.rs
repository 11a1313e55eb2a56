//! Prometheus instruments of one batcher: how many items wait in its queue and how many
//! rows each forward pass carried. They are labelled with the model and the operation,
//! count from the batcher's start, and are registered by whichever process serves metrics
//! (the worker's default registry, or the inference server's own).

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntGauge, Opts, Registry};

use crate::types::InferenceError;

/// Rows per pass: a lone request up to the largest batch sizes people configure.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The instruments of one batcher (cheap to clone; clones share their values).
#[derive(Clone)]
pub struct BatcherMetrics {
    queue_depth: IntGauge,
    batch_size: Histogram,
}

impl BatcherMetrics {
    /// Unregistered instruments for the batcher of `model` doing `operation` (`embed` or
    /// `generate`).
    pub fn new(model: &str, operation: &str) -> Result<Self, InferenceError> {
        let labelled = |opts: Opts| {
            opts.const_label("model", model)
                .const_label("operation", operation)
        };
        let queue_depth = IntGauge::with_opts(labelled(Opts::new(
            "wxpilot_inference_queue_depth",
            "Items (texts or generation requests) waiting in a local batcher's queue",
        )))
        .map_err(metrics_error)?;
        let size_opts = labelled(Opts::new(
            "wxpilot_inference_batch_size",
            "Rows (texts or sequences) in each forward pass of a local batcher",
        ));
        let batch_size = Histogram::with_opts(
            HistogramOpts::from(size_opts).buckets(BATCH_SIZE_BUCKETS.to_vec()),
        )
        .map_err(metrics_error)?;
        Ok(Self {
            queue_depth,
            batch_size,
        })
    }

    /// Registers both instruments on `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        let collectors: [Box<dyn Collector>; 2] = [
            Box::new(self.queue_depth.clone()),
            Box::new(self.batch_size.clone()),
        ];
        for collector in collectors {
            registry.register(collector)?;
        }
        Ok(())
    }

    pub(crate) fn set_queue_depth(&self, items: usize) {
        self.queue_depth
            .set(i64::try_from(items).unwrap_or(i64::MAX));
    }

    pub(crate) fn observe_batch(&self, rows: usize) {
        self.batch_size.observe(rows as f64);
    }

    /// The queue length last published.
    pub fn queue_depth(&self) -> i64 {
        self.queue_depth.get()
    }

    /// Passes observed so far.
    pub fn batches(&self) -> u64 {
        self.batch_size.get_sample_count()
    }
}

fn metrics_error(error: prometheus::Error) -> InferenceError {
    InferenceError::Internal(format!("creating batcher metrics: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruments_carry_model_and_operation_labels() {
        let registry = Registry::new();
        let metrics = BatcherMetrics::new("minilm", "embed").unwrap();
        metrics.register(&registry).unwrap();
        metrics.set_queue_depth(3);
        metrics.observe_batch(5);
        metrics.observe_batch(1);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains("wxpilot_inference_queue_depth{model=\"minilm\",operation=\"embed\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "wxpilot_inference_batch_size_bucket{model=\"minilm\",operation=\"embed\",le=\"4\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wxpilot_inference_batch_size_count{model=\"minilm\",operation=\"embed\"} 2"
            ),
            "{text}"
        );
        assert_eq!(metrics.batches(), 2);
    }

    #[test]
    fn two_batchers_share_a_registry_under_different_models() {
        let registry = Registry::new();
        BatcherMetrics::new("a", "embed")
            .unwrap()
            .register(&registry)
            .unwrap();
        BatcherMetrics::new("b", "embed")
            .unwrap()
            .register(&registry)
            .unwrap();
        // The same labels twice is a clash the registry refuses.
        assert!(
            BatcherMetrics::new("a", "embed")
                .unwrap()
                .register(&registry)
                .is_err()
        );
    }
}
