//! `/v1/accounts/{id}/rules`: keyword rules of an account's customer service.
//! Account editors write; everyone in the tenant reads.

use actix_web::{HttpResponse, delete, get, post, web};
use wxpilot_core::service::keyword_rules::{self, KeywordRule, NewKeywordRule};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::routes::created;
use crate::state::AppState;

/// Add a keyword rule to an account.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id")),
    request_body = NewKeywordRule,
    responses((status = 201, description = "Created", body = KeywordRule)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/rules")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<NewKeywordRule>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let rule = keyword_rules::create(&state.db, actor, &id, body.0).await?;
    Ok(created(
        format!("/v1/accounts/{}/rules/{}", rule.account_id, rule.id),
        &rule,
    ))
}

/// List an account's keyword rules, oldest first.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id"), PageRequest),
    responses((status = 200, description = "A page of rules", body = Page<KeywordRule>)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/rules")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<KeywordRule>>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    Ok(web::Json(
        keyword_rules::list(&state.db, actor, &id, &page.0).await?,
    ))
}

/// Delete a keyword rule.
#[utoipa::path(
    tag = "knowledge",
    params(
        ("id" = String, Path, description = "Account id"),
        ("rule_id" = String, Path, description = "Rule id")
    ),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/accounts/{id}/rules/{rule_id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let (id, rule_id) = path.into_inner();
    keyword_rules::delete(&state.db, actor, &id, &rule_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
