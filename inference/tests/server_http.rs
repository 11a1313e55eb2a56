//! The inference server over HTTP: bearer keys, error statuses, the OpenAI shapes, SSE,
//! metrics, and the remote backend round-tripping through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use server_support::{KEY, TestServer};
use wxpilot_inference::testing::{ScriptedBackend, ScriptedReply};
use wxpilot_inference::{
    Backend, ChatMessage, EmbedRequest, FinishReason, GenerateEvent, GenerateParams,
    GenerateRequest, InferenceError, RemoteBackend, RemoteConfig, RetryPolicy,
};

fn chat_body(stream: bool) -> String {
    serde_json::json!({
        "model": "scripted-chat",
        "messages": [{"role": "user", "content": "hello server"}],
        "max_tokens": 16,
        "stream": stream,
    })
    .to_string()
}

async fn post(
    client: &reqwest::Client,
    url: String,
    key: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.send().await.unwrap()
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn missing_or_wrong_keys_get_401_in_openai_shape() {
    let backend = Arc::new(ScriptedBackend::new("local").reply("never"));
    let server = TestServer::start(backend.clone()).await;
    let client = server_support::client();
    for key in [None, Some("wrong-key"), Some("test-inference-ke")] {
        let response = post(
            &client,
            server.url("/v1/chat/completions"),
            key,
            chat_body(false),
        )
        .await;
        assert_eq!(response.status().as_u16(), 401, "{key:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = json(response).await;
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("API key")
        );
    }
    let models = client.get(server.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status().as_u16(), 401);
    assert_eq!(backend.calls(), 0, "nothing reached the backend");
    // Probes need no key.
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test]
async fn chat_completion_answers_in_openai_shape() {
    let backend = Arc::new(ScriptedBackend::new("local").reply("General Kenobi"));
    let server = TestServer::start(backend.clone()).await;
    let client = server_support::client();
    let response = post(
        &client,
        server.url("/v1/chat/completions"),
        Some(KEY),
        chat_body(false),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let body = json(response).await;
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "scripted-chat");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "General Kenobi");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(body["usage"]["completion_tokens"], 2);
    assert_eq!(body["usage"]["total_tokens"], 4);
    let received = &backend.requests()[0];
    assert_eq!(received.params.max_tokens, 16);
    assert_eq!(received.messages, vec![ChatMessage::user("hello server")]);
    server.stop().await;
}

#[tokio::test]
async fn backend_errors_map_to_statuses() {
    let backend = Arc::new(
        ScriptedBackend::new("local")
            .fail(InferenceError::Overloaded)
            .fail(InferenceError::ModelMissing {
                what: "SmolLM2".into(),
                hint: "run scripts/fetch-models.sh".into(),
            })
            .fail(InferenceError::Timeout(5000)),
    );
    let server = TestServer::start(backend).await;
    let client = server_support::client();
    let url = server.url("/v1/chat/completions");

    let overloaded = post(&client, url.clone(), Some(KEY), chat_body(false)).await;
    assert_eq!(overloaded.status().as_u16(), 429);
    assert_eq!(overloaded.headers()["retry-after"], "1");
    assert_eq!(json(overloaded).await["error"]["type"], "rate_limit_error");

    let missing = post(&client, url.clone(), Some(KEY), chat_body(false)).await;
    assert_eq!(missing.status().as_u16(), 503);
    let body = json(missing).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fetch-models")
    );

    let timeout = post(&client, url.clone(), Some(KEY), chat_body(false)).await;
    assert_eq!(timeout.status().as_u16(), 504);

    // A streamed request that cannot start gets its status too, not a 200 stream.
    let unknown_model = serde_json::json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}], "stream": true});
    let bad = post(&client, url.clone(), Some(KEY), unknown_model.to_string()).await;
    assert_eq!(bad.status().as_u16(), 400);
    assert!(
        json(bad).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-9")
    );

    let malformed = post(&client, url.clone(), Some(KEY), "{\"messages\": [".into()).await;
    assert_eq!(malformed.status().as_u16(), 400);
    assert_eq!(json(malformed).await["error"]["code"], "invalid_body");

    let huge =
        serde_json::json!({"messages": [{"role": "user", "content": "x".repeat(70 * 1024)}]});
    let too_large = post(&client, url, Some(KEY), huge.to_string()).await;
    assert_eq!(too_large.status().as_u16(), 413);
    server.stop().await;
}

