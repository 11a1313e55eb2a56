//! The embedding batcher: one thread owns the encoder and runs queued texts from any
//! number of requests as one batch (packed on the CPU, padded on a GPU).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{BatcherMetrics, BatcherStats, BatchingConfig, RequestQueue, fill_wait};
use crate::local::embed::{EmbeddingModel, EncodedText};
use crate::types::InferenceError;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, InferenceError>>;

/// Gathers the vectors of one request, whose texts may run in different batches.
struct Collector {
    state: Mutex<CollectorState>,
}

struct CollectorState {
    vectors: Vec<Option<Vec<f32>>>,
    left: usize,
    reply: Option<Reply>,
}

impl Collector {
    fn lock(&self) -> std::sync::MutexGuard<'_, CollectorState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_cancelled(&self) -> bool {
        self.lock().reply.as_ref().is_none_or(|r| r.is_closed())
    }

    fn fill(&self, index: usize, vector: Vec<f32>) {
        let mut state = self.lock();
        if let Some(slot) = state.vectors.get_mut(index) {
            *slot = Some(vector);
            state.left = state.left.saturating_sub(1);
        }
        if state.left == 0
            && let Some(reply) = state.reply.take()
        {
            let vectors = std::mem::take(&mut state.vectors)
                .into_iter()
                .flatten()
                .collect();
            // The caller may have gone meanwhile; nothing to do then.
            let _ = reply.send(Ok(vectors));
        }
    }

    fn fail(&self, error: InferenceError) {
        if let Some(reply) = self.lock().reply.take() {
            let _ = reply.send(Err(error));
        }
    }
}

struct EmbedJob {
    text: EncodedText,
    index: usize,
    collector: Arc<Collector>,
}

/// A running embedding batcher. Dropping it stops the thread after the current batch.
pub struct EmbedBatcher {
    model: Arc<EmbeddingModel>,
    queue: Arc<RequestQueue<EmbedJob>>,
    stats: Arc<BatcherStats>,
    thread: Option<JoinHandle<()>>,
}

impl EmbedBatcher {
    /// Starts the batcher thread for `model`, publishing to `metrics`.
    pub fn start(
        model: EmbeddingModel,
        config: BatchingConfig,
        metrics: BatcherMetrics,
    ) -> Result<Self, InferenceError> {
        let model = Arc::new(model);
        let queue = Arc::new(RequestQueue::new(config.queue_capacity).observed_by(metrics.clone()));
        let stats = Arc::new(BatcherStats::new(metrics));
        let thread = {
            let (model, queue, stats) = (model.clone(), queue.clone(), stats.clone());
            std::thread::Builder::new()
                .name("embed-batcher".into())
                .spawn(move || run(&model, &queue, &stats, &config))
                .map_err(|e| InferenceError::Internal(format!("starting the batcher: {e}")))?
        };
        Ok(Self {
            model,
            queue,
            stats,
            thread: Some(thread),
        })
    }

    /// The model this batcher runs (for tokenising on the caller's side).
    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    /// Counters of the batches run so far.
    pub fn stats(&self) -> &BatcherStats {
        &self.stats
    }

    /// Queues the texts and waits for their vectors, in order. `Overloaded` when the queue
    /// cannot take them all.
    pub async fn embed(&self, texts: Vec<EncodedText>) -> Result<Vec<Vec<f32>>, InferenceError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let collector = Arc::new(Collector {
            state: Mutex::new(CollectorState {
                vectors: vec![None; texts.len()],
                left: texts.len(),
                reply: Some(reply),
            }),
        });
        let jobs = texts
            .into_iter()
            .enumerate()
            .map(|(index, text)| {
                let cost = text.ids.len();
                let job = EmbedJob {
                    text,
                    index,
                    collector: collector.clone(),
                };
                (job, cost)
            })
            .collect();
        self.queue.push_all(jobs)?;
        answer
            .await
            .map_err(|_| InferenceError::Internal("the embedding batcher stopped".into()))?
    }
}

impl Drop for EmbedBatcher {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    model: &EmbeddingModel,
    queue: &RequestQueue<EmbedJob>,
    stats: &BatcherStats,
    config: &BatchingConfig,
) {
    let mut last_rows = 0;
    while let Some(batch) =
        queue.take_batch(model.batch_cost(), config, fill_wait(last_rows, config))
    {
        // Texts of callers who stopped waiting are not worth computing.
        let batch: Vec<EmbedJob> = batch
            .into_iter()
            .filter(|job| !job.collector.is_cancelled())
            .collect();
        if batch.is_empty() {
            continue;
        }
        stats.record(batch.len());
        last_rows = batch.len();
        let (texts, targets): (Vec<EncodedText>, Vec<(usize, Arc<Collector>)>) = batch
            .into_iter()
            .map(|job| (job.text, (job.index, job.collector)))
            .unzip();
        match model.embed_encoded(&texts) {
            Ok(vectors) => {
                for (vector, (index, collector)) in vectors.into_iter().zip(targets) {
                    collector.fill(index, vector);
                }
            }
            Err(error) => {
                for (_, collector) in targets {
                    collector.fail(error.clone());
                }
            }
        }
    }
}
