//! A knowledge-base entry of an account: an FAQ pair or one chunk of a document.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "knowledge_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    /// `faq` or `document`.
    pub kind: String,
    /// The FAQ question, or the document title for a chunk.
    pub question: String,
    /// The FAQ answer, or the chunk text.
    pub answer: String,
    /// JSON array of alternative phrasings of the question.
    pub alternatives: Json,
    /// The document a chunk belongs to (`None` for FAQ pairs).
    pub document_id: Option<String>,
    /// The Markdown heading path of a chunk's section.
    pub heading: Option<String>,
    /// A chunk's place in its document, from 0.
    pub ordinal: Option<i32>,
    /// The entry's embedding (a JSON array of numbers), for hybrid retrieval.
    pub embedding: Option<Json>,
    /// The model that made `embedding`.
    pub embedding_model: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
