//! A marketing campaign run on one official account.

use sea_orm::entity::prelude::*;

use crate::CampaignStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub name: String,
    pub brief: String,
    pub audience: String,
    /// JSON array of goal strings.
    pub goals: Json,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
    pub status: CampaignStatus,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
