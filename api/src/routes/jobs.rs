//! `/v1/jobs`: read, follow (Server-Sent Events), cancel and retry jobs; `POST /v1/jobs/ping`
//! creates the built-in `ping` job.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures_util::stream;
use serde_json::{Value, json};
use wxpilot_core::service::jobs::{self, Job, JobFilter, NewJob};
use wxpilot_core::service::{Access, Actor, Area, Page, PageRequest};
use wxpilot_worker::jobs::ping::PingPayload;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Header clients send to make job creation safe to repeat.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

fn idempotency_key(req: &HttpRequest) -> ApiResult<Option<String>> {
    match req.headers().get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim().to_owned()))
            .map_err(|_| ApiError::field(IDEMPOTENCY_KEY, "must be printable ASCII")),
    }
}

/// Attempts a new job of `kind` gets: configured, else the kind's default.
pub fn max_attempts(state: &AppState, kind: &str) -> u32 {
    state.settings.jobs.kinds.get(kind).map_or(
        wxpilot_worker::handlers()
            .iter()
            .find(|h| h.kind() == kind)
            .map_or(5, |h| h.default_policy().max_attempts),
        |p| p.max_attempts,
    )
}

/// Creates a job (or finds the one an identical earlier request created), puts a new one
/// on the queue, and answers 202 with `Location`. Shared by every endpoint that makes jobs.
pub async fn accept_job(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    kind: &str,
    payload: Value,
) -> ApiResult<HttpResponse> {
    accept_job_keyed(state, req, actor, kind, payload, None).await
}

/// [`accept_job`] for work that must not run twice whatever the client sends: without an
/// `Idempotency-Key` header, `default_key` stands in, so a repeated request answers the
/// job the first one created.
pub async fn accept_job_keyed(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    kind: &str,
    payload: Value,
    default_key: Option<String>,
) -> ApiResult<HttpResponse> {
    let (job, created) = create_job(
        state,
        actor,
        kind,
        payload,
        idempotency_key(req)?.or(default_key),
        req.headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(jobs::parse_traceparent),
    )
    .await?;
    let mut response = HttpResponse::Accepted();
    response.insert_header((header::LOCATION, format!("/v1/jobs/{}", job.id)));
    if !created {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(job))
}

/// Records a job and hands it to the queue; whether it is new (an idempotency key may name
/// an existing one). The record is durable first: if the queue is down, the sweeper
/// dispatches the job later.
pub async fn create_job(
    state: &AppState,
    actor: &Actor,
    kind: &str,
    payload: Value,
    idempotency_key: Option<String>,
    traceparent: Option<String>,
) -> ApiResult<(Job, bool)> {
    let (job, created) = state
        .intake
        .create(
            actor,
            NewJob {
                kind: kind.to_owned(),
                payload,
                max_attempts: max_attempts(state, kind),
                idempotency_key,
                traceparent,
            },
        )
        .await?;
    if created && let Err(e) = state.queue.dispatch(kind, &job.id, None).await {
        tracing::warn!(job_id = %job.id, error = %format!("{e:#}"), "queue unavailable; the sweeper will dispatch the job");
    }
    Ok((job, created))
}

/// Queue a `ping` job: it sleeps `sleep_ms`, reports `steps` progress updates and returns
/// `echo`. For checking a deployment end to end and for benchmarks.
#[utoipa::path(
    tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body give the same job; the same key with another body answers 409")),
    request_body(content = Object, description = "`{\"sleep_ms\": 0..600000, \"steps\": 0..100, \"echo\": any, \"fail_times\": n, \"fail_permanently\": bool}`"),
    responses(
        (status = 202, description = "Queued; `Location` names the job", body = Job),
        (status = 409, description = "Idempotency-Key reused with another body", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/jobs/ping")]
pub async fn ping(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Jobs, Access::Write)?;
    let payload: PingPayload = serde_json::from_value(body.0.clone())
        .map_err(|e| ApiError::field("body", e.to_string()))?;
    payload.validate().map_err(|m| ApiError::field("body", m))?;
    accept_job(&state, &req, actor, "ping", body.0).await
}

/// List the tenant's jobs, optionally by kind, status and creation time.
#[utoipa::path(
    tag = "jobs",
    params(PageRequest, JobFilter),
    responses((status = 200, description = "A page of jobs", body = Page<Job>)),
    security(("bearer" = []))
)]
#[get("/jobs")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    page: Query<PageRequest>,
    filter: Query<JobFilter>,
) -> ApiResult<web::Json<Page<Job>>> {
    let actor = auth.require(Area::Jobs, Access::Read)?;
    Ok(web::Json(
        jobs::list(&state.db, actor, &filter.0, &page.0).await?,
    ))
}

