//! Content generation against a scripted model, stored drafts, review and isolation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wxpilot_entity::Role;
use wxpilot_inference::testing::ScriptedBackend;
use wxpilot_inference::{Backend as ModelBackend, Router, RoutingConfig};

use crate::helpers::*;
use crate::jobs::wait_for;

const GOOD: &str = "TITLE: 秋季新豆上市\nDIGEST: 云南产地直送，本周到店可试饮\nBODY:\n今年秋天，我们从云南产地带回了新一季的咖啡豆。\n\n欢迎到店试饮，感受手冲的香气。";
const GARBAGE: &str = "I am sorry, I cannot help with that.";
const BANNED: &str = "TITLE: 全城最好的咖啡\nDIGEST: 新豆到店\nBODY:\n这是最好的咖啡，欢迎品尝。\n\n本周到店可试饮。";

/// The app with a worker whose model plays `script`.
async fn app_with(backend: Backend, script: Arc<ScriptedBackend>) -> TestApp {
    spawn_app_with_services(
        backend,
        |_| {},
        Box::new(move |settings, secrets| {
            let mut services =
                wxpilot_worker::Services::without_models(settings, secrets).expect("services");
            let local: Arc<dyn ModelBackend> = script;
            services.inference = Arc::new(Router::new(Some(local), None, RoutingConfig::default()));
            services
        }),
    )
    .await
}

fn script(replies: &[&str]) -> Arc<ScriptedBackend> {
    let mut s = ScriptedBackend::new("local");
    for r in replies {
        s = s.reply(*r);
    }
    Arc::new(s)
}

struct Setup {
    tenant: TestTenant,
    campaign_id: String,
    account_id: String,
}

async fn setup(app: &TestApp) -> Setup {
    let tenant = app.tenant("acme").await;
    let account = app
        .create_account(&tenant.owner_key, "wx1234567890abcdef")
        .await;
    let account_id = account["id"].as_str().unwrap().to_owned();
    let campaign = app
        .create_campaign(&tenant.owner_key, &account_id, "秋季新品")
        .await;
    Setup {
        tenant,
        campaign_id: campaign["id"].as_str().unwrap().to_owned(),
        account_id,
    }
}

/// Posts a generation and waits for the job to reach `status`.
async fn generate(app: &TestApp, s: &Setup, body: Value, status: &str) -> Value {
    let res = app
        .post(
            &format!("/v1/campaigns/{}/generations", s.campaign_id),
            &s.tenant.owner_key,
            &body,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["kind"], "generate");
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["id"].as_str().unwrap())
    );
    wait_for(
        app,
        &s.tenant.owner_key,
        job["id"].as_str().unwrap(),
        status,
        Duration::from_secs(30),
    )
    .await
}

