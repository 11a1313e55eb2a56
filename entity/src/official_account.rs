//! A WeChat Official Account (公众号) managed by a tenant.

use sea_orm::entity::prelude::*;

use crate::EncryptionMode;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "official_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// 原始 ID, `gh_…`.
    pub original_id: String,
    pub app_id: String,
    /// AES-256-GCM ciphertext of the AppSecret (see `wxpilot_core::secrets`).
    pub app_secret_enc: String,
    /// The callback token WeChat signs requests with; people copy it into WeChat's console.
    pub callback_token: String,
    /// AES-256-GCM ciphertext of the EncodingAESKey.
    pub encoding_aes_key_enc: String,
    pub encryption_mode: EncryptionMode,
    /// Verified (认证) accounts have the customer-service API; others answer passively.
    pub verified: bool,
    /// Sent on subscribe instead of the default welcome.
    pub welcome_message: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
