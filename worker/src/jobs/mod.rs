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
