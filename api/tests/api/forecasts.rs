use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// 120 days of new followers from 2026-07-01 with a weekly pattern.
fn rows() -> Vec<Value> {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
    (0..120)
        .map(|t| {
            let date = start + chrono::Duration::days(t);
            let value =
                100.0 + 0.5 * t as f64 + [0.0, 5.0, 8.0, 5.0, 0.0, -20.0, -25.0][t as usize % 7];
            json!({"date": date.to_string(), "metric": "new_followers", "value": value})
        })
        .collect()
}

async fn wait_for_forecast(app: &TestApp, key: &str, account: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let f: Value = app
            .get(&format!("/v1/accounts/{account}/forecasts/{id}"), key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if f["status"] == "succeeded" || f["status"] == "dead" || Instant::now() > deadline {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn upload_forecast_and_chart(app: TestApp) {
    let t = app.tenant("Forecasts").await;
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // JSON upload with one bad row: the good rows are stored, the bad one reported.
    let mut body = rows();
    body.push(json!({"date": "2026-13-01", "metric": "new_followers", "value": 1}));
    let res = app
        .post(
            &format!("/v1/accounts/{account}/metrics"),
            &t.owner_key,
            &json!({"rows": body}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["stored"], 120);
    assert_eq!(report["rejected"][0]["row"], 121);
    // CSV upload of the same days again replaces, never duplicates.
    let csv = "date,metric,value\n2026-07-01,new_followers,100\n2026-07-02,new_followers,abc\n";
    let res = app
        .client
        .post(app.url(&format!("/v1/accounts/{account}/metrics")))
        .bearer_auth(&t.owner_key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["stored"], 1);
    assert_eq!(report["rejected"][0]["row"], 2);
    assert_eq!(app.count("daily_metrics").await, 120);

    let res = app
        .post(
            &format!("/v1/accounts/{account}/forecasts"),
            &t.owner_key,
            &json!({"metric": "new_followers", "horizon": 14}),
        )
        .header("Idempotency-Key", "forecast-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = res.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(job["kind"], "forecast");
    // The same key gives the same job.
    let again: Value = app
        .post(
            &format!("/v1/accounts/{account}/forecasts"),
            &t.owner_key,
            &json!({"metric": "new_followers", "horizon": 14}),
        )
        .header("Idempotency-Key", "forecast-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], job["id"]);

    let forecast = wait_for_forecast(&app, &t.owner_key, &account, &id).await;
    assert_eq!(forecast["status"], "succeeded", "{forecast}");
    let result = &forecast["result"];
    assert_eq!(result["points"].as_array().unwrap().len(), 14);
    assert_eq!(result["points"][0]["date"], "2026-10-29");
    assert_eq!(result["cold_start"], false);
    assert!(result["backtest"].as_array().unwrap().len() >= 3);
    let p = &result["points"][0];
    assert!(p["lo95"].as_f64().unwrap() <= p["value"].as_f64().unwrap());
    assert!(p["value"].as_f64().unwrap() <= p["hi95"].as_f64().unwrap());

    let res = app
        .get(
            &format!("/v1/accounts/{account}/forecasts/{id}?format=svg"),
            &t.owner_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    let svg = res.text().await.unwrap();
    assert!(svg.contains("<svg") && svg.contains("new_followers"));
}

async fn forecasts_are_tenant_isolated(app: TestApp) {
    let a = app.tenant("Forecast A").await;
    let b = app.tenant("Forecast B").await;
    let account = app.create_account(&a.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post(
            &format!("/v1/accounts/{account}/metrics"),
            &a.owner_key,
            &json!({"rows": rows()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let job: Value = app
        .post(
            &format!("/v1/accounts/{account}/forecasts"),
            &a.owner_key,
            &json!({"metric": "new_followers"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    // Tenant B can neither upload to, forecast from, nor read tenant A's account.
    let res = app
        .post(
            &format!("/v1/accounts/{account}/metrics"),
            &b.owner_key,
            &json!({"rows": rows()}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let res = app
        .post(
            &format!("/v1/accounts/{account}/forecasts"),
            &b.owner_key,
            &json!({"metric": "new_followers"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let res = app
        .get(
            &format!("/v1/accounts/{account}/forecasts/{id}"),
            &b.owner_key,
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    // Tenant A sees it, before or after it is made.
    let res = app
        .get(
            &format!("/v1/accounts/{account}/forecasts/{id}"),
            &a.owner_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("daily_metrics").await, 120);
}

async fn bad_forecast_requests(app: TestApp) {
    let t = app.tenant("Bad forecasts").await;
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for body in [
        json!({"metric": "New Followers"}),
        json!({"metric": "reads", "horizon": 0}),
        json!({"metric": "reads", "horizon": 61, "frequency": "monthly"}),
        json!({"metric": "reads", "frequency": "weekly"}),
    ] {
        let res = app
            .post(
                &format!("/v1/accounts/{account}/forecasts"),
                &t.owner_key,
                &body,
            )
            .send()
            .await
            .unwrap();
        expect_problem(res, 422).await;
    }
}

/// A monthly metric (five years with a December peak, one month missing) is forecast month
/// by month and its chart is labelled by month.
async fn monthly_forecast(backend: Backend) {
    let app = spawn_app_with_worker(backend, |_| {}).await;
    let t = app.tenant("Monthly").await;
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut csv = String::from("date,metric,value\n");
    for k in 0..60u32 {
        if k == 30 {
            continue;
        }
        let (year, month) = (2021 + k / 12, k % 12 + 1);
        let value = 500.0 + 3.0 * f64::from(k) + if month == 12 { 150.0 } else { 0.0 };
        csv.push_str(&format!("{year}-{month:02}-01,monthly_reads,{value}\n"));
    }
    let res = app
        .client
        .post(app.url(&format!("/v1/accounts/{account}/metrics")))
        .bearer_auth(&t.owner_key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            &format!("/v1/accounts/{account}/forecasts"),
            &t.owner_key,
            &json!({"metric": "monthly_reads", "horizon": 12, "frequency": "monthly"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let forecast = wait_for_forecast(&app, &t.owner_key, &account, &id).await;
    assert_eq!(forecast["status"], "succeeded", "{forecast}");
    let result = &forecast["result"];
    assert_eq!(result["frequency"], "monthly");
    assert_eq!(result["filled_days"], 1);
    let points = result["points"].as_array().unwrap();
    assert_eq!(points.len(), 12);
    assert_eq!(points[0]["date"], "2026-01-01");
    assert_eq!(points[11]["date"], "2026-12-01");
    let value = |i: usize| points[i]["value"].as_f64().unwrap();
    assert!(value(11) > value(10) + 50.0, "December peak: {points:?}");
    let svg = app
        .get(
            &format!("/v1/accounts/{account}/forecasts/{id}?format=svg"),
            &t.owner_key,
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(svg.contains("2026-"), "monthly labels");

    // A daily metric is not forecast monthly: the job says why.
    let res = app
        .post(
            &format!("/v1/accounts/{account}/metrics"),
            &t.owner_key,
            &json!({"rows": rows()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = app
        .post(
            &format!("/v1/accounts/{account}/forecasts"),
            &t.owner_key,
            &json!({"metric": "new_followers", "horizon": 3, "frequency": "monthly"}),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let forecast = wait_for_forecast(&app, &t.owner_key, &account, &id).await;
    assert_eq!(forecast["status"], "dead", "{forecast}");
    assert!(
        forecast["error"]
            .as_str()
            .unwrap()
            .contains("one value per month"),
        "{forecast}"
    );
}

crate::both_backends!(monthly_forecast);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_forecast_and_chart_sqlite() {
    upload_forecast_and_chart(spawn_app_with_worker(Backend::Sqlite, |_| {}).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_forecast_and_chart_postgres() {
    upload_forecast_and_chart(spawn_app_with_worker(Backend::Postgres, |_| {}).await).await;
}

crate::both!(forecasts_are_tenant_isolated);
crate::both!(bad_forecast_requests);
