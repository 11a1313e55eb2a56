//! A keyword rule of an account: a message that matches gets the rule's reply.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "keyword_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    /// `exact`, `contains` or `regex`.
    pub kind: String,
    pub pattern: String,
    pub reply: String,
    /// Higher wins when several rules match.
    pub priority: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
