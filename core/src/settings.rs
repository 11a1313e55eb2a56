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
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            workers: None,
            shutdown_timeout_secs: 30,
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
            .merge(Env::prefixed("WXPILOT_").ignore(&["CONFIG"]).split("__")))
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
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/wx"),
            "postgres://app:***@db:5432/wx"
        );
        assert_eq!(redact_url("redis://127.0.0.1/"), "redis://127.0.0.1/");
    }
}