async fn content(app: &TestApp, key: &str, id: &str) -> Value {
    let res = app
        .get(&format!("/v1/contents/{id}"), key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn first_content_id(job: &Value) -> String {
    job["result"]["content_ids"][0].as_str().unwrap().to_owned()
}

async fn good_article_is_stored_clean(backend: Backend) {
    let model = script(&[GOOD]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let job = generate(
        &app,
        &s,
        json!({"kind": "article", "keywords": ["云南"]}),
        "succeeded",
    )
    .await;
    assert_eq!(model.generate_calls(), 1);
    assert_eq!(job["result"]["regenerations"], 0);
    let c = content(&app, &s.tenant.owner_key, &first_content_id(&job)).await;
    assert_eq!(c["kind"], "article");
    assert_eq!(c["state"], "draft");
    assert_eq!(c["campaign_id"], s.campaign_id.as_str());
    assert_eq!(c["account_id"], s.account_id.as_str());
    assert_eq!(c["body"]["title"], "秋季新豆上市");
    assert_eq!(c["body"]["digest"], "云南产地直送，本周到店可试饮");
    assert!(c["body"]["html"].as_str().unwrap().contains("<p>"), "{c}");
    assert_eq!(c["compliance_report"]["verdict"], "clean");
    assert_eq!(c["compliance_report"]["hits"], json!([]));
    assert_eq!(c["versions"].as_array().unwrap().len(), 1);
    assert_eq!(c["generation_job_id"], job["id"]);
    // The prompt carried the brief and the keyword.
    let requests = model.requests();
    let request = &requests[0];
    let user = &request.messages.last().unwrap().content;
    assert!(user.contains("新品上市") && user.contains("云南"), "{user}");
    // Token usage is recorded for the budget.
    let usage: Value = app
        .get("/v1/usage", &s.tenant.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(usage["llm_tokens"].as_i64().unwrap() > 0, "{usage}");
}
crate::both_backends!(good_article_is_stored_clean);

async fn malformed_then_good_is_stored_after_one_regeneration(backend: Backend) {
    let model = script(&[GARBAGE, GOOD]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let job = generate(&app, &s, json!({"kind": "article"}), "succeeded").await;
    assert_eq!(model.generate_calls(), 2);
    assert_eq!(job["result"]["regenerations"], 1);
    // The retry showed the model its answer and the correction.
    let requests = model.requests();
    let retry = &requests[1].messages;
    assert_eq!(retry[retry.len() - 2].content, GARBAGE);
    assert!(retry.last().unwrap().content.contains("format"));
    assert_eq!(app.count("contents").await, 1);
}
crate::both_backends!(malformed_then_good_is_stored_after_one_regeneration);

async fn garbage_fails_clearly_and_stores_nothing(backend: Backend) {
    let model = script(&[GARBAGE, GARBAGE, GARBAGE, GOOD]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let job = generate(&app, &s, json!({"kind": "article"}), "dead").await;
    assert_eq!(
        model.generate_calls(),
        3,
        "one answer and two regenerations"
    );
    let error = job["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("no usable article after 3 answers"), "{job}");
    assert_eq!(app.count("contents").await, 0);
    assert_eq!(app.count("content_versions").await, 0);
}
crate::both_backends!(garbage_fails_clearly_and_stores_nothing);

async fn overlong_title_is_truncated(backend: Backend) {
    let long_title = "秋".repeat(80);
    let answer = format!("TITLE: {long_title}\nDIGEST: 新豆到店\nBODY:\n新豆到店。\n\n欢迎试饮。");
    let model = script(&[&answer]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let job = generate(&app, &s, json!({"kind": "article"}), "succeeded").await;
    let c = content(&app, &s.tenant.owner_key, &first_content_id(&job)).await;
    assert_eq!(c["body"]["title"].as_str().unwrap().chars().count(), 64);
    assert_eq!(model.generate_calls(), 1);
}
crate::both_backends!(overlong_title_is_truncated);

async fn banned_term_is_rewritten_then_needs_review(backend: Backend) {
    let model = script(&[BANNED, BANNED, BANNED]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let job = generate(&app, &s, json!({"kind": "article"}), "succeeded").await;
    assert_eq!(model.generate_calls(), 3, "the answer and two rewrites");
    assert_eq!(job["result"]["rewrites"], 2);
    let requests = model.requests();
    let rewrite = &requests[1].messages.last().unwrap().content;
    assert!(
        rewrite.contains("Flagged phrases") && rewrite.contains('最'),
        "{rewrite}"
    );
    let c = content(&app, &s.tenant.owner_key, &first_content_id(&job)).await;
    assert_eq!(c["state"], "needs_review");
    assert_eq!(c["compliance_report"]["verdict"], "violation");
    let hits = c["compliance_report"]["hits"].as_array().unwrap();
    assert!(
        hits.iter().any(|h| h["field"] == "title"
            && h["start"] == 2
            && h["term"].as_str().unwrap().starts_with('最')),
        "{hits:?}"
    );
    // Needs review cannot be approved.
    let res = app
        .post(
            &format!("/v1/contents/{}/approve", c["id"].as_str().unwrap()),
            &s.tenant.owner_key,
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
}
crate::both_backends!(banned_term_is_rewritten_then_needs_review);

async fn rewrite_that_fixes_the_term_is_a_draft(backend: Backend) {
    let model = script(&[BANNED, GOOD]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let job = generate(&app, &s, json!({"kind": "article"}), "succeeded").await;
    assert_eq!(model.generate_calls(), 2);
    let c = content(&app, &s.tenant.owner_key, &first_content_id(&job)).await;
    assert_eq!(c["state"], "draft");
    assert_eq!(c["body"]["title"], "秋季新豆上市");
}
crate::both_backends!(rewrite_that_fixes_the_term_is_a_draft);

async fn brand_voice_banned_words_and_signature_apply(backend: Backend) {
    let answer = "TITLE: 秋季新豆\nDIGEST: 便宜又好喝\nBODY:\n便宜又好喝的咖啡。\n\n欢迎到店。";
    let model = script(&[answer, answer, answer]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let res = app
        .client
        .put(app.url(&format!("/v1/accounts/{}/brand-voice", s.account_id)))
        .bearer_auth(&s.tenant.owner_key)
        .json(&json!({"style_guide": "亲切", "banned_words": ["便宜"], "signature": "山野咖啡"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let job = generate(&app, &s, json!({"kind": "article"}), "succeeded").await;
    let requests = model.requests();
    let system = &requests[0].messages[0].content;
    assert!(
        system.contains("便宜") && system.contains("亲切"),
        "{system}"
    );
    let c = content(&app, &s.tenant.owner_key, &first_content_id(&job)).await;
    assert_eq!(c["state"], "needs_review");
    assert!(c["body"]["html"].as_str().unwrap().contains("山野咖啡"));
}
crate::both_backends!(brand_voice_banned_words_and_signature_apply);

async fn review_edit_and_viewer_rights(backend: Backend) {
    let model = script(&[GOOD]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let job = generate(
        &app,
        &s,
        json!({"kind": "article", "variants": 1}),
        "succeeded",
    )
    .await;
    let id = first_content_id(&job);
    let viewer = app.key(&s.tenant, Role::Viewer).await;
    let editor = app.key(&s.tenant, Role::Editor).await;
    // Viewers read, never write.
    assert_eq!(content(&app, &viewer, &id).await["state"], "draft");
    for action in ["approve", "reject"] {
        let res = app
            .post(&format!("/v1/contents/{id}/{action}"), &viewer, &json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "viewer {action}");
    }
    let res = app
        .patch(
            &format!("/v1/contents/{id}"),
            &viewer,
            &json!({"title": "x"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // An edit over the limit is refused; a good one is a new version.
    let res = app
        .patch(
            &format!("/v1/contents/{id}"),
            &editor,
            &json!({"title": "长".repeat(65)}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 422).await;
    assert!(problem.to_string().contains("title"), "{problem}");
    let res = app
        .patch(
            &format!("/v1/contents/{id}"),
            &editor,
            &json!({"title": "秋季新豆 到店试饮"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let edited: Value = res.json().await.unwrap();
    assert_eq!(edited["current_version"], 2);
    assert_eq!(edited["versions"].as_array().unwrap().len(), 2);
    assert_eq!(edited["versions"][0]["body"]["title"], "秋季新豆上市");
    assert_eq!(edited["body"]["title"], "秋季新豆 到店试饮");
    // Editors approve; the list filters by state and campaign.
    let res = app
        .post(&format!("/v1/contents/{id}/approve"), &editor, &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page: Value = app
        .get(
            &format!("/v1/contents?state=approved&campaign_id={}", s.campaign_id),
            &viewer,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], id.as_str());
    let page: Value = app
        .get("/v1/contents?state=draft", &viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"], json!([]));
    let res = app
        .post(&format!("/v1/contents/{id}/reject"), &editor, &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(content(&app, &viewer, &id).await["state"], "rejected");
}
crate::both_backends!(review_edit_and_viewer_rights);

async fn other_tenants_contents_and_campaigns_are_404(backend: Backend) {
    let model = script(&[GOOD]);
    let app = app_with(backend, model.clone()).await;
    let s = setup(&app).await;
    let job = generate(&app, &s, json!({"kind": "article"}), "succeeded").await;
    let id = first_content_id(&job);
    let other = app.tenant("other").await;
    let res = app
        .get(&format!("/v1/contents/{id}"), &other.owner_key)
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let res = app
        .post(
            &format!("/v1/contents/{id}/approve"),
            &other.owner_key,
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let res = app
        .patch(
            &format!("/v1/contents/{id}"),
            &other.owner_key,
            &json!({"title": "x"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let res = app
        .post(
            &format!("/v1/campaigns/{}/generations", s.campaign_id),
            &other.owner_key,
            &json!({"kind": "article"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let res = app
        .client
        .put(app.url(&format!("/v1/accounts/{}/brand-voice", s.account_id)))
        .bearer_auth(&other.owner_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let page: Value = app
        .get("/v1/contents", &other.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"], json!([]));
    // Bad options are refused before anything is queued.
    let res = app
        .post(
            &format!("/v1/campaigns/{}/generations", s.campaign_id),
            &s.tenant.owner_key,
            &json!({"kind": "article", "variants": 5}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
    let res = app
        .post(
            &format!("/v1/campaigns/{}/generations", s.campaign_id),
            &s.tenant.owner_key,
            &json!({"kind": "poem"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
    assert_eq!(model.generate_calls(), 1);
}
crate::both_backends!(other_tenants_contents_and_campaigns_are_404);
