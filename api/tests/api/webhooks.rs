//! Webhooks: signed deliveries a receiver can verify, retried until the receiver answers,
//! logged per endpoint, and scoped to the tenant.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use wxpilot_core::jobs::webhooks::verify;

use crate::helpers::*;
use crate::jobs::{post_ping, wait_for};

#[derive(Default)]
struct Received {
    calls: Vec<(String, String, Vec<u8>)>,
}

/// A receiver that answers 500 to the first `fail_first` calls, then 204.
fn start_receiver(fail_first: usize) -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new().route(
            "/hook",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let mut guard = state.lock().unwrap();
                    guard.calls.push((
                        header("wxpilot-signature"),
                        header("wxpilot-event"),
                        body.to_vec(),
                    ));
                    if guard.calls.len() <= fail_first {
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::NoContent().finish()
                    }
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), received)
}

fn quick_webhooks(s: &mut wxpilot_core::Settings) {
    s.jobs.webhooks.backoff_base_ms = 100;
    s.jobs.webhooks.backoff_max_ms = 1_000;
    s.jobs.webhooks.poll_interval_ms = 50;
}

async fn signed_deliveries_retry_until_received(app: TestApp) {
    let t = app.tenant("Hooks").await;
    let (url, received) = start_receiver(2);
    let res = app
        .post(
            "/v1/webhooks",
            &t.owner_key,
            &json!({"url": url, "events": ["job.succeeded", "job.dead"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let hook: Value = res.json().await.unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let got = app
        .get(&format!("/v1/webhooks/{hook_id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!got.contains(&secret), "the secret is shown once only");

    let job = post_ping(&app, &t.owner_key, json!({"echo": "hi"})).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    wait_for(
        &app,
        &t.owner_key,
        &job_id,
        "succeeded",
        Duration::from_secs(15),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let delivery = loop {
        let log: Value = app
            .get(&format!("/v1/webhooks/{hook_id}/deliveries"), &t.owner_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let first = log["items"][0].clone();
        if first["status"] == "delivered" {
            break first;
        }
        assert!(Instant::now() < deadline, "not delivered: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        delivery["attempts"], 3,
        "two failures, then the third try: {delivery}"
    );
    assert_eq!(delivery["last_status_code"], 204);
    assert_eq!(delivery["event"], "job.succeeded");
    assert_eq!(delivery["job_id"], job_id.as_str());

    let calls = received.lock().unwrap().calls.clone();
    assert_eq!(calls.len(), 3);
    let now = chrono::Utc::now().timestamp();
    for (signature, event, body) in &calls {
        assert_eq!(event, "job.succeeded");
        assert_eq!(
            verify(secret.as_bytes(), signature, body, now, 300),
            Ok(()),
            "a receiver can verify it"
        );
        assert!(verify(b"wrong secret", signature, body, now, 300).is_err());
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert!(verify(secret.as_bytes(), signature, &tampered, now, 300).is_err());
        assert!(
            verify(secret.as_bytes(), signature, body, now + 3600, 300).is_err(),
            "old signatures are replays"
        );
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["type"], "job.succeeded");
        assert_eq!(payload["data"]["job_id"], job_id.as_str());
        assert_eq!(payload["id"], delivery["id"]);
    }

    // Not subscribed to job.failed: a failing attempt sends nothing; job.dead is sent.
    let job = post_ping(&app, &t.owner_key, json!({"fail_permanently": true})).await;
    wait_for(
        &app,
        &t.owner_key,
        job["id"].as_str().unwrap(),
        "dead",
        Duration::from_secs(15),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().calls.len() < 4 {
        assert!(Instant::now() < deadline, "job.dead not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = received.lock().unwrap().calls.clone();
    assert_eq!(calls[3].1, "job.dead");

    // Another tenant sees none of it.
    let b = app.tenant("Other hooks").await;
    expect_problem(
        app.get(&format!("/v1/webhooks/{hook_id}"), &b.owner_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    expect_problem(
        app.get(&format!("/v1/webhooks/{hook_id}/deliveries"), &b.owner_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    expect_problem(
        app.delete(&format!("/v1/webhooks/{hook_id}"), &b.owner_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let theirs: Value = app
        .get("/v1/webhooks", &b.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);

    // Validation.
    for bad in [
        json!({"url": "ftp://x", "events": ["job.succeeded"]}),
        json!({"url": url, "events": ["job.exploded"]}),
        json!({"url": url, "events": []}),
    ] {
        expect_problem(
            app.post("/v1/webhooks", &t.owner_key, &bad)
                .send()
                .await
                .unwrap(),
            422,
        )
        .await;
    }
    assert_eq!(
        app.delete(&format!("/v1/webhooks/{hook_id}"), &t.owner_key)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_retry_until_received_sqlite() {
    signed_deliveries_retry_until_received(
        spawn_app_with_worker(Backend::Sqlite, quick_webhooks).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_retry_until_received_redis() {
    signed_deliveries_retry_until_received(
        spawn_app_with_worker(Backend::Postgres, quick_webhooks).await,
    )
    .await;
}

/// Redis restarted (empty) while jobs wait: the sweeper puts them back, all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_redis_restart() {
    let mut redis = TestRedis::start();
    let url = redis.url();
    let app = spawn_app_with_worker(Backend::Sqlite, move |s| {
        s.redis_url = Some(url.into());
        s.jobs.redispatch_after_secs = 1;
    })
    .await;
    let t = app.tenant("Redis restart").await;
    redis.stop();
    let mut ids = Vec::new();
    for i in 0..5 {
        // Accepted while Redis is down: the record is durable, dispatch comes later.
        let started = Instant::now();
        let job = post_ping(&app, &t.owner_key, json!({"echo": i})).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "accepting must not wait for Redis"
        );
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    for id in &ids {
        let done = wait_for(&app, &t.owner_key, id, "succeeded", Duration::from_secs(30)).await;
        assert_eq!(done["attempts"], 1);
    }
    let usage: Value = app
        .get("/v1/usage", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        usage["totals"]["jobs.ping"], 5,
        "each job counted once: {usage}"
    );
}
