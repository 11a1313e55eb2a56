//! Official Account API client (`api.weixin.qq.com`), one method per endpoint.
//!
//! Every method takes the access token as an argument and makes exactly one HTTP call:
//! the retry and token policy (busy → backoff, 40001 → re-read the shared store, refresh
//! once, retry once) lives in [`crate::token::TokenManager::call`], which wraps these.
//!
//! WeChat answers HTTP 200 with `{"errcode": …, "errmsg": …}` on failure; every non-zero
//! `errcode` becomes an [`ApiError`] variant that says what the caller should do.
//! Access tokens and app secrets travel in query strings, so every error text passes
//! through [`redact_secrets`] before it is stored in an error.

use std::fmt;
use std::time::Duration;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::token::StoreError;

/// The production API host.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";
/// Whole-request timeout used by [`ApiClient::new`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer body read from WeChat (drafts with 8 long articles stay far below it).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Most openids `tags/members/batchtagging` accepts in one call.
pub const MAX_BATCH_TAGGING: usize = 50;
/// Most articles a customer-service `news` message may carry.
pub const MAX_CUSTOM_NEWS_ARTICLES: usize = 1;

/// Why an API call failed. WeChat `errcode`s are classified into the variants the
/// caller must treat differently; everything else is [`ApiError::Other`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// errcode -1: system busy. Retry with backoff.
    #[error("WeChat is busy (errcode -1): {message}")]
    Busy {
        /// WeChat's `errmsg`.
        message: String,
    },
    /// errcode 40001 / 40014 / 42001: the access token is invalid, not the latest, or
    /// expired. Re-read the shared store, refresh once if it still holds this token, retry once.
    #[error("access token invalid or expired (errcode {code}): {message}")]
    TokenInvalid {
        /// 40001, 40014 or 42001.
        code: i64,
        /// WeChat's `errmsg`.
        message: String,
    },
    /// errcode 45009: the daily quota of this API is used up. Stop and flag the account;
    /// retrying only burns calls until the quota resets.
    #[error("daily quota of {api} reached (errcode 45009): {message}")]
    QuotaExceeded {
        /// The API path whose quota is used up.
        api: String,
        /// WeChat's `errmsg`.
        message: String,
    },
    /// errcode 45011: called too often. Slow down; the caller decides when to retry.
    #[error("API called too frequently (errcode 45011): {message}")]
    TooFrequent {
        /// WeChat's `errmsg`.
        message: String,
    },
    /// errcode 45015: customer-service messages are allowed only within 48 h of the
    /// follower's last message. Do not retry.
    #[error(
        "customer-service window expired: no follower message in the last 48 h (errcode 45015): {message}"
    )]
    ReplyWindowExpired {
        /// WeChat's `errmsg`.
        message: String,
    },
    /// errcode 45047: too many customer-service messages since the follower's last
    /// message. Do not retry; wait for the follower.
    #[error("too many customer-service messages for this window (errcode 45047): {message}")]
    TooManyMessages {
        /// WeChat's `errmsg`.
        message: String,
    },
    /// errcode 48001: the account is not authorised for this API (unverified accounts
    /// have no customer-service API: answer passively instead).
    #[error("API not authorised for this account (errcode 48001): {message}")]
    NotAuthorised {
        /// WeChat's `errmsg`.
        message: String,
    },
    /// errcode 40164: the caller's IP is not on the account's whitelist.
    #[error("caller IP not whitelisted (errcode 40164): {message}")]
    IpNotWhitelisted {
        /// WeChat's `errmsg` (it names the refused IP).
        message: String,
    },
    /// Any other non-zero errcode.
    #[error("WeChat errcode {code}: {message}")]
    Other {
        /// The errcode.
        code: i64,
        /// WeChat's `errmsg`.
        message: String,
    },
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("request to WeChat {api} failed: {message}")]
    Transport {
        /// The API path.
        api: String,
        /// What went wrong, with secrets redacted.
        message: String,
        /// Whether it was a timeout.
        timeout: bool,
    },
    /// WeChat answered with a non-success HTTP status.
    #[error("WeChat {api} answered HTTP {status}")]
    Http {
        /// The API path.
        api: String,
        /// The status code.
        status: u16,
    },
    /// The answer was not the JSON expected.
    #[error("could not decode WeChat's answer from {api}: {message}")]
    Decode {
        /// The API path.
        api: String,
        /// What did not decode.
        message: String,
    },
    /// The request was refused before sending (for example a date window longer than
    /// the endpoint allows).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The shared token store failed.
    #[error("token store: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// Classifies a WeChat `errcode` (`None` for 0, which is success). `api` is the path
    /// called (kept for quota flags).
    pub fn from_errcode(code: i64, message: &str, api: &str) -> Option<Self> {
        let message = redact_secrets(message);
        Some(match code {
            0 => return None,
            -1 => Self::Busy { message },
            40001 | 40014 | 42001 => Self::TokenInvalid { code, message },
            45009 => Self::QuotaExceeded {
                api: api.to_owned(),
                message,
            },
            45011 => Self::TooFrequent { message },
            45015 => Self::ReplyWindowExpired { message },
            45047 => Self::TooManyMessages { message },
            48001 => Self::NotAuthorised { message },
            40164 => Self::IpNotWhitelisted { message },
            _ => Self::Other { code, message },
        })
    }

    /// The WeChat errcode behind this error, if WeChat answered one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::Busy { .. } => Some(-1),
            Self::TokenInvalid { code, .. } | Self::Other { code, .. } => Some(*code),
            Self::QuotaExceeded { .. } => Some(45009),
            Self::TooFrequent { .. } => Some(45011),
            Self::ReplyWindowExpired { .. } => Some(45015),
            Self::TooManyMessages { .. } => Some(45047),
            Self::NotAuthorised { .. } => Some(48001),
            Self::IpNotWhitelisted { .. } => Some(40164),
            _ => None,
        }
    }

    /// Whether this is the busy answer (-1) that warrants a retry after a backoff.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy { .. })
    }

    /// Whether the token used was invalid or expired (40001, 40014, 42001).
    pub fn is_token_invalid(&self) -> bool {
        matches!(self, Self::TokenInvalid { .. })
    }
}

