//! `/v1/webhooks`: endpoints that receive signed job events, and their delivery logs.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use wxpilot_core::service::webhooks::{
    self, CreatedWebhook, NewWebhook, Webhook, WebhookDelivery, WebhookPatch,
};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::routes::created;
use crate::state::AppState;

/// Register an endpoint. The response holds its signing secret, shown only now.
#[utoipa::path(
    tag = "webhooks",
    request_body = NewWebhook,
    responses((status = 201, description = "Created; `secret` signs every delivery", body = CreatedWebhook)),
    security(("bearer" = []))
)]
#[post("/webhooks")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<NewWebhook>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Webhooks, Access::Write)?;
    let hook = webhooks::create(&state.db, &state.secrets, actor, body.0).await?;
    Ok(created(format!("/v1/webhooks/{}", hook.webhook.id), &hook))
}

/// List the tenant's endpoints.
#[utoipa::path(
    tag = "webhooks",
    params(PageRequest),
    responses((status = 200, description = "A page of endpoints", body = Page<Webhook>)),
    security(("bearer" = []))
)]
#[get("/webhooks")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<Webhook>>> {
    let actor = auth.require(Area::Webhooks, Access::Read)?;
    Ok(web::Json(webhooks::list(&state.db, actor, &page.0).await?))
}

/// Get one endpoint.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, description = "The endpoint", body = Webhook)),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<Webhook>> {
    let actor = auth.require(Area::Webhooks, Access::Read)?;
    Ok(web::Json(webhooks::get(&state.db, actor, &id).await?))
}

/// Change an endpoint's URL or events, or pause and resume it.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    request_body = WebhookPatch,
    responses((status = 200, description = "The changed endpoint", body = Webhook)),
    security(("bearer" = []))
)]
#[patch("/webhooks/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<WebhookPatch>,
) -> ApiResult<web::Json<Webhook>> {
    let actor = auth.require(Area::Webhooks, Access::Write)?;
    Ok(web::Json(
        webhooks::update(&state.db, actor, &id, body.0).await?,
    ))
}

/// Delete an endpoint and its delivery log.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/webhooks/{id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Webhooks, Access::Write)?;
    webhooks::delete(&state.db, actor, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An endpoint's deliveries: each event, its attempts, the receiver's last answer.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id"), PageRequest),
    responses((status = 200, description = "A page of deliveries", body = Page<WebhookDelivery>)),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn deliveries(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<WebhookDelivery>>> {
    let actor = auth.require(Area::Webhooks, Access::Read)?;
    Ok(web::Json(
        webhooks::deliveries(&state.db, actor, &id, &page.0).await?,
    ))
}
