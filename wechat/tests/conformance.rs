//! Published WXBizMsgCrypt vectors (shared/conformance/wechat/crypto-vectors.json), each
//! run through the library, plus round trips.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::Value;
use wxpilot_wechat::{
    AesKey, CryptoError, MessageCrypt, decrypt, encrypt, encrypt_with_random, msg_signature,
    url_signature, verify_msg_signature,
};

fn vectors_path() -> PathBuf {
    let dir = match std::env::var_os("WXPILOT_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    };
    dir.join("wechat/crypto-vectors.json")
}

struct Vector {
    id: String,
    v: Value,
}

impl Vector {
    fn str(&self, key: &str) -> &str {
        self.opt(key)
            .unwrap_or_else(|| panic!("{}: missing {key}", self.id))
    }
    fn opt(&self, key: &str) -> Option<&str> {
        self.v.get(key).and_then(Value::as_str)
    }
    fn num(&self, key: &str) -> usize {
        let n = self.v.get(key).and_then(Value::as_u64);
        usize::try_from(n.unwrap_or_else(|| panic!("{}: missing {key}", self.id))).unwrap()
    }
}

fn vectors() -> Vec<Vector> {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(
        all.len() >= 7,
        "expected the published vectors, got {}",
        all.len()
    );
    all.into_iter()
        .map(|v| Vector {
            id: v["id"].as_str().unwrap().to_owned(),
            v,
        })
        .collect()
}

#[test]
fn every_vector_decrypts_to_its_published_plaintext() {
    for v in vectors() {
        let key = AesKey::from_encoding_aes_key(v.str("encoding_aes_key")).unwrap();
        let payload = decrypt(&key, v.str("encrypt")).unwrap_or_else(|e| panic!("{}: {e}", v.id));
        assert_eq!(
            hex::encode(payload.random),
            v.str("derived_decrypted_random_hex"),
            "{}",
            v.id
        );
        assert_eq!(
            String::from_utf8(payload.message.clone()).unwrap(),
            v.str("derived_msg"),
            "{}",
            v.id
        );
        assert_eq!(
            payload.receive_id,
            v.str("derived_receiveid").as_bytes(),
            "{}",
            v.id
        );
        assert_eq!(v.str("derived_receiveid"), v.str("appid"), "{}", v.id);

        // Padding and plaintext length as published.
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(v.str("encrypt"))
            .unwrap();
        assert_eq!(ciphertext.len(), v.num("derived_plain_len"), "{}", v.id);
        let pad = ciphertext.len() - 20 - payload.message.len() - payload.receive_id.len();
        assert_eq!(pad, v.num("derived_pad"), "{}", v.id);
    }
}

#[test]
fn every_signed_vector_passes_message_crypt_with_signature_and_appid_checks() {
    let mut checked = 0;
    for v in vectors() {
        let (Some(timestamp), Some(nonce)) = (v.opt("timestamp"), v.opt("nonce")) else {
            continue;
        };
        let Some(signature) = v.opt("msg_signature").or(v.opt("derived_msg_signature")) else {
            continue;
        };
        let crypt =
            MessageCrypt::new(v.str("token"), v.str("encoding_aes_key"), v.str("appid")).unwrap();
        assert_eq!(
            msg_signature(v.str("token"), timestamp, nonce, v.str("encrypt")),
            signature,
            "{}",
            v.id
        );
        let plain = crypt
            .decrypt_message(signature, timestamp, nonce, v.str("encrypt"))
            .unwrap_or_else(|e| panic!("{}: {e}", v.id));
        assert_eq!(plain, v.str("derived_msg"), "{}", v.id);

        // Wrong nonce: refused before decryption.
        let wrong_nonce = format!("{nonce}0");
        assert_eq!(
            crypt.decrypt_message(signature, timestamp, &wrong_nonce, v.str("encrypt")),
            Err(CryptoError::Signature),
            "{}",
            v.id
        );
        // The plain URL signature in place of msg_signature: refused.
        let plain_sig = url_signature(v.str("token"), timestamp, nonce);
        assert_eq!(
            crypt.decrypt_message(&plain_sig, timestamp, nonce, v.str("encrypt")),
            Err(CryptoError::Signature),
            "{}",
            v.id
        );
        // Another account's appid: refused after decryption, naming both.
        let other =
            MessageCrypt::new(v.str("token"), v.str("encoding_aes_key"), "wxother").unwrap();
        assert_eq!(
            other.decrypt_message(signature, timestamp, nonce, v.str("encrypt")),
            Err(CryptoError::AppId {
                expected: "wxother".into(),
                found: v.str("appid").into()
            }),
            "{}",
            v.id
        );
        checked += 1;
    }
    // A, C1, D, G1, G2, G3 carry timestamp, nonce and a signature.
    assert_eq!(checked, 6);
}

#[test]
fn published_plain_signature_is_not_a_msg_signature() {
    let v = vectors()
        .into_iter()
        .find(|v| v.opt("plain_signature_no_encrypt").is_some())
        .expect("vector A carries the plain signature");
    let (token, ts, nonce) = (v.str("token"), v.str("timestamp"), v.str("nonce"));
    assert_eq!(
        url_signature(token, ts, nonce),
        v.str("plain_signature_no_encrypt")
    );
    assert!(!verify_msg_signature(
        token,
        ts,
        nonce,
        v.str("encrypt"),
        v.str("plain_signature_no_encrypt")
    ));
    assert!(verify_msg_signature(
        token,
        ts,
        nonce,
        v.str("encrypt"),
        v.str("msg_signature")
    ));
}

#[test]
fn fixed_random_vectors_encrypt_byte_for_byte() {
    let mut checked = 0;
    for v in vectors() {
        let Some(random) = v.opt("random") else {
            continue;
        };
        let random: [u8; 16] = random.as_bytes().try_into().unwrap();
        let key = AesKey::from_encoding_aes_key(v.str("encoding_aes_key")).unwrap();
        let encrypted =
            encrypt_with_random(&key, &random, v.str("plaintext").as_bytes(), v.str("appid"))
                .unwrap();
        assert_eq!(encrypted, v.str("encrypt"), "{}", v.id);

        // Where the vector also gives timestamp and nonce, the signed reply matches.
        if let (Some(ts), Some(nonce)) = (v.opt("timestamp"), v.opt("nonce")) {
            let crypt =
                MessageCrypt::new(v.str("token"), v.str("encoding_aes_key"), v.str("appid"))
                    .unwrap();
            let reply = crypt
                .encrypt_reply_with_random(v.str("plaintext"), ts, nonce, &random)
                .unwrap();
            assert_eq!(reply.encrypt, v.str("encrypt"), "{}", v.id);
            let expected_sig = v
                .opt("msg_signature")
                .or(v.opt("derived_msg_signature"))
                .unwrap();
            assert_eq!(reply.msg_signature, expected_sig, "{}", v.id);
            assert_eq!(
                reply.to_xml(),
                format!(
                    "<xml><Encrypt><![CDATA[{}]]></Encrypt><MsgSignature><![CDATA[{expected_sig}]]></MsgSignature>\
                     <TimeStamp>{ts}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>",
                    v.str("encrypt")
                )
            );
        }
        checked += 1;
    }
    // C1, C2, G2.
    assert_eq!(checked, 3);
}

/// A small deterministic generator so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next() as u8)
    }
}