/// Replaces the values of `access_token` and `secret` — in query strings
/// (`access_token=…`) and in JSON (`"secret":"…"`) — with `<redacted>`.
pub fn redact_secrets(text: &str) -> String {
    let mut out = text.to_owned();
    for key in ["access_token=", "secret="] {
        out = redact_after(&out, key, |c| {
            matches!(c, '&' | ' ' | ')' | '"' | '\'' | '#' | '\n' | '>' | ',')
        });
    }
    for key in ["\"access_token\":\"", "\"secret\":\""] {
        out = redact_after(&out, key, |c| c == '"');
    }
    out
}

fn redact_after(text: &str, key: &str, is_end: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(key) {
        let value_start = pos + key.len();
        out.push_str(&rest[..value_start]);
        let value = &rest[value_start..];
        let value_len = value.find(&is_end).unwrap_or(value.len());
        if value_len > 0 {
            out.push_str("<redacted>");
        }
        rest = &value[value_len..];
    }
    out.push_str(rest);
    out
}

/// An access token as WeChat issues it. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct AccessToken {
    /// The token.
    pub access_token: String,
    /// Seconds it stays valid from now (7200).
    pub expires_in: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// One article of a customer-service `news` message (opens `url` on tap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CustomNewsArticle {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Link opened on tap.
    pub url: String,
    /// Cover image URL.
    pub picurl: String,
}

/// What a customer-service message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomMessageBody {
    /// Text.
    Text {
        /// The text.
        content: String,
    },
    /// A link card ([`MAX_CUSTOM_NEWS_ARTICLES`] article).
    News {
        /// The article.
        articles: Vec<CustomNewsArticle>,
    },
}

/// A customer-service message to one follower (`message/custom/send`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomMessage {
    /// The follower's openid.
    pub touser: String,
    /// What to send.
    pub body: CustomMessageBody,
}

impl CustomMessage {
    /// A text message.
    pub fn text(touser: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            touser: touser.into(),
            body: CustomMessageBody::Text {
                content: content.into(),
            },
        }
    }

    /// A news (link card) message.
    pub fn news(touser: impl Into<String>, article: CustomNewsArticle) -> Self {
        Self {
            touser: touser.into(),
            body: CustomMessageBody::News {
                articles: vec![article],
            },
        }
    }

    /// The JSON body WeChat expects.
    pub fn to_json(&self) -> Value {
        match &self.body {
            CustomMessageBody::Text { content } => json!({
                "touser": self.touser,
                "msgtype": "text",
                "text": { "content": content },
            }),
            CustomMessageBody::News { articles } => json!({
                "touser": self.touser,
                "msgtype": "news",
                "news": { "articles": articles },
            }),
        }
    }
}

/// One article of a draft (`draft/add`, `draft/get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DraftArticle {
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Summary shown in the feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// WeChat-safe HTML body (images must be `uploadimg` URLs).
    #[serde(default)]
    pub content: String,
    /// "Read the original" link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_source_url: Option<String>,
    /// Permanent thumb material id of the cover.
    #[serde(default)]
    pub thumb_media_id: String,
    /// 1 to open comments.
    #[serde(default)]
    pub need_open_comment: u8,
    /// 1 to let only followers comment.
    #[serde(default)]
    pub only_fans_can_comment: u8,
    /// Preview URL (read from `draft/get`; never sent).
    #[serde(default, skip_serializing)]
    pub url: Option<String>,
}

/// The answer of `freepublish/submit`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishSubmission {
    /// Id to poll with `freepublish/get`; the `PUBLISHJOBFINISH` event carries it too.
    #[serde(deserialize_with = "string_or_number")]
    pub publish_id: String,
    /// Message data id, when WeChat gives one.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub msg_data_id: Option<String>,
}

