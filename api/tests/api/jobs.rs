//! The job system end to end: queue, worker, progress over SSE, retries, dead letters,
//! idempotency, cancellation, the per-tenant cap, isolation and the usage ledger.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxpilot_core::Settings;
use wxpilot_core::jobs::KindPolicy;

use crate::helpers::*;

fn fast_retries(s: &mut Settings) {
    s.jobs.lease_secs = 3;
    s.jobs.kinds.insert(
        "ping".into(),
        KindPolicy {
            max_attempts: 3,
            timeout_secs: 60,
            concurrency: 16,
            backoff_base_ms: 200,
            backoff_max_ms: 5_000,
        },
    );
}

pub async fn post_ping(app: &TestApp, key: &str, body: Value) -> Value {
    let res = app.post("/v1/jobs/ping", key, &body).send().await.unwrap();
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["id"].as_str().unwrap())
    );
    assert_eq!(job["status"], "queued");
    job
}

pub async fn wait_for(app: &TestApp, key: &str, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let job: Value = app
            .get(&format!("/v1/jobs/{id}"), key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] == status {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not {status} in time: {job}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Reads a whole SSE body into (event, data) pairs.
pub(crate) fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            Some((event?, data?))
        })
        .collect()
}

async fn progress_streams_in_order(app: TestApp) {
    let t = app.tenant("Jobs").await;
    let job = post_ping(
        &app,
        &t.owner_key,
        json!({"sleep_ms": 800, "steps": 4, "echo": {"hello": "世界"}}),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    let res = app
        .get(&format!("/v1/jobs/{id}/events"), &t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = parse_sse(
        &tokio::time::timeout(Duration::from_secs(30), res.text())
            .await
            .unwrap()
            .unwrap(),
    );
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"status"));
    assert_eq!(names.last(), Some(&"done"));
    let percents: Vec<i64> = events
        .iter()
        .filter(|(e, _)| e == "progress")
        .map(|(_, d)| d["percent"].as_i64().unwrap())
        .collect();
    assert!(!percents.is_empty(), "no progress events: {names:?}");
    assert!(
        percents.windows(2).all(|w| w[0] <= w[1]),
        "progress out of order: {percents:?}"
    );
    assert!(
        percents.iter().all(|p| [25, 50, 75, 100].contains(p)),
        "{percents:?}"
    );
    let done = &events.last().unwrap().1;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["result"]["echo"]["hello"], "世界");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["progress_percent"], 100);

    // The stream of a finished job is just its final state.
    let res = app
        .get(&format!("/v1/jobs/{id}/events"), &t.owner_key)
        .send()
        .await
        .unwrap();
    let again = parse_sse(&res.text().await.unwrap());
    assert_eq!(
        again.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(),
        ["status", "done"]
    );

    let usage: Value = app
        .get("/v1/usage", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["totals"]["jobs.ping"], 1, "{usage}");
    let listed: Value = app
        .get("/v1/jobs?kind=ping&status=succeeded", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let none: Value = app
        .get("/v1/jobs?status=dead", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    // The queue acknowledged the message, so vacuuming removes it (nothing piles up).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut removed = 0;
    while removed == 0 {
        removed = app.queue.vacuum(&["ping"]).await.unwrap();
        assert!(
            Instant::now() < deadline,
            "the finished message was never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(removed >= 1);
    assert_eq!(
        app.queue.vacuum(&["ping"]).await.unwrap(),
        0,
        "a second vacuum finds nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_in_order_sqlite() {
    progress_streams_in_order(spawn_app_with_worker(Backend::Sqlite, fast_retries).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_in_order_redis() {
    progress_streams_in_order(spawn_app_with_worker(Backend::Postgres, fast_retries).await).await;
}

async fn retries_back_off_then_succeed(app: TestApp) {
    let t = app.tenant("Retries").await;
    let job = post_ping(&app, &t.owner_key, json!({"fail_times": 2})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    // Watch the waits between attempts: each failed state names its retry time.
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let j: Value = app
            .get(&format!("/v1/jobs/{id}"), &t.owner_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if j["status"] == "failed" {
            let run_at =
                chrono::DateTime::parse_from_rfc3339(j["run_at"].as_str().unwrap()).unwrap();
            let updated =
                chrono::DateTime::parse_from_rfc3339(j["updated_at"].as_str().unwrap()).unwrap();
            let attempt = j["attempts"].as_i64().unwrap();
            if delays.last().is_none_or(|(a, _)| *a != attempt) {
                delays.push((attempt, (run_at - updated).num_milliseconds()));
                assert!(j["error"].as_str().unwrap().contains("asked to fail"));
            }
        }
        if j["status"] == "succeeded" {
            break j;
        }
        assert!(Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done["attempts"], 3);
    assert_eq!(done["result"]["attempt"], 3);
    assert_eq!(
        delays.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [1, 2],
        "{delays:?}"
    );
    let (first, second) = (delays[0].1, delays[1].1);
    assert!((100..=200).contains(&first), "first wait {first} ms");
    assert!((200..=400).contains(&second), "second wait {second} ms");
    assert!(second >= first, "backoff must grow: {delays:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_then_succeed_sqlite() {
    retries_back_off_then_succeed(spawn_app_with_worker(Backend::Sqlite, fast_retries).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_then_succeed_redis() {
    retries_back_off_then_succeed(spawn_app_with_worker(Backend::Postgres, fast_retries).await)
        .await;
}

async fn permanent_failures_go_dead_and_can_be_retried(app: TestApp) {
    let t = app.tenant("Dead").await;
    let job = post_ping(&app, &t.owner_key, json!({"fail_permanently": true})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let dead = wait_for(&app, &t.owner_key, &id, "dead", Duration::from_secs(15)).await;
    assert_eq!(dead["attempts"], 1, "no retry for a permanent error");
    assert_eq!(dead["error"], "asked to fail permanently");

    // Out of attempts also ends dead, keeping the last error.
    let job = post_ping(&app, &t.owner_key, json!({"fail_times": 5})).await;
    let exhausted = wait_for(
        &app,
        &t.owner_key,
        job["id"].as_str().unwrap(),
        "dead",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(exhausted["attempts"], 3);
    assert!(
        exhausted["error"].as_str().unwrap().contains("attempt 3"),
        "{exhausted}"
    );

    let res = app
        .client
        .post(app.url(&format!("/v1/jobs/{id}/retry")))
        .bearer_auth(&t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let again = wait_for(&app, &t.owner_key, &id, "dead", Duration::from_secs(15)).await;
    assert_ne!(again["finished_at"], dead["finished_at"], "it ran again");
    let ok = post_ping(&app, &t.owner_key, json!({})).await;
    let ok_id = ok["id"].as_str().unwrap();
    wait_for(
        &app,
        &t.owner_key,
        ok_id,
        "succeeded",
        Duration::from_secs(15),
    )
    .await;
    let res = app
        .client
        .post(app.url(&format!("/v1/jobs/{ok_id}/retry")))
        .bearer_auth(&t.owner_key)
        .send()
        .await
        .unwrap();
    expect_problem(res, 409).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_go_dead_sqlite() {
    permanent_failures_go_dead_and_can_be_retried(
        spawn_app_with_worker(Backend::Sqlite, fast_retries).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_go_dead_redis() {
    permanent_failures_go_dead_and_can_be_retried(
        spawn_app_with_worker(Backend::Postgres, fast_retries).await,
    )
    .await;
}

async fn idempotency_keys(app: TestApp) {
    let t = app.tenant("Idempotent").await;
    let send = |key: &'static str, body: Value| {
        app.post("/v1/jobs/ping", &t.owner_key, &body)
            .header("Idempotency-Key", key)
            .send()
    };
    let first = send("order-42", json!({"echo": 1})).await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let replay = send("order-42", json!({"echo": 1})).await.unwrap();
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    assert_eq!(
        replay["created_at"], first["created_at"],
        "the answer is the stored row"
    );
    let clash = send("order-42", json!({"echo": 2})).await.unwrap();
    let problem = expect_problem(clash, 409).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    // A caller's trace context travels with the job; a malformed one is ignored.
    let traced = app
        .post("/v1/jobs/ping", &t.owner_key, &json!({"echo": "traced"}))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    let traced: Value = traced.json().await.unwrap();
    assert_eq!(
        traced["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    let untraced = app
        .post("/v1/jobs/ping", &t.owner_key, &json!({"echo": "x"}))
        .header("traceparent", "garbage")
        .send()
        .await
        .unwrap();
    let untraced: Value = untraced.json().await.unwrap();
    assert!(untraced["traceparent"].is_null());
    let other = send("order-43", json!({"echo": 1})).await.unwrap();
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["id"], first["id"]);
    let bad = app
        .post("/v1/jobs/ping", &t.owner_key, &json!({}))
        .header("Idempotency-Key", "x".repeat(300))
        .send()
        .await
        .unwrap();
    expect_problem(bad, 422).await;
    let bad = app
        .post(
            "/v1/jobs/ping",
            &t.owner_key,
            &json!({"sleep_ms": 99_999_999}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(bad, 422).await;
    assert_eq!(app.count("jobs").await, 4);

    // Another tenant's same key is its own.
    let b = app.tenant("Other").await;
    let res = app
        .post("/v1/jobs/ping", &b.owner_key, &json!({"echo": 1}))
        .header("Idempotency-Key", "order-42")
        .send()
        .await
        .unwrap();
    let theirs: Value = res.json().await.unwrap();
    assert_ne!(theirs["id"], first["id"]);
}
crate::both!(idempotency_keys);

/// Jobs created in one batch (the intake's group commit) keep every request's own outcome:
/// a key repeated inside the batch answers the batch's job, a key repeated with another
/// body is a conflict, a bad key is refused, and nothing of a refused request is written.
async fn batched_creation_keeps_each_outcome(app: TestApp) {
    use wxpilot_core::error::ServiceError;
    use wxpilot_core::service::Actor;
    use wxpilot_core::service::jobs::{self, NewJob};
    let a = app.tenant("Batch A").await;
    let b = app.tenant("Batch B").await;
    let earlier = post_ping(&app, &a.owner_key, json!({"echo": "earlier"})).await;
    let earlier_key = app
        .post("/v1/jobs/ping", &a.owner_key, &json!({"echo": "keyed"}))
        .header("Idempotency-Key", "kept")
        .send()
        .await
        .unwrap();
    let earlier_keyed: Value = earlier_key.json().await.unwrap();
    let before = app.count("jobs").await;
    let job = |echo: &str, key: Option<&str>| NewJob {
        kind: "ping".into(),
        payload: json!({"echo": echo}),
        max_attempts: 3,
        idempotency_key: key.map(str::to_owned),
        traceparent: None,
    };
    let (actor_a, actor_b) = (Actor::system(&a.id), Actor::system(&b.id));
    let outcomes = jobs::create_many(
        &app.db,
        &[
            (actor_a.clone(), job("one", Some("k1"))),
            (actor_a.clone(), job("one", Some("k1"))),
            (actor_a.clone(), job("other body", Some("k1"))),
            (actor_b.clone(), job("one", Some("k1"))),
            (actor_a.clone(), job("keyed", Some("kept"))),
            (actor_a.clone(), job("changed", Some("kept"))),
            (actor_a.clone(), job("bad key", Some(""))),
            (actor_a.clone(), job("plain", None)),
        ],
    )
    .await
    .map_err(|e| format!("{e:?}"))
    .expect("batch");
    assert_eq!(outcomes.len(), 8);
    let ok = |i: usize| outcomes[i].as_ref().expect("created").clone();
    let (first, created) = ok(0);
    assert!(created);
    let (repeat, created) = ok(1);
    assert!(
        !created,
        "a key repeated in the batch answers the batch's job"
    );
    assert_eq!(repeat.id, first.id);
    assert!(matches!(outcomes[2], Err(ServiceError::Conflict(_))));
    let (theirs, created) = ok(3);
    assert!(created, "another tenant's key is its own");
    assert_ne!(theirs.id, first.id);
    let (kept, created) = ok(4);
    assert!(!created);
    assert_eq!(kept.id, earlier_keyed["id"].as_str().unwrap());
    assert!(matches!(outcomes[5], Err(ServiceError::Conflict(_))));
    assert!(matches!(outcomes[6], Err(ServiceError::Validation(_))));
    let (plain, created) = ok(7);
    assert!(created);
    assert_ne!(plain.id, earlier["id"].as_str().unwrap());
    assert_eq!(
        app.count("jobs").await,
        before + 3,
        "three new jobs written"
    );
    // What the batch wrote reads back like any job, in its tenant only.
    let read: Value = app
        .get(&format!("/v1/jobs/{}", first.id), &a.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["payload"]["echo"], "one");
    // Answered from memory, read back from the database: the same times.
    assert_eq!(
        read["created_at"],
        serde_json::to_value(first.created_at).unwrap()
    );
    assert_eq!(read["idempotency_key"], "k1");
    let cross = app
        .get(&format!("/v1/jobs/{}", first.id), &b.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 404);

    // Concurrent API requests with one fresh key make one job, whichever batches they
    // land in; the others replay it.
    let requests = (0..12).map(|_| {
        app.post("/v1/jobs/ping", &a.owner_key, &json!({"echo": "burst"}))
            .header("Idempotency-Key", "burst")
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut replayed = 0;
    for res in responses {
        let res = res.unwrap();
        assert_eq!(res.status(), 202);
        replayed += usize::from(res.headers().get("idempotent-replayed").is_some());
        let body: Value = res.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one job for one key");
    assert_eq!(replayed, 11);
    assert_eq!(app.count("jobs").await, before + 4);
}
crate::both!(batched_creation_keeps_each_outcome);

async fn cancel_and_tenant_cap(app: TestApp) {
    let t = app.tenant("Cancel").await;
    let other = app.tenant("Neighbour").await;
    let running = post_ping(&app, &t.owner_key, json!({"sleep_ms": 20_000, "steps": 20})).await;
    let running_id = running["id"].as_str().unwrap().to_owned();
    wait_for(
        &app,
        &t.owner_key,
        &running_id,
        "running",
        Duration::from_secs(10),
    )
    .await;
    // The cap is 1: the tenant's second job waits, while another tenant's job runs.
    let waiting = post_ping(&app, &t.owner_key, json!({"sleep_ms": 100})).await;
    let waiting_id = waiting["id"].as_str().unwrap().to_owned();
    let neighbour = post_ping(&app, &other.owner_key, json!({"sleep_ms": 100})).await;
    wait_for(
        &app,
        &other.owner_key,
        neighbour["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    let still: Value = app
        .get(&format!("/v1/jobs/{waiting_id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "queued", "the cap held it back: {still}");

    let res = app
        .client
        .post(app.url(&format!("/v1/jobs/{waiting_id}/cancel")))
        .bearer_auth(&t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");

    let started = Instant::now();
    let res = app
        .client
        .post(app.url(&format!("/v1/jobs/{running_id}/cancel")))
        .bearer_auth(&t.owner_key)
        .send()
        .await
        .unwrap();
    let requested: Value = res.json().await.unwrap();
    assert_eq!(requested["cancel_requested"], true);
    let stopped = wait_for(
        &app,
        &t.owner_key,
        &running_id,
        "cancelled",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancel took {:?}",
        started.elapsed()
    );
    assert!(stopped["result"].is_null());
    let res = app
        .client
        .post(app.url(&format!("/v1/jobs/{running_id}/cancel")))
        .bearer_auth(&t.owner_key)
        .send()
        .await
        .unwrap();
    expect_problem(res, 409).await;
    // The cancelled job never ran to its end, so it is not in the ledger.
    let usage: Value = app
        .get("/v1/usage", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(usage["totals"].get("jobs.ping").is_none(), "{usage}");
}

fn capped(s: &mut Settings) {
    fast_retries(s);
    s.jobs.tenant_max_running = 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_tenant_cap_sqlite() {
    cancel_and_tenant_cap(spawn_app_with_worker(Backend::Sqlite, capped).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_tenant_cap_redis() {
    cancel_and_tenant_cap(spawn_app_with_worker(Backend::Postgres, capped).await).await;
}

async fn jobs_are_tenant_scoped(app: TestApp) {
    let a = app.tenant("A").await;
    let b = app.tenant("B").await;
    let job = post_ping(&app, &a.owner_key, json!({"sleep_ms": 60_000})).await;
    let id = job["id"].as_str().unwrap();
    expect_problem(
        app.get(&format!("/v1/jobs/{id}"), &b.owner_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    expect_problem(
        app.get(&format!("/v1/jobs/{id}/events"), &b.owner_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    for action in ["cancel", "retry"] {
        let res = app
            .client
            .post(app.url(&format!("/v1/jobs/{id}/{action}")))
            .bearer_auth(&b.owner_key)
            .send()
            .await
            .unwrap();
        expect_problem(res, 404).await;
    }
    let listed: Value = app
        .get("/v1/jobs", &b.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
    let mine: Value = app
        .get(&format!("/v1/jobs/{id}"), &a.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["status"], "queued", "B's cancel did nothing");
}
crate::both!(jobs_are_tenant_scoped);

/// SIGTERM semantics: running jobs finish within the grace period; past it they are handed
/// back (queued again, the attempt not counted) for another worker.
async fn shutdown_finishes_or_hands_back(backend: Backend) {
    let mut app = spawn_app_with_worker(backend, |s| {
        fast_retries(s);
        s.jobs.shutdown_grace_secs = 10;
    })
    .await;
    let t = app.tenant("Shutdown").await;
    let job = post_ping(&app, &t.owner_key, json!({"sleep_ms": 1_500})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&app, &t.owner_key, &id, "running", Duration::from_secs(10)).await;
    app.stop_worker().await;
    let done: Value = app
        .get(&format!("/v1/jobs/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        done["status"], "succeeded",
        "finished within the grace period: {done}"
    );

    let mut app = spawn_app_with_worker(backend, |s| {
        fast_retries(s);
        s.jobs.shutdown_grace_secs = 0;
    })
    .await;
    let t = app.tenant("Shutdown 2").await;
    let job = post_ping(&app, &t.owner_key, json!({"sleep_ms": 30_000})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&app, &t.owner_key, &id, "running", Duration::from_secs(10)).await;
    let started = Instant::now();
    app.stop_worker().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let back: Value = app
        .get(&format!("/v1/jobs/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(back["status"], "queued", "{back}");
    assert_eq!(back["attempts"], 0, "a handed-back attempt is not counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_or_hands_back_sqlite() {
    shutdown_finishes_or_hands_back(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_or_hands_back_redis() {
    shutdown_finishes_or_hands_back(Backend::Postgres).await;
}

/// The monthly token budget: admins set it, usage shows it, and once this month's LLM
/// tokens reach it the check that guards LLM jobs refuses with 402.
async fn token_budget(app: TestApp) {
    use sea_orm::{ActiveModelTrait, Set};
    use wxpilot_core::service::{Actor, usage};
    let t = app.tenant("Budget").await;
    let viewer = app.key(&t, wxpilot_entity::Role::Viewer).await;
    let res = app
        .client
        .put(app.url("/v1/usage/budget"))
        .bearer_auth(&viewer)
        .json(&json!({"monthly_token_budget": 100}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    let res = app
        .client
        .put(app.url("/v1/usage/budget"))
        .bearer_auth(&t.owner_key)
        .json(&json!({"monthly_token_budget": -1}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
    let res = app
        .client
        .put(app.url("/v1/usage/budget"))
        .bearer_auth(&t.owner_key)
        .json(&json!({"monthly_token_budget": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let usage_now: Value = res.json().await.unwrap();
    assert_eq!(usage_now["monthly_token_budget"], 100);
    assert_eq!(usage_now["llm_tokens"], 0);

    let actor = Actor::cli(&t.id);
    assert!(usage::ensure_token_budget(&app.db, &actor).await.is_ok());
    for (metric, quantity) in [("llm.prompt_tokens", 70), ("llm.completion_tokens", 30)] {
        wxpilot_entity::usage_record::ActiveModel {
            id: Set(wxpilot_core::ids::new_id()),
            tenant_id: Set(t.id.clone()),
            job_id: Set(None),
            metric: Set(metric.into()),
            quantity: Set(quantity),
            created_at: Set(chrono::Utc::now()),
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    let err = usage::ensure_token_budget(&app.db, &actor)
        .await
        .unwrap_err();
    assert!(
        matches!(err, wxpilot_core::ServiceError::BudgetExceeded(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("100"));
    let shown: Value = app
        .get("/v1/usage", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["llm_tokens"], 100);
    assert_eq!(shown["totals"]["llm.prompt_tokens"], 70);
    // Another tenant's budget is its own.
    let b = app.tenant("No budget").await;
    assert!(
        usage::ensure_token_budget(&app.db, &Actor::cli(&b.id))
            .await
            .is_ok()
    );
    // Lifting the limit lets LLM jobs through again.
    let res = app
        .client
        .put(app.url("/v1/usage/budget"))
        .bearer_auth(&t.owner_key)
        .json(&json!({"monthly_token_budget": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(usage::ensure_token_budget(&app.db, &actor).await.is_ok());
}
crate::both!(token_budget);
