//! The audit log: who changed what. Written in the same transaction as the change.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use utoipa::ToSchema;
use wxpilot_entity::audit_event;

use super::{Actor, Page, PageRequest, fetch_page};
use crate::error::ServiceResult;
use crate::ids::new_id;

/// Stands in for a secret value in an audit entry.
pub const REDACTED: &str = "[redacted]";

/// What kind of change an entry records.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Something was created.
    Create,
    /// Something was changed.
    Update,
    /// Something was deleted or revoked.
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// Records one change. `changes` must already have secrets replaced by [`REDACTED`].
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    action: Action,
    resource_type: &str,
    resource_id: &str,
    changes: serde_json::Value,
) -> ServiceResult<()> {
    audit_event::ActiveModel {
        id: Set(new_id()),
        tenant_id: Set(actor.tenant_id.clone()),
        actor: Set(actor.subject.clone()),
        action: Set(action.as_str().to_owned()),
        resource_type: Set(resource_type.to_owned()),
        resource_id: Set(resource_id.to_owned()),
        changes: Set(changes),
        request_id: Set(actor.request_id.clone()),
        created_at: Set(Utc::now()),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// An audit entry as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Entry id.
    pub id: String,
    /// `user:<id>`, `api_key:<id>` or `cli`.
    pub actor: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    /// `official_account`, `campaign`, `user`, `api_key`, `tenant`.
    pub resource_type: String,
    /// Id of the object changed.
    pub resource_id: String,
    /// The fields set; secrets appear as `[redacted]`.
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
    /// The request that made the change.
    pub request_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<audit_event::Model> for AuditEvent {
    fn from(m: audit_event::Model) -> Self {
        Self {
            id: m.id,
            actor: m.actor,
            action: m.action,
            resource_type: m.resource_type,
            resource_id: m.resource_id,
            changes: m.changes,
            request_id: m.request_id,
            created_at: m.created_at,
        }
    }
}

/// Lists the tenant's audit entries, oldest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    page: &PageRequest,
) -> ServiceResult<Page<AuditEvent>> {
    let query =
        audit_event::Entity::find().filter(audit_event::Column::TenantId.eq(&actor.tenant_id));
    let (rows, limit) = fetch_page(conn, query, audit_event::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, AuditEvent::from))
}
