//! `/v1/accounts`: official accounts. Admins write; everyone in the tenant reads.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use wxpilot_core::service::accounts::{self, AccountPatch, NewAccount, OfficialAccount};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::routes::created;
use crate::state::AppState;

/// Add an official account. AppSecret and EncodingAESKey are stored encrypted and never returned.
#[utoipa::path(
    tag = "accounts",
    request_body = NewAccount,
    responses(
        (status = 201, description = "Created", body = OfficialAccount),
        (status = 409, description = "Same app_id already in this tenant", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/accounts")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<NewAccount>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let account = accounts::create(&state.db, &state.secrets, actor, body.0).await?;
    Ok(created(format!("/v1/accounts/{}", account.id), &account))
}

/// List the tenant's official accounts.
#[utoipa::path(
    tag = "accounts",
    params(PageRequest),
    responses((status = 200, description = "A page of accounts", body = Page<OfficialAccount>)),
    security(("bearer" = []))
)]
#[get("/accounts")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<OfficialAccount>>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    Ok(web::Json(accounts::list(&state.db, actor, &page.0).await?))
}

/// Get one official account.
#[utoipa::path(
    tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The account", body = OfficialAccount)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<OfficialAccount>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    Ok(web::Json(accounts::get(&state.db, actor, &id).await?))
}

/// Change an official account; absent fields stay as they are.
#[utoipa::path(
    tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    request_body = AccountPatch,
    responses(
        (status = 200, description = "The changed account", body = OfficialAccount),
        (status = 409, description = "Same app_id already in this tenant", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[patch("/accounts/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<AccountPatch>,
) -> ApiResult<web::Json<OfficialAccount>> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let updated = accounts::update(&state.db, &state.secrets, actor, &id, body.0).await?;
    // The callback reads the new token, key and welcome message from the next message on.
    state.callback_accounts.remove(&id);
    Ok(web::Json(updated))
}

/// Delete an official account and its campaigns.
#[utoipa::path(
    tag = "accounts",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/accounts/{id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    accounts::delete(&state.db, actor, &id).await?;
    state.callback_accounts.remove(&id);
    Ok(HttpResponse::NoContent().finish())
}
