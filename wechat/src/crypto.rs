//! WXBizMsgCrypt: the message encryption of the compatible and safe modes.
//!
//! * key = base64-decode(EncodingAESKey + "="), 32 bytes. Published keys have non-zero
//!   trailing bits, so the decoder allows them.
//! * AES-256-CBC, IV = key\[0..16\].
//! * plaintext = 16 random bytes ‖ u32 big-endian message length ‖ message ‖ appid,
//!   PKCS#7-padded to a multiple of **32** bytes (1..=32 pad bytes, never 0).
//! * `Encrypt` = base64 of the ciphertext; `msg_signature` signs that text (see
//!   [`crate::signature`]).
//!
//! Every check reports which one failed ([`CryptoError`]); no input makes this module panic.

use std::fmt;

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

use crate::reply::push_cdata;
use crate::signature::{msg_signature, verify_msg_signature};

/// Length of an EncodingAESKey as the Official Account console shows it.
pub const ENCODING_AES_KEY_LEN: usize = 43;
/// Block size WXBizMsgCrypt pads to (not the AES block size of 16).
pub const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const LEN_PREFIX: usize = 4;
const AES_BLOCK: usize = 16;

/// Standard alphabet, tolerant of non-zero trailing bits and of missing `=` padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// What we emit: standard, padded — what WeChat and the official SDKs produce.
const STANDARD_BASE64: GeneralPurpose = base64::engine::general_purpose::STANDARD;

type Aes256CbcEnc = cbc::Encryptor<Aes256>;
type Aes256CbcDec = cbc::Decryptor<Aes256>;

/// Which WXBizMsgCrypt check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// `msg_signature` does not sign this token, timestamp, nonce and `Encrypt`.
    #[error("msg_signature does not match")]
    Signature,
    /// The EncodingAESKey is not 43 base64 characters decoding to 32 bytes.
    #[error("invalid EncodingAESKey: {reason}")]
    Key {
        /// What is wrong with it (never the key itself).
        reason: &'static str,
    },
    /// `Encrypt` is not base64.
    #[error("Encrypt is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The ciphertext is empty or not a whole number of AES blocks.
    #[error("ciphertext of {len} bytes is not a positive multiple of 16")]
    CiphertextLength {
        /// Decoded ciphertext length.
        len: usize,
    },
    /// The PKCS#7 (block 32) padding is malformed: wrong key, or tampered data.
    #[error("invalid PKCS#7 padding")]
    Padding,
    /// The length prefix points past the end of the plaintext, or the message is too
    /// long for a u32 prefix.
    #[error("message length {declared} does not fit the {available} bytes available")]
    Length {
        /// Length declared by (or needed for) the prefix.
        declared: u64,
        /// Bytes actually available.
        available: usize,
    },
    /// The trailing receive id is not this account's appid.
    #[error("appid mismatch: expected {expected}, found {found}")]
    AppId {
        /// The appid this account is configured with.
        expected: String,
        /// What the message carried (lossily decoded).
        found: String,
    },
    /// The decrypted message is not UTF-8.
    #[error("decrypted message is not valid UTF-8")]
    Utf8,
    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
}

/// The 32-byte AES key derived from an EncodingAESKey. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// Decodes a 43-character EncodingAESKey (base64 without its final `=`).
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<Self, CryptoError> {
        let trimmed = encoding_aes_key.trim();
        if trimmed.len() != ENCODING_AES_KEY_LEN {
            return Err(CryptoError::Key {
                reason: "must be 43 characters",
            });
        }
        let mut padded = String::with_capacity(ENCODING_AES_KEY_LEN + 1);
        padded.push_str(trimmed);
        padded.push('=');
        let bytes = LENIENT_BASE64
            .decode(padded.as_bytes())
            .map_err(|_| CryptoError::Key {
                reason: "is not base64",
            })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Key {
            reason: "does not decode to 32 bytes",
        })?;
        Ok(Self(key))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

/// The parts of a decrypted WXBizMsgCrypt plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedPayload {
    /// The 16 random bytes the sender put first.
    pub random: [u8; 16],
    /// The message (XML for callbacks).
    pub message: Vec<u8>,
    /// The trailing receive id: the appid for Official Accounts.
    pub receive_id: Vec<u8>,
}

