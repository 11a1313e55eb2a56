//! Master key rotation: re-seals every stored secret that is not sealed under the current
//! master key. Safe to run while wxpilot serves (each value is re-sealed in its own guarded
//! update) and to run again (values already under the current key are skipped).
//!
//! Without downtime: (1) give every process the new key as a previous key
//! (`previous_master_keys`) so it can read values sealed with it; (2) make the new key the
//! current one and the old key a previous one; (3) run `wxpilot secrets rotate-master-key`;
//! (4) drop the old key.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use secrecy::ExposeSecret;
use serde::Serialize;
use wxpilot_entity::{official_account, webhook_endpoint};

use crate::error::{ServiceError, ServiceResult};
use crate::secrets::SecretBox;

/// What a rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// Values re-sealed under the current key.
    pub resealed: u64,
    /// Values already under the current key.
    pub already_current: u64,
    /// Values changed by someone else meanwhile (they are sealed under the current key by that writer).
    pub skipped_concurrent: u64,
}

fn reseal(secrets: &SecretBox, stored: &str, context: &str) -> ServiceResult<Option<String>> {
    if secrets.is_current(stored) {
        return Ok(None);
    }
    let plain = secrets.open(stored, context).map_err(|e| {
        ServiceError::Internal(anyhow::anyhow!(
            "{context}: {e}; is the key it was sealed with among previous_master_keys?"
        ))
    })?;
    Ok(Some(secrets.seal(plain.expose_secret(), context)?))
}

/// Re-seals every AppSecret, EncodingAESKey and webhook secret under the current key.
pub async fn rotate_master_key(
    db: &DatabaseConnection,
    secrets: &SecretBox,
) -> ServiceResult<RotationReport> {
    let mut report = RotationReport::default();
    for account in official_account::Entity::find().all(db).await? {
        for (column, name, stored) in [
            (
                official_account::Column::AppSecretEnc,
                "app_secret",
                &account.app_secret_enc,
            ),
            (
                official_account::Column::EncodingAesKeyEnc,
                "encoding_aes_key",
                &account.encoding_aes_key_enc,
            ),
        ] {
            let context = format!("official_accounts/{}/{name}", account.id);
            match reseal(secrets, stored, &context)? {
                None => report.already_current += 1,
                Some(fresh) => {
                    let done = official_account::Entity::update_many()
                        .col_expr(column, Expr::value(fresh))
                        .filter(official_account::Column::Id.eq(&account.id))
                        .filter(column.eq(stored.as_str()))
                        .exec(db)
                        .await?;
                    if done.rows_affected == 1 {
                        report.resealed += 1
                    } else {
                        report.skipped_concurrent += 1
                    }
                }
            }
        }
    }
    for endpoint in webhook_endpoint::Entity::find().all(db).await? {
        let context = super::webhooks::secret_context(&endpoint.id);
        match reseal(secrets, &endpoint.secret_enc, &context)? {
            None => report.already_current += 1,
            Some(fresh) => {
                let done = webhook_endpoint::Entity::update_many()
                    .col_expr(webhook_endpoint::Column::SecretEnc, Expr::value(fresh))
                    .filter(webhook_endpoint::Column::Id.eq(&endpoint.id))
                    .filter(webhook_endpoint::Column::SecretEnc.eq(endpoint.secret_enc.as_str()))
                    .exec(db)
                    .await?;
                if done.rows_affected == 1 {
                    report.resealed += 1
                } else {
                    report.skipped_concurrent += 1
                }
            }
        }
    }
    Ok(report)
}
