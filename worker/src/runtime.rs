//! Runs one job at a time per call: claim under a lease, keep the lease alive, run the
//! kind's handler with its timeout, and record the outcome. Cancellation, a lost lease and
//! shutdown all stop the handler by dropping its future.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rand::Rng;
use sea_orm::DatabaseConnection;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use wxpilot_core::Settings;
use wxpilot_core::jobs::KindPolicy;
use wxpilot_core::jobs::store::{self, AfterFailure, Claim, Lease, Success};

use crate::committer::{ClaimTerms, Committer};
use crate::queue::JobQueue;
use crate::services::Services;

/// How an attempt went wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network trouble, a busy upstream).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help (bad input, a refusal): the job goes dead at once.
    #[error("{0}")]
    Permanent(String),
}

/// What a successful attempt produced.
#[derive(Debug, Clone)]
pub struct JobOutput {
    /// Stored as the job's result.
    pub result: Value,
    /// Usage to record, as `(metric, quantity)`, e.g. `("llm.prompt_tokens", 812)`.
    pub usage: Vec<(String, i64)>,
}

impl JobOutput {
    /// A result with no usage beyond the job itself.
    pub fn new(result: Value) -> Self {
        Self {
            result,
            usage: Vec::new(),
        }
    }
}

/// One job kind.
pub trait JobHandler: Send + Sync + 'static {
    /// The kind's name, also its queue.
    fn kind(&self) -> &'static str;
    /// Attempts, timeout, concurrency and backoff unless configuration overrides them.
    fn default_policy(&self) -> KindPolicy;
    /// Whether the kind calls an LLM; such jobs are refused (402) once the tenant's monthly
    /// token budget is used up.
    fn uses_llm(&self) -> bool {
        false
    }
    /// Runs one attempt.
    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>>;
}

/// What a running attempt can see and do.
#[derive(Clone)]
pub struct JobContext {
    /// The job.
    pub job_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    db: DatabaseConnection,
    worker: Arc<str>,
    services: Services,
}

impl JobContext {
    /// Reports progress; visible on `GET /v1/jobs/{id}` and its event stream. Best effort.
    pub async fn progress(&self, percent: u8, message: &str) {
        if let Err(e) =
            store::progress(&self.db, &self.job_id, &self.worker, percent, message).await
        {
            tracing::warn!(job_id = %self.job_id, error = %e, "could not record progress");
        }
    }

    /// The database, for kinds that read or write their own tables.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Models, the WeChat API and the secret box.
    pub fn services(&self) -> &Services {
        &self.services
    }
}

struct Kind {
    handler: Arc<dyn JobHandler>,
    policy: KindPolicy,
    slots: Arc<Semaphore>,
}

struct Inner {
    settings: Arc<Settings>,
    db: DatabaseConnection,
    queue: JobQueue,
    kinds: HashMap<&'static str, Kind>,
    worker: Arc<str>,
    tracker: TaskTracker,
    hard_stop: CancellationToken,
    committer: Committer,
    services: Services,
}

/// The job runtime of one worker process. Cheap to clone.
#[derive(Clone)]
pub struct Runtime(Arc<Inner>);

impl Runtime {
    /// A runtime for `handlers`, with policies from configuration where given. Call it
    /// inside a Tokio runtime: it starts the task that commits claims and results.
    pub fn new(
        settings: Arc<Settings>,
        db: DatabaseConnection,
        queue: JobQueue,
        handlers: Vec<Arc<dyn JobHandler>>,
        worker: String,
        services: Services,
    ) -> Self {
        let kinds = handlers
            .into_iter()
            .map(|handler| {
                let policy = settings
                    .jobs
                    .kinds
                    .get(handler.kind())
                    .cloned()
                    .unwrap_or_else(|| handler.default_policy());
                let slots = Arc::new(Semaphore::new(policy.concurrency.max(1)));
                (
                    handler.kind(),
                    Kind {
                        handler,
                        policy,
                        slots,
                    },
                )
            })
            .collect();
        let worker: Arc<str> = worker.into();
        let committer = Committer::spawn(
            db.clone(),
            ClaimTerms {
                worker: worker.clone(),
                lease: lease_of(&settings),
                tenant_cap: settings.jobs.tenant_max_running,
            },
        );
        Self(Arc::new(Inner {
            settings,
            db,
            queue,
            kinds,
            worker,
            tracker: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
            committer,
            services,
        }))
    }

