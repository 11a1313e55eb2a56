//! Publishing one content to WeChat, step by step (see the migration for the states).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "publications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub content_id: String,
    pub version: i32,
    pub job_id: String,
    /// `uploading`, `drafted`, `submitting`, `submitted`, `published` or `failed`.
    pub status: String,
    pub thumb_media_id: Option<String>,
    /// JSON object: original image URL to WeChat image URL.
    pub images: Json,
    pub draft_media_id: Option<String>,
    pub publish_id: Option<String>,
    pub article_id: Option<String>,
    pub article_url: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
