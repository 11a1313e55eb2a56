//! One message of a follower's conversation with an account, either direction.

use sea_orm::entity::prelude::*;

/// From the follower.
pub const DIRECTION_IN: &str = "in";
/// To the follower.
pub const DIRECTION_OUT: &str = "out";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversation_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub account_id: String,
    pub openid: String,
    /// [`DIRECTION_IN`] or [`DIRECTION_OUT`].
    pub direction: String,
    /// `text`, `event`, `passive`, `custom`, … (lower-case).
    pub kind: String,
    pub content: String,
    /// WeChat's `MsgId` of an inbound message.
    pub wechat_msg_id: Option<String>,
    /// The reply job that produced an outbound message.
    pub job_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
