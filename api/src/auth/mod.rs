//! `Authorization: Bearer <API key | JWT>` → the [`Actor`] a handler acts for.

pub mod jwt;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use wxpilot_core::keys::looks_like_api_key;
use wxpilot_core::service::{Access, Actor, Area, login};

use crate::error::ApiError;
use crate::middleware::{RequestId, TenantTag};
use crate::state::AppState;

/// The authenticated caller. Extracting it answers 401 when the credential is missing or bad.
pub struct Auth(pub Actor);

impl Auth {
    /// The actor, after checking it may perform `access` on `area` (403 otherwise).
    pub fn require(&self, area: Area, access: Access) -> Result<&Actor, ApiError> {
        self.0.require(area, access)?;
        Ok(&self.0)
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("send Authorization: Bearer <API key or token>".into())
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    let (scheme, credential) = value.split_once(' ').ok_or_else(|| {
        ApiError::Unauthorized("the Authorization header must be Bearer <credential>".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || credential.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "the Authorization header must be Bearer <credential>".into(),
        ));
    }
    Ok(credential.trim().to_owned())
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))?;
            let credential = bearer(&req)?;
            let mut actor = if looks_like_api_key(&credential) {
                login::actor_for_api_key(&state.db, &credential).await?
            } else {
                let claimed = state
                    .jwt
                    .verify(&credential)
                    .map_err(|e| ApiError::Unauthorized(e.0.into()))?;
                login::refresh_token_actor(&state.db, claimed).await?
            };
            actor.request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
            req.extensions_mut()
                .insert(TenantTag(actor.tenant_id.clone()));
            Ok(Auth(actor))
        })
    }
}
