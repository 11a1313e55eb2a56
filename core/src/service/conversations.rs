//! Conversations of followers with an official account: what the callback stored, the
//! answers the `reply` job sent (or keeps for the next passive reply), handoff to agents,
//! and the agents' own messages. Everything is scoped by tenant and account.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wxpilot_entity::{conversation_message, follower};

use super::{Actor, Page, PageRequest, accounts, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::new_id;

/// The job kind that answers a follower (model answer or agent message).
pub const REPLY_JOB_KIND: &str = "reply";
/// Stored kind of a customer-service message that went out.
pub const KIND_SENT: &str = "customer_service";
/// Stored kind of an answer kept for the follower's next message (no customer-service API).
pub const KIND_PENDING: &str = "pending";
/// Stored kind of an answer WeChat refused (window expired, too many messages).
pub const KIND_SEND_FAILED: &str = "send_failed";
/// Longest agent message.
pub const MAX_AGENT_TEXT: usize = 2_000;

/// Who answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ReplySource {
    /// The model, grounded in the knowledge base, answers this question.
    Bot {
        /// The follower's text.
        question: String,
        /// The stored message it came in as.
        message_id: String,
    },
    /// An agent's text, sent as it is.
    Agent {
        /// The text.
        text: String,
    },
}

/// What the `reply` job is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyJob {
    /// The account.
    pub account_id: String,
    /// The follower.
    pub openid: String,
    /// Who answers.
    #[serde(flatten)]
    pub source: ReplySource,
}

/// `POST /v1/accounts/{id}/conversations/{openid}/messages`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentMessage {
    /// The text to send (split into several messages past 2048 bytes).
    pub text: String,
}

impl AgentMessage {
    /// Checks the text and makes the job payload.
    pub fn into_job(self, account_id: &str, openid: &str) -> ServiceResult<ReplyJob> {
        let n = self.text.trim().chars().count();
        let controls = self
            .text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
        if n == 0 || n > MAX_AGENT_TEXT || controls {
            return Err(ServiceError::field(
                "text",
                format!("must be 1 to {MAX_AGENT_TEXT} characters without control characters"),
            ));
        }
        Ok(ReplyJob {
            account_id: account_id.to_owned(),
            openid: openid.to_owned(),
            source: ReplySource::Agent {
                text: self.text.trim().to_owned(),
            },
        })
    }
}

/// A follower's conversation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    /// The follower's openid.
    pub openid: String,
    /// Whether they follow the account.
    pub subscribed: bool,
    /// First seen.
    pub first_seen_at: DateTime<Utc>,
    /// Last seen.
    pub last_seen_at: DateTime<Utc>,
    /// Their last message (customer-service messages may be sent for 48 h after it).
    pub last_message_at: Option<DateTime<Utc>>,
    /// Set after a handoff: the bot is quiet until then and agents answer.
    pub bot_paused_until: Option<DateTime<Utc>>,
    /// True while the bot is paused for a handoff.
    pub needs_agent: bool,
    /// An answer waiting for the follower's next message (accounts without the
    /// customer-service API).
    pub pending_reply: Option<String>,
    /// The last refusal of WeChat's customer-service API (45015, 45047), if any.
    pub last_send_error: Option<String>,
    /// The scene of the parametric QR code they followed through, if any.
    pub source: Option<String>,
}

