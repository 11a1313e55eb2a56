//! `spawn_app`: a fresh database (a SQLite file in a temp folder, or a new Postgres
//! database), migrations, and the real server on a random port.

use std::net::TcpListener;

use reqwest::{Client, RequestBuilder, Response};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use wxpilot_api::{Application, Deps};
use wxpilot_core::service::{Actor, api_keys, tenants};
use wxpilot_core::{MasterKey, SecretBox, Settings};
use wxpilot_entity::Role;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Body limit in tests, small so oversized bodies are cheap to send.
pub const TEST_BODY_LIMIT: usize = 64 * 1024;

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub db: DatabaseConnection,
    pub backend: Backend,
    /// The master key the server uses, so tests can mint tokens and open secrets.
    pub master_key: SecretString,
    pub sqlite_path: Option<std::path::PathBuf>,
    /// The app's job queue.
    pub queue: wxpilot_worker::JobQueue,
    /// The in-process worker, when started.
    pub worker: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The settings it runs with (for starting a second api on the same database).
    pub settings: Settings,
    stop: CancellationToken,
    _stop_on_drop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

pub struct TestTenant {
    pub id: String,
    pub owner_key: String,
}

fn admin_postgres_url() -> String {
    std::env::var("WXPILOT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn fresh_database(
    backend: Backend,
    dir: &std::path::Path,
) -> (String, Option<std::path::PathBuf>) {
    match backend {
        Backend::Sqlite => {
            let path = dir.join("test.db");
            (format!("sqlite://{}?mode=rwc", path.display()), Some(path))
        }
        Backend::Postgres => {
            let admin_url = admin_postgres_url();
            let admin = Database::connect(&admin_url)
                .await
                .expect("Postgres must be running for the tests (scripts/test.sh starts it)");
            let name = format!("wxp_test_{}", wxpilot_core::ids::new_id().to_lowercase());
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let _ = admin.close().await;
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .unwrap_or(admin_url);
            (format!("{base}/{name}"), None)
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(backend, false, adjust, None).await
}

/// Makes the job services of a test app (a scripted model, the simulator's URL).
pub type MakeServices = Box<dyn FnOnce(&Settings, Arc<SecretBox>) -> wxpilot_worker::Services>;

/// The app with a job worker in the same process (like `wxpilot serve`).
pub async fn spawn_app_with_worker(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn(backend, true, adjust, None).await
}

/// The app with an in-process worker whose jobs get the services `make` builds.
#[allow(dead_code)] // for the feature tests that script a model or point at the simulator
pub async fn spawn_app_with_services(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
    make: MakeServices,
) -> TestApp {
    spawn(backend, true, adjust, Some(make)).await
}

/// Settings for a test app on a fresh database; Postgres apps queue on the shared Redis
/// under a queue prefix of their own.
pub async fn test_settings(
    backend: Backend,
    dir: &std::path::Path,
) -> (Settings, Option<std::path::PathBuf>) {
    let (url, sqlite_path) = fresh_database(backend, dir).await;
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_owned(),
        database_url: Some(SecretString::from(url)),
        master_key: Some(MasterKey::generate().to_base64()),
        ..Settings::default()
    };
    settings.http.body_limit_bytes = TEST_BODY_LIMIT;
    settings.http.workers = Some(2);
    settings.jobs.queue_prefix = format!("wxptest-{}", wxpilot_core::ids::new_id().to_lowercase());
    settings.jobs.sweep_interval_ms = 200;
    settings.jobs.poll_interval_ms = 20;
    if matches!(backend, Backend::Postgres) {
        settings.redis_url = Some(SecretString::from("redis://127.0.0.1:6379".to_owned()));
    }
    (settings, sqlite_path)
}

async fn spawn(
    backend: Backend,
    with_worker: bool,
    adjust: impl FnOnce(&mut Settings),
    make_services: Option<MakeServices>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut settings, sqlite_path) = test_settings(backend, dir.path()).await;
    adjust(&mut settings);
    let master_text = settings.master_key.clone().expect("master key");
    let master = MasterKey::from_base64(master_text.expose_secret()).expect("key");
    let db = wxpilot_core::db::connect(&settings.database_url(), &settings.database)
        .await
        .expect("connect");
    wxpilot_core::db::migrate(&db).await.expect("migrate");
    let queue = wxpilot_worker::JobQueue::connect(&settings, &db)
        .await
        .expect("queue");
    let mut deps = Deps {
        db: db.clone(),
        secrets: Arc::new(SecretBox::new(master, Vec::new())),
        queue,
        embedder: None,
    };
    let shutdown = CancellationToken::new();
    // No model files are loaded unless a test asks for them.
    let services = with_worker.then(|| match make_services {
        Some(make) => make(&settings, deps.secrets.clone()),
        None => wxpilot_worker::Services::without_models(&settings, deps.secrets.clone())
            .expect("services"),
    });
    // The callback embeds questions with the worker's models, as `serve` does.
    deps.embedder = services.as_ref().map(|s| s.inference.for_kind("reply"));
    let worker = services.map(|services| {
        tokio::spawn(wxpilot_worker::run_with(
            Arc::new(settings.clone()),
            deps.db.clone(),
            services,
            deps.queue.clone(),
            shutdown.clone(),
        ))
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let queue = deps.queue.clone();
    let kept = settings.clone();
    let app = Application::build_with(settings, deps, listener).expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: Client::new(),
        db,
        backend,
        master_key: master_text,
        sqlite_path,
        queue,
        worker,
        settings: kept,
        stop: shutdown.clone(),
        _stop_on_drop: shutdown.drop_guard(),
        _dir: dir,
    }
}

impl TestApp {
    /// Starts another api (no worker) on the same database, Redis and master key, as a
    /// second replica would run; returns its base URL.
    pub async fn second_api(&self) -> String {
        let settings = self.settings.clone();
        let master = MasterKey::from_base64(self.master_key.expose_secret()).expect("key");
        let db = wxpilot_core::db::connect(&settings.database_url(), &settings.database)
            .await
            .expect("connect");
        let queue = wxpilot_worker::JobQueue::connect(&settings, &db)
            .await
            .expect("queue");
        let deps = Deps {
            db,
            secrets: Arc::new(SecretBox::new(master, Vec::new())),
            queue,
            embedder: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let app = Application::build_with(settings, deps, listener).expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        address
    }

    /// Sends the in-process worker its shutdown signal and waits for it to finish.
    pub async fn stop_worker(&mut self) {
        self.stop.cancel();
        if let Some(worker) = self.worker.take() {
            worker.await.expect("worker task").expect("worker result");
        }
    }

    pub async fn tenant(&self, name: &str) -> TestTenant {
        let (tenant, key) = tenants::create(&self.db, name, None).await.expect("tenant");
        TestTenant {
            id: tenant.id,
            owner_key: key.secret,
        }
    }

    pub async fn key(&self, tenant: &TestTenant, role: Role) -> String {
        api_keys::create(
            &self.db,
            &Actor::cli(&tenant.id),
            api_keys::NewApiKey {
                name: format!("{} key", role.as_str()),
                role,
                scopes: vec!["*".into()],
                expires_at: None,
            },
        )
        .await
        .expect("key")
        .secret
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn get(&self, path: &str, key: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(key)
    }

    pub fn post(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(key).json(body)
    }

    pub fn patch(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.client
            .patch(self.url(path))
            .bearer_auth(key)
            .json(body)
    }

    pub fn delete(&self, path: &str, key: &str) -> RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(key)
    }

    /// Creates an account and returns its JSON.
    pub async fn create_account(&self, key: &str, app_id: &str) -> Value {
        let res = self
            .post("/v1/accounts", key, &account_body(app_id))
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 201, "create account");
        res.json().await.expect("json")
    }

    /// Creates a campaign and returns its JSON.
    pub async fn create_campaign(&self, key: &str, account_id: &str, name: &str) -> Value {
        let res = self
            .post(
                "/v1/campaigns",
                key,
                &json!({"account_id": account_id, "name": name, "brief": "新品上市", "goals": ["reads"]}),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 201, "create campaign");
        res.json().await.expect("json")
    }

    /// Number of rows in a table, read straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("row");
        row.try_get::<i64>("", "n").expect("n")
    }

    pub fn master_key(&self) -> MasterKey {
        MasterKey::from_base64(self.master_key.expose_secret()).expect("key")
    }
}

pub const APP_SECRET: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

pub fn account_body(app_id: &str) -> Value {
    json!({
        "name": "Acme Coffee 官方",
        "original_id": "gh_10f6c3c3ac5a",
        "app_id": app_id,
        "app_secret": APP_SECRET,
        "callback_token": "spamtest",
        "encoding_aes_key": AES_KEY,
        "encryption_mode": "safe",
        "verified": true
    })
}

/// Asserts a problem+json answer with `status`, and returns the document.
pub async fn expect_problem(res: Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://")),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// Runs an async test body on both backends: `both!(name)` makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await)
                    .await;
            }
        }
    };
}

/// Runs a test that builds its own app on both backends: `both_backends!(name)` calls
/// `name(Backend::Sqlite)` and `name(Backend::Postgres)` as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await;
            }
        }
    };
}

/// A JWT for an API key.
pub async fn token_for_key(app: &TestApp, key: &str) -> String {
    let res = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"grant_type": "api_key", "api_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A password sign-in.
pub async fn login(app: &TestApp, tenant: &str, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"grant_type": "password", "tenant": tenant, "email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// The id of the API key whose secret is `secret`, looked up by its prefix.
pub async fn key_id(app: &TestApp, owner_key: &str, secret: &str) -> String {
    let list: Value = app
        .get("/v1/api-keys?limit=200", owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| secret.starts_with(k["prefix"].as_str().unwrap()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A private `redis-server` on a free port, for tests that stop and restart Redis.
pub struct TestRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl TestRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        stream.write_all(b"PING\r\n").is_ok()
            && stream
                .read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if self.answers() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
