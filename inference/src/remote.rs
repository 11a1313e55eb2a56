//! The OpenAI-compatible remote backend: any service that speaks `/v1/chat/completions`
//! and `/v1/embeddings` (OpenAI, vLLM, Ollama, DeepSeek, Qwen, or wxpilot's own server).
//!
//! Requests go through async-openai's client, but the HTTP attempts are ours: async-openai's
//! built-in retry layer retries only connection errors, without jitter, and would wait as
//! long as any `Retry-After` says. [`RetryingTransport`] retries 429, 5xx, transport errors
//! and timeouts with exponential backoff and jitter, honours `Retry-After` up to a cap, and
//! turns every non-success answer into an error itself, so the status is never lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::{ApiError, ApiErrorResponse, OpenAIError, WrappedError};
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, CompletionUsage,
    CreateChatCompletionRequest, CreateChatCompletionStreamResponse,
    FinishReason as WireFinishReason, StopConfiguration,
};
use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput, EncodingFormat};
use futures_util::{Stream, StreamExt};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

use crate::types::{
    Backend, BoxFuture, ChatMessage, EmbedKind, EmbedRequest, Embeddings, FinishReason,
    GenerateEvent, GenerateRequest, Generation, InferenceError, ModelInfo, ModelKind, Role,
    TokenStream, Usage,
};

/// How to reach an OpenAI-compatible service.
#[derive(Clone)]
pub struct RemoteConfig {
    /// Base URL including the version segment, e.g. `https://host/v1`.
    pub base_url: String,
    /// Bearer key; `None` for services that need none (a local Ollama).
    pub api_key: Option<SecretString>,
    /// Model used for chat when a request names none.
    pub chat_model: String,
    /// Model used for embeddings when a request names none.
    pub embedding_model: String,
    /// Limit for one attempt to get an answer's headers, and for each silence while reading
    /// its body (so a long stream that keeps talking is never cut).
    pub timeout: Duration,
    /// Retries and their spacing.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for RemoteConfig {
    // Hand-written so the key can never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("chat_model", &self.chat_model)
            .field("embedding_model", &self.embedding_model)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// When and how long to wait before trying a remote again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// Delay before the first retry; doubles with each further one.
    pub backoff_base: Duration,
    /// Longest computed delay.
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured. A longer one ends the call at once with a retryable
    /// error, so a router can go elsewhere instead of holding a job for minutes.
    pub retry_after_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            retry_after_max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0 for the first retry), with "equal jitter":
    /// half the exponential delay is fixed, the other half scaled by `jitter` in `[0, 1]`,
    /// so concurrent callers spread out but never retry immediately.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        let full = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The wait before retry number `retry`, or `None` when the call should stop: no retries
    /// left, or a `Retry-After` longer than this policy accepts.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        match retry_after {
            Some(wait) if wait > self.retry_after_max => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(retry, jitter)),
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds (fractions accepted, as some services send
/// them) or an HTTP date, measured from `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether an HTTP status is worth another attempt.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// One attempt took longer than the configured timeout.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0} ms")]
struct AttemptTimedOut(u64);

/// The HTTP layer under async-openai: sends, retries and classifies.
#[derive(Clone)]
struct RetryingTransport {
    client: reqwest::Client,
    policy: RetryPolicy,
    timeout: Duration,
    attempts: Arc<AtomicU64>,
}

impl tower::Service<HttpRequestFactory> for RetryingTransport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = BoxFuture<'static, Result<reqwest::Response, OpenAIError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let transport = self.clone();
        Box::pin(async move { transport.send(factory).await })
    }
}

