//! `POST /v1/auth/token`: an API key or an email and password for a short-lived JWT.

use actix_web::{post, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wxpilot_core::service::login;
use wxpilot_entity::Role;

use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;

/// What to exchange for a token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "grant_type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenRequest {
    /// An API key.
    ApiKey {
        /// The key, `wxp_…`.
        #[schema(value_type = String, write_only)]
        api_key: SecretString,
    },
    /// A user's email and password.
    Password {
        /// Tenant id or slug.
        tenant: String,
        /// Email.
        email: String,
        /// Password.
        #[schema(value_type = String, write_only)]
        password: SecretString,
    },
}

/// A bearer token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT; send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until it expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The tenant it acts in.
    pub tenant_id: String,
    /// Its role.
    pub role: Role,
}

/// Exchange an API key or an email and password for a JWT (15 minutes by default).
#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 401, description = "Unknown, revoked or expired key; wrong email or password", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed sign-ins", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/auth/token")]
pub async fn token(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: Json<TokenRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let actor = match body.0 {
        TokenRequest::ApiKey { api_key } => {
            login::actor_for_api_key(&state.db, api_key.expose_secret()).await?
        }
        TokenRequest::Password {
            tenant,
            email,
            password,
        } => password_login(&state, &req, &tenant, &email, &password).await?,
    };
    let (access_token, expires_at) = state.jwt.issue(&actor).map_err(ApiError::Internal)?;
    Ok(web::Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs(),
        expires_at,
        tenant_id: actor.tenant_id,
        role: actor.role,
    }))
}

/// Email and password sign-in, throttled per account and per client address.
async fn password_login(
    state: &AppState,
    req: &actix_web::HttpRequest,
    tenant: &str,
    email: &str,
    password: &SecretString,
) -> ApiResult<wxpilot_core::service::Actor> {
    let account = format!("account:{tenant}:{}", email.trim().to_lowercase());
    let peer = format!(
        "peer:{}",
        req.peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    );
    let now = std::time::Instant::now();
    for key in [&account, &peer] {
        if let Err(wait) = state.logins.check(key, now) {
            return Err(ApiError::TooManyRequests(format!(
                "too many failed sign-ins; try again in {wait} s"
            )));
        }
    }
    match login::actor_for_password(&state.db, tenant, email, password.expose_secret()).await {
        Ok(actor) => {
            state.logins.reset(&account);
            Ok(actor)
        }
        Err(e) => {
            state.logins.record_failure(&account, now);
            state.logins.record_failure(&peer, now);
            Err(e.into())
        }
    }
}
