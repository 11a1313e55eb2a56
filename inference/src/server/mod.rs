//! `wxpilot inference serve`: an OpenAI-compatible HTTP server over any [`Backend`] (the
//! local models in production), so other processes, or any OpenAI client, can use them.
//!
//! Routes: `POST /v1/chat/completions` (with `stream: true` as server-sent events),
//! `POST /v1/embeddings`, `GET /v1/models` (all bearer-key protected), `GET /healthz` and
//! `GET /metrics` (open, for probes and Prometheus).

pub mod metrics;
pub mod wire;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use futures_util::StreamExt;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::types::{Backend, GenerateEvent, InferenceError, ModelKind};
use metrics::InferenceMetrics;
use wire::{ChatCompletionBody, EmbeddingBody};

/// How the server runs.
#[derive(Clone)]
pub struct ServerConfig {
    /// Keys accepted as `Authorization: Bearer <key>`. Empty means no authentication:
    /// only for a loopback address (the serve command refuses otherwise).
    pub api_keys: Vec<SecretString>,
    /// Largest request body, in bytes; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Seconds a client is told to wait (`Retry-After`) when the backend is overloaded.
    pub overload_retry_after_secs: u64,
    /// HTTP worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// Time in-flight requests get after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Whether SIGINT/SIGTERM stop the server (off in tests, which stop it by handle).
    pub handle_signals: bool,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("api_keys", &format!("{} key(s)", self.api_keys.len()))
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("overload_retry_after_secs", &self.overload_retry_after_secs)
            .field("workers", &self.workers)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("handle_signals", &self.handle_signals)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            body_limit_bytes: 2 * 1024 * 1024,
            overload_retry_after_secs: 1,
            workers: None,
            shutdown_timeout: Duration::from_secs(30),
            handle_signals: true,
        }
    }
}

/// Why a request failed, in OpenAI's error shape `{"error":{"message","type","code"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No or a wrong bearer key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The body is not the JSON we expect.
    #[error("the request body is not valid: {0}")]
    BadBody(String),
    /// The body is over the limit.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The backend failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

