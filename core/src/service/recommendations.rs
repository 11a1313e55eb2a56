//! Recommendation data of official accounts: the items they recommend (articles, products),
//! the followers' interactions with them (uploads, menu clicks and views from the callback),
//! the lists the `recommend` job stores per follower, and segments the `segment` job turns
//! into WeChat tags. Everything is scoped by tenant and account.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use wxpilot_entity::{interaction, recommendation, recommendation_item, segment};

use super::audit::{self, Action};
use super::metrics::RowError;
use super::{Actor, Page, PageRequest, accounts, fetch_page, jobs};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::new_id;

/// The job kind that trains an account's recommender and stores every follower's list.
pub const RECOMMEND_JOB_KIND: &str = "recommend";
/// The job kind that selects a segment and tags it in WeChat.
pub const SEGMENT_JOB_KIND: &str = "segment";
/// Most items one upload may carry.
pub const MAX_ITEMS: usize = 5_000;
/// Most interaction lines one upload may carry.
pub const MAX_INTERACTIONS: usize = 50_000;
/// The follower key of the popularity list new followers get.
pub const POPULAR_KEY: &str = "*";
/// Most recommendations stored per follower.
pub const MAX_K: u32 = 100;
/// Most followers one segment selects (its members are returned with it).
pub const MAX_SEGMENT_MEMBERS: u32 = 100_000;
/// WeChat tag names are at most 30 characters.
pub const MAX_TAG_NAME: usize = 30;
/// Rows per multi-row statement (under SQLite's bound-parameter limit).
const CHUNK: usize = 400;

/// What kind of thing an item is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// An article (the default).
    #[default]
    Article,
    /// A product.
    Product,
}

impl ItemKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Article => "article",
            Self::Product => "product",
        }
    }

    fn parse(value: &str) -> Self {
        if value == "product" {
            Self::Product
        } else {
            Self::Article
        }
    }
}

/// One item as uploaded.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// Your id of the item, unique per account (uploading it again updates it).
    #[schema(example = "article-2026-11-11")]
    pub id: String,
    /// Title.
    pub title: String,
    /// Text the similarity of items is computed from (digest or body).
    #[serde(default)]
    pub text: String,
    /// Tags (at most 20, each at most 32 characters).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where it is read or bought (a menu `VIEW` of this URL counts as a click).
    pub url: Option<String>,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
    /// `article` (default) or `product`.
    #[serde(default)]
    pub kind: ItemKind,
}