impl RetryingTransport {
    async fn send(&self, factory: HttpRequestFactory) -> Result<reqwest::Response, OpenAIError> {
        let mut retry = 0u32;
        loop {
            let request = factory.build().await?;
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let outcome = tokio::time::timeout(self.timeout, self.client.execute(request)).await;
            let (failure, retry_after) = match outcome {
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    if !is_retryable_status(status) {
                        return Err(error_from_response(response).await);
                    }
                    (Failure::Status(response), retry_after)
                }
                Ok(Err(error)) if error.is_builder() => return Err(OpenAIError::Reqwest(error)),
                // reqwest's own read timeout (the same limit) can fire before ours.
                Ok(Err(error)) if error.is_timeout() => (Failure::TimedOut, None),
                Ok(Err(error)) => (Failure::Transport(error), None),
                Err(_) => (Failure::TimedOut, None),
            };
            let jitter = rand::thread_rng().r#gen::<f64>();
            let Some(delay) = self.policy.delay(retry, retry_after, jitter) else {
                return Err(failure.into_error(self.timeout).await);
            };
            tracing::warn!(
                retry = retry + 1,
                of = self.policy.max_retries,
                delay_ms = delay.as_millis() as u64,
                failure = %failure.describe(),
                "remote model service failed; retrying"
            );
            // Free the connection before sleeping.
            drop(failure);
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

/// What went wrong with one attempt.
enum Failure {
    Status(reqwest::Response),
    Transport(reqwest::Error),
    TimedOut,
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Self::Status(response) => format!("status {}", response.status().as_u16()),
            Self::Transport(error) => format!("transport: {error}"),
            Self::TimedOut => "timed out".into(),
        }
    }

    async fn into_error(self, timeout: Duration) -> OpenAIError {
        match self {
            Self::Status(response) => error_from_response(response).await,
            Self::Transport(error) => OpenAIError::Reqwest(error),
            Self::TimedOut => {
                OpenAIError::Boxed(Box::new(AttemptTimedOut(timeout.as_millis() as u64)))
            }
        }
    }
}

/// Reads an error answer into async-openai's error, keeping the status whatever the body
/// is (OpenAI's `{"error":{…}}`, plain text, or an HTML page from a proxy).
async fn error_from_response(response: reqwest::Response) -> OpenAIError {
    let status_code = response.status();
    let body = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return OpenAIError::Reqwest(error),
    };
    let api_error = match serde_json::from_slice::<WrappedError>(&body) {
        Ok(wrapped) => wrapped.error,
        Err(_) => ApiError {
            message: snippet(&String::from_utf8_lossy(&body)),
            ..ApiError::default()
        },
    };
    OpenAIError::ApiError(ApiErrorResponse {
        status_code,
        api_error,
    })
}

/// The first 200 characters of a body, for error messages.
fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Maps async-openai's errors onto ours; `timeout` is the configured limit, reported when a
/// body stalls.
fn map_error(error: OpenAIError, timeout: Duration) -> InferenceError {
    match error {
        OpenAIError::ApiError(response) => {
            let status = response.status_code.as_u16();
            InferenceError::Remote {
                status: Some(status),
                message: response.api_error.to_string(),
                retryable: is_retryable_status(status),
            }
        }
        OpenAIError::JSONDeserialize(error, body) => InferenceError::Remote {
            status: None,
            message: format!(
                "the remote answered with malformed JSON ({error}); the body begins: {}",
                snippet(&body)
            ),
            // Asking the same service again would most likely get the same answer.
            retryable: false,
        },
        OpenAIError::Reqwest(error) if error.is_timeout() => {
            InferenceError::Timeout(timeout.as_millis() as u64)
        }
        OpenAIError::Reqwest(error) => InferenceError::Remote {
            status: error.status().map(|s| s.as_u16()),
            message: format!("transport error: {}", error_chain(&error)),
            retryable: true,
        },
        OpenAIError::Boxed(boxed) => match boxed.downcast::<AttemptTimedOut>() {
            Ok(timed_out) => InferenceError::Timeout(timed_out.0),
            Err(other) => InferenceError::Internal(other.to_string()),
        },
        OpenAIError::StreamError(error) => InferenceError::Remote {
            status: None,
            message: format!("the event stream broke: {error}"),
            retryable: true,
        },
        OpenAIError::InvalidArgument(message) => InferenceError::InvalidRequest(message),
        other => InferenceError::Internal(other.to_string()),
    }
}

