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
//! * [`client`] — the HTTP API client (tokens, customer-service messages, drafts,
//!   publishing, uploads, analytics, followers, tags) and the errcode classification.
//! * [`token`] — the shared token store (Redis or in-process) and the [`TokenManager`]
//!   that refreshes exactly once across processes and applies the retry policy.
//! * [`cli`] — the `wxpilot wechat verify-url | decrypt | encrypt` helpers.
//! * [`clock`] — wall-clock time, swappable in tests.
//!
//! A callback in safe mode goes: [`parse_envelope`] → [`MessageCrypt::decrypt_message`]
//! → [`parse_message`] → handler → [`PassiveReply::to_xml`] →
//! [`MessageCrypt::encrypt_reply`] → [`EncryptedReply::to_xml`].

pub mod cli;
pub mod client;
pub mod clock;
pub mod crypto;
pub mod message;
pub mod metrics;
pub mod reply;
pub mod signature;
pub mod token;

pub use client::{
    AccessToken, ApiClient, ApiError, CustomMessage, CustomMessageBody, CustomNewsArticle,
    DEFAULT_BASE_URL, DatacubeEndpoint, DateWindow, DraftArticle, PermanentMaterial,
    PublishStatusInfo, PublishSubmission, Tag, UserCumulateRow, UserInfo, UserList, UserReadRow,
    UserShareRow, UserSummaryRow, redact_secrets, split_date_range,
};
pub use clock::{Clock, ManualClock, SystemClock};
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
pub use token::{
    AccountCredentials, InMemoryTokenStore, LockToken, RedisTokenStore, RetryPolicy, StoreError,
    StoreFuture, StoredToken, TokenConfig, TokenManager, TokenStore,
};