/// Encrypts `message` for `receive_id` with the given 16 random bytes; returns `Encrypt`
/// (base64). Fixed random bytes make the output reproducible (test vectors); production
/// callers use [`encrypt`].
pub fn encrypt_with_random(
    key: &AesKey,
    random: &[u8; 16],
    message: &[u8],
    receive_id: &str,
) -> Result<String, CryptoError> {
    let declared = u32::try_from(message.len()).map_err(|_| CryptoError::Length {
        declared: u64::try_from(message.len()).unwrap_or(u64::MAX),
        available: u32::MAX as usize,
    })?;
    let unpadded = RANDOM_LEN + LEN_PREFIX + message.len() + receive_id.len();
    let pad = PAD_BLOCK - unpadded % PAD_BLOCK; // 1..=32: an exact multiple gets a full block
    let mut plain = Vec::with_capacity(unpadded + pad);
    plain.extend_from_slice(random);
    plain.extend_from_slice(&declared.to_be_bytes());
    plain.extend_from_slice(message);
    plain.extend_from_slice(receive_id.as_bytes());
    // pad <= 32, so the cast is exact.
    plain.resize(unpadded + pad, pad as u8);

    let cipher = Aes256CbcEnc::new(key.as_bytes().into(), &key.iv().into());
    let ciphertext = cipher.encrypt_padded_vec_mut::<NoPadding>(&plain);
    Ok(STANDARD_BASE64.encode(ciphertext))
}

/// Encrypts `message` for `receive_id` with 16 bytes from the operating system's
/// random generator.
pub fn encrypt(key: &AesKey, message: &[u8], receive_id: &str) -> Result<String, CryptoError> {
    encrypt_with_random(key, &random_bytes()?, message, receive_id)
}

fn random_bytes() -> Result<[u8; 16], CryptoError> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(random)
}

/// Decrypts an `Encrypt` value into its parts, validating base64, block alignment,
/// padding and the length prefix. Does not check the signature or the appid: use
/// [`MessageCrypt::decrypt_message`] for callbacks.
pub fn decrypt(key: &AesKey, encrypt: &str) -> Result<DecryptedPayload, CryptoError> {
    let ciphertext = LENIENT_BASE64.decode(encrypt.trim().as_bytes())?;
    if ciphertext.is_empty() || ciphertext.len() % AES_BLOCK != 0 {
        return Err(CryptoError::CiphertextLength {
            len: ciphertext.len(),
        });
    }
    let cipher = Aes256CbcDec::new(key.as_bytes().into(), &key.iv().into());
    let plain = cipher
        .decrypt_padded_vec_mut::<NoPadding>(&ciphertext)
        .map_err(|_| CryptoError::CiphertextLength {
            len: ciphertext.len(),
        })?;

    let unpadded_len = strip_padding(&plain)?;
    let body = plain.get(..unpadded_len).ok_or(CryptoError::Padding)?;

    let (random, rest) = body
        .split_first_chunk::<RANDOM_LEN>()
        .ok_or(CryptoError::Length {
            declared: (RANDOM_LEN + LEN_PREFIX) as u64,
            available: body.len(),
        })?;
    let (prefix, rest) = rest
        .split_first_chunk::<LEN_PREFIX>()
        .ok_or(CryptoError::Length {
            declared: (RANDOM_LEN + LEN_PREFIX) as u64,
            available: body.len(),
        })?;
    let declared = u32::from_be_bytes(*prefix);
    let length_error = CryptoError::Length {
        declared: u64::from(declared),
        available: rest.len(),
    };
    let msg_len = usize::try_from(declared).map_err(|_| length_error.clone())?;
    if msg_len > rest.len() {
        return Err(length_error);
    }
    let (message, receive_id) = rest.split_at(msg_len);
    Ok(DecryptedPayload {
        random: *random,
        message: message.to_vec(),
        receive_id: receive_id.to_vec(),
    })
}

/// Validates PKCS#7 padding with block size 32; returns the unpadded length.
fn strip_padding(plain: &[u8]) -> Result<usize, CryptoError> {
    let &last = plain.last().ok_or(CryptoError::Padding)?;
    let pad = usize::from(last);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(CryptoError::Padding);
    }
    let start = plain.len() - pad;
    let tail = plain.get(start..).ok_or(CryptoError::Padding)?;
    // The signature is checked before decryption, so this is no padding oracle for an
    // outsider; a plain comparison is enough.
    if tail.iter().any(|&b| b != last) {
        return Err(CryptoError::Padding);
    }
    Ok(start)
}

/// An encrypted passive reply: the four values of the reply envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedReply {
    /// base64 ciphertext.
    pub encrypt: String,
    /// `msg_signature` over token, timestamp, nonce and `encrypt`.
    pub msg_signature: String,
    /// Timestamp used for the signature.
    pub timestamp: String,
    /// Nonce used for the signature.
    pub nonce: String,
}

