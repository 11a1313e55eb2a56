//! Group commit for job creation. Concurrent requests that create jobs (API calls, the
//! WeChat callback's `reply` jobs) hand them to one task, which writes whatever piled up
//! while the previous transaction was committing as one transaction with one insert. At
//! light load a batch is one job and adds only a channel hop; under load the database
//! commits once per batch instead of once per job, the same way the worker's
//! [`committer`](crate::committer) batches claims and results.

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
use wxpilot_core::error::{ServiceError, ServiceResult};
use wxpilot_core::service::Actor;
use wxpilot_core::service::jobs::{self, BatchError, Job, NewJob};

/// Most jobs created in one transaction.
const MAX_BATCH: usize = 64;

type Request = (Actor, NewJob, oneshot::Sender<ServiceResult<(Job, bool)>>);

/// Creates job records, batching concurrent callers. Cheap to clone; the task ends when
/// the last handle goes.
#[derive(Clone)]
pub struct JobIntake {
    requests: mpsc::Sender<Request>,
}

impl JobIntake {
    /// Starts the intake task on the current Tokio runtime.
    pub fn spawn(db: DatabaseConnection) -> Self {
        let (requests, rx) = mpsc::channel(MAX_BATCH * 16);
        tokio::spawn(run(db, rx));
        Self { requests }
    }

    /// [`jobs::create`], committed together with other callers' jobs.
    pub async fn create(&self, actor: &Actor, input: NewJob) -> ServiceResult<(Job, bool)> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ServiceError::Internal(anyhow::anyhow!("the job intake stopped"));
        self.requests
            .send((actor.clone(), input, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(db: DatabaseConnection, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        crate::committer::take_waiting(&mut rx, &mut batch, MAX_BATCH);
        commit(&db, batch).await;
    }
}

/// One transaction for the batch; when the database refuses it before committing, each job
/// on its own, so one request cannot fail its neighbours. When the commit itself fails the
/// jobs may exist, so they are not created again: each caller gets the error and may repeat
/// its request (with its `Idempotency-Key`, safely).
async fn commit(db: &DatabaseConnection, batch: Vec<Request>) {
    let (inputs, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|(actor, input, reply)| ((actor, input), reply))
        .unzip();
    match jobs::create_many(db, &inputs).await {
        Ok(outcomes) if outcomes.len() == replies.len() => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(BatchError::Unconfirmed(e)) => {
            tracing::warn!(error = %e, size = replies.len(), "the job batch's commit failed; its outcome is unknown");
            for reply in replies {
                let _ = reply.send(Err(ServiceError::Internal(anyhow::anyhow!(
                    "the database did not confirm the job was recorded: {e}"
                ))));
            }
        }
        outcome => {
            if let Err(BatchError::Refused(e)) = outcome {
                tracing::debug!(error = %e, size = replies.len(), "batched job creation refused; one by one");
            }
            for ((actor, input), reply) in inputs.into_iter().zip(replies) {
                let _ = reply.send(jobs::create(db, &actor, input).await);
            }
        }
    }
}
