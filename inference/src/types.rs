//! The backend interface and the values that cross it.

use std::future::Future;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

/// A boxed future, so that [`Backend`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Generated text as it is produced: zero or more tokens, then exactly one `Done`.
/// Dropping the stream cancels the request and frees its batch slot.
pub type TokenStream = Pin<Box<dyn Stream<Item = Result<GenerateEvent, InferenceError>> + Send>>;

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One turn of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Sampling and stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateParams {
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// 0 means greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: f32,
    /// Same seed, same prompt, same parameters: same text.
    pub seed: Option<u64>,
    /// Generation ends before any of these strings; they are not part of the text.
    pub stop: Vec<String>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.7,
            top_p: 0.9,
            seed: None,
            stop: Vec::new(),
        }
    }
}

/// A generation request. `model: None` means the backend's default model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub params: GenerateParams,
    #[serde(default)]
    pub model: Option<String>,
}

/// What an embedded text is used as. E5-family models prefix `query: ` or `passage: `;
/// others ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedKind {
    Query,
    #[default]
    Passage,
}

/// An embedding request. `model: None` means the backend's default embedding model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub texts: Vec<String>,
    #[serde(default)]
    pub kind: EmbedKind,
    #[serde(default)]
    pub model: Option<String>,
}

/// Tokens consumed, for the usage ledger and budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub fn total(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of sequence or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
}

/// One item of a [`TokenStream`].
#[derive(Debug, Clone, PartialEq)]
pub enum GenerateEvent {
    /// Newly decoded text (one or more tokens; never splits a UTF-8 character).
    Token(String),
    /// The whole result; the stream ends after it.
    Done(Generation),
}

/// Vectors in request order, L2-normalised where the model says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// `completion_tokens` is always 0.
    pub usage: Usage,
    pub model: String,
}

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Chat,
    Embedding,
}

/// A model a backend can serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub kind: ModelKind,
}

/// Why a request failed. Each variant maps to one HTTP status at the edge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferenceError {
    /// The batcher's queue is full: try later (429).
    #[error("the inference queue is full; try again shortly")]
    Overloaded,
    /// A model file is not there. `hint` names the command that fetches it (503).
    #[error("model not available: {what}; {hint}")]
    ModelMissing { what: String, hint: String },
    /// The request itself is wrong: empty input, unknown model, too long (400).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No answer in time (504).
    #[error("inference timed out after {0} ms")]
    Timeout(u64),
    /// A remote service refused or failed (502). `retryable` is true for 429, 5xx and
    /// transport errors.
    #[error("remote model service failed{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Remote {
        status: Option<u16>,
        message: String,
        retryable: bool,
    },
    /// The caller went away or the request was cancelled.
    #[error("request cancelled")]
    Cancelled,
    /// A bug or a broken model file (500).
    #[error("inference failed: {0}")]
    Internal(String),
}

impl InferenceError {
    /// A short machine-readable name for the variant, for metrics labels and error codes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Overloaded => "overloaded",
            Self::ModelMissing { .. } => "model_missing",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Timeout(_) => "timeout",
            Self::Remote { .. } => "remote",
            Self::Cancelled => "cancelled",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether another backend, or the same one later, might succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Overloaded | Self::Timeout(_) => true,
            Self::Remote { retryable, .. } => *retryable,
            Self::ModelMissing { .. }
            | Self::InvalidRequest(_)
            | Self::Cancelled
            | Self::Internal(_) => false,
        }
    }
}

/// Something that embeds and generates: local models, a remote service, or a router.
pub trait Backend: Send + Sync {
    /// A short name for logs and metrics (`local`, `remote`, `router`).
    fn name(&self) -> &str;

    /// The models this backend serves.
    fn models(&self) -> Vec<ModelInfo>;

    /// One vector per text, in order.
    fn embed(&self, request: EmbedRequest) -> BoxFuture<'_, Result<Embeddings, InferenceError>>;

    /// Start generating; tokens arrive on the stream as they are decoded.
    fn generate_stream(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<TokenStream, InferenceError>>;

    /// Generate to the end and return the whole text.
    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, InferenceError>> {
        Box::pin(async move {
            let mut stream = self.generate_stream(request).await?;
            while let Some(event) = stream.next().await {
                if let GenerateEvent::Done(generation) = event? {
                    return Ok(generation);
                }
            }
            Err(InferenceError::Internal(
                "the token stream ended without a result".into(),
            ))
        })
    }
}
