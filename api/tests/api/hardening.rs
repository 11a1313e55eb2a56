//! Attacks found by review: stale tokens, scope escalation, concurrent writes, the last
//! owner, inputs the databases refuse, label floods and password guessing.

use serde_json::{Value, json};
use wxpilot_entity::Role;

use crate::both;
use crate::helpers::*;

/// Revoking a key, deleting a user or demoting one takes effect on tokens already issued.
async fn tokens_follow_their_credential(app: TestApp) {
    let t = app.tenant("Stale tokens").await;
    let admin = app.key(&t, Role::Admin).await;
    let jwt = token_for_key(&app, &admin).await;
    assert_eq!(
        app.get("/v1/api-keys", &jwt).send().await.unwrap().status(),
        200
    );
    let id = key_id(&app, &t.owner_key, &admin).await;
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{id}"), &t.owner_key)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    expect_problem(app.get("/v1/api-keys", &jwt).send().await.unwrap(), 401).await;
    let res = app
        .post(
            "/v1/api-keys",
            &jwt,
            &json!({"name": "persist", "role": "admin"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 401).await;

    let res = app
        .post(
            "/v1/users",
            &t.owner_key,
            &json!({"email": "ad@x.cn", "password": "long enough pw", "role": "admin"}),
        )
        .send()
        .await
        .unwrap();
    let user: Value = res.json().await.unwrap();
    let user_id = user["id"].as_str().unwrap();
    let res = login(&app, &t.id, "ad@x.cn", "long enough pw").await;
    let user_jwt = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get("/v1/users", &user_jwt)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = app
        .patch(
            &format!("/v1/users/{user_id}"),
            &t.owner_key,
            &json!({"role": "viewer"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    expect_problem(app.get("/v1/users", &user_jwt).send().await.unwrap(), 403).await;
    assert_eq!(
        app.get("/v1/campaigns", &user_jwt)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still a viewer"
    );
    assert_eq!(
        app.delete(&format!("/v1/users/{user_id}"), &t.owner_key)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    expect_problem(
        app.get("/v1/campaigns", &user_jwt).send().await.unwrap(),
        401,
    )
    .await;

    // A token never outlives its key.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(60);
    let res = app
        .post(
            "/v1/api-keys",
            &t.owner_key,
            &json!({"name": "short", "role": "viewer", "expires_at": expires}),
        )
        .send()
        .await
        .unwrap();
    let short = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"grant_type": "api_key", "api_key": short}))
        .send()
        .await
        .unwrap();
    let token: Value = res.json().await.unwrap();
    assert!(token["expires_in"].as_u64().is_some());
    let token_expiry =
        chrono::DateTime::parse_from_rfc3339(token["expires_at"].as_str().unwrap()).unwrap();
    assert!(
        token_expiry <= expires + chrono::Duration::seconds(1),
        "{token_expiry} > {expires}"
    );
}
both!(tokens_follow_their_credential);

/// A scoped or expiring key cannot mint a wider or longer-lived one, nor users.
async fn no_escalation_through_keys(app: TestApp) {
    let t = app.tenant("Escalation").await;
    let res = app
        .post(
            "/v1/api-keys",
            &t.owner_key,
            &json!({"name": "keys only", "role": "admin", "scopes": ["api_keys", "users"]}),
        )
        .send()
        .await
        .unwrap();
    let scoped = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post(
            "/v1/api-keys",
            &scoped,
            &json!({"name": "esc", "role": "admin", "scopes": ["*"]}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    let res = app
        .post(
            "/v1/api-keys",
            &scoped,
            &json!({"name": "esc", "role": "admin", "scopes": ["accounts"]}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    let res = app
        .post(
            "/v1/api-keys",
            &scoped,
            &json!({"name": "narrower", "role": "viewer", "scopes": ["api_keys"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "narrower keys are fine");
    let res = app
        .post(
            "/v1/users",
            &scoped,
            &json!({"email": "esc@x.cn", "password": "escalate12345", "role": "admin"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    assert_eq!(app.count("users").await, 0);

    let limit = chrono::Utc::now() + chrono::Duration::hours(1);
    let res = app
        .post(
            "/v1/api-keys",
            &t.owner_key,
            &json!({"name": "expiring", "role": "admin", "expires_at": limit}),
        )
        .send()
        .await
        .unwrap();
    let expiring = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post(
            "/v1/api-keys",
            &expiring,
            &json!({"name": "forever", "role": "viewer"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let child: Value = res.json().await.unwrap();
    let child_expiry =
        chrono::DateTime::parse_from_rfc3339(child["expires_at"].as_str().unwrap()).unwrap();
    assert!(child_expiry <= limit + chrono::Duration::seconds(1));
    let later = limit + chrono::Duration::days(30);
    let res = app
        .post(
            "/v1/api-keys",
            &expiring,
            &json!({"name": "later", "expires_at": later}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
}
both!(no_escalation_through_keys);

/// Many writers at once, from two tenants: every request succeeds (no "database is locked").
async fn concurrent_writes_all_succeed(app: TestApp) {
    let a = app.tenant("Writer A").await;
    let b = app.tenant("Writer B").await;
    let acc_a = app.create_account(&a.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let acc_b = app.create_account(&b.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let camp = app.create_campaign(&a.owner_key, &acc_a, "shared").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut requests = Vec::new();
    for i in 0..40 {
        let req = match i % 3 {
            0 => app.patch(
                &format!("/v1/campaigns/{camp}"),
                &a.owner_key,
                &json!({"name": format!("n{i}")}),
            ),
            1 => app.post(
                "/v1/campaigns",
                &b.owner_key,
                &json!({"account_id": acc_b, "name": format!("b{i}")}),
            ),
            _ => app.post(
                "/v1/campaigns",
                &a.owner_key,
                &json!({"account_id": acc_a, "name": format!("a{i}")}),
            ),
        };
        requests.push(tokio::spawn(req.send()));
    }
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap().unwrap().status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 201),
        "{statuses:?}"
    );
    assert_eq!(app.count("campaigns").await, 1 + 26);
}
both!(concurrent_writes_all_succeed);

/// Two owners demoting each other at once: one wins, one gets 409, an owner remains.
async fn last_owner_survives_a_race(app: TestApp) {
    let t = app.tenant("Owners").await;
    let mut jwts = Vec::new();
    let mut ids = Vec::new();
    for email in ["o1@x.cn", "o2@x.cn"] {
        let res = app
            .post(
                "/v1/users",
                &t.owner_key,
                &json!({"email": email, "password": "long enough pw", "role": "owner"}),
            )
            .send()
            .await
            .unwrap();
        ids.push(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let res = login(&app, &t.id, email, "long enough pw").await;
        jwts.push(
            res.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Leave the two users as the only owners.
    let owner_key_id = key_id(&app, &t.owner_key, &t.owner_key).await;
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{owner_key_id}"), &jwts[0])
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let first = app
        .patch(
            &format!("/v1/users/{}", ids[1]),
            &jwts[0],
            &json!({"role": "viewer"}),
        )
        .send();
    let second = app
        .patch(
            &format!("/v1/users/{}", ids[0]),
            &jwts[1],
            &json!({"role": "viewer"}),
        )
        .send();
    let (first, second) = tokio::join!(first, second);
    let mut statuses = [
        first.unwrap().status().as_u16(),
        second.unwrap().status().as_u16(),
    ];
    statuses.sort_unstable();
    // The loser may also be refused because the winner's change made it a viewer already.
    assert!(
        statuses == [200, 409] || statuses == [200, 403],
        "{statuses:?}"
    );
    let list: Value = app
        .get("/v1/users", &jwts[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default();
    let list = if list["items"].is_array() {
        list
    } else {
        app.get("/v1/users", &jwts[1])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let owners = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"] == "owner")
        .count();
    assert_eq!(owners, 1);
}
both!(last_owner_survives_a_race);

/// The last owner credential cannot be revoked.
async fn last_owner_key_cannot_be_revoked(app: TestApp) {
    let t = app.tenant("Lonely owner").await;
    let id = key_id(&app, &t.owner_key, &t.owner_key).await;
    let problem = expect_problem(
        app.delete(&format!("/v1/api-keys/{id}"), &t.owner_key)
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("last owner"));
    let res = app
        .patch(
            &format!("/v1/api-keys/{id}"),
            &t.owner_key,
            &json!({"revoked": true}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 409).await;
    assert_eq!(
        app.get("/v1/accounts", &t.owner_key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
both!(last_owner_key_cannot_be_revoked);

/// Values one database or the other cannot store are 4xx, never 500.
async fn unstorable_values_are_refused(app: TestApp) {
    let t = app.tenant("Odd values").await;
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post(
            "/v1/campaigns",
            &t.owner_key,
            &json!({"account_id": account, "name": "x", "start_date": "-5000-01-01"}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "start_date");
    let res = app
        .post(
            "/v1/campaigns",
            &t.owner_key,
            &json!({"account_id": account, "name": "a\u{0}b"}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "name");
    let res = login(&app, &t.id, "a\u{0}b@c.cn", "whatever pw").await;
    expect_problem(res, 422).await;
    expect_problem(
        app.get("/v1/campaigns?account_id=%00", &t.owner_key)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    expect_problem(
        app.get("/v1/campaigns?limit=-1", &t.owner_key)
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(app.count("campaigns").await, 0);
}
both!(unstorable_values_are_refused);

#[tokio::test]
async fn unknown_methods_share_one_metrics_label() {
    let app = spawn_app(Backend::Sqlite).await;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("X0ZZY{i}").as_bytes()).unwrap();
        app.client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("X0ZZY"), "method names leak into labels");
    assert!(text.contains(r#"method="OTHER""#), "{text}");
}

#[tokio::test]
async fn password_guessing_is_throttled() {
    let app = spawn_app(Backend::Sqlite).await;
    let t = app.tenant("Guessing").await;
    let res = app
        .post(
            "/v1/users",
            &t.owner_key,
            &json!({"email": "v@x.cn", "password": "the real password", "role": "viewer"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for _ in 0..10 {
        expect_problem(login(&app, &t.id, "v@x.cn", "a wrong guess").await, 401).await;
    }
    let problem =
        expect_problem(login(&app, &t.id, "v@x.cn", "the real password").await, 429).await;
    assert!(problem["detail"].as_str().unwrap().contains("try again"));
}
