//! Puts back on the queue every job that should be on it and may not be: a message lost
//! between the database write and the queue push, a queue restarted empty, a worker
//! killed mid-job (its lease runs out). Messages are only hints, so a duplicate is harmless.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wxpilot_core::jobs::store;

use crate::runtime::Runtime;

/// Sweeps until `shutdown`.
pub async fn run(runtime: Runtime, shutdown: CancellationToken) {
    let jobs = &runtime.settings().jobs;
    let every = Duration::from_millis(jobs.sweep_interval_ms.max(50));
    let redispatch = Duration::from_secs(jobs.redispatch_after_secs);
    let mut last_vacuum = std::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if last_vacuum.elapsed() >= Duration::from_secs(60) {
            last_vacuum = std::time::Instant::now();
            if let Err(e) = runtime.queue().vacuum(&runtime.kinds()).await {
                tracing::warn!(error = %format!("{e:#}"), "queue vacuum failed");
            }
        }
        match sweep_once(&runtime, redispatch).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "sweeper re-dispatched jobs"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "sweep failed"),
        }
    }
}

/// One sweep; returns how many jobs were put back on the queue.
pub async fn sweep_once(runtime: &Runtime, redispatch: Duration) -> anyhow::Result<usize> {
    let kinds = runtime.kinds();
    let due = store::needing_dispatch(runtime.db(), redispatch, 500).await?;
    let mut count = 0;
    for (id, kind) in due {
        if !kinds.contains(&kind.as_str()) {
            continue;
        }
        runtime.queue().dispatch(&kind, &id, None).await?;
        store::mark_dispatched(runtime.db(), &id).await?;
        count += 1;
    }
    Ok(count)
}