#[test]
fn round_trip_every_length_0_to_200() {
    let key = AesKey::from_encoding_aes_key("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR").unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for len in 0..=200usize {
        let message: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let random = rng.bytes::<16>();
        let enc = encrypt_with_random(&key, &random, &message, "wx49f0ab532d5d035a").unwrap();
        let ct_len = base64::engine::general_purpose::STANDARD
            .decode(&enc)
            .unwrap()
            .len();
        let unpadded = 16 + 4 + len + 18;
        assert_eq!(ct_len % 32, 0, "len {len}");
        assert!(ct_len > unpadded && ct_len <= unpadded + 32, "len {len}");
        let p = decrypt(&key, &enc).unwrap();
        assert_eq!(p.message, message, "len {len}");
        assert_eq!(p.random, random);
        assert_eq!(p.receive_id, b"wx49f0ab532d5d035a");

        // And with OS randomness: two encryptions differ, both decrypt.
        let a = encrypt(&key, &message, "wx49f0ab532d5d035a").unwrap();
        let b = encrypt(&key, &message, "wx49f0ab532d5d035a").unwrap();
        assert_ne!(a, b);
        assert_eq!(decrypt(&key, &a).unwrap().message, message);
    }
}

#[test]
fn round_trip_text_messages_through_message_crypt() {
    let crypt = MessageCrypt::new(
        "pamtest",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "wxb11529c136998cb6",
    )
    .unwrap();
    let alphabet: Vec<char> = "aZ09 <>&]]中文字😀🎉\n".chars().collect();
    let mut rng = XorShift(42);
    for len in 0..=200usize {
        let text: String = (0..len)
            .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
            .collect();
        let nonce = (rng.next() % 1_000_000_000).to_string();
        let reply = crypt.encrypt_reply(&text, "1700000000", &nonce).unwrap();
        assert_eq!(
            crypt
                .decrypt_message(&reply.msg_signature, "1700000000", &nonce, &reply.encrypt)
                .unwrap(),
            text
        );
    }
    for text in [
        "你好，世界！我是中文abcd123",
        "😀🎉👍🏽‍🔥",
        "混合 mixed 内容 with emoji 🚀 and ]]> and \u{fffd}",
    ] {
        let reply = crypt.encrypt_reply(text, "1409304348", "xxxxxx").unwrap();
        assert_eq!(
            crypt
                .decrypt_message(&reply.msg_signature, "1409304348", "xxxxxx", &reply.encrypt)
                .unwrap(),
            text
        );
    }
}