impl EncryptedReply {
    /// Renders the reply envelope WeChat expects in encrypted modes (the layout of the
    /// official SDK).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(self.encrypt.len() + 200);
        out.push_str("<xml><Encrypt>");
        push_cdata(&mut out, &self.encrypt);
        out.push_str("</Encrypt><MsgSignature>");
        push_cdata(&mut out, &self.msg_signature);
        out.push_str("</MsgSignature><TimeStamp>");
        crate::reply::push_escaped(&mut out, &self.timestamp);
        out.push_str("</TimeStamp><Nonce>");
        push_cdata(&mut out, &self.nonce);
        out.push_str("</Nonce></xml>");
        out
    }
}

/// One Official Account's message encryption: token, AES key and appid.
/// `Debug` redacts the token and the key.
#[derive(Clone)]
pub struct MessageCrypt {
    token: String,
    key: AesKey,
    appid: String,
}

impl fmt::Debug for MessageCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageCrypt")
            .field("token", &"<redacted>")
            .field("key", &self.key)
            .field("appid", &self.appid)
            .finish()
    }
}

impl MessageCrypt {
    /// Builds the crypt from the console values; fails if the EncodingAESKey is invalid.
    pub fn new(
        token: impl Into<String>,
        encoding_aes_key: &str,
        appid: impl Into<String>,
    ) -> Result<Self, CryptoError> {
        Ok(Self::with_key(
            token,
            AesKey::from_encoding_aes_key(encoding_aes_key)?,
            appid,
        ))
    }

