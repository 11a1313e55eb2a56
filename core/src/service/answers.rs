//! How the customer service answers a text message before any model runs: the account's
//! keyword rules, then its FAQ (jieba BM25 with a calibrated confidence); what is left goes
//! to the LLM grounded in the best passages. Shared by the WeChat callback (passive
//! answers inside WeChat's 5 seconds) and the `reply` job (the grounding).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use wxpilot_entity::{keyword_rule, knowledge_entry};
use wxpilot_kb::decision::{DecisionPolicy, ReplyDecision, decide};
use wxpilot_kb::knowledge::{
    DocumentChunk, EntryContent, FaqEntry, HybridConfig, KnowledgeEntry, KnowledgeIndex,
};
use wxpilot_kb::prompt::GroundingPassage;
use wxpilot_kb::rules::{MatchKind, RuleDefinition, RuleSet};

use crate::error::{ServiceError, ServiceResult};

/// Passages retrieved per question.
pub const TOP_K: usize = 5;

/// What to do with a follower's text.
#[derive(Debug, Clone, PartialEq)]
pub enum FastAnswer {
    /// A keyword rule matched: its reply.
    Rule(String),
    /// A confident FAQ match: its answer.
    Faq(String),
    /// Nothing confident: ask the model, grounded in these passages (maybe none).
    Llm(Vec<GroundingPassage>),
}

/// A follower's question embedded by the knowledge base's embedding model.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryEmbedding {
    /// The model (entries embedded by another model are not compared).
    pub model: String,
    /// The question's vector.
    pub vector: Vec<f32>,
}

/// The blend of lexical and semantic scores suited to `model`: E5-family cosines crowd
/// high, so their scale starts higher.
fn hybrid_config(model: &str) -> HybridConfig {
    if model.to_ascii_lowercase().contains("e5") {
        HybridConfig::e5_family()
    } else {
        HybridConfig::default()
    }
}

/// Rules first, then the FAQ, else the passages for the model. The FAQ is tried by BM25
/// first: a confident lexical match needs no vector and costs no model call. Otherwise
/// `embed` is asked for the question's vector and retrieval is hybrid over the entries its
/// model embedded (BM25 alone when it gives none, or vectors that do not fit).
pub async fn fast_answer<C, E, F>(
    db: &C,
    account_id: &str,
    content: &str,
    embed: E,
) -> ServiceResult<FastAnswer>
where
    C: ConnectionTrait,
    E: FnOnce() -> F,
    F: std::future::Future<Output = Option<QueryEmbedding>>,
{
    let rules = load_rules(db, account_id).await?;
    if let Some(rule) = rules.first_match(content) {
        return Ok(FastAnswer::Rule(rule.reply.clone()));
    }
    let fingerprint = knowledge_fingerprint(db, account_id).await?;
    let lexical = cached_index(db, account_id, None, &fingerprint).await?;
    let decision = answer_from(&lexical, content, None, &HybridConfig::default())?;
    if lexical.is_empty() || matches!(decision, FastAnswer::Faq(_)) {
        return Ok(decision);
    }
    let Some(query) = embed().await else {
        return Ok(decision);
    };
    let index = cached_index(db, account_id, Some(&query.model), &fingerprint).await?;
    if index.dimension() != Some(query.vector.len()) {
        return Ok(decision);
    }
    // A vector the index refuses (zero, not finite) leaves the lexical decision standing.
    Ok(answer_from(
        &index,
        content,
        Some(&query.vector),
        &hybrid_config(&query.model),
    )
    .unwrap_or(decision))
}

/// The decision on `content` over `index`.
fn answer_from(
    index: &KnowledgeIndex,
    content: &str,
    vector: Option<&[f32]>,
    config: &HybridConfig,
) -> ServiceResult<FastAnswer> {
    let hits = index
        .search(content, vector, TOP_K, config)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
    Ok(match decide(&hits, &DecisionPolicy::default()) {
        ReplyDecision::FaqAnswer { answer, .. } => FastAnswer::Faq(answer.to_owned()),
        ReplyDecision::Llm { grounding } => {
            FastAnswer::Llm(grounding.iter().map(GroundingPassage::from).collect())
        }
    })
}

/// The account's keyword rules, compiled.
async fn load_rules<C: ConnectionTrait>(db: &C, account_id: &str) -> ServiceResult<RuleSet> {
    let rows = keyword_rule::Entity::find()
        .filter(keyword_rule::Column::AccountId.eq(account_id))
        .order_by_asc(keyword_rule::Column::Id)
        .all(db)
        .await?;
    let definitions = rows.into_iter().filter_map(|r| {
        Some(RuleDefinition {
            kind: rule_kind(&r.kind)?,
            id: r.id,
            pattern: r.pattern,
            reply: r.reply,
            priority: r.priority,
        })
    });
    RuleSet::compile(definitions).map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))
}

