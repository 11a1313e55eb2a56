//! Helpers behind `wxpilot wechat verify-url | decrypt | encrypt`, for integrators
//! debugging their callback set-up. Each returns the text to print on success, or a
//! message that starts with the check that failed (`signature check failed: …`,
//! `msg_signature check failed: …`, `appid check failed: …`, …) for a non-zero exit.
//!
//! The values come from the console (token, EncodingAESKey, appid) and from the captured
//! callback (query string and body); nothing is checked against the clock, so old
//! captures can be replayed here.

use crate::crypto::{CryptoError, MessageCrypt};
use crate::message::{XmlLimits, parse_envelope};
use crate::signature::{msg_signature, url_signature, verify_url_signature};

/// `wxpilot wechat verify-url --token T --timestamp TS --nonce N --signature S --echostr E`
///
/// Checks the URL-check `signature` (sha1 of the sorted token, timestamp and nonce) and
/// returns the `echostr` to answer, exactly as the callback endpoint must answer it.
pub fn verify_url(
    token: &str,
    timestamp: &str,
    nonce: &str,
    signature: &str,
    echostr: &str,
) -> Result<String, String> {
    if verify_url_signature(token, timestamp, nonce, signature) {
        Ok(echostr.to_owned())
    } else {
        Err(format!(
            "signature check failed: sha1(sort(token, timestamp, nonce)) is {}, the request carries {signature:?}; \
             check the token configured in the console and that timestamp and nonce are copied unchanged",
            url_signature(token, timestamp, nonce)
        ))
    }
}

/// `wxpilot wechat decrypt --token T --aes-key K --appid A --timestamp TS --nonce N
/// --msg-signature S < body.xml`
///
/// Reads `<Encrypt>` from the callback body (compatible or safe mode), checks
/// `msg_signature`, decrypts, checks the appid, and returns the decrypted XML.
pub fn decrypt(
    token: &str,
    aes_key: &str,
    appid: &str,
    timestamp: &str,
    nonce: &str,
    msg_signature_value: &str,
    body_xml: &str,
) -> Result<String, String> {
    let crypt = MessageCrypt::new(token, aes_key, appid).map_err(|e| describe(&e))?;
    let envelope = parse_envelope(body_xml.as_bytes(), &XmlLimits::default()).map_err(|e| {
        format!("body check failed: {e}; expected <xml>…<Encrypt>…</Encrypt></xml>")
    })?;
    crypt
        .decrypt_message(msg_signature_value, timestamp, nonce, &envelope.encrypt)
        .map_err(|e| match e {
            CryptoError::Signature => signature_failure(
                token,
                timestamp,
                nonce,
                &envelope.encrypt,
                msg_signature_value,
            ),
            other => describe(&other),
        })
}

fn signature_failure(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    received: &str,
) -> String {
    let expected = msg_signature(token, timestamp, nonce, encrypt);
    let mut text = format!(
        "msg_signature check failed: sha1(sort(token, timestamp, nonce, Encrypt)) is {expected}, \
         the request carries {received:?}"
    );
    if received.eq_ignore_ascii_case(&url_signature(token, timestamp, nonce)) {
        text.push_str(
            "; that value is the plain `signature` query parameter — pass `msg_signature` instead",
        );
    } else {
        text.push_str("; check the token and that timestamp, nonce and the body are unchanged");
    }
    text
}

/// `wxpilot wechat encrypt --token T --aes-key K --appid A --timestamp TS --nonce N < reply.xml`
///
/// Encrypts `xml` (a passive reply) with fresh random bytes and returns the signed
/// envelope `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>` WeChat expects.
pub fn encrypt(
    token: &str,
    aes_key: &str,
    appid: &str,
    timestamp: &str,
    nonce: &str,
    xml: &str,
) -> Result<String, String> {
    let crypt = MessageCrypt::new(token, aes_key, appid).map_err(|e| describe(&e))?;
    crypt
        .encrypt_reply(xml, timestamp, nonce)
        .map(|reply| reply.to_xml())
        .map_err(|e| describe(&e))
}

