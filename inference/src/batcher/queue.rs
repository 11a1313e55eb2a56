//! The bounded request queue between callers and a batcher thread, and the admission
//! policy that decides how much of it joins the next batch. Pure logic and a mutex: no
//! model, no async runtime.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::BatcherMetrics;
use crate::types::InferenceError;

/// Limits of the dynamic batcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchingConfig {
    /// Token budget of one batch: tokens for embeddings (texts × longest where they run
    /// padded, on a GPU); prompt plus `max_tokens`
    /// of every running sequence for generation.
    pub max_batch_tokens: usize,
    /// Most texts in one embedding batch; most sequences decoding together.
    pub max_batch_size: usize,
    /// How long the first waiting request may wait for others to join its batch. The
    /// batchers only wait after a batch that had company: a lone caller is never delayed,
    /// while a wave of concurrent callers who resubmit at once is gathered into one batch
    /// instead of one straggler running first. 0 never waits.
    pub max_wait_ms: u64,
    /// Most waiting items (texts or generation requests); beyond it callers get
    /// [`InferenceError::Overloaded`].
    pub queue_capacity: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_batch_tokens: 16_384,
            max_batch_size: 32,
            max_wait_ms: 5,
            queue_capacity: 1024,
        }
    }
}

/// How the token cost of a batch adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchCost {
    /// Every row is padded to the longest: cost = rows × longest (embeddings on a GPU).
    Padded,
    /// Rows cost what they hold (generation: prompt + `max_tokens` each; embeddings on
    /// the CPU, where batches run packed).
    Sum,
}

/// How many queued items, front first, may join a batch that already holds `running`
/// items costing `running_tokens`. A lone item always fits in an empty batch, so an
/// oversized request cannot wait forever.
pub fn admissible(
    queued_costs: impl IntoIterator<Item = usize>,
    running: usize,
    running_tokens: usize,
    cost: BatchCost,
    config: &BatchingConfig,
) -> usize {
    let mut count = 0;
    let mut sum = running_tokens;
    let mut longest = 0;
    for item in queued_costs {
        if running + count >= config.max_batch_size.max(1) {
            break;
        }
        let total = match cost {
            BatchCost::Sum => sum + item,
            BatchCost::Padded => (running + count + 1) * longest.max(item),
        };
        if total > config.max_batch_tokens && running + count > 0 {
            break;
        }
        sum += item;
        longest = longest.max(item);
        count += 1;
    }
    count
}

struct Entry<T> {
    item: T,
    cost: usize,
    arrived: Instant,
}

struct State<T> {
    entries: VecDeque<Entry<T>>,
    closed: bool,
}

/// A bounded FIFO shared by async callers (who push) and one batcher thread (which takes).
pub struct RequestQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
    metrics: Option<BatcherMetrics>,
}

