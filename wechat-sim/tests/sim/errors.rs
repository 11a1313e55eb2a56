//! errcodes the caller must handle: quota, reply window, message count, unverified
//! accounts, IP whitelist — each reported as its kind, none retried.

use std::sync::Arc;
use std::time::Duration;

use wxpilot_wechat::{ApiClient, ApiError, CustomMessage, InMemoryTokenStore, TokenManager};

use crate::helpers::{self, AES_KEY, APPID, SECRET, SEND, TOKEN};

async fn send(m: &TokenManager, to: &str, text: &str) -> Result<(), ApiError> {
    let message = &CustomMessage::text(to, text);
    m.call(|c, t| async move { c.send_custom_message(&t, message).await })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_45009_stops_at_once_and_flags_the_api() {
    let sim = helpers::sim().await;
    let m = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));
    sim.set_daily_quota(APPID, SEND, Some(2)).unwrap();
    sim.follower_says(APPID, "o-follower", "你好")
        .await
        .unwrap();

    send(&m, "o-follower", "one").await.unwrap();
    send(&m, "o-follower", "two").await.unwrap();
    assert_eq!(sim.calls_to(SEND), 2);
    let err = send(&m, "o-follower", "three").await.unwrap_err();
    assert_eq!(
        err,
        ApiError::QuotaExceeded {
            api: SEND.into(),
            message: "reach max api daily quota limit".into()
        }
    );
    assert_eq!(sim.calls_to(SEND), 3, "no retry after 45009");
    assert!(m.quota_exhausted(SEND));
    assert_eq!(m.quota_flags(), vec![SEND.to_owned()]);
    assert!(!m.quota_exhausted("/cgi-bin/user/get"));
    assert_eq!(sim.sent_messages().len(), 2);

    // The quota resets with the (China) day; the 48 h window is still open.
    sim.advance(Duration::from_secs(24 * 3600));
    m.clear_quota_flags();
    send(&m, "o-follower", "next day").await.unwrap();
    assert_eq!(sim.sent_messages().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_service_rules_are_reported_as_their_kinds() {
    let sim = helpers::sim().await;
    let m = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));

    // A follower who never wrote: no window.
    sim.add_follower(APPID, "o-silent").unwrap();
    let err = send(&m, "o-silent", "hi").await.unwrap_err();
    assert!(
        matches!(err, ApiError::ReplyWindowExpired { .. }),
        "{err:?}"
    );
    assert_eq!(err.errcode(), Some(45015));

    // Five per window, then 45047.
    sim.follower_says(APPID, "o-chatty", "question")
        .await
        .unwrap();
    for i in 0..5 {
        send(&m, "o-chatty", &format!("answer {i}")).await.unwrap();
    }
    let err = send(&m, "o-chatty", "sixth").await.unwrap_err();
    assert!(matches!(err, ApiError::TooManyMessages { .. }), "{err:?}");
    let sent = sim.sent_messages();
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[4].content.as_deref(), Some("answer 4"));
    assert_eq!(sent[0].touser, "o-chatty");
    assert_eq!(sent[0].msgtype, "text");

    // A new follower message opens a new window.
    sim.advance(Duration::from_secs(3600));
    sim.follower_says(APPID, "o-chatty", "again").await.unwrap();
    send(&m, "o-chatty", "welcome back").await.unwrap();
    // 48 h after their last message the window closes.
    sim.advance(Duration::from_secs(48 * 3600 - 1));
    send(&m, "o-chatty", "just in time").await.unwrap();
    sim.advance(Duration::from_secs(1));
    let err = send(&m, "o-chatty", "too late").await.unwrap_err();
    assert!(
        matches!(err, ApiError::ReplyWindowExpired { .. }),
        "{err:?}"
    );
    assert_eq!(sim.sent_messages().len(), 7);
    // Every refusal was a single call.
    assert_eq!(sim.calls_to(SEND), 1 + 6 + 2 + 1);

    // Unverified accounts have no customer-service API.
    sim.register_account("wxunverified00001", SECRET, TOKEN, AES_KEY, false)
        .unwrap();
    let u = helpers::manager_for(
        &sim,
        Arc::new(InMemoryTokenStore::new()),
        wxpilot_wechat::AccountCredentials::new("wxunverified00001", SECRET),
    );
    sim.follower_says("wxunverified00001", "o-x", "hello")
        .await
        .unwrap();
    let err = send(&u, "o-x", "hi").await.unwrap_err();
    assert!(matches!(err, ApiError::NotAuthorised { .. }), "{err:?}");
    assert_eq!(sim.sent_messages().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_not_whitelisted_and_news_messages() {
    let sim = helpers::sim().await;
    sim.set_ip_blocked(APPID, true).unwrap();
    let client = ApiClient::new(sim.base_url()).unwrap();
    let err = client.fetch_access_token(APPID, SECRET).await.unwrap_err();
    assert!(
        matches!(err, ApiError::IpNotWhitelisted { ref message } if message.contains("127.0.0.1")),
        "{err:?}"
    );
    let m = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));
    let err = send(&m, "o", "x").await.unwrap_err();
    assert!(matches!(err, ApiError::IpNotWhitelisted { .. }), "{err:?}");
    sim.set_ip_blocked(APPID, false).unwrap();

    sim.follower_says(APPID, "o-news", "推荐一下")
        .await
        .unwrap();
    let article = wxpilot_wechat::CustomNewsArticle {
        title: "双十一攻略".into(),
        description: "d".into(),
        url: "https://example.com/a".into(),
        picurl: "https://example.com/p.jpg".into(),
    };
    let message = &CustomMessage::news("o-news", article);
    m.call(|c, t| async move { c.send_custom_message(&t, message).await })
        .await
        .unwrap();
    let sent = sim.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].msgtype, "news");
    assert_eq!(sent[0].body["news"]["articles"][0]["title"], "双十一攻略");
}
