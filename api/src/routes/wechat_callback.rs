//! The WeChat callback: `GET /wechat/{account_id}` (URL verification) and
//! `POST /wechat/{account_id}` (messages and events, plain, compatible and safe mode).
//!
//! Public: WeChat signs requests with the account's callback token instead of a bearer.
//! Rejections (unknown account, bad signature, stale timestamp, unreadable body) happen
//! before anything is stored. Once a request is verified, content problems never give a
//! 5xx: the answer is a passive reply or `success`, inside `customer_service.answer_budget_ms`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set, SqlErr};
use secrecy::ExposeSecret;
use serde::Deserialize;
use wxpilot_core::service::answers::{self, FastAnswer};
use wxpilot_core::service::conversations::{self, ReplyJob, ReplySource};
use wxpilot_core::service::jobs::NewJob;
use wxpilot_core::service::publications;
use wxpilot_core::service::recommendations::{self, EventTarget};
use wxpilot_core::service::{Actor, accounts};
use wxpilot_entity::{
    EncryptionMode, callback_dedup, conversation_message, follower, official_account,
};
use wxpilot_kb::handoff::HandoffDetector;
use wxpilot_kb::reply::{MAX_PASSIVE_REPLY_BYTES, shape_reply};
use wxpilot_wechat::{
    CryptoError, DEFAULT_TIMESTAMP_WINDOW, EventKind, InboundMessage, MessageCrypt, MessageKind,
    PassiveReply, PublishResult, PublishStatus, ReplyBody, SUCCESS, XmlLimits, check_timestamp,
    parse_envelope, parse_message, verify_url_signature,
};

use crate::error::ApiError;
use crate::state::AppState;

/// Sent on subscribe when the account has none of its own.
pub const DEFAULT_WELCOME: &str = "感谢关注！";
/// WeChat retries for about 15 s; ten minutes covers that with room for clock skew.
const DEDUP_TTL_SECS: u64 = 600;

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

/// What verification needs of the account: read and opened once, then kept for
/// `customer_service.account_cache_secs` (see [`AppState::callback_accounts`]).
pub struct CallbackAccount {
    id: String,
    tenant_id: String,
    token: String,
    mode: EncryptionMode,
    crypt: MessageCrypt,
    /// Verified accounts have the customer-service API; others answer passively only.
    verified: bool,
    /// Sent on subscribe (the default when `None`).
    welcome: Option<String>,
}

