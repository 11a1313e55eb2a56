//! Job workers. The queue ([`queue::JobQueue`]) carries job ids over apalis — Redis in
//! production, the embedded SQLite database otherwise — and the [`runtime::Runtime`] runs
//! each job under a lease, with retries, timeouts, cancellation and a per-tenant cap.
//! Job kinds live in `jobs/`, one file each.

pub mod bench;
mod committer;
pub mod deliveries;
pub mod inference;
mod intake;
pub mod jobs;
pub mod metrics;
pub mod queue;
pub mod runtime;
pub mod services;
pub mod sweeper;

pub use intake::JobIntake;
pub use queue::{JobMessage, JobQueue};
pub use runtime::{JobContext, JobError, JobHandler, JobOutput, Runtime};
pub use services::{Services, WechatGateway};

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use wxpilot_core::{SecretBox, Settings};

/// Every job kind this build knows.
pub fn handlers() -> Vec<Arc<dyn JobHandler>> {
    vec![
        Arc::new(jobs::ping::Ping),
        Arc::new(jobs::forecast::Forecast),
        Arc::new(jobs::generate::Generate),
        Arc::new(jobs::sync_metrics::SyncMetrics),
        Arc::new(jobs::recommend::Recommend),
        Arc::new(jobs::recommend::Segment),
        Arc::new(jobs::reply::Reply),
        Arc::new(jobs::publish::Publish),
        Arc::new(jobs::embed_knowledge::EmbedKnowledge),
    ]
}

/// A unique name for this worker process: host, pid and a random suffix, so that two
/// replicas never share one (orphan recovery relies on it).
pub fn worker_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let suffix: String = wxpilot_core::ids::new_id().chars().rev().take(6).collect();
    format!("{host}-{}-{}", std::process::id(), suffix.to_lowercase())
}

/// Runs the workers, the sweeper and the webhook sender until `shutdown` fires, then
/// stops taking jobs and lets running ones finish within the grace period. Job kinds get
/// the models and WeChat access `settings` describe.
pub async fn run(
    settings: Arc<Settings>,
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    queue: JobQueue,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let services = Services::from_settings(&settings, secrets).await?;
    run_with(settings, db, services, queue, shutdown).await
}

/// [`run`] with the services given (tests pass a scripted model and the simulator).
pub async fn run_with(
    settings: Arc<Settings>,
    db: DatabaseConnection,
    services: Services,
    queue: JobQueue,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let secrets = services.secrets.clone();
    let runtime = Runtime::new(
        settings.clone(),
        db.clone(),
        queue.clone(),
        handlers(),
        worker_name(),
        services,
    );
    tracing::info!(worker = %runtime.worker(), backend = queue.backend_name(), "job worker starting");
    let sweeper = tokio::spawn(sweeper::run(runtime.clone(), shutdown.clone()));
    let sender = tokio::spawn(deliveries::run(
        db.clone(),
        secrets,
        settings.jobs.webhooks.clone(),
        shutdown.clone(),
    ));
    let consumed = queue.consume(runtime.clone(), shutdown.clone()).await;
    runtime
        .drain(std::time::Duration::from_secs(
            settings.jobs.shutdown_grace_secs,
        ))
        .await;
    let _ = sweeper.await;
    let _ = sender.await;
    tracing::info!(worker = %runtime.worker(), "job worker stopped");
    consumed
}