/// The status for a backend error: one place, as the design notes ask.
pub fn status_for(error: &InferenceError) -> StatusCode {
    match error {
        InferenceError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
        InferenceError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        InferenceError::ModelMissing { .. } => StatusCode::SERVICE_UNAVAILABLE,
        InferenceError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        InferenceError::Remote { .. } => StatusCode::BAD_GATEWAY,
        InferenceError::Cancelled | InferenceError::Internal(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl ServerError {
    /// OpenAI's `type` and `code` for this error.
    fn type_and_code(&self) -> (&'static str, &'static str) {
        match self {
            Self::Unauthorized(_) => ("invalid_request_error", "invalid_api_key"),
            Self::BadBody(_) => ("invalid_request_error", "invalid_body"),
            Self::TooLarge(_) => ("invalid_request_error", "body_too_large"),
            Self::Inference(error) => {
                let kind = match error {
                    InferenceError::Overloaded => "rate_limit_error",
                    InferenceError::InvalidRequest(_) => "invalid_request_error",
                    _ => "server_error",
                };
                (kind, error.kind())
            }
        }
    }

    /// The error body.
    pub fn body(&self) -> serde_json::Value {
        let (kind, code) = self.type_and_code();
        serde_json::json!({"error": {"message": self.to_string(), "type": kind, "code": code, "param": null}})
    }
}

/// Seconds clients are told to wait on 429, set from [`ServerConfig`].
#[derive(Clone, Copy)]
struct RetryAfter(u64);

impl ResponseError for ServerError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadBody(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Inference(error) => status_for(error),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self.body())
    }
}

/// What every handler shares.
struct AppState {
    backend: Arc<dyn Backend>,
    api_keys: Vec<SecretString>,
    body_limit: usize,
    retry_after: RetryAfter,
    registry: prometheus::Registry,
}

/// Whether `presented` equals one of `keys`, comparing in constant time so the answer's
/// timing does not reveal how much of a key matched. Every key is compared.
pub fn key_matches(presented: &str, keys: &[SecretString]) -> bool {
    keys.iter().fold(false, |found, key| {
        let equal: bool = key
            .expose_secret()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into();
        found | equal
    })
}

fn authorize(request: &HttpRequest, state: &AppState) -> Result<(), ServerError> {
    if state.api_keys.is_empty() {
        return Ok(());
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or(ServerError::Unauthorized(
            "missing API key: send Authorization: Bearer <key>",
        ))?;
    if key_matches(presented.trim(), &state.api_keys) {
        Ok(())
    } else {
        Err(ServerError::Unauthorized("invalid API key"))
    }
}

/// Reads a JSON body within the limit.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, actix_web::Error>,
    limit: usize,
) -> Result<T, ServerError> {
    let bytes = body.map_err(|_| ServerError::TooLarge(limit))?;
    serde_json::from_slice(&bytes).map_err(|e| ServerError::BadBody(e.to_string()))
}

/// Adds `Retry-After` to 429 answers.
fn with_retry_after(error: ServerError, retry_after: RetryAfter) -> HttpResponse {
    let mut response = error.error_response();
    if response.status() == StatusCode::TOO_MANY_REQUESTS
        && let Ok(value) = HeaderValue::from_str(&retry_after.0.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion_id() -> String {
    let n: u128 = rand::thread_rng().r#gen();
    format!("chatcmpl-{n:032x}")
}

/// One server-sent event line.
fn sse(value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

async fn chat_completions(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: Result<Bytes, actix_web::Error>,
) -> HttpResponse {
    match chat_completions_inner(&request, &state, body).await {
        Ok(response) => response,
        Err(error) => with_retry_after(error, state.retry_after),
    }
}

async fn chat_completions_inner(
    request: &HttpRequest,
    state: &AppState,
    body: Result<Bytes, actix_web::Error>,
) -> Result<HttpResponse, ServerError> {
    authorize(request, state)?;
    let body: ChatCompletionBody = parse_body(body, state.body_limit)?;
    let streams = body.streams();
    let include_usage = body.wants_stream_usage();
    let generate = body.into_request()?;
    let id = completion_id();
    let created = now_secs();
    if !streams {
        let generation = state.backend.generate(generate).await?;
        return Ok(HttpResponse::Ok().json(wire::completion_json(&id, created, &generation)));
    }
    let fallback_model = generate
        .model
        .clone()
        .or_else(|| {
            state
                .backend
                .models()
                .into_iter()
                .find(|m| m.kind == ModelKind::Chat)
                .map(|m| m.id)
        })
        .unwrap_or_default();
    // Start before answering 200, so that overload and bad requests get their status.
    let tokens = state.backend.generate_stream(generate).await?;
    let first = sse(&wire::chunk_json(
        &id,
        created,
        &fallback_model,
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    ));
    let events = tokens.flat_map(move |event| {
        let lines: Vec<Bytes> = match event {
            Ok(GenerateEvent::Token(text)) => vec![sse(&wire::chunk_json(
                &id,
                created,
                &fallback_model,
                serde_json::json!({"content": text}),
                None,
            ))],
            Ok(GenerateEvent::Done(generation)) => {
                let mut lines = vec![sse(&wire::chunk_json(
                    &id,
                    created,
                    &generation.model,
                    serde_json::json!({}),
                    Some(generation.finish_reason),
                ))];
                if include_usage {
                    lines.push(sse(&wire::usage_chunk_json(
                        &id,
                        created,
                        &generation.model,
                        generation.usage,
                    )));
                }
                lines.push(Bytes::from_static(b"data: [DONE]\n\n"));
                lines
            }
            // The status is already sent: the error goes in the stream, which then ends.
            Err(error) => vec![sse(&ServerError::Inference(error).body())],
        };
        futures_util::stream::iter(lines.into_iter().map(Ok::<Bytes, actix_web::Error>))
    });
    let body = futures_util::stream::once(async move { Ok(first) }).chain(events);
    // Dropping this body when the client goes away drops the token stream, which cancels
    // the generation.
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(body))
}

async fn embeddings(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: Result<Bytes, actix_web::Error>,
) -> HttpResponse {
    let result = async {
        authorize(&request, &state)?;
        let body: EmbeddingBody = parse_body(body, state.body_limit)?;
        let (embed, format) = body.into_request()?;
        let vectors = state.backend.embed(embed).await?;
        Ok::<_, ServerError>(HttpResponse::Ok().json(wire::embeddings_json(&vectors, format)))
    }
    .await;
    result.unwrap_or_else(|error| with_retry_after(error, state.retry_after))
}

async fn models(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match authorize(&request, &state) {
        Ok(()) => HttpResponse::Ok().json(wire::models_json(&state.backend.models())),
        Err(error) => error.error_response(),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    match prometheus::TextEncoder::new().encode_to_string(&state.registry.gather()) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(text),
        Err(error) => {
            HttpResponse::InternalServerError().body(format!("cannot encode metrics: {error}"))
        }
    }
}

/// A bound, not yet running inference server.
pub struct InferenceServer {
    server: Server,
    port: u16,
}

impl InferenceServer {
    /// Binds the server on `listener` (port 0 in tests) over `backend`. Requests are metered
    /// on `registry` (also served at `/metrics`) under the backend's name.
    pub fn bind(
        listener: TcpListener,
        backend: Arc<dyn Backend>,
        config: ServerConfig,
        registry: prometheus::Registry,
    ) -> std::io::Result<Self> {
        let metrics = InferenceMetrics::register(&registry).map_err(std::io::Error::other)?;
        let backend: Arc<dyn Backend> = Arc::new(metrics::MeteredBackend::new(backend, metrics));
        Self::bind_unmetered(listener, backend, config, registry)
    }

    /// Like [`bind`](Self::bind) for a backend that is metered already (or should not be).
    pub fn bind_unmetered(
        listener: TcpListener,
        backend: Arc<dyn Backend>,
        config: ServerConfig,
        registry: prometheus::Registry,
    ) -> std::io::Result<Self> {
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            backend,
            api_keys: config.api_keys.clone(),
            body_limit: config.body_limit_bytes,
            retry_after: RetryAfter(config.overload_retry_after_secs),
            registry,
        });
        let limit = config.body_limit_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(limit))
                .route("/v1/chat/completions", web::post().to(chat_completions))
                .route("/v1/embeddings", web::post().to(embeddings))
                .route("/v1/models", web::get().to(models))
                .route("/healthz", web::get().to(healthz))
                .route("/metrics", web::get().to(metrics_text))
        })
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .listen(listener)?;
        if let Some(workers) = config.workers {
            server = server.workers(workers.max(1));
        }
        if !config.handle_signals {
            server = server.disable_signals();
        }
        Ok(Self {
            server: server.run(),
            port,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop it gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped by signal (SIGINT/SIGTERM, graceful) or handle.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_error_has_its_status() {
        let cases = [
            (InferenceError::Overloaded, 429),
            (InferenceError::InvalidRequest("x".into()), 400),
            (
                InferenceError::ModelMissing {
                    what: "m".into(),
                    hint: "h".into(),
                },
                503,
            ),
            (InferenceError::Timeout(10), 504),
            (
                InferenceError::Remote {
                    status: Some(500),
                    message: "x".into(),
                    retryable: true,
                },
                502,
            ),
            (InferenceError::Internal("x".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(status_for(&error).as_u16(), status, "{error}");
        }
    }

    #[test]
    fn keys_compare_whole() {
        let keys = vec![
            SecretString::from("alpha-key"),
            SecretString::from("beta-key"),
        ];
        assert!(key_matches("beta-key", &keys));
        assert!(!key_matches("beta-ke", &keys));
        assert!(!key_matches("beta-keyy", &keys));
        assert!(!key_matches("", &keys));
        assert!(!key_matches("alpha-key", &[]));
    }

    #[test]
    fn error_bodies_have_openai_shape() {
        let body = ServerError::Inference(InferenceError::Overloaded).body();
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["code"], "overloaded");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("queue is full")
        );
    }
}
