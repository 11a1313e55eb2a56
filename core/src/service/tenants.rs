//! Tenants. Created by an operator with the CLI, together with a first owner API key.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_entity::{Role, tenant};

use super::api_keys::{self, CreatedApiKey, NewApiKey};
use super::audit::{self, Action};
use super::{Actor, conflict_on_unique};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::new_id;
use crate::validate::{Checks, is_slug};

/// A tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Short unique handle.
    pub slug: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<tenant::Model> for Tenant {
    fn from(m: tenant::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            slug: m.slug,
            created_at: m.created_at,
        }
    }
}

/// A slug made from a name: ASCII letters and digits kept, the rest turned into dashes.
/// Names with no ASCII letters (Chinese names) get a random slug.
pub fn slug_from_name(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(48).collect();
    if slug.len() >= 2 {
        slug
    } else {
        format!("t-{}", new_id().to_lowercase())
    }
}

/// Creates a tenant and an owner API key for it; returns both.
pub async fn create(
    db: &DatabaseConnection,
    name: &str,
    slug: Option<&str>,
) -> ServiceResult<(Tenant, CreatedApiKey)> {
    let slug = slug
        .map(str::to_owned)
        .unwrap_or_else(|| slug_from_name(name));
    let mut checks = Checks::new();
    checks.name("name", name, 200);
    checks.check(
        is_slug(&slug),
        "slug",
        "must be 2-63 lower-case letters, digits or dashes",
    );
    checks.finish()?;

    let id = new_id();
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let saved = tenant::ActiveModel {
        id: Set(id.clone()),
        name: Set(name.to_owned()),
        slug: Set(slug.clone()),
        monthly_token_budget: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| conflict_on_unique(e, "a tenant with this slug already exists"))?;
    let actor = Actor::cli(&id);
    audit::record(
        &txn,
        &actor,
        Action::Create,
        "tenant",
        &id,
        json!({"name": name, "slug": slug}),
    )
    .await?;
    let key = api_keys::create(
        &txn,
        &actor,
        NewApiKey {
            name: "owner key created with the tenant".into(),
            role: Role::Owner,
            scopes: vec!["*".into()],
            expires_at: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok((saved.into(), key))
}

/// Finds a tenant by id or slug.
pub async fn find<C: ConnectionTrait>(conn: &C, id_or_slug: &str) -> ServiceResult<Tenant> {
    tenant::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(tenant::Column::Id.eq(id_or_slug))
                .add(tenant::Column::Slug.eq(id_or_slug)),
        )
        .one(conn)
        .await?
        .map(Into::into)
        .ok_or(ServiceError::NotFound("tenant"))
}
