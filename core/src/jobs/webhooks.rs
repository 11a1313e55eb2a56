//! Webhooks: deliveries are queued in the same transaction as the job change they
//! report, then sent, signed, and retried by the worker's delivery loop.
//!
//! Signature: `Wxpilot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares in
//! constant time, and rejects timestamps outside its tolerance (replays).

use chrono::Utc;
use hmac::{Hmac, Mac};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use sha2::Sha256;
use wxpilot_entity::{job, webhook_delivery, webhook_endpoint};

use crate::ids::new_id;

/// Events a tenant can subscribe to.
pub const EVENTS: [&str; 3] = ["job.succeeded", "job.failed", "job.dead"];

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Wxpilot-Signature";

/// Job kinds that never raise webhooks (none yet; internal kinds go here).
fn is_internal(kind: &str) -> bool {
    kind.starts_with('_')
}

/// Queues one delivery per active endpoint of the job's tenant subscribed to `event`.
/// `detail` is the error for failures, empty otherwise.
pub async fn enqueue_for_job<C: ConnectionTrait>(
    conn: &C,
    job: &job::Model,
    event: &str,
    detail: &str,
) -> anyhow::Result<()> {
    if is_internal(&job.kind) {
        return Ok(());
    }
    let endpoints = active_endpoints(conn, &job.tenant_id).await?;
    crate::db::insert_chunked(conn, deliveries(job, event, detail, &endpoints)).await?;
    Ok(())
}

/// The tenant's active endpoints.
pub async fn active_endpoints<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
) -> anyhow::Result<Vec<webhook_endpoint::Model>> {
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
        .filter(webhook_endpoint::Column::Active.eq(true))
        .all(conn)
        .await?)
}

/// The deliveries `event` of `job` makes to those of `endpoints` subscribed to it (none for
/// internal kinds).
pub fn deliveries(
    job: &job::Model,
    event: &str,
    detail: &str,
    endpoints: &[webhook_endpoint::Model],
) -> Vec<webhook_delivery::ActiveModel> {
    if is_internal(&job.kind) {
        return Vec::new();
    }
    let now = Utc::now();
    let mut rows = Vec::new();
    for endpoint in endpoints {
        let subscribed: Vec<String> =
            serde_json::from_value(endpoint.events.clone()).unwrap_or_default();
        if !subscribed.iter().any(|e| e == event) {
            continue;
        }
        let id = new_id();
        let body = json!({
            "id": id,
            "type": event,
            "created_at": now,
            "data": {
                "job_id": job.id,
                "kind": job.kind,
                "attempts": job.attempts,
                "error": if detail.is_empty() { None } else { Some(detail) },
                "url": format!("/v1/jobs/{}", job.id),
            }
        });
        rows.push(webhook_delivery::ActiveModel {
            id: Set(id),
            tenant_id: Set(job.tenant_id.clone()),
            endpoint_id: Set(endpoint.id.clone()),
            event: Set(event.to_owned()),
            job_id: Set(Some(job.id.clone())),
            payload: Set(body.to_string()),
            status: Set("pending".into()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_status_code: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            delivered_at: Set(None),
        });
    }
    rows
}

/// Hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The signature header value for a body sent at `timestamp`.
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// Why a receiver rejects a delivery.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is too far from now: a replay, or a badly wrong clock.
    #[error("timestamp outside tolerance")]
    Stale,
    /// The HMAC does not match.
    #[error("signature mismatch")]
    Mismatch,
}

/// What a receiver does: checks the header against the raw body and the clock.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if (now - timestamp).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let expected = sign(secret, timestamp, body);
    let ok = signatures
        .iter()
        .any(|s| subtle::ConstantTimeEq::ct_eq(s.as_bytes(), expected.as_bytes()).into());
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let header = signature_header(b"whsec", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(b"whsec", &header, b"{\"a\":1}", 1_700_000_100, 300),
            Ok(())
        );
        assert_eq!(
            verify(b"whsec", &header, b"{\"a\":2}", 1_700_000_100, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, b"{\"a\":1}", 1_700_000_100, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"whsec", &header, b"{\"a\":1}", 1_700_001_000, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(b"whsec", "v1=abc", b"", 0, 300),
            Err(VerifyError::Malformed)
        );
        // A known value, so the scheme cannot change silently.
        assert_eq!(sign(b"key", 1, b"body"), {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
            mac.update(b"1.body");
            hex::encode(mac.finalize().into_bytes())
        });
    }
}
