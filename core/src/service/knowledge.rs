//! The knowledge base of an account: FAQ pairs the customer-service bot answers from.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, ModelTrait,
    QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_entity::knowledge_entry;

use super::audit::{self, Action};
use super::{Actor, Page, PageRequest, accounts, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::{is_id, new_id};
use crate::validate::Checks;

const RESOURCE: &str = "knowledge_entry";
const MAX_QUESTION: usize = 1_000;
const MAX_ANSWER: usize = 20_000;
const MAX_ALTERNATIVES: usize = 50;

/// A new FAQ pair.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKnowledgeEntry {
    /// The canonical question, 1–1,000 characters.
    #[schema(example = "怎么退货")]
    pub question: String,
    /// The answer sent as it is, 1–20,000 characters.
    #[schema(example = "签收后七天内在订单页申请售后。")]
    pub answer: String,
    /// Up to 50 other ways followers ask the same thing.
    #[serde(default)]
    pub alternatives: Vec<String>,
}

/// A stored FAQ pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct KnowledgeEntry {
    /// Id.
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// `faq`.
    pub kind: String,
    /// The question.
    pub question: String,
    /// The answer.
    pub answer: String,
    /// Other phrasings of the question.
    pub alternatives: Vec<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<knowledge_entry::Model> for KnowledgeEntry {
    fn from(m: knowledge_entry::Model) -> Self {
        Self {
            alternatives: serde_json::from_value(m.alternatives).unwrap_or_default(),
            id: m.id,
            account_id: m.account_id,
            kind: m.kind,
            question: m.question,
            answer: m.answer,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Another tenant's account answers exactly like a missing one.
async fn require_account<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
) -> ServiceResult<()> {
    if accounts::exists(conn, actor, account_id).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("official account"))
    }
}

/// Adds an FAQ pair to one of the tenant's accounts.
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    input: NewKnowledgeEntry,
) -> ServiceResult<KnowledgeEntry> {
    let mut checks = Checks::new();
    checks.text("question", &input.question, 1, MAX_QUESTION);
    checks.text("answer", &input.answer, 1, MAX_ANSWER);
    checks.check(
        input.alternatives.len() <= MAX_ALTERNATIVES,
        "alternatives",
        format!("at most {MAX_ALTERNATIVES} alternatives"),
    );
    for (i, alt) in input.alternatives.iter().enumerate().take(MAX_ALTERNATIVES) {
        checks.text(&format!("alternatives[{i}]"), alt, 1, MAX_QUESTION);
    }
    let txn = crate::db::begin_write(db).await?;
    require_account(&txn, actor, account_id).await?;
    checks.finish()?;
    let id = new_id();
    let now = Utc::now();
    let saved = knowledge_entry::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(actor.tenant_id.clone()),
        account_id: Set(account_id.to_owned()),
        kind: Set("faq".into()),
        question: Set(input.question.clone()),
        answer: Set(input.answer),
        alternatives: Set(json!(input.alternatives)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        Action::Create,
        RESOURCE,
        &id,
        json!({"account_id": account_id, "question": input.question}),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

async fn find_model<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    id: &str,
) -> ServiceResult<knowledge_entry::Model> {
    require_account(conn, actor, account_id).await?;
    if !is_id(id) {
        return Err(ServiceError::NotFound(RESOURCE));
    }
    knowledge_entry::Entity::find()
        .filter(knowledge_entry::Column::TenantId.eq(&actor.tenant_id))
        .filter(knowledge_entry::Column::AccountId.eq(account_id))
        .filter(knowledge_entry::Column::Id.eq(id))
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound(RESOURCE))
}

/// One entry.
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    id: &str,
) -> ServiceResult<KnowledgeEntry> {
    find_model(conn, actor, account_id, id)
        .await
        .map(Into::into)
}

/// The account's entries, oldest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    page: &PageRequest,
) -> ServiceResult<Page<KnowledgeEntry>> {
    require_account(conn, actor, account_id).await?;
    let query = knowledge_entry::Entity::find()
        .filter(knowledge_entry::Column::TenantId.eq(&actor.tenant_id))
        .filter(knowledge_entry::Column::AccountId.eq(account_id));
    let (rows, limit) = fetch_page(conn, query, knowledge_entry::Column::Id, page).await?;
    Ok(Page::from_rows(
        rows,
        limit,
        |m| &m.id,
        KnowledgeEntry::from,
    ))
}

/// Deletes an entry.
pub async fn delete(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    id: &str,
) -> ServiceResult<()> {
    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, account_id, id).await?;
    let question = current.question.clone();
    current.delete(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Delete,
        RESOURCE,
        id,
        json!({"account_id": account_id, "question": question}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
