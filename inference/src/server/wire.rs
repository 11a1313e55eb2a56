//! OpenAI's request and response shapes, as the server reads and writes them, and their
//! conversion to and from the backend's types. Requests are read leniently (unknown fields
//! are ignored, as OpenAI does) but anything we cannot honour is refused with a reason.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::types::{
    ChatMessage, EmbedKind, EmbedRequest, Embeddings, FinishReason, GenerateParams,
    GenerateRequest, Generation, InferenceError, ModelInfo, Role, Usage,
};

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionBody {
    pub model: Option<String>,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<StopField>,
    pub n: Option<u32>,
}

/// `stream_options`.
#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

/// A chat message as clients send it.
#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<WireContent>,
}

/// Message content: a string, or an array of typed parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WireContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One content part; only `text` parts can be served.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

fn bad(message: impl Into<String>) -> InferenceError {
    InferenceError::InvalidRequest(message.into())
}

fn message_content(index: usize, content: Option<WireContent>) -> Result<String, InferenceError> {
    match content {
        None => Ok(String::new()),
        Some(WireContent::Text(text)) => Ok(text),
        Some(WireContent::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(piece)) => text.push_str(&piece),
                    (kind, _) => {
                        return Err(bad(format!(
                            "messages[{index}]: content parts of type {kind:?} are not supported; send text"
                        )));
                    }
                }
            }
            Ok(text)
        }
    }
}

fn message_role(index: usize, role: &str) -> Result<Role, InferenceError> {
    match role {
        // `developer` is OpenAI's newer name for system instructions.
        "system" | "developer" => Ok(Role::System),
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        other => Err(bad(format!(
            "messages[{index}]: role {other:?} is not supported (system, developer, user, assistant)"
        ))),
    }
}

impl ChatCompletionBody {
    /// Whether the answer is an event stream.
    pub fn streams(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a streamed answer ends with a usage chunk.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The backend request, or why there is none.
    pub fn into_request(self) -> Result<GenerateRequest, InferenceError> {
        if self.messages.is_empty() {
            return Err(bad("messages must not be empty"));
        }
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(bad(format!(
                "n = {n} is not supported; only one choice is generated"
            )));
        }
        let defaults = GenerateParams::default();
        let temperature = self.temperature.unwrap_or(defaults.temperature);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(bad("temperature must be between 0 and 2"));
        }
        let top_p = self.top_p.unwrap_or(defaults.top_p);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(bad("top_p must be in (0, 1]"));
        }
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(defaults.max_tokens);
        if max_tokens == 0 {
            return Err(bad("max_tokens must be at least 1"));
        }
        let stop = match self.stop {
            None => Vec::new(),
            Some(StopField::One(s)) => vec![s],
            Some(StopField::Many(list)) => list,
        };
        if stop.len() > 4 {
            return Err(bad("at most 4 stop sequences"));
        }
        let messages = self
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                Ok(ChatMessage {
                    role: message_role(i, &m.role)?,
                    content: message_content(i, m.content)?,
                })
            })
            .collect::<Result<Vec<_>, InferenceError>>()?;
        Ok(GenerateRequest {
            messages,
            params: GenerateParams {
                max_tokens,
                temperature,
                top_p,
                // Negative seeds are valid for OpenAI; keep their bits.
                seed: self.seed.map(|s| s as u64),
                stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            },
            model: self.model.filter(|m| !m.is_empty()),
        })
    }
}

/// `usage` in answers.
#[derive(Debug, Serialize)]
pub struct WireUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl From<Usage> for WireUsage {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total(),
        }
    }
}

fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// A whole chat completion.
pub fn completion_json(id: &str, created: u64, generation: &Generation) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": generation.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": generation.text},
            "finish_reason": finish_name(generation.finish_reason),
            "logprobs": null,
        }],
        "usage": WireUsage::from(generation.usage),
    })
}

/// One streamed chunk: a delta and, at the end, the finish reason.
pub fn chunk_json(
    id: &str,
    created: u64,
    model: &str,
    delta: serde_json::Value,
    finish: Option<FinishReason>,
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "delta": delta,
            "finish_reason": finish.map(finish_name),
            "logprobs": null,
        }],
    })
}

/// The usage chunk that ends a stream when `stream_options.include_usage` is set.
pub fn usage_chunk_json(id: &str, created: u64, model: &str, usage: Usage) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": WireUsage::from(usage),
    })
}

/// `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct EmbeddingBody {
    pub model: Option<String>,
    pub input: EmbeddingInputField,
    pub encoding_format: Option<String>,
    pub dimensions: Option<u32>,
}

/// `input`: one string or several (token arrays are refused: the client's tokenizer is not
/// the model's).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInputField {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<serde_json::Value>),
}

/// How vectors are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingFormat {
    /// JSON arrays of numbers.
    Float,
    /// Base64 of little-endian f32s (what the official Python client asks for by default).
    Base64,
}

