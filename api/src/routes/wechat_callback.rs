//! The WeChat callback: `GET /wechat/{account_id}` (URL verification) and
//! `POST /wechat/{account_id}` (messages and events, plain, compatible and safe mode).
//!
//! Public: WeChat signs requests with the account's callback token instead of a bearer.
//! Rejections (unknown account, bad signature, stale timestamp, unreadable body) happen
//! before anything is stored. Once a request is verified, content problems never give a
//! 5xx: the answer is a passive reply or `success`, inside [`ANSWER_BUDGET`].

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, SqlErr,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use wxpilot_core::service::{Actor, accounts};
use wxpilot_entity::{
    EncryptionMode, callback_dedup, conversation_message, follower, keyword_rule, knowledge_entry,
    official_account,
};
use wxpilot_kb::decision::{DecisionPolicy, ReplyDecision, decide};
use wxpilot_kb::knowledge::{EntryContent, FaqEntry, HybridConfig, KnowledgeEntry, KnowledgeIndex};
use wxpilot_kb::reply::shape_reply;
use wxpilot_kb::rules::{MatchKind, RuleDefinition, RuleSet};
use wxpilot_wechat::{
    CryptoError, DEFAULT_TIMESTAMP_WINDOW, EventKind, InboundMessage, MessageCrypt, MessageKind,
    PassiveReply, ReplyBody, SUCCESS, XmlLimits, check_timestamp, parse_envelope, parse_message,
    verify_url_signature,
};

use crate::error::ApiError;
use crate::state::AppState;

/// WeChat gives up after 5 s; the answer goes out well before, whatever happens.
pub const ANSWER_BUDGET: Duration = Duration::from_millis(4500);
/// Sent on subscribe when the account has none of its own.
pub const DEFAULT_WELCOME: &str = "感谢关注！";
/// WeChat retries for about 15 s; ten minutes covers that with room for clock skew.
const DEDUP_TTL_SECS: u64 = 600;
/// Knowledge hits considered per question.
const TOP_K: usize = 5;

/// The query WeChat adds to every callback.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    /// `sha1(sort(token, timestamp, nonce))`.
    #[serde(default)]
    pub signature: String,
    /// Unix seconds.
    #[serde(default)]
    pub timestamp: String,
    /// Random string.
    #[serde(default)]
    pub nonce: String,
    /// URL verification only: echoed back.
    pub echostr: Option<String>,
    /// `aes` in compatible and safe mode.
    pub encrypt_type: Option<String>,
    /// Signature over the ciphertext, in compatible and safe mode.
    pub msg_signature: Option<String>,
}

/// Registers both callback routes, with the body limit of WeChat bodies.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/wechat/{account_id}")
            .app_data(web::PayloadConfig::new(XmlLimits::DEFAULT_MAX_BODY_BYTES))
            .route(web::get().to(verify_url))
            .route(web::post().to(receive)),
    );
}

/// What verification needs of the account.
struct CallbackAccount {
    id: String,
    tenant_id: String,
    token: String,
    mode: EncryptionMode,
    crypt: MessageCrypt,
}

/// Finds the account and opens its credentials.
async fn load_account(state: &AppState, account_id: &str) -> Result<CallbackAccount, ApiError> {
    // The only unscoped lookup by id: WeChat does not know tenants, so the tenant comes
    // from the account; everything after this is scoped to it.
    let account = official_account::Entity::find_by_id(account_id)
        .one(&state.db)
        .await
        .map_err(|e| ApiError::Unavailable(format!("database: {e}")))?
        .ok_or_else(|| ApiError::NotFound(format!("no account {account_id}")))?;
    let credentials = accounts::credentials(
        &state.db,
        &state.secrets,
        &Actor::system(&account.tenant_id),
        &account.id,
    )
    .await?;
    let crypt = MessageCrypt::new(
        credentials.callback_token.clone(),
        credentials.encoding_aes_key.expose_secret(),
        credentials.app_id.clone(),
    )
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("account {}: {e}", account.id)))?;
    Ok(CallbackAccount {
        id: account.id,
        tenant_id: account.tenant_id,
        token: credentials.callback_token,
        mode: credentials.encryption_mode,
        crypt,
    })
}

