//! WeChat Official Account protocol, the pure part: no network, no HTTP framework.
//!
//! * [`signature`] — the URL-check `signature` and the `msg_signature` of encrypted
//!   bodies, compared in constant time; request timestamp freshness.
//! * [`crypto`] — WXBizMsgCrypt (AES-256-CBC, PKCS#7 over 32-byte blocks) behind
//!   [`MessageCrypt`], which checks `msg_signature` before it decrypts and the appid after.
//! * [`message`] — inbound bodies (plain, compatible, safe) parsed into typed messages
//!   and events, hardened against DOCTYPE/entities, oversized bodies and stray control
//!   characters; deduplication keys for WeChat's retries.
//! * [`reply`] — passive replies (text, image, news) rendered as XML, and splitting of
//!   text longer than WeChat's 2048-byte limit.
//!
//! A callback in safe mode goes: [`parse_envelope`] → [`MessageCrypt::decrypt_message`]
//! → [`parse_message`] → handler → [`PassiveReply::to_xml`] →
//! [`MessageCrypt::encrypt_reply`] → [`EncryptedReply::to_xml`].

pub mod crypto;
pub mod message;
pub mod reply;
pub mod signature;

pub use crypto::{
    AesKey, CryptoError, DecryptedPayload, EncryptedReply, MessageCrypt, decrypt, encrypt,
    encrypt_with_random,
};
pub use message::{
    DedupKey, EncryptedEnvelope, EventKind, Fields, InboundMessage, MessageKind, PublishResult,
    PublishStatus, XmlError, XmlLimits, envelope_from_fields, parse_envelope, parse_fields,
    parse_message,
};
pub use reply::{
    MAX_NEWS_ARTICLES, MAX_TEXT_REPLY_BYTES, NewsArticle, PassiveReply, ReplyBody, ReplyError,
    SUCCESS, split_text, split_text_reply,
};
pub use signature::{
    DEFAULT_TIMESTAMP_WINDOW, TimestampError, check_timestamp, msg_signature, url_signature,
    verify_msg_signature, verify_url_signature,
};
