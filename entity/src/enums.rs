//! Closed sets of values stored as short strings, so both SQLite and Postgres hold
//! them the same way and an unknown value is refused at the API edge.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a user or an API key may do inside its tenant. Ordered: each role can do
/// everything the roles below it can.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything in the tenant, changes nothing.
    #[sea_orm(string_value = "viewer")]
    Viewer,
    /// Also writes content and campaigns.
    #[sea_orm(string_value = "editor")]
    Editor,
    /// Also manages official accounts, users and API keys.
    #[sea_orm(string_value = "admin")]
    Admin,
    /// Also manages owners; the tenant always keeps at least one.
    #[sea_orm(string_value = "owner")]
    Owner,
}

impl Role {
    /// The role's name as stored and as shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored or configured role name.
    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// How an official account's callback messages are protected (WeChat's 消息加解密方式).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum EncryptionMode {
    /// 明文模式: no encryption.
    #[sea_orm(string_value = "plain")]
    Plain,
    /// 兼容模式: plain fields and `<Encrypt>` side by side.
    #[sea_orm(string_value = "compatible")]
    Compatible,
    /// 安全模式: `<Encrypt>` only.
    #[sea_orm(string_value = "safe")]
    Safe,
}

/// Where a campaign stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Being prepared; nothing runs yet.
    #[sea_orm(string_value = "draft")]
    Draft,
    /// Running between its dates.
    #[sea_orm(string_value = "active")]
    Active,
    /// Stopped for now.
    #[sea_orm(string_value = "paused")]
    Paused,
    /// Over.
    #[sea_orm(string_value = "completed")]
    Completed,
    /// Kept for the record only.
    #[sea_orm(string_value = "archived")]
    Archived,
}
