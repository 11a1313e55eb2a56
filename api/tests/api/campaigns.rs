use serde_json::{Value, json};

use crate::both;
use crate::helpers::*;

async fn crud_filters_and_dates(app: TestApp) {
    let t = app.tenant("Campaigns").await;
    let a1 = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a2 = app.create_account(&t.owner_key, "wx2c2769f8efd9abc3").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = app
        .post(
            "/v1/campaigns",
            &t.owner_key,
            &json!({
                "account_id": a1,
                "name": "双十一 新品推广",
                "brief": "秋冬新品咖啡豆",
                "audience": "一线城市白领",
                "goals": ["新增关注 5000", "阅读 10 万"],
                "start_date": "2026-11-01",
                "end_date": "2026-11-11",
                "status": "active"
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let c1: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/campaigns/{}", c1["id"].as_str().unwrap())
    );
    assert_eq!(c1["goals"], json!(["新增关注 5000", "阅读 10 万"]));
    assert_eq!(c1["start_date"], "2026-11-01");
    assert_eq!(c1["status"], "active");
    let c2 = app.create_campaign(&t.owner_key, &a2, "Spring").await;
    assert_eq!(c2["status"], "draft");

    let only_a1: Value = app
        .get(&format!("/v1/campaigns?account_id={a1}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(only_a1["items"].as_array().unwrap().len(), 1);
    assert_eq!(only_a1["items"][0]["id"], c1["id"]);
    let drafts: Value = app
        .get("/v1/campaigns?status=draft", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(drafts["items"].as_array().unwrap().len(), 1);
    assert_eq!(drafts["items"][0]["id"], c2["id"]);

    // End before start is refused, against stored values too.
    let id = c1["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("/v1/campaigns/{id}"),
            &t.owner_key,
            &json!({"end_date": "2026-10-01"}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "end_date");
    // null clears a date; absent leaves it.
    let res = app
        .patch(
            &format!("/v1/campaigns/{id}"),
            &t.owner_key,
            &json!({"start_date": null, "name": "双十一"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["start_date"], Value::Null);
    assert_eq!(patched["end_date"], "2026-11-11");
    assert_eq!(patched["name"], "双十一");

    // Deleting the account takes its campaigns along.
    let res = app
        .delete(&format!("/v1/accounts/{a2}"), &t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let gone = app
        .get(
            &format!("/v1/campaigns/{}", c2["id"].as_str().unwrap()),
            &t.owner_key,
        )
        .send()
        .await
        .unwrap();
    expect_problem(gone, 404).await;
    let res = app
        .delete(&format!("/v1/campaigns/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.count("campaigns").await, 0);
}
both!(crud_filters_and_dates);

async fn campaign_rules(app: TestApp) {
    let t = app.tenant("Rules").await;
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        (
            json!({"account_id": account, "name": "x", "start_date": "2026-05-02", "end_date": "2026-05-01"}),
            "end_date",
        ),
        (
            json!({"account_id": account, "name": "x".repeat(201)}),
            "name",
        ),
        (
            json!({"account_id": account, "name": "x", "brief": "b".repeat(20_001)}),
            "brief",
        ),
        (
            json!({"account_id": account, "name": "x", "goals": vec!["g"; 21]}),
            "goals",
        ),
        (
            json!({"account_id": account, "name": "x", "goals": [""]}),
            "goals[0]",
        ),
        (
            json!({"account_id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "name": "x"}),
            "account_id",
        ),
        (
            json!({"account_id": account, "name": "x", "start_date": "2026-13-01"}),
            "start_date",
        ),
        (
            json!({"account_id": account, "name": "x", "status": "running"}),
            "status",
        ),
    ];
    for (body, field) in cases {
        let res = app
            .post("/v1/campaigns", &t.owner_key, &body)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(res, 422).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "expected {field} in {problem}");
    }
    assert_eq!(app.count("campaigns").await, 0);
}
both!(campaign_rules);
