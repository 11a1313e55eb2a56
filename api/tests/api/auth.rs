use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use wxpilot_api::auth::jwt::JwtKeys;
use wxpilot_core::MasterKey;
use wxpilot_core::service::{Actor, Scopes};
use wxpilot_entity::Role;

use crate::both;
use crate::helpers::*;

fn actor_of(tenant: &TestTenant, role: Role) -> Actor {
    Actor {
        tenant_id: tenant.id.clone(),
        subject: "user:01JUSER0000000000000000000".into(),
        role,
        scopes: Scopes::all(),
        request_id: None,
        expires_at: None,
    }
}

/// Every bad credential is a 401 problem, and none of them creates anything.
async fn bad_credentials_are_401(app: TestApp) {
    let t = app.tenant("Auth").await;
    let body = account_body("wx2c2769f8efd9abc2");
    let keys = JwtKeys::new(&app.master_key(), 900, 5).unwrap();
    let now = chrono::Utc::now().timestamp();
    let expired = keys
        .issue_with_times(&actor_of(&t, Role::Owner), now - 3600, now - 600)
        .unwrap();
    let foreign = JwtKeys::new(&MasterKey::generate(), 900, 5)
        .unwrap()
        .issue(&actor_of(&t, Role::Owner))
        .unwrap()
        .0;
    let (good, _) = keys.issue(&actor_of(&t, Role::Owner)).unwrap();
    let payload = good.split('.').nth(1).unwrap();
    let alg_none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let tampered = {
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["tid"] = json!("01JOTHERTENANT000000000000");
        let parts: Vec<&str> = good.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        )
    };
    let revoked = app.key(&t, Role::Admin).await;
    let revoked_id = key_id(&app, &t.owner_key, &revoked).await;
    let res = app
        .delete(&format!("/v1/api-keys/{revoked_id}"), &t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let accounts_before = app.count("official_accounts").await;

    let no_header = app
        .client
        .post(app.url("/v1/accounts"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(no_header, 401).await;
    assert!(problem["detail"].as_str().unwrap().contains("Bearer"));
    let basic = app
        .client
        .post(app.url("/v1/accounts"))
        .header("authorization", "Basic dXNlcjpwdw==")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_problem(basic, 401).await;

    let cases = [
        ("malformed", "not.a.jwt".to_owned()),
        (
            "garbage",
            "wxp_thisIsNotARealKeyButLooksLikeOne1".to_owned(),
        ),
        ("expired", expired),
        ("other key", foreign),
        ("alg none", alg_none),
        ("tampered claims", tampered),
        ("revoked key", revoked),
    ];
    for (what, credential) in cases {
        let res = app
            .post("/v1/accounts", &credential, &body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{what}"
        );
        let problem = expect_problem(res, 401).await;
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{what}");
        let res = app.get("/v1/accounts", &credential).send().await.unwrap();
        expect_problem(res, 401).await;
    }
    assert_eq!(
        app.count("official_accounts").await,
        accounts_before,
        "nothing was created"
    );
}
both!(bad_credentials_are_401);

/// Viewers read; editors also write campaigns; admins also write accounts, users and keys.
async fn roles_are_enforced(app: TestApp) {
    let t = app.tenant("Roles").await;
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = app.key(&t, Role::Viewer).await;
    let editor = app.key(&t, Role::Editor).await;
    let admin = app.key(&t, Role::Admin).await;

    assert_eq!(
        app.get("/v1/accounts", &viewer)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.get("/v1/campaigns", &viewer)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = app
        .post(
            "/v1/campaigns",
            &viewer,
            &json!({"account_id": account, "name": "x"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    let res = app
        .patch(
            &format!("/v1/accounts/{account}"),
            &viewer,
            &json!({"name": "x"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    let res = app
        .delete(&format!("/v1/accounts/{account}"), &viewer)
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    expect_problem(app.get("/v1/users", &viewer).send().await.unwrap(), 403).await;
    expect_problem(app.get("/v1/api-keys", &viewer).send().await.unwrap(), 403).await;
    assert_eq!(app.count("campaigns").await, 0);

    let res = app
        .post(
            "/v1/campaigns",
            &editor,
            &json!({"account_id": account, "name": "x"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .post("/v1/accounts", &editor, &account_body("wx2c2769f8efd9abc3"))
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    let res = app
        .post("/v1/api-keys", &editor, &json!({"name": "k"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;

    let res = app
        .post("/v1/accounts", &admin, &account_body("wx2c2769f8efd9abc3"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // Nobody hands out more than they hold.
    let res = app
        .post(
            "/v1/api-keys",
            &admin,
            &json!({"name": "k", "role": "owner"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;
    let res = app
        .post(
            "/v1/api-keys",
            &admin,
            &json!({"name": "k", "role": "admin"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(app.count("official_accounts").await, 2);
}
both!(roles_are_enforced);

/// Scoped keys reach only their areas.
async fn scopes_limit_keys(app: TestApp) {
    let t = app.tenant("Scopes").await;
    let res = app
        .post(
            "/v1/api-keys",
            &t.owner_key,
            &json!({"name": "campaigns only", "role": "editor", "scopes": ["campaigns"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    assert_eq!(key["scopes"], json!(["campaigns"]));
    let secret = key["secret"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/campaigns", secret)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    expect_problem(app.get("/v1/accounts", secret).send().await.unwrap(), 403).await;
    let res = app
        .post(
            "/v1/api-keys",
            &t.owner_key,
            &json!({"name": "x", "scopes": ["everything"]}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "scopes");
}
both!(scopes_limit_keys);

/// API key → JWT, and email + password → JWT; the JWT carries the role.
async fn token_exchange(app: TestApp) {
    let t = app.tenant("Tokens").await;
    let viewer = app.key(&t, Role::Viewer).await;
    let res = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"grant_type": "api_key", "api_key": viewer}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token: Value = res.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 900);
    assert_eq!(token["role"], "viewer");
    assert_eq!(token["tenant_id"], t.id.as_str());
    let jwt = token["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/campaigns", jwt).send().await.unwrap().status(),
        200
    );
    let res = app
        .post(
            "/v1/campaigns",
            jwt,
            &json!({"account_id": "01JZZZZZZZZZZZZZZZZZZZZZZZ", "name": "x"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 403).await;

    let res = app
        .post("/v1/users", &t.owner_key, &json!({"email": "Li.Lei@Agency.cn", "name": "李雷", "password": "correct horse battery", "role": "editor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["email"], "li.lei@agency.cn");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let res = login(&app, &t.id, "li.lei@agency.cn", "correct horse battery").await;
    assert_eq!(res.status(), 200);
    let token: Value = res.json().await.unwrap();
    assert_eq!(token["role"], "editor");
    let jwt = token["access_token"].as_str().unwrap().to_owned();
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post(
            "/v1/campaigns",
            &jwt,
            &json!({"account_id": account, "name": "by jwt"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let audit: Value = app
        .get("/v1/audit-events", &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = audit["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"],
        format!("user:{}", user["id"].as_str().unwrap())
    );

    // By slug too; wrong password, unknown email and unknown tenant look the same.
    assert_eq!(
        login(&app, "tokens", "LI.LEI@agency.cn", "correct horse battery")
            .await
            .status(),
        200
    );
    for res in [
        login(&app, &t.id, "li.lei@agency.cn", "wrong password!").await,
        login(&app, &t.id, "nobody@agency.cn", "correct horse battery").await,
        login(
            &app,
            "no-such-tenant",
            "li.lei@agency.cn",
            "correct horse battery",
        )
        .await,
    ] {
        let problem = expect_problem(res, 401).await;
        assert_eq!(problem["detail"], "the email or password is wrong");
    }
    let res = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"grant_type": "magic"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
}
both!(token_exchange);
