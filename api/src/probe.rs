//! The worker process's own small HTTP side (`jobs.metrics_listen`): liveness, readiness
//! and the process's metrics, so Kubernetes can probe workers and Prometheus can scrape
//! their job, inference and WeChat instruments.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use sea_orm::DatabaseConnection;

/// Builds the probe server on `listener`; the caller runs it and stops it at shutdown.
pub fn worker_probe(listener: TcpListener, db: DatabaseConnection) -> std::io::Result<Server> {
    let db = web::Data::new(db);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(db.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(db: web::Data<DatabaseConnection>) -> HttpResponse {
    match db.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "worker not ready: database unreachable");
            HttpResponse::ServiceUnavailable().json(
                serde_json::json!({ "status": "unavailable", "detail": "database unreachable" }),
            )
        }
    }
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(wxpilot_worker::metrics::render_process_metrics())
}