#[tokio::test]
async fn streaming_sends_chunks_then_done() {
    let backend = Arc::new(ScriptedBackend::new("local").reply("one two three"));
    let server = TestServer::start(backend).await;
    let client = server_support::client();
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": "count"}],
        "stream": true, "stream_options": {"include_usage": true}, "stop": "three"
    });
    let response = post(
        &client,
        server.url("/v1/chat/completions"),
        Some(KEY),
        body.to_string(),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "one two ", "cut before the stop string");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 2);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    // Chunks name the chat model, never the embedding model the backend also serves.
    assert!(
        chunks.iter().all(|c| c["model"] == "scripted-chat"),
        "{chunks:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn embeddings_and_models() {
    let backend = Arc::new(ScriptedBackend::new("local").with_dimensions(8));
    let server = TestServer::start(backend).await;
    let client = server_support::client();
    let body =
        serde_json::json!({"model": "scripted-embedding", "input": ["red apple", "blue sky"]});
    let response = post(
        &client,
        server.url("/v1/embeddings"),
        Some(KEY),
        body.to_string(),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let body = json(response).await;
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["index"], 1);
    let expected = wxpilot_inference::testing::hashed_embedding("blue sky", 8);
    let got: Vec<f32> = serde_json::from_value(body["data"][1]["embedding"].clone()).unwrap();
    assert_eq!(got, expected);
    assert_eq!(body["usage"]["prompt_tokens"], 4);

    let one = serde_json::json!({"input": "red apple", "encoding_format": "base64"});
    let body = json(
        post(
            &client,
            server.url("/v1/embeddings"),
            Some(KEY),
            one.to_string(),
        )
        .await,
    )
    .await;
    let b64 = body["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(
        b64,
        wxpilot_inference::server::wire::base64_vector(
            &wxpilot_inference::testing::hashed_embedding("red apple", 8)
        )
    );

    let models = client
        .get(server.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let models = json(models).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["scripted-embedding", "scripted-chat"]);
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_outcome() {
    let backend = Arc::new(
        ScriptedBackend::new("local")
            .reply("fine thanks")
            .fail(InferenceError::Overloaded),
    );
    let server = TestServer::start(backend).await;
    let client = server_support::client();
    let url = server.url("/v1/chat/completions");
    assert_eq!(
        post(&client, url.clone(), Some(KEY), chat_body(false))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        post(&client, url, Some(KEY), chat_body(false))
            .await
            .status()
            .as_u16(),
        429
    );
    let text = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"wxpilot_inference_requests_total{backend="local",operation="generate",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"outcome="overloaded"} 1"#), "{text}");
    assert!(
        text.contains(r#"wxpilot_inference_tokens_total{backend="local",direction="generated"} 2"#),
        "{text}"
    );
    assert!(
        text.contains("wxpilot_inference_duration_seconds_bucket"),
        "{text}"
    );
    server.stop().await;
}

fn remote_for(server: &TestServer, key: &str, max_retries: u32) -> RemoteBackend {
    RemoteBackend::new(RemoteConfig {
        base_url: server.url("/v1"),
        api_key: Some(key.to_string().into()),
        chat_model: "scripted-chat".into(),
        embedding_model: "scripted-embedding".into(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            retry_after_max: Duration::from_secs(5),
        },
    })
    .unwrap()
}

fn ask() -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage::user("round trip")],
        params: GenerateParams {
            max_tokens: 3,
            ..GenerateParams::default()
        },
        model: None,
    }
}

#[tokio::test]
async fn the_remote_backend_round_trips_through_the_server() {
    let backend = Arc::new(
        ScriptedBackend::new("local")
            .reply("a b c d e")
            .reply("streamed words here")
            .fail(InferenceError::Overloaded)
            .reply("after the wait"),
    );
    let server = TestServer::start(backend.clone()).await;
    let remote = remote_for(&server, KEY, 2);

    let whole = remote.generate(ask()).await.unwrap();
    assert_eq!(whole.text, "a b c");
    assert_eq!(whole.finish_reason, FinishReason::Length);
    assert_eq!(whole.usage.completion_tokens, 3);
    assert_eq!(whole.model, "scripted-chat");

    let mut tokens = Vec::new();
    let mut done = None;
    let mut stream = remote.generate_stream(ask()).await.unwrap();
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            GenerateEvent::Token(t) => tokens.push(t),
            GenerateEvent::Done(g) => done = Some(g),
        }
    }
    assert_eq!(tokens, vec!["streamed", " words", " here"]);
    let done = done.unwrap();
    assert_eq!(done.text, "streamed words here");
    // The server honours include_usage, so these are the backend's counts, not estimates.
    assert_eq!(done.usage.prompt_tokens, 2);
    assert_eq!(done.usage.completion_tokens, 3);

    // Overloaded → 429 with Retry-After: 1 → the remote waits and retries.
    let started = Instant::now();
    let retried = remote.generate(ask()).await.unwrap();
    assert_eq!(retried.text, "after the wait");
    assert!(started.elapsed() >= Duration::from_secs(1));

    let vectors = remote
        .embed(EmbedRequest {
            texts: vec!["x y".into(), "z".into()],
            kind: Default::default(),
            model: None,
        })
        .await
        .unwrap();
    assert_eq!(vectors.vectors.len(), 2);
    assert_eq!(
        vectors.vectors[1],
        wxpilot_inference::testing::hashed_embedding("z", 16)
    );

    let wrong = remote_for(&server, "not-the-key", 2);
    let error = wrong.generate(ask()).await.unwrap_err();
    assert!(
        matches!(
            &error,
            InferenceError::Remote {
                status: Some(401),
                retryable: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(backend.generate_calls(), 4);
    backend.push(ScriptedReply::Text("unused".into()));
    server.stop().await;
}
