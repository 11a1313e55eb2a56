//! Embeddings from the fetched all-MiniLM-L6-v2 folder against the sentence-transformers
//! reference vectors, and batching that does not change them. Skipped (with a message)
//! when the models are not fetched and `WXPILOT_REQUIRE_MODELS` is unset.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod local_support;

use std::path::Path;

use local_support::{conformance_dir, fetched_models};
use serde::Deserialize;
use wxpilot_inference::local::embed::cosine;
use wxpilot_inference::local::{EmbedPrefix, EmbeddingModelConfig, default_embedding_dir};
use wxpilot_inference::{
    Backend, BatchingConfig, DeviceChoice, EmbedKind, EmbedRequest, LocalBackend, LocalConfig,
};

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    dim: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path = conformance_dir().join("embeddings/all-minilm-l6-v2-reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn backend(models: &Path, batching: BatchingConfig) -> LocalBackend {
    LocalBackend::new(LocalConfig {
        embedding_models: vec![EmbeddingModelConfig {
            id: "all-minilm-l6-v2".into(),
            dir: default_embedding_dir(models),
            prefix: EmbedPrefix::None,
        }],
        chat_model: None,
        batching,
        device: DeviceChoice::Cpu,
    })
    .unwrap()
}

async fn embed(backend: &LocalBackend, texts: &[&str]) -> Vec<Vec<f32>> {
    embed_owned(backend, texts.iter().map(|t| t.to_string()).collect()).await
}

async fn embed_owned(backend: &LocalBackend, texts: Vec<String>) -> Vec<Vec<f32>> {
    backend
        .embed(EmbedRequest {
            texts,
            kind: EmbedKind::Passage,
            model: None,
        })
        .await
        .unwrap()
        .vectors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_ids_and_vectors_match_sentence_transformers() {
    let Some(models) = fetched_models("token_ids_and_vectors_match_sentence_transformers") else {
        return;
    };
    let reference = reference();
    assert_eq!(reference.sentences.len(), 20);
    let backend = backend(&models, BatchingConfig::default());
    for (sentence, ids) in reference.sentences.iter().zip(&reference.token_ids) {
        let ours = backend
            .embedding_token_ids(None, EmbedKind::Passage, sentence)
            .unwrap();
        assert_eq!(&ours, ids, "token ids of {sentence:?}");
    }
    // All twenty in one request: they run as one batch.
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let response = backend
        .embed(EmbedRequest {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            kind: EmbedKind::Query,
            model: None,
        })
        .await
        .unwrap();
    assert_eq!(response.model, "all-minilm-l6-v2");
    let expected_tokens: usize = reference.token_ids.iter().map(Vec::len).sum();
    assert_eq!(response.usage.prompt_tokens as usize, expected_tokens);
    for ((sentence, ours), theirs) in reference
        .sentences
        .iter()
        .zip(&response.vectors)
        .zip(&reference.embeddings)
    {
        assert_eq!(ours.len(), reference.dim);
        let norm: f32 = ours.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
        let c = cosine(ours, theirs);
        assert!(c >= 0.999, "cosine {c} for {sentence:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_sentences_score_higher_than_unrelated_ones() {
    let Some(models) = fetched_models("similar_sentences_score_higher_than_unrelated_ones") else {
        return;
    };
    let backend = backend(&models, BatchingConfig::default());
    let v = embed(
        &backend,
        &[
            "How do I reset my password?",
            "I forgot my password and need to change it.",
            "The train to the airport leaves every ten minutes.",
            "Our new coffee shop opens on Monday.",
        ],
    )
    .await;
    let similar = cosine(&v[0], &v[1]);
    assert!(similar > cosine(&v[0], &v[2]) + 0.2, "{similar}");
    assert!(similar > cosine(&v[0], &v[3]) + 0.2, "{similar}");
    assert!(similar > cosine(&v[1], &v[2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_inputs_are_truncated_to_the_model_maximum() {
    let Some(models) = fetched_models("long_inputs_are_truncated_to_the_model_maximum") else {
        return;
    };
    let backend = backend(&models, BatchingConfig::default());
    let long = "word ".repeat(600);
    let ids = backend
        .embedding_token_ids(None, EmbedKind::Passage, &long)
        .unwrap();
    assert_eq!(ids.len(), reference().max_seq_length);
    assert_eq!(ids.last(), Some(&102), "[SEP] closes a truncated input");
    let longer = "word ".repeat(700);
    let v = embed(&backend, &[&long, &longer]).await;
    assert!(cosine(&v[0], &v[1]) > 0.99999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_vectors_equal_vectors_computed_alone() {
    let Some(models) = fetched_models("batched_vectors_equal_vectors_computed_alone") else {
        return;
    };
    let batching = BatchingConfig {
        max_batch_tokens: 100_000,
        max_batch_size: 64,
        max_wait_ms: 50,
        queue_capacity: 256,
    };
    let backend = backend(&models, batching);
    let long = "A much longer passage about shipping, returns and refunds. ".repeat(12);
    let texts = [
        "ok",
        long.as_str(),
        "How do I reset my password?",
        "运费怎么算？",
        "Refunds take five working days after we receive the parcel back.",
    ];
    let mut alone = Vec::new();
    for t in texts {
        alone.push(embed(&backend, &[t]).await.remove(0));
    }
    // Concurrent callers: the batcher joins them into one batch.
    let together = futures_util::future::join_all(
        texts
            .iter()
            .map(|t| embed_owned(&backend, vec![t.to_string()])),
    )
    .await;
    let one_request = embed(&backend, &texts).await;
    for i in 0..texts.len() {
        let c = cosine(&alone[i], &together[i][0]);
        assert!(c >= 0.9999, "concurrent {i}: {c}");
        let c = cosine(&alone[i], &one_request[i]);
        assert!(c >= 0.9999, "one request {i}: {c}");
    }
    let largest = backend.batch_sizes(None).embedding.unwrap().largest;
    assert!(
        largest >= texts.len() as u64,
        "texts never shared a batch: {largest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_cpu_a_batch_costs_its_real_tokens_not_its_padding() {
    let Some(models) = fetched_models("on_the_cpu_a_batch_costs_its_real_tokens_not_its_padding")
    else {
        return;
    };
    // One 62-token passage and four short questions: 62 + 4 × 9 tokens fit a budget of
    // 128, while padded to the longest they would cost 5 × 62 = 310.
    let batching = BatchingConfig {
        max_batch_tokens: 128,
        max_batch_size: 32,
        max_wait_ms: 0,
        queue_capacity: 64,
    };
    let backend = backend(&models, batching);
    let long = "Refunds take five working days after we receive the parcel. ".repeat(5);
    let mut texts = vec![long.as_str()];
    texts.extend(["Where is my parcel now?"; 4]);
    let lengths: Vec<usize> = texts
        .iter()
        .map(|t| {
            backend
                .embedding_token_ids(None, EmbedKind::Passage, t)
                .unwrap()
                .len()
        })
        .collect();
    let total: usize = lengths.iter().sum();
    assert!(
        total <= 128 && lengths[0] * texts.len() > 128,
        "{lengths:?}"
    );
    let vectors = embed(&backend, &texts).await;
    assert_eq!(vectors.len(), 5);
    let sizes = backend.batch_sizes(None).embedding.unwrap();
    assert_eq!(sizes.largest, 5, "all five texts ran as one packed batch");
    // The four equal questions got equal vectors next to the long passage.
    for v in &vectors[2..] {
        assert!(cosine(&vectors[1], v) > 0.99999);
    }
}