/// One published article of a publish job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedArticle {
    /// Position in the draft, from 1.
    pub idx: u32,
    /// Public URL.
    pub article_url: String,
}

/// Articles of a finished publish job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PublishArticleDetail {
    /// Number of articles.
    #[serde(default)]
    pub count: u32,
    /// The articles.
    #[serde(default)]
    pub item: Vec<PublishedArticle>,
}

/// The answer of `freepublish/get`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishStatusInfo {
    /// The publish job.
    #[serde(deserialize_with = "string_or_number")]
    pub publish_id: String,
    /// 0 success, 1 publishing, 2 original-content failure, 3 general failure,
    /// 4 platform review failure, 5 deleted after success, 6 banned after success.
    pub publish_status: i64,
    /// Article id once published.
    #[serde(default)]
    pub article_id: Option<String>,
    /// Published articles.
    #[serde(default)]
    pub article_detail: Option<PublishArticleDetail>,
    /// Positions (from 1) of the articles that failed.
    #[serde(default)]
    pub fail_idx: Vec<u32>,
}

/// The answer of `material/add_material`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PermanentMaterial {
    /// Material id (for `thumb_media_id`).
    pub media_id: String,
    /// URL of the image, when WeChat gives one.
    #[serde(default)]
    pub url: Option<String>,
}

/// A follower's profile (`user/info`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct UserInfo {
    /// 1 if following, 0 if not (then most fields are absent).
    #[serde(default)]
    pub subscribe: u8,
    /// The follower's openid.
    pub openid: String,
    /// Language code.
    #[serde(default)]
    pub language: Option<String>,
    /// Unix seconds of the (last) subscription.
    #[serde(default)]
    pub subscribe_time: Option<i64>,
    /// Union id across the developer's apps.
    #[serde(default)]
    pub unionid: Option<String>,
    /// The account's remark for this follower.
    #[serde(default)]
    pub remark: Option<String>,
    /// Tag ids.
    #[serde(default)]
    pub tagid_list: Vec<i64>,
    /// How they subscribed (`ADD_SCENE_QR_CODE`, …).
    #[serde(default)]
    pub subscribe_scene: Option<String>,
    /// QR scene id.
    #[serde(default)]
    pub qr_scene: Option<i64>,
    /// QR scene string.
    #[serde(default)]
    pub qr_scene_str: Option<String>,
}

/// One page of followers (`user/get`, up to 10,000 a page).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserList {
    /// Followers in total.
    pub total: u64,
    /// Openids on this page.
    pub openids: Vec<String>,
    /// Pass to get the next page; empty after the last.
    pub next_openid: String,
}

#[derive(Deserialize)]
struct RawUserList {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    data: Option<RawOpenids>,
    #[serde(default)]
    next_openid: String,
}

#[derive(Deserialize)]
struct RawOpenids {
    #[serde(default)]
    openid: Vec<String>,
}

/// A user tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag id.
    pub id: i64,
    /// Tag name (at most 30 characters).
    pub name: String,
}

#[derive(Deserialize)]
struct TagAnswer {
    tag: Tag,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
struct MediaIdAnswer {
    media_id: String,
}

#[derive(Deserialize)]
struct UrlAnswer {
    url: String,
}

#[derive(Deserialize)]
struct NewsItems {
    #[serde(default)]
    news_item: Vec<DraftArticle>,
}

#[derive(Deserialize)]
struct DatacubeList<T> {
    #[serde(default = "Vec::new")]
    list: Vec<T>,
}

/// One row of `datacube/getusersummary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummaryRow {
    /// yyyy-MM-dd.
    pub ref_date: String,
    /// Where followers came from (0 other, 1 search, 17 card share, 30 QR code, …).
    #[serde(default)]
    pub user_source: i64,
    /// New followers.
    #[serde(default)]
    pub new_user: i64,
    /// Unfollows.
    #[serde(default)]
    pub cancel_user: i64,
}

/// One row of `datacube/getusercumulate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCumulateRow {
    /// yyyy-MM-dd.
    pub ref_date: String,
    /// Followers at the end of the day.
    #[serde(default)]
    pub cumulate_user: i64,
}

/// One row of `datacube/getuserread` (article reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserReadRow {
    /// yyyy-MM-dd.
    pub ref_date: String,
    /// Traffic source, when split by source.
    #[serde(default)]
    pub user_source: Option<i64>,
    /// Readers of the article page.
    #[serde(default)]
    pub int_page_read_user: i64,
    /// Reads of the article page.
    #[serde(default)]
    pub int_page_read_count: i64,
    /// Readers of the original page.
    #[serde(default)]
    pub ori_page_read_user: i64,
    /// Reads of the original page.
    #[serde(default)]
    pub ori_page_read_count: i64,
    /// Sharers.
    #[serde(default)]
    pub share_user: i64,
    /// Shares.
    #[serde(default)]
    pub share_count: i64,
    /// Users who added it to favourites.
    #[serde(default)]
    pub add_to_fav_user: i64,
    /// Favourite additions.
    #[serde(default)]
    pub add_to_fav_count: i64,
}

