//! One version of a content's text; versions are never changed, edits add one.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "content_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub content_id: String,
    pub version: i32,
    /// `{title, author, digest, html}` for articles, `{text}` otherwise.
    pub body: Json,
    /// A user id, an API key id, or `job:<id>` for generated versions.
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
