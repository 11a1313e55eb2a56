//! A scripted in-memory [`Backend`] for tests (of this crate and of the crates that use it):
//! it answers generation requests with the outputs it was given, in order, optionally after
//! a delay, and counts and records the calls. It needs no model files.
//!
//! Embeddings come from the script too when one was queued; otherwise they are a
//! deterministic bag-of-words hash of the text, so that texts sharing words get similar
//! vectors. That is a test fake, not a language model.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::types::{
    Backend, BoxFuture, EmbedRequest, Embeddings, FinishReason, GenerateEvent, GenerateRequest,
    Generation, InferenceError, ModelInfo, ModelKind, TokenStream, Usage,
};

/// The chat model name a [`ScriptedBackend`] reports unless told otherwise.
pub const SCRIPTED_CHAT_MODEL: &str = "scripted-chat";
/// The embedding model name a [`ScriptedBackend`] reports unless told otherwise.
pub const SCRIPTED_EMBEDDING_MODEL: &str = "scripted-embedding";

/// One scripted answer to a generation request.
#[derive(Debug, Clone)]
pub enum ScriptedReply {
    /// Generate this text (cut by `max_tokens` and stop strings as a model would be).
    Text(String),
    /// Fail with this error.
    Fail(InferenceError),
}

/// One scripted answer to an embedding request.
#[derive(Debug, Clone)]
pub enum ScriptedEmbedding {
    /// Return these vectors.
    Vectors(Vec<Vec<f32>>),
    /// Fail with this error.
    Fail(InferenceError),
}

/// A [`Backend`] that plays a script. Build it, queue replies, hand it out as
/// `Arc<dyn Backend>`, then look at the counters.
#[derive(Debug)]
pub struct ScriptedBackend {
    name: String,
    chat_model: String,
    embedding_model: String,
    dimensions: usize,
    delay: Option<Duration>,
    token_delay: Option<Duration>,
    replies: Mutex<VecDeque<ScriptedReply>>,
    embeddings: Mutex<VecDeque<ScriptedEmbedding>>,
    generate_calls: AtomicUsize,
    embed_calls: AtomicUsize,
    requests: Mutex<Vec<GenerateRequest>>,
}

impl ScriptedBackend {
    /// An empty script; `name` is what [`Backend::name`] answers (`local`, `remote`, …).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            chat_model: SCRIPTED_CHAT_MODEL.into(),
            embedding_model: SCRIPTED_EMBEDDING_MODEL.into(),
            dimensions: 16,
            delay: None,
            token_delay: None,
            replies: Mutex::new(VecDeque::new()),
            embeddings: Mutex::new(VecDeque::new()),
            generate_calls: AtomicUsize::new(0),
            embed_calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Names the models it reports and accepts.
    pub fn with_models(mut self, chat: impl Into<String>, embedding: impl Into<String>) -> Self {
        self.chat_model = chat.into();
        self.embedding_model = embedding.into();
        self
    }

    /// Waits this long before every answer (before the first token of a stream).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Waits this long between streamed tokens.
    pub fn with_token_delay(mut self, delay: Duration) -> Self {
        self.token_delay = Some(delay);
        self
    }

    /// Length of the hashed fallback embeddings (16 unless set).
    pub fn with_dimensions(mut self, dimensions: usize) -> Self {
        self.dimensions = dimensions.max(1);
        self
    }

    /// Queues a text answer.
    pub fn reply(self, text: impl Into<String>) -> Self {
        self.push(ScriptedReply::Text(text.into()));
        self
    }

    /// Queues a failure.
    pub fn fail(self, error: InferenceError) -> Self {
        self.push(ScriptedReply::Fail(error));
        self
    }

    /// Queues an answer after construction (the backend may already be shared).
    pub fn push(&self, reply: ScriptedReply) {
        lock(&self.replies).push_back(reply);
    }

    /// Queues an embedding answer.
    pub fn push_embedding(&self, answer: ScriptedEmbedding) {
        lock(&self.embeddings).push_back(answer);
    }

    /// Generation calls so far (streamed or not), including failed ones.
    pub fn generate_calls(&self) -> usize {
        self.generate_calls.load(Ordering::SeqCst)
    }

    /// Embedding calls so far, including failed ones.
    pub fn embed_calls(&self) -> usize {
        self.embed_calls.load(Ordering::SeqCst)
    }

