//! Recommendation end to end, on SQLite and on Postgres/Redis: items and JSON-lines
//! interactions (bad lines reported, repeats stored once), the `recommend` job over two
//! planted tastes with a scripted embedding model (word-hash vectors, so shared words mean
//! similar texts), reasons naming the follower's own history, a cold item reached by its
//! text, the popularity fallback, similar items, segments tagged in the WeChat simulator,
//! and tenant isolation of all of it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxpilot_inference::testing::ScriptedBackend;
use wxpilot_inference::{Backend as ModelBackend, Router, RoutingConfig};
use wxpilot_wechat_sim::{SimConfig, SimHandle, Simulator, TagCall};

use crate::both_backends;
use crate::helpers::*;

const APP_ID: &str = "wx7a1b2c3d4e5f6a7b";
const TEA_WORDS: &str = "tea leaves teapot oolong brewing cup";
const RUN_WORDS: &str = "running marathon shoes pace stride race";

fn tea_fan(n: usize) -> String {
    format!("oTea{n:02}xxxxxxxxxxxxxxxxxxxxxx")
}

fn runner(n: usize) -> String {
    format!("oRun{n:02}xxxxxxxxxxxxxxxxxxxxxx")
}

async fn app_with(backend: Backend, sim: &SimHandle) -> TestApp {
    let base = sim.base_url();
    spawn_app_with_services(
        backend,
        move |s| s.wechat.api_base_url = base,
        Box::new(|settings, secrets| {
            let mut services =
                wxpilot_worker::Services::without_models(settings, secrets).expect("services");
            let local: Arc<dyn ModelBackend> =
                Arc::new(ScriptedBackend::new("local").with_dimensions(64));
            services.inference = Arc::new(Router::new(Some(local), None, RoutingConfig::default()));
            services
        }),
    )
    .await
}

/// Six tea articles, six running articles, and one of each nobody has read yet.
fn items() -> Vec<Value> {
    let mut items = Vec::new();
    for i in 0..6 {
        items.push(
            json!({"id": format!("tea-{i}"), "title": format!("Tea guide {i}"),
            "text": TEA_WORDS, "tags": ["tea"], "url": format!("https://example.com/tea/{i}")}),
        );
        items.push(
            json!({"id": format!("run-{i}"), "title": format!("Running plan {i}"),
            "text": RUN_WORDS, "kind": "product"}),
        );
    }
    items.push(json!({"id": "tea-new", "title": "New oolong", "text": TEA_WORDS}));
    items.push(json!({"id": "run-new", "title": "New race shoes", "text": RUN_WORDS}));
    items
}

/// Each of eight tea fans read five of the six tea articles (not the same five); runners
/// likewise. Every line has an event id.
fn interactions() -> Vec<Value> {
    let mut lines = Vec::new();
    for f in 0..8 {
        for i in 0..6 {
            if i == f % 6 {
                continue;
            }
            lines.push(
                json!({"openid": tea_fan(f), "item": format!("tea-{i}"), "kind": "read",
                "event_id": format!("t{f}-{i}"), "time": "2026-11-20T08:00:00Z"}),
            );
            lines.push(
                json!({"openid": runner(f), "item": format!("run-{i}"), "kind": "click",
                "event_id": format!("r{f}-{i}")}),
            );
        }
    }
    lines
}

