//! The WeChat callback: URL verification, safe-mode messages answered from keyword rules
//! and the FAQ in the same HTTP answer, retries deduplicated, forged requests rejected.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use wxpilot_entity::{follower, keyword_rule, knowledge_entry};
use wxpilot_wechat::{MessageCrypt, XmlLimits, parse_envelope, parse_fields, url_signature};

use crate::both;
use crate::helpers::*;

const TOKEN: &str = "spamtest";
const APP_ID: &str = "wx5823bf96d3bd56c7";
const NONCE: &str = "1320562132";
const OPENID: &str = "oUser000000000000000000000001";

/// An account of a fresh tenant; returns (tenant id, account id).
async fn account(app: &TestApp) -> (String, String) {
    let t = app.tenant("Callback").await;
    let acc = app.create_account(&t.owner_key, APP_ID).await;
    (t.id, acc["id"].as_str().unwrap().to_owned())
}

fn crypt() -> MessageCrypt {
    MessageCrypt::new(TOKEN, AES_KEY, APP_ID).unwrap()
}

fn text_xml(content: &str, msg_id: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\
         <FromUserName><![CDATA[{OPENID}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>",
        Utc::now().timestamp()
    )
}

/// Posts `xml` in safe mode, signed as WeChat would; `forge` spoils the msg_signature.
async fn post_safe(app: &TestApp, account_id: &str, xml: &str, forge: bool) -> reqwest::Response {
    post_safe_to(app, &app.address, account_id, xml, forge).await
}

/// [`post_safe`] to the api at `base` (another replica).
async fn post_safe_to(
    app: &TestApp,
    base: &str,
    account_id: &str,
    xml: &str,
    forge: bool,
) -> reqwest::Response {
    let ts = Utc::now().timestamp().to_string();
    let enc = crypt().encrypt_reply(xml, &ts, NONCE).unwrap();
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
        enc.encrypt
    );
    let msg_signature = if forge {
        "0".repeat(40)
    } else {
        enc.msg_signature
    };
    app.client
        .post(format!("{base}/wechat/{account_id}"))
        .query(&[
            ("signature", url_signature(TOKEN, &ts, NONCE)),
            ("timestamp", ts),
            ("nonce", NONCE.to_owned()),
            ("encrypt_type", "aes".to_owned()),
            ("msg_signature", msg_signature),
        ])
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Decrypts a safe-mode passive reply and returns its `Content`.
async fn reply_content(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let limits = XmlLimits::default();
    let fields = parse_fields(body.as_bytes(), &limits).unwrap();
    let envelope = parse_envelope(body.as_bytes(), &limits).unwrap();
    let xml = crypt()
        .decrypt_message(
            fields.get("MsgSignature").unwrap(),
            fields.get("TimeStamp").unwrap(),
            fields.get("Nonce").unwrap(),
            &envelope.encrypt,
        )
        .unwrap();
    let reply = parse_fields(xml.as_bytes(), &limits).unwrap();
    assert_eq!(reply.get("ToUserName"), Some(OPENID));
    assert_eq!(reply.get("MsgType"), Some("text"));
    reply.get("Content").unwrap().to_owned()
}

async fn add_faq(app: &TestApp, tenant_id: &str, account_id: &str, q: &str, a: &str) {
    knowledge_entry::ActiveModel {
        id: Set(wxpilot_core::ids::new_id()),
        tenant_id: Set(tenant_id.to_owned()),
        account_id: Set(account_id.to_owned()),
        kind: Set("faq".into()),
        question: Set(q.into()),
        answer: Set(a.into()),
        alternatives: Set(serde_json::json!([])),
        document_id: Set(None),
        heading: Set(None),
        ordinal: Set(None),
        embedding: Set(None),
        embedding_model: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(&app.db)
    .await
    .unwrap();
}

async fn url_verification(app: TestApp) {
    let (_, id) = account(&app).await;
    let ts = Utc::now().timestamp().to_string();
    let good = app
        .client
        .get(app.url(&format!("/wechat/{id}")))
        .query(&[
            ("signature", url_signature(TOKEN, &ts, NONCE)),
            ("timestamp", ts.clone()),
            ("nonce", NONCE.to_owned()),
            ("echostr", "echo-4711".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    assert!(
        good.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(good.text().await.unwrap(), "echo-4711");

    let bad = app
        .client
        .get(app.url(&format!("/wechat/{id}")))
        .query(&[
            ("signature", "0".repeat(40)),
            ("timestamp", ts.clone()),
            ("nonce", NONCE.to_owned()),
            ("echostr", "echo-4711".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    let unknown = app
        .client
        .get(app.url("/wechat/01JAAAAAAAAAAAAAAAAAAAAAAA"))
        .query(&[
            ("signature", url_signature(TOKEN, &ts, NONCE)),
            ("timestamp", ts),
            ("nonce", NONCE.to_owned()),
            ("echostr", "x".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}
both!(url_verification);

async fn faq_answered_in_the_same_answer_once(app: TestApp) {
    let (tenant, id) = account(&app).await;
    add_faq(
        &app,
        &tenant,
        &id,
        "怎么退货",
        "签收后七天内在订单页申请售后。",
    )
    .await;
    add_faq(&app, &tenant, &id, "营业时间是几点", "每天十点到晚上十点。").await;

    let xml = text_xml("请问怎么退货？", "6054768590064713728");
    let first = post_safe(&app, &id, &xml, false).await;
    assert_eq!(reply_content(first).await, "签收后七天内在订单页申请售后。");
    // WeChat's two retries of the same MsgId: handled once, answered once.
    for _ in 0..2 {
        let again = post_safe(&app, &id, &xml, false).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.text().await.unwrap(), "success");
    }
    assert_eq!(app.count("followers").await, 1);
    // One inbound message and one passive answer.
    assert_eq!(app.count("conversation_messages").await, 2);
}
both!(faq_answered_in_the_same_answer_once);

async fn keyword_rule_wins_over_faq(app: TestApp) {
    let (tenant, id) = account(&app).await;
    add_faq(
        &app,
        &tenant,
        &id,
        "怎么退货",
        "签收后七天内在订单页申请售后。",
    )
    .await;
    keyword_rule::ActiveModel {
        id: Set(wxpilot_core::ids::new_id()),
        tenant_id: Set(tenant.clone()),
        account_id: Set(id.clone()),
        kind: Set("contains".into()),
        pattern: Set("退货".into()),
        reply: Set("退货请联系客服电话 400-000-0000。".into()),
        priority: Set(10),
        created_at: Set(Utc::now()),
    }
    .insert(&app.db)
    .await
    .unwrap();
    let res = post_safe(
        &app,
        &id,
        &text_xml("怎么退货", "6054768590064713729"),
        false,
    )
    .await;
    assert_eq!(
        reply_content(res).await,
        "退货请联系客服电话 400-000-0000。"
    );
}
both!(keyword_rule_wins_over_faq);

async fn unrelated_question_answers_success(app: TestApp) {
    let (tenant, id) = account(&app).await;
    add_faq(
        &app,
        &tenant,
        &id,
        "怎么退货",
        "签收后七天内在订单页申请售后。",
    )
    .await;
    let res = post_safe(
        &app,
        &id,
        &text_xml("你们的老板是谁", "6054768590064713730"),
        false,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "success");
    // Stored, even though not answered passively.
    assert_eq!(app.count("conversation_messages").await, 1);
}
both!(unrelated_question_answers_success);

async fn forged_and_hostile_bodies_are_rejected(app: TestApp) {
    let (tenant, id) = account(&app).await;
    add_faq(
        &app,
        &tenant,
        &id,
        "怎么退货",
        "签收后七天内在订单页申请售后。",
    )
    .await;
    let forged = post_safe(
        &app,
        &id,
        &text_xml("怎么退货", "6054768590064713731"),
        true,
    )
    .await;
    assert_eq!(forged.status(), 401);

    let ts = Utc::now().timestamp().to_string();
    let doctype = app
        .client
        .post(app.url(&format!("/wechat/{id}")))
        .query(&[
            ("signature", url_signature(TOKEN, &ts, NONCE)),
            ("timestamp", ts.clone()),
            ("nonce", NONCE.to_owned()),
            ("encrypt_type", "aes".to_owned()),
            ("msg_signature", "0".repeat(40)),
        ])
        .body("<!DOCTYPE xml [<!ENTITY x \"y\">]><xml><Encrypt>&x;</Encrypt></xml>")
        .send()
        .await
        .unwrap();
    assert_eq!(doctype.status(), 400);

    // A replayed delivery from an hour ago, correctly signed for its time.
    let old = (Utc::now().timestamp() - 3600).to_string();
    let enc = crypt()
        .encrypt_reply(&text_xml("怎么退货", "6054768590064713732"), &old, NONCE)
        .unwrap();
    let stale = app
        .client
        .post(app.url(&format!("/wechat/{id}")))
        .query(&[
            ("signature", url_signature(TOKEN, &old, NONCE)),
            ("timestamp", old),
            ("nonce", NONCE.to_owned()),
            ("encrypt_type", "aes".to_owned()),
            ("msg_signature", enc.msg_signature),
        ])
        .body(format!(
            "<xml><Encrypt><![CDATA[{}]]></Encrypt></xml>",
            enc.encrypt
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);

    assert_eq!(app.count("conversation_messages").await, 0);
    assert_eq!(app.count("followers").await, 0);
    assert_eq!(app.count("callback_dedup").await, 0);
}
both!(forged_and_hostile_bodies_are_rejected);

fn event_xml(event: &str, create_time: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\
         <FromUserName><![CDATA[{OPENID}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{event}]]></Event></xml>"
    )
}

async fn subscribe_welcomes_and_unsubscribe_marks(app: TestApp) {
    let (_, id) = account(&app).await;
    let now = Utc::now().timestamp();
    let res = post_safe(&app, &id, &event_xml("subscribe", now), false).await;
    assert_eq!(reply_content(res).await, "感谢关注！");
    let subscribed = follower::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(subscribed.subscribed);
    assert_eq!(
        subscribed.last_message_at, None,
        "an event is not a message"
    );

    let res = post_safe(&app, &id, &event_xml("unsubscribe", now + 1), false).await;
    assert_eq!(res.text().await.unwrap(), "success");
    let gone = follower::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(!gone.subscribed);
    assert_eq!(app.count("followers").await, 1);
}
both!(subscribe_welcomes_and_unsubscribe_marks);

async fn safe_account_refuses_plain_bodies(app: TestApp) {
    let (_, id) = account(&app).await;
    let ts = Utc::now().timestamp().to_string();
    let res = app
        .client
        .post(app.url(&format!("/wechat/{id}")))
        .query(&[
            ("signature", url_signature(TOKEN, &ts, NONCE)),
            ("timestamp", ts),
            ("nonce", NONCE.to_owned()),
        ])
        .body(text_xml("怎么退货", "6054768590064713733"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.count("conversation_messages").await, 0);
}
both!(safe_account_refuses_plain_bodies);

async fn knowledge_api_feeds_the_callback_and_is_tenant_scoped(app: TestApp) {
    let t = app.tenant("Knowledge").await;
    let id = app.create_account(&t.owner_key, APP_ID).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = serde_json::json!({
        "question": "怎么退货",
        "answer": "签收后七天内在订单页申请售后。",
        "alternatives": ["如何退换货"]
    });
    let res = app
        .post(&format!("/v1/accounts/{id}/knowledge"), &t.owner_key, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let entry: serde_json::Value = res.json().await.unwrap();
    let entry_id = entry["id"].as_str().unwrap().to_owned();
    assert_eq!(entry["alternatives"], serde_json::json!(["如何退换货"]));

    let got: serde_json::Value = app
        .get(
            &format!("/v1/accounts/{id}/knowledge/{entry_id}"),
            &t.owner_key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["answer"], "签收后七天内在订单页申请售后。");
    let page: serde_json::Value = app
        .get(&format!("/v1/accounts/{id}/knowledge"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    let res = post_safe(
        &app,
        &id,
        &text_xml("请问怎么退货", "6054768590064713740"),
        false,
    )
    .await;
    assert_eq!(reply_content(res).await, "签收后七天内在订单页申请售后。");

    // Another tenant sees neither the account's entries nor the entry.
    let other = app.tenant("Other").await;
    for path in [
        format!("/v1/accounts/{id}/knowledge"),
        format!("/v1/accounts/{id}/knowledge/{entry_id}"),
    ] {
        let res = app.get(&path, &other.owner_key).send().await.unwrap();
        expect_problem(res, 404).await;
    }
    let res = app
        .post(
            &format!("/v1/accounts/{id}/knowledge"),
            &other.owner_key,
            &body,
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let res = app
        .delete(
            &format!("/v1/accounts/{id}/knowledge/{entry_id}"),
            &other.owner_key,
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;

    let res = app
        .delete(
            &format!("/v1/accounts/{id}/knowledge/{entry_id}"),
            &t.owner_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.count("knowledge_entries").await, 0);
    // The deleted entry no longer answers (the cached index was rebuilt).
    let res = post_safe(
        &app,
        &id,
        &text_xml("请问怎么退货", "6054768590064713741"),
        false,
    )
    .await;
    assert_eq!(res.text().await.unwrap(), "success");
}
both!(knowledge_api_feeds_the_callback_and_is_tenant_scoped);

async fn rules_api_validates_and_feeds_the_callback(app: TestApp) {
    let t = app.tenant("Rules").await;
    let id = app.create_account(&t.owner_key, APP_ID).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad = app
        .post(
            &format!("/v1/accounts/{id}/rules"),
            &t.owner_key,
            &serde_json::json!({"kind": "regex", "pattern": "(营业", "reply": "x"}),
        )
        .send()
        .await
        .unwrap();
    expect_problem(bad, 422).await;
    let res = app
        .post(
            &format!("/v1/accounts/{id}/rules"),
            &t.owner_key,
            &serde_json::json!({"kind": "regex", "pattern": "营业.*时间", "reply": "每天 10:00–22:00。", "priority": 5}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let rule: serde_json::Value = res.json().await.unwrap();
    assert_eq!(rule["kind"], "regex");
    let rule_id = rule["id"].as_str().unwrap().to_owned();

    let res = post_safe(
        &app,
        &id,
        &text_xml("你们营业的时间？", "6054768590064713750"),
        false,
    )
    .await;
    assert_eq!(reply_content(res).await, "每天 10:00–22:00。");

    let other = app.tenant("Other").await;
    let res = app
        .get(&format!("/v1/accounts/{id}/rules"), &other.owner_key)
        .send()
        .await
        .unwrap();
    expect_problem(res, 404).await;
    let page: serde_json::Value = app
        .get(&format!("/v1/accounts/{id}/rules"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let res = app
        .delete(&format!("/v1/accounts/{id}/rules/{rule_id}"), &t.owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.count("keyword_rules").await, 0);
}
both!(rules_api_validates_and_feeds_the_callback);

/// Awkward content both ways: a question with `]]>`, stray control bytes and emoji, and an
/// answer of 700 Chinese characters with `]]>` and emoji, come back as a well-formed,
/// encrypted passive reply within WeChat's 2048 bytes (the first part of the answer).
async fn awkward_content_is_answered_well_formed(app: TestApp) {
    let (tenant, id) = account(&app).await;
    let long: String = "会员积分每满一百可抵一元，".repeat(54);
    let answer = format!("积分规则]]>说明😀：{long}");
    assert!(answer.chars().count() >= 700);
    add_faq(&app, &tenant, &id, "会员积分怎么用", &answer).await;
    let question = "会员积分怎么用]]>\u{1}\u{8}😀？";
    let res = post_safe(&app, &id, &text_xml(question, "7054768590064713728"), false).await;
    let content = reply_content(res).await;
    assert!(content.len() <= 2048, "{} bytes", content.len());
    assert!(content.starts_with("积分规则]]>说明😀："), "{content}");
    assert!(
        answer.starts_with(&content),
        "the reply is the answer's first part"
    );
    // The stored question keeps the follower's text without the control bytes breaking it.
    assert_eq!(app.count("conversation_messages").await, 2);
}
both!(awkward_content_is_answered_well_formed);

/// One account's callback is rate-limited before any work: past the burst, 429 (WeChat
/// retries later) and nothing stored.
async fn callback_floods_are_limited_per_account(backend: Backend) {
    let app = spawn_app_with_worker(backend, |s| {
        s.customer_service.callback_rate_per_sec = 1;
        s.customer_service.callback_burst = 2;
    })
    .await;
    let (_, id) = account(&app).await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let xml = text_xml("你好", &format!("81{n:016}"));
        statuses.push(post_safe(&app, &id, &xml, false).await.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    assert_eq!(app.count("conversation_messages").await, 2);
}
crate::both_backends!(callback_floods_are_limited_per_account);

/// Two api replicas on the same database (and, on Postgres, the same Redis) get the same
/// message at once, as WeChat's retry can land on another replica: one answers it, the
/// other acknowledges, and it is stored once.
async fn two_replicas_answer_a_retried_message_once(app: TestApp) {
    let (tenant, id) = account(&app).await;
    add_faq(
        &app,
        &tenant,
        &id,
        "怎么退货",
        "签收后七天内在订单页申请售后。",
    )
    .await;
    let second = app.second_api().await;
    let xml = text_xml("请问怎么退货？", "9054768590064713728");
    let (a, b) = tokio::join!(
        post_safe_to(&app, &app.address, &id, &xml, false),
        post_safe_to(&app, &second, &id, &xml, false)
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let bodies = [a.text().await.unwrap(), b.text().await.unwrap()];
    let acknowledged = bodies.iter().filter(|b| b.as_str() == "success").count();
    assert_eq!(acknowledged, 1, "{bodies:?}");
    assert_eq!(app.count("conversation_messages").await, 2);
}
both!(two_replicas_answer_a_retried_message_once);

/// An account's own welcome message answers a subscribe, the QR-code scene a follower came
/// through is kept on their conversation, and an empty welcome restores the default.
async fn own_welcome_and_qr_source(app: TestApp) {
    let t = app.tenant("Welcome").await;
    let mut body = account_body(APP_ID);
    body["welcome_message"] = serde_json::json!("欢迎来到 Acme 咖啡！回复“菜单”看看本周新品。");
    let res = app
        .post("/v1/accounts", &t.owner_key, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let account: serde_json::Value = res.json().await.unwrap();
    let id = account["id"].as_str().unwrap().to_owned();
    assert_eq!(account["welcome_message"], body["welcome_message"]);
    let now = Utc::now().timestamp();
    let subscribe = format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\
         <FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>{now}</CreateTime>\
         <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>\
         <EventKey><![CDATA[qrscene_spring2026]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>"
    );
    let res = post_safe(&app, &id, &subscribe, false).await;
    assert_eq!(
        reply_content(res).await,
        "欢迎来到 Acme 咖啡！回复“菜单”看看本周新品。"
    );
    let conversation: serde_json::Value = app
        .get(
            &format!("/v1/accounts/{id}/conversations/{OPENID}"),
            &t.owner_key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conversation["source"], "spring2026", "{conversation}");
    // Too long, or with control characters: refused, nothing changed.
    let res = app
        .client
        .patch(app.url(&format!("/v1/accounts/{id}")))
        .bearer_auth(&t.owner_key)
        .json(&serde_json::json!({"welcome_message": "字".repeat(601)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .patch(app.url(&format!("/v1/accounts/{id}")))
        .bearer_auth(&t.owner_key)
        .json(&serde_json::json!({"welcome_message": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.json::<serde_json::Value>().await.unwrap()["welcome_message"].is_null());
    let again = subscribe.replace(&now.to_string(), &(now + 5).to_string());
    let res = post_safe(&app, &id, &again, false).await;
    assert_eq!(reply_content(res).await, "感谢关注！");
}
both!(own_welcome_and_qr_source);
