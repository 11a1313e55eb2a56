//! `/v1/contents`: generated drafts under review (everyone in the tenant reads; editors edit,
//! approve and reject), and `PUT /v1/accounts/{id}/brand-voice`.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, put, web};
use wxpilot_core::service::contents::{
    self, BrandVoiceBody, Content, ContentDetail, ContentFilter, ContentPatch, state,
};
use wxpilot_core::service::publications::{self, Publication, PublishRequest};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::routes::jobs::accept_job_keyed;
use crate::state::AppState;

/// List contents, optionally of one campaign or in one state.
#[utoipa::path(
    tag = "contents",
    params(PageRequest, ContentFilter),
    responses((status = 200, description = "A page of contents", body = Page<Content>)),
    security(("bearer" = []))
)]
#[get("/contents")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    page: Query<PageRequest>,
    filter: Query<ContentFilter>,
) -> ApiResult<web::Json<Page<Content>>> {
    let actor = auth.require(Area::Campaigns, Access::Read)?;
    Ok(web::Json(
        contents::list(&state.db, actor, &filter.0, &page.0).await?,
    ))
}

/// Get one content with every version and its compliance report.
#[utoipa::path(
    tag = "contents",
    params(("id" = String, Path, description = "Content id")),
    responses((status = 200, description = "The content", body = ContentDetail)),
    security(("bearer" = []))
)]
#[get("/contents/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<ContentDetail>> {
    let actor = auth.require(Area::Campaigns, Access::Read)?;
    Ok(web::Json(contents::get(&state.db, actor, &id).await?))
}

/// Edit a content: a new version, checked against WeChat's limits (422) and the compliance
/// lists; it goes back to `draft` (or `needs_review` when prohibited wording remains).
#[utoipa::path(
    tag = "contents",
    params(("id" = String, Path, description = "Content id")),
    request_body = ContentPatch,
    responses(
        (status = 200, description = "The content with its new version", body = ContentDetail),
        (status = 422, description = "A WeChat limit is broken", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[patch("/contents/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<ContentPatch>,
) -> ApiResult<web::Json<ContentDetail>> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    Ok(web::Json(
        contents::update(&state.db, actor, &id, body.0).await?,
    ))
}

/// Approve a draft (not one that still needs review); 409 otherwise.
#[utoipa::path(
    tag = "contents",
    params(("id" = String, Path, description = "Content id")),
    responses(
        (status = 200, description = "Approved", body = ContentDetail),
        (status = 409, description = "Its state does not allow it", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/contents/{id}/approve")]
pub async fn approve(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<ContentDetail>> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    Ok(web::Json(
        contents::review(&state.db, actor, &id, state::APPROVED).await?,
    ))
}

/// Reject a content.
#[utoipa::path(
    tag = "contents",
    params(("id" = String, Path, description = "Content id")),
    responses(
        (status = 200, description = "Rejected", body = ContentDetail),
        (status = 409, description = "Its state does not allow it", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/contents/{id}/reject")]
pub async fn reject(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<ContentDetail>> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    Ok(web::Json(
        contents::review(&state.db, actor, &id, state::REJECTED).await?,
    ))
}

/// Set an account's brand voice: style guide, preferred and banned words, signature. Used in
/// every generation prompt; banned words are flagged by the compliance check.
#[utoipa::path(
    tag = "contents",
    params(("id" = String, Path, description = "Official account id")),
    request_body = BrandVoiceBody,
    responses((status = 200, description = "The brand voice", body = BrandVoiceBody)),
    security(("bearer" = []))
)]
#[put("/accounts/{id}/brand-voice")]
pub async fn put_brand_voice(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<BrandVoiceBody>,
) -> ApiResult<web::Json<BrandVoiceBody>> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    Ok(web::Json(
        contents::put_brand_voice(&state.db, actor, &id, body.0).await?,
    ))
}

/// Publish an approved article to its account: `202` with the `publish` job, which uploads
/// the cover and body images, adds the draft, submits it and records the article URL.
/// Repeating the request answers the same job (`Idempotent-Replayed: true`), and once
/// WeChat has the article, 409: nothing is ever published twice.
#[utoipa::path(
    tag = "contents",
    params(
        ("id" = String, Path, description = "Content id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body give the same job")
    ),
    request_body = PublishRequest,
    responses(
        (status = 202, description = "Queued; `Location` names the job", body = wxpilot_core::service::jobs::Job),
        (status = 409, description = "Not approved, not an article, or published already", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/contents/{id}/publish")]
pub async fn publish(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: Json<PublishRequest>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    let (job, key) = publications::prepare(&state.db, actor, &id, body.0).await?;
    let payload = serde_json::to_value(&job).map_err(|e| ApiError::field("body", e.to_string()))?;
    accept_job_keyed(
        &state,
        &req,
        actor,
        publications::PUBLISH_JOB_KIND,
        payload,
        Some(key),
    )
    .await
}

/// Where publishing a content stands: each step's outcome and, once published, the URL.
#[utoipa::path(
    tag = "contents",
    params(("id" = String, Path, description = "Content id")),
    responses((status = 200, description = "The publication", body = Publication)),
    security(("bearer" = []))
)]
#[get("/contents/{id}/publication")]
pub async fn publication(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<Publication>> {
    let actor = auth.require(Area::Campaigns, Access::Read)?;
    Ok(web::Json(publications::get(&state.db, actor, &id).await?))
}
