//! A scripted OpenAI-compatible service on 127.0.0.1 for the remote backend's tests: each
//! request gets the next scripted answer (the last one repeats), and the fake counts
//! requests and notices when a client drops a streamed answer.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use wxpilot_inference::{RemoteConfig, RetryPolicy};

/// What the fake sends back for one request.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Wait before answering.
    pub delay: Duration,
}

#[derive(Clone)]
pub enum Body {
    Text(String),
    /// Server-sent events: each string is one `data:` payload; `hang` keeps the stream
    /// open after them until the client goes away.
    Sse {
        events: Vec<String>,
        hang: bool,
    },
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::text(status, body.to_string())
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![],
            body: Body::Text(body.into()),
            delay: Duration::ZERO,
        }
    }

    pub fn sse(events: Vec<serde_json::Value>, done: bool, hang: bool) -> Self {
        let mut events: Vec<String> = events.into_iter().map(|e| e.to_string()).collect();
        if done {
            events.push("[DONE]".into());
        }
        Self {
            status: 200,
            headers: vec![],
            body: Body::Sse { events, hang },
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A chat completion body as OpenAI sends it.
pub fn chat_ok(text: &str) -> Answer {
    Answer::json(
        200,
        serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fake-chat",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        }),
    )
}

/// An OpenAI error body.
pub fn api_error(status: u16, message: &str) -> Answer {
    Answer::json(
        status,
        serde_json::json!({"error": {"message": message, "type": "test_error", "param": null, "code": null}}),
    )
}

/// One streamed chunk with a content delta (or a finish reason).
pub fn chunk(content: Option<&str>, finish: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "fake-chat",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    })
}

#[derive(Default)]
struct State {
    answers: Mutex<VecDeque<Answer>>,
    last: Mutex<Option<Answer>>,
    calls: AtomicUsize,
    bodies: Mutex<Vec<serde_json::Value>>,
    stream_dropped: Arc<AtomicBool>,
    authorizations: Mutex<Vec<Option<String>>>,
}

/// The running fake.
pub struct FakeRemote {
    state: Arc<State>,
    pub port: u16,
    handle: actix_web::dev::ServerHandle,
}

/// Sets a flag when the streamed body is dropped (the client went away).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn answer(request: HttpRequest, body: Bytes, state: web::Data<Arc<State>>) -> HttpResponse {
    state.calls.fetch_add(1, Ordering::SeqCst);
    state.authorizations.lock().unwrap().push(
        request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    if let Ok(json) = serde_json::from_slice(&body) {
        state.bodies.lock().unwrap().push(json);
    }
    let next = state.answers.lock().unwrap().pop_front();
    let answer = match next {
        Some(a) => {
            *state.last.lock().unwrap() = Some(a.clone());
            a
        }
        None => state
            .last
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Answer::text(500, "no script")),
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut response =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.status).unwrap());
    for (name, value) in &answer.headers {
        response.insert_header((*name, value.as_str()));
    }
    match answer.body {
        Body::Text(text) => response.content_type("application/json").body(text),
        Body::Sse { events, hang } => {
            let flag = DropFlag(state.stream_dropped.clone());
            let lines = futures_util::stream::iter(
                events
                    .into_iter()
                    .map(|e| Ok::<_, actix_web::Error>(Bytes::from(format!("data: {e}\n\n")))),
            );
            let tail = futures_util::stream::unfold((hang, flag), |(hang, flag)| async move {
                if !hang {
                    return None;
                }
                // Never ends by itself: an SSE comment every 50 ms (clients ignore them)
                // until a write fails because the client left, which drops `flag`.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Ok(Bytes::from_static(b": ping\n\n")), (hang, flag)))
            });
            use futures_util::StreamExt;
            response
                .content_type("text/event-stream")
                .streaming(lines.chain(tail))
        }
    }
}

impl FakeRemote {
    /// Starts the fake with a script.
    pub async fn start(answers: Vec<Answer>) -> Self {
        let state = Arc::new(State {
            answers: Mutex::new(answers.into()),
            ..State::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            state,
            port,
            handle,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// A remote configuration pointing here, with quick retries.
    pub fn config(&self, max_retries: u32, timeout_ms: u64) -> RemoteConfig {
        RemoteConfig {
            base_url: self.base_url(),
            api_key: Some("sk-test-remote".to_string().into()),
            chat_model: "fake-chat".into(),
            embedding_model: "fake-embedding".into(),
            timeout: Duration::from_millis(timeout_ms),
            retry: RetryPolicy {
                max_retries,
                backoff_base: Duration::from_millis(20),
                backoff_max: Duration::from_millis(100),
                retry_after_max: Duration::from_secs(5),
            },
        }
    }

    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.state.bodies.lock().unwrap().clone()
    }

    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.state.authorizations.lock().unwrap().clone()
    }

    pub fn stream_dropped(&self) -> bool {
        self.state.stream_dropped.load(Ordering::SeqCst)
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
