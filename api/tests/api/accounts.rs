use serde_json::{Value, json};

use crate::both;
use crate::helpers::*;

async fn crud_round_trip(app: TestApp) {
    let t = app.tenant("Acme Digital").await;
    let created = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "Acme Coffee 官方");
    assert_eq!(created["app_id"], "wx2c2769f8efd9abc2");
    assert_eq!(created["encryption_mode"], "safe");
    assert_eq!(created["verified"], true);
    assert_eq!(created["callback_path"], format!("/wechat/{id}"));

    let got: Value = app
        .get(&format!("/v1/accounts/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], id.as_str());

    let res = app
        .patch(
            &format!("/v1/accounts/{id}"),
            &t.owner_key,
            &json!({"name": "Acme 咖啡", "encryption_mode": "compatible"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["name"], "Acme 咖啡");
    assert_eq!(patched["encryption_mode"], "compatible");
    assert_eq!(
        patched["app_id"], "wx2c2769f8efd9abc2",
        "untouched fields stay"
    );

    // Same app_id twice in a tenant is a conflict, and changes nothing.
    let dup = app
        .post(
            "/v1/accounts",
            &t.owner_key,
            &account_body("wx2c2769f8efd9abc2"),
        )
        .send()
        .await
        .unwrap();
    expect_problem(dup, 409).await;
    assert_eq!(app.count("official_accounts").await, 1);

    let res = app
        .delete(&format!("/v1/accounts/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let gone = app
        .get(&format!("/v1/accounts/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap();
    expect_problem(gone, 404).await;

    // Every change is in the audit log, in order.
    let audit: Value = app
        .get("/v1/audit-events", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource_type"] == "official_account")
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["resource_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("create".into(), id.clone()),
            ("update".into(), id.clone()),
            ("delete".into(), id.clone())
        ]
    );
}
both!(crud_round_trip);

async fn cursor_pagination(app: TestApp) {
    let t = app.tenant("Paging").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let app_id = format!("wx00000000000000{i:02}");
        ids.push(
            app.create_account(&t.owner_key, &app_id).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts?limit=2&cursor={c}"),
            None => "/v1/accounts?limit=2".to_owned(),
        };
        let page: Value = app
            .get(&path, &t.owner_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every account once, in creation order");

    for bad in [
        "/v1/accounts?limit=0",
        "/v1/accounts?limit=201",
        "/v1/accounts?cursor=nonsense",
    ] {
        let res = app.get(bad, &t.owner_key).send().await.unwrap();
        expect_problem(res, 422).await;
    }
    let res = app
        .get("/v1/accounts?limit=abc", &t.owner_key)
        .send()
        .await
        .unwrap();
    expect_problem(res, 400).await;
}
both!(cursor_pagination);

async fn validation_reports_every_field(app: TestApp) {
    let t = app.tenant("Validation").await;
    let body = json!({
        "name": "",
        "original_id": "10f6c3c3ac5a",
        "app_id": "wx123",
        "app_secret": "short",
        "callback_token": "no spaces!",
        "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF=",
    });
    let res = app
        .post("/v1/accounts", &t.owner_key, &body)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 422).await;
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "app_id",
            "app_secret",
            "callback_token",
            "encoding_aes_key",
            "name",
            "original_id"
        ]
    );
    assert_eq!(app.count("official_accounts").await, 0);
    assert_eq!(
        app.count("audit_events").await,
        2,
        "only the tenant and its key were recorded"
    );
}
both!(validation_reports_every_field);
