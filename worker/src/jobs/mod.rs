//! Job kinds, one file each, and what they share.

use wxpilot_wechat::client::ApiError;

use crate::runtime::JobError;

pub mod embed_knowledge;
pub mod forecast;
pub mod generate;
pub mod ping;
pub mod publish;
pub mod recommend;
pub mod reply;
pub mod sync_metrics;

/// A job's payload as its kind's type; one that does not parse never will, so the job goes
/// straight to `dead`.
pub(crate) fn parse_payload<T: serde::de::DeserializeOwned>(
    kind: &str,
    payload: serde_json::Value,
) -> Result<T, JobError> {
    serde_json::from_value(payload)
        .map_err(|e| JobError::Permanent(format!("bad {kind} payload: {e}")))
}

/// Whether a WeChat failure is worth another attempt: quota, authorisation, whitelist
/// and malformed requests or answers will fail the same way again.
pub(crate) fn classify_wechat(error: ApiError) -> JobError {
    match error {
        ApiError::QuotaExceeded { .. }
        | ApiError::NotAuthorised { .. }
        | ApiError::IpNotWhitelisted { .. }
        | ApiError::InvalidRequest(_)
        | ApiError::Decode { .. } => JobError::Permanent(error.to_string()),
        other => JobError::Retryable(other.to_string()),
    }
}
