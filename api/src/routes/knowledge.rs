//! `/v1/accounts/{id}/knowledge`: the FAQ pairs an account's customer service answers from.
//! Account editors write; everyone in the tenant reads.

use actix_web::{HttpResponse, delete, get, post, web};
use wxpilot_core::service::knowledge::{self, KnowledgeEntry, NewKnowledgeEntry};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::routes::created;
use crate::state::AppState;

/// Add an FAQ pair to an account's knowledge base.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id")),
    request_body = NewKnowledgeEntry,
    responses((status = 201, description = "Created", body = KnowledgeEntry)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/knowledge")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<NewKnowledgeEntry>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let entry = knowledge::create(&state.db, actor, &id, body.0).await?;
    Ok(created(
        format!("/v1/accounts/{}/knowledge/{}", entry.account_id, entry.id),
        &entry,
    ))
}

/// List an account's knowledge entries, oldest first.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id"), PageRequest),
    responses((status = 200, description = "A page of entries", body = Page<KnowledgeEntry>)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/knowledge")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<KnowledgeEntry>>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    Ok(web::Json(
        knowledge::list(&state.db, actor, &id, &page.0).await?,
    ))
}

/// Get one knowledge entry.
#[utoipa::path(
    tag = "knowledge",
    params(
        ("id" = String, Path, description = "Account id"),
        ("entry_id" = String, Path, description = "Entry id")
    ),
    responses((status = 200, description = "The entry", body = KnowledgeEntry)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/knowledge/{entry_id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<KnowledgeEntry>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (id, entry_id) = path.into_inner();
    Ok(web::Json(
        knowledge::get(&state.db, actor, &id, &entry_id).await?,
    ))
}

/// Delete a knowledge entry.
#[utoipa::path(
    tag = "knowledge",
    params(
        ("id" = String, Path, description = "Account id"),
        ("entry_id" = String, Path, description = "Entry id")
    ),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/accounts/{id}/knowledge/{entry_id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let (id, entry_id) = path.into_inner();
    knowledge::delete(&state.db, actor, &id, &entry_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
