//! Analytics: long ranges split into the windows each endpoint allows; the simulator
//! refuses windows that are too long.

use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::{Value, json};
use wxpilot_wechat::{
    ApiError, DatacubeEndpoint, DateWindow, InMemoryTokenStore, UserReadRow, UserSummaryRow,
};

use crate::helpers::{self, APPID};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_days_become_six_seven_day_calls() {
    let sim = helpers::sim().await;
    let begin = day("2026-01-01");
    let rows: Vec<Value> = (0..45)
        .map(|i| {
            let d = begin + chrono::Days::new(i);
            json!({"ref_date": d.format("%Y-%m-%d").to_string(), "user_source": 0,
                   "new_user": i, "cancel_user": 1})
        })
        .collect();
    sim.set_datacube_rows(APPID, DatacubeEndpoint::UserSummary, rows)
        .unwrap();
    let m = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));

    let end = day("2026-02-09");
    let got: Vec<UserSummaryRow> = m
        .datacube_range(DatacubeEndpoint::UserSummary, begin, end)
        .await
        .unwrap();
    assert_eq!(got.len(), 40);
    for (i, row) in got.iter().enumerate() {
        assert_eq!(row.new_user, i as i64);
        assert_eq!(row.cancel_user, 1);
    }
    assert_eq!(got[39].ref_date, "2026-02-09");

    let calls = sim.datacube_calls();
    assert_eq!(calls.len(), 6);
    let days: Vec<i64> = calls
        .iter()
        .map(|c| (c.end_date - c.begin_date).num_days() + 1)
        .collect();
    assert_eq!(days, vec![7, 7, 7, 7, 7, 5]);
    assert_eq!(calls[0].begin_date, begin);
    assert_eq!(calls[5].end_date, end);
    assert_eq!(sim.calls_to("/datacube/getusersummary"), 6);

    // Article reads: one day a call.
    sim.set_datacube_rows(
        APPID,
        DatacubeEndpoint::UserRead,
        vec![
            json!({"ref_date": "2026-03-01", "int_page_read_user": 5, "int_page_read_count": 9}),
            json!({"ref_date": "2026-03-03", "int_page_read_user": 7, "int_page_read_count": 8}),
        ],
    )
    .unwrap();
    let reads: Vec<UserReadRow> = m
        .datacube_range(
            DatacubeEndpoint::UserRead,
            day("2026-03-01"),
            day("2026-03-03"),
        )
        .await
        .unwrap();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[1].int_page_read_count, 8);
    assert_eq!(sim.calls_to("/datacube/getuserread"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_rejects_over_long_windows() {
    let sim = helpers::sim().await;
    let m = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));
    let token = m.access_token().await.unwrap();
    let http = reqwest::Client::new();
    let post = |path: &'static str, begin: &'static str, end: &'static str| {
        let http = http.clone();
        let url = format!("{}{path}?access_token={token}", sim.base_url());
        async move {
            http.post(url)
                .json(&json!({"begin_date": begin, "end_date": end}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // Eight days of user summary, two of article reads: refused.
    let answer = post("/datacube/getusersummary", "2026-01-01", "2026-01-08").await;
    assert_eq!(answer["errcode"], 61501);
    let answer = post("/datacube/getuserread", "2026-01-01", "2026-01-02").await;
    assert_eq!(answer["errcode"], 61501);
    // Within the limits: served.
    let answer = post("/datacube/getusersummary", "2026-01-01", "2026-01-07").await;
    assert_eq!(answer["list"], json!([]));
    // Today (2026-06-01 in China) is not yet available; yesterday is.
    let answer = post("/datacube/getusercumulate", "2026-05-31", "2026-06-01").await;
    assert_eq!(answer["errcode"], 61501);
    let answer = post("/datacube/getusercumulate", "2026-05-31", "2026-05-31").await;
    assert_eq!(answer["list"], json!([]));
    let answer = post("/datacube/getusershare", "2026/01/01", "2026-01-01").await;
    assert_eq!(answer["errcode"], 61500);

    // The client refuses a too-long window before sending anything.
    let before = sim.calls_to("/datacube/getusersummary");
    let err = m
        .client()
        .user_summary(
            &token,
            DateWindow {
                begin: day("2026-01-01"),
                end: day("2026-01-08"),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::InvalidRequest(_)), "{err:?}");
    assert_eq!(sim.calls_to("/datacube/getusersummary"), before);

    // A stricter simulator limit surfaces as WeChat's errcode through the client.
    sim.set_datacube_max_days(DatacubeEndpoint::UserSummary, 3);
    let err = m
        .client()
        .user_summary(
            &token,
            DateWindow {
                begin: day("2026-01-01"),
                end: day("2026-01-07"),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.errcode(), Some(61501));
}