/// One row of `datacube/getusershare` (article shares).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserShareRow {
    /// yyyy-MM-dd.
    pub ref_date: String,
    /// 1 friend, 2 Moments, 3 Tencent Weibo, 255 other.
    #[serde(default)]
    pub share_scene: i64,
    /// Shares.
    #[serde(default)]
    pub share_count: i64,
    /// Sharers.
    #[serde(default)]
    pub share_user: i64,
}

/// The analytics (datacube) endpoints this client reads, with their per-call windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatacubeEndpoint {
    /// New and cancelled followers per day and source.
    UserSummary,
    /// Cumulative followers per day.
    UserCumulate,
    /// Article reads per day.
    UserRead,
    /// Article shares per day.
    UserShare,
}

impl DatacubeEndpoint {
    /// Every endpoint.
    pub const ALL: [Self; 4] = [
        Self::UserSummary,
        Self::UserCumulate,
        Self::UserRead,
        Self::UserShare,
    ];

    /// The API path.
    pub fn path(self) -> &'static str {
        match self {
            Self::UserSummary => "/datacube/getusersummary",
            Self::UserCumulate => "/datacube/getusercumulate",
            Self::UserRead => "/datacube/getuserread",
            Self::UserShare => "/datacube/getusershare",
        }
    }

    /// Most days one call may cover (begin and end inclusive).
    ///
    /// User analytics allow 7. For the article endpoints the older documentation gave 3
    /// (read) and 7 (share); the current facts in DESIGN.md say 1, and a 1-day window is
    /// accepted under either rule, so 1 is used.
    pub fn max_days(self) -> u32 {
        match self {
            Self::UserSummary | Self::UserCumulate => 7,
            Self::UserRead | Self::UserShare => 1,
        }
    }

    /// The endpoint serving `path`, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.path() == path)
    }
}

/// An inclusive range of days for one datacube call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateWindow {
    /// First day.
    pub begin: NaiveDate,
    /// Last day (inclusive).
    pub end: NaiveDate,
}

impl DateWindow {
    /// Number of days covered (end − begin + 1).
    pub fn days(&self) -> i64 {
        (self.end - self.begin).num_days() + 1
    }
}

/// Splits `begin..=end` into consecutive windows of at most `max_days` days each, in
/// order, the last one possibly shorter: 40 days at 7 a window give six windows
/// (7, 7, 7, 7, 7, 5).
pub fn split_date_range(
    begin: NaiveDate,
    end: NaiveDate,
    max_days: u32,
) -> Result<Vec<DateWindow>, ApiError> {
    if max_days == 0 {
        return Err(ApiError::InvalidRequest(
            "a window must allow at least one day".into(),
        ));
    }
    if end < begin {
        return Err(ApiError::InvalidRequest(format!(
            "end date {end} is before begin date {begin}"
        )));
    }
    let step = chrono::Days::new(u64::from(max_days));
    let mut windows = Vec::new();
    let mut start = begin;
    loop {
        // `start + max_days - 1`, clamped to `end`; overflow only at the end of time.
        let window_end = start
            .checked_add_days(step)
            .and_then(|d| d.pred_opt())
            .map_or(end, |d| d.min(end));
        windows.push(DateWindow {
            begin: start,
            end: window_end,
        });
        match window_end.succ_opt() {
            Some(next) if window_end < end => start = next,
            _ => break,
        }
    }
    Ok(windows)
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, found {other}"
        ))),
    }
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, found {other}"
        ))),
    }
}