impl Conversation {
    fn from_model(m: follower::Model, now: DateTime<Utc>) -> Self {
        Self {
            needs_agent: m.bot_paused_until.is_some_and(|t| t > now),
            openid: m.openid,
            subscribed: m.subscribed,
            first_seen_at: m.first_seen_at,
            last_seen_at: m.last_seen_at,
            last_message_at: m.last_message_at,
            bot_paused_until: m.bot_paused_until,
            pending_reply: m.pending_reply,
            last_send_error: m.last_send_error,
            source: m.source,
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    /// Id.
    pub id: String,
    /// `in` (from the follower) or `out`.
    pub direction: String,
    /// `text`, an event name, `passive`, `customer_service`, `pending`, `send_failed`.
    pub kind: String,
    /// The text.
    pub content: String,
    /// The job that sent it, for answers.
    pub job_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<conversation_message::Model> for Message {
    fn from(m: conversation_message::Model) -> Self {
        Self {
            id: m.id,
            direction: m.direction,
            kind: m.kind,
            content: m.content,
            job_id: m.job_id,
            created_at: m.created_at,
        }
    }
}

fn scoped_followers(tenant_id: &str, account_id: &str) -> sea_orm::Select<follower::Entity> {
    follower::Entity::find()
        .filter(follower::Column::TenantId.eq(tenant_id))
        .filter(follower::Column::AccountId.eq(account_id))
}

fn scoped_messages(
    tenant_id: &str,
    account_id: &str,
    openid: &str,
) -> sea_orm::Select<conversation_message::Entity> {
    conversation_message::Entity::find()
        .filter(conversation_message::Column::TenantId.eq(tenant_id))
        .filter(conversation_message::Column::AccountId.eq(account_id))
        .filter(conversation_message::Column::Openid.eq(openid))
}

/// The follower row of `openid`, if the account has heard from them.
pub async fn follower<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    openid: &str,
) -> ServiceResult<Option<follower::Model>> {
    Ok(scoped_followers(tenant_id, account_id)
        .filter(follower::Column::Openid.eq(openid))
        .one(conn)
        .await?)
}

async fn require_follower<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    openid: &str,
) -> ServiceResult<follower::Model> {
    if !accounts::exists(conn, actor, account_id).await? {
        return Err(ServiceError::NotFound("official account"));
    }
    if !super::recommendations::valid_openid(openid) {
        return Err(ServiceError::NotFound("conversation"));
    }
    follower(conn, &actor.tenant_id, account_id, openid)
        .await?
        .ok_or(ServiceError::NotFound("conversation"))
}

/// The account's conversations, oldest follower first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    page: &PageRequest,
) -> ServiceResult<Page<Conversation>> {
    if !accounts::exists(conn, actor, account_id).await? {
        return Err(ServiceError::NotFound("official account"));
    }
    let query = scoped_followers(&actor.tenant_id, account_id);
    let (rows, limit) = fetch_page(conn, query, follower::Column::Id, page).await?;
    let now = Utc::now();
    Ok(Page::from_rows(
        rows,
        limit,
        |m| &m.id,
        |m| Conversation::from_model(m, now),
    ))
}

/// One conversation.
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    openid: &str,
) -> ServiceResult<Conversation> {
    let row = require_follower(conn, actor, account_id, openid).await?;
    Ok(Conversation::from_model(row, Utc::now()))
}

/// A conversation's messages, oldest first.
pub async fn messages<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    openid: &str,
    page: &PageRequest,
) -> ServiceResult<Page<Message>> {
    require_follower(conn, actor, account_id, openid).await?;
    let query = scoped_messages(&actor.tenant_id, account_id, openid);
    let (rows, limit) = fetch_page(conn, query, conversation_message::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, Message::from))
}

/// Checks that the conversation exists (for agents' messages).
pub async fn exists<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    openid: &str,
) -> ServiceResult<()> {
    require_follower(conn, actor, account_id, openid)
        .await
        .map(|_| ())
}

/// Ends a handoff early: the bot answers the follower again.
pub async fn resume<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    openid: &str,
) -> ServiceResult<Conversation> {
    let row = require_follower(conn, actor, account_id, openid).await?;
    let mut active = row.into_active_model();
    active.bot_paused_until = Set(None);
    let row = active.update(conn).await?;
    super::audit::record(
        conn,
        actor,
        super::audit::Action::Update,
        "conversation",
        &row.id,
        serde_json::json!({ "bot_paused_until": null }),
    )
    .await?;
    Ok(Conversation::from_model(row, Utc::now()))
}

/// Sets one column of the follower row of `openid`.
async fn set_follower_column<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    openid: &str,
    column: follower::Column,
    value: sea_orm::Value,
) -> ServiceResult<()> {
    follower::Entity::update_many()
        .col_expr(column, sea_orm::sea_query::Expr::value(value))
        .filter(follower::Column::TenantId.eq(tenant_id))
        .filter(follower::Column::AccountId.eq(account_id))
        .filter(follower::Column::Openid.eq(openid))
        .exec(conn)
        .await?;
    Ok(())
}

/// Pauses the bot for the follower until `until` (a handoff).
pub async fn pause<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    openid: &str,
    until: DateTime<Utc>,
) -> ServiceResult<()> {
    let value = Some(until).into();
    set_follower_column(
        conn,
        tenant_id,
        account_id,
        openid,
        follower::Column::BotPausedUntil,
        value,
    )
    .await
}

