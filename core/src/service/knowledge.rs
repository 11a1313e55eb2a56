//! The knowledge base of an account: FAQ pairs the customer-service bot answers from, and
//! documents it grounds model answers in (stored as their chunks). Entries are created one
//! by one or imported in bulk (JSON lines or CSV of FAQ pairs, Markdown documents).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, ModelTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_entity::knowledge_entry;
use wxpilot_kb::chunk::ChunkConfig;

use super::audit::{self, Action};
use super::metrics::{RowError, UploadReport};
use super::{Actor, Page, PageRequest, accounts, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::{is_id, new_id};
use crate::validate::Checks;

const RESOURCE: &str = "knowledge_entry";
const MAX_QUESTION: usize = 1_000;
const MAX_ANSWER: usize = 20_000;
const MAX_ALTERNATIVES: usize = 50;
const MAX_TITLE: usize = 200;
/// Longest document accepted, in characters (a few hundred chunks).
const MAX_DOCUMENT: usize = 200_000;
/// Most FAQ pairs in one import.
pub const MAX_IMPORT_ROWS: usize = 5_000;
/// Entry kinds.
const FAQ: &str = "faq";
const DOCUMENT: &str = "document";

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

/// Changes to an entry; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeUpdate {
    /// The question (a chunk's title).
    pub question: Option<String>,
    /// The answer (a chunk's text).
    pub answer: Option<String>,
    /// Other phrasings of the question (FAQ pairs only).
    pub alternatives: Option<Vec<String>>,
}

/// A document for the knowledge base: plain text or Markdown, split into chunks of about
/// 400 characters along its sections, paragraphs and sentences.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    /// Title, 1–200 characters.
    #[schema(example = "售后政策")]
    pub title: String,
    /// The text, 1–200,000 characters; Markdown headings become the chunks' heading paths.
    #[schema(example = "## 退货\n签收后七天内可以申请退货。")]
    pub text: String,
}

/// A stored document: its id and its chunks.
#[derive(Debug, Serialize, ToSchema)]
pub struct Document {
    /// Document id (the chunks' `document_id`).
    pub document_id: String,
    /// Title.
    pub title: String,
    /// The chunks, in order.
    pub chunks: Vec<KnowledgeEntry>,
}

