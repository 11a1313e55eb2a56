//! Checking credentials: API keys on every request, email and password at sign-in.

use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use wxpilot_entity::{api_key, user};

use super::{Actor, Scopes};
use crate::error::{ServiceError, ServiceResult};
use crate::{keys, passwords};

/// `last_used_at` is written at most this often per key, so reads stay reads.
const LAST_USED_GRANULARITY: Duration = Duration::seconds(60);

const BAD_KEY: &str = "the API key is unknown, revoked or expired";
const BAD_PASSWORD: &str = "the email or password is wrong";

/// The actor behind a presented API key, if it is valid now.
pub async fn actor_for_api_key(db: &DatabaseConnection, presented: &str) -> ServiceResult<Actor> {
    if !keys::looks_like_api_key(presented) {
        return Err(ServiceError::Unauthorized(BAD_KEY.into()));
    }
    let found = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(keys::hash(presented)))
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::Unauthorized(BAD_KEY.into()))?;
    let now = Utc::now();
    if found.revoked_at.is_some() || found.expires_at.is_some_and(|at| at <= now) {
        return Err(ServiceError::Unauthorized(BAD_KEY.into()));
    }
    let names: Vec<String> = serde_json::from_value(found.scopes.clone()).unwrap_or_default();
    let scopes = Scopes::parse(&names).unwrap_or(Scopes::Only(Vec::new()));
    let actor = Actor {
        tenant_id: found.tenant_id.clone(),
        subject: format!("api_key:{}", found.id),
        role: found.role,
        scopes,
        request_id: None,
        expires_at: found.expires_at,
    };
    if found
        .last_used_at
        .is_none_or(|at| now - at > LAST_USED_GRANULARITY)
    {
        let mut model: api_key::ActiveModel = found.into();
        model.last_used_at = Set(Some(now));
        if let Err(e) = model.update(db).await {
            tracing::warn!(error = %e, "could not record API key use");
        }
    }
    Ok(actor)
}

/// The actor for an email and password in a tenant (by id or slug).
pub async fn actor_for_password(
    db: &DatabaseConnection,
    tenant: &str,
    email: &str,
    password: &str,
) -> ServiceResult<Actor> {
    let tenant = super::tenants::find(db, tenant).await.ok();
    let found = match &tenant {
        Some(t) => {
            user::Entity::find()
                .filter(user::Column::TenantId.eq(&t.id))
                .filter(user::Column::Email.eq(email.trim().to_lowercase()))
                .one(db)
                .await?
        }
        None => None,
    };
    // Verify against a dummy hash when there is no such user, so timing tells nothing.
    let stored = found
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| passwords::dummy_hash().to_owned());
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || passwords::verify(&password, &stored))
        .await
        .map_err(|e| ServiceError::Internal(e.into()))?;
    match found {
        Some(u) if ok => Ok(Actor {
            tenant_id: u.tenant_id,
            subject: format!("user:{}", u.id),
            role: u.role,
            scopes: Scopes::all(),
            request_id: None,
            expires_at: None,
        }),
        _ => Err(ServiceError::Unauthorized(BAD_PASSWORD.into())),
    }
}

const GONE: &str = "the token's credential was revoked, expired or deleted";

/// Re-checks the credential a JWT was issued for, so that revoking a key, deleting a user
/// or changing a role takes effect at once rather than when the token expires. Returns
/// the actor with the role and scopes the credential has now.
pub async fn refresh_token_actor(db: &DatabaseConnection, claimed: Actor) -> ServiceResult<Actor> {
    let now = Utc::now();
    match claimed.subject.split_once(':') {
        Some(("api_key", id)) => {
            let key = api_key::Entity::find_by_id(id)
                .filter(api_key::Column::TenantId.eq(&claimed.tenant_id))
                .one(db)
                .await?
                .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|at| at > now))
                .ok_or_else(|| ServiceError::Unauthorized(GONE.into()))?;
            let names: Vec<String> = serde_json::from_value(key.scopes.clone()).unwrap_or_default();
            Ok(Actor {
                role: key.role,
                scopes: Scopes::parse(&names).unwrap_or(Scopes::Only(Vec::new())),
                expires_at: key.expires_at,
                ..claimed
            })
        }
        Some(("user", id)) => {
            let user = user::Entity::find_by_id(id)
                .filter(user::Column::TenantId.eq(&claimed.tenant_id))
                .one(db)
                .await?
                .ok_or_else(|| ServiceError::Unauthorized(GONE.into()))?;
            Ok(Actor {
                role: user.role,
                ..claimed
            })
        }
        _ => Err(ServiceError::Unauthorized(GONE.into())),
    }
}