/// Checks `signature` and the timestamp window (401 either way).
fn check_request(account: &CallbackAccount, q: &CallbackQuery) -> Result<(), ApiError> {
    if !verify_url_signature(&account.token, &q.timestamp, &q.nonce, &q.signature) {
        return Err(ApiError::Unauthorized("bad signature".into()));
    }
    check_timestamp(
        &q.timestamp,
        Utc::now().timestamp(),
        DEFAULT_TIMESTAMP_WINDOW,
    )
    .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

/// URL verification: answers `echostr` as plain text when the signature is right.
#[tracing::instrument(skip(state, q), fields(account_id = %path))]
async fn verify_url(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let account = load_account(&state, &path).await?;
    check_request(&account, &q)?;
    let echostr = q
        .echostr
        .clone()
        .ok_or_else(|| ApiError::BadRequest("echostr is missing".into()))?;
    Ok(text(echostr))
}

/// A message or event: verified, decrypted, deduplicated, stored and answered.
#[tracing::instrument(skip(state, q, body), fields(account_id = %path))]
async fn receive(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let account = load_account(&state, &path).await?;
    let encrypted = q.encrypt_type.as_deref() == Some("aes");
    let message = read_message(&account, &q, &body, encrypted)?;
    let answer = match tokio::time::timeout(ANSWER_BUDGET, answer(&state, &account, &message)).await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            // A verified delivery is never answered with a 5xx: WeChat would show the
            // follower "该公众号暂时无法提供服务" and retry.
            tracing::error!(error = ?e, "callback handling failed; answering success");
            None
        }
        Err(_) => {
            tracing::warn!("callback answer budget exceeded; answering success");
            None
        }
    };
    let Some(reply_text) = answer else {
        return Ok(text(SUCCESS.to_owned()));
    };
    Ok(text(
        render_reply(&account, &q, &message, reply_text, encrypted).unwrap_or_else(|e| {
            tracing::error!(error = %e, "rendering the passive reply failed");
            SUCCESS.to_owned()
        }),
    ))
}

/// Verifies and parses the body (401 for signatures and timestamps, 400 for bodies).
fn read_message(
    account: &CallbackAccount,
    q: &CallbackQuery,
    body: &[u8],
    encrypted: bool,
) -> Result<InboundMessage, ApiError> {
    let limits = XmlLimits::default();
    if encrypted {
        check_timestamp(
            &q.timestamp,
            Utc::now().timestamp(),
            DEFAULT_TIMESTAMP_WINDOW,
        )
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        let msg_signature = q
            .msg_signature
            .as_deref()
            .ok_or_else(|| ApiError::Unauthorized("msg_signature is missing".into()))?;
        let envelope =
            parse_envelope(body, &limits).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let xml = account
            .crypt
            .decrypt_message(msg_signature, &q.timestamp, &q.nonce, &envelope.encrypt)
            .map_err(|e| match e {
                CryptoError::Signature => ApiError::Unauthorized("bad msg_signature".into()),
                other => ApiError::BadRequest(other.to_string()),
            })?;
        parse_message(xml.as_bytes(), &limits).map_err(|e| ApiError::BadRequest(e.to_string()))
    } else {
        // A safe-mode account never takes plain bodies: that would bypass its key.
        if account.mode == EncryptionMode::Safe {
            return Err(ApiError::BadRequest(
                "this account takes encrypted (safe mode) bodies only".into(),
            ));
        }
        check_request(account, q)?;
        parse_message(body, &limits).map_err(|e| ApiError::BadRequest(e.to_string()))
    }
}

