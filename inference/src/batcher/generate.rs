//! The generation batcher: continuous batching over one shared [`Transformer`].
//!
//! Every step runs one forward pass over all running sequences: newly admitted ones feed
//! their whole prompt, the others their last sampled token. Then each sequence samples,
//! streams its text, and leaves when it ends or its caller dropped the stream; waiting
//! requests join before the next step as the token budget and batch size allow.

use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use tokio::sync::mpsc::UnboundedSender;

use super::{BatchCost, BatcherMetrics, BatcherStats, BatchingConfig, RequestQueue, fill_wait};
use crate::local::candle_err;
use crate::local::chat::{ChatText, IncrementalDecoder, Scanned, StopScanner};
use crate::local::llm::{SequenceCache, SequenceChunk, Transformer};
use crate::types::{
    FinishReason, GenerateEvent, GenerateParams, Generation, InferenceError, Usage,
};

/// Where a job's events go; a closed channel means the caller has gone.
pub type EventSender = UnboundedSender<Result<GenerateEvent, InferenceError>>;

/// One generation request, tokenised.
pub struct GenerateJob {
    pub prompt: Vec<u32>,
    pub params: GenerateParams,
    pub seed: u64,
    pub events: EventSender,
}

/// A running generation batcher. Dropping it stops the thread after the current step.
pub struct GenerateBatcher {
    queue: Arc<RequestQueue<GenerateJob>>,
    stats: Arc<BatcherStats>,
    context_length: usize,
    thread: Option<JoinHandle<()>>,
}

impl GenerateBatcher {
    /// Starts the batcher thread, publishing to `metrics`.
    pub fn start(
        model: Arc<Transformer>,
        text: Arc<ChatText>,
        model_id: String,
        config: BatchingConfig,
        metrics: BatcherMetrics,
    ) -> Result<Self, InferenceError> {
        let queue = Arc::new(RequestQueue::new(config.queue_capacity).observed_by(metrics.clone()));
        let stats = Arc::new(BatcherStats::new(metrics));
        let context_length = model.shape().context_length;
        let thread = {
            let (queue, stats) = (queue.clone(), stats.clone());
            std::thread::Builder::new()
                .name("generate-batcher".into())
                .spawn(move || {
                    let worker = Worker {
                        model: &model,
                        text: &text,
                        model_id: &model_id,
                        config: &config,
                        stats: &stats,
                    };
                    worker.run(&queue);
                })
                .map_err(|e| InferenceError::Internal(format!("starting the batcher: {e}")))?
        };
        Ok(Self {
            queue,
            stats,
            context_length,
            thread: Some(thread),
        })
    }

    /// Counters of the steps run so far (rows = sequences in a step).
    pub fn stats(&self) -> &BatcherStats {
        &self.stats
    }

    /// The model's context window in tokens.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Queues a job; `Overloaded` when the queue is full.
    pub fn submit(&self, job: GenerateJob) -> Result<(), InferenceError> {
        let budget = job.prompt.len() + job.params.max_tokens as usize;
        let cost = budget.min(self.context_length);
        self.queue.push_all(vec![(job, cost)])
    }
}

impl Drop for GenerateBatcher {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sampler a request's parameters ask for.
pub fn sampler_for(params: &GenerateParams, seed: u64) -> LogitsProcessor {
    let sampling = if params.temperature <= 0.0 {
        Sampling::ArgMax
    } else if params.top_p <= 0.0 || params.top_p >= 1.0 {
        Sampling::All {
            temperature: f64::from(params.temperature),
        }
    } else {
        Sampling::TopP {
            p: f64::from(params.top_p),
            temperature: f64::from(params.temperature),
        }
    };
    LogitsProcessor::from_sampling(seed, sampling)
}

struct Sequence {
    job: GenerateJob,
    cost: usize,
    cache: SequenceCache,
    next_input: Vec<u32>,
    sampler: LogitsProcessor,
    decoder: IncrementalDecoder,
    scanner: StopScanner,
    generated: u32,
    text: String,
}

enum Step {
    Continue,
    Finished,
}

struct Worker<'a> {
    model: &'a Transformer,
    text: &'a ChatText,
    model_id: &'a str,
    config: &'a BatchingConfig,
    stats: &'a BatcherStats,
}