/// As [`encrypt`], with the 16 random bytes given (`--random`, 16 ASCII characters as
/// in the SDKs' test vectors) so the output is reproducible.
pub fn encrypt_with_random(
    token: &str,
    aes_key: &str,
    appid: &str,
    timestamp: &str,
    nonce: &str,
    xml: &str,
    random: &str,
) -> Result<String, String> {
    let random: [u8; 16] = random.as_bytes().try_into().map_err(|_| {
        format!(
            "random check failed: --random must be exactly 16 bytes, not {}",
            random.len()
        )
    })?;
    let crypt = MessageCrypt::new(token, aes_key, appid).map_err(|e| describe(&e))?;
    crypt
        .encrypt_reply_with_random(xml, timestamp, nonce, &random)
        .map(|reply| reply.to_xml())
        .map_err(|e| describe(&e))
}

/// Names the WXBizMsgCrypt check behind `e`.
fn describe(e: &CryptoError) -> String {
    let check = match e {
        CryptoError::Signature => "msg_signature",
        CryptoError::Key { .. } => "EncodingAESKey",
        CryptoError::Base64(_) => "base64",
        CryptoError::CiphertextLength { .. } => "ciphertext length",
        CryptoError::Padding => "padding",
        CryptoError::Length { .. } => "length",
        CryptoError::AppId { .. } => "appid",
        CryptoError::Utf8 => "utf-8",
        CryptoError::Random(_) => "random",
    };
    let hint = match e {
        CryptoError::Padding => "; usually a wrong EncodingAESKey",
        CryptoError::AppId { .. } => "; the message was encrypted for another account",
        _ => "",
    };
    format!("{check} check failed: {e}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "spamtest";
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const APPID: &str = "wx2c2769f8efd9abc2";

    #[test]
    fn verify_url_answers_echostr_or_names_the_check() {
        let sig = url_signature(TOKEN, "1409735669", "1320562132");
        assert_eq!(
            verify_url(TOKEN, "1409735669", "1320562132", &sig, "echo123"),
            Ok("echo123".to_owned())
        );
        let err = verify_url(TOKEN, "1409735669", "1320562133", &sig, "echo123").unwrap_err();
        assert!(err.starts_with("signature check failed"), "{err}");
    }

    #[test]
    fn encrypt_then_decrypt_round_trips() {
        let reply = "<xml><Content><![CDATA[你好]]></Content></xml>";
        let envelope = encrypt(TOKEN, KEY, APPID, "1700000000", "n1", reply).unwrap();
        let fields =
            crate::message::parse_fields(envelope.as_bytes(), &XmlLimits::default()).unwrap();
        let sig = fields.get("MsgSignature").unwrap().to_owned();
        assert_eq!(
            decrypt(TOKEN, KEY, APPID, "1700000000", "n1", &sig, &envelope),
            Ok(reply.to_owned())
        );
        let err = decrypt(TOKEN, KEY, "wxother", "1700000000", "n1", &sig, &envelope).unwrap_err();
        assert!(err.starts_with("appid check failed"), "{err}");
        let err = decrypt(TOKEN, "short", APPID, "1700000000", "n1", &sig, &envelope).unwrap_err();
        assert!(err.starts_with("EncodingAESKey check failed"), "{err}");
        let err = decrypt(TOKEN, KEY, APPID, "1700000000", "n1", &sig, "<xml/>").unwrap_err();
        assert!(err.starts_with("body check failed"), "{err}");
    }

    #[test]
    fn wrong_random_length_is_named() {
        let err = encrypt_with_random(TOKEN, KEY, APPID, "1", "n", "<xml/>", "short").unwrap_err();
        assert!(err.starts_with("random check failed"), "{err}");
    }
}
