//! WeChat's side of the API, as plain synchronous rules over the simulator's state.
//!
//! Every request goes through [`SimState::handle`]: it is recorded, matched against
//! injected errors, authenticated (token endpoints check appid and secret; the others
//! the access token), checked against the daily quota, and then served. Answers are the
//! JSON WeChat sends, errors included (`{"errcode": …, "errmsg": …}`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, NaiveDate};
use serde::Serialize;
use serde_json::{Value, json};
use wxpilot_wechat::{DatacubeEndpoint, MessageCrypt};

use crate::config::{AccountSpec, CallbackMode, SimConfig};

/// Tags an account may create (WeChat answers 45056 beyond).
const MAX_TAGS: usize = 100;

/// One API request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiCall {
    /// Simulated time of the call, Unix ms.
    pub at_ms: i64,
    /// The path (`/cgi-bin/message/custom/send`).
    pub path: String,
    /// The account, when the request identified one.
    pub appid: Option<String>,
    /// The errcode answered (0 for success).
    pub errcode: i64,
}

/// A customer-service message WeChat accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentMessage {
    /// Simulated time, Unix ms.
    pub at_ms: i64,
    /// The account.
    pub appid: String,
    /// The follower.
    pub touser: String,
    /// `text`, `news`, …
    pub msgtype: String,
    /// The text of a text message.
    pub content: Option<String>,
    /// The whole request body.
    pub body: Value,
}

/// A draft stored by `draft/add`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DraftRecord {
    /// The account.
    pub appid: String,
    /// The draft's media id.
    pub media_id: String,
    /// The articles as sent.
    pub articles: Vec<Value>,
    /// Simulated time, Unix ms.
    pub at_ms: i64,
}

/// A `freepublish/submit` WeChat accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishRecord {
    /// The account.
    pub appid: String,
    /// The publish job.
    pub publish_id: String,
    /// The draft published.
    pub media_id: String,
    /// Article id of the published draft.
    pub article_id: String,
    /// Simulated time, Unix ms.
    pub at_ms: i64,
}

/// A tag call WeChat accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TagCall {
    /// `tags/create`.
    Create {
        /// The account.
        appid: String,
        /// The new tag's id.
        id: i64,
        /// Its name.
        name: String,
    },
    /// `tags/members/batchtagging`.
    BatchTag {
        /// The account.
        appid: String,
        /// The tag.
        tag_id: i64,
        /// The followers tagged.
        openids: Vec<String>,
    },
}

/// What an upload was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UploadKind {
    /// `media/uploadimg` (article body image).
    ArticleImage,
    /// `material/add_material?type=thumb`.
    Thumb,
}

/// An accepted upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadRecord {
    /// The account.
    pub appid: String,
    /// What it was for.
    pub kind: UploadKind,
    /// File name of the `media` part.
    pub file_name: String,
    /// Content type of the part.
    pub content_type: String,
    /// Size in bytes.
    pub size: usize,
    /// URL (images) or media id (thumbs) handed back.
    pub id: String,
}

/// One datacube request that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatacubeCall {
    /// The account.
    pub appid: String,
    /// The endpoint path.
    pub path: String,
    /// First day asked.
    pub begin_date: NaiveDate,
    /// Last day asked.
    pub end_date: NaiveDate,
}

/// An error to answer instead of serving, a number of times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// Only for this account (`None`: any).
    pub appid: Option<String>,
    /// Only for this path (`None`: any, token endpoints included).
    pub path: Option<String>,
    /// The errcode to answer.
    pub errcode: i64,
    /// The errmsg to answer.
    pub errmsg: String,
    /// How many more requests get it.
    pub remaining: u32,
}

impl Injection {
    /// The next `times` requests on `path` (any account) answer `errcode`.
    pub fn on_path(path: &str, errcode: i64, times: u32) -> Self {
        Self {
            appid: None,
            path: Some(path.to_owned()),
            errcode,
            errmsg: default_errmsg(errcode).to_owned(),
            remaining: times,
        }
    }

    /// The next `times` requests, any path and account, answer `-1` busy.
    pub fn busy(times: u32) -> Self {
        Self {
            appid: None,
            path: None,
            errcode: -1,
            errmsg: default_errmsg(-1).to_owned(),
            remaining: times,
        }
    }

