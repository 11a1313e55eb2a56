//! `/v1/accounts/{id}/conversations`: followers' conversations with the account, their
//! messages, agents' replies (sent as customer-service messages by the `reply` job) and
//! ending a handoff.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use wxpilot_core::service::conversations::{
    self, AgentMessage, Conversation, Message, REPLY_JOB_KIND,
};
use wxpilot_core::service::{Access, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::routes::jobs::accept_job;
use crate::state::AppState;

/// List the account's conversations (one per follower who wrote or followed), oldest
/// first; `needs_agent` marks followers who asked for a person.
#[utoipa::path(
    tag = "conversations",
    params(("id" = String, Path, description = "Official account id"), PageRequest),
    responses((status = 200, description = "A page of conversations", body = Page<Conversation>)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/conversations")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<Conversation>>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    Ok(web::Json(
        conversations::list(&state.db, actor, &id, &page.0).await?,
    ))
}

/// One follower's conversation.
#[utoipa::path(
    tag = "conversations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("openid" = String, Path, description = "The follower's openid")
    ),
    responses((status = 200, description = "The conversation", body = Conversation)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/conversations/{openid}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Conversation>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (account, openid) = path.into_inner();
    Ok(web::Json(
        conversations::get(&state.db, actor, &account, &openid).await?,
    ))
}

/// A conversation's messages, oldest first: the follower's, passive replies, answers sent
/// as customer-service messages, answers kept for the next message, and refused sends.
#[utoipa::path(
    tag = "conversations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("openid" = String, Path, description = "The follower's openid"),
        PageRequest
    ),
    responses((status = 200, description = "A page of messages", body = Page<Message>)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/conversations/{openid}/messages")]
pub async fn messages(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<Message>>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (account, openid) = path.into_inner();
    Ok(web::Json(
        conversations::messages(&state.db, actor, &account, &openid, &page.0).await?,
    ))
}

/// An agent answers: `202` with the `reply` job that sends the text as customer-service
/// messages (WeChat allows them for 48 hours after the follower's last message).
#[utoipa::path(
    tag = "conversations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("openid" = String, Path, description = "The follower's openid"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body give the same job")
    ),
    request_body = AgentMessage,
    responses((status = 202, description = "Queued; `Location` names the job", body = wxpilot_core::service::jobs::Job)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/conversations/{openid}/messages")]
pub async fn send(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    path: web::Path<(String, String)>,
    body: Json<AgentMessage>,
) -> ApiResult<HttpResponse> {
    auth.require(Area::Accounts, Access::Read)?;
    let actor = auth.require(Area::Jobs, Access::Write)?;
    let (account, openid) = path.into_inner();
    conversations::exists(&state.db, actor, &account, &openid).await?;
    let job = body.0.into_job(&account, &openid)?;
    let payload = serde_json::to_value(&job).map_err(|e| ApiError::field("body", e.to_string()))?;
    accept_job(&state, &req, actor, REPLY_JOB_KIND, payload).await
}

/// End a handoff now: the bot answers the follower again.
#[utoipa::path(
    tag = "conversations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("openid" = String, Path, description = "The follower's openid")
    ),
    responses((status = 200, description = "The conversation", body = Conversation)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/conversations/{openid}/resume")]
pub async fn resume(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Conversation>> {
    auth.require(Area::Accounts, Access::Read)?;
    let actor = auth.require(Area::Jobs, Access::Write)?;
    let (account, openid) = path.into_inner();
    Ok(web::Json(
        conversations::resume(&state.db, actor, &account, &openid).await?,
    ))
}