/// A stored FAQ pair or document chunk.
#[derive(Debug, Serialize, ToSchema)]
pub struct KnowledgeEntry {
    /// Id.
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// `faq`, or `document` for a document's chunk.
    pub kind: String,
    /// The question, or the document's title.
    pub question: String,
    /// The answer, or the chunk's text.
    pub answer: String,
    /// Other phrasings of the question.
    pub alternatives: Vec<String>,
    /// The document of a chunk.
    pub document_id: Option<String>,
    /// A chunk's Markdown heading path (`售后 > 退货`).
    pub heading: Option<String>,
    /// A chunk's place in its document, from 0.
    pub ordinal: Option<i32>,
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
            document_id: m.document_id,
            heading: m.heading,
            ordinal: m.ordinal,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Another tenant's account answers exactly like a missing one.
pub async fn require_account<C: ConnectionTrait>(
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

fn check_alternatives(checks: &mut Checks, alternatives: &[String]) {
    checks.check(
        alternatives.len() <= MAX_ALTERNATIVES,
        "alternatives",
        format!("at most {MAX_ALTERNATIVES} alternatives"),
    );
    for (i, alt) in alternatives.iter().enumerate().take(MAX_ALTERNATIVES) {
        checks.text(&format!("alternatives[{i}]"), alt, 1, MAX_QUESTION);
    }
}

fn check_entry(input: &NewKnowledgeEntry) -> Checks {
    let mut checks = Checks::new();
    checks.text("question", &input.question, 1, MAX_QUESTION);
    checks.text("answer", &input.answer, 1, MAX_ANSWER);
    check_alternatives(&mut checks, &input.alternatives);
    checks
}

/// A new row: an FAQ pair, or a chunk when `chunk` names its document, heading and place.
fn new_row(
    actor: &Actor,
    account_id: &str,
    input: NewKnowledgeEntry,
    chunk: Option<(&str, Option<String>, i32)>,
) -> knowledge_entry::ActiveModel {
    let now = Utc::now();
    let (kind, document_id, heading, ordinal) = match chunk {
        Some((document, heading, ordinal)) => {
            (DOCUMENT, Some(document.to_owned()), heading, Some(ordinal))
        }
        None => (FAQ, None, None, None),
    };
    knowledge_entry::ActiveModel {
        id: Set(new_id()),
        tenant_id: Set(actor.tenant_id.clone()),
        account_id: Set(account_id.to_owned()),
        kind: Set(kind.into()),
        question: Set(input.question),
        answer: Set(input.answer),
        alternatives: Set(json!(input.alternatives)),
        document_id: Set(document_id),
        heading: Set(heading),
        ordinal: Set(ordinal),
        embedding: Set(None),
        embedding_model: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Adds an FAQ pair to one of the tenant's accounts.
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    input: NewKnowledgeEntry,
) -> ServiceResult<KnowledgeEntry> {
    let checks = check_entry(&input);
    let txn = crate::db::begin_write(db).await?;
    require_account(&txn, actor, account_id).await?;
    checks.finish()?;
    let saved = new_row(actor, account_id, input, None).insert(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Create,
        RESOURCE,
        &saved.id,
        json!({"account_id": account_id, "question": saved.question}),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// Changes an entry's question, answer or alternatives (a chunk's title and text).
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    id: &str,
    input: KnowledgeUpdate,
) -> ServiceResult<KnowledgeEntry> {
    let mut checks = Checks::new();
    if let Some(q) = &input.question {
        checks.text("question", q, 1, MAX_QUESTION);
    }
    if let Some(a) = &input.answer {
        checks.text("answer", a, 1, MAX_ANSWER);
    }
    if let Some(alternatives) = &input.alternatives {
        check_alternatives(&mut checks, alternatives);
    }
    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, account_id, id).await?;
    checks.check(
        input.alternatives.is_none() || current.kind == FAQ,
        "alternatives",
        "only FAQ pairs have alternatives",
    );
    checks.finish()?;
    let mut row: knowledge_entry::ActiveModel = current.into();
    let mut changed = Vec::new();
    if let Some(q) = input.question {
        row.question = Set(q);
        changed.push("question");
    }
    if let Some(a) = input.answer {
        row.answer = Set(a);
        changed.push("answer");
    }
    if let Some(alternatives) = input.alternatives {
        row.alternatives = Set(json!(alternatives));
        changed.push("alternatives");
    }
    // The old vector no longer describes the text: the next embedding job makes a new one.
    row.embedding = Set(None);
    row.embedding_model = Set(None);
    row.updated_at = Set(edit_time(&txn, actor, account_id).await?);
    let saved = row.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Update,
        RESOURCE,
        id,
        json!({"account_id": account_id, "changed": changed}),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// The `updated_at` of an edit: now, or just after the account's latest change when a
/// replica's clock is behind, so that the knowledge fingerprint every replica caches by
/// (count, largest id, latest change) always moves.
async fn edit_time<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
) -> ServiceResult<DateTime<Utc>> {
    let latest: Option<Option<DateTime<Utc>>> = knowledge_entry::Entity::find()
        .select_only()
        .column_as(knowledge_entry::Column::UpdatedAt.max(), "u")
        .filter(knowledge_entry::Column::TenantId.eq(&actor.tenant_id))
        .filter(knowledge_entry::Column::AccountId.eq(account_id))
        .into_tuple()
        .one(conn)
        .await?;
    let now = Utc::now();
    Ok(match latest.flatten() {
        Some(latest) if latest >= now => latest + chrono::Duration::milliseconds(1),
        _ => now,
    })
}

/// Chunks a document and stores its chunks as entries of kind `document`.
pub async fn create_document(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    input: NewDocument,
) -> ServiceResult<Document> {
    let mut checks = Checks::new();
    checks.text("title", &input.title, 1, MAX_TITLE);
    checks.text("text", &input.text, 1, MAX_DOCUMENT);
    let chunks = wxpilot_kb::chunk::chunk_document(&input.text, &ChunkConfig::default());
    checks.check(!chunks.is_empty(), "text", "has no text to store");
    let txn = crate::db::begin_write(db).await?;
    require_account(&txn, actor, account_id).await?;
    checks.finish()?;
    let document_id = new_id();
    let mut stored = Vec::with_capacity(chunks.len());
    for (ordinal, chunk) in chunks.into_iter().enumerate() {
        let entry = NewKnowledgeEntry {
            question: input.title.clone(),
            answer: chunk.text,
            alternatives: Vec::new(),
        };
        let place = i32::try_from(ordinal).unwrap_or(i32::MAX);
        let row = new_row(
            actor,
            account_id,
            entry,
            Some((&document_id, chunk.heading, place)),
        );
        stored.push(row.insert(&txn).await?.into());
    }
    audit::record(
        &txn,
        actor,
        Action::Create,
        "knowledge_document",
        &document_id,
        json!({"account_id": account_id, "title": input.title, "chunks": stored.len()}),
    )
    .await?;
    txn.commit().await?;
    Ok(Document {
        document_id,
        title: input.title,
        chunks: stored,
    })
}

/// Deletes a document's chunks; how many there were.
pub async fn delete_document(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    document_id: &str,
) -> ServiceResult<u64> {
    let txn = crate::db::begin_write(db).await?;
    require_account(&txn, actor, account_id).await?;
    if !is_id(document_id) {
        return Err(ServiceError::NotFound("knowledge document"));
    }
    let removed = knowledge_entry::Entity::delete_many()
        .filter(knowledge_entry::Column::TenantId.eq(&actor.tenant_id))
        .filter(knowledge_entry::Column::AccountId.eq(account_id))
        .filter(knowledge_entry::Column::DocumentId.eq(document_id))
        .exec(&txn)
        .await?
        .rows_affected;
    if removed == 0 {
        return Err(ServiceError::NotFound("knowledge document"));
    }
    audit::record(
        &txn,
        actor,
        Action::Delete,
        "knowledge_document",
        document_id,
        json!({"account_id": account_id, "chunks": removed}),
    )
    .await?;
    txn.commit().await?;
    Ok(removed)
}

/// One parsed row of an import: its number as sent, and the entry or why it is unusable.
pub type ImportRow = Result<(usize, NewKnowledgeEntry), RowError>;

/// Stores the valid FAQ pairs of an import and reports the others by row; nothing is
/// stored when the account is not the tenant's. A pair whose question the account has
/// already (as an FAQ) replaces that entry's answer and alternatives, so importing an
/// edited file again updates instead of duplicating.
pub async fn import(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    rows: Vec<ImportRow>,
) -> ServiceResult<UploadReport> {
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(ServiceError::field(
            "body",
            format!("at most {MAX_IMPORT_ROWS} entries per import"),
        ));
    }
    let txn = crate::db::begin_write(db).await?;
    require_account(&txn, actor, account_id).await?;
    let mut existing: std::collections::HashMap<String, knowledge_entry::Model> =
        knowledge_entry::Entity::find()
            .filter(knowledge_entry::Column::TenantId.eq(&actor.tenant_id))
            .filter(knowledge_entry::Column::AccountId.eq(account_id))
            .filter(knowledge_entry::Column::Kind.eq(FAQ))
            .order_by_desc(knowledge_entry::Column::Id)
            .all(&txn)
            .await?
            .into_iter()
            // Newest first, so the oldest entry of a question asked twice is the one kept.
            .map(|m| (m.question.clone(), m))
            .collect();
    let now = edit_time(&txn, actor, account_id).await?;
    let mut stored = 0;
    let mut rejected = Vec::new();
    for row in rows {
        let (number, entry) = match row {
            Ok(numbered) => numbered,
            Err(e) => {
                rejected.push(e);
                continue;
            }
        };
        if let Err(ServiceError::Validation(fields)) = check_entry(&entry).finish() {
            rejected.push(RowError {
                row: number,
                message: fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
            continue;
        }
        match existing.remove(&entry.question) {
            Some(current) => {
                let mut row: knowledge_entry::ActiveModel = current.into();
                row.answer = Set(entry.answer);
                row.alternatives = Set(json!(entry.alternatives));
                row.embedding = Set(None);
                row.embedding_model = Set(None);
                row.updated_at = Set(now);
                let saved = row.update(&txn).await?;
                existing.insert(saved.question.clone(), saved);
            }
            None => {
                let saved = new_row(actor, account_id, entry, None).insert(&txn).await?;
                existing.insert(saved.question.clone(), saved);
            }
        }
        stored += 1;
    }
    audit::record(
        &txn,
        actor,
        Action::Create,
        RESOURCE,
        account_id,
        json!({"account_id": account_id, "imported": stored, "rejected": rejected.len()}),
    )
    .await?;
    txn.commit().await?;
    Ok(UploadReport { stored, rejected })
}

/// The job kind that embeds an account's knowledge entries.
pub const EMBED_JOB_KIND: &str = "embed_knowledge";

/// What the `embed_knowledge` job is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// Re-embed every entry, not only those without a vector of the configured model.
    #[serde(default)]
    pub force: bool,
}

/// The `embed_knowledge` job's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedJob {
    /// The account.
    pub account_id: String,
    /// Re-embed everything.
    #[serde(default)]
    pub force: bool,
}

/// The text an entry is embedded from, and whether it is embedded as a question (FAQ
/// questions are matched question to question) rather than as a passage.
pub fn embedding_text(entry: &knowledge_entry::Model) -> (String, bool) {
    if entry.kind == FAQ {
        let alternatives: Vec<String> =
            serde_json::from_value(entry.alternatives.clone()).unwrap_or_default();
        let mut text = entry.question.clone();
        for alt in alternatives {
            text.push('\n');
            text.push_str(&alt);
        }
        (text, true)
    } else {
        let mut text = entry.question.clone();
        if let Some(heading) = &entry.heading {
            text.push('\n');
            text.push_str(heading);
        }
        text.push('\n');
        text.push_str(&entry.answer);
        (text, false)
    }
}

/// The account's entries without a vector of `model` (every entry with `force`), oldest
/// first.
pub async fn entries_to_embed<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    model: &str,
    force: bool,
) -> ServiceResult<Vec<knowledge_entry::Model>> {
    let mut query = knowledge_entry::Entity::find()
        .filter(knowledge_entry::Column::TenantId.eq(tenant_id))
        .filter(knowledge_entry::Column::AccountId.eq(account_id));
    if !force {
        query = query.filter(
            sea_orm::Condition::any()
                .add(knowledge_entry::Column::EmbeddingModel.is_null())
                .add(knowledge_entry::Column::EmbeddingModel.ne(model)),
        );
    }
    Ok(query
        .order_by_asc(knowledge_entry::Column::Id)
        .all(conn)
        .await?)
}

/// Stores a batch of entries' vectors, each unless its text changed since it was read (its
/// `updated_at` then): a vector of the old text would be wrong. One transaction and one new
/// `updated_at` for the batch, so every replica's cached index picks the vectors up with
/// one rebuild per batch, not per entry. How many were stored.
pub async fn save_embeddings(
    db: &DatabaseConnection,
    tenant_id: &str,
    account_id: &str,
    model: &str,
    batch: &[(&knowledge_entry::Model, &[f32])],
) -> ServiceResult<usize> {
    let actor = Actor::system(tenant_id);
    let txn = crate::db::begin_write(db).await?;
    let now = edit_time(&txn, &actor, account_id).await?;
    let mut saved = 0;
    for (entry, vector) in batch {
        let rows = knowledge_entry::Entity::update_many()
            .col_expr(
                knowledge_entry::Column::Embedding,
                sea_orm::sea_query::Expr::value(json!(vector)),
            )
            .col_expr(
                knowledge_entry::Column::EmbeddingModel,
                sea_orm::sea_query::Expr::value(model.to_owned()),
            )
            .col_expr(
                knowledge_entry::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(knowledge_entry::Column::TenantId.eq(tenant_id))
            .filter(knowledge_entry::Column::AccountId.eq(account_id))
            .filter(knowledge_entry::Column::Id.eq(&entry.id))
            .filter(knowledge_entry::Column::UpdatedAt.eq(entry.updated_at))
            .exec(&txn)
            .await?
            .rows_affected;
        saved += usize::from(rows == 1);
    }
    txn.commit().await?;
    Ok(saved)
}

/// FAQ pairs from JSON lines, one [`NewKnowledgeEntry`] object per line (blank lines skipped;
/// rows are numbered by line).
pub fn parse_faq_lines(text: &str) -> Vec<ImportRow> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<NewKnowledgeEntry>(line)
                .map(|entry| (i + 1, entry))
                .map_err(|e| RowError {
                    row: i + 1,
                    message: format!("not a knowledge entry: {e}"),
                })
        })
        .collect()
}

