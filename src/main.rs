//! `wxpilot`: the one binary. `serve` runs everything in one process on the embedded
//! default; `api` and `worker` run the halves separately for production.

mod bench;
mod bench_callback;
mod demo;
mod eval;
mod recommend_cli;

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
    /// Every capability end to end on real public data: fetches what is missing, starts
    /// wxpilot and the WeChat simulator on loopback, and drives them through the REST API.
    Demo(demo::DemoArgs),
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
    /// Debug a WeChat callback set-up, or run the WeChat simulator.
    #[command(subcommand)]
    Wechat(WechatCommand),
    /// Benchmarks (figures go in docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Accuracy evaluations on public benchmark data (run scripts/fetch-data.sh first).
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// The models: `inference serve` runs the OpenAI-compatible inference server.
    #[command(subcommand)]
    Inference(InferenceCommand),
}

/// Inference commands.
#[derive(Subcommand)]
enum InferenceCommand {
    /// Serve the models over an OpenAI-compatible API (`[inference.server]`) until SIGTERM.
    Serve,
}

/// What WeChat sends with every callback.
#[derive(Args)]
struct CallbackParams {
    /// The callback token configured in WeChat's console.
    #[arg(long)]
    token: String,
    /// `timestamp` from the callback URL.
    #[arg(long)]
    timestamp: String,
    /// `nonce` from the callback URL.
    #[arg(long)]
    nonce: String,
}

/// The account's message-encryption settings.
#[derive(Args)]
struct CryptoParams {
    /// The 43-character EncodingAESKey.
    #[arg(long)]
    aes_key: String,
    /// The account's AppID (`wx…`).
    #[arg(long)]
    appid: String,
}

#[derive(Subcommand)]
enum WechatCommand {
    /// Check a URL-verification request (GET with signature, timestamp, nonce, echostr);
    /// prints the echostr WeChat expects back.
    VerifyUrl {
        #[command(flatten)]
        callback: CallbackParams,
        /// `signature` from the URL.
        #[arg(long)]
        signature: String,
        /// `echostr` from the URL.
        #[arg(long)]
        echostr: String,
    },
    /// Decrypt a safe- or compatible-mode callback body read from standard input; prints
    /// the message XML, or which check failed and why.
    Decrypt {
        #[command(flatten)]
        callback: CallbackParams,
        #[command(flatten)]
        crypto: CryptoParams,
        /// `msg_signature` from the URL (not `signature`).
        #[arg(long)]
        msg_signature: String,
    },
    /// Encrypt a reply XML read from standard input into the envelope WeChat expects.
    Encrypt {
        #[command(flatten)]
        callback: CallbackParams,
        #[command(flatten)]
        crypto: CryptoParams,
    },
    /// Run the WeChat simulator (tokens, customer-service windows, quotas, callbacks) for demos.
    Simulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
    },
}

fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .context("reading standard input")?;
    Ok(text)
}

