//! `wxpilot`: the one binary. `serve` runs everything in one process on the embedded
//! default; `api` and `worker` run the halves separately for production.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use wxpilot_core::service::{Actor, api_keys, tenants};
use wxpilot_core::{Settings, db, telemetry};
use wxpilot_entity::Role;

#[derive(Parser)]
#[command(
    name = "wxpilot",
    version,
    about = "Run many WeChat Official Accounts with LLM help"
)]
struct Cli {
    /// Configuration file (TOML or YAML); `WXPILOT_…` variables override it.
    #[arg(long, global = true, env = "WXPILOT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// API and worker in one process; migrates the database first (the embedded default).
    Serve,
    /// The HTTP API only (production: migrations are run by `wxpilot migrate`).
    Api,
    /// The job worker only.
    Worker,
    /// Apply pending database migrations.
    Migrate {
        /// Only list pending migrations.
        #[arg(long)]
        status: bool,
    },
    /// Print the OpenAPI document.
    Openapi {
        /// Write it to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its first owner API key.
    Create(TenantCreate),
}

#[derive(Args)]
struct TenantCreate {
    /// The agency's name.
    #[arg(long)]
    name: String,
    /// Short unique handle (default: made from the name).
    #[arg(long)]
    slug: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key in a tenant and print it (shown once).
    Create(ApiKeyCreate),
}

#[derive(Args)]
struct ApiKeyCreate {
    /// Tenant id or slug.
    #[arg(long)]
    tenant: String,
    /// What the key is for.
    #[arg(long)]
    name: String,
    /// viewer, editor, admin or owner.
    #[arg(long, default_value = "viewer", value_parser = parse_role)]
    role: Role,
    /// Comma-separated scopes (`*` or accounts, campaigns, users, api_keys, audit).
    #[arg(long, default_value = "*", value_delimiter = ',')]
    scopes: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Print a new random master key (base64) for WXPILOT_MASTER_KEY.
    GenerateKey,
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value)
        .ok_or_else(|| format!("unknown role {value:?}: use viewer, editor, admin or owner"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi { output } => print_openapi(output),
        Command::Secrets(SecretsCommand::GenerateKey) => {
            use secrecy::ExposeSecret;
            println!(
                "{}",
                wxpilot_core::MasterKey::generate()
                    .to_base64()
                    .expose_secret()
            );
            Ok(())
        }
        command => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            match command {
                Command::Serve => serve(settings, Halves::Both).await,
                Command::Api => serve(settings, Halves::Api).await,
                Command::Worker => serve(settings, Halves::Worker).await,
                Command::Migrate { status } => migrate(settings, status).await,
                Command::Tenant(TenantCommand::Create(args)) => tenant_create(settings, args).await,
                Command::Apikey(ApiKeyCommand::Create(args)) => apikey_create(settings, args).await,
                Command::Openapi { .. } | Command::Secrets(_) => Ok(()),
            }
        }
    }
}

fn print_openapi(output: Option<PathBuf>) -> anyhow::Result<()> {
    let json = wxpilot_api::openapi::document_json()?;
    match output {
        Some(path) => {
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            print!("{json}");
            Ok(())
        }
    }
}

/// Which halves of wxpilot a process runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Halves {
    /// API and worker (`serve`).
    Both,
    /// API only (`api`).
    Api,
    /// Worker only (`worker`).
    Worker,
}

