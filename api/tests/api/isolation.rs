//! Tenant B with tenant A's ids: 404 on every route, A's rows never in B's lists, and A's
//! objects unchanged afterwards.

use serde_json::{Value, json};
use wxpilot_entity::Role;

use crate::both;
use crate::helpers::*;

async fn other_tenants_ids_answer_404(app: TestApp) {
    let a = app.tenant("Tenant A").await;
    let b = app.tenant("Tenant B").await;

    let account = app.create_account(&a.owner_key, "wx2c2769f8efd9abc2").await;
    let account_id = account["id"].as_str().unwrap().to_owned();
    let campaign_id = app
        .create_campaign(&a.owner_key, &account_id, "A's campaign")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user: Value = app
        .post(
            "/v1/users",
            &a.owner_key,
            &json!({"email": "a@a-agency.cn", "password": "long enough pw", "role": "editor"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = user["id"].as_str().unwrap().to_owned();
    let a_key = app.key(&a, Role::Viewer).await;
    let key_id = key_id(&app, &a.owner_key, &a_key).await;

    // B's own objects, so B's lists are not trivially empty.
    let b_account = app.create_account(&b.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let resources = [
        ("accounts", &account_id, json!({"name": "hijacked"})),
        ("campaigns", &campaign_id, json!({"name": "hijacked"})),
        ("users", &user_id, json!({"name": "hijacked"})),
        ("api-keys", &key_id, json!({"name": "hijacked"})),
    ];
    for (collection, id, patch) in &resources {
        let path = format!("/v1/{collection}/{id}");
        expect_problem(app.get(&path, &b.owner_key).send().await.unwrap(), 404).await;
        expect_problem(
            app.patch(&path, &b.owner_key, patch).send().await.unwrap(),
            404,
        )
        .await;
        expect_problem(app.delete(&path, &b.owner_key).send().await.unwrap(), 404).await;

        let list: Value = app
            .get(&format!("/v1/{collection}"), &b.owner_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert!(
            !ids.contains(&id.as_str()),
            "{collection} list of B shows A's {id}"
        );
        // A still sees its object, unchanged.
        let own: Value = app
            .get(&path, &a.owner_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(own["id"], id.as_str());
        assert_ne!(own["name"], "hijacked");
    }
    let b_accounts: Value = app
        .get("/v1/accounts", &b.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b_accounts["items"].as_array().unwrap().len(), 1);
    assert_eq!(b_accounts["items"][0]["id"], b_account.as_str());

    // B cannot hang a campaign on A's account, nor filter its way into A's campaigns.
    let res = app
        .post(
            "/v1/campaigns",
            &b.owner_key,
            &json!({"account_id": account_id, "name": "x"}),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "account_id");
    let filtered: Value = app
        .get(
            &format!("/v1/campaigns?account_id={account_id}"),
            &b.owner_key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 0);

    // A's key still works (B's delete did not revoke it), and B's audit log holds nothing of A's.
    assert_eq!(
        app.get("/v1/accounts", &a_key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let audit: Value = app
        .get("/v1/audit-events?limit=200", &b.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for event in audit["items"].as_array().unwrap() {
        for id in [&account_id, &campaign_id, &user_id, &key_id] {
            assert_ne!(event["resource_id"], id.as_str());
        }
    }
}
both!(other_tenants_ids_answer_404);
