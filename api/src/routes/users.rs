//! `/v1/users`: admins manage the tenant's users.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use wxpilot_core::service::users::{self, NewUser, User, UserPatch};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::routes::created;
use crate::state::AppState;

/// Add a user who signs in with email and password.
#[utoipa::path(
    tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 409, description = "Email already used in this tenant", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/users")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    body: Json<NewUser>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Users, Access::Write)?;
    let user = users::create(&state.db, actor, body.0).await?;
    Ok(created(format!("/v1/users/{}", user.id), &user))
}

/// List the tenant's users.
#[utoipa::path(
    tag = "users",
    params(PageRequest),
    responses((status = 200, description = "A page of users", body = Page<User>)),
    security(("bearer" = []))
)]
#[get("/users")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<User>>> {
    let actor = auth.require(Area::Users, Access::Read)?;
    Ok(web::Json(users::list(&state.db, actor, &page.0).await?))
}

/// Get one user.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The user", body = User)),
    security(("bearer" = []))
)]
#[get("/users/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<User>> {
    let actor = auth.require(Area::Users, Access::Read)?;
    Ok(web::Json(users::get(&state.db, actor, &id).await?))
}

/// Change a user's name, password or role.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "User id")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The changed user", body = User),
        (status = 409, description = "Would remove the last owner", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[patch("/users/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<UserPatch>,
) -> ApiResult<web::Json<User>> {
    let actor = auth.require(Area::Users, Access::Write)?;
    Ok(web::Json(
        users::update(&state.db, actor, &id, body.0).await?,
    ))
}

/// Delete a user.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Would remove the last owner", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[delete("/users/{id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Users, Access::Write)?;
    users::delete(&state.db, actor, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
