//! A generated content (article, Moments copy or menu reply) under review.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "contents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: Option<String>,
    pub campaign_id: String,
    /// `article`, `moments` or `menu_reply`.
    pub kind: String,
    /// `draft`, `approved`, `published`, `rejected` or `needs_review`.
    pub state: String,
    /// The number of the newest row in `content_versions`.
    pub current_version: i32,
    /// The compliance report of the current version (JSON).
    pub compliance_report: Json,
    pub generation_job_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
