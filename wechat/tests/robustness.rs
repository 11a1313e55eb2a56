//! Arbitrary input must never panic: decryption and XML parsing face the internet.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aes::Aes256;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use proptest::prelude::*;
use wxpilot_wechat::{
    AesKey, MessageCrypt, XmlLimits, decrypt, envelope_from_fields, parse_fields, parse_message,
};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn key() -> AesKey {
    AesKey::from_encoding_aes_key(KEY).unwrap()
}

/// Encrypts raw blocks so the fuzzed bytes reach the padding and length checks.
fn encrypt_raw_blocks(key: &AesKey, plain: &[u8]) -> String {
    let iv: [u8; 16] = key.as_bytes()[..16].try_into().unwrap();
    let cipher = cbc::Encryptor::<Aes256>::new(key.as_bytes().into(), &iv.into());
    base64::engine::general_purpose::STANDARD
        .encode(cipher.encrypt_padded_vec_mut::<NoPadding>(plain))
}

/// XML-ish fragments, so the parser sees tags, CDATA, references and control bytes.
fn xmlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<xml>".to_string()),
        Just("</xml>".to_string()),
        Just("<![CDATA[".to_string()),
        Just("]]>".to_string()),
        Just("<!DOCTYPE x [<!ENTITY e \"v\">]>".to_string()),
        Just("<?xml version=\"1.0\"?>".to_string()),
        Just("<!--".to_string()),
        Just("-->".to_string()),
        "<[A-Za-z_]{1,4}>",
        "</[A-Za-z_]{1,4}>",
        "<[A-Za-z]{1,3}/>",
        "&[a-z#x0-9]{0,5};?",
        "[\\x00-\\x1f]",
        "[a-z0-9 中文😀<>&\"'=/!?\\[\\]]{0,6}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decrypt_arbitrary_text_never_panics(s in "\\PC*") {
        let _ = decrypt(&key(), &s);
    }

    #[test]
    fn decrypt_arbitrary_ciphertext_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let _ = decrypt(&key(), &encoded);
    }

    #[test]
    fn decrypt_arbitrary_plaintext_blocks_never_panics(
        blocks in prop::collection::vec(any::<[u8; 16]>(), 1..12),
        last in any::<u8>(),
        prefix in any::<u32>(),
    ) {
        let mut plain: Vec<u8> = blocks.concat();
        // Steer some cases into valid padding and plausible length prefixes.
        let n = plain.len();
        plain[n - 1] = last % 40;
        if n >= 20 {
            plain[16..20].copy_from_slice(&(prefix % 256).to_be_bytes());
        }
        let enc = encrypt_raw_blocks(&key(), &plain);
        let _ = decrypt(&key(), &enc);
        let crypt = MessageCrypt::new("t", KEY, "wxappid").unwrap();
        let sig = wxpilot_wechat::msg_signature("t", "1", "2", &enc);
        let _ = crypt.decrypt_message(&sig, "1", "2", &enc);
    }

    #[test]
    fn parse_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let limits = XmlLimits::default();
        let _ = parse_message(&bytes, &limits);
        if let Ok(fields) = parse_fields(&bytes, &limits) {
            let _ = envelope_from_fields(&fields);
        }
    }

    #[test]
    fn parse_xmlish_never_panics(s in xmlish()) {
        let limits = XmlLimits { max_body_bytes: 4096, max_depth: 8 };
        let _ = parse_message(s.as_bytes(), &limits);
        let _ = parse_fields(s.as_bytes(), &limits);
    }
}
