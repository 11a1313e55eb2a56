//! Builds the HTTP application from settings, binds it (port 0 in tests) and runs it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;
use wxpilot_core::{SecretBox, Settings};
use wxpilot_worker::JobQueue;

use crate::auth::jwt::JwtKeys;
use crate::error::ApiError;
use crate::extract::BodyLimit;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Accounts whose callback credentials one api process keeps opened at most.
const CALLBACK_ACCOUNTS_CACHED: usize = 10_000;

/// A bound, not yet running, API server.
pub struct Application {
    port: u16,
    server: Server,
}

/// What the API (and an in-process worker) run on: the pool, the secret box, the queue.
#[derive(Clone)]
pub struct Deps {
    /// The database pool.
    pub db: sea_orm::DatabaseConnection,
    /// Seals and opens stored secrets.
    pub secrets: Arc<SecretBox>,
    /// The job queue.
    pub queue: JobQueue,
    /// Embeds followers' questions for hybrid retrieval in the callback (the worker's
    /// inference router, shared in one process); `None` for BM25 alone.
    pub embedder: Option<Arc<dyn wxpilot_inference::Backend>>,
}

impl Deps {
    /// Connects to the database and the queue named in `settings` and loads the master key.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let secrets = Arc::new(settings.secret_box()?);
        let db = wxpilot_core::db::connect(&settings.database_url(), &settings.database).await?;
        let queue = JobQueue::connect(settings, &db).await?;
        Ok(Self {
            db,
            secrets,
            queue,
            embedder: None,
        })
    }
}

impl Application {
    /// Connects to the database and queue named in `settings` and binds the listen address.
    /// Migrations are the caller's business (`serve` runs them, `api` expects them done).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let deps = Deps::connect(&settings).await?;
        let listener = listen(&settings)?;
        Self::build_with(settings, deps, listener)
    }

    /// Builds on existing connections and listener (tests pass a port-0 listener).
    pub fn build_with(
        settings: Settings,
        deps: Deps,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let redis = match &settings.redis_url {
            Some(url) => Some(
                redis::Client::open(url.expose_secret())
                    .context("REDIS_URL is not a valid Redis URL")?,
            ),
            None => None,
        };
        let jwt = JwtKeys::new(
            deps.secrets.current_key(),
            settings.auth.jwt_ttl_secs,
            settings.auth.jwt_leeway_secs,
        )?;
        let settings = Arc::new(settings);
        let intake = wxpilot_worker::JobIntake::spawn(deps.db.clone());
        let state = web::Data::new(AppState {
            db: deps.db,
            secrets: deps.secrets,
            jwt,
            settings: settings.clone(),
            metrics: Metrics::new()?,
            redis,
            redis_shared: Default::default(),
            intake,
            queue: deps.queue,
            embedder: deps.embedder,
            logins: Default::default(),
            callbacks: crate::ratelimit::RateLimiter::new(
                settings.customer_service.callback_rate_per_sec,
                settings.customer_service.callback_burst,
            ),
            callback_accounts: crate::cache::TtlCache::new(
                std::time::Duration::from_secs(settings.customer_service.account_cache_secs),
                CALLBACK_ACCOUNTS_CACHED,
            ),
        });
        // The knowledge base's segmentation dictionary loads in a few hundred milliseconds:
        // here, before the first follower's message, not inside its callback budget.
        wxpilot_kb::warm_up();
        let port = listener.local_addr()?.port();
        let doc = crate::openapi::document();
        let routes = crate::routes_table::RouteTable::from_document(&doc);
        let body_limit = settings.http.body_limit_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(BodyLimit(body_limit))
                .app_data(web::Data::new(routes.clone()))
                .app_data(web::PayloadConfig::new(body_limit))
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|_, _| ApiError::NotFound("not found".into()).into()),
                )
                .wrap(from_fn(crate::middleware::observe))
                .into_utoipa_app()
                .configure(crate::routes::configure)
                .into_app()
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", doc.clone()))
                .default_service(web::to(unmatched))
        })
        .listen(listener)?
        .shutdown_timeout(settings.http.shutdown_timeout_secs);
        if let Some(workers) = settings.http.workers {
            server = server.workers(workers.max(1));
        }
        // Signals are the caller's (`wxpilot serve` stops accepting, drains, then stops).
        let server = server
            .client_request_timeout(Duration::from_secs(30))
            .disable_signals()
            .run();
        Ok(Self { port, server })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to pause or stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Runs until the server is stopped through its [`handle`](Self::handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The API's listening socket: the one a supervisor passed in (systemd socket activation:
/// `LISTEN_FDS=1`, fd 3), or else a new one bound to `listen`. Passing one socket to the
/// old and the new process is how a restart on the same port drops no connection: both
/// accept from the same queue while the old one drains.
pub fn listen(settings: &Settings) -> anyhow::Result<TcpListener> {
    let mut passed = listenfd::ListenFd::from_env();
    if let Some(listener) = passed
        .take_tcp_listener(0)
        .context("LISTEN_FDS is set but fd 3 is not a listening TCP socket")?
    {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "using the listening socket passed in (LISTEN_FDS)");
        return Ok(listener);
    }
    TcpListener::bind(settings.listen_addr()?)
        .with_context(|| format!("binding {}", settings.listen))
}

async fn unmatched(req: HttpRequest) -> actix_web::HttpResponse {
    let allowed = req
        .app_data::<web::Data<crate::routes_table::RouteTable>>()
        .and_then(|t| t.allowed(req.path()));
    if let Some(methods) = allowed.filter(|m| !m.is_empty()) {
        let mut response = actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed);
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&methods.join(", ")) {
            response
                .headers_mut()
                .insert(actix_web::http::header::ALLOW, value);
        }
        return response;
    }
    if req.path() == "/docs" {
        // Swagger UI lives under /docs/; a bare /docs is a common first try.
        return actix_web::HttpResponse::PermanentRedirect()
            .insert_header((actix_web::http::header::LOCATION, "/docs/"))
            .finish();
    }
    actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
