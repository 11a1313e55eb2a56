//! One follower's interaction with an item (a read, click, share, menu click …).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "interactions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub follower_openid: String,
    /// `recommendation_items.id`.
    pub item_id: String,
    /// `read`, `click`, `share`, `menu_click`, … (lower-case, digits and `_`).
    pub kind: String,
    /// Implicit-feedback strength (repeated interactions add up).
    pub strength: f64,
    /// The caller's event id: an upload with a known one is skipped.
    pub event_id: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