/// The reply XML, encrypted when the request was.
fn render_reply(
    account: &CallbackAccount,
    q: &CallbackQuery,
    message: &InboundMessage,
    content: String,
    encrypted: bool,
) -> anyhow::Result<String> {
    let reply =
        PassiveReply::to_message(message, Utc::now().timestamp(), ReplyBody::Text { content });
    let xml = reply.to_xml()?;
    if !encrypted {
        return Ok(xml);
    }
    Ok(account
        .crypt
        .encrypt_reply(&xml, &q.timestamp, &q.nonce)?
        .to_xml())
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

/// Deduplicates, stores the follower and the message, and picks the passive answer
/// (`None`: answer `success`).
async fn answer(
    state: &AppState,
    account: &CallbackAccount,
    message: &InboundMessage,
) -> anyhow::Result<Option<String>> {
    let key = format!("{}", message.dedup_key());
    if !first_delivery(state, &account.id, &key).await? {
        tracing::info!(dedup_key = %key, "retried delivery; already handled");
        return Ok(None);
    }
    let db = &state.db;
    let is_message = message.msg_id.is_some();
    record_follower(db, account, message, is_message).await?;
    store_message(
        db,
        account,
        &message.from_user_name,
        conversation_message::DIRECTION_IN,
        &message.msg_type,
        &inbound_content(message),
        message.msg_id.clone(),
    )
    .await?;
    let reply = match &message.kind {
        MessageKind::Event(EventKind::Subscribe { .. }) => Some(DEFAULT_WELCOME.to_owned()),
        MessageKind::Text { content } => text_answer(db, &account.id, content).await?,
        _ => None,
    };
    let Some(reply) = reply else {
        return Ok(None);
    };
    // The first part is the passive reply; longer answers are rare for FAQ text and the
    // rest would need the customer-service API.
    let Some(first) = shape_reply(&reply).into_iter().next() else {
        return Ok(None);
    };
    store_message(
        db,
        account,
        &message.from_user_name,
        conversation_message::DIRECTION_OUT,
        "passive",
        &first,
        None,
    )
    .await?;
    Ok(Some(first))
}

/// What an inbound message is stored as: the text, or the event's name.
fn inbound_content(message: &InboundMessage) -> String {
    match &message.kind {
        MessageKind::Text { content } => content.clone(),
        _ => message.event().unwrap_or(&message.msg_type).to_owned(),
    }
}

/// True the first time a delivery key is seen: Redis `SET NX EX` when configured (shared
/// by every replica), else a unique insert into `callback_dedup`.
async fn first_delivery(state: &AppState, account_id: &str, key: &str) -> anyhow::Result<bool> {
    if let Some(client) = &state.redis {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("wxpilot:callback:{account_id}:{key}"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(DEDUP_TTL_SECS)
            .query_async(&mut conn)
            .await?;
        return Ok(set.is_some());
    }
    let row = callback_dedup::ActiveModel {
        id: Set(wxpilot_core::ids::new_id()),
        account_id: Set(account_id.to_owned()),
        dedup_key: Set(key.to_owned()),
        created_at: Set(Utc::now()),
    };
    match row.insert(&state.db).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Creates or updates the follower row (last seen, last message, subscription).
async fn record_follower(
    db: &DatabaseConnection,
    account: &CallbackAccount,
    message: &InboundMessage,
    is_message: bool,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let subscribed = match &message.kind {
        MessageKind::Event(EventKind::Subscribe { .. }) => Some(true),
        MessageKind::Event(EventKind::Unsubscribe) => Some(false),
        _ => None,
    };
    let existing = follower::Entity::find()
        .filter(follower::Column::TenantId.eq(&account.tenant_id))
        .filter(follower::Column::AccountId.eq(&account.id))
        .filter(follower::Column::Openid.eq(&message.from_user_name))
        .one(db)
        .await?;
    match existing {
        Some(row) => {
            let mut active: follower::ActiveModel = row.into();
            active.last_seen_at = Set(now);
            if is_message {
                active.last_message_at = Set(Some(now));
            }
            if let Some(subscribed) = subscribed {
                active.subscribed = Set(subscribed);
            }
            active.update(db).await?;
        }
        None => {
            follower::ActiveModel {
                id: Set(wxpilot_core::ids::new_id()),
                tenant_id: Set(account.tenant_id.clone()),
                account_id: Set(account.id.clone()),
                openid: Set(message.from_user_name.clone()),
                // Someone who messages the account follows it.
                subscribed: Set(subscribed.unwrap_or(true)),
                first_seen_at: Set(now),
                last_seen_at: Set(now),
                last_message_at: Set(is_message.then_some(now)),
                bot_paused_until: Set(None),
                tags: Set(serde_json::json!([])),
                pending_reply: Set(None),
                last_send_error: Set(None),
            }
            .insert(db)
            .await?;
        }
    }
    Ok(())
}

/// Appends one message to the follower's conversation.
async fn store_message(
    db: &DatabaseConnection,
    account: &CallbackAccount,
    openid: &str,
    direction: &str,
    kind: &str,
    content: &str,
    wechat_msg_id: Option<String>,
) -> anyhow::Result<()> {
    conversation_message::ActiveModel {
        id: Set(wxpilot_core::ids::new_id()),
        tenant_id: Set(account.tenant_id.clone()),
        account_id: Set(account.id.clone()),
        openid: Set(openid.to_owned()),
        direction: Set(direction.to_owned()),
        kind: Set(kind.to_owned()),
        content: Set(content.to_owned()),
        wechat_msg_id: Set(wechat_msg_id),
        job_id: Set(None),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// A keyword rule's reply, else a confident FAQ answer, else `None`.
async fn text_answer(
    db: &DatabaseConnection,
    account_id: &str,
    content: &str,
) -> anyhow::Result<Option<String>> {
    let rules = load_rules(db, account_id).await?;
    if let Some(rule) = rules.first_match(content) {
        return Ok(Some(rule.reply.clone()));
    }
    let index = load_knowledge(db, account_id).await?;
    let hits = index.search(content, None, TOP_K, &HybridConfig::default())?;
    Ok(match decide(&hits, &DecisionPolicy::default()) {
        ReplyDecision::FaqAnswer { answer, .. } => Some(answer.to_owned()),
        ReplyDecision::Llm { .. } => None,
    })
}

/// The account's keyword rules, compiled.
async fn load_rules(db: &DatabaseConnection, account_id: &str) -> anyhow::Result<RuleSet> {
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
    Ok(RuleSet::compile(definitions)?)
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

/// What identifies the state of an account's knowledge base: entries are never edited in
/// place (only created and deleted), and ids grow with time, so the count and the largest
/// id change whenever the set does, on any replica.
type KnowledgeFingerprint = (i64, Option<String>);

/// Built indexes per account, rebuilt when the fingerprint moves.
/// A built index and the fingerprint it was built at.
type CachedIndex = (KnowledgeFingerprint, Arc<KnowledgeIndex>);

static KNOWLEDGE_CACHE: LazyLock<Mutex<HashMap<String, CachedIndex>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

async fn knowledge_fingerprint(
    db: &DatabaseConnection,
    account_id: &str,
) -> anyhow::Result<KnowledgeFingerprint> {
    let row: Option<KnowledgeFingerprint> = knowledge_entry::Entity::find()
        .select_only()
        .column_as(knowledge_entry::Column::Id.count(), "n")
        .column_as(knowledge_entry::Column::Id.max(), "m")
        .filter(knowledge_entry::Column::AccountId.eq(account_id))
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.unwrap_or((0, None)))
}

/// The account's knowledge base as a BM25 index (embeddings are not used yet), from the
/// in-process cache unless the entries changed since it was built.
async fn load_knowledge(
    db: &DatabaseConnection,
    account_id: &str,
) -> anyhow::Result<Arc<KnowledgeIndex>> {
    let fingerprint = knowledge_fingerprint(db, account_id).await?;
    if let Ok(cache) = KNOWLEDGE_CACHE.lock()
        && let Some((cached, index)) = cache.get(account_id)
        && *cached == fingerprint
    {
        return Ok(Arc::clone(index));
    }
    let index = Arc::new(build_knowledge(db, account_id).await?);
    if let Ok(mut cache) = KNOWLEDGE_CACHE.lock() {
        cache.insert(account_id.to_owned(), (fingerprint, Arc::clone(&index)));
    }
    Ok(index)
}

async fn build_knowledge(
    db: &DatabaseConnection,
    account_id: &str,
) -> anyhow::Result<KnowledgeIndex> {
    let rows = knowledge_entry::Entity::find()
        .filter(knowledge_entry::Column::AccountId.eq(account_id))
        .order_by_asc(knowledge_entry::Column::Id)
        .all(db)
        .await?;
    let entries = rows.into_iter().filter(|r| r.kind == "faq").map(|r| {
        let alternative_questions = serde_json::from_value(r.alternatives).unwrap_or_default();
        (
            KnowledgeEntry {
                id: r.id,
                content: EntryContent::Faq(FaqEntry {
                    question: r.question,
                    answer: r.answer,
                    alternative_questions,
                }),
            },
            None,
        )
    });
    Ok(KnowledgeIndex::build(entries)?)
}
