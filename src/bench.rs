//! `wxpilot bench wechat`: the per-message protocol work of a callback on one core —
//! verify the signature, decrypt, parse, build a passive reply, encrypt it — timed over
//! messages prepared in advance.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use wxpilot_wechat::{
    MessageCrypt, PassiveReply, ReplyBody, XmlLimits, parse_envelope, parse_message,
};

/// The figures.
#[derive(Debug, Serialize)]
pub struct WechatBenchReport {
    /// Messages processed.
    pub messages: usize,
    /// Messages per second on one core.
    pub messages_per_s: f64,
    /// Mean time per message, microseconds.
    pub mean_us: f64,
}

const TOKEN: &str = "spamtest";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wx2c2769f8efd9abc2";

fn inbound(i: usize) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oFollower{i:06}]]></FromUserName>\
         <CreateTime>1764800000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[营业时间是几点？ question {i}]]></Content>\
         <MsgId>{}</MsgId></xml>",
        7_000_000_000_000_000_000u64 + i as u64
    )
}

/// Runs the benchmark over `messages` messages (one thread).
pub fn run(messages: usize) -> anyhow::Result<WechatBenchReport> {
    let crypt = MessageCrypt::new(TOKEN, AES_KEY, APPID).map_err(|e| anyhow::anyhow!("{e}"))?;
    let limits = XmlLimits::default();
    // What WeChat would send: safe-mode envelopes with their msg_signature.
    let prepared: Vec<(String, String)> = (0..messages)
        .map(|i| {
            let sealed = crypt.encrypt_reply(&inbound(i), "1764800000", "nonce123").map_err(|e| anyhow::anyhow!("{e}"))?;
            let body = format!(
                "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
                sealed.encrypt
            );
            Ok((body, sealed.msg_signature))
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let mut bytes_out = 0usize;
    for (body, signature) in &prepared {
        let envelope = parse_envelope(body.as_bytes(), &limits).context("envelope")?;
        let plain = crypt
            .decrypt_message(signature, "1764800000", "nonce123", &envelope.encrypt)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let message = parse_message(plain.as_bytes(), &limits).context("message")?;
        let reply = PassiveReply::to_message(
            &message,
            1_764_800_001,
            ReplyBody::Text {
                content: "您好，我们的营业时间是每天 9:00–21:00。".to_owned(),
            },
        )
        .to_xml()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let sealed = crypt
            .encrypt_reply(&reply, "1764800001", "nonce456")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        bytes_out += sealed.to_xml().len();
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    anyhow::ensure!(bytes_out > 0, "no replies were built");
    Ok(WechatBenchReport {
        messages,
        messages_per_s: messages as f64 / elapsed,
        mean_us: elapsed * 1e6 / messages.max(1) as f64,
    })
}
