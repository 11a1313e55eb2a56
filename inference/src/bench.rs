//! `wxpilot bench inference`: what dynamic batching buys on this machine with the fetched
//! models. Embeddings: many concurrent callers through the batcher against the same
//! requests one at a time. Generation: concurrent requests decoding together against one
//! at a time, with time to first token. Peak resident memory of the process at the end.
//!
//! Both comparisons run in rounds, the mode that goes first alternating from round to
//! round, and add each mode's rounds up, so a shared machine that slows down or speeds up during
//! the run weighs on both modes alike; every round's own ratio is reported too, to show
//! how steady the figure is.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use crate::local::{BatchSize, LocalConfig, models_dir};
use crate::types::{
    Backend, ChatMessage, EmbedKind, EmbedRequest, GenerateEvent, GenerateParams, GenerateRequest,
    InferenceError,
};
use crate::{BatchingConfig, LocalBackend};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Where `scripts/fetch-models.sh` put the models.
    pub models_dir: PathBuf,
    /// Embedding requests (one sentence each) per mode, over all rounds.
    pub embed_requests: usize,
    /// Concurrent embedding callers in the batched mode.
    pub embed_callers: usize,
    /// Generation requests per mode and round (run all at once in the batched mode).
    pub generate_requests: usize,
    /// Tokens each generation produces.
    pub max_tokens: u32,
    /// Alternating rounds of the two modes.
    pub rounds: usize,
    pub batching: BatchingConfig,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            models_dir: models_dir(),
            embed_requests: 1024,
            embed_callers: 32,
            generate_requests: 8,
            max_tokens: 32,
            rounds: 3,
            batching: BatchingConfig::default(),
        }
    }
}

/// Embedding figures.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedFigures {
    /// Requests per mode, over all rounds.
    pub requests: usize,
    pub rounds: usize,
    pub callers: usize,
    pub sequential_per_s: f64,
    pub concurrent_per_s: f64,
    pub speedup: f64,
    /// Each round's own speedup.
    pub round_speedups: Vec<f64>,
    /// Mean texts per batch with the concurrent callers.
    pub mean_batch: f64,
    pub largest_batch: u64,
}

/// Generation figures.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateFigures {
    /// Requests per mode and round.
    pub requests: usize,
    pub rounds: usize,
    pub max_tokens: u32,
    pub sequential_tokens_per_s: f64,
    pub concurrent_tokens_per_s: f64,
    pub speedup: f64,
    /// Each round's own speedup.
    pub round_speedups: Vec<f64>,
    /// Mean time to first token, one request at a time.
    pub sequential_ttft_ms: f64,
    /// Mean time to first token with every request submitted at once.
    pub concurrent_ttft_ms: f64,
    /// Mean sequences per forward pass with every request at once.
    pub mean_batch: f64,
}

/// Everything `wxpilot bench inference` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub embedding_model: String,
    pub chat_model: String,
    pub embeddings: EmbedFigures,
    pub generation: GenerateFigures,
    /// Peak resident set size of this process (VmHWM), in MiB; 0 where unknown.
    pub peak_rss_mib: f64,
}

impl BenchReport {
    /// A few readable lines.
    pub fn to_text(&self) -> String {
        let e = &self.embeddings;
        let g = &self.generation;
        format!(
            "embeddings ({}): {} requests, one at a time {:.1}/s, {} callers {:.1}/s ({:.2}x, rounds {}; mean batch {:.1}, largest {})\n\
             generation ({}): {} rounds of {} requests x {} tokens, one at a time {:.1} tok/s, all at once {:.1} tok/s ({:.2}x, rounds {}; mean batch {:.1})\n\
             time to first token: {:.0} ms alone, {:.0} ms with {} at once\n\
             peak RSS: {:.0} MiB\n",
            self.embedding_model,
            e.requests,
            e.sequential_per_s,
            e.callers,
            e.concurrent_per_s,
            e.speedup,
            spread(&e.round_speedups),
            e.mean_batch,
            e.largest_batch,
            self.chat_model,
            g.rounds,
            g.requests,
            g.max_tokens,
            g.sequential_tokens_per_s,
            g.concurrent_tokens_per_s,
            g.speedup,
            spread(&g.round_speedups),
            g.mean_batch,
            g.sequential_ttft_ms,
            g.concurrent_ttft_ms,
            g.requests,
            self.peak_rss_mib,
        )
    }
}

/// Round ratios as `1.9x/2.1x/2.0x`.
fn spread(ratios: &[f64]) -> String {
    ratios
        .iter()
        .map(|r| format!("{r:.2}x"))
        .collect::<Vec<_>>()
        .join("/")
}

/// The short customer-service sentences every embedding and chat request is made of.
pub const SENTENCES: [&str; 8] = [
    "How do I reset my password?",
    "What are your opening hours on public holidays?",
    "The parcel arrived damaged and I would like a refund.",
    "Can I change the delivery address after ordering?",
    "Do you ship to Hong Kong and Macau?",
    "Which membership level gives free shipping?",
    "My coupon code does not work at checkout.",
    "Please recommend a gift for my mother under 200 yuan.",
];

