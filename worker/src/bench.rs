//! `wxpilot bench jobs`: pushes N zero-sleep `ping` jobs through the real queue and K
//! worker runtimes, and reports throughput and enqueue→done latency percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wxpilot_core::Settings;
use wxpilot_core::service::{Actor, jobs, tenants};
use wxpilot_entity::{JobStatus, job};

use crate::{JobQueue, Runtime, handlers};

/// Concurrent producers in an unpaced run.
const PRODUCERS: usize = 8;

/// What to run.
#[derive(Debug, Clone)]
pub struct JobBench {
    /// Jobs to push.
    pub jobs: usize,
    /// Worker runtimes (each its own worker name, as separate processes would have).
    pub workers: usize,
    /// Jobs a worker runs at once.
    pub concurrency: usize,
    /// Enqueue at most this many jobs a second (light-load latency); `None`: as fast as possible.
    pub rate: Option<f64>,
}

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct JobBenchReport {
    /// `redis` or `sqlite`.
    pub queue: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Jobs pushed.
    pub jobs: usize,
    /// Worker runtimes.
    pub workers: usize,
    /// The enqueue rate asked for, jobs/s (absent: as fast as possible).
    pub rate: Option<f64>,
    /// Jobs per second, first enqueue to last completion.
    pub throughput_per_s: f64,
    /// Seconds spent enqueueing.
    pub enqueue_s: f64,
    /// Enqueue → done latency percentiles, milliseconds.
    pub latency_ms: Percentiles,
}

/// Latency percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs the benchmark on `settings`' database and queue.
pub async fn run_jobs(mut settings: Settings, bench: JobBench) -> anyhow::Result<JobBenchReport> {
    settings.jobs.tenant_max_running = bench.jobs as u64 + 1;
    settings.jobs.queue_prefix = format!("wxpbench-{}", wxpilot_core::ids::new_id().to_lowercase());
    let mut policy = handlers()
        .into_iter()
        .find(|h| h.kind() == "ping")
        .map(|h| h.default_policy())
        .context("ping kind missing")?;
    policy.concurrency = bench.concurrency.max(1);
    settings.jobs.kinds.insert("ping".into(), policy);
    let settings = Arc::new(settings);
    let db = wxpilot_core::db::connect(&settings.database_url(), &settings.database).await?;
    wxpilot_core::db::migrate(&db).await?;
    let queue = JobQueue::connect(&settings, &db).await?;
    let (tenant, _) = tenants::create(
        &db,
        "bench",
        Some(&format!(
            "bench-{}",
            wxpilot_core::ids::new_id().to_lowercase()
        )),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let actor = Actor::cli(&tenant.id);

    let services = crate::Services::without_models(&settings, Arc::new(settings.secret_box()?))?;
    let shutdown = CancellationToken::new();
    let mut consumers = Vec::new();
    let mut runtimes = Vec::new();
    for i in 0..bench.workers.max(1) {
        let runtime = Runtime::new(
            settings.clone(),
            db.clone(),
            queue.clone(),
            handlers(),
            format!("{}-bench{i}", crate::worker_name()),
            services.clone(),
        );
        consumers.push(tokio::spawn({
            let queue = queue.clone();
            let runtime = runtime.clone();
            let shutdown = shutdown.clone();
            async move { queue.consume(runtime, shutdown).await }
        }));
        runtimes.push(runtime);
    }
    // Let the consumers register before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let pace = bench
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    // Producers run concurrently, as API clients do; a paced run uses one to keep the rate.
    let producers = if pace.is_some() {
        1
    } else {
        PRODUCERS.min(bench.jobs.max(1))
    };
    // Jobs are created as the API creates them: through the group-committing intake.
    let intake = crate::JobIntake::spawn(db.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..producers {
        let (intake, queue, actor) = (intake.clone(), queue.clone(), actor.clone());
        let count = bench.jobs / producers + usize::from(p < bench.jobs % producers);
        tasks.spawn(async move {
            for n in 0..count {
                if let Some(pace) = pace {
                    tokio::time::sleep_until((started + pace.mul_f64(n as f64)).into()).await;
                }
                let (created, _) = intake
                    .create(
                        &actor,
                        jobs::NewJob {
                            kind: "ping".into(),
                            payload: json!({}),
                            max_attempts: 3,
                            idempotency_key: None,
                            traceparent: None,
                        },
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                queue.dispatch("ping", &created.id, None).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let enqueue_s = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = job::Entity::find()
            .filter(job::Column::TenantId.eq(&tenant.id))
            .filter(job::Column::Status.eq(JobStatus::Succeeded))
            .count(&db)
            .await?;
        if done as usize >= bench.jobs {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {} jobs finished in 10 minutes",
            bench.jobs
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    for c in consumers {
        let _ = c.await;
    }
    for r in &runtimes {
        r.drain(Duration::from_secs(5)).await;
    }

    let rows = job::Entity::find()
        .filter(job::Column::TenantId.eq(&tenant.id))
        .all(&db)
        .await?;
    let first = rows.iter().map(|j| j.created_at).min().context("no jobs")?;
    let last = rows
        .iter()
        .filter_map(|j| j.finished_at)
        .max()
        .context("no finished jobs")?;
    let mut latencies: Vec<f64> = rows
        .iter()
        .filter_map(|j| {
            j.finished_at
                .map(|f| (f - j.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let span = ((last - first).num_microseconds().unwrap_or(1) as f64 / 1e6).max(1e-6);
    Ok(JobBenchReport {
        queue: queue.backend_name().into(),
        database: if settings.uses_sqlite() {
            "sqlite".into()
        } else {
            "postgres".into()
        },
        jobs: bench.jobs,
        workers: bench.workers,
        rate: bench.rate,
        throughput_per_s: bench.jobs as f64 / span,
        enqueue_s,
        latency_ms: Percentiles {
            p50: quantile(&latencies, 0.5),
            p90: quantile(&latencies, 0.9),
            p99: quantile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or(0.0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 50.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&values, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.5), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