/// FAQ pairs from CSV with the header `question,answer[,alternatives]` (alternatives
/// separated by `|`); fields may be quoted, with `""` for a quote and line breaks inside
/// quotes. Rows are numbered after the header. The error when the header is wrong.
pub fn parse_faq_csv(text: &str) -> Result<Vec<ImportRow>, String> {
    let records = csv_records(text.trim_start_matches('\u{FEFF}'))?;
    let mut records = records.into_iter();
    let header: Vec<String> = records
        .next()
        .unwrap_or_default()
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let alternatives_column = match header.as_slice() {
        [q, a] if q == "question" && a == "answer" => false,
        [q, a, alt] if q == "question" && a == "answer" && alt == "alternatives" => true,
        _ => {
            return Err("the first line must be the header question,answer[,alternatives]".into());
        }
    };
    Ok(records
        .enumerate()
        .filter(|(_, r)| r.iter().any(|f| !f.trim().is_empty()))
        .map(|(i, record)| {
            let row = i + 1;
            let expected = if alternatives_column { 3 } else { 2 };
            if record.len() != expected && !(alternatives_column && record.len() == 2) {
                return Err(RowError {
                    row,
                    message: format!("expected {expected} fields, found {}", record.len()),
                });
            }
            let alternatives = record
                .get(2)
                .map(|a| {
                    a.split('|')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Ok((
                row,
                NewKnowledgeEntry {
                    question: record[0].trim().to_owned(),
                    answer: record[1].trim().to_owned(),
                    alternatives,
                },
            ))
        })
        .collect())
}

/// The records of RFC 4180 CSV text; the error for an unterminated quote.
fn csv_records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes_commas_line_breaks_and_alternatives() {
        let text = "\u{FEFF}question,answer,alternatives\r\n\
            怎么退货,\"签收后七天内，在订单页申请。\n运费我们出。\",可以退吗|能退货吗\n\
            \"Do you ship \"\"abroad\"\"?\",\"Yes, to 30 countries.\"\n\
            \n\
            only one field\n";
        let rows = parse_faq_csv(text).unwrap();
        assert_eq!(rows.len(), 3);
        let (number, first) = rows[0].as_ref().unwrap();
        assert_eq!(*number, 1);
        assert_eq!(first.question, "怎么退货");
        assert_eq!(first.answer, "签收后七天内，在订单页申请。\n运费我们出。");
        assert_eq!(first.alternatives, ["可以退吗", "能退货吗"]);
        let (_, second) = rows[1].as_ref().unwrap();
        assert_eq!(second.question, "Do you ship \"abroad\"?");
        assert!(second.alternatives.is_empty());
        assert_eq!(rows[2].as_ref().unwrap_err().row, 4);
    }

    #[test]
    fn csv_needs_its_header_and_closed_quotes() {
        assert!(parse_faq_csv("q,a\nx,y\n").is_err());
        assert!(parse_faq_csv("").is_err());
        assert!(parse_faq_csv("question,answer\n\"open,y\n").is_err());
    }

    #[test]
    fn json_lines_are_numbered_by_line() {
        let rows = parse_faq_lines(
            "{\"question\":\"a\",\"answer\":\"b\"}\n\n{\"question\":1}\n{\"question\":\"c\",\"answer\":\"d\",\"alternatives\":[\"e\"]}",
        );
        assert_eq!(rows.len(), 3);
        assert!(rows[0].is_ok());
        assert_eq!(rows[1].as_ref().unwrap_err().row, 3);
        let (number, last) = rows[2].as_ref().unwrap();
        assert_eq!(*number, 4);
        assert_eq!(last.alternatives, ["e"]);
    }
}
