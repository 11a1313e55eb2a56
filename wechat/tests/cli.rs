//! The `wxpilot wechat verify-url | decrypt | encrypt` helpers on the published vectors
//! (shared/conformance/wechat/crypto-vectors.json, or $WXPILOT_CONFORMANCE_DIR).

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;
use wxpilot_wechat::cli;
use wxpilot_wechat::reply::cdata;
use wxpilot_wechat::url_signature;

fn vectors() -> Vec<Value> {
    let dir = match std::env::var_os("WXPILOT_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    };
    let path = dir.join("wechat/crypto-vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A safe-mode body carrying `encrypt`, as WeChat posts it.
fn safe_body(encrypt: &str) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
        cdata("gh_test"),
        cdata(encrypt)
    )
}

/// The vectors that carry everything `decrypt` needs.
fn signed_vectors() -> Vec<Value> {
    vectors()
        .into_iter()
        .filter(|v| {
            s(v, "timestamp").is_some()
                && s(v, "nonce").is_some()
                && (s(v, "msg_signature").is_some() || s(v, "derived_msg_signature").is_some())
        })
        .collect()
}

fn signature_of(v: &Value) -> &str {
    s(v, "msg_signature")
        .or(s(v, "derived_msg_signature"))
        .unwrap()
}

#[test]
fn decrypt_prints_the_published_plaintext_of_every_signed_vector() {
    let vectors = signed_vectors();
    // A, C1, D, G1, G2, G3.
    assert_eq!(vectors.len(), 6);
    for v in &vectors {
        let id = s(v, "id").unwrap();
        let out = cli::decrypt(
            s(v, "token").unwrap(),
            s(v, "encoding_aes_key").unwrap(),
            s(v, "appid").unwrap(),
            s(v, "timestamp").unwrap(),
            s(v, "nonce").unwrap(),
            signature_of(v),
            &safe_body(s(v, "encrypt").unwrap()),
        )
        .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(out, s(v, "derived_msg").unwrap(), "{id}");
    }
}

#[test]
fn decrypt_accepts_compatible_mode_bodies() {
    let v = signed_vectors().into_iter().next().unwrap();
    // Compatible mode: the plain fields and <Encrypt> side by side.
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[plain copy]]></Content><Encrypt><![CDATA[{}]]></Encrypt></xml>",
        s(&v, "encrypt").unwrap()
    );
    let out = cli::decrypt(
        s(&v, "token").unwrap(),
        s(&v, "encoding_aes_key").unwrap(),
        s(&v, "appid").unwrap(),
        s(&v, "timestamp").unwrap(),
        s(&v, "nonce").unwrap(),
        signature_of(&v),
        &body,
    )
    .unwrap();
    assert_eq!(out, s(&v, "derived_msg").unwrap());
}

#[test]
fn wrong_signature_names_the_failed_check() {
    for v in signed_vectors() {
        let id = s(&v, "id").unwrap();
        let (token, ts, nonce) = (
            s(&v, "token").unwrap(),
            s(&v, "timestamp").unwrap(),
            s(&v, "nonce").unwrap(),
        );
        let body = safe_body(s(&v, "encrypt").unwrap());
        let key = s(&v, "encoding_aes_key").unwrap();
        let appid = s(&v, "appid").unwrap();

        // A wrong nonce.
        let err = cli::decrypt(
            token,
            key,
            appid,
            ts,
            &format!("{nonce}0"),
            signature_of(&v),
            &body,
        )
        .unwrap_err();
        assert!(err.starts_with("msg_signature check failed"), "{id}: {err}");
        assert!(
            err.contains(signature_of(&v)),
            "{id}: shows what was received: {err}"
        );

        // The plain URL signature in place of msg_signature: said so.
        let plain = url_signature(token, ts, nonce);
        let err = cli::decrypt(token, key, appid, ts, nonce, &plain, &body).unwrap_err();
        assert!(err.starts_with("msg_signature check failed"), "{id}: {err}");
        assert!(err.contains("plain `signature`"), "{id}: {err}");

        // Another account's appid.
        let err =
            cli::decrypt(token, key, "wxother", ts, nonce, signature_of(&v), &body).unwrap_err();
        assert!(err.starts_with("appid check failed"), "{id}: {err}");
        assert!(err.contains(appid), "{id}: {err}");
    }
}

