//! Prometheus instruments of the job runtime, in the process-wide default registry so
//! that the api's `/metrics` (in `serve`) and the worker's own metrics port (in `worker`)
//! both show them. Queue depths are gauges the api reads from the jobs table instead,
//! since they describe the whole system, not one process.

use std::sync::OnceLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

/// Seconds, from a millisecond ping to a long generation.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

struct Instruments {
    run: HistogramVec,
    wait: HistogramVec,
    attempts: IntCounterVec,
}

fn instruments() -> Option<&'static Instruments> {
    static CELL: OnceLock<Option<Instruments>> = OnceLock::new();
    CELL.get_or_init(|| {
        let make = || -> prometheus::Result<Instruments> {
            let run = HistogramVec::new(
                HistogramOpts::new(
                    "wxpilot_job_run_seconds",
                    "Time an attempt ran, by kind and outcome",
                )
                .buckets(BUCKETS.to_vec()),
                &["kind", "outcome"],
            )?;
            let wait = HistogramVec::new(
                HistogramOpts::new(
                    "wxpilot_job_wait_seconds",
                    "Time from a job being due to its attempt starting, by kind",
                )
                .buckets(BUCKETS.to_vec()),
                &["kind"],
            )?;
            let attempts = IntCounterVec::new(
                Opts::new(
                    "wxpilot_job_attempts_total",
                    "Finished attempts by kind and outcome (succeeded, failed, dead, cancelled, released, lost)",
                ),
                &["kind", "outcome"],
            )?;
            let registry = prometheus::default_registry();
            registry.register(Box::new(run.clone()))?;
            registry.register(Box::new(wait.clone()))?;
            registry.register(Box::new(attempts.clone()))?;
            Ok(Instruments { run, wait, attempts })
        };
        make()
            .map_err(|e| tracing::warn!(error = %e, "job metrics unavailable"))
            .ok()
    })
    .as_ref()
}

/// Records how long a job waited past its due time before an attempt started.
pub(crate) fn observe_wait(kind: &str, seconds: f64) {
    if let Some(m) = instruments() {
        m.wait.with_label_values(&[kind]).observe(seconds.max(0.0));
    }
}

/// Records a finished attempt.
pub(crate) fn observe_attempt(kind: &str, outcome: &str, seconds: f64) {
    if let Some(m) = instruments() {
        m.run
            .with_label_values(&[kind, outcome])
            .observe(seconds.max(0.0));
        m.attempts.with_label_values(&[kind, outcome]).inc();
    }
}

/// Inference request counters, latency and tokens in the process-wide registry, created on
/// first use (a process may build its services more than once, as tests do).
pub(crate) fn inference_metrics() -> Option<&'static wxpilot_inference::InferenceMetrics> {
    static CELL: OnceLock<Option<wxpilot_inference::InferenceMetrics>> = OnceLock::new();
    CELL.get_or_init(|| {
        wxpilot_inference::InferenceMetrics::register(prometheus::default_registry())
            .map_err(|e| tracing::warn!(error = %e, "inference metrics unavailable"))
            .ok()
    })
    .as_ref()
}

/// Text exposition of the process-wide registry: job, inference and WeChat instruments.
pub fn render_process_metrics() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buf) {
        tracing::warn!(error = %e, "could not encode metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}
