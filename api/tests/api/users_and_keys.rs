use serde_json::{Value, json};
use wxpilot_entity::Role;

use crate::both;
use crate::helpers::*;

async fn users_crud_and_owner_rules(app: TestApp) {
    let t = app.tenant("Users").await;
    let res = app
        .post(
            "/v1/users",
            &t.owner_key,
            &json!({"email": "boss@agency.cn", "password": "long enough pw", "role": "owner"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let owner: Value = res.json().await.unwrap();
    let owner_id = owner["id"].as_str().unwrap();

    // Duplicate emails (any case) conflict; short passwords and bad emails are 422.
    let dup = app
        .post(
            "/v1/users",
            &t.owner_key,
            &json!({"email": "BOSS@agency.cn", "password": "long enough pw", "role": "viewer"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(dup, 409).await;
    let bad = app
        .post(
            "/v1/users",
            &t.owner_key,
            &json!({"email": "not-an-email", "password": "short", "role": "viewer"}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(bad, 422).await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);

    // The tenant's owner key still makes it an owner, so this user may be demoted and back
    // (the last-owner rule itself is tested in hardening.rs).
    let res = app
        .patch(
            &format!("/v1/users/{owner_id}"),
            &t.owner_key,
            &json!({"role": "admin"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .patch(
            &format!("/v1/users/{owner_id}"),
            &t.owner_key,
            &json!({"role": "owner"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Admins cannot touch owners or make them.
    let admin = app.key(&t, Role::Admin).await;
    let res = app
        .patch(
            &format!("/v1/users/{owner_id}"),
            &admin,
            &json!({"name": "x"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    let res = app
        .post(
            "/v1/users",
            &admin,
            &json!({"email": "o2@agency.cn", "password": "long enough pw", "role": "owner"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;

    let res = app.post("/v1/users", &admin, &json!({"email": "ed@agency.cn", "name": "Ed", "password": "long enough pw", "role": "editor"})).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let editor: Value = res.json().await.unwrap();
    let editor_id = editor["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("/v1/users/{editor_id}"),
            &admin,
            &json!({"role": "viewer", "password": "another long pw"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["role"], "viewer");
    let signed_in = login(&app, &t.id, "ed@agency.cn", "another long pw").await;
    assert_eq!(signed_in.status(), 200, "the new password works");
    let res = app
        .delete(&format!("/v1/users/{editor_id}"), &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let list: Value = app
        .get("/v1/users", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}
both!(users_crud_and_owner_rules);

async fn api_keys_shown_once_and_revocable(app: TestApp) {
    let t = app.tenant("Keys").await;
    let res = app
        .post(
            "/v1/api-keys",
            &t.owner_key,
            &json!({"name": "CI", "role": "editor"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("wxp_") && secret.len() == 36);
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    let id = created["id"].as_str().unwrap().to_owned();

    // Never shown again; the stored form is a hash.
    let got = app
        .get(&format!("/v1/api-keys/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list = app
        .get("/v1/api-keys", &t.owner_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!got.contains(&secret) && !list.contains(&secret));
    assert!(!got.contains("\"secret\""));

    // Use updates last_used_at.
    assert_eq!(
        app.get("/v1/campaigns", &secret)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let got: Value = app
        .get(&format!("/v1/api-keys/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(got["last_used_at"].is_string(), "{got}");

    let res = app
        .patch(
            &format!("/v1/api-keys/{id}"),
            &t.owner_key,
            &json!({"name": "CI (old)"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .patch(
            &format!("/v1/api-keys/{id}"),
            &t.owner_key,
            &json!({"revoked": true}),
        )
        .send()
        .await
        .unwrap();
    let revoked: Value = res.json().await.unwrap();
    assert!(revoked["revoked_at"].is_string());
    expect_problem(app.get("/v1/campaigns", &secret).send().await.unwrap(), 401).await;
    let res = app
        .patch(
            &format!("/v1/api-keys/{id}"),
            &t.owner_key,
            &json!({"revoked": false}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;

    // Expired keys stop working; expiry must be in the future.
    let res = app
        .post(
            "/v1/api-keys",
            &t.owner_key,
            &json!({"name": "old", "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
}
both!(api_keys_shown_once_and_revocable);
