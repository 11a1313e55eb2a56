//! Official accounts. The AppSecret and EncodingAESKey are write-only: sealed before they
//! are stored, never returned, never logged, redacted in the audit log.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_entity::{EncryptionMode, official_account};

use super::audit::{self, Action, REDACTED};
use super::{Actor, Page, PageRequest, conflict_on_unique, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::new_id;
use crate::secrets::SecretBox;
use crate::validate::{
    Checks, is_app_id, is_app_secret, is_callback_token, is_encoding_aes_key, is_original_id,
};

const RESOURCE: &str = "official_account";

/// A new official account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Display name, 1–100 characters.
    #[schema(example = "Acme Coffee 官方")]
    pub name: String,
    /// 原始 ID, `gh_…`.
    #[schema(example = "gh_10f6c3c3ac5a")]
    pub original_id: String,
    /// AppID: `wx` and 16 hex digits.
    #[schema(example = "wx2c2769f8efd9abc2")]
    pub app_id: String,
    /// AppSecret (32 letters or digits). Write-only.
    #[schema(value_type = String, write_only, example = "0123456789abcdef0123456789abcdef")]
    pub app_secret: SecretString,
    /// The callback token set in WeChat's console: 3–32 letters or digits.
    #[schema(example = "spamtest")]
    pub callback_token: String,
    /// EncodingAESKey: 43 characters of base64. Write-only.
    #[schema(value_type = String, write_only, example = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")]
    pub encoding_aes_key: SecretString,
    /// Message protection mode; default `safe`.
    #[serde(default = "default_mode")]
    pub encryption_mode: EncryptionMode,
    /// Whether the account is verified (认证); default false.
    #[serde(default)]
    pub verified: bool,
    /// Sent to new followers (≤ 600 characters); a short default when absent.
    pub welcome_message: Option<String>,
}

fn default_mode() -> EncryptionMode {
    EncryptionMode::Safe
}

/// Changes to an official account; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// Display name.
    pub name: Option<String>,
    /// 原始 ID.
    pub original_id: Option<String>,
    /// AppID.
    pub app_id: Option<String>,
    /// New AppSecret. Write-only.
    #[schema(value_type = Option<String>, write_only)]
    pub app_secret: Option<SecretString>,
    /// New callback token.
    pub callback_token: Option<String>,
    /// New EncodingAESKey. Write-only.
    #[schema(value_type = Option<String>, write_only)]
    pub encoding_aes_key: Option<SecretString>,
    /// Message protection mode.
    pub encryption_mode: Option<EncryptionMode>,
    /// Verified (认证).
    pub verified: Option<bool>,
    /// The welcome message for new followers; an empty string restores the default.
    pub welcome_message: Option<String>,
}