/// Finds the account and opens its credentials, from the cache when it is fresh.
async fn load_account(
    state: &AppState,
    account_id: &str,
) -> Result<Arc<CallbackAccount>, ApiError> {
    let now = std::time::Instant::now();
    if let Some(account) = state.callback_accounts.get(account_id, now) {
        return Ok(account);
    }
    let generation = state.callback_accounts.generation();
    // The only unscoped lookup by id: WeChat does not know tenants, so the tenant comes
    // from the account; everything after this is scoped to it.
    let account = official_account::Entity::find_by_id(account_id)
        .one(&state.db)
        .await
        .map_err(|e| ApiError::Unavailable(format!("database: {e}")))?
        .ok_or_else(|| ApiError::NotFound(format!("no account {account_id}")))?;
    let credentials = accounts::open_credentials(&state.secrets, &account)?;
    let crypt = MessageCrypt::new(
        credentials.callback_token.clone(),
        credentials.encoding_aes_key.expose_secret(),
        credentials.app_id.clone(),
    )
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("account {}: {e}", account.id)))?;
    let account = Arc::new(CallbackAccount {
        id: account.id,
        tenant_id: account.tenant_id,
        token: credentials.callback_token,
        mode: credentials.encryption_mode,
        crypt,
        verified: account.verified,
        welcome: account.welcome_message,
    });
    state
        .callback_accounts
        .put(account_id, account.clone(), now, generation);
    Ok(account)
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
    // Before any database or crypto work: a flood against one account costs little.
    if let Err(wait) = state.callbacks.take(&path, std::time::Instant::now()) {
        tracing::warn!(
            retry_after_secs = wait,
            "callback rate limit reached for this account"
        );
        return Err(ApiError::TooManyRequests(format!(
            "too many callback requests for this account; retry in {wait} s"
        )));
    }
    let account = load_account(&state, &path).await?;
    let encrypted = q.encrypt_type.as_deref() == Some("aes");
    let message = read_message(&account, &q, &body, encrypted)?;
    let budget = Duration::from_millis(state.settings.customer_service.answer_budget_ms);
    let mut inbound = Inbound::new(&account, &message);
    let handled =
        tokio::time::timeout(budget, answer(&state, &account, &message, &mut inbound)).await;
    // A delivery this process claimed keeps its message whatever happened after the claim
    // (an error, the budget running out): written in the background, so the answer is
    // not delayed further.
    if let Some(row) = inbound.unwritten() {
        let db = state.db.clone();
        tokio::spawn(async move {
            if let Err(e) = conversation_message::Entity::insert(row)
                .exec_without_returning(&db)
                .await
            {
                tracing::error!(error = %e, "storing the follower's message failed");
            }
        });
    }
    let answer = match handled {
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
    inbound: &mut Inbound,
) -> anyhow::Result<Option<String>> {
    let key = format!("{}", message.dedup_key());
    if !first_delivery(state, &account.id, &key).await? {
        tracing::info!(dedup_key = %key, "retried delivery; already handled");
        return Ok(None);
    }
    inbound.claimed = true;
    let db = &state.db;
    let is_message = message.msg_id.is_some();
    let follower = record_follower(db, account, message, is_message).await?;
    record_interaction(db, account, message, &key).await?;
    if let MessageKind::Event(EventKind::PublishJobFinish(result)) = &message.kind {
        record_publish_result(db, account, result).await?;
    }
    let reply = match &message.kind {
        MessageKind::Event(EventKind::Subscribe { .. }) => Some(
            account
                .welcome
                .clone()
                .unwrap_or_else(|| DEFAULT_WELCOME.to_owned()),
        ),
        MessageKind::Text { content } => {
            text_reply(state, account, &follower, content, inbound, &key).await?
        }
        _ => None,
    };
    // The first part is the passive reply; longer answers are rare for FAQ text and the
    // rest would need the customer-service API.
    let passive = reply.and_then(|r| shape_reply(&r).into_iter().next());
    // The follower's message and the answer in one statement; ids are made now, in order,
    // so a reader paging by id never passes over a row written later.
    let question = inbound.take_row().map(|(_, row)| row);
    let outbound = passive.as_ref().map(|text| {
        message_row(
            account,
            &message.from_user_name,
            conversation_message::DIRECTION_OUT,
            "passive",
            text,
            None,
        )
    });
    let rows: Vec<_> = question.iter().cloned().chain(outbound).collect();
    if !rows.is_empty()
        && let Err(e) = conversation_message::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
    {
        inbound.row = question;
        return Err(e.into());
    }
    Ok(passive)
}

/// The follower's message of this delivery, written exactly once and only when the
/// delivery was claimed (a deduplicated retry writes nothing): with the passive answer, or
/// before a `reply` job is queued (the job reads the conversation), or by `receive`
/// after handling failed or ran out of time.
struct Inbound {
    row: Option<conversation_message::ActiveModel>,
    /// This delivery passed deduplication.
    claimed: bool,
}

impl Inbound {
    fn new(account: &CallbackAccount, message: &InboundMessage) -> Self {
        Self {
            row: Some(message_row(
                account,
                &message.from_user_name,
                conversation_message::DIRECTION_IN,
                &message.msg_type,
                &inbound_content(message),
                message.msg_id.clone(),
            )),
            claimed: false,
        }
    }

    /// The row to write now, with a fresh id and time, and that id; `None` once taken.
    fn take_row(&mut self) -> Option<(String, conversation_message::ActiveModel)> {
        let mut row = self.row.take()?;
        let id = wxpilot_core::ids::new_id();
        row.id = Set(id.clone());
        row.created_at = Set(Utc::now());
        Some((id, row))
    }

    /// Writes the message now and returns its id (`None`: it was written already).
    async fn save(&mut self, db: &DatabaseConnection) -> anyhow::Result<Option<String>> {
        let Some((id, row)) = self.take_row() else {
            return Ok(None);
        };
        if let Err(e) = conversation_message::Entity::insert(row.clone())
            .exec_without_returning(db)
            .await
        {
            // Still owed: `receive` tries once more in the background.
            self.row = Some(row);
            return Err(e.into());
        }
        Ok(Some(id))
    }

    /// The row still to write for a claimed delivery.
    fn unwritten(&mut self) -> Option<conversation_message::ActiveModel> {
        if self.claimed {
            self.take_row().map(|(_, row)| row)
        } else {
            None
        }
    }
}

