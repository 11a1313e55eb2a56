//! `/v1/audit-events`: who changed what, for admins.

use actix_web::{get, web};
use wxpilot_core::service::audit::{self, AuditEvent};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::state::AppState;

/// List the tenant's audit log, oldest first. Secret values appear as `[redacted]`.
#[utoipa::path(
    tag = "audit",
    params(PageRequest),
    responses((status = 200, description = "A page of audit events", body = Page<AuditEvent>)),
    security(("bearer" = []))
)]
#[get("/audit-events")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<AuditEvent>>> {
    let actor = auth.require(Area::Audit, Access::Read)?;
    Ok(web::Json(audit::list(&state.db, actor, &page.0).await?))
}