impl Worker<'_> {
    fn run(&self, queue: &RequestQueue<GenerateJob>) {
        let mut running: Vec<Sequence> = Vec::new();
        // Sequences in the last step: after a busy period, gather the next wave.
        let mut last_rows = 0;
        loop {
            let admitted = if running.is_empty() {
                let wait = fill_wait(last_rows, self.config);
                match queue.take_batch(BatchCost::Sum, self.config, wait) {
                    Some(jobs) => jobs,
                    None => break,
                }
            } else {
                let tokens = running.iter().map(|s| s.cost).sum();
                queue.take_now(running.len(), tokens, BatchCost::Sum, self.config)
            };
            running.extend(admitted.into_iter().map(|job| self.start(job)));
            // A dropped stream frees its slot before any more work is done for it.
            running.retain(|s| !s.job.events.is_closed());
            if running.is_empty() {
                continue;
            }
            self.stats.record(running.len());
            last_rows = running.len();
            let logits = {
                let mut chunks: Vec<SequenceChunk<'_>> = running
                    .iter_mut()
                    .map(|s| SequenceChunk {
                        cache: &mut s.cache,
                        tokens: &s.next_input,
                    })
                    .collect();
                self.model.forward(&mut chunks)
            };
            let logits = match logits {
                Ok(logits) => logits,
                Err(error) => {
                    for s in running.drain(..) {
                        let _ = s.job.events.send(Err(error.clone()));
                    }
                    continue;
                }
            };
            let mut index = 0;
            running.retain_mut(|s| {
                let row = logits.get(index).map_err(candle_err);
                index += 1;
                match row.and_then(|row| self.advance(s, &row)) {
                    Ok(Step::Continue) => true,
                    Ok(Step::Finished) => false,
                    Err(error) => {
                        let _ = s.job.events.send(Err(error));
                        false
                    }
                }
            });
        }
        for s in running {
            let _ = s
                .job
                .events
                .send(Err(InferenceError::Internal("the batcher stopped".into())));
        }
    }

    fn start(&self, job: GenerateJob) -> Sequence {
        let cost = (job.prompt.len() + job.params.max_tokens as usize)
            .min(self.model.shape().context_length);
        Sequence {
            sampler: sampler_for(&job.params, job.seed),
            scanner: StopScanner::new(&job.params.stop),
            next_input: job.prompt.clone(),
            cache: self.model.new_cache(),
            decoder: IncrementalDecoder::default(),
            generated: 0,
            text: String::new(),
            cost,
            job,
        }
    }

    /// Samples the next token of one sequence and streams what it adds.
    fn advance(&self, s: &mut Sequence, logits: &Tensor) -> Result<Step, InferenceError> {
        let token = s.sampler.sample(logits).map_err(candle_err)?;
        if self.text.stop_ids.contains(&token) {
            let tail = s.decoder.flush(self.text)?;
            self.finish_with(s, &tail, FinishReason::Stop);
            return Ok(Step::Finished);
        }
        s.generated += 1;
        let piece = s.decoder.push(self.text, token)?;
        match s.scanner.push(&piece) {
            Scanned::Stop(before) => {
                self.emit(s, before);
                self.done(s, FinishReason::Stop);
                return Ok(Step::Finished);
            }
            Scanned::Emit(text) => self.emit(s, text),
        }
        let context_full = s.cache.len() + 1 >= self.model.shape().context_length;
        if s.generated >= s.job.params.max_tokens || context_full {
            let tail = s.decoder.flush(self.text)?;
            self.finish_with(s, &tail, FinishReason::Length);
            return Ok(Step::Finished);
        }
        s.next_input = vec![token];
        Ok(Step::Continue)
    }

    /// Runs the last text through the stop scanner, then ends the stream.
    fn finish_with(&self, s: &mut Sequence, tail: &str, reason: FinishReason) {
        match s.scanner.push(tail) {
            Scanned::Stop(before) => {
                self.emit(s, before);
                self.done(s, FinishReason::Stop);
            }
            Scanned::Emit(text) => {
                self.emit(s, text);
                let rest = s.scanner.finish();
                self.emit(s, rest);
                self.done(s, reason);
            }
        }
    }

    fn emit(&self, s: &mut Sequence, text: String) {
        if text.is_empty() {
            return;
        }
        s.text.push_str(&text);
        let _ = s.job.events.send(Ok(GenerateEvent::Token(text)));
    }

    fn done(&self, s: &mut Sequence, finish_reason: FinishReason) {
        let generation = Generation {
            text: std::mem::take(&mut s.text),
            finish_reason,
            usage: Usage {
                prompt_tokens: u32::try_from(s.job.prompt.len()).unwrap_or(u32::MAX),
                completion_tokens: s.generated,
            },
            model: self.model_id.to_owned(),
        };
        let _ = s.job.events.send(Ok(GenerateEvent::Done(generation)));
    }
}