impl<T> RequestQueue<T> {
    /// An empty queue holding at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                entries: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            metrics: None,
        }
    }

    /// The same queue, publishing its length to `metrics` whenever it changes.
    pub fn observed_by(mut self, metrics: BatcherMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn publish_depth(&self, state: &State<T>) {
        if let Some(metrics) = &self.metrics {
            metrics.set_queue_depth(state.entries.len());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds all `items` (with their token costs) or none: `Overloaded` when they do not fit.
    pub fn push_all(&self, items: Vec<(T, usize)>) -> Result<(), InferenceError> {
        let mut state = self.lock();
        if state.closed {
            return Err(InferenceError::Internal("the batcher has stopped".into()));
        }
        if state.entries.len() + items.len() > self.capacity {
            return Err(InferenceError::Overloaded);
        }
        let now = Instant::now();
        state
            .entries
            .extend(items.into_iter().map(|(item, cost)| Entry {
                item,
                cost,
                arrived: now,
            }));
        self.publish_depth(&state);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the queue: pushes fail and a waiting batcher wakes up with nothing.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Takes what may join a running batch now, without waiting.
    pub fn take_now(
        &self,
        running: usize,
        running_tokens: usize,
        cost: BatchCost,
        config: &BatchingConfig,
    ) -> Vec<T> {
        let mut state = self.lock();
        let n = admissible(
            state.entries.iter().map(|e| e.cost),
            running,
            running_tokens,
            cost,
            config,
        );
        let taken = state.entries.drain(..n).map(|e| e.item).collect();
        self.publish_depth(&state);
        taken
    }

    /// Blocks until there is work, then lets the batch fill for up to `max_wait` (from
    /// this call, or from the first arrival when the queue was empty) or until it is full,
    /// and takes it. `None` once closed.
    pub fn take_batch(
        &self,
        cost: BatchCost,
        config: &BatchingConfig,
        max_wait: Duration,
    ) -> Option<Vec<T>> {
        let called = Instant::now();
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            let Some(oldest) = state.entries.front().map(|e| e.arrived) else {
                state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            let n = admissible(state.entries.iter().map(|e| e.cost), 0, 0, cost, config);
            let full = n < state.entries.len() || n >= config.max_batch_size;
            // Items that queued while the last batch ran have waited already; the window
            // for their company opens now.
            let waited = oldest.max(called).elapsed();
            if full || waited >= max_wait {
                let taken = state.entries.drain(..n).map(|e| e.item).collect();
                self.publish_depth(&state);
                return Some(taken);
            }
            let (next, _) = self
                .ready
                .wait_timeout(state, max_wait - waited)
                .unwrap_or_else(|p| p.into_inner());
            state = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_gauge_follows_pushes_and_takes() {
        let metrics = BatcherMetrics::new("m", "generate").unwrap();
        let queue = RequestQueue::new(8).observed_by(metrics.clone());
        queue.push_all(vec![(1, 1), (2, 1), (3, 1)]).unwrap();
        assert_eq!(metrics.queue_depth(), 3);
        let taken = queue.take_now(0, 0, BatchCost::Sum, &config(100, 2));
        assert_eq!(taken, vec![1, 2]);
        assert_eq!(metrics.queue_depth(), 1);
        let rest = queue
            .take_batch(BatchCost::Sum, &config(100, 8), Duration::ZERO)
            .unwrap();
        assert_eq!(rest, vec![3]);
        assert_eq!(metrics.queue_depth(), 0);
    }

    fn config(tokens: usize, size: usize) -> BatchingConfig {
        BatchingConfig {
            max_batch_tokens: tokens,
            max_batch_size: size,
            max_wait_ms: 0,
            queue_capacity: 4,
        }
    }

    #[test]
    fn admission_stops_at_the_batch_size() {
        assert_eq!(
            admissible([1, 1, 1, 1], 0, 0, BatchCost::Sum, &config(100, 3)),
            3
        );
        assert_eq!(
            admissible([1, 1, 1, 1], 2, 2, BatchCost::Sum, &config(100, 3)),
            1
        );
        assert_eq!(admissible([1], 3, 3, BatchCost::Sum, &config(100, 3)), 0);
    }

    #[test]
    fn admission_respects_the_token_budget() {
        assert_eq!(
            admissible([40, 40, 40], 0, 0, BatchCost::Sum, &config(100, 10)),
            2
        );
        assert_eq!(
            admissible([40, 40], 1, 70, BatchCost::Sum, &config(100, 10)),
            0
        );
    }

    #[test]
    fn padded_cost_counts_the_longest_row_for_every_row() {
        // 3 rows padded to 50 = 150 > 120, so only two fit.
        assert_eq!(
            admissible([10, 50, 10], 0, 0, BatchCost::Padded, &config(120, 10)),
            2
        );
        assert_eq!(
            admissible([10, 10, 10], 0, 0, BatchCost::Padded, &config(120, 10)),
            3
        );
    }

    #[test]
    fn a_lone_oversized_item_is_still_admitted() {
        assert_eq!(
            admissible([500, 1], 0, 0, BatchCost::Sum, &config(100, 10)),
            1
        );
    }

    #[test]
    fn full_queue_answers_overloaded_and_keeps_what_it_had() {
        let queue = RequestQueue::new(3);
        assert_eq!(queue.push_all(vec![(1, 1), (2, 1)]), Ok(()));
        assert_eq!(
            queue.push_all(vec![(3, 1), (4, 1)]),
            Err(InferenceError::Overloaded)
        );
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.push_all(vec![(3, 1)]), Ok(()));
        assert_eq!(
            queue.take_now(0, 0, BatchCost::Sum, &config(100, 2)),
            vec![1, 2]
        );
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn take_batch_waits_for_late_joiners_then_returns() {
        let queue = std::sync::Arc::new(RequestQueue::new(8));
        let cfg = config(100, 3);
        queue.push_all(vec![(1, 1)]).unwrap();
        let pusher = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                queue.push_all(vec![(2, 1), (3, 1)]).unwrap();
            })
        };
        // The batch fills to max_batch_size before the wait runs out.
        let wait = Duration::from_secs(5);
        let start = Instant::now();
        assert_eq!(
            queue.take_batch(BatchCost::Sum, &cfg, wait),
            Some(vec![1, 2, 3])
        );
        assert!(
            start.elapsed() < wait,
            "returned when full, not at the deadline"
        );
        pusher.join().unwrap();
    }

    #[test]
    fn take_batch_without_wait_takes_what_is_there() {
        let queue = RequestQueue::new(8);
        queue.push_all(vec![(1, 1)]).unwrap();
        let start = Instant::now();
        let batch = queue.take_batch(BatchCost::Sum, &config(100, 3), Duration::ZERO);
        assert_eq!(batch, Some(vec![1]));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn closed_queue_wakes_the_batcher_and_refuses_pushes() {
        let queue = std::sync::Arc::new(RequestQueue::<u32>::new(2));
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                queue.take_batch(BatchCost::Sum, &config(10, 2), Duration::from_secs(5))
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        queue.close();
        assert_eq!(waiter.join().unwrap(), None);
        assert!(matches!(
            queue.push_all(vec![(1, 1)]),
            Err(InferenceError::Internal(_))
        ));
    }
}