/// An official account as the API shows it: no secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OfficialAccount {
    /// Account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// 原始 ID.
    pub original_id: String,
    /// AppID.
    pub app_id: String,
    /// Callback token (needed to fill in WeChat's console).
    pub callback_token: String,
    /// Message protection mode.
    pub encryption_mode: EncryptionMode,
    /// Verified (认证).
    pub verified: bool,
    /// The welcome message for new followers (`null`: the default).
    pub welcome_message: Option<String>,
    /// The path WeChat must call, relative to the public base URL.
    #[schema(example = "/wechat/01JEXAMPLE0000000000000000")]
    pub callback_path: String,
    /// Always true: an AppSecret is stored (it is never shown).
    pub app_secret_set: bool,
    /// Always true: an EncodingAESKey is stored (it is never shown).
    pub encoding_aes_key_set: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<official_account::Model> for OfficialAccount {
    fn from(m: official_account::Model) -> Self {
        Self {
            callback_path: format!("/wechat/{}", m.id),
            id: m.id,
            name: m.name,
            original_id: m.original_id,
            app_id: m.app_id,
            callback_token: m.callback_token,
            encryption_mode: m.encryption_mode,
            verified: m.verified,
            welcome_message: m.welcome_message,
            app_secret_set: !m.app_secret_enc.is_empty(),
            encoding_aes_key_set: !m.encoding_aes_key_enc.is_empty(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The decrypted credentials the WeChat layer needs. Never serialised.
pub struct AccountCredentials {
    /// AppID.
    pub app_id: String,
    /// AppSecret.
    pub app_secret: SecretString,
    /// Callback token.
    pub callback_token: String,
    /// EncodingAESKey.
    pub encoding_aes_key: SecretString,
    /// Message protection mode.
    pub encryption_mode: EncryptionMode,
}

fn secret_context(id: &str, column: &str) -> String {
    format!("official_accounts/{id}/{column}")
}

fn check_fields(
    checks: &mut Checks,
    name: Option<&str>,
    original_id: Option<&str>,
    app_id: Option<&str>,
    app_secret: Option<&SecretString>,
    callback_token: Option<&str>,
    encoding_aes_key: Option<&SecretString>,
) {
    if let Some(name) = name {
        checks.name("name", name, 100);
    }
    if let Some(v) = original_id {
        checks.check(
            is_original_id(v),
            "original_id",
            "must be gh_ followed by 4 to 32 letters or digits",
        );
    }
    if let Some(v) = app_id {
        checks.check(
            is_app_id(v),
            "app_id",
            "must be wx followed by 16 hexadecimal digits",
        );
    }
    if let Some(v) = app_secret {
        checks.check(
            is_app_secret(v.expose_secret()),
            "app_secret",
            "must be 32 letters or digits",
        );
    }
    if let Some(v) = callback_token {
        checks.check(
            is_callback_token(v),
            "callback_token",
            "must be 3 to 32 letters or digits",
        );
    }
    if let Some(v) = encoding_aes_key {
        checks.check(
            is_encoding_aes_key(v.expose_secret()),
            "encoding_aes_key",
            "must be exactly 43 characters of A-Z, a-z, 0-9, + and /",
        );
    }
}

/// Longest welcome message (WeChat's text replies take 2048 bytes).
const MAX_WELCOME: usize = 600;

const DUPLICATE: &str = "an official account with this app_id already exists in this tenant";

/// Creates an account.
pub async fn create(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    actor: &Actor,
    input: NewAccount,
) -> ServiceResult<OfficialAccount> {
    let mut checks = Checks::new();
    check_fields(
        &mut checks,
        Some(&input.name),
        Some(&input.original_id),
        Some(&input.app_id),
        Some(&input.app_secret),
        Some(&input.callback_token),
        Some(&input.encoding_aes_key),
    );
    if let Some(welcome) = &input.welcome_message {
        checks.text("welcome_message", welcome, 1, MAX_WELCOME);
    }
    checks.finish()?;

    let id = new_id();
    let now = Utc::now();
    let app_id = input.app_id.to_ascii_lowercase();
    let model = official_account::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(actor.tenant_id.clone()),
        name: Set(input.name.clone()),
        original_id: Set(input.original_id.clone()),
        app_id: Set(app_id.clone()),
        app_secret_enc: Set(secrets.seal(
            input.app_secret.expose_secret(),
            &secret_context(&id, "app_secret"),
        )?),
        callback_token: Set(input.callback_token.clone()),
        encoding_aes_key_enc: Set(secrets.seal(
            input.encoding_aes_key.expose_secret(),
            &secret_context(&id, "encoding_aes_key"),
        )?),
        encryption_mode: Set(input.encryption_mode),
        verified: Set(input.verified),
        welcome_message: Set(input.welcome_message.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let txn = crate::db::begin_write(db).await?;
    let saved = model
        .insert(&txn)
        .await
        .map_err(|e| conflict_on_unique(e, DUPLICATE))?;
    audit::record(
        &txn,
        actor,
        Action::Create,
        RESOURCE,
        &id,
        json!({
            "name": input.name,
            "original_id": input.original_id,
            "app_id": app_id,
            "app_secret": REDACTED,
            "callback_token": input.callback_token,
            "encoding_aes_key": REDACTED,
            "encryption_mode": input.encryption_mode,
            "verified": input.verified,
            "welcome_message": input.welcome_message,
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

async fn find_model<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<official_account::Model> {
    super::find_owned::<official_account::Entity, _>(conn, actor, id).await
}

/// Whether the account exists in the actor's tenant (campaigns check their account this way).
pub async fn exists<C: ConnectionTrait>(conn: &C, actor: &Actor, id: &str) -> ServiceResult<bool> {
    match find_model(conn, actor, id).await {
        Ok(_) => Ok(true),
        Err(ServiceError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One account.
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<OfficialAccount> {
    find_model(conn, actor, id).await.map(Into::into)
}

/// The account's decrypted credentials, for the WeChat layer.
pub async fn credentials<C: ConnectionTrait>(
    conn: &C,
    secrets: &SecretBox,
    actor: &Actor,
    id: &str,
) -> ServiceResult<AccountCredentials> {
    open_credentials(secrets, &find_model(conn, actor, id).await?)
}

/// Opens the sealed credentials of an account row already read (scoped by the caller).
pub fn open_credentials(
    secrets: &SecretBox,
    m: &official_account::Model,
) -> ServiceResult<AccountCredentials> {
    let open = |stored: &str, column: &str| {
        secrets
            .open(stored, &secret_context(&m.id, column))
            .map_err(|e| {
                ServiceError::Internal(anyhow::anyhow!("{column} of account {}: {e}", m.id))
            })
    };
    Ok(AccountCredentials {
        app_secret: open(&m.app_secret_enc, "app_secret")?,
        encoding_aes_key: open(&m.encoding_aes_key_enc, "encoding_aes_key")?,
        app_id: m.app_id.clone(),
        callback_token: m.callback_token.clone(),
        encryption_mode: m.encryption_mode,
    })
}

/// The tenant's accounts, oldest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    page: &PageRequest,
) -> ServiceResult<Page<OfficialAccount>> {
    let query = official_account::Entity::find()
        .filter(official_account::Column::TenantId.eq(&actor.tenant_id));
    let (rows, limit) = fetch_page(conn, query, official_account::Column::Id, page).await?;
    Ok(Page::from_rows(
        rows,
        limit,
        |m| &m.id,
        OfficialAccount::from,
    ))
}

/// Applies `patch` to an account.
pub async fn update(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    actor: &Actor,
    id: &str,
    patch: AccountPatch,
) -> ServiceResult<OfficialAccount> {
    let mut checks = Checks::new();
    check_fields(
        &mut checks,
        patch.name.as_deref(),
        patch.original_id.as_deref(),
        patch.app_id.as_deref(),
        patch.app_secret.as_ref(),
        patch.callback_token.as_deref(),
        patch.encoding_aes_key.as_ref(),
    );
    if let Some(welcome) = patch.welcome_message.as_deref().filter(|w| !w.is_empty()) {
        checks.text("welcome_message", welcome, 1, MAX_WELCOME);
    }
    checks.finish()?;

    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    let mut changes = serde_json::Map::new();
    let mut model: official_account::ActiveModel = current.clone().into();
    if let Some(v) = patch.name {
        changes.insert("name".into(), json!(v));
        model.name = Set(v);
    }
    if let Some(v) = patch.original_id {
        changes.insert("original_id".into(), json!(v));
        model.original_id = Set(v);
    }
    if let Some(v) = patch.app_id {
        let v = v.to_ascii_lowercase();
        changes.insert("app_id".into(), json!(v));
        model.app_id = Set(v);
    }
    if let Some(v) = patch.app_secret {
        changes.insert("app_secret".into(), json!(REDACTED));
        model.app_secret_enc = Set(secrets.seal(
            v.expose_secret(),
            &secret_context(&current.id, "app_secret"),
        )?);
    }
    if let Some(v) = patch.callback_token {
        changes.insert("callback_token".into(), json!(v));
        model.callback_token = Set(v);
    }
    if let Some(v) = patch.encoding_aes_key {
        changes.insert("encoding_aes_key".into(), json!(REDACTED));
        model.encoding_aes_key_enc = Set(secrets.seal(
            v.expose_secret(),
            &secret_context(&current.id, "encoding_aes_key"),
        )?);
    }
    if let Some(v) = patch.encryption_mode {
        changes.insert("encryption_mode".into(), json!(v));
        model.encryption_mode = Set(v);
    }
    if let Some(v) = patch.verified {
        changes.insert("verified".into(), json!(v));
        model.verified = Set(v);
    }
    if let Some(v) = patch.welcome_message {
        let v = (!v.is_empty()).then_some(v);
        changes.insert("welcome_message".into(), json!(v));
        model.welcome_message = Set(v);
    }
    if changes.is_empty() {
        txn.commit().await?;
        return Ok(current.into());
    }
    model.updated_at = Set(Utc::now());
    let saved = model
        .update(&txn)
        .await
        .map_err(|e| conflict_on_unique(e, DUPLICATE))?;
    audit::record(
        &txn,
        actor,
        Action::Update,
        RESOURCE,
        &current.id,
        changes.into(),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// Deletes an account and, by cascade, its campaigns.
pub async fn delete(db: &DatabaseConnection, actor: &Actor, id: &str) -> ServiceResult<()> {
    super::delete_audited::<official_account::Entity>(
        db,
        actor,
        id,
        RESOURCE,
        |m| json!({"name": m.name}),
    )
    .await
}