/// Sets (or clears) the answer kept for the follower's next message.
pub async fn set_pending<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    openid: &str,
    answer: Option<&str>,
) -> ServiceResult<()> {
    let value = answer.map(str::to_owned).into();
    set_follower_column(
        conn,
        tenant_id,
        account_id,
        openid,
        follower::Column::PendingReply,
        value,
    )
    .await
}

/// Takes the answer kept for `row`'s follower (the row as just read), if any: exactly one
/// caller gets it, even with several api replicas (the clear only succeeds while the value
/// is still the one read).
pub async fn take_pending<C: ConnectionTrait>(
    conn: &C,
    row: &follower::Model,
) -> ServiceResult<Option<String>> {
    let Some(pending) = &row.pending_reply else {
        return Ok(None);
    };
    let cleared = follower::Entity::update_many()
        .col_expr(
            follower::Column::PendingReply,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .filter(follower::Column::Id.eq(row.id.as_str()))
        .filter(follower::Column::PendingReply.eq(pending.as_str()))
        .exec(conn)
        .await?;
    Ok((cleared.rows_affected == 1).then(|| pending.clone()))
}

/// Records WeChat's refusal to deliver (or clears it after a success).
pub async fn set_send_error<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    openid: &str,
    error: Option<&str>,
) -> ServiceResult<()> {
    let value = error.map(str::to_owned).into();
    set_follower_column(
        conn,
        tenant_id,
        account_id,
        openid,
        follower::Column::LastSendError,
        value,
    )
    .await
}

/// Appends an outbound message written by job `job_id`; its id.
pub async fn record_outbound<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    openid: &str,
    kind: &str,
    content: &str,
    job_id: &str,
) -> ServiceResult<String> {
    let id = new_id();
    conversation_message::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.to_owned()),
        account_id: Set(account_id.to_owned()),
        openid: Set(openid.to_owned()),
        direction: Set(conversation_message::DIRECTION_OUT.to_owned()),
        kind: Set(kind.to_owned()),
        content: Set(content.to_owned()),
        wechat_msg_id: Set(None),
        job_id: Set(Some(job_id.to_owned())),
        created_at: Set(Utc::now()),
    }
    .insert(conn)
    .await?;
    Ok(id)
}

/// Removes a message (an answer part whose sending failed and will be retried).
pub async fn delete_message<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    id: &str,
) -> ServiceResult<()> {
    conversation_message::Entity::delete_many()
        .filter(conversation_message::Column::TenantId.eq(tenant_id))
        .filter(conversation_message::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// How many outbound messages job `job_id` has recorded (parts already handled).
pub async fn parts_recorded<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    job_id: &str,
) -> ServiceResult<u64> {
    Ok(conversation_message::Entity::find()
        .filter(conversation_message::Column::TenantId.eq(tenant_id))
        .filter(conversation_message::Column::JobId.eq(job_id))
        .count(conn)
        .await?)
}

/// The conversation before message `before` (its id), oldest first: `(from follower,
/// text)` of the last `n` text messages either way.
pub async fn history<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    openid: &str,
    before: &str,
    n: u64,
) -> ServiceResult<Vec<(bool, String)>> {
    let rows = scoped_messages(tenant_id, account_id, openid)
        .filter(conversation_message::Column::Id.lt(before))
        .filter(conversation_message::Column::Kind.is_in([
            "text",
            "passive",
            KIND_SENT,
            KIND_PENDING,
        ]))
        .order_by_desc(conversation_message::Column::Id)
        .limit(n)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .rev()
        .map(|m| (m.direction == conversation_message::DIRECTION_IN, m.content))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_messages_are_checked_and_trimmed() {
        let ok = AgentMessage {
            text: "  您好，我是客服小王  ".into(),
        };
        let job = ok.into_job("acc", "o1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            job.source,
            ReplySource::Agent {
                text: "您好，我是客服小王".into()
            }
        );
        assert!(
            AgentMessage { text: " ".into() }
                .into_job("a", "o")
                .is_err()
        );
        let long = AgentMessage {
            text: "字".repeat(MAX_AGENT_TEXT + 1),
        };
        assert!(long.into_job("a", "o").is_err());
    }

    #[test]
    fn reply_payloads_round_trip_with_their_source() {
        let job = ReplyJob {
            account_id: "a".into(),
            openid: "o".into(),
            source: ReplySource::Bot {
                question: "营业时间？".into(),
                message_id: "m".into(),
            },
        };
        let value = serde_json::to_value(&job).unwrap_or_default();
        assert_eq!(value["source"], "bot");
        let back: ReplyJob = serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, job);
    }
}
