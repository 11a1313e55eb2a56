//! The customer-service bot against the WeChat simulator (safe mode), on SQLite and on
//! Postgres/Redis: a question the knowledge base cannot answer goes to a slow model once
//! however often WeChat redelivers it and arrives as one customer-service message; an
//! unverified account (or one WeChat answers 48001) gets the answer as the passive reply
//! to the next message; 45015 and 45047 are recorded without a retry loop; handoff pauses
//! the bot, agents' messages are sent and stored, resuming brings the bot back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxpilot_inference::testing::ScriptedBackend;
use wxpilot_inference::{Backend as ModelBackend, Router, RoutingConfig};
use wxpilot_wechat_sim::{CallbackMode, ReplyOutcome, SimConfig, SimHandle, Simulator};

use crate::both_backends;
use crate::helpers::*;

const APP_ID: &str = "wx3e4f5a6b7c8d9e0f";
const OPENID: &str = "oFollower00000000000000000001";
const ANSWER: &str = "会员积分在“我的-积分商城”里兑换，100积分抵1元。";
const SEND: &str = "/cgi-bin/message/custom/send";

struct Bot {
    app: TestApp,
    sim: SimHandle,
    model: Arc<ScriptedBackend>,
    key: String,
    account: String,
}

async fn bot(backend: Backend, verified: bool, model: ScriptedBackend) -> Bot {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.register_account(APP_ID, APP_SECRET, "spamtest", AES_KEY, verified)
        .unwrap();
    let model = Arc::new(model);
    let local: Arc<dyn ModelBackend> = model.clone();
    let base = sim.base_url();
    let app = spawn_app_with_services(
        backend,
        move |s| s.wechat.api_base_url = base,
        Box::new(move |settings, secrets| {
            let mut services =
                wxpilot_worker::Services::without_models(settings, secrets).expect("services");
            services.inference = Arc::new(Router::new(Some(local), None, RoutingConfig::default()));
            services
        }),
    )
    .await;
    let t = app.tenant("Support").await;
    let mut body = account_body(APP_ID);
    body["verified"] = json!(verified);
    let res = app
        .post("/v1/accounts", &t.owner_key, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let account = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.set_callback(
        APP_ID,
        &app.url(&format!("/wechat/{account}")),
        CallbackMode::Safe,
    )
    .unwrap();
    Bot {
        app,
        sim,
        model,
        key: t.owner_key,
        account,
    }
}

impl Bot {
    /// The follower writes; the passive reply's text (`None` for `success`). Every
    /// delivery must be answered, well inside WeChat's 5 s.
    async fn says(&self, text: &str) -> Option<String> {
        let report = self.sim.follower_says(APP_ID, OPENID, text).await.unwrap();
        passive_text(&report)
    }

    async fn conversation(&self) -> Value {
        let res = self
            .app
            .get(
                &format!("/v1/accounts/{}/conversations/{OPENID}", self.account),
                &self.key,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn messages(&self) -> Vec<Value> {
        let res = self
            .app
            .get(
                &format!(
                    "/v1/accounts/{}/conversations/{OPENID}/messages?limit=200",
                    self.account
                ),
                &self.key,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until `done` holds for the conversation (the reply job ran).
    async fn until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.conversation().await;
            if done(&c) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {c}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the first `embed_knowledge` job to succeed; its result.
    async fn until_embedded(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let jobs: Value = self
                .app
                .get("/v1/jobs?kind=embed_knowledge", &self.key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if jobs["items"][0]["status"] == "succeeded" {
                return jobs["items"][0]["result"].clone();
            }
            assert!(Instant::now() < deadline, "no embedding: {jobs}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn until_sent(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.sim.sent_messages().len() < n {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} customer-service messages"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The text of a delivery's passive reply; panics on a missing or invalid answer or one
/// slower than the callback budget.
fn passive_text(report: &wxpilot_wechat_sim::DeliveryReport) -> Option<String> {
    assert_eq!(report.attempts.len(), 1, "WeChat had to retry: {report:?}");
    assert!(
        report.attempts[0].elapsed < Duration::from_millis(4_500),
        "{report:?}"
    );
    match &report.reply {
        ReplyOutcome::Acknowledged => None,
        ReplyOutcome::Reply(xml) => {
            let start = xml.find("<Content><![CDATA[").unwrap() + "<Content><![CDATA[".len();
            let end = xml[start..].find("]]></Content>").unwrap() + start;
            Some(xml[start..end].to_owned())
        }
        other => panic!("unusable answer: {other:?}"),
    }
}

async fn one_answer_however_often_redelivered(backend: Backend) {
    let model = ScriptedBackend::new("local")
        .with_delay(Duration::from_secs(3))
        .reply(ANSWER);
    let b = bot(backend, true, model).await;
    // Nothing in the knowledge base: the model answers, after the HTTP answer.
    let report = b
        .sim
        .follower_says(APP_ID, OPENID, "会员积分怎么兑换？")
        .await
        .unwrap();
    assert_eq!(passive_text(&report), None);
    // WeChat delivers the same message (same MsgId) twice more while the model works.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let again = b
            .sim
            .deliver_xml(APP_ID, &report.message_xml)
            .await
            .unwrap();
        assert_eq!(passive_text(&again), None);
    }
    b.until_sent(1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let sent = b.sim.sent_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].touser, OPENID);
    assert_eq!(sent[0].content.as_deref(), Some(ANSWER));
    assert_eq!(b.model.generate_calls(), 1);
    let messages = b.messages().await;
    let kinds: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap(),
                m["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, vec![("in", "text"), ("out", "customer_service")]);
    assert_eq!(messages[1]["content"], ANSWER);
    // The model saw the question.
    let request = &b.model.requests()[0];
    assert!(
        request
            .messages
            .last()
            .is_some_and(|m| m.content.contains("会员积分怎么兑换")),
        "{request:?}"
    );
}
both_backends!(one_answer_however_often_redelivered);

async fn unverified_accounts_answer_on_the_next_message(backend: Backend) {
    let b = bot(backend, false, ScriptedBackend::new("local").reply(ANSWER)).await;
    let notice = b.says("会员积分怎么兑换？").await.unwrap();
    assert!(notice.contains("正在为您查询"), "{notice}");
    b.until("the pending answer", |c| c["pending_reply"] == ANSWER)
        .await;
    let next = b.says("好的").await.unwrap();
    assert!(next.starts_with(ANSWER), "{next}");
    assert!(b.sim.sent_messages().is_empty());
    assert_eq!(b.sim.calls_to(SEND), 0);
    let c = b.conversation().await;
    assert!(c["pending_reply"].is_null(), "{c}");
}
both_backends!(unverified_accounts_answer_on_the_next_message);

async fn refusals_are_recorded_not_retried(backend: Backend) {
    let model = ScriptedBackend::new("local")
        .reply(ANSWER)
        .reply("第二个答案")
        .reply("第三个答案");
    let b = bot(backend, true, model).await;
    // 48001: the account lost the customer-service API; the answer waits for the next message.
    b.sim.inject_errcode(SEND, 48001, 1);
    assert_eq!(b.says("会员积分怎么兑换？").await, None);
    b.until("48001 fallback", |c| c["pending_reply"] == ANSWER)
        .await;
    let next = b.says("在吗").await;
    assert!(next.is_some_and(|n| n.starts_with(ANSWER)));
    // The reply to "在吗" itself (the second answer) goes out normally.
    b.until_sent(1).await;

    // 45015: recorded on the conversation, one call, no retry loop.
    let calls = b.sim.calls_to(SEND);
    b.sim.inject_errcode(SEND, 45015, 1);
    assert_eq!(b.says("还有别的问题").await, None);
    b.until("the refusal", |c| {
        c["last_send_error"]
            .as_str()
            .is_some_and(|e| e.contains("45015"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.sim.calls_to(SEND), calls + 1, "retried after 45015");
    let messages = b.messages().await;
    let failed = messages.last().unwrap();
    assert_eq!(failed["kind"], "send_failed");
    assert_eq!(failed["content"], "第三个答案");
}
both_backends!(refusals_are_recorded_not_retried);

async fn too_many_messages_are_recorded(backend: Backend) {
    let b = bot(backend, true, ScriptedBackend::new("local").reply(ANSWER)).await;
    b.sim.inject_errcode(SEND, 45047, 1);
    assert_eq!(b.says("会员积分怎么兑换？").await, None);
    let c = b
        .until("the refusal", |c| {
            c["last_send_error"]
                .as_str()
                .is_some_and(|e| e.contains("45047"))
        })
        .await;
    assert!(c["pending_reply"].is_null(), "{c}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.sim.calls_to(SEND), 1);
    assert!(b.sim.sent_messages().is_empty());
}
both_backends!(too_many_messages_are_recorded);

async fn handoff_pauses_the_bot_for_agents(backend: Backend) {
    let b = bot(backend, true, ScriptedBackend::new("local").reply(ANSWER)).await;
    let handoff = b.says("转人工客服").await.unwrap();
    assert!(handoff.contains("人工客服"), "{handoff}");
    let c = b.conversation().await;
    assert_eq!(c["needs_agent"], true, "{c}");
    // While paused the bot stays quiet: no model call, `success` to WeChat.
    assert_eq!(b.says("会员积分怎么兑换？").await, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.model.generate_calls(), 0);

    // An agent answers through the API.
    let path = format!("/v1/accounts/{}/conversations/{OPENID}/messages", b.account);
    let res = b
        .app
        .post(
            &path,
            &b.key,
            &json!({"text": "您好，我是客服小李，积分可在积分商城兑换。"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    b.until_sent(1).await;
    let sent = b.sim.sent_messages();
    assert_eq!(
        sent[0].content.as_deref(),
        Some("您好，我是客服小李，积分可在积分商城兑换。")
    );
    let messages = b.messages().await;
    assert_eq!(messages.last().unwrap()["kind"], "customer_service");
    let res = b
        .app
        .post(&path, &b.key, &json!({"text": "   "}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    // Resuming brings the bot back.
    let res = b
        .app
        .post(
            &format!("/v1/accounts/{}/conversations/{OPENID}/resume", b.account),
            &b.key,
            &json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["needs_agent"], false);
    assert_eq!(b.says("会员积分怎么兑换？").await, None);
    b.until_sent(2).await;
    assert_eq!(b.model.generate_calls(), 1);

    // Another tenant sees no conversation and cannot send.
    let other = b.app.tenant("Other").await;
    let res = b
        .app
        .get(
            &format!("/v1/accounts/{}/conversations", b.account),
            &other.owner_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = b
        .app
        .post(&path, &other.owner_key, &json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(b.sim.sent_messages().len(), 2);
}
both_backends!(handoff_pauses_the_bot_for_agents);

/// A small model that answers with its own instructions (the local 135M model does) must not
/// show them to the follower: the echoed lines are dropped, and an answer with nothing else
/// in it becomes the fallback reply.
async fn an_echoed_prompt_is_never_sent(backend: Backend) {
    let echo = "Answer only from the provided knowledge, in plain text, briefly.";
    let b = bot(
        backend,
        true,
        ScriptedBackend::new("local").reply(format!("{echo}\n资料：（没有找到相关资料）")),
    )
    .await;
    assert_eq!(b.says("你们有燕麦拿铁吗？").await, None);
    b.until_sent(1).await;
    let sent = b.sim.sent_messages();
    let text = sent[0].content.clone().unwrap();
    assert_eq!(
        text,
        wxpilot_core::Settings::default()
            .customer_service
            .fallback_reply
    );
    assert!(!text.contains("provided knowledge"));
}
both_backends!(an_echoed_prompt_is_never_sent);

/// A document added through the API grounds the model's answer; an FAQ answer edited
/// through the API is the next passive reply (every replica's cached index notices).
async fn documents_ground_answers_and_edits_apply_at_once(backend: Backend) {
    let b = bot(backend, true, ScriptedBackend::new("local").reply(ANSWER)).await;
    let knowledge = format!("/v1/accounts/{}/knowledge", b.account);
    let res = b
        .app
        .post(
            &format!("{knowledge}/documents"),
            &b.key,
            &json!({"title": "饮品说明", "text": "## 牛奶\n所有门店的拿铁都可以免费换成燕麦奶或豆奶。"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(b.says("拿铁可以换燕麦奶吗？").await, None);
    b.until_sent(1).await;
    let prompt = &b.model.requests()[0].messages[0].content;
    assert!(prompt.contains("免费换成燕麦奶"), "{prompt}");
    assert!(prompt.contains("饮品说明"), "{prompt}");

    let entry: Value = b
        .app
        .post(
            &knowledge,
            &b.key,
            &json!({"question": "几点开门", "answer": "早上七点。"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b.says("几点开门").await.as_deref(), Some("早上七点。"));
    let res = b
        .app
        .patch(
            &format!("{knowledge}/{}", entry["id"].as_str().unwrap()),
            &b.key,
            &json!({"answer": "早上七点半。"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(b.says("几点开门").await.as_deref(), Some("早上七点半。"));
}
both_backends!(documents_ground_answers_and_edits_apply_at_once);

/// With an embedding model, entries are embedded by a job the write queued, and the
/// question's vector retrieves a passage that shares no word with it: the model's prompt is
/// grounded in it. An unrelated vector retrieves nothing.
async fn embeddings_retrieve_what_words_miss(backend: Backend) {
    use wxpilot_inference::testing::ScriptedEmbedding;
    let model = ScriptedBackend::new("local")
        .with_models("scripted-chat", "multilingual-e5-small")
        .reply(ANSWER)
        .reply(ANSWER);
    let near = vec![0.99, 0.1, 0.0, 0.0];
    let far = vec![0.0, 0.0, 1.0, 0.0];
    for vectors in [
        vec![vec![1.0, 0.0, 0.0, 0.0]],
        vec![near.clone()],
        vec![near.clone()],
        vec![far.clone()],
        vec![far.clone()],
    ] {
        model.push_embedding(ScriptedEmbedding::Vectors(vectors));
    }
    let b = bot(backend, true, model).await;
    let res = b
        .app
        .post(
            &format!("/v1/accounts/{}/knowledge/documents", b.account),
            &b.key,
            &json!({"title": "饮品说明", "text": "所有门店的拿铁都可以免费换成燕麦奶或豆奶。"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // The write queued the embedding job; wait for it.
    assert_eq!(b.until_embedded().await["embedded"], 1);
    let entries: Value = b
        .app
        .get(&format!("/v1/accounts/{}/knowledge", b.account), &b.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entries["items"].as_array().unwrap().len(), 1);

    assert_eq!(b.says("有没有不含乳糖的选择？").await, None);
    b.until_sent(1).await;
    let prompt = &b.model.requests()[0].messages[0].content;
    assert!(
        prompt.contains("燕麦奶"),
        "grounded by the vector: {prompt}"
    );

    assert_eq!(b.says("明天会下雨吗？").await, None);
    b.until_sent(2).await;
    let prompt = &b.model.requests()[1].messages[0].content;
    assert!(
        !prompt.contains("燕麦奶"),
        "an unrelated question: {prompt}"
    );
    // Two questions, each embedded by the callback and by the reply job, after the entry.
    assert_eq!(b.model.embed_calls(), 5);
}
both_backends!(embeddings_retrieve_what_words_miss);

/// The fallback for an English question is English.
async fn an_english_question_gets_the_english_fallback(backend: Backend) {
    let echo = "Answer only from the Knowledge below and invent nothing.";
    let b = bot(backend, true, ScriptedBackend::new("local").reply(echo)).await;
    assert_eq!(b.says("Do you have oat milk?").await, None);
    b.until_sent(1).await;
    let text = b.sim.sent_messages()[0].content.clone().unwrap();
    assert_eq!(
        text,
        wxpilot_core::Settings::default()
            .customer_service
            .fallback_reply_en
    );
}
both_backends!(an_english_question_gets_the_english_fallback);

/// A question vector the index cannot use (all zeros) leaves the lexical decision
/// standing: the question still reaches the model and the follower gets an answer.
async fn an_unusable_question_vector_falls_back_to_bm25(backend: Backend) {
    use wxpilot_inference::testing::ScriptedEmbedding;
    let model = ScriptedBackend::new("local")
        .with_models("scripted-chat", "multilingual-e5-small")
        .reply(ANSWER);
    model.push_embedding(ScriptedEmbedding::Vectors(vec![vec![1.0, 0.0, 0.0, 0.0]]));
    model.push_embedding(ScriptedEmbedding::Vectors(vec![vec![0.0; 4]]));
    model.push_embedding(ScriptedEmbedding::Vectors(vec![vec![0.0; 4]]));
    let b = bot(backend, true, model).await;
    let res = b
        .app
        .post(
            &format!("/v1/accounts/{}/knowledge", b.account),
            &b.key,
            &json!({"question": "几点开门", "answer": "早上七点。"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(b.until_embedded().await["embedded"], 1);
    assert_eq!(b.says("会员积分怎么兑换？").await, None);
    b.until_sent(1).await;
    assert_eq!(b.sim.sent_messages()[0].content.as_deref(), Some(ANSWER));
}
both_backends!(an_unusable_question_vector_falls_back_to_bm25);
