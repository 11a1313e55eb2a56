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
    responses((status = 200, description = "A token", body = TokenResponse))
)]
#[post("/auth/token")]
pub async fn token(
    state: web::Data<AppState>,
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
        } => {
            login::actor_for_password(&state.db, &tenant, &email, password.expose_secret()).await?
        }
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