async fn serve(settings: Settings, role: Halves) -> anyhow::Result<()> {
    let url = settings.database_url();
    let deps = wxpilot_api::Deps::connect(&settings).await?;
    if role == Halves::Both {
        db::migrate(&deps.db).await?;
    } else {
        ensure_migrated(&deps.db).await?;
    }
    tracing::info!(
        database = %wxpilot_core::settings::redact_url(secrecy::ExposeSecret::expose_secret(&url)),
        queue = deps.queue.backend_name(),
        "starting"
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let settings = std::sync::Arc::new(settings);
    let worker = (role != Halves::Api).then(|| {
        tokio::spawn(wxpilot_worker::run(
            settings.clone(),
            deps.db.clone(),
            deps.secrets.clone(),
            deps.queue.clone(),
            shutdown.clone(),
        ))
    });
    let served = if role == Halves::Worker {
        wait_for_signal().await;
        tracing::info!("stopping: no new jobs are taken; running ones get the grace period");
        Ok(())
    } else {
        let listen = settings.listen.clone();
        let listener = std::net::TcpListener::bind(settings.listen_addr()?)
            .with_context(|| format!("binding {listen}"))?;
        let app =
            wxpilot_api::Application::build_with((*settings).clone(), deps.clone(), listener)?;
        tracing::info!(
            "wxpilot API listening on http://{listen} (docs at /docs/, OpenAPI at /openapi.json)"
        );
        // actix-web stops gracefully on SIGINT/SIGTERM; the worker follows it.
        app.run_until_stopped().await.context("HTTP server failed")
    };
    shutdown.cancel();
    if let Some(worker) = worker {
        worker.await.context("the job worker panicked")??;
    }
    served
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn ensure_migrated(database: &sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    let pending = db::pending_migrations(database).await?;
    anyhow::ensure!(
        pending.is_empty(),
        "the database has {} pending migration(s) ({}): run `wxpilot migrate` first",
        pending.len(),
        pending.join(", ")
    );
    Ok(())
}

/// Connects for an administrative command; the embedded database is migrated on the spot.
async fn admin_db(settings: &Settings) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let database = db::connect(&settings.database_url(), &settings.database).await?;
    if settings.uses_sqlite() {
        db::migrate(&database).await?;
    } else {
        ensure_migrated(&database).await?;
    }
    Ok(database)
}

async fn migrate(settings: Settings, status_only: bool) -> anyhow::Result<()> {
    let database = db::connect(&settings.database_url(), &settings.database).await?;
    let pending = db::pending_migrations(&database).await?;
    if status_only {
        if pending.is_empty() {
            println!("database is up to date");
        } else {
            println!("{} pending migration(s):", pending.len());
            for name in &pending {
                println!("  {name}");
            }
        }
        return Ok(());
    }
    db::migrate(&database).await?;
    println!(
        "applied {} migration(s); database is up to date",
        pending.len()
    );
    Ok(())
}

async fn tenant_create(settings: Settings, args: TenantCreate) -> anyhow::Result<()> {
    let database = admin_db(&settings).await?;
    let (tenant, key) = tenants::create(&database, &args.name, args.slug.as_deref())
        .await
        .map_err(describe)?;
    if args.json {
        println!("{}", serde_json::json!({"tenant": tenant, "api_key": key}));
    } else {
        println!("tenant   {} ({})", tenant.id, tenant.slug);
        println!("api key  {}", key.secret);
        println!("         role owner; shown only now: store it safely.");
        println!();
        println!(
            "try:  curl -H 'Authorization: Bearer {}' http://{}/v1/accounts",
            key.secret, settings.listen
        );
    }
    Ok(())
}

async fn apikey_create(settings: Settings, args: ApiKeyCreate) -> anyhow::Result<()> {
    let database = admin_db(&settings).await?;
    let tenant = tenants::find(&database, &args.tenant)
        .await
        .map_err(describe)?;
    let key = api_keys::create(
        &database,
        &Actor::cli(&tenant.id),
        api_keys::NewApiKey {
            name: args.name,
            role: args.role,
            scopes: args.scopes,
            expires_at: None,
        },
    )
    .await
    .map_err(describe)?;
    if args.json {
        println!("{}", serde_json::to_string(&key)?);
    } else {
        println!("api key  {}", key.secret);
        println!(
            "         id {}, role {}, scopes {}; shown only now.",
            key.key.id,
            key.key.role.as_str(),
            key.key.scopes.join(",")
        );
    }
    Ok(())
}

/// Turns a service error into a message for the terminal.
fn describe(err: wxpilot_core::ServiceError) -> anyhow::Error {
    match err {
        wxpilot_core::ServiceError::Validation(fields) => anyhow::anyhow!(
            "invalid input: {}",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::Error::new(other),
    }
}