    /// This process's worker name.
    pub fn worker(&self) -> &str {
        &self.0.worker
    }

    /// The kinds this runtime runs.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.0.kinds.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    /// The policy in force for `kind`.
    pub fn policy(&self, kind: &str) -> Option<&KindPolicy> {
        self.0.kinds.get(kind).map(|k| &k.policy)
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.0.db
    }

    pub(crate) fn queue(&self) -> &JobQueue {
        &self.0.queue
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.0.settings
    }

    fn lease(&self) -> Duration {
        lease_of(&self.0.settings)
    }

    /// Handles one queue message: waits for a free slot of the kind, then runs the job in
    /// the background. Returning means the message may be acknowledged: from here on the
    /// job's record, not the message, carries it.
    pub async fn accept(&self, kind: &str, job_id: String) {
        let Some(entry) = self.0.kinds.get(kind) else {
            tracing::warn!(kind, job_id, "message for a kind this worker does not run");
            return;
        };
        let Ok(permit) = entry.slots.clone().acquire_owned().await else {
            return;
        };
        let runtime = self.clone();
        let kind = entry.handler.kind();
        self.0.tracker.spawn(async move {
            runtime.execute(kind, &job_id).await;
            drop(permit);
        });
    }

    /// Waits for running jobs to finish, up to `grace`; then stops the rest and hands them back.
    pub async fn drain(&self, grace: Duration) {
        self.0.tracker.close();
        if tokio::time::timeout(grace, self.0.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(worker = %self.0.worker, "grace period over: handing running jobs back");
            self.0.hard_stop.cancel();
            self.0.tracker.wait().await;
        }
    }

    async fn execute(&self, kind: &'static str, job_id: &str) {
        if let Err(e) = self.try_execute(kind, job_id).await {
            // The record is untouched or still leased: the sweeper brings it back.
            tracing::error!(job_id, kind, error = %format!("{e:#}"), "job execution failed");
        }
    }

    async fn try_execute(&self, kind: &'static str, job_id: &str) -> anyhow::Result<()> {
        let job = match self.0.committer.claim(job_id).await? {
            Claim::Claimed(job) => job,
            Claim::NotYet(at) => {
                let delay = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                return self.0.queue.dispatch(kind, job_id, Some(delay)).await;
            }
            Claim::TenantBusy => {
                let delay = Duration::from_millis(500 + rand::thread_rng().gen_range(0..500));
                return self.0.queue.dispatch(kind, job_id, Some(delay)).await;
            }
            Claim::Held | Claim::Gone => return Ok(()),
        };
        let attempt = u32::try_from(job.attempts).unwrap_or(u32::MAX);
        let trace_id = job
            .traceparent
            .as_deref()
            .and_then(wxpilot_core::service::jobs::trace_id)
            .unwrap_or("-")
            .to_owned();
        let span = tracing::info_span!("job", job_id, kind, attempt, tenant_id = %job.tenant_id, trace_id = %trace_id);
        self.run_claimed(kind, *job, attempt).instrument(span).await
    }