/// Loads the default models from `options.models_dir` and measures.
pub async fn run(options: BenchOptions) -> Result<BenchReport, InferenceError> {
    let mut config = LocalConfig::default_models(&options.models_dir);
    config.batching = options.batching.clone();
    config.batching.queue_capacity = config
        .batching
        .queue_capacity
        .max(options.embed_requests)
        .max(options.generate_requests);
    let backend = LocalBackend::new(config)?;
    let models = backend.models();
    let name = |kind| {
        models
            .iter()
            .find(|m| m.kind == kind)
            .map(|m| m.id.clone())
            .unwrap_or_default()
    };
    let embeddings = bench_embeddings(&backend, &options).await?;
    let generation = bench_generation(&backend, &options).await?;
    Ok(BenchReport {
        embedding_model: name(crate::types::ModelKind::Embedding),
        chat_model: name(crate::types::ModelKind::Chat),
        embeddings,
        generation,
        peak_rss_mib: peak_rss_mib(),
    })
}

fn embed_request(i: usize) -> EmbedRequest {
    EmbedRequest {
        texts: vec![format!("{} (#{i})", SENTENCES[i % SENTENCES.len()])],
        kind: EmbedKind::Passage,
        model: None,
    }
}

async fn bench_embeddings(
    backend: &LocalBackend,
    options: &BenchOptions,
) -> Result<EmbedFigures, InferenceError> {
    let n = options.embed_requests.max(1);
    let rounds = options.rounds.clamp(1, n);
    let callers = options.embed_callers.max(1);
    // Warm up caches and allocator before timing anything.
    backend.embed(embed_request(0)).await?;
    let mut batches = PassCounts::default();
    let (mut sequential, mut concurrent) = (Duration::ZERO, Duration::ZERO);
    let mut round_speedups = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Requests `first..last` of the whole run, the same ones in both modes; the mode
        // that goes first alternates, so a machine that keeps speeding up or slowing down
        // favours neither.
        let (first, last) = (n * round / rounds, n * (round + 1) / rounds);
        let (alone, (together, passes)) = if round % 2 == 0 {
            let alone = embed_alone(backend, first, last).await?;
            (alone, embed_together(backend, first, last, callers).await?)
        } else {
            let together = embed_together(backend, first, last, callers).await?;
            (embed_alone(backend, first, last).await?, together)
        };
        batches.merge(passes);
        round_speedups.push(ratio(alone.as_secs_f64(), together.as_secs_f64()));
        sequential += alone;
        concurrent += together;
    }
    let sequential_per_s = per_second(n, sequential);
    let concurrent_per_s = per_second(n, concurrent);
    Ok(EmbedFigures {
        requests: n,
        rounds,
        callers,
        sequential_per_s,
        concurrent_per_s,
        speedup: ratio(concurrent_per_s, sequential_per_s),
        round_speedups,
        mean_batch: batches.mean(),
        largest_batch: backend
            .batch_sizes(None)
            .embedding
            .map_or(0, |sizes| sizes.largest),
    })
}

/// Requests `first..last`, one at a time.
async fn embed_alone(
    backend: &LocalBackend,
    first: usize,
    last: usize,
) -> Result<Duration, InferenceError> {
    let start = Instant::now();
    for i in first..last {
        backend.embed(embed_request(i)).await?;
    }
    Ok(start.elapsed())
}

/// Requests `first..last` from `callers` concurrent callers, with the batcher's passes.
async fn embed_together(
    backend: &LocalBackend,
    first: usize,
    last: usize,
    callers: usize,
) -> Result<(Duration, PassCounts), InferenceError> {
    let before = backend.batch_sizes(None).embedding;
    let start = Instant::now();
    let results = futures_util::future::join_all((0..callers).map(|c| async move {
        let mut i = first + c;
        while i < last {
            backend.embed(embed_request(i)).await?;
            i += callers;
        }
        Ok::<(), InferenceError>(())
    }))
    .await;
    let elapsed = start.elapsed();
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok((
        elapsed,
        PassCounts::between(before, backend.batch_sizes(None).embedding),
    ))
}

fn generate_request(i: usize, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage::user(SENTENCES[i % SENTENCES.len()])],
        params: GenerateParams {
            max_tokens,
            temperature: 0.0,
            ..GenerateParams::default()
        },
        model: None,
    }
}

/// Generates one request to the end: (completion tokens, time to first token).
async fn timed_generation(
    backend: &LocalBackend,
    request: GenerateRequest,
) -> Result<(u32, Duration), InferenceError> {
    let start = Instant::now();
    let mut stream = backend.generate_stream(request).await?;
    let mut first = None;
    while let Some(event) = stream.next().await {
        match event? {
            GenerateEvent::Token(_) => {
                first.get_or_insert_with(|| start.elapsed());
            }
            GenerateEvent::Done(g) => {
                return Ok((
                    g.usage.completion_tokens,
                    first.unwrap_or_else(|| start.elapsed()),
                ));
            }
        }
    }
    Err(InferenceError::Internal(
        "stream ended without a result".into(),
    ))
}

