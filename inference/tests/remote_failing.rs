//! The remote backend against a failing remote on 127.0.0.1, and the router's fallbacks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod remote_fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use remote_fake::{Answer, FakeRemote, api_error, chat_ok, chunk};
use wxpilot_inference::testing::ScriptedBackend;
use wxpilot_inference::{
    Backend, ChatMessage, EmbedRequest, FinishReason, GenerateEvent, GenerateParams,
    GenerateRequest, InferenceError, RemoteBackend, Router, RoutingConfig, RoutingPolicy, Usage,
};

fn ask(text: &str) -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage::system("be brief"), ChatMessage::user(text)],
        params: GenerateParams {
            max_tokens: 32,
            temperature: 0.0,
            seed: Some(7),
            stop: vec!["END".into()],
            ..GenerateParams::default()
        },
        model: None,
    }
}

#[tokio::test]
async fn a_500_is_retried_and_the_second_answer_used() {
    let fake = FakeRemote::start(vec![api_error(500, "boom"), chat_ok("hello there")]).await;
    let remote = RemoteBackend::new(fake.config(2, 2_000)).unwrap();
    let out = remote.generate(ask("hi")).await.unwrap();
    assert_eq!(out.text, "hello there");
    assert_eq!(out.model, "fake-chat");
    assert_eq!(
        out.usage,
        Usage {
            prompt_tokens: 11,
            completion_tokens: 3
        }
    );
    assert_eq!(fake.calls(), 2);
    assert_eq!(remote.attempts(), 2);
    // What went over the wire: our parameters in OpenAI's names, and the bearer key.
    let body = &fake.bodies()[0];
    assert_eq!(body["model"], "fake-chat");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["content"], "hi");
    assert_eq!(body["max_tokens"], 32);
    assert_eq!(body["seed"], 7);
    assert_eq!(body["stop"], serde_json::json!(["END"]));
    assert!(body.get("stream").is_none());
    assert_eq!(
        fake.authorizations()[0].as_deref(),
        Some("Bearer sk-test-remote")
    );
    fake.stop().await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let fake = FakeRemote::start(vec![
        api_error(429, "slow down").header("retry-after", "1"),
        chat_ok("finally"),
    ])
    .await;
    let remote = RemoteBackend::new(fake.config(2, 2_000)).unwrap();
    let started = Instant::now();
    let out = remote.generate(ask("hi")).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(out.text, "finally");
    // The backoff alone would be under 100 ms: the second of Retry-After was honoured.
    assert!(waited >= Duration::from_millis(1_000), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    assert_eq!(fake.calls(), 2);
    fake.stop().await;
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_at_once_as_retryable() {
    let fake = FakeRemote::start(vec![
        api_error(429, "come back in an hour").header("retry-after", "3600"),
    ])
    .await;
    let remote = RemoteBackend::new(fake.config(3, 2_000)).unwrap();
    let started = Instant::now();
    let error = remote.generate(ask("hi")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    match &error {
        InferenceError::Remote {
            status,
            retryable,
            message,
        } => {
            assert_eq!(*status, Some(429));
            assert!(*retryable);
            assert!(message.contains("come back in an hour"), "{message}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert!(error.is_transient());
    assert_eq!(fake.calls(), 1);
    fake.stop().await;
}

#[tokio::test]
async fn persistent_5xx_gives_up_after_the_retries() {
    let fake = FakeRemote::start(vec![Answer::text(503, "<html>bad gateway</html>")]).await;
    let remote = RemoteBackend::new(fake.config(2, 2_000)).unwrap();
    let error = remote.generate(ask("hi")).await.unwrap_err();
    match error {
        InferenceError::Remote {
            status: Some(503),
            retryable: true,
            message,
        } => assert!(message.contains("bad gateway"), "{message}"),
        other => panic!("expected a 503, got {other:?}"),
    }
    assert_eq!(fake.calls(), 3, "one attempt and two retries");
    fake.stop().await;
}

#[tokio::test]
async fn timeouts_are_retried_then_reported() {
    let fake = FakeRemote::start(vec![chat_ok("too late").delayed(Duration::from_secs(3))]).await;
    let remote = RemoteBackend::new(fake.config(1, 200)).unwrap();
    let started = Instant::now();
    let error = remote.generate(ask("hi")).await.unwrap_err();
    assert_eq!(error, InferenceError::Timeout(200));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(remote.attempts(), 2);
    fake.stop().await;
}

#[tokio::test]
async fn malformed_json_is_a_clear_remote_error_and_not_retried() {
    let fake =
        FakeRemote::start(vec![Answer::text(200, "{\"id\": \"x\", \"choices\": [tru")]).await;
    let remote = RemoteBackend::new(fake.config(2, 2_000)).unwrap();
    let error = remote.generate(ask("hi")).await.unwrap_err();
    match &error {
        InferenceError::Remote {
            status: None,
            retryable: false,
            message,
        } => {
            assert!(message.contains("malformed JSON"), "{message}");
            assert!(message.contains("[tru"), "shows the body: {message}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(fake.calls(), 1);
    fake.stop().await;
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fake = FakeRemote::start(vec![api_error(400, "model not found: nope")]).await;
    let remote = RemoteBackend::new(fake.config(3, 2_000)).unwrap();
    let error = remote.generate(ask("hi")).await.unwrap_err();
    match error {
        InferenceError::Remote {
            status: Some(400),
            retryable: false,
            message,
        } => assert!(message.contains("model not found: nope"), "{message}"),
        other => panic!("expected a 400, got {other:?}"),
    }
    assert_eq!(fake.calls(), 1);
    fake.stop().await;
}

#[tokio::test]
async fn unreachable_remotes_are_transport_errors() {
    // Bind and drop a listener so the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = FakeRemote::start(vec![]).await.config(1, 500);
    config.base_url = format!("http://127.0.0.1:{port}/v1");
    let remote = RemoteBackend::new(config).unwrap();
    let error = remote.generate(ask("hi")).await.unwrap_err();
    assert!(
        matches!(&error, InferenceError::Remote { status: None, retryable: true, message } if message.contains("transport")),
        "{error:?}"
    );
    assert_eq!(remote.attempts(), 2);
}

#[tokio::test]
async fn streams_map_to_tokens_with_the_reported_usage() {
    let fake = FakeRemote::start(vec![Answer::sse(
        vec![
            chunk(Some(""), None),
            chunk(Some("Hel"), None),
            chunk(Some("lo"), None),
            chunk(None, Some("length")),
            serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
                "model": "fake-chat", "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}),
        ],
        true,
        false,
    )])
    .await;
    let remote = RemoteBackend::new(fake.config(0, 2_000)).unwrap();
    let mut stream = remote.generate_stream(ask("hi")).await.unwrap();
    let mut tokens = Vec::new();
    let mut done = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            GenerateEvent::Token(t) => tokens.push(t),
            GenerateEvent::Done(g) => done = Some(g),
        }
    }
    assert_eq!(tokens, vec!["Hel", "lo"]);
    let done = done.unwrap();
    assert_eq!(done.text, "Hello");
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert_eq!(
        done.usage,
        Usage {
            prompt_tokens: 9,
            completion_tokens: 2
        }
    );
    let body = &fake.bodies()[0];
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    fake.stop().await;
}

#[tokio::test]
async fn streams_without_usage_are_estimated() {
    let fake = FakeRemote::start(vec![Answer::sse(
        vec![
            chunk(Some("one"), None),
            chunk(Some(" two"), None),
            chunk(Some(" three"), None),
            chunk(None, Some("stop")),
        ],
        true,
        false,
    )])
    .await;
    let remote = RemoteBackend::new(fake.config(0, 2_000)).unwrap();
    let events: Vec<_> = remote
        .generate_stream(ask("abcdefgh"))
        .await
        .unwrap()
        .collect()
        .await;
    let Some(Ok(GenerateEvent::Done(done))) = events.last().cloned() else {
        panic!("no result: {events:?}");
    };
    assert_eq!(done.text, "one two three");
    // One token per delta; the prompt from its length ("be brief" 2 + "abcdefgh" 2, + 4 each).
    assert_eq!(done.usage.completion_tokens, 3);
    assert_eq!(done.usage.prompt_tokens, 12);
    fake.stop().await;
}

#[tokio::test]
async fn a_stream_cut_before_its_finish_is_an_error() {
    let fake = FakeRemote::start(vec![Answer::sse(
        vec![chunk(Some("half"), None)],
        false,
        false,
    )])
    .await;
    let remote = RemoteBackend::new(fake.config(0, 2_000)).unwrap();
    let events: Vec<_> = remote
        .generate_stream(ask("hi"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], Ok(GenerateEvent::Token("half".into())));
    assert!(
        matches!(&events[1], Err(InferenceError::Remote { message, .. }) if message.contains("ended before"))
    );
    fake.stop().await;
}

#[tokio::test]
async fn dropping_a_stream_closes_the_request() {
    let fake = FakeRemote::start(vec![Answer::sse(
        vec![chunk(Some("first"), None)],
        false,
        true,
    )])
    .await;
    let remote = RemoteBackend::new(fake.config(0, 10_000)).unwrap();
    let mut stream = remote.generate_stream(ask("hi")).await.unwrap();
    assert_eq!(
        stream.next().await.unwrap().unwrap(),
        GenerateEvent::Token("first".into())
    );
    assert!(!fake.stream_dropped());
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fake.stream_dropped() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fake.stream_dropped(), "the server still holds the stream");
    fake.stop().await;
}

#[tokio::test]
async fn embeddings_come_back_in_input_order() {
    let fake = FakeRemote::start(vec![Answer::json(
        200,
        serde_json::json!({
            "object": "list", "model": "fake-embedding",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
                {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}
            ],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        }),
    )])
    .await;
    let remote = RemoteBackend::new(fake.config(0, 2_000)).unwrap();
    let out = remote
        .embed(EmbedRequest {
            texts: vec!["a".into(), "b".into()],
            kind: Default::default(),
            model: None,
        })
        .await
        .unwrap();
    assert_eq!(out.vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    assert_eq!(out.usage.prompt_tokens, 4);
    assert_eq!(fake.bodies()[0]["input"], serde_json::json!(["a", "b"]));
    assert_eq!(fake.bodies()[0]["encoding_format"], "float");
    fake.stop().await;
}

/// A router whose remote is the fake and whose local backend is scripted.
fn router(
    policy: RoutingPolicy,
    local: Arc<ScriptedBackend>,
    remote: Arc<RemoteBackend>,
) -> Arc<dyn Backend> {
    let router = Router::new(
        Some(local as Arc<dyn Backend>),
        Some(remote as Arc<dyn Backend>),
        RoutingConfig {
            default: RoutingPolicy::LocalOnly,
            kinds: [("reply".to_string(), policy)].into(),
        },
    );
    router.for_kind("reply")
}

#[tokio::test]
async fn local_first_goes_remote_when_local_is_overloaded() {
    let fake = FakeRemote::start(vec![chat_ok("from remote")]).await;
    let remote = Arc::new(RemoteBackend::new(fake.config(0, 2_000)).unwrap());
    let local = Arc::new(ScriptedBackend::new("local").fail(InferenceError::Overloaded));
    let out = router(RoutingPolicy::LocalFirst, local.clone(), remote)
        .generate(ask("hi"))
        .await
        .unwrap();
    assert_eq!(out.text, "from remote");
    assert_eq!(local.generate_calls(), 1);
    assert_eq!(fake.calls(), 1);
    fake.stop().await;
}

#[tokio::test]
async fn local_first_stays_local_on_a_bug() {
    let fake = FakeRemote::start(vec![chat_ok("from remote")]).await;
    let remote = Arc::new(RemoteBackend::new(fake.config(0, 2_000)).unwrap());
    let local = Arc::new(
        ScriptedBackend::new("local").fail(InferenceError::Internal("bad weights".into())),
    );
    let error = router(RoutingPolicy::LocalFirst, local, remote)
        .generate(ask("hi"))
        .await
        .unwrap_err();
    assert_eq!(error, InferenceError::Internal("bad weights".into()));
    assert_eq!(fake.calls(), 0);
    fake.stop().await;
}

#[tokio::test]
async fn remote_first_goes_local_when_the_remote_fails() {
    let fake = FakeRemote::start(vec![
        Answer::text(200, "not json at all"),
        api_error(500, "down"),
    ])
    .await;
    let remote = Arc::new(RemoteBackend::new(fake.config(0, 2_000)).unwrap());
    let local = Arc::new(ScriptedBackend::new("local").reply("from local"));
    let routed = router(RoutingPolicy::RemoteFirst, local.clone(), remote);
    let out = routed.generate(ask("hi")).await.unwrap();
    assert_eq!(out.text, "from local");
    assert_eq!(fake.calls(), 1);
    // Streams fall back too when the remote fails before the first token (here with a 500).
    local.push(wxpilot_inference::testing::ScriptedReply::Text(
        "streamed local".into(),
    ));
    let events: Vec<_> = routed
        .generate_stream(ask("hi"))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(
        matches!(events.last(), Some(Ok(GenerateEvent::Done(g))) if g.text == "streamed local")
    );
    fake.stop().await;
}

#[tokio::test]
async fn remote_first_keeps_bad_requests() {
    let fake = FakeRemote::start(vec![api_error(500, "down")]).await;
    let remote = Arc::new(RemoteBackend::new(fake.config(0, 2_000)).unwrap());
    let local = Arc::new(ScriptedBackend::new("local").reply("never"));
    let routed = router(RoutingPolicy::RemoteFirst, local.clone(), remote);
    let error = routed
        .embed(EmbedRequest {
            texts: vec![],
            kind: Default::default(),
            model: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, InferenceError::InvalidRequest(_)),
        "{error:?}"
    );
    assert_eq!(local.calls(), 0);
    fake.stop().await;
}

#[tokio::test]
async fn local_only_never_calls_the_remote() {
    let fake = FakeRemote::start(vec![chat_ok("from remote")]).await;
    let remote = Arc::new(RemoteBackend::new(fake.config(0, 2_000)).unwrap());
    let local = Arc::new(ScriptedBackend::new("local").fail(InferenceError::Overloaded));
    let error = router(RoutingPolicy::LocalOnly, local, remote)
        .generate(ask("hi"))
        .await
        .unwrap_err();
    assert_eq!(error, InferenceError::Overloaded);
    assert_eq!(fake.calls(), 0);
    fake.stop().await;
}

#[tokio::test]
async fn remote_only_never_calls_local() {
    let fake = FakeRemote::start(vec![api_error(503, "down")]).await;
    let remote = Arc::new(RemoteBackend::new(fake.config(1, 2_000)).unwrap());
    let local = Arc::new(ScriptedBackend::new("local").reply("never"));
    let error = router(RoutingPolicy::RemoteOnly, local.clone(), remote)
        .generate(ask("hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            InferenceError::Remote {
                status: Some(503),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(fake.calls(), 2);
    assert_eq!(local.calls(), 0);
    fake.stop().await;
}

#[tokio::test]
async fn a_missing_backend_is_skipped_or_reported() {
    let local = Arc::new(ScriptedBackend::new("local").reply("only local"));
    let router = Router::new(
        Some(local as Arc<dyn Backend>),
        None,
        RoutingConfig {
            default: RoutingPolicy::RemoteFirst,
            kinds: [("embed".to_string(), RoutingPolicy::RemoteOnly)].into(),
        },
    );
    assert_eq!(router.generate(ask("hi")).await.unwrap().text, "only local");
    let error = router
        .for_kind("embed")
        .embed(EmbedRequest {
            texts: vec!["x".into()],
            kind: Default::default(),
            model: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, InferenceError::ModelMissing { hint, .. } if hint.contains("[inference.remote]")),
        "{error:?}"
    );
}
