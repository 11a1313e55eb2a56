//! What job kinds need besides the database: models, the WeChat API with shared access
//! tokens, and the secret box. Built once per process from settings
//! ([`Services::from_settings`]); tests build one with fakes ([`Services::new`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::ConnectionTrait;
use secrecy::ExposeSecret;
use tokio::sync::Mutex;
use wxpilot_core::service::{Actor, accounts};
use wxpilot_core::settings::{CustomerServiceSettings, PublishingSettings};
use wxpilot_core::{SecretBox, Settings};
use wxpilot_inference::Router;
use wxpilot_wechat::client::ApiClient;
use wxpilot_wechat::token::{
    AccountCredentials, InMemoryTokenStore, RedisTokenStore, TokenManager, TokenStore,
};

/// Shared dependencies of job kinds. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Models, routed by job kind: `services.inference.for_kind("reply")`.
    pub inference: Arc<Router>,
    /// Opens stored secrets.
    pub secrets: Arc<SecretBox>,
    /// The WeChat API.
    pub wechat: Arc<WechatGateway>,
    /// How the customer-service bot answers.
    pub customer_service: Arc<CustomerServiceSettings>,
    /// How articles are published.
    pub publishing: Arc<PublishingSettings>,
}

impl Services {
    /// Services from parts (tests pass a scripted backend and the simulator's URL).
    pub fn new(
        inference: Arc<Router>,
        secrets: Arc<SecretBox>,
        wechat: Arc<WechatGateway>,
    ) -> Self {
        Self {
            inference,
            secrets,
            wechat,
            customer_service: Arc::new(CustomerServiceSettings::default()),
            publishing: Arc::new(PublishingSettings::default()),
        }
    }

    /// Services as `settings` describe them: local models (loaded on first use by the
    /// local backend) and/or the remote, the WeChat API base URL, and the token store in
    /// Redis when `REDIS_URL` is set (in-process otherwise).
    pub async fn from_settings(
        settings: &Settings,
        secrets: Arc<SecretBox>,
    ) -> anyhow::Result<Self> {
        let inference = Arc::new(
            crate::inference::build_router(
                &settings.inference,
                crate::metrics::inference_metrics(),
                Some(prometheus::default_registry()),
            )
            .await?,
        );
        let store: Arc<dyn TokenStore> = match &settings.redis_url {
            Some(url) => Arc::new(
                RedisTokenStore::connect(url.expose_secret(), settings.wechat.token_prefix.clone())
                    .await
                    .context("connecting the WeChat token store to Redis")?,
            ),
            None => Arc::new(InMemoryTokenStore::new()),
        };
        let client = wechat_client(settings)?;
        Ok(Self::new(
            inference,
            secrets,
            Arc::new(WechatGateway::new(client, store)),
        )
        .with_settings(settings))
    }

    /// The customer-service and publishing settings of `settings`.
    fn with_settings(mut self, settings: &Settings) -> Self {
        self.customer_service = Arc::new(settings.customer_service.clone());
        self.publishing = Arc::new(settings.publishing.clone());
        self
    }

    /// Services with no models and in-process WeChat tokens, for runs that only move jobs
    /// (benchmarks): kinds that need a model fail with a clear error.
    pub fn without_models(settings: &Settings, secrets: Arc<SecretBox>) -> anyhow::Result<Self> {
        let inference = Arc::new(Router::new(None, None, Default::default()));
        let client = wechat_client(settings)?;
        let store: Arc<dyn TokenStore> = Arc::new(InMemoryTokenStore::new());
        Ok(Self::new(
            inference,
            secrets,
            Arc::new(WechatGateway::new(client, store)),
        )
        .with_settings(settings))
    }
}

/// The WeChat API client `settings` describe.
fn wechat_client(settings: &Settings) -> anyhow::Result<ApiClient> {
    ApiClient::with_timeout(
        settings.wechat.api_base_url.clone(),
        Duration::from_secs(settings.wechat.timeout_secs.max(1)),
    )
    .context("building the WeChat API client")
}

/// WeChat API access per official account, with one [`TokenManager`] per account per
/// process over the shared token store.
pub struct WechatGateway {
    client: ApiClient,
    store: Arc<dyn TokenStore>,
    managers: Mutex<HashMap<String, Arc<TokenManager>>>,
}

impl WechatGateway {
    /// A gateway over `client` and the shared token `store`.
    pub fn new(client: ApiClient, store: Arc<dyn TokenStore>) -> Self {
        Self {
            client,
            store,
            managers: Mutex::new(HashMap::new()),
        }
    }

    /// The client, for calls that need no token.
    pub fn client(&self) -> &ApiClient {
        &self.client
    }

    /// The token manager of `account_id` in `tenant_id`, made on first use from the
    /// account's stored AppID and AppSecret. A changed AppID or AppSecret gets a new one.
    pub async fn manager<C: ConnectionTrait>(
        &self,
        conn: &C,
        secrets: &SecretBox,
        tenant_id: &str,
        account_id: &str,
    ) -> anyhow::Result<Arc<TokenManager>> {
        let actor = Actor::system(tenant_id);
        let creds = accounts::credentials(conn, secrets, &actor, account_id)
            .await
            .map_err(|e| anyhow::anyhow!("account {account_id}: {e}"))?;
        let key = format!(
            "{account_id}:{}:{}",
            creds.app_id,
            &wxpilot_core::keys::hash(creds.app_secret.expose_secret())[..16]
        );
        let mut managers = self.managers.lock().await;
        if let Some(found) = managers.get(&key) {
            return Ok(found.clone());
        }
        managers.retain(|k, _| !k.starts_with(&format!("{account_id}:")));
        let manager = Arc::new(TokenManager::new(
            self.client.clone(),
            self.store.clone(),
            AccountCredentials::new(creds.app_id, creds.app_secret.expose_secret()),
        ));
        managers.insert(key, manager.clone());
        Ok(manager)
    }
}
