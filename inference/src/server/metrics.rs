//! Prometheus metrics for inference requests, on a registry the caller hands in, and a
//! [`Backend`] wrapper that records them for whatever backend it wraps. The local
//! batchers' queue depth and batch sizes are in [`crate::batcher::BatcherMetrics`].

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::types::{
    Backend, BoxFuture, EmbedRequest, Embeddings, GenerateEvent, GenerateRequest, Generation,
    InferenceError, ModelInfo, TokenStream, Usage,
};

/// The inference metrics. Cheap to clone handles; register once per registry.
#[derive(Clone)]
pub struct InferenceMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
    tokens: IntCounterVec,
}

impl InferenceMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "wxpilot_inference_requests_total",
                "Inference requests by backend, operation and outcome (ok or the error kind)",
            ),
            &["backend", "operation", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "wxpilot_inference_duration_seconds",
                "Time from request to the last token or vector, by backend and operation",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["backend", "operation"],
        )?;
        let tokens = IntCounterVec::new(
            Opts::new(
                "wxpilot_inference_tokens_total",
                "Tokens processed by backend and direction (prompt or generated)",
            ),
            &["backend", "direction"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        Ok(Self {
            requests,
            latency,
            tokens,
        })
    }

    /// Records one finished request.
    pub fn observe(
        &self,
        backend: &str,
        operation: &str,
        outcome: Result<Usage, &InferenceError>,
        started: Instant,
    ) {
        let label = match &outcome {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        self.requests
            .with_label_values(&[backend, operation, label])
            .inc();
        self.latency
            .with_label_values(&[backend, operation])
            .observe(started.elapsed().as_secs_f64());
        if let Ok(usage) = outcome {
            self.tokens
                .with_label_values(&[backend, "prompt"])
                .inc_by(u64::from(usage.prompt_tokens));
            self.tokens
                .with_label_values(&[backend, "generated"])
                .inc_by(u64::from(usage.completion_tokens));
        }
    }

    /// Requests counted so far for one label set (for tests and diagnostics).
    pub fn requests(&self, backend: &str, operation: &str, outcome: &str) -> u64 {
        self.requests
            .with_label_values(&[backend, operation, outcome])
            .get()
    }

    /// Tokens counted so far for a backend and direction (`prompt` or `generated`).
    pub fn tokens(&self, backend: &str, direction: &str) -> u64 {
        self.tokens.with_label_values(&[backend, direction]).get()
    }
}

/// Wraps a backend so every call is counted and timed under the inner backend's name.
pub struct MeteredBackend {
    inner: Arc<dyn Backend>,
    metrics: InferenceMetrics,
}

impl MeteredBackend {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn Backend>, metrics: InferenceMetrics) -> Self {
        Self { inner, metrics }
    }
}

/// Records a stream's outcome once: at its `Done`, at its error, or, when the caller drops
/// it first, as cancelled.
struct StreamMeter {
    metrics: InferenceMetrics,
    backend: String,
    started: Instant,
    finished: bool,
}

impl StreamMeter {
    fn see(&mut self, item: &Result<GenerateEvent, InferenceError>) {
        if self.finished {
            return;
        }
        let outcome = match item {
            Ok(GenerateEvent::Token(_)) => return,
            Ok(GenerateEvent::Done(generation)) => Ok(generation.usage),
            Err(error) => Err(error),
        };
        self.finished = true;
        self.metrics
            .observe(&self.backend, "generate_stream", outcome, self.started);
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.observe(
                &self.backend,
                "generate_stream",
                Err(&InferenceError::Cancelled),
                self.started,
            );
        }
    }
}

impl Backend for MeteredBackend {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.inner.models()
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'_, Result<Embeddings, InferenceError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.embed(request).await;
            self.metrics.observe(
                self.inner.name(),
                "embed",
                result.as_ref().map(|e| e.usage),
                started,
            );
            result
        })
    }

    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, InferenceError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.generate(request).await;
            self.metrics.observe(
                self.inner.name(),
                "generate",
                result.as_ref().map(|g| g.usage),
                started,
            );
            result
        })
    }

    fn generate_stream(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<TokenStream, InferenceError>> {
        Box::pin(async move {
            let started = Instant::now();
            let stream = match self.inner.generate_stream(request).await {
                Ok(stream) => stream,
                Err(error) => {
                    self.metrics.observe(
                        self.inner.name(),
                        "generate_stream",
                        Err(&error),
                        started,
                    );
                    return Err(error);
                }
            };
            let mut meter = StreamMeter {
                metrics: self.metrics.clone(),
                backend: self.inner.name().to_owned(),
                started,
                finished: false,
            };
            let metered: TokenStream = Box::pin(stream.map(move |item| {
                meter.see(&item);
                item
            }));
            Ok(metered)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScriptedBackend;
    use crate::types::ChatMessage;

    fn request() -> GenerateRequest {
        GenerateRequest {
            messages: vec![ChatMessage::user("two words")],
            params: Default::default(),
            model: None,
        }
    }

    #[tokio::test]
    async fn outcomes_tokens_and_cancellations_are_counted() {
        let registry = Registry::new();
        let metrics = InferenceMetrics::register(&registry).unwrap();
        let inner = Arc::new(
            ScriptedBackend::new("local")
                .reply("a b c")
                .fail(InferenceError::Overloaded)
                .reply("d e f"),
        );
        let metered = MeteredBackend::new(inner, metrics.clone());
        metered.generate(request()).await.unwrap();
        assert!(metered.generate(request()).await.is_err());
        let mut stream = metered.generate_stream(request()).await.unwrap();
        assert!(stream.next().await.is_some());
        drop(stream);

        assert_eq!(metrics.requests("local", "generate", "ok"), 1);
        assert_eq!(metrics.requests("local", "generate", "overloaded"), 1);
        assert_eq!(metrics.requests("local", "generate_stream", "cancelled"), 1);
        assert_eq!(metrics.tokens("local", "generated"), 3);
        assert_eq!(metrics.tokens("local", "prompt"), 2);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains(
                "wxpilot_inference_requests_total{backend=\"local\",operation=\"generate\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
        assert!(
            InferenceMetrics::register(&registry).is_err(),
            "registered twice"
        );
    }
}