/// An error and its causes on one line (reqwest hides the interesting part in `source`).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Installs ring as rustls's process-wide crypto provider, once; harmless when another part
/// of the process already installed one. [`RemoteBackend::new`] calls it; anything else in
/// the process that builds a reqwest 0.13 client first must call it too.
pub fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A [`Backend`] over an OpenAI-compatible HTTP service.
pub struct RemoteBackend {
    client: Client<OpenAIConfig>,
    config: RemoteConfig,
    attempts: Arc<AtomicU64>,
}

impl std::fmt::Debug for RemoteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RemoteBackend {
    /// Builds the client. Fails only when the HTTP client cannot be built (no TLS roots).
    pub fn new(config: RemoteConfig) -> Result<Self, InferenceError> {
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .build()
            .map_err(|e| {
                InferenceError::Internal(format!(
                    "cannot build the HTTP client: {}",
                    error_chain(&e)
                ))
            })?;
        let attempts = Arc::new(AtomicU64::new(0));
        let transport = RetryingTransport {
            client: http,
            policy: config.retry,
            timeout: config.timeout,
            attempts: attempts.clone(),
        };
        let mut openai = OpenAIConfig::new().with_api_base(config.base_url.trim_end_matches('/'));
        openai = openai.with_api_key(
            config
                .api_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned())
                .unwrap_or_default(),
        );
        let client = Client::with_config(openai).with_http_service(transport);
        Ok(Self {
            client,
            config,
            attempts,
        })
    }

    /// HTTP attempts made so far, retries included (for tests and diagnostics).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// The configuration in use.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    // `max_tokens` and `seed` are deprecated by OpenAI but are what most compatible
    // services read.
    #[allow(deprecated)]
    fn chat_request(&self, request: &GenerateRequest, stream: bool) -> CreateChatCompletionRequest {
        let params = &request.params;
        CreateChatCompletionRequest {
            model: request
                .model
                .clone()
                .unwrap_or_else(|| self.config.chat_model.clone()),
            messages: request.messages.iter().map(wire_message).collect(),
            max_tokens: Some(params.max_tokens),
            temperature: Some(params.temperature),
            top_p: Some(params.top_p),
            seed: params.seed.map(|s| s as i64),
            stop: (!params.stop.is_empty())
                .then(|| StopConfiguration::StringArray(params.stop.clone())),
            stream: stream.then_some(true),
            stream_options: stream.then_some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            ..Default::default()
        }
    }
}

/// One of our chat messages in OpenAI's shape.
fn wire_message(message: &ChatMessage) -> ChatCompletionRequestMessage {
    let content = message.content.clone();
    match message.role {
        Role::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(content),
            name: None,
        }),
        Role::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(content),
            name: None,
        }),
        Role::Assistant => {
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: Some(ChatCompletionRequestAssistantMessageContent::Text(content)),
                ..Default::default()
            })
        }
    }
}

/// A rough token count for text when a service reports none: one token per four bytes,
/// rounded up (about right for English with BPE vocabularies; an overestimate for Chinese
/// is preferable for budgets to an underestimate).
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// Estimated prompt tokens of a chat: the text plus a few tokens of framing per message.
pub fn estimate_prompt_tokens(messages: &[ChatMessage]) -> u32 {
    messages.iter().fold(0u32, |sum, m| {
        sum.saturating_add(estimate_tokens(&m.content))
            .saturating_add(4)
    })
}

fn usage_from_wire(usage: &CompletionUsage) -> Usage {
    Usage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
    }
}

