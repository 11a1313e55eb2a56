//! `spawn_app`: a fresh database (a SQLite file in a temp folder, or a new Postgres
//! database), migrations, and the real server on a random port.

use std::net::TcpListener;

use reqwest::{Client, RequestBuilder, Response};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wxpilot_api::Application;
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
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, sqlite_path) = fresh_database(backend, dir.path()).await;
    let master = MasterKey::generate();
    let master_text = master.to_base64();
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        database_url: Some(SecretString::from(url)),
        master_key: Some(master_text.clone()),
        ..Settings::default()
    };
    settings.http.body_limit_bytes = TEST_BODY_LIMIT;
    settings.http.workers = Some(2);
    adjust(&mut settings);

    let db = wxpilot_core::db::connect(&settings.database_url(), &settings.database)
        .await
        .expect("connect");
    wxpilot_core::db::migrate(&db).await.expect("migrate");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let secrets = SecretBox::new(master, Vec::new());
    let app = Application::build_with(settings, db.clone(), secrets, listener).expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: Client::new(),
        db,
        backend,
        master_key: master_text,
        sqlite_path,
        _dir: dir,
    }
}

impl TestApp {
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
