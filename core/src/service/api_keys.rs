//! API keys: created with a role and scopes, shown once, stored as a hash, revocable.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_entity::{Role, api_key};

use super::audit::{self, Action};
use super::users::OwnerChange;
use super::{Actor, Page, PageRequest, Scopes, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::new_id;
use crate::keys;
use crate::validate::Checks;

const RESOURCE: &str = "api_key";

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What the key is for, 1–200 characters.
    #[schema(example = "CI pipeline")]
    pub name: String,
    /// Role; not above the creator's. Default `viewer`.
    #[serde(default = "default_role")]
    pub role: Role,
    /// Areas the key covers: `*` (default) or any of `accounts`, `campaigns`, `users`, `api_keys`, `audit`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Optional expiry; must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

fn default_role() -> Role {
    Role::Viewer
}

fn default_scopes() -> Vec<String> {
    vec!["*".into()]
}

/// Changes to an API key. Revoking is permanent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyPatch {
    /// New name.
    pub name: Option<String>,
    /// `true` revokes the key; a revoked key cannot be restored.
    pub revoked: Option<bool>,
}

/// An API key as the API shows it: never the key itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    /// Key id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The first characters of the key.
    #[schema(example = "wxp_8fK2aQ1z")]
    pub prefix: String,
    /// Role.
    pub role: Role,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Who created it.
    pub created_by: String,
    /// When it was last used (to within a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<api_key::Model> for ApiKey {
    fn from(m: api_key::Model) -> Self {
        Self {
            scopes: serde_json::from_value(m.scopes).unwrap_or_default(),
            id: m.id,
            name: m.name,
            prefix: m.prefix,
            role: m.role,
            created_by: m.created_by,
            last_used_at: m.last_used_at,
            expires_at: m.expires_at,
            revoked_at: m.revoked_at,
            created_at: m.created_at,
        }
    }
}

/// A key just created: the record and, this once, the secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key's record.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The key itself. Shown only now; store it safely.
    #[schema(example = "wxp_8fK2aQ1zL0pX3mN7bV9cR4tY6uW1sD5e")]
    pub secret: String,
}

/// Creates a key for the actor's tenant.
pub async fn create<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    actor: &Actor,
    input: NewApiKey,
) -> ServiceResult<CreatedApiKey> {
    let mut checks = Checks::new();
    checks.name("name", &input.name, 200);
    let scopes = match Scopes::parse(&input.scopes) {
        Ok(s) => Some(s),
        Err(unknown) => {
            checks.fail("scopes", format!("unknown scope {unknown:?}"));
            None
        }
    };
    checks.check(
        !input.scopes.is_empty(),
        "scopes",
        "must list at least one scope",
    );
    if let Some(at) = input.expires_at {
        checks.check(at > Utc::now(), "expires_at", "must be in the future");
    }
    checks.finish()?;
    actor.require_at_least(input.role)?;
    let scopes = scopes.unwrap_or_else(Scopes::all);
    if !actor.scopes.contains(&scopes) {
        return Err(ServiceError::Forbidden(
            "a key cannot be given scopes its creator does not have".into(),
        ));
    }
    // A key made by an expiring key expires no later than its maker.
    let expires_at = match (input.expires_at, actor.expires_at) {
        (Some(asked), Some(limit)) if asked > limit => {
            return Err(ServiceError::field(
                "expires_at",
                format!("must not be after {limit}, when the creating key expires"),
            ));
        }
        (None, limit) => limit,
        (asked, _) => asked,
    };

    let generated = keys::generate();
    let id = new_id();
    let txn = crate::db::begin_write(db).await?;
    let saved = api_key::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(actor.tenant_id.clone()),
        name: Set(input.name.clone()),
        prefix: Set(generated.display_prefix.clone()),
        key_hash: Set(generated.hash),
        role: Set(input.role),
        scopes: Set(json!(scopes.names())),
        created_by: Set(actor.subject.clone()),
        last_used_at: Set(None),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        Action::Create,
        RESOURCE,
        &id,
        json!({"name": input.name, "role": input.role, "scopes": scopes.names(), "prefix": generated.display_prefix, "expires_at": expires_at}),
    )
    .await?;
    txn.commit().await?;
    Ok(CreatedApiKey {
        key: saved.into(),
        secret: generated.secret,
    })
}

async fn find_model<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<api_key::Model> {
    super::find_owned::<api_key::Entity, _>(conn, actor, id).await
}

/// One key.
pub async fn get<C: ConnectionTrait>(conn: &C, actor: &Actor, id: &str) -> ServiceResult<ApiKey> {
    find_model(conn, actor, id).await.map(Into::into)
}

/// The tenant's keys, revoked ones included, oldest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    page: &PageRequest,
) -> ServiceResult<Page<ApiKey>> {
    let query = api_key::Entity::find().filter(api_key::Column::TenantId.eq(&actor.tenant_id));
    let (rows, limit) = fetch_page(conn, query, api_key::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, ApiKey::from))
}

/// Renames or revokes a key.
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: &str,
    patch: ApiKeyPatch,
) -> ServiceResult<ApiKey> {
    let mut checks = Checks::new();
    if let Some(v) = &patch.name {
        checks.name("name", v, 200);
    }
    checks.check(
        patch.revoked != Some(false),
        "revoked",
        "a revoked key cannot be restored; create a new one",
    );
    checks.finish()?;

    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    actor.require_at_least(current.role)?;
    let mut changes = serde_json::Map::new();
    let mut model: api_key::ActiveModel = current.clone().into();
    if let Some(v) = patch.name {
        changes.insert("name".into(), json!(v));
        model.name = Set(v);
    }
    if patch.revoked == Some(true) && current.revoked_at.is_none() {
        super::users::keep_an_owner(
            &txn,
            &actor.tenant_id,
            OwnerChange::Key(&current.id),
            current.role,
        )
        .await?;
        changes.insert("revoked".into(), json!(true));
        model.revoked_at = Set(Some(Utc::now()));
    }
    if changes.is_empty() {
        txn.commit().await?;
        return Ok(current.into());
    }
    let saved = model.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Update,
        RESOURCE,
        &current.id,
        changes.into(),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// Revokes a key. The record stays, so the audit trail and `revoked_at` remain visible.
pub async fn revoke(db: &DatabaseConnection, actor: &Actor, id: &str) -> ServiceResult<()> {
    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    actor.require_at_least(current.role)?;
    if current.revoked_at.is_none() {
        super::users::keep_an_owner(
            &txn,
            &actor.tenant_id,
            OwnerChange::Key(&current.id),
            current.role,
        )
        .await?;
        let mut model: api_key::ActiveModel = current.clone().into();
        model.revoked_at = Set(Some(Utc::now()));
        model.update(&txn).await?;
        audit::record(
            &txn,
            actor,
            Action::Delete,
            RESOURCE,
            &current.id,
            json!({"revoked": true}),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}
