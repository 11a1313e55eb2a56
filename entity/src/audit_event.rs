//! One entry of the audit log: who changed what, and when. Secret values never reach it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// `user:<id>`, `api_key:<id>` or `cli`.
    pub actor: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// JSON object of the fields set; secrets appear as `"[redacted]"`.
    pub changes: Json,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