async fn wechat(command: WechatCommand) -> anyhow::Result<()> {
    let output = match command {
        WechatCommand::VerifyUrl {
            callback,
            signature,
            echostr,
        } => wxpilot_wechat::cli::verify_url(
            &callback.token,
            &callback.timestamp,
            &callback.nonce,
            &signature,
            &echostr,
        ),
        WechatCommand::Decrypt {
            callback,
            crypto,
            msg_signature,
        } => wxpilot_wechat::cli::decrypt(
            &callback.token,
            &crypto.aes_key,
            &crypto.appid,
            &callback.timestamp,
            &callback.nonce,
            &msg_signature,
            &read_stdin()?,
        ),
        WechatCommand::Encrypt { callback, crypto } => wxpilot_wechat::cli::encrypt(
            &callback.token,
            &crypto.aes_key,
            &crypto.appid,
            &callback.timestamp,
            &callback.nonce,
            &read_stdin()?,
        ),
        WechatCommand::Simulator { listen } => {
            eprintln!("WeChat simulator on http://{listen} (admin API under /_sim/)");
            return wxpilot_wechat_sim::run(listen, wxpilot_wechat_sim::SimConfig::default())
                .await
                .map_err(|e| anyhow::anyhow!("simulator: {e}"));
        }
    };
    match output {
        Ok(text) => {
            println!("{text}");
            Ok(())
        }
        Err(reason) => anyhow::bail!("{reason}"),
    }
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Verify, decrypt, parse, reply and encrypt callback messages on one core.
    Wechat {
        /// Messages to process.
        #[arg(long, default_value_t = 200_000)]
        messages: usize,
        /// Print one JSON object of the figures.
        #[arg(long)]
        json: bool,
    },
    /// Train the recommender on a synthetic account and recommend for every follower.
    Recommend {
        /// Followers.
        #[arg(long, default_value_t = 100_000)]
        followers: usize,
        /// Items.
        #[arg(long, default_value_t = 10_000)]
        items: usize,
        /// Interactions.
        #[arg(long, default_value_t = 1_000_000)]
        interactions: usize,
        /// Dimensions of the synthetic item embeddings (0 = none).
        #[arg(long, default_value_t = 384)]
        embedding_dim: usize,
        /// Print one JSON object of the figures.
        #[arg(long)]
        json: bool,
    },
    /// Embedding and generation throughput of the local models, batched against one at a
    /// time (models from scripts/fetch-models.sh).
    Inference {
        /// Models folder (default: $WXPILOT_MODELS_DIR or ~/.cache/wxpilot/models).
        #[arg(long)]
        models_dir: Option<PathBuf>,
        /// Embedding requests (one sentence each) in each of the two modes.
        #[arg(long, default_value_t = 1024)]
        embed_requests: usize,
        /// Tokens each generation produces.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
        max_tokens: u32,
        /// Alternating rounds of the two modes (each mode's rounds are added up).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
        rounds: u64,
        /// Print one JSON object of the figures.
        #[arg(long)]
        json: bool,
    },
    /// Load a running server's WeChat callback with safe-mode FAQ messages (creates the
    /// accounts through the API with the given tenant key).
    Callback {
        /// The server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A tenant API key with the admin role.
        #[arg(long, env = "WXPILOT_BENCH_KEY")]
        key: String,
        /// Messages in all.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Messages per second (open loop).
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        /// Accounts the messages are spread over.
        #[arg(long, default_value_t = 8)]
        accounts: usize,
        /// Requests in flight at most.
        #[arg(long, default_value_t = 256)]
        connections: usize,
        /// Print one JSON object of the figures.
        #[arg(long)]
        json: bool,
    },
    /// Push zero-sleep ping jobs through the queue (Redis when REDIS_URL is set) and workers.
    Jobs {
        /// Jobs to push.
        #[arg(long, default_value_t = 5000)]
        jobs: usize,
        /// Worker runtimes.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Jobs each worker runs at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Enqueue at this rate (jobs/s) to measure latency at light load.
        #[arg(long)]
        rate: Option<f64>,
        /// Print one JSON object of the figures.
        #[arg(long)]
        json: bool,
    },
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
    /// Re-seal every stored secret under the current master key (WXPILOT_MASTER_KEY), reading
    /// old values with WXPILOT_PREVIOUS_MASTER_KEYS. Safe while serving, and to repeat.
    RotateMasterKey,
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value)
        .ok_or_else(|| format!("unknown role {value:?}: use viewer, editor, admin or owner"))
}

