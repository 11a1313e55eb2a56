//! Health, readiness, metrics, the OpenAPI document and Swagger UI.

use serde_json::Value;

use crate::both;
use crate::helpers::*;

async fn health_ready_and_metrics(app: TestApp) {
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let res = app
        .client
        .get(app.url("/readyz"))
        .header("x-request-id", "trace-abc_123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "trace-abc_123");

    let t = app.tenant("Metrics").await;
    app.get("/v1/accounts", &t.owner_key).send().await.unwrap();
    app.get("/v1/accounts/01JZZZZZZZZZZZZZZZZZZZZZZZ", &t.owner_key)
        .send()
        .await
        .unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"wxpilot_http_requests_total{method="GET",route="/v1/accounts",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/accounts/{id}",status="404""#),
        "{text}"
    );
    assert!(
        text.contains("wxpilot_http_request_duration_seconds_bucket"),
        "{text}"
    );
}
both!(health_ready_and_metrics);

#[tokio::test]
async fn readiness_follows_redis() {
    let mut redis = TestRedis::start();
    let url = redis.url();
    let app = spawn_app_with(Backend::Sqlite, move |s| s.redis_url = Some(url.into())).await;
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Redis gone: not ready, and says why.
    redis.stop();
    let problem = expect_problem(
        app.client.get(app.url("/readyz")).send().await.unwrap(),
        503,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().starts_with("redis"),
        "{problem}"
    );

    // Back: ready again, without a restart of wxpilot.
    redis.restart();
    let mut status = 0;
    for _ in 0..50 {
        status = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn served_document_matches_the_checked_in_file() {
    let app = spawn_app(Backend::Sqlite).await;
    let served: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        served == checked_in,
        "openapi/openapi.json is stale: run `cargo run -- openapi -o openapi/openapi.json`"
    );

    // Every operation is documented with its errors and, off the public routes, the bearer scheme.
    assert_eq!(served["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    assert!(served["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
    let public = ["/healthz", "/readyz", "/metrics", "/v1/auth/token"];
    let mut operations = 0;
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path} lacks 500");
            if !public.contains(&path.as_str()) {
                assert!(
                    op["security"][0].get("bearer").is_some(),
                    "{method} {path} lacks bearer security"
                );
                assert!(
                    responses.contains_key("401") && responses.contains_key("403"),
                    "{method} {path}"
                );
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path} lacks 404");
            }
        }
    }
    assert!(operations >= 25, "only {operations} operations documented");
    for schema in [
        "Problem",
        "OfficialAccount",
        "NewAccount",
        "Campaign",
        "ApiKey",
        "CreatedApiKey",
        "User",
        "TokenRequest",
    ] {
        assert!(
            served["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
    // Secrets are write-only in the schema.
    assert_eq!(
        served["components"]["schemas"]["NewAccount"]["properties"]["app_secret"]["writeOnly"],
        true
    );
    assert!(
        served["components"]["schemas"]["OfficialAccount"]["properties"]
            .get("app_secret")
            .is_none()
    );
}

#[tokio::test]
async fn swagger_ui_is_served_offline() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let config = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(config.contains("/openapi.json"), "{config}");
    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(
        bundle.bytes().await.unwrap().len() > 100_000,
        "the UI bundle is vendored"
    );
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = redirect.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/docs/");
}