impl EmbeddingBody {
    /// The backend request and the answer's encoding, or why there is none.
    pub fn into_request(self) -> Result<(EmbedRequest, EncodingFormat), InferenceError> {
        let format = match self.encoding_format.as_deref() {
            None | Some("float") => EncodingFormat::Float,
            Some("base64") => EncodingFormat::Base64,
            Some(other) => {
                return Err(bad(format!(
                    "encoding_format {other:?} is not supported (float, base64)"
                )));
            }
        };
        if self.dimensions.is_some() {
            return Err(bad(
                "dimensions is not supported: vectors have the model's size",
            ));
        }
        let texts = match self.input {
            EmbeddingInputField::One(text) => vec![text],
            EmbeddingInputField::Many(texts) => texts,
            EmbeddingInputField::Tokens(_) => {
                return Err(bad("input must be a string or an array of strings"));
            }
        };
        if texts.is_empty() {
            return Err(bad("input must not be empty"));
        }
        Ok((
            EmbedRequest {
                texts,
                kind: EmbedKind::Passage,
                model: self.model.filter(|m| !m.is_empty()),
            },
            format,
        ))
    }
}

/// Base64 of a vector's little-endian f32 bytes.
pub fn base64_vector(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The embeddings answer.
pub fn embeddings_json(embeddings: &Embeddings, format: EncodingFormat) -> serde_json::Value {
    let data: Vec<serde_json::Value> = embeddings
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match format {
                EncodingFormat::Float => serde_json::json!(vector),
                EncodingFormat::Base64 => serde_json::json!(base64_vector(vector)),
            };
            serde_json::json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    serde_json::json!({
        "object": "list",
        "data": data,
        "model": embeddings.model,
        "usage": {
            "prompt_tokens": embeddings.usage.prompt_tokens,
            "total_tokens": embeddings.usage.total(),
        },
    })
}

/// `GET /v1/models`.
pub fn models_json(models: &[ModelInfo]) -> serde_json::Value {
    let data: Vec<serde_json::Value> = models
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id,
                "object": "model",
                "created": 0,
                "owned_by": "wxpilot",
            })
        })
        .collect();
    serde_json::json!({"object": "list", "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(json: &str) -> Result<GenerateRequest, InferenceError> {
        serde_json::from_str::<ChatCompletionBody>(json)
            .map_err(|e| bad(e.to_string()))?
            .into_request()
    }

    #[test]
    fn chat_parameters_map_onto_the_backend_request() {
        let request = chat(
            r#"{"model":"m","messages":[{"role":"developer","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
                "max_tokens":5,"max_completion_tokens":7,"temperature":0,"top_p":0.5,"seed":-1,
                "stop":"END","user":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(request.model.as_deref(), Some("m"));
        assert_eq!(request.messages[0], ChatMessage::system("be brief"));
        assert_eq!(request.messages[1], ChatMessage::user("hi there"));
        assert_eq!(request.params.max_tokens, 7, "max_completion_tokens wins");
        assert_eq!(request.params.temperature, 0.0);
        assert_eq!(request.params.top_p, 0.5);
        assert_eq!(request.params.seed, Some(u64::MAX));
        assert_eq!(request.params.stop, vec!["END"]);
        let many =
            chat(r#"{"messages":[{"role":"user","content":"x"}],"stop":["a","b"]}"#).unwrap();
        assert_eq!(many.params.stop, vec!["a", "b"]);
        assert_eq!(many.params.max_tokens, GenerateParams::default().max_tokens);
    }

    #[test]
    fn unservable_chat_requests_say_why() {
        let cases = [
            (r#"{"messages":[]}"#, "empty"),
            (r#"{"messages":[{"role":"tool","content":"x"}]}"#, "role"),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "image_url",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#,
                "n = 2",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                "temperature",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "max_tokens",
            ),
        ];
        for (json, needle) in cases {
            let error = chat(json).unwrap_err().to_string();
            assert!(error.contains(needle), "{json}: {error}");
        }
    }

    #[test]
    fn embedding_inputs_and_formats() {
        let body: EmbeddingBody =
            serde_json::from_str(r#"{"model":"e","input":"one","encoding_format":"base64"}"#)
                .unwrap();
        let (request, format) = body.into_request().unwrap();
        assert_eq!(request.texts, vec!["one"]);
        assert_eq!(format, EncodingFormat::Base64);
        let body: EmbeddingBody = serde_json::from_str(r#"{"input":[[1,2,3]]}"#).unwrap();
        assert!(body.into_request().is_err());
        let body: EmbeddingBody = serde_json::from_str(r#"{"input":[]}"#).unwrap();
        assert!(body.into_request().is_err());
    }

    #[test]
    fn base64_vectors_are_little_endian_f32() {
        assert_eq!(base64_vector(&[1.0]), "AACAPw==");
    }
}
