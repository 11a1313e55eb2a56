//! Builds the backend set a process uses from plain configuration values, so that callers
//! (the worker, `wxpilot inference serve`) map their settings onto these and never wire
//! backends by hand.

use std::sync::Arc;

use crate::remote::{RemoteBackend, RemoteConfig};
use crate::router::{Router, RoutingConfig};
use crate::server::metrics::{InferenceMetrics, MeteredBackend};
use crate::types::{Backend, InferenceError};

/// Everything [`build_router`] needs besides the local backend.
#[derive(Debug, Clone, Default)]
pub struct BackendsConfig {
    /// The remote service, when one is configured.
    pub remote: Option<RemoteConfig>,
    /// Policies.
    pub routing: RoutingConfig,
}

/// A router over `local` (built by the caller, as it owns model loading) and the remote
/// from `config`. With `metrics`, each backend is metered under its own name.
pub fn build_router(
    local: Option<Arc<dyn Backend>>,
    config: BackendsConfig,
    metrics: Option<&InferenceMetrics>,
) -> Result<Router, InferenceError> {
    let remote = match config.remote {
        Some(remote) => Some(Arc::new(RemoteBackend::new(remote)?) as Arc<dyn Backend>),
        None => None,
    };
    let meter = |backend: Arc<dyn Backend>| -> Arc<dyn Backend> {
        match metrics {
            Some(metrics) => Arc::new(MeteredBackend::new(backend, metrics.clone())),
            None => backend,
        }
    };
    Ok(Router::new(
        local.map(meter),
        remote.map(meter),
        config.routing,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::RetryPolicy;
    use crate::router::RoutingPolicy;
    use crate::testing::ScriptedBackend;
    use crate::types::{ChatMessage, GenerateRequest};
    use std::time::Duration;

    #[tokio::test]
    async fn local_only_router_with_metrics_answers_from_local() {
        let registry = prometheus::Registry::new();
        let metrics = InferenceMetrics::register(&registry).unwrap();
        let local: Arc<dyn Backend> = Arc::new(ScriptedBackend::new("local").reply("hello"));
        let config = BackendsConfig {
            remote: Some(RemoteConfig {
                base_url: "http://127.0.0.1:9/v1".into(),
                api_key: None,
                chat_model: "c".into(),
                embedding_model: "e".into(),
                timeout: Duration::from_millis(200),
                retry: RetryPolicy::default(),
            }),
            routing: RoutingConfig {
                default: RoutingPolicy::LocalOnly,
                ..Default::default()
            },
        };
        let router = build_router(Some(local), config, Some(&metrics)).unwrap();
        assert!(router.remote().is_some());
        let out = router
            .for_kind("reply")
            .generate(GenerateRequest {
                messages: vec![ChatMessage::user("hi")],
                params: Default::default(),
                model: None,
            })
            .await
            .unwrap();
        assert_eq!(out.text, "hello");
        assert_eq!(metrics.requests("local", "generate", "ok"), 1);
    }
}
