//! Wrong types, missing fields, unknown enum values, oversized and non-UTF-8 bodies: 4xx
//! problem+json, never 500, and nothing changes.

use serde_json::json;

use crate::both;
use crate::helpers::*;

async fn bad_bodies_are_4xx_and_change_nothing(app: TestApp) {
    let t = app.tenant("Bad input").await;
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = (
        app.count("official_accounts").await,
        app.count("campaigns").await,
        app.count("audit_events").await,
    );

    let mut wrong_type = account_body("wx2c2769f8efd9abc3");
    wrong_type["verified"] = json!("yes");
    let mut missing = account_body("wx2c2769f8efd9abc3");
    missing.as_object_mut().unwrap().remove("app_secret");
    let mut unknown_mode = account_body("wx2c2769f8efd9abc3");
    unknown_mode["encryption_mode"] = json!("paranoid");
    let mut unknown_field = account_body("wx2c2769f8efd9abc3");
    unknown_field["secret"] = json!("typo of app_secret");

    let json_cases = [
        ("/v1/accounts", wrong_type, "verified"),
        ("/v1/accounts", missing, "app_secret"),
        ("/v1/accounts", unknown_mode, "encryption_mode"),
        ("/v1/accounts", unknown_field, "secret"),
        (
            "/v1/campaigns",
            json!({"account_id": account, "name": 42}),
            "name",
        ),
        (
            "/v1/campaigns",
            json!({"account_id": account, "name": "x", "goals": "not a list"}),
            "goals",
        ),
        ("/v1/campaigns", json!([1, 2, 3]), "body"),
    ];
    for (path, body, field) in json_cases {
        let res = app.post(path, &t.owner_key, &body).send().await.unwrap();
        let problem = expect_problem(res, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    let raw_cases: [(&str, Vec<u8>, &str, u16); 5] = [
        (
            "/v1/accounts",
            b"{\"name\": ".to_vec(),
            "application/json",
            400,
        ),
        (
            "/v1/accounts",
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            "application/json",
            400,
        ),
        (
            "/v1/accounts",
            b"name=x".to_vec(),
            "application/x-www-form-urlencoded",
            415,
        ),
        (
            "/v1/campaigns",
            vec![b' '; TEST_BODY_LIMIT + 1],
            "application/json",
            413,
        ),
        (
            "/v1/campaigns",
            format!(
                "{{\"account_id\":\"{account}\",\"name\":\"{}\"}}",
                "长".repeat(TEST_BODY_LIMIT)
            )
            .into_bytes(),
            "application/json",
            413,
        ),
    ];
    for (path, body, content_type, status) in raw_cases {
        let res = app
            .client
            .post(app.url(path))
            .bearer_auth(&t.owner_key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        expect_problem(res, status).await;
    }
    // Patch with bad input, and a path id that is not an id.
    let res = app
        .patch(
            &format!("/v1/accounts/{account}"),
            &t.owner_key,
            &json!({"verified": 1}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
    expect_problem(
        app.get("/v1/accounts/..%2F..%2Fetc", &t.owner_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    expect_problem(
        app.get("/v1/campaigns/'%20OR%201=1", &t.owner_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    // A known path with the wrong method: 405 naming the methods it takes.
    let res = app
        .client
        .put(app.url("/v1/accounts"))
        .bearer_auth(&t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, POST");
    expect_problem(res, 405).await;
    let res = app
        .client
        .post(app.url(&format!("/v1/accounts/{account}")))
        .bearer_auth(&t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, PATCH, DELETE");
    expect_problem(res, 405).await;
    expect_problem(
        app.client
            .get(app.url("/v1/no-such-thing"))
            .bearer_auth(&t.owner_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;

    let after = (
        app.count("official_accounts").await,
        app.count("campaigns").await,
        app.count("audit_events").await,
    );
    assert_eq!(before, after, "bad requests changed nothing");
    let got: serde_json::Value = app
        .get(&format!("/v1/accounts/{account}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["verified"], true);
}
both!(bad_bodies_are_4xx_and_change_nothing);
