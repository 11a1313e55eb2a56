//! The knowledge-base API: FAQ pairs edited in place, documents stored as their chunks,
//! bulk import of JSON lines, CSV and Markdown with row-by-row reports, and isolation.

use serde_json::{Value, json};

use crate::helpers::*;

async fn setup(app: &TestApp) -> (TestTenant, String) {
    let t = app.tenant("Knowledge").await;
    let account = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (t, account)
}

fn import(
    app: &TestApp,
    key: &str,
    account: &str,
    content_type: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/v1/accounts/{account}/knowledge/import")))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body.to_owned())
}

async fn entries(app: &TestApp, key: &str, account: &str) -> Vec<Value> {
    app.get(&format!("/v1/accounts/{account}/knowledge?limit=200"), key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn faq_pairs_are_edited_in_place(app: TestApp) {
    let (t, account) = setup(&app).await;
    let path = format!("/v1/accounts/{account}/knowledge");
    let entry: Value = app
        .post(
            &path,
            &t.owner_key,
            &json!({"question": "怎么退货", "answer": "七天内可退。"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = entry["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("{path}/{id}"),
            &t.owner_key,
            &json!({"answer": "十四天内可退。", "alternatives": ["能退吗"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["answer"], "十四天内可退。");
    assert_eq!(changed["question"], "怎么退货");
    assert_eq!(changed["alternatives"], json!(["能退吗"]));
    let again: Value = app
        .get(&format!("{path}/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["answer"], "十四天内可退。");
    // Bad changes are refused and change nothing.
    for body in [
        json!({"answer": ""}),
        json!({"question": "x".repeat(1_001)}),
        json!({"colour": "red"}),
    ] {
        let res = app
            .patch(&format!("{path}/{id}"), &t.owner_key, &body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(status == 422 || status == 400, "{body}: {status}");
    }
    let still: Value = app
        .get(&format!("{path}/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["answer"], "十四天内可退。");
    // Another tenant cannot see or change it.
    let other = app.tenant("Other").await;
    let res = app
        .patch(
            &format!("{path}/{id}"),
            &other.owner_key,
            &json!({"answer": "no"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
crate::both!(faq_pairs_are_edited_in_place);

async fn documents_are_stored_as_chunks(app: TestApp) {
    let (t, account) = setup(&app).await;
    let long: String = "会员每消费一元积一分，积分可在小程序兑换饮品。".repeat(30);
    let text = format!(
        "# 会员手册\n\n## 积分\n{long}\n\n## 退货\n签收后七天内可以申请退货，运费由我们承担。\n"
    );
    let res = app
        .post(
            &format!("/v1/accounts/{account}/knowledge/documents"),
            &t.owner_key,
            &json!({"title": "会员手册", "text": text}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let document: Value = res.json().await.unwrap();
    let chunks = document["chunks"].as_array().unwrap();
    assert!(chunks.len() >= 3, "{document}");
    let document_id = document["document_id"].as_str().unwrap().to_owned();
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["kind"], "document");
        assert_eq!(chunk["document_id"], document_id.as_str());
        assert_eq!(chunk["ordinal"], i);
        assert_eq!(chunk["question"], "会员手册");
    }
    let last = chunks.last().unwrap();
    assert_eq!(last["heading"], "会员手册 > 退货");
    assert!(last["answer"].as_str().unwrap().contains("七天内"));
    // A chunk's text can be corrected; it has no alternatives.
    let chunk_path = format!(
        "/v1/accounts/{account}/knowledge/{}",
        last["id"].as_str().unwrap()
    );
    let res = app
        .patch(&chunk_path, &t.owner_key, &json!({"alternatives": ["x"]}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;
    // Empty text and a missing title are refused.
    for body in [
        json!({"title": "空", "text": "   \n "}),
        json!({"title": "", "text": "x"}),
    ] {
        let res = app
            .post(
                &format!("/v1/accounts/{account}/knowledge/documents"),
                &t.owner_key,
                &body,
            )
            .send()
            .await
            .unwrap();
        expect_problem(res, 422).await;
    }
    // Another tenant cannot delete it; the owner can, once.
    let other = app.tenant("Other").await;
    let doc_path = format!("/v1/accounts/{account}/knowledge/documents/{document_id}");
    let res = app
        .delete(&doc_path, &other.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        entries(&app, &t.owner_key, &account).await.len(),
        chunks.len()
    );
    let res = app.delete(&doc_path, &t.owner_key).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(entries(&app, &t.owner_key, &account).await.is_empty());
    let res = app.delete(&doc_path, &t.owner_key).send().await.unwrap();
    assert_eq!(res.status(), 404);
}
crate::both!(documents_are_stored_as_chunks);

async fn bulk_import(app: TestApp) {
    let (t, account) = setup(&app).await;
    let key = &t.owner_key;
    let lines = "\n{\"question\":\"几点开门\",\"answer\":\"早上七点半。\"}\n\
                 {\"question\":\"\",\"answer\":\"no question\"}\n\
                 not json\n\
                 {\"question\":\"能开发票吗\",\"answer\":\"可以。\",\"alternatives\":[\"发票\"]}\n";
    let res = import(&app, key, &account, "application/x-ndjson", lines)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["stored"], 2, "{report}");
    let rows: Vec<u64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    // Rows are numbered as sent: the blank first line counts.
    assert_eq!(rows, [3, 4]);

    let csv = "question,answer,alternatives\n\
               多久发货,\"当天发出，江浙沪次日达。\",什么时候发货|几天到\n\
               \"门店在哪\",\"上海市\"\"静安区\"\"\"\n";
    let res = import(&app, key, &account, "text/csv; charset=utf-8", csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["stored"], 2, "{report}");
    let all = entries(&app, key, &account).await;
    let shipping = all.iter().find(|e| e["question"] == "多久发货").unwrap();
    assert_eq!(shipping["answer"], "当天发出，江浙沪次日达。");
    assert_eq!(shipping["alternatives"], json!(["什么时候发货", "几天到"]));
    assert!(all.iter().any(|e| e["answer"] == "上海市\"静安区\""));

    // Importing an edited file again updates the pairs it names instead of duplicating.
    let count = entries(&app, key, &account).await.len();
    let again = "question,answer\n多久发货,\"下单后当天发出。\"\n";
    let res = import(&app, key, &account, "text/csv", again)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["stored"], 1);
    let all = entries(&app, key, &account).await;
    assert_eq!(all.len(), count);
    let shipping = all.iter().find(|e| e["question"] == "多久发货").unwrap();
    assert_eq!(shipping["answer"], "下单后当天发出。");
    assert_eq!(shipping["alternatives"], json!([]));

    let res = import(&app, key, &account, "text/csv", "q,a\nx,y\n")
        .send()
        .await
        .unwrap();
    expect_problem(res, 422).await;

    let markdown =
        "# 售后政策\n\n## 退货\n签收后七天内可以申请退货。\n\n## 换货\n质量问题可以换新。\n";
    let res = import(&app, key, &account, "text/markdown", markdown)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let document: Value = res.json().await.unwrap();
    assert_eq!(document["title"], "售后政策");
    assert_eq!(document["chunks"][0]["heading"], "售后政策 > 退货");

    let res = import(&app, key, &account, "application/pdf", "%PDF")
        .send()
        .await
        .unwrap();
    expect_problem(res, 415).await;
    let before = entries(&app, key, &account).await.len();
    // Another tenant's import into this account stores nothing.
    let other = app.tenant("Other").await;
    let res = import(
        &app,
        &other.owner_key,
        &account,
        "application/x-ndjson",
        lines,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
    let res = import(&app, &other.owner_key, &account, "application/pdf", "%PDF")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(entries(&app, key, &account).await.len(), before);
}
crate::both!(bulk_import);