fn main() -> ExitCode {
    settle_inference_threads();
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

/// Fixes candle's CPU thread count for the whole process (see
/// `wxpilot_inference::threads`); must run before the runtime or any other thread starts.
#[allow(unsafe_code)]
fn settle_inference_threads() {
    if let Some(value) = wxpilot_inference::threads::thread_count_for_this_process() {
        // SAFETY: called first thing in `main`, while this is the only thread, so nothing
        // can read the environment concurrently.
        unsafe { std::env::set_var(wxpilot_inference::threads::THREADS_VAR, value) };
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi { output } => print_openapi(output),
        Command::Demo(args) => demo::run(cli.config.as_deref(), args).await,
        Command::Wechat(command) => wechat(command).await,
        Command::Bench(BenchCommand::Recommend {
            followers,
            items,
            interactions,
            embedding_dim,
            json,
        }) => {
            let config = wxpilot_recommend::bench::ScaleConfig {
                followers,
                items,
                interactions,
                embedding_dim,
                ..Default::default()
            };
            recommend_cli::bench(config, json)
        }
        Command::Eval(command) => eval::run(command),
        Command::Bench(BenchCommand::Wechat { messages, json }) => {
            let report = bench::run(messages)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} messages on one core: {:.0} messages/s ({:.2} µs each: verify, decrypt, parse, reply, encrypt)",
                    report.messages, report.messages_per_s, report.mean_us
                );
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Callback {
            url,
            key,
            messages,
            rate,
            accounts,
            connections,
            json,
        }) => {
            let report = bench_callback::run(bench_callback::CallbackBench {
                url: url.trim_end_matches('/').to_owned(),
                key,
                messages,
                rate,
                accounts,
                connections,
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} safe-mode FAQ messages over {} account(s) at {:.0}/s (achieved {:.0}/s): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} error(s){}",
                    report.messages,
                    report.accounts,
                    report.target_rate_per_s,
                    report.achieved_rate_per_s,
                    report.latency_ms.p50,
                    report.latency_ms.p90,
                    report.latency_ms.p99,
                    report.latency_ms.max,
                    report.errors,
                    report
                        .first_error
                        .as_deref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                );
                if let Some(w) = &report.worst_second {
                    println!(
                        "slowest second: {} s after {} ({} messages, median {:.1} ms, slowest {:.1} ms)",
                        w.at_s, report.started_at, w.messages, w.p50_ms, w.max_ms
                    );
                }
            }
            anyhow::ensure!(
                report.errors == 0,
                "{} callback request(s) failed",
                report.errors
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Inference {
            models_dir,
            embed_requests,
            max_tokens,
            rounds,
            json,
        }) => {
            let mut options = wxpilot_inference::bench::BenchOptions {
                embed_requests,
                max_tokens,
                rounds: rounds as usize,
                ..Default::default()
            };
            if let Some(dir) = models_dir {
                options.models_dir = dir;
            }
            let report = wxpilot_inference::bench::run(options).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(())
        }
        Command::Secrets(SecretsCommand::RotateMasterKey) => {
            let settings = Settings::load(cli.config.as_deref())?;
            telemetry::init(&settings.log);
            let database = admin_db(&settings).await?;
            let secrets = settings.secret_box()?;
            let report = wxpilot_core::service::rotation::rotate_master_key(&database, &secrets)
                .await
                .map_err(describe)?;
            println!(
                "re-sealed {} secret(s) under master key {}; {} already used it; {} changed meanwhile (by writers already using it)",
                report.resealed,
                secrets.current_key().id(),
                report.already_current,
                report.skipped_concurrent
            );
            Ok(())
        }
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
                Command::Inference(InferenceCommand::Serve) => {
                    wxpilot_worker::inference::serve(&settings.inference).await
                }
                Command::Migrate { status } => migrate(settings, status).await,
                Command::Tenant(TenantCommand::Create(args)) => tenant_create(settings, args).await,
                Command::Apikey(ApiKeyCommand::Create(args)) => apikey_create(settings, args).await,
                Command::Bench(BenchCommand::Jobs {
                    jobs,
                    workers,
                    concurrency,
                    rate,
                    json,
                }) => {
                    let report = wxpilot_worker::bench::run_jobs(
                        settings,
                        wxpilot_worker::bench::JobBench {
                            jobs,
                            workers,
                            concurrency,
                            rate,
                        },
                    )
                    .await?;
                    if json {
                        println!("{}", serde_json::to_string(&report)?);
                    } else {
                        println!(
                            "{} jobs via {} queue on {} with {} worker(s): {:.0} jobs/s; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (enqueue took {:.2} s)",
                            report.jobs,
                            report.queue,
                            report.database,
                            report.workers,
                            report.throughput_per_s,
                            report.latency_ms.p50,
                            report.latency_ms.p90,
                            report.latency_ms.p99,
                            report.latency_ms.max,
                            report.enqueue_s
                        );
                    }
                    Ok(())
                }
                Command::Openapi { .. }
                | Command::Demo(_)
                | Command::Secrets(_)
                | Command::Wechat(_)
                | Command::Eval(_)
                | Command::Bench(BenchCommand::Recommend { .. })
                | Command::Bench(BenchCommand::Wechat { .. })
                | Command::Bench(BenchCommand::Callback { .. })
                | Command::Bench(BenchCommand::Inference { .. }) => Ok(()),
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
    let stop = tokio_util::sync::CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signalled.cancel();
    });
    serve_with(settings, role, None, stop).await
}

