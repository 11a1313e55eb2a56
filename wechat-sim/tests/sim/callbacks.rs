//! Callback delivery: signed and encrypted like WeChat, retried when late, three
//! deliveries in all; `success` stops the retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wxpilot_wechat::{
    MessageCrypt, MessageKind, PassiveReply, ReplyBody, XmlLimits, parse_envelope, parse_message,
    verify_url_signature,
};
use wxpilot_wechat_sim::{AttemptOutcome, CallbackMode, ReplyOutcome};

use crate::helpers::{self, AES_KEY, APPID, TOKEN};

/// One request the callback server received.
#[derive(Debug, Clone)]
struct Received {
    query: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn param(&self, key: &str) -> &str {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.query))
    }
}

/// How the test server answers the nth request (from 0): after a delay, with a body.
type Answer = Arc<dyn Fn(usize, &Received) -> (Duration, String) + Send + Sync>;

/// A minimal HTTP/1.1 server on 127.0.0.1 recording every request.
async fn callback_server(answer: Answer) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wechat/acct-1", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&log);
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let Some(request) = read_request(&mut socket).await else {
                    return;
                };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                let (delay, body) = answer(n, &request);
                tokio::time::sleep(delay).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                // The simulator may have hung up already (a late answer).
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, received)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let target = head.lines().next()?.split(' ').nth(1)?.to_owned();
    let query = target
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Some(Received {
        query,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn crypt() -> MessageCrypt {
    MessageCrypt::new(TOKEN, AES_KEY, APPID).unwrap()
}

/// Verifies a delivery as the callback endpoint must, returning the decrypted XML.
fn verify_and_decrypt(r: &Received) -> String {
    let (ts, nonce) = (r.param("timestamp"), r.param("nonce"));
    assert!(verify_url_signature(TOKEN, ts, nonce, r.param("signature")));
    assert_eq!(r.param("encrypt_type"), "aes");
    let envelope = parse_envelope(r.body.as_bytes(), &XmlLimits::default()).unwrap();
    assert_eq!(
        envelope.to_user_name.as_deref(),
        Some("gh_49f0ab532d5d035a")
    );
    crypt()
        .decrypt_message(r.param("msg_signature"), ts, nonce, &envelope.encrypt)
        .expect("msg_signature verifies and the appid matches")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_answers_are_retried_three_deliveries_in_all() {
    let sim = helpers::sim().await;
    // The simulator gives up after 500 ms; the first two answers take 1.2 s.
    let (url, received) = callback_server(Arc::new(|n, _| {
        if n < 2 {
            (Duration::from_millis(1200), "success".into())
        } else {
            (Duration::ZERO, "success".into())
        }
    }))
    .await;
    sim.set_callback(APPID, &url, CallbackMode::Safe).unwrap();

    let report = sim
        .follower_says(APPID, "o-follower-1", "有优惠吗？😀")
        .await
        .unwrap();
    assert_eq!(report.deliveries(), 3);
    assert_eq!(report.attempts[0].outcome, AttemptOutcome::TimedOut);
    assert_eq!(report.attempts[1].outcome, AttemptOutcome::TimedOut);
    assert_eq!(
        report.attempts[2].outcome,
        AttemptOutcome::Answered {
            status: 200,
            body: "success".into()
        }
    );
    assert_eq!(report.reply, ReplyOutcome::Acknowledged);
    let numbers: Vec<u32> = report.attempts.iter().map(|a| a.number).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    // Each late delivery waited the full timeout before the next began.
    assert!(report.attempts[0].elapsed >= Duration::from_millis(500));
    assert!(report.attempts[2].started_after >= Duration::from_millis(1000));
    assert!(report.attempts[2].elapsed < Duration::from_millis(500));

    // The server saw three deliveries of the same message, each verifiable.
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let mut msg_ids = Vec::new();
    for r in &got {
        let xml = verify_and_decrypt(r);
        let msg = parse_message(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(msg.from_user_name, "o-follower-1");
        assert_eq!(r.param("openid"), "o-follower-1");
        assert!(matches!(msg.kind, MessageKind::Text { ref content } if content == "有优惠吗？😀"));
        assert_eq!(msg.create_time, helpers::START_MS / 1000);
        msg_ids.push(msg.msg_id.clone().unwrap());
    }
    assert!(msg_ids.iter().all(|id| *id == msg_ids[0]));
    assert_eq!(sim.deliveries().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_in_time_stops_retries_and_no_answer_gives_up_after_three() {
    let sim = helpers::sim().await;
    let (url, received) =
        callback_server(Arc::new(|_, _| (Duration::ZERO, "success".into()))).await;
    sim.set_callback(APPID, &url, CallbackMode::Safe).unwrap();
    let report = sim.follower_says(APPID, "o-2", "hi").await.unwrap();
    assert_eq!(report.deliveries(), 1);
    assert_eq!(report.reply, ReplyOutcome::Acknowledged);
    assert_eq!(received.lock().unwrap().len(), 1);

    // Always late: three deliveries, then WeChat gives up.
    let (url, received) = callback_server(Arc::new(|_, _| {
        (Duration::from_millis(1200), String::new())
    }))
    .await;
    sim.set_callback(APPID, &url, CallbackMode::Safe).unwrap();
    let report = sim.follower_says(APPID, "o-2", "anyone?").await.unwrap();
    assert_eq!(report.deliveries(), 3);
    assert!(
        report
            .attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::TimedOut)
    );
    assert_eq!(report.reply, ReplyOutcome::NoAnswer);
    assert_eq!(received.lock().unwrap().len(), 3);

    // Nobody listening: connection failures are retried too.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/cb", l.local_addr().unwrap())
    };
    sim.set_callback(APPID, &dead, CallbackMode::Safe).unwrap();
    let report = sim.follower_says(APPID, "o-2", "hello?").await.unwrap();
    assert_eq!(report.deliveries(), 3);
    assert!(
        report
            .attempts
            .iter()
            .all(|a| matches!(a.outcome, AttemptOutcome::Failed(_)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_passive_reply_is_verified_and_decrypted() {
    let sim = helpers::sim().await;
    let (url, _received) = callback_server(Arc::new(|_, r: &Received| {
        let xml = verify_and_decrypt(r);
        let msg = parse_message(xml.as_bytes(), &XmlLimits::default()).unwrap();
        let reply = PassiveReply::to_message(
            &msg,
            msg.create_time,
            ReplyBody::Text {
                content: "您好，有的！".into(),
            },
        )
        .to_xml()
        .unwrap();
        let envelope = crypt()
            .encrypt_reply(&reply, r.param("timestamp"), r.param("nonce"))
            .unwrap();
        (Duration::ZERO, envelope.to_xml())
    }))
    .await;
    sim.set_callback(APPID, &url, CallbackMode::Safe).unwrap();
    let report = sim.follower_says(APPID, "o-3", "有优惠吗").await.unwrap();
    assert_eq!(report.deliveries(), 1);
    let ReplyOutcome::Reply(xml) = &report.reply else {
        panic!("expected a reply, got {:?}", report.reply);
    };
    let reply = parse_message(xml.as_bytes(), &XmlLimits::default()).unwrap();
    assert_eq!(reply.to_user_name, "o-3");
    assert!(matches!(reply.kind, MessageKind::Text { ref content } if content == "您好，有的！"));

    // Plain mode: the message in clear, no msg_signature.
    let (url, received) = callback_server(Arc::new(|_, _| (Duration::ZERO, String::new()))).await;
    sim.set_callback(APPID, &url, CallbackMode::Plain).unwrap();
    let report = sim.follower_says(APPID, "o-3", "plain").await.unwrap();
    assert_eq!(report.reply, ReplyOutcome::Acknowledged);
    let r = received.lock().unwrap()[0].clone();
    assert!(r.query.iter().all(|(k, _)| k != "msg_signature"));
    let msg = parse_message(r.body.as_bytes(), &XmlLimits::default()).unwrap();
    assert!(matches!(msg.kind, MessageKind::Text { ref content } if content == "plain"));
}