/// The passive answer to a follower's text: an answer kept for them first (accounts
/// without the customer-service API), then the handoff notice, a rule's reply or a
/// confident FAQ answer; anything else queues a `reply` job (whose answer arrives as a
/// customer-service message, or on the next message for unverified accounts). A follower
/// handed to agents gets nothing from the bot while the pause lasts.
async fn text_reply(
    state: &AppState,
    account: &CallbackAccount,
    follower: &follower::Model,
    content: &str,
    inbound: &mut Inbound,
    delivery_key: &str,
) -> anyhow::Result<Option<String>> {
    let db = &state.db;
    let cs = &state.settings.customer_service;
    let openid = &follower.openid;
    // The row `record_follower` just wrote: no second read on the hot path.
    let pending = conversations::take_pending(db, follower).await?;
    let now = Utc::now();
    let handoff = HandoffDetector::new(&cs.handoff_phrases);
    let answer = if handoff.is_handoff_request(content) {
        let minutes = i64::try_from(cs.handoff_pause_minutes).unwrap_or(i64::MAX / 120_000);
        let until = now + chrono::Duration::minutes(minutes);
        conversations::pause(db, &account.tenant_id, &account.id, openid, until).await?;
        tracing::info!(%until, "handoff requested; bot paused for this follower");
        Some(cs.handoff_reply.clone())
    } else if follower.bot_paused_until.is_some_and(|t| t > now) {
        None
    } else {
        match answers::fast_answer(db, &account.id, content, || embed_question(state, content))
            .await?
        {
            FastAnswer::Rule(reply) | FastAnswer::Faq(reply) => Some(reply),
            FastAnswer::Llm(_) => {
                let message_id = inbound.save(db).await?.unwrap_or_default();
                queue_reply(state, account, openid, content, &message_id, delivery_key).await?;
                (!account.verified).then(|| cs.pending_notice.clone())
            }
        }
    };
    let (reply, keep) = combine_passive(pending, answer);
    if let Some(keep) = keep {
        // Too long to share one passive reply: the newer answer waits for the next message.
        conversations::set_pending(db, &account.tenant_id, &account.id, openid, Some(&keep))
            .await?;
    }
    Ok(reply)
}

/// The question's embedding for hybrid retrieval, when an embedding model is configured
/// and answers within `customer_service.query_embedding_timeout_ms`; `None` (BM25 alone)
/// otherwise, so a slow or missing model never costs the follower the passive answer.
async fn embed_question(state: &AppState, content: &str) -> Option<answers::QueryEmbedding> {
    let model = state.embedding_model()?;
    let embedder = state.embedder.as_ref()?;
    let cs = &state.settings.customer_service;
    // Never more than half the answer budget: the rest is for storing and answering.
    let budget = Duration::from_millis(cs.query_embedding_timeout_ms.min(cs.answer_budget_ms / 2));
    let embedding = wxpilot_worker::inference::embed_question(embedder.as_ref(), model, content);
    tokio::time::timeout(budget, embedding)
        .await
        .unwrap_or_else(|_| {
            tracing::debug!("question embedding too slow; BM25 alone");
            None
        })
}

/// The passive reply from a kept answer and a new one, and what must wait for the next
/// message when both do not fit in one reply.
fn combine_passive(
    pending: Option<String>,
    answer: Option<String>,
) -> (Option<String>, Option<String>) {
    match (pending, answer) {
        (Some(p), Some(a)) => {
            let both = format!("{p}\n\n{a}");
            if both.len() <= MAX_PASSIVE_REPLY_BYTES {
                (Some(both), None)
            } else {
                (Some(p), Some(a))
            }
        }
        (p, a) => (p.or(a), None),
    }
}

/// Queues the model's answer to a follower's question, once per delivery (WeChat's
/// retries are deduplicated before this; the idempotency key covers a crash in between).
async fn queue_reply(
    state: &AppState,
    account: &CallbackAccount,
    openid: &str,
    question: &str,
    message_id: &str,
    delivery_key: &str,
) -> anyhow::Result<()> {
    let payload = serde_json::to_value(ReplyJob {
        account_id: account.id.clone(),
        openid: openid.to_owned(),
        source: ReplySource::Bot {
            question: question.to_owned(),
            message_id: message_id.to_owned(),
        },
    })?;
    let (job, created) = state
        .intake
        .create(
            &Actor::system(&account.tenant_id),
            NewJob {
                kind: conversations::REPLY_JOB_KIND.to_owned(),
                payload,
                max_attempts: crate::routes::jobs::max_attempts(
                    state,
                    conversations::REPLY_JOB_KIND,
                ),
                idempotency_key: Some(format!("wechat:{}:{delivery_key}", account.id)),
                traceparent: None,
            },
        )
        .await?;
    if created
        && let Err(e) = state
            .queue
            .dispatch(conversations::REPLY_JOB_KIND, &job.id, None)
            .await
    {
        tracing::warn!(job_id = %job.id, error = %format!("{e:#}"), "queue unavailable; the sweeper will dispatch the reply");
    }
    Ok(())
}

