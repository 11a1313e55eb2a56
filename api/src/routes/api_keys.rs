//! `/v1/api-keys`: admins create, list and revoke keys. A key is shown once, at creation.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use wxpilot_core::service::api_keys::{self, ApiKey, ApiKeyPatch, CreatedApiKey, NewApiKey};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::routes::created;
use crate::state::AppState;

/// Create an API key. The response holds the key itself; it is never shown again.
#[utoipa::path(
    tag = "api-keys",
    request_body = NewApiKey,
    responses((status = 201, description = "Created; `secret` is the key", body = CreatedApiKey)),
    security(("bearer" = []))
)]
#[post("/api-keys")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<NewApiKey>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::ApiKeys, Access::Write)?;
    let key = api_keys::create(&state.db, actor, body.0).await?;
    Ok(created(format!("/v1/api-keys/{}", key.key.id), &key))
}

/// List the tenant's API keys, revoked ones included.
#[utoipa::path(
    tag = "api-keys",
    params(PageRequest),
    responses((status = 200, description = "A page of keys", body = Page<ApiKey>)),
    security(("bearer" = []))
)]
#[get("/api-keys")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<ApiKey>>> {
    let actor = auth.require(Area::ApiKeys, Access::Read)?;
    Ok(web::Json(api_keys::list(&state.db, actor, &page.0).await?))
}

/// Get one API key's record.
#[utoipa::path(
    tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The key's record", body = ApiKey)),
    security(("bearer" = []))
)]
#[get("/api-keys/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<ApiKey>> {
    let actor = auth.require(Area::ApiKeys, Access::Read)?;
    Ok(web::Json(api_keys::get(&state.db, actor, &id).await?))
}

/// Rename or revoke an API key.
#[utoipa::path(
    tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    request_body = ApiKeyPatch,
    responses((status = 200, description = "The changed record", body = ApiKey)),
    security(("bearer" = []))
)]
#[patch("/api-keys/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<ApiKeyPatch>,
) -> ApiResult<web::Json<ApiKey>> {
    let actor = auth.require(Area::ApiKeys, Access::Write)?;
    Ok(web::Json(
        api_keys::update(&state.db, actor, &id, body.0).await?,
    ))
}

/// Revoke an API key. It stops working at once; its record stays, with `revoked_at`.
#[utoipa::path(
    tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = []))
)]
#[delete("/api-keys/{id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::ApiKeys, Access::Write)?;
    api_keys::revoke(&state.db, actor, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
