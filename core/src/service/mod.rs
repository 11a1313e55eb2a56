//! Domain services. Every function takes the [`Actor`] it acts for and scopes every
//! query by the actor's tenant: there is no way to reach another tenant's rows from here.
//! Writes and their audit entries commit in one transaction.

pub mod access;
pub mod accounts;
pub mod answers;
pub mod api_keys;
pub mod audit;
pub mod campaigns;
pub mod contents;
pub mod conversations;
pub mod forecasts;
pub mod jobs;
pub mod keyword_rules;
pub mod knowledge;
pub mod login;
pub mod metrics;
pub mod publications;
pub mod recommendations;
pub mod rotation;
pub mod tenants;
pub mod usage;
pub mod users;
pub mod webhooks;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wxpilot_entity::Role;

pub use access::{Access, Area, Scopes};

use crate::error::{ServiceError, ServiceResult};

/// Who is acting, in which tenant, with which rights. Built by the api from a verified
/// credential, or by the CLI for administrative commands.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The tenant every query is scoped to.
    pub tenant_id: String,
    /// `user:<id>`, `api_key:<id>` or `cli`, as recorded in the audit log.
    pub subject: String,
    /// What the actor may do.
    pub role: Role,
    /// Which areas the credential covers.
    pub scopes: Scopes,
    /// The request this action belongs to, for the audit log.
    pub request_id: Option<String>,
    /// When the credential stops working (expiring API keys); what it creates may not outlive it.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Actor {
    /// The CLI acting as an owner of `tenant_id`.
    pub fn cli(tenant_id: &str) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            subject: "cli".into(),
            role: Role::Owner,
            scopes: Scopes::all(),
            request_id: None,
            expires_at: None,
        }
    }

    /// A background job acting for `tenant_id` (as an owner: it does what a person's
    /// request already authorised).
    pub fn system(tenant_id: &str) -> Self {
        Self {
            subject: "worker".into(),
            ..Self::cli(tenant_id)
        }
    }

    /// Fails with 403 unless the actor's role and scopes allow `access` to `area`.
    pub fn require(&self, area: Area, access: Access) -> ServiceResult<()> {
        access::check(self.role, &self.scopes, area, access)
    }

    /// Fails with 403 when `role` is above the actor's own: nobody hands out more than they hold.
    pub fn require_at_least(&self, role: Role) -> ServiceResult<()> {
        if role > self.role {
            return Err(ServiceError::Forbidden(format!(
                "the {} role cannot grant or manage the {} role",
                self.role.as_str(),
                role.as_str()
            )));
        }
        Ok(())
    }

    /// Fails with 403 unless the credential covers every area: users sign in with every
    /// scope, so a scoped credential managing users could widen its own reach.
    pub fn require_all_scopes(&self, what: &str) -> ServiceResult<()> {
        if self.scopes != Scopes::All {
            return Err(ServiceError::Forbidden(format!(
                "a credential limited to scopes cannot {what}"
            )));
        }
        Ok(())
    }
}

/// Default page size.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page size.
pub const MAX_LIMIT: u64 = 200;

/// `?limit=&cursor=` of a list request.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The limit and cursor, checked.
    pub fn checked(&self) -> ServiceResult<(u64, Option<&str>)> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT as i64);
        let Some(limit) = u64::try_from(limit)
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
        else {
            return Err(ServiceError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        };
        match self.cursor.as_deref() {
            Some(c) if !crate::ids::is_id(c) => Err(ServiceError::field(
                "cursor",
                "is not a cursor this API issued",
            )),
            cursor => Ok((limit, cursor)),
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only tells that more exist.
    pub fn from_rows<M>(
        mut rows: Vec<M>,
        limit: u64,
        id: impl Fn(&M) -> &str,
        view: impl Fn(M) -> T,
    ) -> Self {
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|m| id(m).to_owned())
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}

/// Fetches one page of `query` ordered by its id column: `limit + 1` rows after the cursor.
pub(crate) async fn fetch_page<E, C>(
    conn: &C,
    query: Select<E>,
    id: E::Column,
    page: &PageRequest,
) -> ServiceResult<(Vec<E::Model>, u64)>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let (limit, cursor) = page.checked()?;
    let mut query = query.order_by_asc(id).limit(limit + 1);
    if let Some(cursor) = cursor {
        query = query.filter(id.gt(cursor));
    }
    Ok((query.all(conn).await?, limit))
}

/// A table whose rows belong to one tenant each.
pub(crate) trait TenantOwned: EntityTrait {
    /// What a missing row is called in a 404.
    const NAME: &'static str;
    /// The `tenant_id` column.
    fn tenant_column() -> Self::Column;
    /// The `id` column.
    fn id_column() -> Self::Column;
}

macro_rules! tenant_owned {
    ($($module:ident => $name:literal),* $(,)?) => {
        $(impl TenantOwned for wxpilot_entity::$module::Entity {
            const NAME: &'static str = $name;
            fn tenant_column() -> Self::Column {
                wxpilot_entity::$module::Column::TenantId
            }
            fn id_column() -> Self::Column {
                wxpilot_entity::$module::Column::Id
            }
        })*
    };
}

tenant_owned!(
    official_account => "official account",
    campaign => "campaign",
    user => "user",
    api_key => "API key",
    job => "job",
    webhook_endpoint => "webhook",
);

/// The row `id` of the actor's tenant; a malformed id, a missing row and another
/// tenant's row are all the same 404.
pub(crate) async fn find_owned<E: TenantOwned, C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<E::Model> {
    if !crate::ids::is_id(id) {
        return Err(ServiceError::NotFound(E::NAME));
    }
    E::find()
        .filter(E::tenant_column().eq(actor.tenant_id.as_str()))
        .filter(E::id_column().eq(id))
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound(E::NAME))
}

/// Deletes the row `id` of the actor's tenant.
pub(crate) async fn delete_owned<E: TenantOwned, C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<()> {
    E::delete_many()
        .filter(E::tenant_column().eq(actor.tenant_id.as_str()))
        .filter(E::id_column().eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes the row `id` of the actor's tenant and records it in the audit log, in one
/// transaction; `summary` says what was deleted (never a secret).
pub(crate) async fn delete_audited<E: TenantOwned>(
    db: &sea_orm::DatabaseConnection,
    actor: &Actor,
    id: &str,
    resource_type: &str,
    summary: impl FnOnce(&E::Model) -> serde_json::Value,
) -> ServiceResult<()> {
    let txn = crate::db::begin_write(db).await?;
    let current = find_owned::<E, _>(&txn, actor, id).await?;
    delete_owned::<E, _>(&txn, actor, id).await?;
    audit::record(
        &txn,
        actor,
        audit::Action::Delete,
        resource_type,
        id,
        summary(&current),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Maps a unique-constraint violation to a 409 with `message`, other errors unchanged.
pub(crate) fn conflict_on_unique(err: DbErr, message: &str) -> ServiceError {
    match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            ServiceError::Conflict(message.to_owned())
        }
        _ => ServiceError::Database(err),
    }
}

/// Deserialises a field that may be absent (leave as is), `null` (clear) or a value (set).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