    /// Builds the crypt from an already decoded key.
    pub fn with_key(token: impl Into<String>, key: AesKey, appid: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            key,
            appid: appid.into(),
        }
    }

    /// The appid messages must be addressed to.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// Verifies `msg_signature`, then decrypts `encrypt` and checks the appid.
    pub fn decrypt_message(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CryptoError> {
        if !verify_msg_signature(&self.token, timestamp, nonce, encrypt, msg_signature) {
            return Err(CryptoError::Signature);
        }
        let payload = decrypt(&self.key, encrypt)?;
        if payload.receive_id != self.appid.as_bytes() {
            return Err(CryptoError::AppId {
                expected: self.appid.clone(),
                found: String::from_utf8_lossy(&payload.receive_id).into_owned(),
            });
        }
        String::from_utf8(payload.message).map_err(|_| CryptoError::Utf8)
    }

    /// Encrypts a passive reply with fresh random bytes and signs it.
    pub fn encrypt_reply(
        &self,
        xml: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<EncryptedReply, CryptoError> {
        self.encrypt_reply_with_random(xml, timestamp, nonce, &random_bytes()?)
    }

    /// Encrypts a passive reply with the given random bytes and signs it (reproducible).
    pub fn encrypt_reply_with_random(
        &self,
        xml: &str,
        timestamp: &str,
        nonce: &str,
        random: &[u8; 16],
    ) -> Result<EncryptedReply, CryptoError> {
        let encrypt = encrypt_with_random(&self.key, random, xml.as_bytes(), &self.appid)?;
        let msg_signature = msg_signature(&self.token, timestamp, nonce, &encrypt);
        Ok(EncryptedReply {
            encrypt,
            msg_signature,
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn key() -> AesKey {
        AesKey::from_encoding_aes_key(KEY).unwrap()
    }

    /// Encrypts raw plaintext blocks without any WXBizMsgCrypt framing.
    fn raw_encrypt(key: &AesKey, plain: &[u8]) -> String {
        let cipher = Aes256CbcEnc::new(key.as_bytes().into(), &key.iv().into());
        STANDARD_BASE64.encode(cipher.encrypt_padded_vec_mut::<NoPadding>(plain))
    }

    #[test]
    fn key_with_nonzero_trailing_bits_decodes() {
        let k = key();
        assert_eq!(&k.as_bytes()[..4], &[0x69, 0xb7, 0x1d, 0x79]);
        assert_eq!(format!("{k:?}"), "AesKey(<redacted>)");
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert_eq!(
            AesKey::from_encoding_aes_key("short"),
            Err(CryptoError::Key {
                reason: "must be 43 characters"
            })
        );
        let bad = "!bcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        assert_eq!(
            AesKey::from_encoding_aes_key(bad),
            Err(CryptoError::Key {
                reason: "is not base64"
            })
        );
    }

    #[test]
    fn padding_is_one_to_32_and_exact_multiple_gets_full_block() {
        let k = key();
        // 16 + 4 + 12 + 0 = 32: exact multiple → 32 more bytes.
        let enc = encrypt_with_random(&k, &[7; 16], b"twelve bytes", "").unwrap();
        let ct = STANDARD_BASE64.decode(&enc).unwrap();
        assert_eq!(ct.len(), 64);
        // 16 + 4 + 11 + 0 = 31 → a single pad byte.
        let enc = encrypt_with_random(&k, &[7; 16], b"eleven byte", "").unwrap();
        assert_eq!(STANDARD_BASE64.decode(&enc).unwrap().len(), 32);
        let p = decrypt(&k, &enc).unwrap();
        assert_eq!(p.message, b"eleven byte");
        assert_eq!(p.random, [7; 16]);
        assert!(p.receive_id.is_empty());
    }

    #[test]
    fn each_failed_check_is_named() {
        let k = key();
        assert!(matches!(
            decrypt(&k, "not base64!"),
            Err(CryptoError::Base64(_))
        ));
        assert_eq!(
            decrypt(&k, ""),
            Err(CryptoError::CiphertextLength { len: 0 })
        );
        assert_eq!(
            decrypt(&k, &STANDARD_BASE64.encode([0u8; 17])),
            Err(CryptoError::CiphertextLength { len: 17 })
        );
        // Pad byte 0, pad byte 33, inconsistent pad bytes.
        let mut block = [0u8; 32];
        assert_eq!(
            decrypt(&k, &raw_encrypt(&k, &block)),
            Err(CryptoError::Padding)
        );
        block[31] = 33;
        assert_eq!(
            decrypt(&k, &raw_encrypt(&k, &block)),
            Err(CryptoError::Padding)
        );
        block[31] = 3;
        block[30] = 3;
        block[29] = 4;
        assert_eq!(
            decrypt(&k, &raw_encrypt(&k, &block)),
            Err(CryptoError::Padding)
        );
        // Valid padding but the length prefix points past the end.
        let mut block = [0u8; 32];
        block[16..20].copy_from_slice(&100u32.to_be_bytes());
        block[31] = 1;
        assert_eq!(
            decrypt(&k, &raw_encrypt(&k, &block)),
            Err(CryptoError::Length {
                declared: 100,
                available: 11
            })
        );
        // Too short to hold random + prefix after unpadding.
        let block = [20u8; 32];
        assert_eq!(
            decrypt(&k, &raw_encrypt(&k, &block)),
            Err(CryptoError::Length {
                declared: 20,
                available: 12
            })
        );
    }

    #[test]
    fn message_crypt_checks_signature_then_appid_then_utf8() {
        let crypt = MessageCrypt::new("tok", KEY, "wxappid").unwrap();
        let reply = crypt.encrypt_reply("<xml/>", "1700000000", "n1").unwrap();
        assert_eq!(
            crypt
                .decrypt_message(&reply.msg_signature, "1700000000", "n1", &reply.encrypt)
                .unwrap(),
            "<xml/>"
        );
        assert_eq!(
            crypt.decrypt_message(&reply.msg_signature, "1700000000", "n2", &reply.encrypt),
            Err(CryptoError::Signature)
        );
        let other = MessageCrypt::new("tok", KEY, "wxother").unwrap();
        assert_eq!(
            other.decrypt_message(&reply.msg_signature, "1700000000", "n1", &reply.encrypt),
            Err(CryptoError::AppId {
                expected: "wxother".into(),
                found: "wxappid".into()
            })
        );
        let bad_utf8 = encrypt_with_random(&key(), &[0; 16], &[0xff, 0xfe], "wxappid").unwrap();
        let sig = msg_signature("tok", "1", "2", &bad_utf8);
        assert_eq!(
            crypt.decrypt_message(&sig, "1", "2", &bad_utf8),
            Err(CryptoError::Utf8)
        );
        let debug = format!("{crypt:?}");
        assert!(debug.contains("token: \"<redacted>\""), "{debug}");
        assert!(!debug.contains("\"tok\""), "{debug}");
    }

    #[test]
    fn reply_envelope_layout() {
        let reply = EncryptedReply {
            encrypt: "AAAA".into(),
            msg_signature: "abc".into(),
            timestamp: "1409304348".into(),
            nonce: "xxxxxx".into(),
        };
        assert_eq!(
            reply.to_xml(),
            "<xml><Encrypt><![CDATA[AAAA]]></Encrypt><MsgSignature><![CDATA[abc]]></MsgSignature>\
             <TimeStamp>1409304348</TimeStamp><Nonce><![CDATA[xxxxxx]]></Nonce></xml>"
        );
    }
}