fn finish_from_wire(reason: Option<WireFinishReason>) -> FinishReason {
    match reason {
        Some(WireFinishReason::Length) => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// Adds the `query: ` / `passage: ` prefix E5-family models are trained with.
fn embedding_input(model: &str, kind: EmbedKind, texts: Vec<String>) -> Vec<String> {
    if !model.to_ascii_lowercase().contains("e5") {
        return texts;
    }
    let prefix = match kind {
        EmbedKind::Query => "query: ",
        EmbedKind::Passage => "passage: ",
    };
    texts.into_iter().map(|t| format!("{prefix}{t}")).collect()
}

impl Backend for RemoteBackend {
    fn name(&self) -> &str {
        "remote"
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![
            ModelInfo {
                id: self.config.chat_model.clone(),
                kind: ModelKind::Chat,
            },
            ModelInfo {
                id: self.config.embedding_model.clone(),
                kind: ModelKind::Embedding,
            },
        ]
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'_, Result<Embeddings, InferenceError>> {
        Box::pin(async move {
            if request.texts.is_empty() {
                return Err(InferenceError::InvalidRequest("no texts to embed".into()));
            }
            let model = request
                .model
                .unwrap_or_else(|| self.config.embedding_model.clone());
            let count = request.texts.len();
            let wire = CreateEmbeddingRequest {
                model: model.clone(),
                input: EmbeddingInput::StringArray(embedding_input(
                    &model,
                    request.kind,
                    request.texts,
                )),
                encoding_format: Some(EncodingFormat::Float),
                ..Default::default()
            };
            let mut response = self
                .client
                .embeddings()
                .create(wire)
                .await
                .map_err(|e| map_error(e, self.config.timeout))?;
            if response.data.len() != count {
                return Err(InferenceError::Remote {
                    status: None,
                    message: format!(
                        "the remote returned {} vectors for {count} texts",
                        response.data.len()
                    ),
                    retryable: false,
                });
            }
            response.data.sort_by_key(|e| e.index);
            Ok(Embeddings {
                vectors: response.data.into_iter().map(|e| e.embedding).collect(),
                usage: Usage {
                    prompt_tokens: response.usage.prompt_tokens,
                    completion_tokens: 0,
                },
                model: response.model,
            })
        })
    }

    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, InferenceError>> {
        Box::pin(async move {
            let wire = self.chat_request(&request, false);
            let response = self
                .client
                .chat()
                .create(wire)
                .await
                .map_err(|e| map_error(e, self.config.timeout))?;
            let Some(choice) = response.choices.into_iter().next() else {
                return Err(InferenceError::Remote {
                    status: None,
                    message: "the remote answered with no choices".into(),
                    retryable: false,
                });
            };
            let text = choice.message.content.unwrap_or_default();
            let usage = match &response.usage {
                Some(usage) => usage_from_wire(usage),
                None => {
                    tracing::warn!(
                        "the remote reported no token usage; counts are estimated from text length"
                    );
                    Usage {
                        prompt_tokens: estimate_prompt_tokens(&request.messages),
                        completion_tokens: estimate_tokens(&text),
                    }
                }
            };
            Ok(Generation {
                text,
                finish_reason: finish_from_wire(choice.finish_reason),
                usage,
                model: response.model,
            })
        })
    }

    fn generate_stream(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<TokenStream, InferenceError>> {
        Box::pin(async move {
            let wire = self.chat_request(&request, true);
            let model = wire.model.clone();
            let chunks = self
                .client
                .chat()
                .create_stream(wire)
                .await
                .map_err(|e| map_error(e, self.config.timeout))?;
            let state = StreamState {
                chunks,
                prompt_estimate: estimate_prompt_tokens(&request.messages),
                text: String::new(),
                deltas: 0,
                finish: None,
                usage: None,
                model,
                timeout: self.config.timeout,
                done: false,
            };
            let stream: TokenStream = Box::pin(futures_util::stream::unfold(state, next_event));
            Ok(stream)
        })
    }
}

/// Where a remote stream is: what has arrived so far.
struct StreamState<S> {
    chunks: S,
    prompt_estimate: u32,
    text: String,
    /// Content deltas seen: most services send one per token, a fair estimate when the
    /// service reports no usage.
    deltas: u32,
    finish: Option<WireFinishReason>,
    usage: Option<Usage>,
    model: String,
    timeout: Duration,
    done: bool,
}

type StreamItem = Result<GenerateEvent, InferenceError>;

async fn next_event<S>(mut state: StreamState<S>) -> Option<(StreamItem, StreamState<S>)>
where
    S: Stream<Item = Result<CreateChatCompletionStreamResponse, OpenAIError>> + Unpin,
{
    if state.done {
        return None;
    }
    loop {
        match state.chunks.next().await {
            Some(Ok(chunk)) => {
                if let Some(usage) = &chunk.usage {
                    state.usage = Some(usage_from_wire(usage));
                }
                if !chunk.model.is_empty() {
                    state.model = chunk.model.clone();
                }
                let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
                    continue;
                };
                if choice.finish_reason.is_some() {
                    state.finish = choice.finish_reason;
                }
                match choice.delta.content {
                    Some(content) if !content.is_empty() => {
                        state.deltas = state.deltas.saturating_add(1);
                        state.text.push_str(&content);
                        return Some((Ok(GenerateEvent::Token(content)), state));
                    }
                    _ => continue,
                }
            }
            Some(Err(error)) => {
                state.done = true;
                return Some((Err(map_error(error, state.timeout)), state));
            }
            None => {
                state.done = true;
                let Some(finish) = state.finish else {
                    let error = InferenceError::Remote {
                        status: None,
                        message: "the stream ended before the remote said why generation finished"
                            .into(),
                        retryable: true,
                    };
                    return Some((Err(error), state));
                };
                let usage = state.usage.unwrap_or_else(|| {
                    tracing::warn!(
                        "the remote stream reported no token usage; counts are estimated"
                    );
                    Usage {
                        prompt_tokens: state.prompt_estimate,
                        completion_tokens: state.deltas,
                    }
                });
                let generation = Generation {
                    text: std::mem::take(&mut state.text),
                    finish_reason: finish_from_wire(Some(finish)),
                    usage,
                    model: state.model.clone(),
                };
                return Some((Ok(GenerateEvent::Done(generation)), state));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            retry_after_max: Duration::from_secs(2),
        }
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_and_caps() {
        let p = policy();
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff(1, 0.5), Duration::from_millis(150));
        // 400 ms capped at 300.
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(300));
        assert_eq!(p.backoff(40, 0.0), Duration::from_millis(150));
    }

    #[test]
    fn delay_honours_retry_after_up_to_the_cap_and_the_retry_count() {
        let p = policy();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(1)), 0.0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(3)), 0.0), None);
        assert_eq!(p.delay(2, None, 1.0), Some(Duration::from_millis(300)));
        assert_eq!(p.delay(3, None, 0.0), None);
    }

    #[test]
    fn retry_after_seconds_fractions_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 0.25 ", now),
            Some(Duration::from_millis(250))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_worth_retrying() {
        assert!(is_retryable_status(429));
        assert!(is_retryable_status(500));
        assert!(is_retryable_status(503));
        assert!(!is_retryable_status(400));
        assert!(!is_retryable_status(401));
        assert!(!is_retryable_status(404));
    }

    #[test]
    fn token_estimates_round_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        let messages = [ChatMessage::user("abcdefgh"), ChatMessage::system("")];
        assert_eq!(estimate_prompt_tokens(&messages), 2 + 4 + 4);
    }

    #[test]
    fn e5_models_get_their_prefixes() {
        let texts = vec!["你好".to_string()];
        assert_eq!(
            embedding_input("multilingual-e5-small", EmbedKind::Query, texts.clone()),
            vec!["query: 你好"]
        );
        assert_eq!(
            embedding_input("text-embedding-3-small", EmbedKind::Query, texts.clone()),
            texts
        );
    }

    #[test]
    fn snippets_cut_on_characters() {
        let long = "字".repeat(300);
        let cut = snippet(&long);
        assert_eq!(cut.chars().count(), 201);
        assert!(cut.ends_with('…'));
        assert_eq!(snippet(" short "), "short");
    }

    #[test]
    fn the_key_never_prints() {
        let config = RemoteConfig {
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: Some(SecretString::from("sk-very-secret")),
            chat_model: "m".into(),
            embedding_model: "e".into(),
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        };
        let text = format!("{config:?}");
        assert!(!text.contains("sk-very-secret"), "{text}");
        assert!(text.contains("***"));
    }
}