    /// All calls so far.
    pub fn calls(&self) -> usize {
        self.generate_calls() + self.embed_calls()
    }

    /// The generation requests received, in order.
    pub fn requests(&self) -> Vec<GenerateRequest> {
        lock(&self.requests).clone()
    }

    /// Replies still queued.
    pub fn remaining(&self) -> usize {
        lock(&self.replies).len()
    }

    fn check_model(&self, requested: Option<&str>, served: &str) -> Result<(), InferenceError> {
        match requested {
            Some(model) if model != served => Err(InferenceError::InvalidRequest(format!(
                "unknown model {model:?}; this backend serves {served:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// Counts the call and takes the next scripted text, or the scripted error.
    async fn next_text(&self, request: &GenerateRequest) -> Result<String, InferenceError> {
        self.generate_calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.requests).push(request.clone());
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        self.check_model(request.model.as_deref(), &self.chat_model)?;
        if request.messages.is_empty() {
            return Err(InferenceError::InvalidRequest("no messages".into()));
        }
        match lock(&self.replies).pop_front() {
            Some(ScriptedReply::Text(text)) => Ok(text),
            Some(ScriptedReply::Fail(error)) => Err(error),
            None => Err(InferenceError::Internal(format!(
                "scripted backend {:?} has no reply left",
                self.name
            ))),
        }
    }
}

/// Locks a mutex even if a panicking test poisoned it: the data is still usable here.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Splits text into "tokens": each word with the whitespace before it, so that the pieces
/// concatenate back to the text exactly.
pub fn scripted_tokens(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        let space = c.is_whitespace();
        if space && in_word {
            tokens.push(std::mem::take(&mut current));
        }
        in_word = !space;
        current.push(c);
    }
    match tokens.last_mut() {
        // Trailing whitespace belongs to the last word rather than being a token of its own.
        Some(last) if !in_word => last.push_str(&current),
        _ if !current.is_empty() => tokens.push(current),
        _ => {}
    }
    tokens
}

/// What a model would emit for `text` under `max_tokens` and stop strings: the tokens, and
/// why it ended.
fn scripted_generation(
    text: &str,
    max_tokens: u32,
    stop: &[String],
) -> (Vec<String>, FinishReason) {
    let cut = stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .map_or(text, |at| &text[..at]);
    let mut tokens = scripted_tokens(cut);
    let limit = usize::try_from(max_tokens).unwrap_or(usize::MAX);
    if tokens.len() > limit {
        tokens.truncate(limit);
        return (tokens, FinishReason::Length);
    }
    (tokens, FinishReason::Stop)
}

/// Prompt tokens as the scripted backend counts them: words in all messages.
fn prompt_tokens(request: &GenerateRequest) -> u32 {
    let words: usize = request
        .messages
        .iter()
        .map(|m| m.content.split_whitespace().count())
        .sum();
    u32::try_from(words).unwrap_or(u32::MAX)
}

/// A deterministic unit vector from the words of `text` (FNV-1a hashes into buckets).
pub fn hashed_embedding(text: &str, dimensions: usize) -> Vec<f32> {
    let dimensions = dimensions.max(1);
    let mut vector = vec![0f32; dimensions];
    for word in text.split_whitespace() {
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let bucket = usize::try_from(hash % dimensions as u64).unwrap_or(0);
        vector[bucket] += if hash & (1 << 63) == 0 { 1.0 } else { -1.0 };
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    } else {
        vector[0] = 1.0;
    }
    vector
}

impl Backend for ScriptedBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> Vec<ModelInfo> {
        // Embedding first, as the local backend lists them, so that code picking "the chat
        // model" has to look at the kind.
        vec![
            ModelInfo {
                id: self.embedding_model.clone(),
                kind: ModelKind::Embedding,
            },
            ModelInfo {
                id: self.chat_model.clone(),
                kind: ModelKind::Chat,
            },
        ]
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'_, Result<Embeddings, InferenceError>> {
        Box::pin(async move {
            self.embed_calls.fetch_add(1, Ordering::SeqCst);
            if let Some(delay) = self.delay {
                tokio::time::sleep(delay).await;
            }
            self.check_model(request.model.as_deref(), &self.embedding_model)?;
            if request.texts.is_empty() {
                return Err(InferenceError::InvalidRequest("no texts to embed".into()));
            }
            let vectors = match lock(&self.embeddings).pop_front() {
                Some(ScriptedEmbedding::Vectors(vectors)) => vectors,
                Some(ScriptedEmbedding::Fail(error)) => return Err(error),
                None => request
                    .texts
                    .iter()
                    .map(|t| hashed_embedding(t, self.dimensions))
                    .collect(),
            };
            let words: usize = request
                .texts
                .iter()
                .map(|t| t.split_whitespace().count())
                .sum();
            Ok(Embeddings {
                vectors,
                usage: Usage {
                    prompt_tokens: u32::try_from(words).unwrap_or(u32::MAX),
                    completion_tokens: 0,
                },
                model: self.embedding_model.clone(),
            })
        })
    }

    fn generate_stream(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<TokenStream, InferenceError>> {
        Box::pin(async move {
            let text = self.next_text(&request).await?;
            let (tokens, finish_reason) =
                scripted_generation(&text, request.params.max_tokens, &request.params.stop);
            let generation = Generation {
                text: tokens.concat(),
                finish_reason,
                usage: Usage {
                    prompt_tokens: prompt_tokens(&request),
                    completion_tokens: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
                },
                model: self.chat_model.clone(),
            };
            let token_delay = self.token_delay;
            let events = tokens
                .into_iter()
                .map(GenerateEvent::Token)
                .chain(std::iter::once(GenerateEvent::Done(generation)));
            let stream = futures_util::stream::unfold(events, move |mut events| async move {
                let event = events.next()?;
                if let (Some(delay), GenerateEvent::Token(_)) = (token_delay, &event) {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok(event), events))
            });
            let stream: TokenStream = Box::pin(stream);
            Ok(stream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ChatMessage, GenerateParams};

    fn request(max_tokens: u32, stop: &[&str]) -> GenerateRequest {
        GenerateRequest {
            messages: vec![ChatMessage::user("say something nice")],
            params: GenerateParams {
                max_tokens,
                stop: stop.iter().map(|s| s.to_string()).collect(),
                ..GenerateParams::default()
            },
            model: None,
        }
    }

    #[test]
    fn tokens_concatenate_back_to_the_text() {
        let text = "  Hello,  wide\nworld ";
        let tokens = scripted_tokens(text);
        assert_eq!(tokens, vec!["  Hello,", "  wide", "\nworld "]);
        assert_eq!(tokens.concat(), text);
        assert!(scripted_tokens("").is_empty());
    }

    #[tokio::test]
    async fn replies_come_in_order_then_run_out() {
        let backend = ScriptedBackend::new("local")
            .reply("one two three")
            .fail(InferenceError::Overloaded)
            .reply("four");
        let first = backend.generate(request(2, &[])).await.unwrap();
        assert_eq!(first.text, "one two");
        assert_eq!(first.finish_reason, FinishReason::Length);
        assert_eq!(
            first.usage,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 2
            }
        );
        assert_eq!(
            backend.generate(request(8, &[])).await,
            Err(InferenceError::Overloaded)
        );
        let third = backend.generate(request(8, &["ur"])).await.unwrap();
        assert_eq!(third.text, "fo");
        assert_eq!(third.finish_reason, FinishReason::Stop);
        assert!(matches!(
            backend.generate(request(8, &[])).await,
            Err(InferenceError::Internal(_))
        ));
        assert_eq!(backend.generate_calls(), 4);
        assert_eq!(backend.requests().len(), 4);
    }

    #[tokio::test]
    async fn unknown_models_are_refused() {
        let backend = ScriptedBackend::new("local").reply("x");
        let mut req = request(8, &[]);
        req.model = Some("gpt-9".into());
        assert!(matches!(
            backend.generate(req).await,
            Err(InferenceError::InvalidRequest(_))
        ));
    }

    #[tokio::test]
    async fn hashed_embeddings_are_unit_length_and_word_sensitive() {
        let backend = ScriptedBackend::new("local").with_dimensions(32);
        let out = backend
            .embed(EmbedRequest {
                texts: vec!["red apple".into(), "Red apple".into(), "blue sky".into()],
                kind: Default::default(),
                model: None,
            })
            .await
            .unwrap();
        assert_eq!(out.vectors.len(), 3);
        let norm: f32 = out.vectors[0].iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(out.vectors[0], out.vectors[1]);
        assert_ne!(out.vectors[0], out.vectors[2]);
        assert_eq!(out.usage.prompt_tokens, 6);
    }
}