fn ndjson(lines: &[Value]) -> String {
    lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

async fn post_lines(app: &TestApp, key: &str, account: &str, body: String) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/accounts/{account}/interactions")))
        .bearer_auth(key)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn finished(app: &TestApp, key: &str, location: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let job: Value = app
            .get(location, key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ["succeeded", "dead"].contains(&job["status"].as_str().unwrap_or_default())
            || Instant::now() > deadline
        {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_job(app: &TestApp, key: &str, path: &str, body: Value) -> Value {
    let res = app.post(path, key, &body).send().await.unwrap();
    assert_eq!(res.status(), 202, "{path}");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job = finished(app, key, &location).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job
}

async fn get_json(app: &TestApp, key: &str, path: &str) -> Value {
    let res = app.get(path, key).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

fn item_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["item"].as_str().unwrap().to_owned())
        .collect()
}

async fn recommends_from_planted_tastes(backend: Backend) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.register_account(APP_ID, APP_SECRET, "spamtest", AES_KEY, true)
        .unwrap();
    // Seven of the eight tea fans still follow the account.
    for f in 0..7 {
        sim.add_follower(APP_ID, &tea_fan(f)).unwrap();
    }
    let app = app_with(backend, &sim).await;
    let t = app.tenant("Recs").await;
    let account = app.create_account(&t.owner_key, APP_ID).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/v1/accounts/{account}");

    // Items: one bad element is reported by position, the others stored.
    let mut body = items();
    body.push(json!({"id": "no-title"}));
    let res = app
        .post(&format!("{base}/items"), &t.owner_key, &Value::from(body))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["stored"], 14, "{report}");
    assert_eq!(report["rejected"][0]["row"], 15, "{report}");
    let page = get_json(&app, &t.owner_key, &format!("{base}/items?limit=200")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 14);
    let run0 = get_json(&app, &t.owner_key, &format!("{base}/items/run-0")).await;
    assert_eq!(run0["kind"], "product");
    assert_eq!(run0["embedded"], false);

    // Interactions as JSON lines with three bad lines at known positions.
    let good = interactions();
    let mut lines: Vec<String> = good.iter().map(Value::to_string).collect();
    lines.insert(3, "{not json".into());
    lines.insert(
        5,
        json!({"openid": "oX", "item": "missing", "kind": "read"}).to_string(),
    );
    lines.insert(
        7,
        json!({"openid": "oX", "item": "tea-1", "kind": "teleport"}).to_string(),
    );
    let body = lines.join("\n");
    let res = post_lines(&app, &t.owner_key, &account, body.clone()).await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["stored"], good.len(), "{report}");
    let rejected: Vec<u64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, vec![4, 6, 8], "{report}");
    assert!(
        report["rejected"][1]["message"]
            .as_str()
            .unwrap()
            .contains("unknown item")
    );
    // The same upload again stores nothing twice.
    let res = post_lines(&app, &t.owner_key, &account, body).await;
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["stored"], 0, "{again}");
    assert_eq!(again["duplicates"], good.len(), "{again}");
    assert_eq!(app.count("interactions").await, good.len() as i64);

    // Before any job: no recommendations, and similar items are not computed.
    let res = app
        .get(
            &format!("{base}/followers/{}/recommendations", tea_fan(0)),
            &t.owner_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .get(&format!("{base}/items/tea-1/similar"), &t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);

    let job = run_job(
        &app,
        &t.owner_key,
        &format!("{base}/recommendations"),
        json!({"k": 4}),
    )
    .await;
    assert_eq!(job["result"]["followers"], 16, "{job}");
    assert_eq!(job["result"]["text_embeddings"]["embedded_items"], 14);

    // A tea fan gets tea: the one tea article they missed and the unread one, never what
    // they read, and reasons from their own history.
    let fan = tea_fan(0);
    let recs = get_json(
        &app,
        &t.owner_key,
        &format!("{base}/followers/{fan}/recommendations"),
    )
    .await;
    assert_eq!(recs["fallback"], false);
    let ids = item_ids(&recs["items"]);
    assert_eq!(ids.len(), 4, "{recs}");
    let read: HashSet<String> = (1..6).map(|i| format!("tea-{i}")).collect();
    assert!(ids.iter().all(|id| !read.contains(id)), "{recs}");
    let top2: HashSet<&str> = ids[..2].iter().map(String::as_str).collect();
    assert_eq!(top2, HashSet::from(["tea-0", "tea-new"]), "{recs}");
    for rec in recs["items"].as_array().unwrap() {
        let reason = &rec["reason"];
        assert!(rec["explanation"].as_str().is_some_and(|e| !e.is_empty()));
        match reason["kind"].as_str().unwrap() {
            "history" => {
                for named in reason["items"].as_array().unwrap() {
                    assert!(
                        read.contains(named["item"].as_str().unwrap()),
                        "named an item the follower never read: {rec}"
                    );
                }
            }
            "similar_to" => {
                assert!(read.contains(reason["item"].as_str().unwrap()), "{rec}");
            }
            other => panic!("unexpected reason {other}: {rec}"),
        }
    }
    // The unread tea article is reached through its text.
    let cold = recs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["item"] == "tea-new")
        .unwrap();
    assert_eq!(cold["reason"]["kind"], "similar_to", "{cold}");

    // A follower the job never saw gets the most consumed items.
    let new = get_json(
        &app,
        &t.owner_key,
        &format!("{base}/followers/oBrandNewxxxxxxxxxxxxxxxxxx/recommendations"),
    )
    .await;
    assert_eq!(new["fallback"], true);
    assert_eq!(new["items"][0]["reason"]["kind"], "popular");

    // Similar to a tea article: tea first.
    let similar = get_json(&app, &t.owner_key, &format!("{base}/items/tea-1/similar")).await;
    let ids = item_ids(&similar["similar"]);
    assert!(
        ids[..3].iter().all(|id| id.starts_with("tea-")),
        "{similar}"
    );

    // A segment of tea readers tagged in WeChat; the fan who unfollowed is not tagged.
    let job = run_job(
        &app,
        &t.owner_key,
        &format!("{base}/segments"),
        json!({"name": "茶友", "items": ["tea-0", "tea-1"], "top": 8}),
    )
    .await;
    let segment_id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["result"]["members"], 8, "{job}");
    assert_eq!(job["result"]["tagged"], 7, "{job}");
    let segment = get_json(&app, &t.owner_key, &format!("{base}/segments/{segment_id}")).await;
    let members = segment["members"].as_array().unwrap();
    assert!(
        members
            .iter()
            .all(|m| m["openid"].as_str().unwrap().starts_with("oTea")),
        "{segment}"
    );
    let tag_id = segment["wechat_tag_id"].as_i64().unwrap();
    let calls = sim.tag_calls();
    let created: Vec<&TagCall> = calls
        .iter()
        .filter(|c| matches!(c, TagCall::Create { .. }))
        .collect();
    assert_eq!(created.len(), 1);
    assert!(
        matches!(created[0], TagCall::Create { name, id, .. } if name == "茶友" && *id == tag_id)
    );
    let tagged: HashSet<String> = calls
        .iter()
        .filter_map(|c| match c {
            TagCall::BatchTag {
                tag_id: id,
                openids,
                ..
            } if *id == tag_id => Some(openids.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(tagged, (0..7).map(tea_fan).collect::<HashSet<_>>());

    // The same tag name again reuses the tag; a topic segment picks runners by text.
    run_job(
        &app,
        &t.owner_key,
        &format!("{base}/segments"),
        json!({"name": "runners", "tag": "茶友", "topic": "marathon race shoes", "top": 5}),
    )
    .await;
    assert_eq!(
        sim.tag_calls()
            .iter()
            .filter(|c| matches!(c, TagCall::Create { .. }))
            .count(),
        1
    );
    let list = get_json(&app, &t.owner_key, &format!("{base}/segments")).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let topic = &list[0];
    assert_eq!(topic["name"], "runners");
    let topic = get_json(
        &app,
        &t.owner_key,
        &format!("{base}/segments/{}", topic["id"].as_str().unwrap()),
    )
    .await;
    assert!(
        topic["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["openid"].as_str().unwrap().starts_with("oRun")),
        "{topic}"
    );

    // Bad requests change nothing.
    let res = app
        .post(
            &format!("{base}/segments"),
            &t.owner_key,
            &json!({"name": "x", "items": ["tea-0"], "topic": "tea"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = app
        .post(
            &format!("{base}/recommendations"),
            &t.owner_key,
            &json!({"k": 0}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    // Another tenant sees none of it.
    let other = app.tenant("Other").await;
    let paths = [
        format!("{base}/items"),
        format!("{base}/items/tea-1"),
        format!("{base}/items/tea-1/similar"),
        format!("{base}/followers/{fan}/recommendations"),
        format!("{base}/segments"),
        format!("{base}/segments/{segment_id}"),
    ];
    for path in &paths {
        let res = app.get(path, &other.owner_key).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    let res = post_lines(&app, &other.owner_key, &account, ndjson(&good[..1])).await;
    assert_eq!(res.status(), 404);
    for (path, body) in [
        (format!("{base}/items"), Value::from(items())),
        (format!("{base}/recommendations"), json!({})),
        (
            format!("{base}/segments"),
            json!({"name": "steal", "items": ["tea-0"]}),
        ),
    ] {
        let res = app
            .post(&path, &other.owner_key, &body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    // Its own account with the first tenant's segment id is a 404 too.
    let own = app
        .create_account(&other.owner_key, "wx0f1e2d3c4b5a6978")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .get(
            &format!("/v1/accounts/{own}/segments/{segment_id}"),
            &other.owner_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.count("interactions").await, good.len() as i64);
}
both_backends!(recommends_from_planted_tastes);

/// A menu `CLICK` whose key is an item id and a `VIEW` of an item's URL, delivered through
/// the real callback (safe mode), become interactions; WeChat's redelivery counts once, and
/// events that point at no item are ignored.
async fn menu_events_become_interactions(backend: Backend) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.register_account(APP_ID, APP_SECRET, "spamtest", AES_KEY, true)
        .unwrap();
    let app = app_with(backend, &sim).await;
    let t = app.tenant("Menu").await;
    let account = app.create_account(&t.owner_key, APP_ID).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.set_callback(
        APP_ID,
        &app.url(&format!("/wechat/{account}")),
        wxpilot_wechat_sim::CallbackMode::Safe,
    )
    .unwrap();
    let res = app
        .post(
            &format!("/v1/accounts/{account}/items"),
            &t.owner_key,
            &Value::from(items()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fan = tea_fan(1);
    let event = |kind: &str, key: &str, at: i64| {
        format!(
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\
             <FromUserName><![CDATA[{fan}]]></FromUserName><CreateTime>{at}</CreateTime>\
             <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{kind}]]></Event>\
             <EventKey><![CDATA[{key}]]></EventKey></xml>"
        )
    };
    let now = chrono::Utc::now().timestamp();
    let click = event("CLICK", "tea-2", now);
    for xml in [
        click.clone(),
        click,
        event("VIEW", "https://example.com/tea/4", now + 1),
        event("CLICK", "MENU_ABOUT_US", now + 2),
    ] {
        let report = sim.deliver_xml(APP_ID, &xml).await.unwrap();
        assert_eq!(
            report.reply,
            wxpilot_wechat_sim::ReplyOutcome::Acknowledged,
            "{report:?}"
        );
    }
    assert_eq!(app.count("interactions").await, 2);
    // They train the model like uploaded ones.
    let res = app
        .post(
            &format!("/v1/accounts/{account}/recommendations"),
            &t.owner_key,
            &json!({"k": 3}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job = finished(&app, &t.owner_key, &location).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["followers"], 1, "{job}");
    let recs = get_json(
        &app,
        &t.owner_key,
        &format!("/v1/accounts/{account}/followers/{fan}/recommendations"),
    )
    .await;
    let ids = item_ids(&recs["items"]);
    assert!(!ids.contains(&"tea-2".to_owned()) && !ids.contains(&"tea-4".to_owned()));
}
both_backends!(menu_events_become_interactions);

/// Hostile uploads and requests are refused cleanly (problem+json, never a 500) and change
/// nothing: NUL and control characters, oversized bodies, malformed follower ids, unknown
/// segment items, and a key whose scopes cover jobs but not accounts.
async fn hostile_input_changes_nothing(backend: Backend) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let app = app_with(backend, &sim).await;
    let t = app.tenant("Hostile").await;
    let account = app.create_account(&t.owner_key, APP_ID).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/v1/accounts/{account}");
    let body = json!([
        {"id": "ok-1", "title": "Fine"},
        {"id": "nul", "title": "a\u{0}b"},
        {"id": "ctl", "title": "bell\u{7}"},
        {"id": " padded ", "title": "Spaces"},
        {"id": "dup-tags", "title": "Tags", "tags": ["a", "a"]},
        {"id": "ok-2", "title": "Also fine", "text": "line one\nline two"}
    ]);
    let res = app
        .post(&format!("{base}/items"), &t.owner_key, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["stored"], 2, "{report}");
    let rows: Vec<u64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![2, 3, 4, 5], "{report}");
    let res = post_lines(
        &app,
        &t.owner_key,
        &account,
        "{\"openid\":\"o\\u0000x\",\"item\":\"ok-1\",\"kind\":\"read\"}".into(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["stored"], 0);
    assert!(
        report["rejected"][0]["message"]
            .as_str()
            .unwrap()
            .contains("NUL")
    );
    // Too large: 413 as problem+json.
    let huge = "x".repeat(TEST_BODY_LIMIT + 1);
    let res = post_lines(&app, &t.owner_key, &account, huge).await;
    expect_problem(res, 413).await;
    // Malformed ids in paths are plain 404s.
    for path in [
        format!("{base}/items/a%00b"),
        format!("{base}/items/a%00b/similar"),
        format!("{base}/followers/a%00b/recommendations"),
        format!("{base}/followers/x%0Ay/recommendations"),
        format!("{base}/conversations/a%00b"),
        format!("{base}/conversations/a%00b/messages"),
    ] {
        let res = app.get(&path, &t.owner_key).send().await.unwrap();
        expect_problem(res, 404).await;
    }
    // A segment naming an item the account lacks is refused at once.
    let res = app
        .post(
            &format!("{base}/segments"),
            &t.owner_key,
            &json!({"name": "x", "items": ["ok-1", "nope"]}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 422).await;
    assert!(problem.to_string().contains("nope"), "{problem}");
    let res = app
        .post(
            &format!("{base}/segments"),
            &t.owner_key,
            &json!({"name": "tab\there", "items": ["ok-1"]}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
    // A key scoped to jobs alone cannot start work on account data.
    let res = app
        .post(
            "/v1/api-keys",
            &t.owner_key,
            &json!({"name": "jobs only", "role": "admin", "scopes": ["jobs"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let jobs_key = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, body) in [
        (format!("{base}/recommendations"), json!({})),
        (
            format!("{base}/segments"),
            json!({"name": "x", "items": ["ok-1"]}),
        ),
    ] {
        let res = app.post(&path, &jobs_key, &body).send().await.unwrap();
        expect_problem(res, 403).await;
    }
    assert_eq!(app.count("recommendation_items").await, 2);
    assert_eq!(app.count("interactions").await, 0);
    assert_eq!(app.count("jobs").await, 0);
}
both_backends!(hostile_input_changes_nothing);
