//! A follower of an Official Account, one row per (account, openid).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "followers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub openid: String,
    pub subscribed: bool,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    /// The follower's last message: customer-service sends are allowed for 48 h after it.
    pub last_message_at: Option<DateTimeUtc>,
    /// While in the future the bot stays silent for this follower (human handoff).
    pub bot_paused_until: Option<DateTimeUtc>,
    /// JSON array of tag names.
    pub tags: Json,
    /// An answer the customer-service API could not deliver (48001): it becomes the
    /// passive reply to the follower's next message.
    pub pending_reply: Option<String>,
    /// The last customer-service send failure (e.g. `45015 reply window expired`).
    pub last_send_error: Option<String>,
    /// The scene of the QR code they followed through (`qrscene_…` without the prefix).
    pub source: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