    fn matches(&self, path: &str, appid: Option<&str>) -> bool {
        self.remaining > 0
            && self.path.as_deref().is_none_or(|p| p == path)
            && self
                .appid
                .as_deref()
                .is_none_or(|a| appid.is_some_and(|b| a == b))
    }
}

/// The errmsg WeChat uses for an errcode (abbreviated).
pub fn default_errmsg(errcode: i64) -> &'static str {
    match errcode {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40007 => "invalid media_id",
        40009 => "invalid image size",
        40013 => "invalid appid",
        40032 => "invalid openid list size",
        40125 => "invalid appsecret",
        40164 => "invalid ip, not in whitelist",
        41001 => "access_token missing",
        41005 => "media data missing",
        42001 => "access_token expired",
        44003 => "empty news data",
        44004 => "empty content",
        45008 => "article size out of limit",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit",
        45015 => "response out of time limit or subscription is canceled",
        45047 => "out of response count limit",
        45056 => "too many tags",
        45157 => "invalid tag name",
        45158 => "tag name too long",
        45159 => "invalid tag id",
        47001 => "data format error",
        48001 => "api unauthorized",
        61500 => "date format error",
        61501 => "date range error",
        _ => "error",
    }
}

fn err(errcode: i64) -> Value {
    json!({ "errcode": errcode, "errmsg": default_errmsg(errcode) })
}

fn ok() -> Value {
    json!({ "errcode": 0, "errmsg": "ok" })
}

#[derive(Debug, Clone)]
struct IssuedToken {
    appid: String,
    stable: bool,
    expires_at_ms: i64,
    /// Set when a newer token was fetched: WeChat keeps the old one for 5 minutes.
    invalid_after_ms: Option<i64>,
}

impl IssuedToken {
    fn valid_until(&self) -> i64 {
        self.invalid_after_ms
            .map_or(self.expires_at_ms, |t| t.min(self.expires_at_ms))
    }
}

/// A follower as WeChat tracks them for one account.
#[derive(Debug, Clone)]
pub(crate) struct Follower {
    pub(crate) subscribed_at_ms: i64,
    pub(crate) last_message_ms: Option<i64>,
    pub(crate) sent_in_window: u32,
    pub(crate) tags: Vec<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) spec: AccountSpec,
    pub(crate) crypt: MessageCrypt,
    /// Openids in subscription order.
    pub(crate) follower_order: Vec<String>,
    pub(crate) followers: HashMap<String, Follower>,
    tags: BTreeMap<i64, String>,
    thumbs: Vec<String>,
    stable_token: Option<String>,
    ip_blocked: bool,
    datacube: HashMap<String, Vec<Value>>,
    quotas: HashMap<String, u32>,
}

/// Everything the simulator knows and has recorded.
#[derive(Debug)]
pub struct SimState {
    pub(crate) config: SimConfig,
    pub(crate) accounts: HashMap<String, Account>,
    tokens: HashMap<String, IssuedToken>,
    token_requests: HashMap<String, u32>,
    stable_token_requests: HashMap<String, u32>,
    /// (appid, path, Beijing date) → calls counted against the daily quota.
    quota_used: HashMap<(String, String, NaiveDate), u32>,
    injections: Vec<Injection>,
    datacube_max_days: HashMap<String, u32>,
    pub(crate) calls: Vec<ApiCall>,
    pub(crate) sent: Vec<SentMessage>,
    pub(crate) drafts: Vec<DraftRecord>,
    pub(crate) publishes: Vec<PublishRecord>,
    pub(crate) tag_calls: Vec<TagCall>,
    pub(crate) uploads: Vec<UploadRecord>,
    pub(crate) datacube_calls: Vec<DatacubeCall>,
    counter: u64,
    pub(crate) next_msg_id: u64,
}

/// A request handed to [`SimState::handle`].
#[derive(Debug, Clone, Default)]
pub struct SimRequest {
    /// The path.
    pub path: String,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// The JSON body, if the request had one that parsed.
    pub json: Option<Value>,
    /// The `media` part of a multipart body: (file name, content type, size).
    pub media: Option<(String, String, usize)>,
}

