//! The server over the real local models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2), with
//! the remote backend as its client. Skipped, with a message, when scripts/fetch-models.sh
//! has not been run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server_support;

use std::sync::Arc;
use std::time::Duration;

use server_support::{KEY, TestServer};
use wxpilot_inference::local::models_dir;
use wxpilot_inference::{
    Backend, ChatMessage, EmbedRequest, GenerateParams, GenerateRequest, LocalBackend, LocalConfig,
    RemoteBackend, RemoteConfig, RetryPolicy,
};

#[tokio::test]
async fn the_remote_backend_round_trips_through_the_server_over_real_models() {
    let config = LocalConfig::default_models(&models_dir());
    let chat = config.chat_model.clone().unwrap();
    if !chat.gguf.is_file() || !config.embedding_models[0].dir.is_dir() {
        eprintln!(
            "SKIPPED: no local models under {} (run scripts/fetch-models.sh)",
            models_dir().display()
        );
        return;
    }
    let local = tokio::task::spawn_blocking(move || LocalBackend::new(config))
        .await
        .unwrap()
        .unwrap();
    let local = Arc::new(local);
    let server = TestServer::start(local.clone()).await;
    local.register_metrics(&server.registry).unwrap();
    let remote = RemoteBackend::new(RemoteConfig {
        base_url: server.url("/v1"),
        api_key: Some(KEY.to_string().into()),
        chat_model: chat.id.clone(),
        embedding_model: "all-minilm-l6-v2".into(),
        timeout: Duration::from_secs(60),
        retry: RetryPolicy::default(),
    })
    .unwrap();

    let answer = remote
        .generate(GenerateRequest {
            messages: vec![ChatMessage::user("What is the capital of France?")],
            params: GenerateParams {
                max_tokens: 24,
                temperature: 0.0,
                ..GenerateParams::default()
            },
            model: None,
        })
        .await
        .unwrap();
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
    assert_eq!(answer.model, chat.id);
    assert!(answer.usage.prompt_tokens > 5 && answer.usage.completion_tokens > 0);

    let vectors = remote
        .embed(EmbedRequest {
            texts: vec!["a cat sits on the mat".into(), "a kitten on a rug".into()],
            kind: Default::default(),
            model: None,
        })
        .await
        .unwrap();
    assert_eq!(vectors.vectors.len(), 2);
    assert_eq!(vectors.vectors[0].len(), 384);
    let norm: f32 = vectors.vectors[0].iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");

    // The batchers report through the server's /metrics: one embedding pass of two rows,
    // generation passes of one sequence, and empty queues once the answers are back.
    let text = server_support::client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = "model=\"all-minilm-l6-v2\",operation=\"embed\"";
    assert!(
        text.contains(&format!("wxpilot_inference_batch_size_sum{{{labels}}} 2")),
        "{text}"
    );
    assert!(
        text.contains(&format!("wxpilot_inference_queue_depth{{{labels}}} 0")),
        "{text}"
    );
    let chat_labels = format!("model=\"{}\",operation=\"generate\"", chat.id);
    let passes = metric_value(
        &text,
        &format!("wxpilot_inference_batch_size_count{{{chat_labels}}}"),
    );
    assert!(
        passes >= answer.usage.completion_tokens as f64,
        "{passes} passes\n{text}"
    );
    assert!(
        text.contains(&format!("wxpilot_inference_queue_depth{{{chat_labels}}} 0")),
        "{text}"
    );
    server.stop().await;
}

/// The value of the sample named exactly `series` in a text exposition.
fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}