/// The Official Account API over HTTP. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for `base_url` (for example [`DEFAULT_BASE_URL`], a proxy, or the
    /// simulator) with a [`DEFAULT_TIMEOUT`] per request.
    pub fn new(base_url: impl Into<String>) -> Result<Self, ApiError> {
        Self::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// A client for `base_url` with the given whole-request timeout.
    pub fn with_timeout(base_url: impl Into<String>, timeout: Duration) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ApiError::Transport {
                api: String::new(),
                message: redact_secrets(&e.to_string()),
                timeout: false,
            })?;
        Ok(Self::from_parts(http, base_url))
    }

    /// A client that uses an existing `reqwest::Client` (shared pool, custom proxy).
    pub fn from_parts(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        let mut base_url = base_url.into();
        while base_url.ends_with('/') {
            base_url.pop();
        }
        Self { http, base_url }
    }

    /// The base URL requests go to (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        let started = std::time::Instant::now();
        let result = self.http.get(self.url(path)).query(query).send().await;
        finish(path, started, result).await
    }

    async fn post_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T, ApiError> {
        let started = std::time::Instant::now();
        let result = self
            .http
            .post(self.url(path))
            .query(query)
            .json(body)
            .send()
            .await;
        finish(path, started, result).await
    }

    async fn post_media<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<T, ApiError> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(content_type)
            .map_err(|_| ApiError::InvalidRequest(format!("bad content type {content_type:?}")))?;
        let form = reqwest::multipart::Form::new().part("media", part);
        let started = std::time::Instant::now();
        let result = self
            .http
            .post(self.url(path))
            .query(query)
            .multipart(form)
            .send()
            .await;
        finish(path, started, result).await
    }

    /// `GET /cgi-bin/token`: a new access token. Fetching one invalidates the previous
    /// token of this account after 5 minutes — call it through the token manager only.
    pub async fn fetch_access_token(
        &self,
        appid: &str,
        secret: &str,
    ) -> Result<AccessToken, ApiError> {
        self.get_json(
            "/cgi-bin/token",
            &[
                ("grant_type", "client_credential"),
                ("appid", appid),
                ("secret", secret),
            ],
        )
        .await
    }

    /// `POST /cgi-bin/stable_token`: the account's stable token. Without
    /// `force_refresh` it returns the current token (a new one only in its last 5
    /// minutes) and never invalidates another caller's token.
    pub async fn fetch_stable_token(
        &self,
        appid: &str,
        secret: &str,
        force_refresh: bool,
    ) -> Result<AccessToken, ApiError> {
        self.post_json(
            "/cgi-bin/stable_token",
            &[],
            &json!({
                "grant_type": "client_credential",
                "appid": appid,
                "secret": secret,
                "force_refresh": force_refresh,
            }),
        )
        .await
    }

    /// `POST /cgi-bin/message/custom/send`: a customer-service message (allowed within
    /// 48 h of the follower's last message, a few per window).
    pub async fn send_custom_message(
        &self,
        access_token: &str,
        message: &CustomMessage,
    ) -> Result<(), ApiError> {
        if let CustomMessageBody::News { articles } = &message.body
            && (articles.is_empty() || articles.len() > MAX_CUSTOM_NEWS_ARTICLES)
        {
            return Err(ApiError::InvalidRequest(format!(
                "a customer-service news message carries exactly {MAX_CUSTOM_NEWS_ARTICLES} article, not {}",
                articles.len()
            )));
        }
        let _: serde::de::IgnoredAny = self
            .post_json(
                "/cgi-bin/message/custom/send",
                &[("access_token", access_token)],
                &message.to_json(),
            )
            .await?;
        Ok(())
    }

    /// `POST /cgi-bin/draft/add`: stores a draft; returns its `media_id`.
    pub async fn add_draft(
        &self,
        access_token: &str,
        articles: &[DraftArticle],
    ) -> Result<String, ApiError> {
        let answer: MediaIdAnswer = self
            .post_json(
                "/cgi-bin/draft/add",
                &[("access_token", access_token)],
                &json!({ "articles": articles }),
            )
            .await?;
        Ok(answer.media_id)
    }

    /// `POST /cgi-bin/draft/get`: the articles of a draft.
    pub async fn get_draft(
        &self,
        access_token: &str,
        media_id: &str,
    ) -> Result<Vec<DraftArticle>, ApiError> {
        let answer: NewsItems = self
            .post_json(
                "/cgi-bin/draft/get",
                &[("access_token", access_token)],
                &json!({ "media_id": media_id }),
            )
            .await?;
        Ok(answer.news_item)
    }

    /// `POST /cgi-bin/freepublish/submit`: publishes a draft. The outcome arrives later
    /// (the `PUBLISHJOBFINISH` event, or [`Self::get_publish`]).
    pub async fn submit_publish(
        &self,
        access_token: &str,
        media_id: &str,
    ) -> Result<PublishSubmission, ApiError> {
        self.post_json(
            "/cgi-bin/freepublish/submit",
            &[("access_token", access_token)],
            &json!({ "media_id": media_id }),
        )
        .await
    }

    /// `POST /cgi-bin/freepublish/get`: the state of a publish job.
    pub async fn get_publish(
        &self,
        access_token: &str,
        publish_id: &str,
    ) -> Result<PublishStatusInfo, ApiError> {
        self.post_json(
            "/cgi-bin/freepublish/get",
            &[("access_token", access_token)],
            &json!({ "publish_id": publish_id }),
        )
        .await
    }

    /// `POST /cgi-bin/media/uploadimg` (multipart `media`): an image for an article
    /// body (jpg/png, ≤ 1 MB); returns its URL for `<img src>`.
    pub async fn upload_article_image(
        &self,
        access_token: &str,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, ApiError> {
        let answer: UrlAnswer = self
            .post_media(
                "/cgi-bin/media/uploadimg",
                &[("access_token", access_token)],
                file_name,
                content_type,
                bytes,
            )
            .await?;
        Ok(answer.url)
    }

    /// `POST /cgi-bin/material/add_material?type=thumb` (multipart `media`): a permanent
    /// thumb for a draft's `thumb_media_id`.
    pub async fn add_thumb_material(
        &self,
        access_token: &str,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<PermanentMaterial, ApiError> {
        self.post_media(
            "/cgi-bin/material/add_material",
            &[("access_token", access_token), ("type", "thumb")],
            file_name,
            content_type,
            bytes,
        )
        .await
    }

    /// One datacube call for `window`, which must fit [`DatacubeEndpoint::max_days`]
    /// (checked before sending). Rows are decoded as `T` (one of the `*Row` types).
    pub async fn datacube<T: DeserializeOwned>(
        &self,
        access_token: &str,
        endpoint: DatacubeEndpoint,
        window: DateWindow,
    ) -> Result<Vec<T>, ApiError> {
        let max = i64::from(endpoint.max_days());
        if window.days() < 1 || window.days() > max {
            return Err(ApiError::InvalidRequest(format!(
                "{} allows 1 to {max} days a call, not {}",
                endpoint.path(),
                window.days()
            )));
        }
        let answer: DatacubeList<T> = self
            .post_json(
                endpoint.path(),
                &[("access_token", access_token)],
                &json!({
                    "begin_date": window.begin.format("%Y-%m-%d").to_string(),
                    "end_date": window.end.format("%Y-%m-%d").to_string(),
                }),
            )
            .await?;
        Ok(answer.list)
    }

    /// `datacube/getusersummary` for one window of ≤ 7 days.
    pub async fn user_summary(
        &self,
        access_token: &str,
        window: DateWindow,
    ) -> Result<Vec<UserSummaryRow>, ApiError> {
        self.datacube(access_token, DatacubeEndpoint::UserSummary, window)
            .await
    }

    /// `datacube/getusercumulate` for one window of ≤ 7 days.
    pub async fn user_cumulate(
        &self,
        access_token: &str,
        window: DateWindow,
    ) -> Result<Vec<UserCumulateRow>, ApiError> {
        self.datacube(access_token, DatacubeEndpoint::UserCumulate, window)
            .await
    }

    /// `datacube/getuserread` for one day.
    pub async fn user_read(
        &self,
        access_token: &str,
        window: DateWindow,
    ) -> Result<Vec<UserReadRow>, ApiError> {
        self.datacube(access_token, DatacubeEndpoint::UserRead, window)
            .await
    }

    /// `datacube/getusershare` for one day.
    pub async fn user_share(
        &self,
        access_token: &str,
        window: DateWindow,
    ) -> Result<Vec<UserShareRow>, ApiError> {
        self.datacube(access_token, DatacubeEndpoint::UserShare, window)
            .await
    }

    /// `GET /cgi-bin/user/info`: a follower's profile (`lang` such as `zh_CN`).
    pub async fn user_info(
        &self,
        access_token: &str,
        openid: &str,
        lang: &str,
    ) -> Result<UserInfo, ApiError> {
        self.get_json(
            "/cgi-bin/user/info",
            &[
                ("access_token", access_token),
                ("openid", openid),
                ("lang", lang),
            ],
        )
        .await
    }

    /// `GET /cgi-bin/user/get`: one page of followers, starting after `next_openid`
    /// (`None` for the first page).
    pub async fn user_list(
        &self,
        access_token: &str,
        next_openid: Option<&str>,
    ) -> Result<UserList, ApiError> {
        let raw: RawUserList = self
            .get_json(
                "/cgi-bin/user/get",
                &[
                    ("access_token", access_token),
                    ("next_openid", next_openid.unwrap_or("")),
                ],
            )
            .await?;
        Ok(UserList {
            total: raw.total,
            openids: raw.data.map(|d| d.openid).unwrap_or_default(),
            next_openid: raw.next_openid,
        })
    }

    /// `GET /cgi-bin/tags/get`: the account's tags (WeChat's own included).
    pub async fn tags(&self, access_token: &str) -> Result<Vec<Tag>, ApiError> {
        let answer: TagList = self
            .get_json("/cgi-bin/tags/get", &[("access_token", access_token)])
            .await?;
        Ok(answer.tags)
    }

    /// `POST /cgi-bin/tags/create`: a new tag. A name already in use answers errcode
    /// 45157 (look it up with [`tags`](Self::tags)); an account holds at most 100 tags
    /// (45056).
    pub async fn create_tag(&self, access_token: &str, name: &str) -> Result<Tag, ApiError> {
        let answer: TagAnswer = self
            .post_json(
                "/cgi-bin/tags/create",
                &[("access_token", access_token)],
                &json!({ "tag": { "name": name } }),
            )
            .await?;
        Ok(answer.tag)
    }

    /// `POST /cgi-bin/tags/members/batchtagging`: tags up to [`MAX_BATCH_TAGGING`]
    /// followers (split longer lists with `chunks(MAX_BATCH_TAGGING)`).
    pub async fn batch_tag(
        &self,
        access_token: &str,
        tag_id: i64,
        openids: &[String],
    ) -> Result<(), ApiError> {
        if openids.is_empty() || openids.len() > MAX_BATCH_TAGGING {
            return Err(ApiError::InvalidRequest(format!(
                "batch tagging takes 1 to {MAX_BATCH_TAGGING} openids, not {}",
                openids.len()
            )));
        }
        let _: serde::de::IgnoredAny = self
            .post_json(
                "/cgi-bin/tags/members/batchtagging",
                &[("access_token", access_token)],
                &json!({ "openid_list": openids, "tagid": tag_id }),
            )
            .await?;
        Ok(())
    }
}

fn transport_error(api: &str, e: &reqwest::Error) -> ApiError {
    // `without_url` is not available on a borrowed error; the redaction below removes
    // the token and secret from the URL reqwest prints.
    ApiError::Transport {
        api: api.to_owned(),
        message: redact_secrets(&error_chain(e)),
        timeout: e.is_timeout(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads the answer (bounded), checks the HTTP status and `errcode`, decodes `T`.
async fn finish<T: DeserializeOwned>(
    api: &str,
    started: std::time::Instant,
    result: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ApiError> {
    let answer = read_answer(api, result).await;
    crate::metrics::observe_call(api, started.elapsed(), &answer);
    answer
}

async fn read_answer<T: DeserializeOwned>(
    api: &str,
    result: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ApiError> {
    let mut response = result.map_err(|e| transport_error(api, &e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ApiError::Http {
            api: api.to_owned(),
            status: status.as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(api, &e))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ApiError::Decode {
                api: api.to_owned(),
                message: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    decode_answer(api, &body)
}

/// Decodes a WeChat JSON answer: a non-zero `errcode` becomes its [`ApiError`].
pub fn decode_answer<T: DeserializeOwned>(api: &str, body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::Decode {
        api: api.to_owned(),
        message: redact_secrets(&e.to_string()),
    })?;
    if let Some(code) = value.get("errcode") {
        let code = code.as_i64().ok_or_else(|| ApiError::Decode {
            api: api.to_owned(),
            message: format!("errcode is not an integer: {code}"),
        })?;
        let message = value.get("errmsg").and_then(Value::as_str).unwrap_or("");
        if let Some(err) = ApiError::from_errcode(code, message, api) {
            return Err(err);
        }
    }
    serde_json::from_value(value).map_err(|e| ApiError::Decode {
        api: api.to_owned(),
        message: redact_secrets(&e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn forty_days_become_six_seven_day_windows() {
        let windows = split_date_range(day("2026-01-01"), day("2026-02-09"), 7).unwrap();
        let days: Vec<i64> = windows.iter().map(DateWindow::days).collect();
        assert_eq!(days, vec![7, 7, 7, 7, 7, 5]);
        assert_eq!(windows[0].begin, day("2026-01-01"));
        assert_eq!(windows[0].end, day("2026-01-07"));
        assert_eq!(windows[1].begin, day("2026-01-08"));
        assert_eq!(windows[5].begin, day("2026-02-05"));
        assert_eq!(windows[5].end, day("2026-02-09"));
        // Consecutive, no gaps or overlaps.
        for pair in windows.windows(2) {
            assert_eq!(pair[0].end.succ_opt(), Some(pair[1].begin));
        }
    }

    #[test]
    fn windows_edge_cases() {
        let one = split_date_range(day("2026-03-01"), day("2026-03-01"), 7).unwrap();
        assert_eq!(
            one,
            vec![DateWindow {
                begin: day("2026-03-01"),
                end: day("2026-03-01")
            }]
        );
        let exact = split_date_range(day("2026-03-01"), day("2026-03-14"), 7).unwrap();
        assert_eq!(exact.len(), 2);
        assert_eq!(exact[1].end, day("2026-03-14"));
        let daily = split_date_range(day("2026-02-27"), day("2026-03-02"), 1).unwrap();
        assert_eq!(daily.len(), 4);
        assert!(daily.iter().all(|w| w.begin == w.end));
        assert_eq!(daily[2].begin, day("2026-03-01"));
        assert!(matches!(
            split_date_range(day("2026-03-02"), day("2026-03-01"), 7),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(split_date_range(day("2026-03-01"), day("2026-03-02"), 0).is_err());
        // The last representable day does not overflow.
        let w = split_date_range(NaiveDate::MAX, NaiveDate::MAX, 7).unwrap();
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn endpoint_limits() {
        assert_eq!(DatacubeEndpoint::UserSummary.max_days(), 7);
        assert_eq!(DatacubeEndpoint::UserCumulate.max_days(), 7);
        assert_eq!(DatacubeEndpoint::UserRead.max_days(), 1);
        assert_eq!(DatacubeEndpoint::UserShare.max_days(), 1);
        assert_eq!(
            DatacubeEndpoint::from_path("/datacube/getusershare"),
            Some(DatacubeEndpoint::UserShare)
        );
        assert_eq!(
            DatacubeEndpoint::from_path("/datacube/getarticlesummary"),
            None
        );
    }

    #[test]
    fn errcodes_are_classified() {
        let c = |code| ApiError::from_errcode(code, "m", "/p");
        assert_eq!(c(0), None);
        assert!(c(-1).unwrap().is_busy());
        for code in [40001, 40014, 42001] {
            let e = c(code).unwrap();
            assert!(e.is_token_invalid());
            assert_eq!(e.errcode(), Some(code));
        }
        assert_eq!(
            c(45009),
            Some(ApiError::QuotaExceeded {
                api: "/p".into(),
                message: "m".into()
            })
        );
        assert!(matches!(c(45011), Some(ApiError::TooFrequent { .. })));
        assert!(matches!(
            c(45015),
            Some(ApiError::ReplyWindowExpired { .. })
        ));
        assert!(matches!(c(45047), Some(ApiError::TooManyMessages { .. })));
        assert!(matches!(c(48001), Some(ApiError::NotAuthorised { .. })));
        assert!(matches!(c(40164), Some(ApiError::IpNotWhitelisted { .. })));
        assert_eq!(
            c(40003),
            Some(ApiError::Other {
                code: 40003,
                message: "m".into()
            })
        );
        for code in [-1, 40001, 45009, 45011, 45015, 45047, 48001, 40164, 40003] {
            assert_eq!(c(code).unwrap().errcode(), Some(code));
        }
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_secrets(
                "error sending request for url (http://x/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=S3CR3T)"
            ),
            "error sending request for url (http://x/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=<redacted>)"
        );
        assert_eq!(
            redact_secrets("http://x/a?access_token=TOK&b=1 and access_token=T2"),
            "http://x/a?access_token=<redacted>&b=1 and access_token=<redacted>"
        );
        assert_eq!(
            redact_secrets(r#"{"access_token":"TOK","expires_in":7200,"secret":"s"}"#),
            r#"{"access_token":"<redacted>","expires_in":7200,"secret":"<redacted>"}"#
        );
        assert_eq!(redact_secrets("nothing here"), "nothing here");
        assert_eq!(redact_secrets("access_token="), "access_token=");
    }

    #[test]
    fn answers_decode_and_errcodes_win() {
        let token: AccessToken = decode_answer(
            "/cgi-bin/token",
            br#"{"access_token":"T","expires_in":7200}"#,
        )
        .unwrap();
        assert_eq!(token.access_token, "T");
        assert_eq!(token.expires_in, 7200);
        assert!(!format!("{token:?}").contains("\"T\""));
        let err = decode_answer::<AccessToken>(
            "/cgi-bin/token",
            br#"{"errcode":40164,"errmsg":"invalid ip 1.2.3.4, not in whitelist"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(err, ApiError::IpNotWhitelisted { ref message } if message.contains("1.2.3.4"))
        );
        // errcode 0 with a payload is success.
        let sub: PublishSubmission = decode_answer(
            "/cgi-bin/freepublish/submit",
            br#"{"errcode":0,"errmsg":"ok","publish_id":100000001,"msg_data_id":2247483651}"#,
        )
        .unwrap();
        assert_eq!(sub.publish_id, "100000001");
        assert_eq!(sub.msg_data_id.as_deref(), Some("2247483651"));
        assert!(matches!(
            decode_answer::<AccessToken>("/x", b"<html>"),
            Err(ApiError::Decode { .. })
        ));
        assert!(matches!(
            decode_answer::<AccessToken>("/x", br#"{"errcode":"x"}"#),
            Err(ApiError::Decode { .. })
        ));
    }

    #[test]
    fn custom_message_json() {
        assert_eq!(
            CustomMessage::text("o1", "你好").to_json(),
            json!({"touser":"o1","msgtype":"text","text":{"content":"你好"}})
        );
        let news = CustomMessage::news(
            "o1",
            CustomNewsArticle {
                title: "t".into(),
                description: "d".into(),
                url: "https://e/1".into(),
                picurl: "https://e/p.jpg".into(),
            },
        );
        assert_eq!(
            news.to_json(),
            json!({"touser":"o1","msgtype":"news","news":{"articles":[
                {"title":"t","description":"d","url":"https://e/1","picurl":"https://e/p.jpg"}]}})
        );
    }

    #[test]
    fn draft_article_serialises_without_read_only_fields() {
        let a = DraftArticle {
            title: "标题".into(),
            content: "<p>x</p>".into(),
            thumb_media_id: "M".into(),
            need_open_comment: 1,
            url: Some("https://preview".into()),
            ..DraftArticle::default()
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"title":"标题","content":"<p>x</p>","thumb_media_id":"M",
                   "need_open_comment":1,"only_fans_can_comment":0})
        );
    }
}
