//! What every handler shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use wxpilot_core::{SecretBox, Settings};

use crate::auth::jwt::JwtKeys;
use crate::metrics::Metrics;

/// Shared application state, cheap to clone behind `web::Data`.
pub struct AppState {
    /// The database pool.
    pub db: DatabaseConnection,
    /// Seals and opens stored secrets.
    pub secrets: Arc<SecretBox>,
    /// Signs and checks JWTs.
    pub jwt: JwtKeys,
    /// Settings in effect.
    pub settings: Arc<Settings>,
    /// Prometheus registry and instruments.
    pub metrics: Metrics,
    /// Redis, when the production queue is configured.
    pub redis: Option<redis::Client>,
    /// The job queue.
    pub queue: wxpilot_worker::JobQueue,
    /// Failed password sign-ins.
    pub logins: crate::ratelimit::LoginLimiter,
    /// WeChat callback requests per account.
    pub callbacks: crate::ratelimit::RateLimiter,
}
