//! `GET /v1/usage`: what the tenant consumed this month (or another).

use actix_web::{get, put, web};
use wxpilot_core::service::usage::{self, BudgetUpdate, Usage, UsageQuery};
use wxpilot_core::service::{Access, Area};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Usage totals for a month: succeeded jobs by kind and LLM tokens.
#[utoipa::path(
    tag = "usage",
    params(UsageQuery),
    responses((status = 200, description = "The month's totals", body = Usage)),
    security(("bearer" = []))
)]
#[get("/usage")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    query: Query<UsageQuery>,
) -> ApiResult<web::Json<Usage>> {
    let actor = auth.require(Area::Usage, Access::Read)?;
    Ok(web::Json(usage::monthly(&state.db, actor, &query.0).await?))
}

/// Set or clear the monthly LLM token budget; past it, new LLM jobs answer 402.
#[utoipa::path(
    tag = "usage",
    request_body = BudgetUpdate,
    responses((status = 200, description = "This month's usage with the new budget", body = Usage)),
    security(("bearer" = []))
)]
#[put("/usage/budget")]
pub async fn set_budget(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<BudgetUpdate>,
) -> ApiResult<web::Json<Usage>> {
    let actor = auth.require(Area::Usage, Access::Write)?;
    Ok(web::Json(
        usage::set_budget(&state.db, actor, body.0).await?,
    ))
}
