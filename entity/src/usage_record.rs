//! One line of the usage ledger: what a tenant consumed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// The job that consumed it; unique per (job, metric), so a replayed job counts once.
    pub job_id: Option<String>,
    /// `jobs.<kind>`, `llm.prompt_tokens`, `llm.completion_tokens`.
    pub metric: String,
    pub quantity: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