/// Runs `role` until `stop` is cancelled, on `listener` when one is given (else the one
/// `listen` and `LISTEN_FDS` say).
async fn serve_with(
    settings: Settings,
    role: Halves,
    listener: Option<std::net::TcpListener>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let url = settings.database_url();
    let mut deps = wxpilot_api::Deps::connect(&settings).await?;
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
    // The worker's services (models loaded once); the callback embeds followers' questions
    // with the same router. An api-only process loads its own only when hybrid retrieval is
    // configured (`customer_service.embedding_model`).
    let services = match role {
        Halves::Api => None,
        Halves::Both | Halves::Worker => {
            Some(wxpilot_worker::Services::from_settings(&settings, deps.secrets.clone()).await?)
        }
    };
    if role != Halves::Worker {
        deps.embedder = match &services {
            Some(services) => Some(services.inference.for_kind("reply")),
            None if !settings.customer_service.embedding_model.is_empty() => {
                let router =
                    wxpilot_worker::inference::build_router(&settings.inference, None, None)
                        .await?;
                Some(std::sync::Arc::new(router).for_kind("reply"))
            }
            None => None,
        };
    }
    let worker = services.map(|services| {
        tokio::spawn(wxpilot_worker::run_with(
            settings.clone(),
            deps.db.clone(),
            services,
            deps.queue.clone(),
            shutdown.clone(),
        ))
    });
    let mut probe = None;
    let served = if role == Halves::Worker {
        probe = match &settings.jobs.metrics_listen {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("binding jobs.metrics_listen {addr}"))?;
                tracing::info!(%addr, "worker probes and metrics on /healthz, /readyz, /metrics");
                let server = wxpilot_api::probe::worker_probe(listener, deps.db.clone())?;
                let handle = server.handle();
                tokio::spawn(server);
                Some(handle)
            }
            None => None,
        };
        stop.cancelled().await;
        tracing::info!("stopping: no new jobs are taken; running ones get the grace period");
        Ok(())
    } else {
        let listener = match listener {
            Some(listener) => listener,
            None => wxpilot_api::startup::listen(&settings)?,
        };
        let addr = listener.local_addr()?;
        let app =
            wxpilot_api::Application::build_with((*settings).clone(), deps.clone(), listener)?;
        tracing::info!(
            "wxpilot API listening on http://{addr} (docs at /docs/, OpenAPI at /openapi.json)"
        );
        // SIGINT/SIGTERM: stop accepting, let what was just accepted be read, then stop
        // gracefully (in-flight requests get http.shutdown_timeout_secs); the worker follows.
        let handle = app.handle();
        let drain = std::time::Duration::from_millis(settings.http.shutdown_drain_ms);
        tokio::spawn(async move {
            stop.cancelled().await;
            tracing::info!("stopping: no new connections; in-flight requests finish");
            handle.pause().await;
            tokio::time::sleep(drain).await;
            handle.stop(true).await;
        });
        app.run_until_stopped().await.context("HTTP server failed")
    };
    shutdown.cancel();
    if let Some(worker) = worker {
        worker.await.context("the job worker panicked")??;
    }
    // Probes answer until the running jobs are done.
    if let Some(probe) = probe {
        probe.stop(false).await;
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
