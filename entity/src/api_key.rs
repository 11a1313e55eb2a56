//! An API key: shown once at creation, stored only as a hash.

use sea_orm::entity::prelude::*;

use crate::Role;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The first characters of the key, safe to show so people can tell keys apart.
    pub prefix: String,
    /// Hex SHA-256 of the whole key. Keys carry 190 random bits, so a fast hash is enough.
    #[sea_orm(unique)]
    pub key_hash: String,
    pub role: Role,
    /// JSON array of scope names; `["*"]` means every area the role allows.
    pub scopes: Json,
    /// The user or key that created it (`user:<id>`, `api_key:<id>` or `cli`).
    pub created_by: String,
    pub last_used_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