/// The calendar day in China at `unix_ms` (quotas reset and datacube "yesterday" there).
pub fn beijing_date(unix_ms: i64) -> NaiveDate {
    // China has used UTC+8 all year since 1991.
    const EIGHT_HOURS_MS: i64 = 8 * 3600 * 1000;
    DateTime::from_timestamp_millis(unix_ms.saturating_add(EIGHT_HOURS_MS))
        .unwrap_or_default()
        .date_naive()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SimState {
    pub(crate) fn new(config: SimConfig) -> Self {
        let datacube_max_days = DatacubeEndpoint::ALL
            .into_iter()
            .map(|e| (e.path().to_owned(), e.max_days()))
            .collect();
        Self {
            config,
            accounts: HashMap::new(),
            tokens: HashMap::new(),
            token_requests: HashMap::new(),
            stable_token_requests: HashMap::new(),
            quota_used: HashMap::new(),
            injections: Vec::new(),
            datacube_max_days,
            calls: Vec::new(),
            sent: Vec::new(),
            drafts: Vec::new(),
            publishes: Vec::new(),
            tag_calls: Vec::new(),
            uploads: Vec::new(),
            datacube_calls: Vec::new(),
            counter: 0,
            next_msg_id: 7_000_000_000_000_000_000,
        }
    }

    pub(crate) fn register(&mut self, spec: AccountSpec) -> Result<(), crate::SimError> {
        let crypt = MessageCrypt::new(&spec.token, &spec.encoding_aes_key, &spec.appid)
            .map_err(|e| crate::SimError::Config(format!("account {}: {e}", spec.appid)))?;
        let appid = spec.appid.clone();
        // Re-registering keeps followers and data but takes the new settings.
        match self.accounts.get_mut(&appid) {
            Some(existing) => {
                existing.spec = spec;
                existing.crypt = crypt;
            }
            None => {
                self.accounts.insert(
                    appid,
                    Account {
                        spec,
                        crypt,
                        follower_order: Vec::new(),
                        followers: HashMap::new(),
                        tags: BTreeMap::new(),
                        thumbs: Vec::new(),
                        stable_token: None,
                        ip_blocked: false,
                        datacube: HashMap::new(),
                        quotas: HashMap::new(),
                    },
                );
            }
        }
        Ok(())
    }

    pub(crate) fn account_mut(&mut self, appid: &str) -> Result<&mut Account, crate::SimError> {
        self.accounts
            .get_mut(appid)
            .ok_or_else(|| crate::SimError::UnknownAccount(appid.to_owned()))
    }

    pub(crate) fn inject(&mut self, injection: Injection) {
        self.injections.push(injection);
    }

    pub(crate) fn set_ip_blocked(
        &mut self,
        appid: &str,
        blocked: bool,
    ) -> Result<(), crate::SimError> {
        self.account_mut(appid)?.ip_blocked = blocked;
        Ok(())
    }

    pub(crate) fn set_daily_quota(
        &mut self,
        appid: &str,
        path: &str,
        limit: Option<u32>,
    ) -> Result<(), crate::SimError> {
        let account = self.account_mut(appid)?;
        match limit {
            Some(n) => account.quotas.insert(path.to_owned(), n),
            None => account.quotas.remove(path),
        };
        Ok(())
    }

    pub(crate) fn set_datacube_rows(
        &mut self,
        appid: &str,
        path: &str,
        rows: Vec<Value>,
    ) -> Result<(), crate::SimError> {
        self.account_mut(appid)?
            .datacube
            .insert(path.to_owned(), rows);
        Ok(())
    }

    pub(crate) fn set_datacube_max_days(&mut self, path: &str, days: u32) {
        self.datacube_max_days.insert(path.to_owned(), days);
    }

    pub(crate) fn token_requests(&self, appid: &str) -> u32 {
        self.token_requests.get(appid).copied().unwrap_or(0)
    }

    pub(crate) fn stable_token_requests(&self, appid: &str) -> u32 {
        self.stable_token_requests.get(appid).copied().unwrap_or(0)
    }

    /// The newest ordinary token issued to `appid` that is still valid.
    pub(crate) fn current_token(&self, appid: &str, now_ms: i64) -> Option<String> {
        self.tokens
            .iter()
            .filter(|(_, t)| t.appid == appid && !t.stable && t.invalid_after_ms.is_none())
            .filter(|(_, t)| now_ms < t.expires_at_ms)
            .map(|(k, _)| k.clone())
            .next()
    }

    /// Records a follower's message: it opens a new 48-hour customer-service window.
    pub(crate) fn follower_message(
        &mut self,
        appid: &str,
        openid: &str,
        now_ms: i64,
    ) -> Result<u64, crate::SimError> {
        self.next_msg_id += 1;
        let msg_id = self.next_msg_id;
        let account = self.account_mut(appid)?;
        let follower = ensure_follower(account, openid, now_ms);
        follower.last_message_ms = Some(now_ms);
        follower.sent_in_window = 0;
        Ok(msg_id)
    }

    pub(crate) fn add_follower(
        &mut self,
        appid: &str,
        openid: &str,
        now_ms: i64,
    ) -> Result<(), crate::SimError> {
        let account = self.account_mut(appid)?;
        ensure_follower(account, openid, now_ms);
        Ok(())
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let mut random = [0u8; 8];
        // Ids need only be unique here; the counter guarantees it even without randomness.
        let _ = getrandom::fill(&mut random);
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        format!("{prefix}{}_{hex}", self.counter)
    }

    fn record(&mut self, now_ms: i64, path: &str, appid: Option<&str>, answer: &Value) {
        let errcode = answer.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        self.calls.push(ApiCall {
            at_ms: now_ms,
            path: path.to_owned(),
            appid: appid.map(str::to_owned),
            errcode,
        });
    }

    /// Serves one request at simulated time `now_ms`; returns WeChat's JSON answer.
    pub fn handle(&mut self, req: &SimRequest, now_ms: i64) -> Value {
        let path = req.path.as_str();
        let token_endpoint = matches!(path, "/cgi-bin/token" | "/cgi-bin/stable_token");
        let appid_hint: Option<String> = if token_endpoint {
            param(req, "appid")
        } else {
            req.query
                .get("access_token")
                .and_then(|t| self.tokens.get(t))
                .map(|t| t.appid.clone())
        };
        let answer = self.serve(req, now_ms, token_endpoint, appid_hint.as_deref());
        self.record(now_ms, path, appid_hint.as_deref(), &answer);
        answer
    }

    fn serve(
        &mut self,
        req: &SimRequest,
        now_ms: i64,
        token_endpoint: bool,
        appid_hint: Option<&str>,
    ) -> Value {
        let path = req.path.as_str();
        if !is_known_path(path) {
            return json!({ "errcode": 40066, "errmsg": "invalid url" });
        }
        if let Some(inj) = self
            .injections
            .iter_mut()
            .find(|i| i.matches(path, appid_hint))
        {
            inj.remaining -= 1;
            return json!({ "errcode": inj.errcode, "errmsg": inj.errmsg });
        }
        self.injections.retain(|i| i.remaining > 0);

        let appid = if token_endpoint {
            match self.check_credentials(req) {
                Ok(appid) => appid,
                Err(answer) => return answer,
            }
        } else {
            match self.check_access_token(req, now_ms) {
                Ok(appid) => appid,
                Err(answer) => return answer,
            }
        };
        if let Some(answer) = self.check_quota(&appid, path, now_ms) {
            return answer;
        }
        match path {
            "/cgi-bin/token" => self.issue_token(&appid, now_ms),
            "/cgi-bin/stable_token" => {
                let force = req
                    .json
                    .as_ref()
                    .and_then(|b| b.get("force_refresh"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                self.issue_stable_token(&appid, force, now_ms)
            }
            "/cgi-bin/message/custom/send" => self.custom_send(&appid, req, now_ms),
            "/cgi-bin/draft/add" => self.draft_add(&appid, req, now_ms),
            "/cgi-bin/draft/get" => self.draft_get(&appid, req),
            "/cgi-bin/freepublish/submit" => self.publish_submit(&appid, req, now_ms),
            "/cgi-bin/freepublish/get" => self.publish_get(&appid, req),
            "/cgi-bin/media/uploadimg" => self.upload(&appid, req, UploadKind::ArticleImage),
            "/cgi-bin/material/add_material" => {
                if req.query.get("type").map(String::as_str) == Some("thumb") {
                    self.upload(&appid, req, UploadKind::Thumb)
                } else {
                    // Only thumbs are simulated.
                    err(40007)
                }
            }
            "/cgi-bin/user/info" => self.user_info(&appid, req),
            "/cgi-bin/user/get" => self.user_list(&appid, req),
            "/cgi-bin/tags/get" => self.tag_list(&appid),
            "/cgi-bin/tags/create" => self.tag_create(&appid, req),
            "/cgi-bin/tags/members/batchtagging" => self.batch_tag(&appid, req),
            p if DatacubeEndpoint::from_path(p).is_some() => self.datacube(&appid, p, req, now_ms),
            _ => json!({ "errcode": 40066, "errmsg": "invalid url" }),
        }
    }

    fn check_credentials(&self, req: &SimRequest) -> Result<String, Value> {
        if param(req, "grant_type").as_deref() != Some("client_credential") {
            return Err(err(40002));
        }
        let appid = param(req, "appid").ok_or_else(|| err(40013))?;
        let account = self.accounts.get(&appid).ok_or_else(|| err(40013))?;
        if account.ip_blocked {
            return Err(json!({
                "errcode": 40164,
                "errmsg": "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist"
            }));
        }
        if param(req, "secret").as_deref() != Some(account.spec.secret.as_str()) {
            return Err(err(40125));
        }
        Ok(appid)
    }

    fn check_access_token(&self, req: &SimRequest, now_ms: i64) -> Result<String, Value> {
        let token = req.query.get("access_token").ok_or_else(|| err(41001))?;
        let issued = self.tokens.get(token).ok_or_else(|| err(40001))?;
        if let Some(after) = issued.invalid_after_ms
            && now_ms >= after
            && after < issued.expires_at_ms
        {
            return Err(err(40001));
        }
        if now_ms >= issued.expires_at_ms {
            return Err(err(42001));
        }
        let account = self.accounts.get(&issued.appid).ok_or_else(|| err(40001))?;
        if account.ip_blocked {
            return Err(err(40164));
        }
        Ok(issued.appid.clone())
    }

    fn check_quota(&mut self, appid: &str, path: &str, now_ms: i64) -> Option<Value> {
        let limit = *self.accounts.get(appid)?.quotas.get(path)?;
        let used = self
            .quota_used
            .entry((appid.to_owned(), path.to_owned(), beijing_date(now_ms)))
            .or_insert(0);
        if *used >= limit {
            return Some(err(45009));
        }
        *used += 1;
        None
    }

    fn issue_token(&mut self, appid: &str, now_ms: i64) -> Value {
        *self.token_requests.entry(appid.to_owned()).or_insert(0) += 1;
        let grace = ms(self.config.old_token_grace);
        for t in self.tokens.values_mut() {
            if t.appid == appid && !t.stable {
                let until = now_ms.saturating_add(grace);
                t.invalid_after_ms = Some(t.invalid_after_ms.map_or(until, |u| u.min(until)));
            }
        }
        let token = self.next_id("SIMTOKEN_");
        let lifetime = self.config.token_lifetime;
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                appid: appid.to_owned(),
                stable: false,
                expires_at_ms: now_ms.saturating_add(ms(lifetime)),
                invalid_after_ms: None,
            },
        );
        json!({ "access_token": token, "expires_in": lifetime.as_secs() })
    }

    fn issue_stable_token(&mut self, appid: &str, force: bool, now_ms: i64) -> Value {
        *self
            .stable_token_requests
            .entry(appid.to_owned())
            .or_insert(0) += 1;
        let renew = ms(self.config.stable_renew_window);
        let current = self
            .accounts
            .get(appid)
            .and_then(|a| a.stable_token.clone())
            .and_then(|t| self.tokens.get(&t).map(|i| (t, i.valid_until())));
        if let Some((token, until)) = &current
            && !force
            && until.saturating_sub(now_ms) > renew
        {
            let remaining_secs = (until - now_ms) / 1000;
            return json!({ "access_token": token, "expires_in": remaining_secs });
        }
        if force
            && let Some((old, _)) = &current
            && let Some(t) = self.tokens.get_mut(old)
        {
            // Forced refresh invalidates the previous stable token at once.
            t.invalid_after_ms = Some(now_ms);
        }
        let token = self.next_id("SIMSTABLE_");
        let lifetime = self.config.token_lifetime;
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                appid: appid.to_owned(),
                stable: true,
                expires_at_ms: now_ms.saturating_add(ms(lifetime)),
                invalid_after_ms: None,
            },
        );
        if let Some(a) = self.accounts.get_mut(appid) {
            a.stable_token = Some(token.clone());
        }
        json!({ "access_token": token, "expires_in": lifetime.as_secs() })
    }

    fn custom_send(&mut self, appid: &str, req: &SimRequest, now_ms: i64) -> Value {
        let window = ms(self.config.reply_window);
        let per_window = self.config.messages_per_window;
        let Some(account) = self.accounts.get_mut(appid) else {
            return err(40013);
        };
        if !account.spec.verified {
            return err(48001);
        }
        let Some(body) = req.json.clone() else {
            return err(47001);
        };
        let Some(touser) = body
            .get("touser")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return err(40003);
        };
        let msgtype = body
            .get("msgtype")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let content = match msgtype.as_str() {
            "text" => {
                let text = body.pointer("/text/content").and_then(Value::as_str);
                match text {
                    Some(t) if !t.is_empty() => Some(t.to_owned()),
                    _ => return err(44004),
                }
            }
            "news" => {
                let n = body
                    .pointer("/news/articles")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                if n == 0 {
                    return err(44003);
                }
                if n > 1 {
                    return err(45008);
                }
                None
            }
            _ => return err(47001),
        };
        let Some(follower) = account.followers.get_mut(&touser) else {
            return err(40003);
        };
        let in_window = follower
            .last_message_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < window);
        if !in_window {
            return err(45015);
        }
        if follower.sent_in_window >= per_window {
            return err(45047);
        }
        follower.sent_in_window += 1;
        self.sent.push(SentMessage {
            at_ms: now_ms,
            appid: appid.to_owned(),
            touser,
            msgtype,
            content,
            body,
        });
        ok()
    }

    fn draft_add(&mut self, appid: &str, req: &SimRequest, now_ms: i64) -> Value {
        let articles = req
            .json
            .as_ref()
            .and_then(|b| b.get("articles"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if articles.is_empty() {
            return err(44003);
        }
        if articles.len() > 8 {
            return err(45008);
        }
        let Some(account) = self.accounts.get(appid) else {
            return err(40013);
        };
        for a in &articles {
            let text = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
            if text("title").is_empty() || text("content").is_empty() {
                return err(44004);
            }
            if !account.thumbs.iter().any(|t| t == text("thumb_media_id")) {
                return err(40007);
            }
        }
        let media_id = self.next_id("DRAFT_");
        self.drafts.push(DraftRecord {
            appid: appid.to_owned(),
            media_id: media_id.clone(),
            articles,
            at_ms: now_ms,
        });
        json!({ "media_id": media_id })
    }

    fn draft_get(&self, appid: &str, req: &SimRequest) -> Value {
        let media_id = json_str(req, "media_id");
        match self
            .drafts
            .iter()
            .find(|d| d.appid == appid && Some(d.media_id.as_str()) == media_id.as_deref())
        {
            Some(d) => {
                let items: Vec<Value> = d
                    .articles
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let mut a = a.clone();
                        if let Some(obj) = a.as_object_mut() {
                            obj.insert(
                                "url".into(),
                                json!(format!("https://mp.weixin.qq.com/s/sim_{}_{i}", d.media_id)),
                            );
                        }
                        a
                    })
                    .collect();
                json!({ "news_item": items })
            }
            None => err(40007),
        }
    }

    fn publish_submit(&mut self, appid: &str, req: &SimRequest, now_ms: i64) -> Value {
        let media_id = json_str(req, "media_id");
        let known = self
            .drafts
            .iter()
            .any(|d| d.appid == appid && Some(d.media_id.as_str()) == media_id.as_deref());
        let Some(media_id) = media_id.filter(|_| known) else {
            return err(40007);
        };
        self.counter += 1;
        let publish_id = format!("{}", 2_247_483_000u64 + self.counter);
        let article_id = self.next_id("ARTICLE_");
        self.publishes.push(PublishRecord {
            appid: appid.to_owned(),
            publish_id: publish_id.clone(),
            media_id,
            article_id,
            at_ms: now_ms,
        });
        json!({ "errcode": 0, "errmsg": "ok", "publish_id": publish_id, "msg_data_id": self.counter })
    }

    fn publish_get(&self, appid: &str, req: &SimRequest) -> Value {
        let publish_id = json_str(req, "publish_id");
        let Some(p) = self
            .publishes
            .iter()
            .find(|p| p.appid == appid && Some(p.publish_id.as_str()) == publish_id.as_deref())
        else {
            return err(40007);
        };
        let count = self
            .drafts
            .iter()
            .find(|d| d.media_id == p.media_id)
            .map_or(0, |d| d.articles.len());
        let items: Vec<Value> = (1..=count)
            .map(|idx| {
                json!({ "idx": idx, "article_url": format!("https://mp.weixin.qq.com/s/{}_{idx}", p.article_id) })
            })
            .collect();
        json!({
            "publish_id": p.publish_id,
            "publish_status": 0,
            "article_id": p.article_id,
            "article_detail": { "count": count, "item": items },
            "fail_idx": [],
        })
    }

    fn upload(&mut self, appid: &str, req: &SimRequest, kind: UploadKind) -> Value {
        let Some((file_name, content_type, size)) = req.media.clone() else {
            return err(41005);
        };
        let limit = match kind {
            UploadKind::ArticleImage => 1024 * 1024,
            UploadKind::Thumb => 64 * 1024,
        };
        if size == 0 || size > limit {
            return err(40009);
        }
        let (id, answer) = match kind {
            UploadKind::ArticleImage => {
                let url = format!("http://mmbiz.qpic.cn/sim/{}", self.next_id("IMG_"));
                (url.clone(), json!({ "url": url }))
            }
            UploadKind::Thumb => {
                let media_id = self.next_id("THUMB_");
                let url = format!("http://mmbiz.qpic.cn/sim/{media_id}");
                (
                    media_id.clone(),
                    json!({ "media_id": media_id, "url": url }),
                )
            }
        };
        if kind == UploadKind::Thumb
            && let Some(a) = self.accounts.get_mut(appid)
        {
            a.thumbs.push(id.clone());
        }
        self.uploads.push(UploadRecord {
            appid: appid.to_owned(),
            kind,
            file_name,
            content_type,
            size,
            id,
        });
        answer
    }

    fn user_info(&self, appid: &str, req: &SimRequest) -> Value {
        let Some(account) = self.accounts.get(appid) else {
            return err(40013);
        };
        let openid = req.query.get("openid").cloned().unwrap_or_default();
        match account.followers.get(&openid) {
            Some(f) => json!({
                "subscribe": 1,
                "openid": openid,
                "language": req.query.get("lang").cloned().unwrap_or_else(|| "zh_CN".into()),
                "subscribe_time": f.subscribed_at_ms / 1000,
                "remark": "",
                "groupid": 0,
                "tagid_list": f.tags,
                "subscribe_scene": "ADD_SCENE_OTHERS",
                "qr_scene": 0,
                "qr_scene_str": "",
            }),
            None => err(40003),
        }
    }

    fn user_list(&self, appid: &str, req: &SimRequest) -> Value {
        const PAGE: usize = 10_000;
        let Some(account) = self.accounts.get(appid) else {
            return err(40013);
        };
        let next = req
            .query
            .get("next_openid")
            .map(String::as_str)
            .unwrap_or("");
        let start = if next.is_empty() {
            0
        } else {
            match account.follower_order.iter().position(|o| o == next) {
                Some(i) => i + 1,
                None => return err(40003),
            }
        };
        let page: Vec<&String> = account
            .follower_order
            .iter()
            .skip(start)
            .take(PAGE)
            .collect();
        let next_openid = page.last().map_or(String::new(), |o| (*o).clone());
        let mut answer = json!({
            "total": account.follower_order.len(),
            "count": page.len(),
            "next_openid": next_openid,
        });
        if !page.is_empty()
            && let Some(obj) = answer.as_object_mut()
        {
            obj.insert("data".into(), json!({ "openid": page }));
        }
        answer
    }

    fn tag_list(&self, appid: &str) -> Value {
        let Some(account) = self.accounts.get(appid) else {
            return err(40013);
        };
        let tags: Vec<Value> = account
            .tags
            .iter()
            .map(|(id, name)| {
                let count = account
                    .followers
                    .values()
                    .filter(|f| f.tags.contains(id))
                    .count();
                json!({ "id": id, "name": name, "count": count })
            })
            .collect();
        json!({ "tags": tags })
    }

    fn tag_create(&mut self, appid: &str, req: &SimRequest) -> Value {
        let name = req
            .json
            .as_ref()
            .and_then(|b| b.pointer("/tag/name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if name.is_empty() {
            return err(45157);
        }
        if name.chars().count() > 30 {
            return err(45158);
        }
        let Some(account) = self.accounts.get_mut(appid) else {
            return err(40013);
        };
        if account.tags.values().any(|n| *n == name) {
            return err(45157);
        }
        if account.tags.len() >= MAX_TAGS {
            return err(45056);
        }
        // Ids 0–2 are WeChat's own (blacklist, star, …); ours start at 100.
        let id = account.tags.keys().next_back().map_or(100, |k| k + 1);
        account.tags.insert(id, name.clone());
        self.tag_calls.push(TagCall::Create {
            appid: appid.to_owned(),
            id,
            name: name.clone(),
        });
        json!({ "tag": { "id": id, "name": name } })
    }

    fn batch_tag(&mut self, appid: &str, req: &SimRequest) -> Value {
        let body = req.json.clone().unwrap_or(Value::Null);
        let Some(tag_id) = body.get("tagid").and_then(Value::as_i64) else {
            return err(45159);
        };
        let openids: Vec<String> = body
            .get("openid_list")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let Some(account) = self.accounts.get_mut(appid) else {
            return err(40013);
        };
        if !account.tags.contains_key(&tag_id) {
            return err(45159);
        }
        if openids.is_empty() || openids.len() > 50 {
            return err(40032);
        }
        if openids.iter().any(|o| !account.followers.contains_key(o)) {
            return err(40003);
        }
        for o in &openids {
            if let Some(f) = account.followers.get_mut(o)
                && !f.tags.contains(&tag_id)
            {
                f.tags.push(tag_id);
            }
        }
        self.tag_calls.push(TagCall::BatchTag {
            appid: appid.to_owned(),
            tag_id,
            openids,
        });
        ok()
    }

    fn datacube(&mut self, appid: &str, path: &str, req: &SimRequest, now_ms: i64) -> Value {
        let date =
            |k: &str| json_str(req, k).and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok());
        let (Some(begin), Some(end)) = (date("begin_date"), date("end_date")) else {
            return err(61500);
        };
        let max = i64::from(self.datacube_max_days.get(path).copied().unwrap_or(1));
        let days = (end - begin).num_days() + 1;
        // The latest day allowed is yesterday (China time).
        let yesterday = beijing_date(now_ms).pred_opt().unwrap_or(NaiveDate::MIN);
        if days < 1 || days > max || end > yesterday {
            return err(61501);
        }
        self.datacube_calls.push(DatacubeCall {
            appid: appid.to_owned(),
            path: path.to_owned(),
            begin_date: begin,
            end_date: end,
        });
        let rows: Vec<Value> = self
            .accounts
            .get(appid)
            .and_then(|a| a.datacube.get(path))
            .map(|rows| {
                rows.iter()
                    .filter(|r| {
                        r.get("ref_date")
                            .and_then(Value::as_str)
                            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                            .is_some_and(|d| d >= begin && d <= end)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        json!({ "list": rows })
    }

    /// The callback settings of `appid`.
    pub(crate) fn callback_of(
        &self,
        appid: &str,
    ) -> Result<(Option<String>, CallbackMode, MessageCrypt, AccountSpec), crate::SimError> {
        let a = self
            .accounts
            .get(appid)
            .ok_or_else(|| crate::SimError::UnknownAccount(appid.to_owned()))?;
        Ok((
            a.spec.callback_url.clone(),
            a.spec.mode,
            a.crypt.clone(),
            a.spec.clone(),
        ))
    }
}

/// The API paths the simulator serves.
fn is_known_path(path: &str) -> bool {
    matches!(
        path,
        "/cgi-bin/token"
            | "/cgi-bin/stable_token"
            | "/cgi-bin/message/custom/send"
            | "/cgi-bin/draft/add"
            | "/cgi-bin/draft/get"
            | "/cgi-bin/freepublish/submit"
            | "/cgi-bin/freepublish/get"
            | "/cgi-bin/media/uploadimg"
            | "/cgi-bin/material/add_material"
            | "/cgi-bin/user/info"
            | "/cgi-bin/user/get"
            | "/cgi-bin/tags/get"
            | "/cgi-bin/tags/create"
            | "/cgi-bin/tags/members/batchtagging"
    ) || DatacubeEndpoint::from_path(path).is_some()
}

fn ensure_follower<'a>(account: &'a mut Account, openid: &str, now_ms: i64) -> &'a mut Follower {
    if !account.followers.contains_key(openid) {
        account.follower_order.push(openid.to_owned());
    }
    account
        .followers
        .entry(openid.to_owned())
        .or_insert(Follower {
            subscribed_at_ms: now_ms,
            last_message_ms: None,
            sent_in_window: 0,
            tags: Vec::new(),
        })
}

/// A parameter from the query string or, failing that, the JSON body.
fn param(req: &SimRequest, key: &str) -> Option<String> {
    req.query.get(key).cloned().or_else(|| json_str(req, key))
}

fn json_str(req: &SimRequest, key: &str) -> Option<String> {
    req.json
        .as_ref()
        .and_then(|b| b.get(key))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}