/// A stored item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Item {
    /// Your id of the item.
    pub id: String,
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// Tags.
    pub tags: Vec<String>,
    /// URL.
    pub url: Option<String>,
    /// Published.
    pub published_at: Option<DateTime<Utc>>,
    /// `article` or `product`.
    pub kind: ItemKind,
    /// Whether its text embedding is computed (by the next `recommend` job otherwise).
    pub embedded: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<recommendation_item::Model> for Item {
    fn from(m: recommendation_item::Model) -> Self {
        Self {
            id: m.external_id,
            title: m.title,
            text: m.body,
            tags: m
                .tags
                .and_then(|t| serde_json::from_value(t).ok())
                .unwrap_or_default(),
            url: m.url,
            published_at: m.published_at,
            kind: ItemKind::parse(&m.item_kind),
            embedded: m.embedding.is_some(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IngestReport {
    /// Rows stored now.
    pub stored: usize,
    /// Rows already stored by an earlier upload (same event id), not stored again.
    pub duplicates: usize,
    /// Rows rejected, each with its number and reason; the others were handled.
    pub rejected: Vec<RowError>,
}

fn valid_external_id(id: &str) -> bool {
    let n = id.chars().count();
    (1..=128).contains(&n) && !id.chars().any(char::is_control) && id.trim() == id
}

/// Text without control characters (line breaks and tabs allowed where `multiline`).
fn clean_text(text: &str, multiline: bool) -> bool {
    text.chars()
        .all(|c| !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t')))
}

/// Checks one item; the reason when it is not acceptable.
pub fn check_item(item: &ItemInput) -> Result<(), String> {
    if !valid_external_id(&item.id) {
        return Err(
            "id must be 1 to 128 characters without control characters or surrounding spaces"
                .into(),
        );
    }
    let title = item.title.trim().chars().count();
    if !(1..=500).contains(&title) || !clean_text(&item.title, false) {
        return Err("title must be 1 to 500 characters without control characters".into());
    }
    if item.text.chars().count() > 20_000 || !clean_text(&item.text, true) {
        return Err("text must be at most 20000 characters without control characters".into());
    }
    if item.tags.len() > 20 {
        return Err("at most 20 tags".into());
    }
    if item
        .tags
        .iter()
        .any(|t| t.trim().is_empty() || t.chars().count() > 32 || !clean_text(t, false))
    {
        return Err("each tag must be 1 to 32 characters without control characters".into());
    }
    let distinct: HashSet<&str> = item.tags.iter().map(|t| t.trim()).collect();
    if distinct.len() != item.tags.len() {
        return Err("tags must not repeat".into());
    }
    if let Some(url) = &item.url
        && (url.len() > 2048 || !(url.starts_with("https://") || url.starts_with("http://")))
    {
        return Err("url must be an http(s) URL of at most 2048 bytes".into());
    }
    if let Some(at) = item.published_at
        && !(2000..=2100).contains(&chrono::Datelike::year(&at))
    {
        return Err("published_at must be between 2000 and 2100".into());
    }
    Ok(())
}

/// Stores the good items of an upload (new ones added, known ids updated; a changed text
/// drops the item's embedding so the next `recommend` job recomputes it). Rows that failed
/// to parse or validate are reported and skipped.
pub async fn upsert_items(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    rows: Vec<NumberedRow<ItemInput>>,
) -> ServiceResult<IngestReport> {
    if rows.len() > MAX_ITEMS {
        return Err(ServiceError::field(
            "items",
            format!("at most {MAX_ITEMS} items per upload"),
        ));
    }
    let (good, rejected) = split_rows(rows, check_item);
    // The last row of an id wins.
    let mut by_id: HashMap<String, ItemInput> = HashMap::new();
    for (_, item) in good {
        by_id.insert(item.id.clone(), item);
    }
    let txn = crate::db::begin_write(db).await?;
    if !accounts::exists(&txn, actor, account_id).await? {
        return Err(ServiceError::NotFound("official account"));
    }
    let ids: Vec<String> = by_id.keys().cloned().collect();
    let mut existing: HashMap<String, recommendation_item::Model> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        for model in scoped_items(&actor.tenant_id, account_id)
            .filter(recommendation_item::Column::ExternalId.is_in(chunk.iter().cloned()))
            .all(&txn)
            .await?
        {
            existing.insert(model.external_id.clone(), model);
        }
    }
    let now = Utc::now();
    let models: Vec<recommendation_item::ActiveModel> = by_id
        .into_values()
        .map(|item| {
            let before = existing.get(&item.id);
            let same_text = before.is_some_and(|b| b.title == item.title && b.body == item.text);
            recommendation_item::ActiveModel {
                id: Set(before.map_or_else(new_id, |b| b.id.clone())),
                tenant_id: Set(actor.tenant_id.clone()),
                account_id: Set(account_id.to_owned()),
                external_id: Set(item.id),
                title: Set(item.title),
                body: Set(item.text),
                embedding: Set(before
                    .filter(|_| same_text)
                    .and_then(|b| b.embedding.clone())),
                embedding_model: Set(before
                    .filter(|_| same_text)
                    .and_then(|b| b.embedding_model.clone())),
                similar: Set(before.and_then(|b| b.similar.clone())),
                item_kind: Set(item.kind.as_str().to_owned()),
                tags: Set(Some(Value::from(item.tags))),
                url: Set(item.url),
                published_at: Set(item.published_at),
                created_at: Set(before.map_or(now, |b| b.created_at)),
                updated_at: Set(now),
            }
        })
        .collect();
    let stored = models.len();
    audit::record(
        &txn,
        actor,
        Action::Update,
        "recommendation_items",
        account_id,
        serde_json::json!({ "stored": stored, "rejected": rejected.len() }),
    )
    .await?;
    let mut models = models.into_iter().peekable();
    while models.peek().is_some() {
        let chunk: Vec<_> = models.by_ref().take(CHUNK / 4).collect();
        recommendation_item::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::columns([
                    recommendation_item::Column::AccountId,
                    recommendation_item::Column::ExternalId,
                ])
                .update_columns([
                    recommendation_item::Column::Title,
                    recommendation_item::Column::Body,
                    recommendation_item::Column::Embedding,
                    recommendation_item::Column::EmbeddingModel,
                    recommendation_item::Column::ItemKind,
                    recommendation_item::Column::Tags,
                    recommendation_item::Column::Url,
                    recommendation_item::Column::PublishedAt,
                    recommendation_item::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(IngestReport {
        stored,
        duplicates: 0,
        rejected,
    })
}

/// An uploaded row as parsed: its number as sent (element or line, from 1) and value, or
/// why it did not parse.
pub type NumberedRow<T> = Result<(usize, T), RowError>;

fn split_rows<T>(
    rows: Vec<NumberedRow<T>>,
    check: impl Fn(&T) -> Result<(), String>,
) -> (Vec<(usize, T)>, Vec<RowError>) {
    let mut good = Vec::new();
    let mut rejected = Vec::new();
    for row in rows {
        match row {
            Err(e) => rejected.push(e),
            Ok((number, value)) => match check(&value) {
                Ok(()) => good.push((number, value)),
                Err(message) => rejected.push(RowError {
                    row: number,
                    message,
                }),
            },
        }
    }
    (good, rejected)
}

fn scoped_items(tenant_id: &str, account_id: &str) -> sea_orm::Select<recommendation_item::Entity> {
    recommendation_item::Entity::find()
        .filter(recommendation_item::Column::TenantId.eq(tenant_id))
        .filter(recommendation_item::Column::AccountId.eq(account_id))
}

/// One item of one of the tenant's accounts, by your id.
pub async fn get_item<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    item: &str,
) -> ServiceResult<Item> {
    Ok(find_item(conn, &actor.tenant_id, account_id, item)
        .await?
        .ok_or(ServiceError::NotFound("item"))?
        .into())
}

async fn find_item<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    item: &str,
) -> ServiceResult<Option<recommendation_item::Model>> {
    if !valid_external_id(item) {
        return Ok(None);
    }
    Ok(scoped_items(tenant_id, account_id)
        .filter(recommendation_item::Column::ExternalId.eq(item))
        .one(conn)
        .await?)
}

/// A page of an account's items, in upload order.
pub async fn list_items<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    page: &PageRequest,
) -> ServiceResult<Page<Item>> {
    if !accounts::exists(conn, actor, account_id).await? {
        return Err(ServiceError::NotFound("official account"));
    }
    let query = scoped_items(&actor.tenant_id, account_id);
    let (rows, limit) = fetch_page(conn, query, recommendation_item::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, Item::from))
}

/// What a follower did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InteractionKind {
    /// Read an article.
    Read,
    /// Clicked a link to it.
    Click,
    /// Shared it.
    Share,
    /// Liked it (在看 / 点赞).
    Like,
    /// Bought it.
    Purchase,
    /// Clicked a menu button bound to it.
    MenuClick,
}

impl InteractionKind {
    /// The strength used when the upload gives none: stronger signals weigh more.
    pub fn default_weight(self) -> f64 {
        match self {
            Self::Read | Self::MenuClick => 1.0,
            Self::Click => 2.0,
            Self::Like => 3.0,
            Self::Share => 4.0,
            Self::Purchase => 8.0,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Click => "click",
            Self::Share => "share",
            Self::Like => "like",
            Self::Purchase => "purchase",
            Self::MenuClick => "menu_click",
        }
    }
}

/// One interaction as uploaded (a JSON line).
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionInput {
    /// The follower's openid.
    pub openid: String,
    /// Your id of the item (uploaded to `/items` first).
    pub item: String,
    /// What they did.
    pub kind: InteractionKind,
    /// Strength (default by kind: read 1, click 2, like 3, share 4, purchase 8).
    pub weight: Option<f64>,
    /// When (default: now).
    pub time: Option<DateTime<Utc>>,
    /// Your id of the event: an upload repeated with the same event ids stores nothing
    /// twice. Without one, a line with a `time` is known by its content instead.
    pub event_id: Option<String>,
}

/// Whether `openid` is a well-formed follower id (WeChat's are 28 URL-safe characters).
pub fn valid_openid(openid: &str) -> bool {
    (1..=64).contains(&openid.len())
        && openid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks one interaction against `now`; the reason when it is not acceptable.
pub fn check_interaction(row: &InteractionInput, now: DateTime<Utc>) -> Result<(), String> {
    if !valid_openid(&row.openid) {
        return Err("openid must be 1 to 64 letters, digits, _ or -".into());
    }
    if !valid_external_id(&row.item) {
        return Err("item must be 1 to 128 characters without control characters".into());
    }
    if let Some(w) = row.weight
        && !(w.is_finite() && w > 0.0 && w <= 1_000.0)
    {
        return Err("weight must be greater than 0 and at most 1000".into());
    }
    if let Some(t) = row.time {
        if t > now + Duration::days(1) {
            return Err("time is in the future".into());
        }
        if chrono::Datelike::year(&t) < 2000 {
            return Err("time must be after 2000".into());
        }
    }
    if let Some(e) = &row.event_id
        && !valid_external_id(e)
    {
        return Err("event_id must be 1 to 128 characters without control characters".into());
    }
    Ok(())
}

/// The key an interaction is stored once under: its event id, else a digest of its
/// content when it has a time (without one every upload is a new event).
pub fn event_key(row: &InteractionInput) -> Option<String> {
    if let Some(id) = &row.event_id {
        return Some(id.clone());
    }
    let time = row.time?;
    let mut hash = Sha256::new();
    for part in [
        row.openid.as_str(),
        row.item.as_str(),
        row.kind.as_str(),
        &row.weight.map(|w| w.to_string()).unwrap_or_default(),
        &time.to_rfc3339(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    Some(format!("auto:{}", &hex::encode(hash.finalize())[..40]))
}

/// Stores the good interactions of an upload. Lines that do not parse or validate, or name
/// an item the account does not have, are reported by line number; a line whose event was
/// stored before counts as a duplicate and is not stored again.
pub async fn ingest_interactions(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    rows: Vec<NumberedRow<InteractionInput>>,
) -> ServiceResult<IngestReport> {
    if rows.len() > MAX_INTERACTIONS {
        return Err(ServiceError::field(
            "body",
            format!("at most {MAX_INTERACTIONS} lines per upload"),
        ));
    }
    let now = Utc::now();
    let (good, mut rejected) = split_rows(rows, |r| check_interaction(r, now));
    let txn = crate::db::begin_write(db).await?;
    if !accounts::exists(&txn, actor, account_id).await? {
        return Err(ServiceError::NotFound("official account"));
    }
    let wanted: HashSet<&str> = good.iter().map(|(_, r)| r.item.as_str()).collect();
    let item_ids = item_ids_by_external(&txn, &actor.tenant_id, account_id, wanted).await?;
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut models = Vec::new();
    for (line, row) in good {
        let Some(item_id) = item_ids.get(&row.item) else {
            rejected.push(RowError {
                row: line,
                message: format!("unknown item {:?}: upload it to /items first", row.item),
            });
            continue;
        };
        let key = event_key(&row);
        if let Some(key) = &key
            && !seen.insert(key.clone())
        {
            duplicates += 1;
            continue;
        }
        models.push(interaction::ActiveModel {
            id: Set(new_id()),
            tenant_id: Set(actor.tenant_id.clone()),
            account_id: Set(account_id.to_owned()),
            follower_openid: Set(row.openid),
            item_id: Set(item_id.clone()),
            kind: Set(row.kind.as_str().to_owned()),
            strength: Set(row.weight.unwrap_or_else(|| row.kind.default_weight())),
            event_id: Set(key),
            occurred_at: Set(row.time.unwrap_or(now)),
            created_at: Set(now),
        });
    }
    rejected.sort_by_key(|e| e.row);
    let offered = models.len();
    let stored = insert_interactions(&txn, models).await?;
    audit::record(
        &txn,
        actor,
        Action::Create,
        "interactions",
        account_id,
        serde_json::json!({ "stored": stored, "rejected": rejected.len() }),
    )
    .await?;
    txn.commit().await?;
    Ok(IngestReport {
        stored,
        duplicates: duplicates + (offered - stored),
        rejected,
    })
}

/// Inserts interactions, skipping events stored before; how many were new.
async fn insert_interactions<C: ConnectionTrait>(
    conn: &C,
    models: Vec<interaction::ActiveModel>,
) -> ServiceResult<usize> {
    let mut stored = 0;
    let mut models = models.into_iter().peekable();
    while models.peek().is_some() {
        let chunk: Vec<_> = models.by_ref().take(CHUNK / 2).collect();
        let inserted = interaction::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::columns([interaction::Column::AccountId, interaction::Column::EventId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        stored += usize::try_from(inserted).unwrap_or(usize::MAX);
    }
    Ok(stored)
}

async fn item_ids_by_external<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    external: HashSet<&str>,
) -> ServiceResult<HashMap<String, String>> {
    let external: Vec<String> = external.into_iter().map(str::to_owned).collect();
    let mut ids = HashMap::new();
    for chunk in external.chunks(CHUNK) {
        let rows: Vec<(String, String)> = scoped_items(tenant_id, account_id)
            .select_only()
            .column(recommendation_item::Column::ExternalId)
            .column(recommendation_item::Column::Id)
            .filter(recommendation_item::Column::ExternalId.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(conn)
            .await?;
        ids.extend(rows);
    }
    Ok(ids)
}

/// What a callback event points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTarget<'a> {
    /// A menu `CLICK` whose key is an item's id.
    MenuKey(&'a str),
    /// A menu `VIEW` of an item's URL.
    Url(&'a str),
}

/// Records a menu click or view from the WeChat callback as an interaction when it points
/// at one of the account's items (`event_id` makes a redelivered event count once).
/// Whether it did.
pub async fn record_callback_event<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    openid: &str,
    target: EventTarget<'_>,
    event_id: &str,
    at: DateTime<Utc>,
) -> ServiceResult<bool> {
    if !valid_openid(openid) {
        return Ok(false);
    }
    let (query, kind) = match target {
        EventTarget::MenuKey(key) => (
            scoped_items(tenant_id, account_id)
                .filter(recommendation_item::Column::ExternalId.eq(key)),
            InteractionKind::MenuClick,
        ),
        EventTarget::Url(url) => (
            scoped_items(tenant_id, account_id).filter(recommendation_item::Column::Url.eq(url)),
            InteractionKind::Click,
        ),
    };
    let Some(item) = query.one(conn).await? else {
        return Ok(false);
    };
    let stored = insert_interactions(
        conn,
        vec![interaction::ActiveModel {
            id: Set(new_id()),
            tenant_id: Set(tenant_id.to_owned()),
            account_id: Set(account_id.to_owned()),
            follower_openid: Set(openid.to_owned()),
            item_id: Set(item.id),
            kind: Set(kind.as_str().to_owned()),
            strength: Set(kind.default_weight()),
            event_id: Set(Some(format!("wechat:{event_id}"))),
            occurred_at: Set(at),
            created_at: Set(Utc::now()),
        }],
    )
    .await?;
    Ok(stored > 0)
}

/// An item as the `recommend` job reads it.
#[derive(Debug, Clone)]
pub struct TrainingItem {
    /// Row id.
    pub id: String,
    /// Your id.
    pub external_id: String,
    /// Title.
    pub title: String,
    /// The text embeddings are computed from (title and text).
    pub text: String,
    /// The stored embedding and the model it came from.
    pub embedding: Option<(Vec<f32>, String)>,
}

/// Everything an account's model is trained on: its items, and its interactions as
/// `(openid, item row id, strength)`.
#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    /// Items, in upload order.
    pub items: Vec<TrainingItem>,
    /// Interactions.
    pub interactions: Vec<(String, String, f64)>,
}

/// Reads an account's items and interactions (the caller scopes the account to the tenant
/// by passing the job's tenant).
pub async fn training_data<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
) -> ServiceResult<TrainingData> {
    let items = scoped_items(tenant_id, account_id)
        .order_by_asc(recommendation_item::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| TrainingItem {
            text: if m.body.is_empty() {
                m.title.clone()
            } else {
                format!("{}\n{}", m.title, m.body)
            },
            embedding: match (m.embedding, m.embedding_model) {
                (Some(e), Some(model)) => serde_json::from_value(e).ok().map(|v| (v, model)),
                _ => None,
            },
            id: m.id,
            external_id: m.external_id,
            title: m.title,
        })
        .collect();
    let interactions: Vec<(String, String, f64)> = interaction::Entity::find()
        .select_only()
        .column(interaction::Column::FollowerOpenid)
        .column(interaction::Column::ItemId)
        .column(interaction::Column::Strength)
        .filter(interaction::Column::TenantId.eq(tenant_id))
        .filter(interaction::Column::AccountId.eq(account_id))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(TrainingData {
        items,
        interactions,
    })
}

/// Stores item embeddings computed by a job: `(row id, vector)` from `model`.
pub async fn save_embeddings<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    model: &str,
    vectors: &[(String, Vec<f32>)],
) -> ServiceResult<()> {
    for (id, vector) in vectors {
        recommendation_item::Entity::update_many()
            .col_expr(
                recommendation_item::Column::Embedding,
                sea_orm::sea_query::Expr::value(Value::from(vector.clone())),
            )
            .col_expr(
                recommendation_item::Column::EmbeddingModel,
                sea_orm::sea_query::Expr::value(model),
            )
            .filter(recommendation_item::Column::TenantId.eq(tenant_id))
            .filter(recommendation_item::Column::AccountId.eq(account_id))
            .filter(recommendation_item::Column::Id.eq(id.as_str()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// `POST /v1/accounts/{id}/recommendations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    /// Items kept per follower, 1–100 (default 10).
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 100, default = 10)]
    pub k: u32,
}

fn default_k() -> u32 {
    10
}

/// What the `recommend` job is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendJob {
    /// The account.
    pub account_id: String,
    /// Items per follower.
    pub k: u32,
}

impl RecommendRequest {
    /// Checks the request and makes the job payload.
    pub fn into_job(self, account_id: &str) -> ServiceResult<RecommendJob> {
        if !(1..=MAX_K).contains(&self.k) {
            return Err(ServiceError::field(
                "k",
                format!("must be between 1 and {MAX_K}"),
            ));
        }
        Ok(RecommendJob {
            account_id: account_id.to_owned(),
            k: self.k,
        })
    }
}

/// One follower's stored list: `items` is a JSON array of recommended items.
#[derive(Debug, Clone)]
pub struct FollowerList {
    /// The openid, or [`POPULAR_KEY`].
    pub openid: String,
    /// JSON array of `{item, title, score, reason, explanation}`.
    pub items: Value,
}

/// Replaces an account's recommendations with what job `job_id` computed (repeat-safe: a
/// retried job writes the same rows; lists of followers it no longer covers are removed).
pub async fn save_recommendations(
    conn: &DatabaseConnection,
    tenant_id: &str,
    account_id: &str,
    job_id: &str,
    lists: Vec<FollowerList>,
) -> ServiceResult<()> {
    let txn = crate::db::begin_write(conn).await?;
    let now = Utc::now();
    let mut lists = lists.into_iter().peekable();
    while lists.peek().is_some() {
        let chunk: Vec<recommendation::ActiveModel> = lists
            .by_ref()
            .take(CHUNK / 8)
            .map(|l| recommendation::ActiveModel {
                id: Set(new_id()),
                tenant_id: Set(tenant_id.to_owned()),
                account_id: Set(account_id.to_owned()),
                follower_openid: Set(l.openid),
                job_id: Set(Some(job_id.to_owned())),
                items: Set(l.items),
                created_at: Set(now),
            })
            .collect();
        recommendation::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::columns([
                    recommendation::Column::AccountId,
                    recommendation::Column::FollowerOpenid,
                ])
                .update_columns([
                    recommendation::Column::JobId,
                    recommendation::Column::Items,
                    recommendation::Column::CreatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    recommendation::Entity::delete_many()
        .filter(recommendation::Column::TenantId.eq(tenant_id))
        .filter(recommendation::Column::AccountId.eq(account_id))
        .filter(recommendation::Column::JobId.ne(job_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Stores each item's similar items (`(row id, JSON array)`) from a `recommend` job.
pub async fn save_similar<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    similar: Vec<(String, Value)>,
) -> ServiceResult<()> {
    for (id, list) in similar {
        recommendation_item::Entity::update_many()
            .col_expr(
                recommendation_item::Column::Similar,
                sea_orm::sea_query::Expr::value(list),
            )
            .filter(recommendation_item::Column::TenantId.eq(tenant_id))
            .filter(recommendation_item::Column::AccountId.eq(account_id))
            .filter(recommendation_item::Column::Id.eq(id))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// A follower's recommendations.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowerRecommendations {
    /// The account.
    pub account_id: String,
    /// The follower.
    pub openid: String,
    /// True when the follower had no history at the last run: these are the account's most
    /// consumed items.
    pub fallback: bool,
    /// The `recommend` job that made the list.
    pub job_id: Option<String>,
    /// When.
    pub generated_at: DateTime<Utc>,
    /// Best first: `{item, title, score, reason: {kind: history|similar_to|popular, …},
    /// explanation}`.
    #[schema(value_type = Vec<Object>)]
    pub items: Value,
}

/// The stored list of `openid`, else the popularity list; 404 before any `recommend` job.
pub async fn for_follower<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    openid: &str,
) -> ServiceResult<FollowerRecommendations> {
    if !accounts::exists(conn, actor, account_id).await? {
        return Err(ServiceError::NotFound("official account"));
    }
    if !valid_openid(openid) {
        return Err(ServiceError::NotFound("follower"));
    }
    let keys = [openid, POPULAR_KEY];
    let rows = recommendation::Entity::find()
        .filter(recommendation::Column::TenantId.eq(actor.tenant_id.as_str()))
        .filter(recommendation::Column::AccountId.eq(account_id))
        .filter(recommendation::Column::FollowerOpenid.is_in(keys))
        .all(conn)
        .await?;
    let own = rows.iter().find(|r| r.follower_openid == openid);
    let row = own
        .or_else(|| rows.iter().find(|r| r.follower_openid == POPULAR_KEY))
        .ok_or(ServiceError::NotFound("recommendations"))?;
    Ok(FollowerRecommendations {
        account_id: account_id.to_owned(),
        openid: openid.to_owned(),
        fallback: own.is_none(),
        job_id: row.job_id.clone(),
        generated_at: row.created_at,
        items: row.items.clone(),
    })
}

/// Items similar to one item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SimilarItems {
    /// The item (your id).
    pub item: String,
    /// Best first: `{item, title, score, basis: interactions|text}`.
    #[schema(value_type = Vec<Object>)]
    pub similar: Value,
}

/// The similar items the last `recommend` job found for `item`; 409 before one ran since
/// the item was added.
pub async fn similar_items<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    item: &str,
) -> ServiceResult<SimilarItems> {
    let model = find_item(conn, &actor.tenant_id, account_id, item)
        .await?
        .ok_or(ServiceError::NotFound("item"))?;
    let similar = model.similar.ok_or_else(|| {
        ServiceError::Conflict(
            "similar items are computed by the recommend job: POST /v1/accounts/{id}/recommendations".into(),
        )
    })?;
    Ok(SimilarItems {
        item: model.external_id,
        similar,
    })
}

/// How a segment picks its followers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentRequest {
    /// Segment name; also the WeChat tag's name unless `tag` is given (1–30 characters).
    pub name: String,
    /// The WeChat tag to create or reuse (default: `name`).
    pub tag: Option<String>,
    /// Followers with the highest affinity to these items (your ids)…
    #[serde(default)]
    pub items: Vec<String>,
    /// …or to this topic text (compared with the texts they interacted with).
    pub topic: Option<String>,
    /// Keep the `top` followers with the highest affinity (default 1000 when
    /// `min_affinity` is not given).
    #[schema(minimum = 1, maximum = 100_000)]
    pub top: Option<u32>,
    /// Keep the followers whose affinity is at least this.
    pub min_affinity: Option<f32>,
}

/// What the `segment` job is asked to do (the checked request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentJob {
    /// The account.
    pub account_id: String,
    /// The request.
    pub request: SegmentRequest,
}

impl SegmentRequest {
    /// The tag name used in WeChat.
    pub fn tag_name(&self) -> &str {
        self.tag.as_deref().unwrap_or(&self.name).trim()
    }

    /// Checks the request and makes the job payload.
    pub fn into_job(self, account_id: &str) -> ServiceResult<SegmentJob> {
        let mut errors = Vec::new();
        let name = self.name.trim().chars().count();
        if !(1..=MAX_TAG_NAME).contains(&name) || !clean_text(&self.name, false) {
            errors.push((
                "name",
                format!("must be 1 to {MAX_TAG_NAME} characters without control characters"),
            ));
        }
        if self.tag.is_some()
            && (!(1..=MAX_TAG_NAME).contains(&self.tag_name().chars().count())
                || !clean_text(self.tag_name(), false))
        {
            errors.push((
                "tag",
                format!("must be 1 to {MAX_TAG_NAME} characters without control characters"),
            ));
        }
        match (self.items.is_empty(), &self.topic) {
            (true, None) => errors.push(("items", "give items or a topic".to_owned())),
            (false, Some(_)) => errors.push(("topic", "give items or a topic, not both".into())),
            (_, Some(t)) if t.trim().is_empty() || t.chars().count() > 2_000 => {
                errors.push(("topic", "must be 1 to 2000 characters".into()));
            }
            _ => {}
        }
        if self.items.len() > 1_000 || self.items.iter().any(|i| !valid_external_id(i)) {
            errors.push((
                "items",
                "at most 1000 item ids of 1 to 128 characters".into(),
            ));
        }
        if let Some(top) = self.top
            && !(1..=MAX_SEGMENT_MEMBERS).contains(&top)
        {
            errors.push((
                "top",
                format!("must be between 1 and {MAX_SEGMENT_MEMBERS}"),
            ));
        }
        if let Some(min) = self.min_affinity
            && !min.is_finite()
        {
            errors.push(("min_affinity", "must be a number".into()));
        }
        if self.top.is_some() && self.min_affinity.is_some() {
            errors.push(("top", "give top or min_affinity, not both".into()));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(
                errors
                    .into_iter()
                    .map(|(field, message)| crate::error::FieldError {
                        field: field.to_owned(),
                        message,
                    })
                    .collect(),
            ));
        }
        Ok(SegmentJob {
            account_id: account_id.to_owned(),
            request: self,
        })
    }
}

/// Checks that every item a segment names is one of the account's (422 naming the others).
pub async fn check_segment_items<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    items: &[String],
) -> ServiceResult<()> {
    let wanted = items.iter().map(String::as_str).collect();
    let known = item_ids_by_external(conn, &actor.tenant_id, account_id, wanted).await?;
    let unknown: Vec<&str> = items
        .iter()
        .filter(|i| !known.contains_key(i.as_str()))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::field(
            "items",
            format!(
                "unknown items (upload them to /items first): {}",
                unknown.join(", ")
            ),
        ))
    }
}

/// A segment, or where its job stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Segment {
    /// Segment id (the id of the job that builds it).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// Name.
    pub name: String,
    /// The WeChat tag.
    pub tag_name: String,
    /// The tag's id in WeChat, once created or found.
    pub wechat_tag_id: Option<i64>,
    /// `queued`, `running`, `failed`, `dead`, `cancelled` (the job's) or `succeeded`.
    pub status: String,
    /// Followers selected.
    pub member_count: i32,
    /// `{openid, affinity, tagged}`, highest affinity first (in `GET …/segments/{id}`).
    #[schema(value_type = Option<Vec<Object>>)]
    pub members: Option<Value>,
    /// The request.
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Why it failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Segment {
    fn from_model(m: segment::Model, with_members: bool) -> Self {
        Self {
            id: m.id,
            account_id: m.account_id,
            name: m.name,
            tag_name: m.tag_name,
            wechat_tag_id: m.wechat_tag_id,
            status: m.status,
            member_count: m.member_count,
            members: if with_members { m.members } else { None },
            definition: m.definition,
            error: m.error,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Stores what a `segment` job found (repeat-safe: a retried job overwrites its own row).
#[allow(clippy::too_many_arguments)]
pub async fn save_segment<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    job_id: &str,
    job: &SegmentJob,
    tag_id: Option<i64>,
    members: Value,
    member_count: usize,
) -> ServiceResult<()> {
    let now = Utc::now();
    let definition = serde_json::to_value(&job.request)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
    let model = segment::ActiveModel {
        id: Set(job_id.to_owned()),
        tenant_id: Set(tenant_id.to_owned()),
        account_id: Set(job.account_id.clone()),
        name: Set(job.request.name.trim().to_owned()),
        tag_name: Set(job.request.tag_name().to_owned()),
        definition: Set(definition),
        status: Set("succeeded".to_owned()),
        wechat_tag_id: Set(tag_id),
        member_count: Set(i32::try_from(member_count).unwrap_or(i32::MAX)),
        members: Set(Some(members)),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    segment::Entity::insert(model)
        .on_conflict(
            OnConflict::column(segment::Column::Id)
                .update_columns([
                    segment::Column::Status,
                    segment::Column::WechatTagId,
                    segment::Column::MemberCount,
                    segment::Column::Members,
                    segment::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The segment `id` of one of the tenant's accounts: the stored one, else its job's status.
pub async fn get_segment<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    id: &str,
) -> ServiceResult<Segment> {
    if !crate::ids::is_id(id) {
        return Err(ServiceError::NotFound("segment"));
    }
    let stored = segment::Entity::find()
        .filter(segment::Column::TenantId.eq(actor.tenant_id.as_str()))
        .filter(segment::Column::AccountId.eq(account_id))
        .filter(segment::Column::Id.eq(id))
        .one(conn)
        .await?;
    if let Some(model) = stored {
        return Ok(Segment::from_model(model, true));
    }
    let job = match jobs::get(conn, actor, id).await {
        Ok(job) => job,
        Err(ServiceError::NotFound(_)) => return Err(ServiceError::NotFound("segment")),
        Err(e) => return Err(e),
    };
    let payload: Option<SegmentJob> = serde_json::from_value(job.payload.clone()).ok();
    match payload {
        Some(p) if job.kind == SEGMENT_JOB_KIND && p.account_id == account_id => Ok(Segment {
            id: job.id,
            account_id: p.account_id,
            name: p.request.name.trim().to_owned(),
            tag_name: p.request.tag_name().to_owned(),
            wechat_tag_id: None,
            status: serde_json::to_value(job.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            member_count: 0,
            members: None,
            definition: serde_json::to_value(&p.request).unwrap_or(Value::Null),
            error: job.error,
            created_at: job.created_at,
            updated_at: job.updated_at,
        }),
        _ => Err(ServiceError::NotFound("segment")),
    }
}

/// The account's built segments, newest first (without their member lists).
pub async fn list_segments<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
) -> ServiceResult<Vec<Segment>> {
    if !accounts::exists(conn, actor, account_id).await? {
        return Err(ServiceError::NotFound("official account"));
    }
    Ok(segment::Entity::find()
        .filter(segment::Column::TenantId.eq(actor.tenant_id.as_str()))
        .filter(segment::Column::AccountId.eq(account_id))
        .order_by_desc(segment::Column::Id)
        .limit(200)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| Segment::from_model(m, false))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(openid: &str, time: Option<&str>) -> InteractionInput {
        InteractionInput {
            openid: openid.into(),
            item: "a1".into(),
            kind: InteractionKind::Read,
            weight: None,
            time: time.map(|t| t.parse().unwrap_or_default()),
            event_id: None,
        }
    }

    #[test]
    fn interactions_are_checked() {
        let now: DateTime<Utc> = "2026-12-04T00:00:00Z".parse().unwrap_or_default();
        assert_eq!(check_interaction(&line("oABC_12-x", None), now), Ok(()));
        assert!(check_interaction(&line("bad openid", None), now).is_err());
        assert!(check_interaction(&line("o1", Some("2027-01-01T00:00:00Z")), now).is_err());
        let heavy = InteractionInput {
            weight: Some(f64::INFINITY),
            ..line("o1", None)
        };
        assert!(check_interaction(&heavy, now).is_err());
        let zero = InteractionInput {
            weight: Some(0.0),
            ..line("o1", None)
        };
        assert!(check_interaction(&zero, now).is_err());
    }

    #[test]
    fn event_keys_come_from_the_event_id_or_the_timed_content() {
        let explicit = InteractionInput {
            event_id: Some("e-1".into()),
            ..line("o1", None)
        };
        assert_eq!(event_key(&explicit).as_deref(), Some("e-1"));
        assert_eq!(event_key(&line("o1", None)), None);
        let a = event_key(&line("o1", Some("2026-11-11T08:00:00Z")));
        let b = event_key(&line("o1", Some("2026-11-11T08:00:00Z")));
        let c = event_key(&line("o2", Some("2026-11-11T08:00:00Z")));
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn items_are_checked() {
        let item = ItemInput {
            id: "a1".into(),
            title: "Autumn tea".into(),
            text: String::new(),
            tags: vec!["tea".into()],
            url: Some("https://mp.weixin.qq.com/s/abc".into()),
            published_at: None,
            kind: ItemKind::Article,
        };
        assert_eq!(check_item(&item), Ok(()));
        let no_title = ItemInput {
            title: "  ".into(),
            ..item.clone()
        };
        assert!(check_item(&no_title).is_err());
        let ftp = ItemInput {
            url: Some("ftp://x".into()),
            ..item.clone()
        };
        assert!(check_item(&ftp).is_err());
        let empty_tag = ItemInput {
            tags: vec![String::new()],
            ..item
        };
        assert!(check_item(&empty_tag).is_err());
    }

    #[test]
    fn segment_requests_need_items_or_a_topic() {
        let base = SegmentRequest {
            name: "tea lovers".into(),
            tag: None,
            items: vec![],
            topic: None,
            top: None,
            min_affinity: None,
        };
        assert!(base.clone().into_job("a").is_err());
        let both = SegmentRequest {
            items: vec!["a1".into()],
            topic: Some("tea".into()),
            ..base.clone()
        };
        assert!(both.into_job("a").is_err());
        let long = SegmentRequest {
            name: "x".repeat(31),
            topic: Some("tea".into()),
            ..base.clone()
        };
        assert!(long.into_job("a").is_err());
        let ok = SegmentRequest {
            items: vec!["a1".into()],
            top: Some(10),
            ..base
        };
        let job = ok.into_job("acc").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(job.request.tag_name(), "tea lovers");
    }
}
