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
    let server = TestServer::start(Arc::new(local)).await;
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
    server.stop().await;
}
