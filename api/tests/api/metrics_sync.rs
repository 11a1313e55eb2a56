//! `POST /v1/accounts/{id}/metrics/sync` against the WeChat simulator: a 40-day range is
//! six 7-day calls per endpoint, a failure in the middle resumes without fetching or
//! storing a day twice, and other tenants cannot sync someone else's account.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use wxpilot_wechat::client::DatacubeEndpoint;
use wxpilot_wechat_sim::{SimConfig, SimHandle, Simulator};

use crate::helpers::*;

const APP_ID: &str = "wx5c8d1e2f3a4b5c6d";

fn day(offset: i64) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap() + chrono::Duration::days(offset)
}

/// 40 days of figures from 2026-09-01: two follower sources a day, and the running total.
async fn simulator() -> SimHandle {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.register_account(APP_ID, APP_SECRET, "spamtest", AES_KEY, true)
        .unwrap();
    let summary = (0..40)
        .flat_map(|t| {
            let date = day(t).to_string();
            [
                json!({"ref_date": date, "user_source": 0, "new_user": 10 + t, "cancel_user": 2}),
                json!({"ref_date": date, "user_source": 30, "new_user": 5, "cancel_user": 1}),
            ]
        })
        .collect();
    let cumulate = (0..40)
        .map(|t| json!({"ref_date": day(t).to_string(), "cumulate_user": 1000 + 12 * t}))
        .collect();
    sim.set_datacube_rows(APP_ID, DatacubeEndpoint::UserSummary, summary)
        .unwrap();
    sim.set_datacube_rows(APP_ID, DatacubeEndpoint::UserCumulate, cumulate)
        .unwrap();
    let reads = (0..40)
        .map(|t| json!({"ref_date": day(t).to_string(), "user_source": 99_999_999, "int_page_read_count": 300 + t}))
        .collect();
    let shares = (0..40)
        .map(|t| json!({"ref_date": day(t).to_string(), "share_scene": 1, "share_count": 7}))
        .collect();
    sim.set_datacube_rows(APP_ID, DatacubeEndpoint::UserRead, reads)
        .unwrap();
    sim.set_datacube_rows(APP_ID, DatacubeEndpoint::UserShare, shares)
        .unwrap();
    sim.set_datacube_max_days(DatacubeEndpoint::UserSummary, 7);
    sim.set_datacube_max_days(DatacubeEndpoint::UserCumulate, 7);
    sim
}

async fn finished(app: &TestApp, key: &str, location: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
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

async fn sync(app: &TestApp, key: &str, account: &str, begin: i64, end: i64) -> Value {
    let res = app
        .post(
            &format!("/v1/accounts/{account}/metrics/sync"),
            key,
            &json!({"begin": day(begin).to_string(), "end": day(end).to_string()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    finished(app, key, &location).await
}

async fn sync_resumes_without_duplicates(backend: Backend) {
    let sim = simulator().await;
    let base = sim.base_url();
    let app = spawn_app_with_worker(backend, move |s| {
        s.wechat.api_base_url = base;
        s.jobs.kinds.insert(
            "sync_metrics".into(),
            wxpilot_core::jobs::KindPolicy {
                max_attempts: 3,
                timeout_secs: 60,
                concurrency: 1,
                backoff_base_ms: 200,
                backoff_max_ms: 1_000,
            },
        );
    })
    .await;
    let t = app.tenant("Sync").await;
    let account = app.create_account(&t.owner_key, APP_ID).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The first two weeks, fully: two windows; the user endpoints once per window, the
    // article endpoints once per day.
    let first = sync(&app, &t.owner_key, &account, 0, 13).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(sim.datacube_calls().len(), 2 * 2 + 14 * 2);

    // The whole 40 days, with WeChat refusing the first new call: the retry skips the two
    // stored windows and fetches the other four once each.
    sim.inject_errcode("/datacube/getusersummary", 45011, 1);
    let whole = sync(&app, &t.owner_key, &account, 0, 39).await;
    assert_eq!(whole["status"], "succeeded", "{whole}");
    assert_eq!(whole["attempts"], 2, "the refused attempt counts: {whole}");
    assert_eq!(whole["result"]["windows"], 6);
    assert_eq!(whole["result"]["skipped"], 2);
    assert_eq!(whole["result"]["fetched"], 4);
    let calls = sim.datacube_calls();
    let calls_to = |path: &str| calls.iter().filter(|c| c.path == path).count();
    assert_eq!(
        calls_to("/datacube/getusersummary"),
        6,
        "40 days in 7-day windows"
    );
    assert_eq!(calls_to("/datacube/getusercumulate"), 6);
    assert_eq!(calls_to("/datacube/getuserread"), 40, "one day a call");
    assert_eq!(calls_to("/datacube/getusershare"), 40);
    let mut seen: Vec<_> = calls
        .iter()
        .map(|c| (c.path.clone(), c.begin_date))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), calls.len(), "no window fetched twice");
    assert!(
        calls
            .iter()
            .all(|c| (c.end_date - c.begin_date).num_days() < 7)
    );

    // 40 days × 5 metrics, one row each; sources summed.
    assert_eq!(app.count("daily_metrics").await, 200);
    let followers = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            format!(
                "SELECT value FROM daily_metrics WHERE metric = 'new_followers' AND date = '{}'",
                day(20)
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    let value: f64 = followers.try_get("", "value").unwrap();
    assert_eq!(value, 35.0, "10 + 20 from one source, 5 from the other");

    // Another tenant's id for the account answers 404; bad ranges 422.
    let other = app.tenant("Other").await;
    let res = app
        .post(
            &format!("/v1/accounts/{account}/metrics/sync"),
            &other.owner_key,
            &json!({"begin": day(0).to_string(), "end": day(1).to_string()}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let res = app
        .post(
            &format!("/v1/accounts/{account}/metrics/sync"),
            &t.owner_key,
            &json!({"begin": day(5).to_string(), "end": day(1).to_string()}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
    assert_eq!(
        sim.datacube_calls().len(),
        92,
        "refused requests call nothing"
    );
}

crate::both_backends!(sync_resumes_without_duplicates);
