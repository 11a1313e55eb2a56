//! `GET /v1/usage`: what the tenant consumed this month (or another).

use actix_web::{get, web};
use wxpilot_core::service::usage::{self, Usage, UsageQuery};
use wxpilot_core::service::{Access, Area};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::Query;
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
