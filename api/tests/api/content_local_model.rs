//! Content generation with the real default local model (SmolLM2-135M-Instruct, fetched by
//! scripts/fetch-models.sh) through the product: an article job stores a valid draft, with
//! token-by-token progress on the job's event stream. The quality target (at least nine of
//! ten jobs store a valid draft) is measured by the ignored test below, ten jobs at once,
//! which takes about ten minutes on two cores (docs/BENCHMARKS.md):
//! `cargo test -p wxpilot-api --test api -- --ignored ten_local_model_runs`.
//! Skipped, saying so, when the models are missing, unless WXPILOT_REQUIRE_MODELS is set
//! (as scripts/test.sh does), which makes it fail instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxpilot_inference::local::models_dir;
use wxpilot_inference::{
    Backend as ModelBackend, LocalBackend, LocalConfig, Router, RoutingConfig,
};

use crate::helpers::*;
use crate::jobs::parse_sse;

fn models_present() -> bool {
    let config = LocalConfig::default_models(&models_dir());
    let present = config.chat_model.as_ref().is_some_and(|c| c.gguf.is_file())
        && config.embedding_models[0].dir.is_dir();
    if !present {
        assert!(
            std::env::var_os("WXPILOT_REQUIRE_MODELS").is_none(),
            "models missing in {} and WXPILOT_REQUIRE_MODELS is set; run scripts/fetch-models.sh",
            models_dir().display()
        );
        eprintln!(
            "SKIPPED: no local models in {} (run scripts/fetch-models.sh)",
            models_dir().display()
        );
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_local_model_writes_a_valid_draft() {
    if models_present() {
        drafts_from_the_local_model(1, 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "ten article jobs on the CPU model take about ten minutes; run for docs/BENCHMARKS.md"]
async fn ten_local_model_runs() {
    if models_present() {
        drafts_from_the_local_model(10, 9).await;
    }
}

/// The first run's sampling seed.
const DRAFT_SEED: u64 = 1;

/// Runs `runs` article jobs at once and requires `at_least` of them to store a valid draft.
async fn drafts_from_the_local_model(runs: usize, at_least: usize) {
    let local = tokio::task::spawn_blocking(|| {
        LocalBackend::new(LocalConfig::default_models(&models_dir()))
    })
    .await
    .unwrap()
    .unwrap();
    let local: Arc<dyn ModelBackend> = Arc::new(local);
    let make: MakeServices = Box::new(move |settings, secrets| {
        let mut services =
            wxpilot_worker::Services::without_models(settings, secrets).expect("services");
        services.inference = Arc::new(Router::new(Some(local), None, RoutingConfig::default()));
        services
    });
    let app = spawn_app_with_services(
        Backend::Sqlite,
        |s| {
            s.jobs.kinds.insert(
                "generate".into(),
                wxpilot_core::jobs::KindPolicy {
                    max_attempts: 1,
                    timeout_secs: 1_200,
                    concurrency: runs,
                    backoff_base_ms: 1_000,
                    backoff_max_ms: 1_000,
                },
            );
        },
        make,
    )
    .await;
    let t = app.tenant("Local model").await;
    let account = app.create_account(&t.owner_key, "wx9a8b7c6d5e4f3a2b").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let campaign = app
        .create_campaign(&t.owner_key, &account, "秋季新品咖啡")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    // Seeded: each run samples the same way every time, so CI does not depend on luck (an
    // unseeded run failed about one time in ten); the runs still differ from each other.
    for run in 0..runs {
        let res = app
            .post(
                &format!("/v1/campaigns/{campaign}/generations"),
                &t.owner_key,
                &json!({"kind": "article", "length": "short", "seed": DRAFT_SEED + run as u64}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        ids.push(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The first job's event stream, to its end: progress counts tokens as they come.
    let res = app
        .get(&format!("/v1/jobs/{}/events", ids[0]), &t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events = parse_sse(
        &tokio::time::timeout(Duration::from_secs(600), res.text())
            .await
            .unwrap()
            .unwrap(),
    );
    let token_progress = events
        .iter()
        .filter(|(e, d)| {
            e == "progress" && d["message"].as_str().is_some_and(|m| m.ends_with("tokens"))
        })
        .count();
    assert!(token_progress >= 2, "no token progress: {events:?}");
    assert_eq!(events.last().map(|(e, _)| e.as_str()), Some("done"));

    let deadline = Instant::now() + Duration::from_secs(600);
    let mut stored = 0;
    let mut failures = Vec::new();
    for id in &ids {
        let job = loop {
            let job: Value = app
                .get(&format!("/v1/jobs/{id}"), &t.owner_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ["succeeded", "dead", "failed"].contains(&job["status"].as_str().unwrap_or(""))
                || Instant::now() > deadline
            {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        if job["status"] != "succeeded" {
            failures.push(job["error"].clone());
            continue;
        }
        let content_id = job["result"]["content_ids"][0].as_str().unwrap();
        let content: Value = app
            .get(&format!("/v1/contents/{content_id}"), &t.owner_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let title = content["body"]["title"].as_str().unwrap_or("");
        let html = content["body"]["html"].as_str().unwrap_or("");
        assert!(
            !title.trim().is_empty() && title.chars().count() <= 64,
            "{content}"
        );
        assert!(!html.trim().is_empty(), "{content}");
        stored += 1;
    }
    eprintln!(
        "local model: {stored} of {runs} article jobs stored a valid draft; failures: {failures:?}"
    );
    assert!(
        stored >= at_least,
        "{stored} of {runs} drafts stored; failures: {failures:?}"
    );
}
