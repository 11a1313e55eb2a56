//! Embeddings and text generation for wxpilot.
//!
//! Everything that needs a model goes through [`Backend`]: the local candle backend
//! (with dynamic batching), the OpenAI-compatible remote backend, and the router that
//! picks between them by policy all implement it, so callers never care which one
//! answers.

pub mod batcher;
pub mod bench;
pub mod local;
pub mod types;

pub mod config;
pub mod remote;
pub mod router;
pub mod server;
pub mod testing;
pub mod threads;

pub use config::{BackendsConfig, build_router};
pub use remote::{RemoteBackend, RemoteConfig, RetryPolicy};
pub use router::{RoutedBackend, Router, RoutingConfig, RoutingPolicy};
pub use server::metrics::{InferenceMetrics, MeteredBackend};
pub use server::{InferenceServer, ServerConfig};

pub use batcher::BatchingConfig;
pub use local::{ChatModelConfig, DeviceChoice, EmbeddingModelConfig, LocalBackend, LocalConfig};
pub use types::{
    Backend, BoxFuture, ChatMessage, EmbedKind, EmbedRequest, Embeddings, FinishReason,
    GenerateEvent, GenerateParams, GenerateRequest, Generation, InferenceError, ModelInfo,
    ModelKind, Role, TokenStream, Usage,
};