/// Get one job: status, attempts, progress, result or last error.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = Job)),
    security(("bearer" = []))
)]
#[get("/jobs/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<Job>> {
    let actor = auth.require(Area::Jobs, Access::Read)?;
    Ok(web::Json(jobs::get(&state.db, actor, &id).await?))
}

/// Cancel a job: at once when it waits, within a lease renewal when it runs. 409 when it is final.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job, cancelled or with `cancel_requested`", body = Job),
        (status = 409, description = "Already final", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/cancel")]
pub async fn cancel(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<Job>> {
    let actor = auth.require(Area::Jobs, Access::Write)?;
    Ok(web::Json(jobs::cancel(&state.db, actor, &id).await?))
}

/// Queue a dead job again, with a fresh set of attempts.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Queued again", body = Job),
        (status = 409, description = "Not dead", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/retry")]
pub async fn retry(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Jobs, Access::Write)?;
    let job = jobs::retry(&state.db, actor, &id).await?;
    if let Err(e) = state.queue.dispatch(&job.kind, &job.id, None).await {
        tracing::warn!(job_id = %job.id, error = %format!("{e:#}"), "queue unavailable; the sweeper will dispatch the job");
    }
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/jobs/{}", job.id)))
        .json(job))
}

/// How often the event stream looks at the job.
const POLL: Duration = Duration::from_millis(100);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

fn sse(event: &str, data: &impl serde::Serialize) -> web::Bytes {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    web::Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

struct Follow {
    state: web::Data<AppState>,
    actor: Actor,
    id: String,
    last: Option<Job>,
    quiet: Duration,
    done: bool,
}

/// Follow a job: Server-Sent Events `status` (the whole job, first and on every status
/// change), `progress` (`{"percent", "message"}`), and finally `done` (the whole job),
/// after which the stream ends.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String)),
    security(("bearer" = []))
)]
#[get("/jobs/{id}/events")]
pub async fn events(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Jobs, Access::Read)?.clone();
    let first = jobs::get(&state.db, &actor, &id).await?;
    let follow = Follow {
        state,
        actor,
        id: first.id.clone(),
        last: None,
        quiet: Duration::ZERO,
        done: false,
    };
    let body = stream::unfold(follow, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            if f.last.is_some() {
                tokio::time::sleep(POLL).await;
                f.quiet += POLL;
            }
            let job = match jobs::get(&f.state.db, &f.actor, &f.id).await {
                Ok(job) => job,
                Err(_) => return None,
            };
            let mut chunk = Vec::new();
            let status_changed = f.last.as_ref().is_none_or(|l| l.status != job.status);
            let progress_changed = f.last.as_ref().is_some_and(|l| {
                l.progress_percent != job.progress_percent
                    || l.progress_message != job.progress_message
            });
            if status_changed {
                chunk.extend_from_slice(&sse("status", &job));
            }
            if progress_changed {
                chunk.extend_from_slice(&sse(
                    "progress",
                    &json!({"percent": job.progress_percent, "message": job.progress_message}),
                ));
            }
            if job.status.is_final() {
                chunk.extend_from_slice(&sse("done", &job));
                f.done = true;
            }
            f.last = Some(job);
            if chunk.is_empty() && f.quiet >= KEEPALIVE {
                chunk.extend_from_slice(b": keep-alive\n\n");
            }
            if !chunk.is_empty() {
                f.quiet = Duration::ZERO;
                return Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk)), f));
            }
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
