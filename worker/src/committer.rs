//! Group commit for the two writes every job makes on the hot path: its claim and its
//! success. Running jobs hand these to one task per worker, which writes whatever has
//! piled up while the previous transaction was committing as one transaction. At light
//! load a batch is a single write and adds no waiting; under load the database commits
//! once per batch instead of once per job (SQLite serialises writers, and a Postgres
//! commit waits for the disk), which is what bounds job throughput.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
use wxpilot_core::jobs::store::{self, Claim, Success};

/// Most writes in one transaction: keeps each commit short so no caller waits long.
const MAX_BATCH: usize = 64;

enum Op {
    Claim {
        id: String,
        reply: oneshot::Sender<anyhow::Result<Claim>>,
    },
    Succeed {
        success: Success,
        reply: oneshot::Sender<anyhow::Result<bool>>,
    },
}

/// What every claim of one worker shares.
#[derive(Clone)]
pub(crate) struct ClaimTerms {
    pub worker: Arc<str>,
    pub lease: Duration,
    pub tenant_cap: u64,
}

/// The handle running jobs use. Cheap to clone; the task ends when the last handle goes.
#[derive(Clone)]
pub(crate) struct Committer {
    ops: mpsc::Sender<Op>,
}

impl Committer {
    /// Starts the committing task on the current Tokio runtime.
    pub fn spawn(db: DatabaseConnection, terms: ClaimTerms) -> Self {
        let (ops, rx) = mpsc::channel(MAX_BATCH * 16);
        tokio::spawn(run(db, terms, rx));
        Self { ops }
    }

    /// [`store::claim`], batched with other jobs' writes.
    pub async fn claim(&self, id: &str) -> anyhow::Result<Claim> {
        let (reply, answer) = oneshot::channel();
        self.send(Op::Claim {
            id: id.to_owned(),
            reply,
        })
        .await?;
        answer.await.context("the committer stopped")?
    }

    /// [`store::succeed`], batched with other jobs' writes.
    pub async fn succeed(&self, success: Success) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.send(Op::Succeed { success, reply }).await?;
        answer.await.context("the committer stopped")?
    }

    async fn send(&self, op: Op) -> anyhow::Result<()> {
        self.ops
            .send(op)
            .await
            .map_err(|_| anyhow::anyhow!("the committer stopped"))
    }
}

async fn run(db: DatabaseConnection, terms: ClaimTerms, mut rx: mpsc::Receiver<Op>) {
    while let Some(first) = rx.recv().await {
        let mut ops = vec![first];
        take_waiting(&mut rx, &mut ops, MAX_BATCH);
        let mut claims = Vec::new();
        let mut successes = Vec::new();
        for op in ops {
            match op {
                Op::Claim { id, reply } => claims.push((id, reply)),
                Op::Succeed { success, reply } => successes.push((success, reply)),
            }
        }
        if !successes.is_empty() {
            commit_successes(&db, &terms.worker, successes).await;
        }
        if !claims.is_empty() {
            commit_claims(&db, &terms, claims).await;
        }
    }
}

/// Adds to `batch`, up to `max`, whatever is already waiting on `rx` (never waits): what
/// piled up while the previous batch was committing.
pub(crate) fn take_waiting<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

type Pending<I, T> = Vec<(I, oneshot::Sender<anyhow::Result<T>>)>;

async fn commit_claims(db: &DatabaseConnection, terms: &ClaimTerms, batch: Pending<String, Claim>) {
    let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
    let batched = store::claim_many(db, &ids, &terms.worker, terms.lease, terms.tenant_cap).await;
    settle(batch, batched, "claim", |id| async move {
        store::claim(db, &id, &terms.worker, terms.lease, terms.tenant_cap).await
    })
    .await;
}

async fn commit_successes(db: &DatabaseConnection, worker: &str, batch: Pending<Success, bool>) {
    let successes: Vec<Success> = batch.iter().map(|(s, _)| s.clone()).collect();
    let batched = store::succeed_many(db, worker, successes).await;
    settle(batch, batched, "finish", |success| async move {
        store::succeed(db, &success.id, worker, success.result, &success.usage).await
    })
    .await;
}

/// Answers each waiter from the batched transaction's results; when it failed, redoes each
/// write on its own, so one bad write cannot fail its neighbours.
async fn settle<I, T, F, Fut>(
    batch: Pending<I, T>,
    batched: anyhow::Result<Vec<T>>,
    what: &str,
    mut alone: F,
) where
    F: FnMut(I) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    match batched {
        Ok(results) if results.len() == batch.len() => {
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        outcome => {
            if let Err(e) = outcome {
                tracing::debug!(error = %format!("{e:#}"), size = batch.len(), "batched {what} failed; one by one");
            }
            for (item, reply) in batch {
                let _ = reply.send(alone(item).await);
            }
        }
    }
}
