//! Publishing approved articles against the WeChat simulator, on SQLite and on
//! Postgres/Redis: the cover and body images are fetched (from a local image server) and
//! uploaded, the body's URLs rewritten, one draft and one publish, the article URL stored;
//! a failed submit after the draft is retried without a second draft; the outcome also
//! arrives by the PUBLISHJOBFINISH event; repeated requests and other tenants get nothing.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use wxpilot_inference::testing::ScriptedBackend;
use wxpilot_inference::{Backend as ModelBackend, Router, RoutingConfig};
use wxpilot_wechat_sim::{CallbackMode, SimConfig, SimHandle, Simulator, UploadKind};

use crate::both_backends;
use crate::helpers::*;
use crate::jobs::wait_for;

const APP_ID: &str = "wx1234567890abcdef";
const ARTICLE: &str = "TITLE: 秋季新豆上市\nDIGEST: 云南产地直送，本周到店可试饮\nBODY:\n今年秋天，我们从云南产地带回了新一季的咖啡豆。\n\n欢迎到店试饮。";

/// Serves `/cover.jpg`, `/a.png` and `/b.png` on loopback; returns the base URL.
fn image_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let image = |content_type: &'static str, size: usize| {
        move || async move {
            HttpResponse::Ok()
                .content_type(content_type)
                .body(vec![0x5au8; size])
        }
    };
    let server = HttpServer::new(move || {
        App::new()
            .route("/cover.jpg", web::get().to(image("image/jpeg", 20_000)))
            .route("/a.png", web::get().to(image("image/png", 50_000)))
            .route("/b.png", web::get().to(image("image/png", 1_000)))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

async fn app_with(backend: Backend, sim: &SimHandle, replies: usize) -> TestApp {
    let base = sim.base_url();
    let mut model = ScriptedBackend::new("local");
    for _ in 0..replies {
        model = model.reply(ARTICLE);
    }
    let model: Arc<dyn ModelBackend> = Arc::new(model);
    spawn_app_with_services(
        backend,
        move |s| {
            s.wechat.api_base_url = base;
            s.publishing.allow_private_image_hosts = true;
            s.publishing.status_polls = 2;
            s.publishing.status_poll_secs = 0;
            s.jobs.kinds.insert(
                "publish".into(),
                wxpilot_core::jobs::KindPolicy {
                    max_attempts: 12,
                    timeout_secs: 60,
                    concurrency: 2,
                    backoff_base_ms: 300,
                    backoff_max_ms: 1_000,
                },
            );
        },
        Box::new(move |settings, secrets| {
            let mut services =
                wxpilot_worker::Services::without_models(settings, secrets).expect("services");
            services.inference = Arc::new(Router::new(Some(model), None, RoutingConfig::default()));
            services
        }),
    )
    .await
}

/// Generates an article for the campaign, puts two images in its body, approves it.
async fn approved_article(app: &TestApp, key: &str, campaign: &str, images: &str) -> String {
    let res = app
        .post(
            &format!("/v1/campaigns/{campaign}/generations"),
            key,
            &json!({"kind": "article"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    let job = wait_for(
        app,
        key,
        job["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(30),
    )
    .await;
    let id = job["result"]["content_ids"][0].as_str().unwrap().to_owned();
    let html = format!(
        "<p>新豆到店</p><p><img src=\"{images}/a.png\" alt=\"豆\"></p><p><img src=\"{images}/b.png\"></p>"
    );
    let res = app
        .client
        .patch(app.url(&format!("/v1/contents/{id}")))
        .bearer_auth(key)
        .json(&json!({"html": html}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post(&format!("/v1/contents/{id}/approve"), key, &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    id
}

async fn publication(app: &TestApp, key: &str, id: &str) -> Value {
    let res = app
        .get(&format!("/v1/contents/{id}/publication"), key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn publishes_once_with_images(backend: Backend) {
    let images = image_server();
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.register_account(APP_ID, APP_SECRET, "spamtest", AES_KEY, true)
        .unwrap();
    let app = app_with(backend, &sim, 2).await;
    let t = app.tenant("Publisher").await;
    let key = t.owner_key.clone();
    let account = app.create_account(&key, APP_ID).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let campaign = app.create_campaign(&key, &account, "秋季新品").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.set_callback(
        APP_ID,
        &app.url(&format!("/wechat/{account}")),
        CallbackMode::Safe,
    )
    .unwrap();
    let id = approved_article(&app, &key, &campaign, &images).await;

    // A draft that is not approved cannot be published.
    let res = app
        .post(
            &format!("/v1/contents/{id}/publish"),
            "wxp_not_a_key",
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // The first submit fails after the draft was added: the retry submits the same draft.
    sim.inject_errcode("/cgi-bin/freepublish/submit", 45011, 1);
    let body = json!({"cover_url": format!("{images}/cover.jpg")});
    let res = app
        .post(&format!("/v1/contents/{id}/publish"), &key, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    let job = wait_for(
        &app,
        &key,
        job["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(30),
    )
    .await;
    assert!(job["attempts"].as_u64().unwrap() >= 2, "{job}");
    let drafts = sim.drafts();
    assert_eq!(drafts.len(), 1, "one draft");
    assert_eq!(sim.publishes().len(), 1, "one publish");
    let uploads = sim.uploads();
    assert_eq!(
        uploads
            .iter()
            .filter(|u| u.kind == UploadKind::Thumb)
            .count(),
        1
    );
    assert_eq!(
        uploads
            .iter()
            .filter(|u| u.kind == UploadKind::ArticleImage)
            .count(),
        2
    );
    let html = drafts[0].articles[0]["content"].as_str().unwrap();
    assert!(!html.contains("127.0.0.1"), "{html}");
    assert_eq!(html.matches("mmbiz.qpic.cn").count(), 2, "{html}");
    assert_eq!(drafts[0].articles[0]["title"], "秋季新豆上市");
    let p = publication(&app, &key, &id).await;
    assert_eq!(p["status"], "published", "{p}");
    assert!(
        p["article_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://mp.weixin.qq.com/")),
        "{p}"
    );
    let content: Value = app
        .get(&format!("/v1/contents/{id}"), &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(content["state"], "published");
    // Publishing again is refused.
    let res = app
        .post(&format!("/v1/contents/{id}/publish"), &key, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);

    // Second article: freepublish/get keeps failing, so the PUBLISHJOBFINISH event settles it.
    let second = approved_article(&app, &key, &campaign, &images).await;
    sim.inject_errcode("/cgi-bin/freepublish/get", 40007, 1_000);
    let res = app
        .post(&format!("/v1/contents/{second}/publish"), &key, &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A duplicate request while it runs answers the same job.
    let res = app
        .post(&format!("/v1/contents/{second}/publish"), &key, &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(res.json::<Value>().await.unwrap()["id"], job_id.as_str());
    let deadline = Instant::now() + Duration::from_secs(30);
    let publish_id = loop {
        // 404 until the job has started.
        let res = app
            .get(&format!("/v1/contents/{second}/publication"), &key)
            .send()
            .await
            .unwrap();
        let p: Value = res.json().await.unwrap();
        if let Some(id) = p["publish_id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "never submitted: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let event = format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oSystem]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[PUBLISHJOBFINISH]]></Event>\
         <PublishEventInfo><publish_id>{publish_id}</publish_id><publish_status>0</publish_status>\
         <article_id><![CDATA[ART_EVENT]]></article_id><article_detail><count>1</count>\
         <item><idx>1</idx><article_url><![CDATA[https://mp.weixin.qq.com/s/from-event]]></article_url></item>\
         </article_detail></PublishEventInfo></xml>",
        chrono::Utc::now().timestamp()
    );
    sim.deliver_xml(APP_ID, &event).await.unwrap();
    let p = publication(&app, &key, &second).await;
    assert_eq!(p["status"], "published", "{p}");
    assert_eq!(p["article_url"], "https://mp.weixin.qq.com/s/from-event");
    wait_for(&app, &key, &job_id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(sim.publishes().len(), 2);
    // The body images of the second article came from the same URLs: uploaded again for
    // its own draft, never twice for one.
    assert_eq!(sim.drafts().len(), 2);

    // Another tenant sees neither the publication nor can publish.
    let other = app.tenant("Other").await;
    for path in [
        format!("/v1/contents/{id}/publication"),
        format!("/v1/contents/{second}"),
    ] {
        let res = app.get(&path, &other.owner_key).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    let res = app
        .post(
            &format!("/v1/contents/{id}/publish"),
            &other.owner_key,
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
both_backends!(publishes_once_with_images);
