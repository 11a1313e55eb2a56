//! `/v1/campaigns`: editors write; everyone in the tenant reads.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use wxpilot_core::service::campaigns::{
    self, Campaign, CampaignFilter, CampaignPatch, NewCampaign,
};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::routes::created;
use crate::state::AppState;

/// Create a campaign on one of the tenant's official accounts.
#[utoipa::path(
    tag = "campaigns",
    request_body = NewCampaign,
    responses((status = 201, description = "Created", body = Campaign)),
    security(("bearer" = []))
)]
#[post("/campaigns")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<NewCampaign>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    let campaign = campaigns::create(&state.db, actor, body.0).await?;
    Ok(created(format!("/v1/campaigns/{}", campaign.id), &campaign))
}

/// List campaigns, optionally of one account or in one status.
#[utoipa::path(
    tag = "campaigns",
    params(PageRequest, CampaignFilter),
    responses((status = 200, description = "A page of campaigns", body = Page<Campaign>)),
    security(("bearer" = []))
)]
#[get("/campaigns")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    page: Query<PageRequest>,
    filter: Query<CampaignFilter>,
) -> ApiResult<web::Json<Page<Campaign>>> {
    let actor = auth.require(Area::Campaigns, Access::Read)?;
    Ok(web::Json(
        campaigns::list(&state.db, actor, &filter.0, &page.0).await?,
    ))
}

/// Get one campaign.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, description = "The campaign", body = Campaign)),
    security(("bearer" = []))
)]
#[get("/campaigns/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<Campaign>> {
    let actor = auth.require(Area::Campaigns, Access::Read)?;
    Ok(web::Json(campaigns::get(&state.db, actor, &id).await?))
}

/// Change a campaign; absent fields stay, `null` clears a date.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    request_body = CampaignPatch,
    responses((status = 200, description = "The changed campaign", body = Campaign)),
    security(("bearer" = []))
)]
#[patch("/campaigns/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<CampaignPatch>,
) -> ApiResult<web::Json<Campaign>> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    Ok(web::Json(
        campaigns::update(&state.db, actor, &id, body.0).await?,
    ))
}

/// Delete a campaign.
#[utoipa::path(
    tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/campaigns/{id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    campaigns::delete(&state.db, actor, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