async fn bench_generation(
    backend: &LocalBackend,
    options: &BenchOptions,
) -> Result<GenerateFigures, InferenceError> {
    let n = options.generate_requests.max(1);
    let rounds = options.rounds.max(1);
    timed_generation(backend, generate_request(0, 4)).await?;
    let mut batches = PassCounts::default();
    let mut alone = ModeTotals::default();
    let mut together = ModeTotals::default();
    let mut round_speedups = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // The mode that goes first alternates, as for the embeddings.
        let (round_alone, (round_together, passes)) = if round % 2 == 0 {
            let alone = generate_alone(backend, n, options.max_tokens).await?;
            (
                alone,
                generate_together(backend, n, options.max_tokens).await?,
            )
        } else {
            let together = generate_together(backend, n, options.max_tokens).await?;
            (
                generate_alone(backend, n, options.max_tokens).await?,
                together,
            )
        };
        batches.merge(passes);
        round_speedups.push(ratio(
            round_together.tokens_per_s(),
            round_alone.tokens_per_s(),
        ));
        alone.merge(&round_alone);
        together.merge(&round_together);
    }
    Ok(GenerateFigures {
        requests: n,
        rounds,
        max_tokens: options.max_tokens,
        sequential_tokens_per_s: alone.tokens_per_s(),
        concurrent_tokens_per_s: together.tokens_per_s(),
        speedup: ratio(together.tokens_per_s(), alone.tokens_per_s()),
        round_speedups,
        sequential_ttft_ms: alone.mean_ttft_ms(),
        concurrent_ttft_ms: together.mean_ttft_ms(),
        mean_batch: batches.mean(),
    })
}

/// `n` requests one after the other.
async fn generate_alone(
    backend: &LocalBackend,
    n: usize,
    max_tokens: u32,
) -> Result<ModeTotals, InferenceError> {
    let start = Instant::now();
    let mut totals = ModeTotals::default();
    for i in 0..n {
        totals.add(timed_generation(backend, generate_request(i, max_tokens)).await?);
    }
    totals.elapsed = start.elapsed();
    Ok(totals)
}

/// `n` requests all at once, with the batcher's passes.
async fn generate_together(
    backend: &LocalBackend,
    n: usize,
    max_tokens: u32,
) -> Result<(ModeTotals, PassCounts), InferenceError> {
    let before = backend.batch_sizes(None).chat;
    let start = Instant::now();
    let results = futures_util::future::join_all(
        (0..n).map(|i| timed_generation(backend, generate_request(i, max_tokens))),
    )
    .await;
    let mut totals = ModeTotals {
        elapsed: start.elapsed(),
        ..ModeTotals::default()
    };
    let passes = PassCounts::between(before, backend.batch_sizes(None).chat);
    for result in results {
        totals.add(result?);
    }
    Ok((totals, passes))
}

/// Forward passes and rows of the batched rounds only.
#[derive(Debug, Default, Clone, Copy)]
struct PassCounts {
    steps: u64,
    rows: u64,
}

impl PassCounts {
    fn between(before: Option<BatchSize>, after: Option<BatchSize>) -> Self {
        match (before, after) {
            (Some(before), Some(after)) => Self {
                steps: after.steps.saturating_sub(before.steps),
                rows: after.rows.saturating_sub(before.rows),
            },
            _ => Self::default(),
        }
    }

    fn merge(&mut self, other: Self) {
        self.steps += other.steps;
        self.rows += other.rows;
    }

    fn mean(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.rows as f64 / self.steps as f64
        }
    }
}

/// What one mode produced: tokens, first-token times and wall time.
#[derive(Debug, Default, Clone, Copy)]
struct ModeTotals {
    requests: u32,
    tokens: u64,
    ttft: Duration,
    elapsed: Duration,
}

impl ModeTotals {
    fn add(&mut self, (tokens, first): (u32, Duration)) {
        self.requests += 1;
        self.tokens += u64::from(tokens);
        self.ttft += first;
    }

    fn merge(&mut self, other: &Self) {
        self.requests += other.requests;
        self.tokens += other.tokens;
        self.ttft += other.ttft;
        self.elapsed += other.elapsed;
    }

    fn tokens_per_s(&self) -> f64 {
        per_second(self.tokens as usize, self.elapsed)
    }

    fn mean_ttft_ms(&self) -> f64 {
        self.ttft.as_secs_f64() * 1000.0 / f64::from(self.requests.max(1))
    }
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// VmHWM from /proc/self/status, in MiB (0 where the file does not exist).
pub fn peak_rss_mib() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}