    async fn run_claimed(
        &self,
        kind: &'static str,
        job: wxpilot_entity::job::Model,
        attempt: u32,
    ) -> anyhow::Result<()> {
        let Some(entry) = self.0.kinds.get(kind) else {
            return Ok(());
        };
        tracing::info!("job started");
        let due = (chrono::Utc::now() - job.run_at).num_milliseconds();
        crate::metrics::observe_wait(kind, due as f64 / 1000.0);
        let started = std::time::Instant::now();
        let ctx = JobContext {
            job_id: job.id.clone(),
            tenant_id: job.tenant_id.clone(),
            attempt,
            db: self.0.db.clone(),
            worker: self.0.worker.clone(),
            services: self.0.services.clone(),
        };
        let cancel = CancellationToken::new();
        let lost = CancellationToken::new();
        let keeper = tokio::spawn(keep_lease(
            self.0.db.clone(),
            job.id.clone(),
            self.0.worker.clone(),
            self.lease(),
            cancel.clone(),
            lost.clone(),
        ));
        let run = tokio::time::timeout(
            entry.policy.timeout(),
            entry.handler.run(ctx, job.payload.clone()),
        );
        let outcome = tokio::select! {
            result = run => Ended::Finished(match result {
                Ok(result) => result,
                Err(_) => Err(JobError::Retryable(format!(
                    "timed out after {} s", entry.policy.timeout_secs
                ))),
            }),
            () = cancel.cancelled() => {
                store::cancelled(&self.0.db, &job.id, &self.0.worker).await?;
                tracing::info!("job cancelled");
                Ended::Recorded("cancelled")
            }
            () = lost.cancelled() => {
                tracing::warn!("lease lost; another worker has the job");
                Ended::Recorded("lost")
            }
            () = self.0.hard_stop.cancelled() => {
                store::release(&self.0.db, &job.id, &self.0.worker).await?;
                tracing::info!("job handed back at shutdown");
                Ended::Recorded("released")
            }
        };
        keeper.abort();
        let label = match outcome {
            Ended::Finished(Ok(output)) => {
                let success = Success {
                    id: job.id.clone(),
                    result: output.result,
                    usage: output.usage,
                };
                if self.0.committer.succeed(success).await? {
                    tracing::info!("job succeeded");
                    "succeeded"
                } else {
                    tracing::warn!("job finished after its lease was lost; result dropped");
                    "lost"
                }
            }
            Ended::Finished(Err(error)) => {
                let permanent = matches!(error, JobError::Permanent(_));
                let delay = entry
                    .policy
                    .retry_delay(attempt, rand::thread_rng().r#gen::<f64>());
                match store::fail(
                    &self.0.db,
                    &job.id,
                    &self.0.worker,
                    &error.to_string(),
                    permanent,
                    delay,
                )
                .await?
                {
                    AfterFailure::RetryAt(at) => {
                        tracing::info!(error = %error, retry_at = %at, "attempt failed; will retry");
                        self.0.queue.dispatch(kind, &job.id, Some(delay)).await?;
                        "failed"
                    }
                    AfterFailure::Dead => {
                        tracing::warn!(error = %error, "job dead");
                        "dead"
                    }
                    AfterFailure::NotHeld => {
                        tracing::warn!("attempt failed after its lease was lost");
                        "lost"
                    }
                }
            }
            Ended::Recorded(label) => label,
        };
        crate::metrics::observe_attempt(kind, label, started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// How an attempt ended: the handler returned, or something stopped it (the label says
/// what; the record is already written).
enum Ended {
    Finished(Result<JobOutput, JobError>),
    Recorded(&'static str),
}

fn lease_of(settings: &Settings) -> Duration {
    Duration::from_secs(settings.jobs.lease_secs.max(1))
}

async fn keep_lease(
    db: DatabaseConnection,
    job_id: String,
    worker: Arc<str>,
    lease: Duration,
    cancel: CancellationToken,
    lost: CancellationToken,
) {
    let every = (lease / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        match store::renew(&db, &job_id, &worker, lease).await {
            Ok(Lease::Held { cancel: true }) => cancel.cancel(),
            Ok(Lease::Held { cancel: false }) => {}
            Ok(Lease::Lost) => {
                lost.cancel();
                return;
            }
            Err(e) => tracing::warn!(job_id, error = %e, "could not renew the lease"),
        }
    }
}