/// The stored rule kind as the matcher's.
pub fn rule_kind(stored: &str) -> Option<MatchKind> {
    match stored {
        "exact" => Some(MatchKind::Exact),
        "contains" => Some(MatchKind::Contains),
        "regex" => Some(MatchKind::Regex),
        _ => None,
    }
}

/// What identifies the state of an account's knowledge base on any replica: ids grow with
/// time, so the count and the largest id move when entries are created or deleted, and
/// the latest `updated_at` when one is edited.
type KnowledgeFingerprint = (i64, Option<String>, Option<chrono::DateTime<chrono::Utc>>);

/// A built index and the fingerprint it was built at.
type CachedIndex = (KnowledgeFingerprint, Arc<KnowledgeIndex>);

/// An account and the embedding model whose vectors an index holds.
type IndexKey = (String, Option<String>);

/// Built indexes per account and embedding model, rebuilt when the fingerprint moves.
static KNOWLEDGE_CACHE: LazyLock<Mutex<HashMap<IndexKey, CachedIndex>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

async fn knowledge_fingerprint<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
) -> ServiceResult<KnowledgeFingerprint> {
    let row: Option<KnowledgeFingerprint> = knowledge_entry::Entity::find()
        .select_only()
        .column_as(knowledge_entry::Column::Id.count(), "n")
        .column_as(knowledge_entry::Column::Id.max(), "m")
        .column_as(knowledge_entry::Column::UpdatedAt.max(), "u")
        .filter(knowledge_entry::Column::AccountId.eq(account_id))
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.unwrap_or((0, None, None)))
}

/// The account's knowledge base (FAQ pairs and document chunks) as a BM25 index with the
/// vectors `model` made, from the in-process cache unless the entries changed since it was
/// built.
pub async fn knowledge_index<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    model: Option<&str>,
) -> ServiceResult<Arc<KnowledgeIndex>> {
    let fingerprint = knowledge_fingerprint(db, account_id).await?;
    cached_index(db, account_id, model, &fingerprint).await
}

/// The index of the knowledge base at `fingerprint`: cached, or built now.
async fn cached_index<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    model: Option<&str>,
    fingerprint: &KnowledgeFingerprint,
) -> ServiceResult<Arc<KnowledgeIndex>> {
    let key = (account_id.to_owned(), model.map(str::to_owned));
    if let Ok(cache) = KNOWLEDGE_CACHE.lock()
        && let Some((cached, index)) = cache.get(&key)
        && cached == fingerprint
    {
        return Ok(Arc::clone(index));
    }
    let index = Arc::new(build_knowledge(db, account_id, model).await?);
    if let Ok(mut cache) = KNOWLEDGE_CACHE.lock() {
        cache.insert(key, (fingerprint.clone(), Arc::clone(&index)));
    }
    Ok(index)
}

/// An entry's stored vector when `model` made it and it is usable.
fn stored_vector(row: &knowledge_entry::Model, model: Option<&str>) -> Option<Vec<f32>> {
    let model = model?;
    if row.embedding_model.as_deref() != Some(model) {
        return None;
    }
    let vector: Vec<f32> = serde_json::from_value(row.embedding.clone()?).ok()?;
    let usable = vector.iter().all(|x| x.is_finite()) && vector.iter().any(|x| *x != 0.0);
    usable.then_some(vector)
}

async fn build_knowledge<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    model: Option<&str>,
) -> ServiceResult<KnowledgeIndex> {
    let rows = knowledge_entry::Entity::find()
        .filter(knowledge_entry::Column::AccountId.eq(account_id))
        .order_by_asc(knowledge_entry::Column::Id)
        .all(db)
        .await?;
    // Vectors of one dimension only: the first one fixes it (a model whose output size
    // changed under the same name would otherwise make the build fail).
    let mut dimension = None;
    let entries = rows.into_iter().filter_map(|r| {
        let vector =
            stored_vector(&r, model).filter(|v| *dimension.get_or_insert(v.len()) == v.len());
        let content = match (r.kind.as_str(), r.document_id) {
            ("faq", _) => EntryContent::Faq(FaqEntry {
                question: r.question,
                answer: r.answer,
                alternative_questions: serde_json::from_value(r.alternatives).unwrap_or_default(),
            }),
            ("document", Some(document_id)) => EntryContent::Chunk(DocumentChunk {
                document_id,
                title: Some(r.question),
                heading: r.heading,
                text: r.answer,
                ordinal: r.ordinal.and_then(|o| u32::try_from(o).ok()).unwrap_or(0),
            }),
            _ => return None,
        };
        Some((KnowledgeEntry { id: r.id, content }, vector))
    });
    KnowledgeIndex::build(entries).map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))
}
