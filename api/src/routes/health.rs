//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Health status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// Readiness: the database and the queue answer.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "A dependency is down", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<web::Json<Health>> {
    wxpilot_core::db::ping(&state.db)
        .await
        .map_err(|e| ApiError::Unavailable(format!("database: {e:#}")))?;
    if let Some(client) = &state.redis {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
    }
    Ok(web::Json(Health { status: "ok" }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut text = state.metrics.render().map_err(ApiError::Internal)?;
    // Instruments of the in-process worker, inference and WeChat client (`serve`).
    text.push_str(&wxpilot_worker::metrics::render_process_metrics());
    // Job gauges are read from the jobs table at scrape time, so they are right whichever
    // process runs the workers.
    match wxpilot_core::jobs::store::counts(&state.db).await {
        Ok(counts) => text.push_str(&render_job_gauges(&counts)),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "job gauges unavailable"),
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

fn render_job_gauges(counts: &wxpilot_core::jobs::store::JobCounts) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# HELP wxpilot_jobs Jobs by kind and state (queued, running, failed = waiting to retry, dead).\n# TYPE wxpilot_jobs gauge\n",
    );
    for (kind, status, n) in &counts.by_state {
        let _ = writeln!(
            out,
            "wxpilot_jobs{{kind=\"{kind}\",status=\"{}\"}} {n}",
            status.as_str()
        );
    }
    out.push_str("# HELP wxpilot_jobs_oldest_waiting_seconds Age of the oldest queued job by kind.\n# TYPE wxpilot_jobs_oldest_waiting_seconds gauge\n");
    for (kind, age) in &counts.oldest_waiting {
        let _ = writeln!(
            out,
            "wxpilot_jobs_oldest_waiting_seconds{{kind=\"{kind}\"}} {age}"
        );
    }
    out
}
