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

/// Where a job stands. `succeeded`, `cancelled` and `dead` are final.
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
pub enum JobStatus {
    /// Waiting for a worker (or for its retry time).
    #[sea_orm(string_value = "queued")]
    Queued,
    /// A worker holds it.
    #[sea_orm(string_value = "running")]
    Running,
    /// Done; `result` holds the outcome.
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// The last attempt failed and another is scheduled at `run_at`; `error` says why.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Cancelled on request.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// Out of attempts, or failed with an error retrying cannot fix; `error` keeps the last
    /// error. `POST /v1/jobs/{id}/retry` queues it again.
    #[sea_orm(string_value = "dead")]
    Dead,
}

impl JobStatus {
    /// Whether nothing more will happen to the job (unless retried by hand).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Cancelled | JobStatus::Dead
        )
    }

    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Dead => "dead",
        }
    }
}
