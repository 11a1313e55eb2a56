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
    /// One multiplexed Redis connection shared by every request (opened on first use,
    /// dropped after an error so the next request reconnects).
    pub redis_shared: std::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// The job queue.
    pub queue: wxpilot_worker::JobQueue,
    /// Writes new job records, batching concurrent requests into one transaction.
    pub intake: wxpilot_worker::JobIntake,
    /// Embeds followers' questions for hybrid retrieval (`None`: BM25 alone).
    pub embedder: Option<Arc<dyn wxpilot_inference::Backend>>,
    /// Failed password sign-ins.
    pub logins: crate::ratelimit::LoginLimiter,
    /// WeChat callback requests per account.
    pub callbacks: crate::ratelimit::RateLimiter,
    /// Accounts' opened callback credentials by account id; routes that change or delete
    /// an account drop its entry.
    pub callback_accounts: crate::cache::TtlCache<crate::routes::wechat_callback::CallbackAccount>,
}

impl AppState {
    /// The shared Redis connection, opened now when there is none; `None` without Redis.
    pub async fn redis_connection(
        &self,
    ) -> redis::RedisResult<Option<redis::aio::MultiplexedConnection>> {
        let Some(client) = &self.redis else {
            return Ok(None);
        };
        if let Some(conn) = self.redis_shared.lock().ok().and_then(|c| c.clone()) {
            return Ok(Some(conn));
        }
        let conn = client.get_multiplexed_async_connection().await?;
        if let Ok(mut shared) = self.redis_shared.lock() {
            *shared = Some(conn.clone());
        }
        Ok(Some(conn))
    }

    /// Forgets the shared Redis connection after it failed.
    pub fn drop_redis_connection(&self) {
        if let Ok(mut shared) = self.redis_shared.lock() {
            *shared = None;
        }
    }

    /// The embedding model of hybrid retrieval, when one is configured and the embedder
    /// serves it; `None` means BM25 alone (and no embedding jobs).
    pub fn embedding_model(&self) -> Option<&str> {
        let model = self.settings.customer_service.embedding_model.as_str();
        let embedder = self.embedder.as_ref()?;
        let served = embedder
            .models()
            .iter()
            .any(|m| m.id == model && m.kind == wxpilot_inference::ModelKind::Embedding);
        (!model.is_empty() && served).then_some(model)
    }
}
