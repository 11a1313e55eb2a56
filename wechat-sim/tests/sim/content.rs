//! Drafts, publishing, uploads, followers and tags through the policy wrapper, and
//! the simulator's admin API.

use std::sync::Arc;

use serde_json::{Value, json};
use wxpilot_wechat::{ApiError, DraftArticle, InMemoryTokenStore, TokenManager};
use wxpilot_wechat_sim::{TagCall, UploadKind};

use crate::helpers::{self, APPID, SECRET};

/// Runs `f(client, token)` through the manager's policy.
macro_rules! call {
    ($m:expr, |$c:ident, $t:ident| $body:expr) => {
        $m.call(|$c, $t| async move { $body.await }).await
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_draft_and_publish() {
    let sim = helpers::sim().await;
    let m: TokenManager = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));
    let png = &vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3];

    let image_url = call!(m, |c, t| c.upload_article_image(
        &t,
        "body.png",
        "image/png",
        png.clone()
    ))
    .unwrap();
    assert!(
        image_url.starts_with("http://mmbiz.qpic.cn/"),
        "{image_url}"
    );
    let thumb = call!(m, |c, t| c.add_thumb_material(
        &t,
        "cover.jpg",
        "image/jpeg",
        vec![0xff; 2048]
    ))
    .unwrap();
    let uploads = sim.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[0].kind, UploadKind::ArticleImage);
    assert_eq!(uploads[0].file_name, "body.png");
    assert_eq!(uploads[0].content_type, "image/png");
    assert_eq!(uploads[0].size, 8);
    assert_eq!(uploads[1].kind, UploadKind::Thumb);
    assert_eq!(uploads[1].size, 2048);
    assert_eq!(uploads[1].id, thumb.media_id);

    // A thumb over 64 KB is refused.
    let err = call!(m, |c, t| c.add_thumb_material(
        &t,
        "big.jpg",
        "image/jpeg",
        vec![0; 65 * 1024]
    ))
    .unwrap_err();
    assert_eq!(err.errcode(), Some(40009));

    let article = DraftArticle {
        title: "618 选购指南".into(),
        author: Some("小编".into()),
        digest: Some("摘要".into()),
        content: format!("<p>正文</p><img src=\"{image_url}\">"),
        thumb_media_id: thumb.media_id.clone(),
        need_open_comment: 1,
        ..DraftArticle::default()
    };
    let articles = std::slice::from_ref(&article);
    let media_id = &call!(m, |c, t| c.add_draft(&t, articles)).unwrap();
    let drafts = sim.drafts();
    assert_eq!(drafts.len(), 1);
    assert_eq!(&drafts[0].media_id, media_id);
    assert_eq!(drafts[0].articles[0]["title"], "618 选购指南");
    assert_eq!(drafts[0].articles[0]["need_open_comment"], 1);

    let back = call!(m, |c, t| c.get_draft(&t, media_id)).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].title, article.title);
    assert_eq!(back[0].content, article.content);
    assert!(back[0].url.is_some());

    // An unknown thumb is refused.
    let bad = &[DraftArticle {
        thumb_media_id: "nope".into(),
        ..article.clone()
    }];
    let err = call!(m, |c, t| c.add_draft(&t, bad)).unwrap_err();
    assert_eq!(err.errcode(), Some(40007));

    let submitted = call!(m, |c, t| c.submit_publish(&t, media_id)).unwrap();
    let publish_id = &submitted.publish_id;
    let publishes = sim.publishes();
    assert_eq!(publishes.len(), 1);
    assert_eq!(publishes[0].publish_id, submitted.publish_id);
    assert_eq!(&publishes[0].media_id, media_id);
    let status = call!(m, |c, t| c.get_publish(&t, publish_id)).unwrap();
    assert_eq!(status.publish_status, 0);
    assert_eq!(
        status.article_id.as_deref(),
        Some(publishes[0].article_id.as_str())
    );
    let detail = status.article_detail.unwrap();
    assert_eq!(detail.count, 1);
    assert_eq!(detail.item[0].idx, 1);
    assert!(status.fail_idx.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_and_tags() {
    let sim = helpers::sim().await;
    let m = helpers::manager(&sim, Arc::new(InMemoryTokenStore::new()));
    for o in ["o-a", "o-b", "o-c"] {
        sim.follower_subscribes(APPID, o).await.unwrap();
    }
    let page = call!(m, |c, t| c.user_list(&t, None)).unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.openids, vec!["o-a", "o-b", "o-c"]);
    assert_eq!(page.next_openid, "o-c");
    let rest = call!(m, |c, t| c.user_list(&t, Some("o-c"))).unwrap();
    assert!(rest.openids.is_empty());
    assert_eq!(rest.next_openid, "");

    let tag = call!(m, |c, t| c.create_tag(&t, "高价值")).unwrap();
    assert_eq!(tag.name, "高价值");
    assert_eq!(tag.id, 100);
    let err = call!(m, |c, t| c.create_tag(&t, "高价值")).unwrap_err();
    assert_eq!(err.errcode(), Some(45157));

    let members = &vec!["o-a".to_owned(), "o-c".to_owned()];
    let tag_id = tag.id;
    call!(m, |c, t| c.batch_tag(&t, tag_id, members)).unwrap();
    let info = call!(m, |c, t| c.user_info(&t, "o-c", "zh_CN")).unwrap();
    assert_eq!(info.subscribe, 1);
    assert_eq!(info.tagid_list, vec![100]);
    let info = call!(m, |c, t| c.user_info(&t, "o-b", "zh_CN")).unwrap();
    assert!(info.tagid_list.is_empty());
    assert_eq!(
        sim.tag_calls(),
        vec![
            TagCall::Create {
                appid: APPID.into(),
                id: 100,
                name: "高价值".into()
            },
            TagCall::BatchTag {
                appid: APPID.into(),
                tag_id: 100,
                openids: members.clone()
            },
        ]
    );

    // More than 50 at once is refused by the client before sending.
    let many: &Vec<String> = &(0..51).map(|i| format!("o-{i}")).collect();
    let before = sim.calls_to("/cgi-bin/tags/members/batchtagging");
    let err = call!(m, |c, t| c.batch_tag(&t, tag_id, many)).unwrap_err();
    assert!(matches!(err, ApiError::InvalidRequest(_)), "{err:?}");
    assert_eq!(sim.calls_to("/cgi-bin/tags/members/batchtagging"), before);
    let err = call!(m, |c, t| c.user_info(&t, "o-unknown", "zh_CN")).unwrap_err();
    assert_eq!(err.errcode(), Some(40003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_drives_a_command_line_simulator() {
    let sim = helpers::sim().await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let status = http
        .post(format!("{base}/_sim/accounts"))
        .json(&json!({
            "appid": "wxadmin000000001", "secret": "s2", "token": "t2",
            "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
        }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let report: Value = http
        .post(format!("{base}/_sim/followers/say"))
        .json(&json!({"appid": "wxadmin000000001", "openid": "o-1", "text": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["attempts"], json!([]));
    assert_eq!(report["reply"], "NoAnswer");

    let client = wxpilot_wechat::ApiClient::new(&base).unwrap();
    let token = client
        .fetch_access_token("wxadmin000000001", "s2")
        .await
        .unwrap();
    client
        .send_custom_message(
            &token.access_token,
            &wxpilot_wechat::CustomMessage::text("o-1", "hello"),
        )
        .await
        .unwrap();
    let sent: Value = http
        .get(format!("{base}/_sim/sent"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent[0]["content"], "hello");
    let advanced: Value = http
        .post(format!("{base}/_sim/clock/advance"))
        .json(&json!({"seconds": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(advanced["now_ms"], helpers::START_MS + 60_000);

    // Unknown paths answer 404 with an errcode; a secret never appears in errors.
    let err = client
        .fetch_access_token("wxadmin000000001", "wrong-secret-value")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("wrong-secret-value"));
    let unknown = http
        .get(format!("{base}/cgi-bin/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let _ = SECRET;
}