#[test]
fn wrong_key_is_a_padding_failure_and_bad_body_is_named() {
    let v = signed_vectors().into_iter().next().unwrap();
    let (token, ts, nonce) = (
        s(&v, "token").unwrap(),
        s(&v, "timestamp").unwrap(),
        s(&v, "nonce").unwrap(),
    );
    let body = safe_body(s(&v, "encrypt").unwrap());
    let other_key = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
    let err = cli::decrypt(
        token,
        other_key,
        s(&v, "appid").unwrap(),
        ts,
        nonce,
        signature_of(&v),
        &body,
    )
    .unwrap_err();
    // A wrong key almost always breaks the padding; rarely the length or appid check.
    assert!(
        err.starts_with("padding check failed")
            || err.starts_with("length check failed")
            || err.starts_with("appid check failed"),
        "{err}"
    );
    let err = cli::decrypt(
        token,
        "too-short",
        s(&v, "appid").unwrap(),
        ts,
        nonce,
        signature_of(&v),
        &body,
    )
    .unwrap_err();
    assert!(err.starts_with("EncodingAESKey check failed"), "{err}");
    let err = cli::decrypt(
        token,
        s(&v, "encoding_aes_key").unwrap(),
        s(&v, "appid").unwrap(),
        ts,
        nonce,
        signature_of(&v),
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml>&e;</xml>",
    )
    .unwrap_err();
    assert!(err.starts_with("body check failed"), "{err}");
}

#[test]
fn verify_url_answers_echostr_on_the_published_signature() {
    let v = vectors()
        .into_iter()
        .find(|v| s(v, "plain_signature_no_encrypt").is_some())
        .unwrap();
    let (token, ts, nonce) = (
        s(&v, "token").unwrap(),
        s(&v, "timestamp").unwrap(),
        s(&v, "nonce").unwrap(),
    );
    let sig = s(&v, "plain_signature_no_encrypt").unwrap();
    assert_eq!(
        cli::verify_url(token, ts, nonce, sig, "5837397301622931766"),
        Ok("5837397301622931766".to_owned())
    );
    let err = cli::verify_url("wrongtoken", ts, nonce, sig, "x").unwrap_err();
    assert!(err.starts_with("signature check failed"), "{err}");
    // msg_signature is not the URL signature.
    let err = cli::verify_url(token, ts, nonce, s(&v, "msg_signature").unwrap(), "x").unwrap_err();
    assert!(err.starts_with("signature check failed"), "{err}");
}

#[test]
fn encrypt_matches_fixed_random_vectors_and_round_trips() {
    let mut checked = 0;
    for v in vectors() {
        let (Some(random), Some(ts), Some(nonce)) =
            (s(&v, "random"), s(&v, "timestamp"), s(&v, "nonce"))
        else {
            continue;
        };
        let id = s(&v, "id").unwrap();
        let (token, key, appid) = (
            s(&v, "token").unwrap(),
            s(&v, "encoding_aes_key").unwrap(),
            s(&v, "appid").unwrap(),
        );
        let plaintext = s(&v, "plaintext").unwrap();
        let envelope =
            cli::encrypt_with_random(token, key, appid, ts, nonce, plaintext, random).unwrap();
        assert!(
            envelope.contains(&format!(
                "<Encrypt><![CDATA[{}]]></Encrypt>",
                s(&v, "encrypt").unwrap()
            )),
            "{id}: {envelope}"
        );
        assert!(
            envelope.contains(&format!(
                "<MsgSignature><![CDATA[{}]]></MsgSignature>",
                signature_of(&v)
            )),
            "{id}: {envelope}"
        );
        // With fresh randomness the envelope differs but decrypts to the same text.
        let fresh = cli::encrypt(token, key, appid, ts, nonce, plaintext).unwrap();
        assert_ne!(fresh, envelope);
        let fields =
            wxpilot_wechat::parse_fields(fresh.as_bytes(), &wxpilot_wechat::XmlLimits::default())
                .unwrap();
        let back = cli::decrypt(
            token,
            key,
            appid,
            ts,
            nonce,
            fields.get("MsgSignature").unwrap(),
            &fresh,
        )
        .unwrap();
        assert_eq!(back, plaintext, "{id}");
        checked += 1;
    }
    // C1 and G2 carry random, timestamp and nonce.
    assert_eq!(checked, 2);
}
