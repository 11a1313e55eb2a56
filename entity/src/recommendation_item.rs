//! Something an account recommends to its followers (an article, a product), known by the
//! caller's own id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "recommendation_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    /// The caller's id of the item, unique per account.
    pub external_id: String,
    pub title: String,
    /// Text the embedding is computed from (digest or body).
    pub body: String,
    /// JSON array of floats: the text embedding, when computed.
    pub embedding: Option<Json>,
    /// JSON array of `{item, score, basis}` from the last recommend run.
    pub similar: Option<Json>,
    /// `article` or `product`.
    pub item_kind: String,
    /// JSON array of strings.
    pub tags: Option<Json>,
    pub url: Option<String>,
    pub published_at: Option<DateTimeUtc>,
    /// The model `embedding` came from.
    pub embedding_model: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