/// `PUBLISHJOBFINISH`: WeChat's outcome of a publish, recorded on the publication (the
/// `publish` job may be polling for the same answer; whichever comes first settles it).
async fn record_publish_result(
    db: &DatabaseConnection,
    account: &CallbackAccount,
    result: &PublishResult,
) -> anyhow::Result<()> {
    let Some(publish_id) = &result.publish_id else {
        return Ok(());
    };
    let outcome = match result.status {
        Some(PublishStatus::Success) => Ok((
            result.article_id.clone(),
            result.article_urls.first().cloned(),
        )),
        Some(PublishStatus::Publishing) | None => return Ok(()),
        Some(other) => Err(format!(
            "WeChat reported the publish as {other:?} (failed articles {:?})",
            result.fail_idx
        )),
    };
    let known =
        publications::finish(db, &account.tenant_id, &account.id, publish_id, outcome).await?;
    if !known {
        tracing::info!(%publish_id, "PUBLISHJOBFINISH for a publish wxpilot did not submit");
    }
    Ok(())
}

/// A menu click on a button keyed by an item id, or a menu view of an item's URL, is an
/// interaction with that item for recommendations (stored once, by the delivery's key).
async fn record_interaction(
    db: &DatabaseConnection,
    account: &CallbackAccount,
    message: &InboundMessage,
    key: &str,
) -> anyhow::Result<()> {
    let target = match &message.kind {
        MessageKind::Event(EventKind::Click { key }) => EventTarget::MenuKey(key),
        MessageKind::Event(EventKind::View { url, .. }) => EventTarget::Url(url),
        _ => return Ok(()),
    };
    let at = chrono::DateTime::from_timestamp(message.create_time, 0).unwrap_or_else(Utc::now);
    recommendations::record_callback_event(
        db,
        &account.tenant_id,
        &account.id,
        &message.from_user_name,
        target,
        key,
        at,
    )
    .await?;
    Ok(())
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
    if let Some(mut conn) = state.redis_connection().await? {
        let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(format!("wxpilot:callback:{account_id}:{key}"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(DEDUP_TTL_SECS)
            .query_async(&mut conn)
            .await;
        return match set {
            Ok(set) => Ok(set.is_some()),
            Err(e) => {
                state.drop_redis_connection();
                Err(e.into())
            }
        };
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
) -> anyhow::Result<follower::Model> {
    let now = Utc::now();
    let subscribed = match &message.kind {
        MessageKind::Event(EventKind::Subscribe { .. }) => Some(true),
        MessageKind::Event(EventKind::Unsubscribe) => Some(false),
        _ => None,
    };
    // Following through a parametric QR code names its scene: where the follower came from.
    let source = match &message.kind {
        MessageKind::Event(EventKind::Subscribe {
            scene: Some(scene), ..
        }) => Some(scene.chars().take(128).collect::<String>()),
        _ => None,
    };
    // One statement whether the follower is new or known: insert, or on the (account,
    // openid) key update only what this delivery says, and read the row back.
    let mut update = vec![follower::Column::LastSeenAt];
    if is_message {
        update.push(follower::Column::LastMessageAt);
    }
    if subscribed.is_some() {
        update.push(follower::Column::Subscribed);
    }
    if source.is_some() {
        update.push(follower::Column::Source);
    }
    let row = follower::ActiveModel {
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
        source: Set(source),
    };
    let model = follower::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([follower::Column::AccountId, follower::Column::Openid])
                .update_columns(update)
                .to_owned(),
        )
        .exec_with_returning(db)
        .await?;
    // Account ids are unique across tenants; the check keeps the scoping explicit.
    anyhow::ensure!(
        model.tenant_id == account.tenant_id,
        "follower row of another tenant"
    );
    Ok(model)
}

/// One message of the follower's conversation, not yet written.
fn message_row(
    account: &CallbackAccount,
    openid: &str,
    direction: &str,
    kind: &str,
    content: &str,
    wechat_msg_id: Option<String>,
) -> conversation_message::ActiveModel {
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
}
