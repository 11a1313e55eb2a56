//! Users: people who sign in with email and password. Nobody grants or manages a role
//! above their own, and a tenant always keeps one owner.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_entity::{Role, api_key, user};

use super::audit::{self, Action, REDACTED};
use super::{Actor, Page, PageRequest, conflict_on_unique, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::new_id;
use crate::passwords;
use crate::validate::{self, Checks, is_email};

const RESOURCE: &str = "user";
const DUPLICATE: &str = "a user with this email already exists in this tenant";

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Email address; unique within the tenant, compared case-insensitively.
    #[schema(example = "li.lei@agency.cn")]
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// 10–256 characters. Write-only.
    #[schema(value_type = String, write_only, min_length = 10)]
    pub password: SecretString,
    /// Role; not above the creator's.
    pub role: Role,
}

/// Changes to a user.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// Display name.
    pub name: Option<String>,
    /// New password. Write-only.
    #[schema(value_type = Option<String>, write_only)]
    pub password: Option<SecretString>,
    /// New role.
    pub role: Option<Role>,
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<user::Model> for User {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            email: m.email,
            name: m.name,
            role: m.role,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

async fn hash_password(password: &SecretString) -> ServiceResult<String> {
    let password = password.expose_secret().to_owned();
    tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|e| ServiceError::Internal(e.into()))?
        .map_err(ServiceError::Internal)
}

/// Creates a user.
pub async fn create(db: &DatabaseConnection, actor: &Actor, input: NewUser) -> ServiceResult<User> {
    let email = input.email.trim().to_lowercase();
    let mut checks = Checks::new();
    checks.check(is_email(&email), "email", "must be an email address");
    checks.text("name", &input.name, 0, 200);
    validate::password(&mut checks, "password", input.password.expose_secret());
    checks.finish()?;
    actor.require_at_least(input.role)?;
    actor.require_all_scopes("create users")?;

    let password_hash = hash_password(&input.password).await?;
    let id = new_id();
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let saved = user::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(actor.tenant_id.clone()),
        email: Set(email.clone()),
        name: Set(input.name.clone()),
        password_hash: Set(password_hash),
        role: Set(input.role),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| conflict_on_unique(e, DUPLICATE))?;
    audit::record(
        &txn,
        actor,
        Action::Create,
        RESOURCE,
        &id,
        json!({"email": email, "name": input.name, "role": input.role, "password": REDACTED}),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

async fn find_model<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<user::Model> {
    super::find_owned::<user::Entity, _>(conn, actor, id).await
}

/// One user.
pub async fn get<C: ConnectionTrait>(conn: &C, actor: &Actor, id: &str) -> ServiceResult<User> {
    find_model(conn, actor, id).await.map(Into::into)
}

/// The tenant's users, oldest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    page: &PageRequest,
) -> ServiceResult<Page<User>> {
    let query = user::Entity::find().filter(user::Column::TenantId.eq(&actor.tenant_id));
    let (rows, limit) = fetch_page(conn, query, user::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, User::from))
}

/// An owner credential about to be removed or demoted.
pub(crate) enum OwnerChange<'a> {
    /// A user losing the owner role or being deleted.
    User(&'a str),
    /// An owner API key being revoked.
    Key(&'a str),
}

/// Fails with 409 when the change would leave the tenant with no owner credential (an
/// owner user or a live owner API key). Locks the tenant first on Postgres, so two
/// owners demoting each other at once cannot both succeed.
pub(crate) async fn keep_an_owner(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    change: OwnerChange<'_>,
    role: Role,
) -> ServiceResult<()> {
    if role != Role::Owner {
        return Ok(());
    }
    crate::db::lock_tenant(txn, tenant_id).await?;
    let mut users = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant_id))
        .filter(user::Column::Role.eq(Role::Owner));
    let mut keys = api_key::Entity::find()
        .filter(api_key::Column::TenantId.eq(tenant_id))
        .filter(api_key::Column::Role.eq(Role::Owner))
        .filter(api_key::Column::RevokedAt.is_null())
        .filter(
            sea_orm::Condition::any()
                .add(api_key::Column::ExpiresAt.is_null())
                .add(api_key::Column::ExpiresAt.gt(Utc::now())),
        );
    match change {
        OwnerChange::User(id) => users = users.filter(user::Column::Id.ne(id)),
        OwnerChange::Key(id) => keys = keys.filter(api_key::Column::Id.ne(id)),
    }
    if users.count(txn).await? + keys.count(txn).await? == 0 {
        return Err(ServiceError::Conflict(
            "this is the tenant's last owner (user or API key); make another owner first".into(),
        ));
    }
    Ok(())
}

/// Applies `patch` to a user.
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: &str,
    patch: UserPatch,
) -> ServiceResult<User> {
    let mut checks = Checks::new();
    if let Some(v) = &patch.name {
        checks.text("name", v, 0, 200);
    }
    if let Some(v) = &patch.password {
        validate::password(&mut checks, "password", v.expose_secret());
    }
    checks.finish()?;
    actor.require_all_scopes("change users")?;
    let new_hash = match &patch.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };

    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    actor.require_at_least(current.role)?;
    let mut changes = serde_json::Map::new();
    let mut model: user::ActiveModel = current.clone().into();
    if let Some(role) = patch.role {
        actor.require_at_least(role)?;
        if role != Role::Owner {
            keep_an_owner(
                &txn,
                &actor.tenant_id,
                OwnerChange::User(&current.id),
                current.role,
            )
            .await?;
        }
        changes.insert("role".into(), json!(role));
        model.role = Set(role);
    }
    if let Some(v) = patch.name {
        changes.insert("name".into(), json!(v));
        model.name = Set(v);
    }
    if let Some(hash) = new_hash {
        changes.insert("password".into(), json!(REDACTED));
        model.password_hash = Set(hash);
    }
    if changes.is_empty() {
        txn.commit().await?;
        return Ok(current.into());
    }
    model.updated_at = Set(Utc::now());
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

/// Deletes a user.
pub async fn delete(db: &DatabaseConnection, actor: &Actor, id: &str) -> ServiceResult<()> {
    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    actor.require_at_least(current.role)?;
    keep_an_owner(
        &txn,
        &actor.tenant_id,
        OwnerChange::User(&current.id),
        current.role,
    )
    .await?;
    super::delete_owned::<user::Entity, _>(&txn, actor, &current.id).await?;
    audit::record(
        &txn,
        actor,
        Action::Delete,
        RESOURCE,
        &current.id,
        json!({"email": current.email}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
