//! A segment: followers selected by affinity to items or a topic, and the WeChat tag they
//! were given. The id is that of the job that builds it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "segments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub name: String,
    pub tag_name: String,
    /// The request: items or topic, and the cutoff.
    pub definition: Json,
    /// `queued`, `running`, `succeeded`, `failed`.
    pub status: String,
    pub wechat_tag_id: Option<i64>,
    pub member_count: i32,
    /// JSON array of `{openid, affinity}`, highest first.
    pub members: Option<Json>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
