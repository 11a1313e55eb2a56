//! Shared access-token control: exactly one refresh per account across all processes.
//!
//! WeChat invalidates an account's previous access token 5 minutes after a new one is
//! fetched, so every process of every replica must use one shared store and only one of
//! them may refresh at a time. The policy, in [`TokenManager`]:
//!
//! * a token is refreshed ahead of its expiry ([`TokenConfig::refresh_margin`]);
//! * a refresh takes the store's lock for the account (with a TTL, so a crashed holder
//!   cannot block the others), then **re-reads the store**: another process may have
//!   refreshed while this one waited, and then its token is used instead of fetching;
//! * the new token is written with compare-and-set against the token seen under the lock;
//! * an API answer of 40001/40014/42001 first re-reads the store (another process may
//!   already hold a newer token) and refreshes only if the store still holds the stale
//!   token; then the call is retried — at most once per refresh, a bounded number of times;
//! * `-1` busy answers are retried with exponential backoff; 45009 (quota) is returned at
//!   once and flagged; everything else is returned to the caller.
//!
//! Stores: [`RedisTokenStore`] (production: every replica shares it) and
//! [`InMemoryTokenStore`] (the embedded single-process default).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::client::{AccessToken, ApiClient, ApiError, DatacubeEndpoint, split_date_range};
use crate::clock::{Clock, SystemClock};

/// A boxed future returned by [`TokenStore`] methods (keeps the trait object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the token store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend (Redis) failed or could not be reached.
    #[error("token store backend failed: {0}")]
    Backend(String),
    /// A stored entry could not be read.
    #[error("stored token entry is corrupt: {0}")]
    Corrupt(String),
    /// Another process held the refresh lock for longer than we wait.
    #[error("waited {waited_ms} ms for another process to refresh the token")]
    LockTimeout {
        /// How long we waited.
        waited_ms: u64,
    },
}

/// A token as kept in the store. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The access token.
    pub access_token: String,
    /// When WeChat stops accepting it, Unix milliseconds.
    pub expires_at_ms: i64,
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("access_token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Proof of holding an account's refresh lock: a random value only the holder knows,
/// so a holder whose lock expired cannot release the next holder's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    /// A fresh random lock value.
    pub fn random() -> Self {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut bytes = [0u8; 16];
        // On a failing OS generator fall back to time and a process counter: the value
        // need only differ between concurrent holders, not be secret.
        if getrandom::fill(&mut bytes).is_err() {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            bytes[..8].copy_from_slice(&crate::clock::system_now_unix_ms().to_le_bytes());
            bytes[8..].copy_from_slice(&(n ^ u64::from(std::process::id())).to_le_bytes());
        }
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The lock value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where access tokens are shared, keyed by account (appid, plus a suffix for stable
/// tokens). Implementations must make `compare_and_set` and `try_lock` atomic across
/// every process that uses the same store.
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The current token of `key`, if any.
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredToken>>;

    /// Writes `new` only if the current token is `expected` (`None`: no token stored).
    /// Returns whether it was written. `ttl` bounds how long the entry lives.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a str>,
        new: &'a StoredToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Takes the refresh lock of `key` for `ttl` if nobody holds it.
    fn try_lock<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<LockToken>>;

    /// Releases the lock if `lock` still holds it; returns whether it did.
    fn unlock<'a>(&'a self, key: &'a str, lock: &'a LockToken) -> StoreFuture<'a, bool>;
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent under any panic (each update is a single insert/remove).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The store of the embedded (single-process) deployment. Lock TTLs use the monotonic
/// clock; entries expire when the token does (by the stored expiry).
#[derive(Debug, Default)]
pub struct InMemoryTokenStore {
    tokens: Mutex<HashMap<String, StoredToken>>,
    locks: Mutex<HashMap<String, (LockToken, std::time::Instant)>>,
}

impl InMemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TokenStore for InMemoryTokenStore {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredToken>> {
        let found = lock_ignoring_poison(&self.tokens).get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a str>,
        new: &'a StoredToken,
        _ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let mut tokens = lock_ignoring_poison(&self.tokens);
        let current = tokens.get(key).map(|t| t.access_token.as_str());
        let swapped = current == expected;
        if swapped {
            tokens.insert(key.to_owned(), new.clone());
        }
        drop(tokens);
        Box::pin(async move { Ok(swapped) })
    }

    fn try_lock<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<LockToken>> {
        let now = std::time::Instant::now();
        let mut locks = lock_ignoring_poison(&self.locks);
        let free = locks.get(key).is_none_or(|(_, until)| *until <= now);
        let taken = if free {
            let lock = LockToken::random();
            locks.insert(key.to_owned(), (lock.clone(), now + ttl));
            Some(lock)
        } else {
            None
        };
        drop(locks);
        Box::pin(async move { Ok(taken) })
    }

    fn unlock<'a>(&'a self, key: &'a str, lock: &'a LockToken) -> StoreFuture<'a, bool> {
        let mut locks = lock_ignoring_poison(&self.locks);
        let ours = locks.get(key).is_some_and(|(held, _)| held == lock);
        if ours {
            locks.remove(key);
        }
        drop(locks);
        Box::pin(async move { Ok(ours) })
    }
}

/// Compare-and-set of the token hash: writes only if the stored token is ARGV[1]
/// ('' = no entry).
const CAS_SCRIPT: &str = r"
local cur = redis.call('HGET', KEYS[1], 'access_token')
if (ARGV[1] == '' and not cur) or cur == ARGV[1] then
  redis.call('HSET', KEYS[1], 'access_token', ARGV[2], 'expires_at_ms', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
";

/// Deletes the lock only if it still holds our value.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The production store: one Redis shared by every replica. Keys are
/// `{prefix}access-token:{key}` (a hash: `access_token`, `expires_at_ms`) and
/// `{prefix}access-token-lock:{key}` (`SET NX PX`).
#[derive(Clone)]
pub struct RedisTokenStore {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    cas: Arc<redis::Script>,
    unlock: Arc<redis::Script>,
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn backend(e: &redis::RedisError) -> StoreError {
    // Redis errors can echo the URL (with its password): keep only the kind and detail.
    StoreError::Backend(format!("{:?}: {}", e.kind(), e.detail().unwrap_or("")))
}

impl RedisTokenStore {
    /// Connects to `url` (`redis://host:port/db`); keys start with `prefix`
    /// (for example `wxpilot:`).
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| backend(&e))?;
        let conn = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| backend(&e))?;
        Ok(Self::new(conn, prefix))
    }

    /// A store over an existing connection manager.
    pub fn new(conn: redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            cas: Arc::new(redis::Script::new(CAS_SCRIPT)),
            unlock: Arc::new(redis::Script::new(UNLOCK_SCRIPT)),
        }
    }

    fn token_key(&self, key: &str) -> String {
        format!("{}access-token:{key}", self.prefix)
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}access-token-lock:{key}", self.prefix)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl TokenStore for RedisTokenStore {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredToken>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let fields: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(self.token_key(key))
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(&e))?;
            if fields.is_empty() {
                return Ok(None);
            }
            let access_token = fields
                .get("access_token")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| StoreError::Corrupt("no access_token field".into()))?
                .clone();
            let expires_at_ms = fields
                .get("expires_at_ms")
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Corrupt("expires_at_ms is not a number".into()))?;
            Ok(Some(StoredToken {
                access_token,
                expires_at_ms,
            }))
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a str>,
        new: &'a StoredToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let written: i64 = self
                .cas
                .key(self.token_key(key))
                .arg(expected.unwrap_or(""))
                .arg(&new.access_token)
                .arg(new.expires_at_ms)
                .arg(millis(ttl))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(&e))?;
            Ok(written == 1)
        })
    }

    fn try_lock<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<LockToken>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let lock = LockToken::random();
            let answer: Option<String> = redis::cmd("SET")
                .arg(self.lock_key(key))
                .arg(lock.as_str())
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .query_async(&mut conn)
                .await
                .map_err(|e| backend(&e))?;
            Ok(answer.map(|_| lock))
        })
    }

    fn unlock<'a>(&'a self, key: &'a str, lock: &'a LockToken) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let deleted: i64 = self
                .unlock
                .key(self.lock_key(key))
                .arg(lock.as_str())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(&e))?;
            Ok(deleted == 1)
        })
    }
}

/// An account's API credentials. `Debug` redacts the secret.
#[derive(Clone)]
pub struct AccountCredentials {
    /// The appid.
    pub appid: String,
    /// The AppSecret.
    pub secret: SecretString,
    /// Use `/cgi-bin/stable_token` instead of `/cgi-bin/token`.
    pub use_stable_token: bool,
}

impl AccountCredentials {
    /// Credentials using the ordinary `/cgi-bin/token`.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            secret: SecretString::from(secret.into()),
            use_stable_token: false,
        }
    }

    /// The same credentials, using `/cgi-bin/stable_token` when `stable` is true.
    pub fn with_stable_token(mut self, stable: bool) -> Self {
        self.use_stable_token = stable;
        self
    }
}

impl fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountCredentials")
            .field("appid", &self.appid)
            .field("secret", &"<redacted>")
            .field("use_stable_token", &self.use_stable_token)
            .finish()
    }
}

/// Retries applied by [`TokenManager::call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after `-1` busy answers.
    pub busy_retries: u32,
    /// First backoff after a busy answer; doubles each time (with jitter).
    pub busy_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Retries after token-invalid answers (40001/40014/42001) in one call.
    pub token_retries: u32,
    /// Token refreshes one call may cause (the other retries use a token another
    /// process already stored).
    pub token_refreshes: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            busy_retries: 3,
            busy_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            token_retries: 2,
            token_refreshes: 1,
        }
    }
}

/// Timing of the token manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenConfig {
    /// Refresh this long before expiry (WeChat's stable token renews in its last 5 min).
    pub refresh_margin: Duration,
    /// TTL of the refresh lock: longer than a token fetch takes, short enough that a
    /// crashed holder does not stall the others for long.
    pub lock_ttl: Duration,
    /// How long to wait for another process's refresh before giving up.
    pub lock_wait: Duration,
    /// Pause between looks at the store while another process refreshes.
    pub lock_poll: Duration,
    /// Retry policy of [`TokenManager::call`].
    pub retry: RetryPolicy,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            lock_ttl: Duration::from_secs(15),
            lock_wait: Duration::from_secs(20),
            lock_poll: Duration::from_millis(50),
            retry: RetryPolicy::default(),
        }
    }
}

/// One account's access token, shared through a [`TokenStore`], and the call policy.
#[derive(Debug)]
pub struct TokenManager {
    client: ApiClient,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    account: AccountCredentials,
    config: TokenConfig,
    /// Last token seen, to spare a store round trip per call.
    cache: Mutex<Option<StoredToken>>,
    /// One refresh at a time within this process; the store lock covers the others.
    refresh_gate: tokio::sync::Mutex<()>,
    /// API paths that answered 45009 since the last [`Self::clear_quota_flags`].
    quota_flags: Mutex<HashSet<String>>,
}

impl TokenManager {
    /// A manager for `account` calling WeChat through `client`, sharing tokens via
    /// `store`, on the system clock with [`TokenConfig::default`].
    pub fn new(client: ApiClient, store: Arc<dyn TokenStore>, account: AccountCredentials) -> Self {
        Self {
            client,
            store,
            clock: Arc::new(SystemClock),
            account,
            config: TokenConfig::default(),
            cache: Mutex::new(None),
            refresh_gate: tokio::sync::Mutex::new(()),
            quota_flags: Mutex::new(HashSet::new()),
        }
    }

    /// The same manager with other timing.
    pub fn with_config(mut self, config: TokenConfig) -> Self {
        self.config = config;
        self
    }

    /// The same manager on another clock (tests, the simulator).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The account's appid.
    pub fn appid(&self) -> &str {
        &self.account.appid
    }

    /// The API client.
    pub fn client(&self) -> &ApiClient {
        &self.client
    }

    /// The timing in use.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// The store key of this account: stable and ordinary tokens are separate at WeChat.
    pub fn store_key(&self) -> String {
        if self.account.use_stable_token {
            format!("{}:stable", self.account.appid)
        } else {
            self.account.appid.clone()
        }
    }

    fn margin_ms(&self) -> i64 {
        i64::try_from(self.config.refresh_margin.as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether `t` can be used now: not within the refresh margin of its expiry, and not
    /// the token WeChat just refused.
    fn usable(&self, t: &StoredToken, stale: Option<&str>) -> bool {
        let now = self.clock.now_unix_ms();
        now < t.expires_at_ms.saturating_sub(self.margin_ms())
            && stale.is_none_or(|s| s != t.access_token)
    }

    fn cached(&self, stale: Option<&str>) -> Option<String> {
        lock_ignoring_poison(&self.cache)
            .as_ref()
            .filter(|t| self.usable(t, stale))
            .map(|t| t.access_token.clone())
    }

    fn remember(&self, t: &StoredToken) {
        *lock_ignoring_poison(&self.cache) = Some(t.clone());
    }

    /// A valid access token: from this process's cache, else the store, else a refresh
    /// (one process refreshes; the others wait for its result).
    pub async fn access_token(&self) -> Result<String, ApiError> {
        if let Some(t) = self.cached(None) {
            return Ok(t);
        }
        self.obtain(None).await
    }

    /// After WeChat refused `stale` (40001 and kin): the token to retry with. Re-reads
    /// the store first and refreshes only if the store still holds `stale`.
    pub async fn replace_stale(&self, stale: &str) -> Result<String, ApiError> {
        self.obtain(Some(stale)).await
    }

    /// The store's token if it is usable and not `stale`, without refreshing.
    async fn stored_newer_than(&self, stale: &str) -> Result<Option<String>, ApiError> {
        match self.store.load(&self.store_key()).await? {
            Some(t) if self.usable(&t, Some(stale)) => {
                self.remember(&t);
                Ok(Some(t.access_token))
            }
            _ => Ok(None),
        }
    }

    async fn obtain(&self, stale: Option<&str>) -> Result<String, ApiError> {
        let _gate = self.refresh_gate.lock().await;
        // Another task of this process may have finished a refresh while we waited.
        if let Some(t) = self.cached(stale) {
            return Ok(t);
        }
        let key = self.store_key();
        let deadline = self.clock_independent_deadline();
        loop {
            if let Some(t) = self.store.load(&key).await?
                && self.usable(&t, stale)
            {
                self.remember(&t);
                return Ok(t.access_token);
            }
            if let Some(lock) = self.store.try_lock(&key, self.config.lock_ttl).await? {
                let outcome = self.refresh_locked(&key, stale).await;
                // A failed unlock only means the TTL already freed it.
                let _ = self.store.unlock(&key, &lock).await;
                // `None`: lost a race with a holder whose lock had expired; look again
                // (within the same deadline).
                if let Some(token) = outcome? {
                    return Ok(token);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::LockTimeout {
                    waited_ms: u64::try_from(self.config.lock_wait.as_millis()).unwrap_or(u64::MAX),
                }
                .into());
            }
            tokio::time::sleep(jittered(self.config.lock_poll)).await;
        }
    }

    fn clock_independent_deadline(&self) -> tokio::time::Instant {
        // Lock waiting is real time even when token expiry runs on a test clock.
        tokio::time::Instant::now() + self.config.lock_wait
    }

    /// Holding the lock: re-read the store, fetch only if still needed, then
    /// compare-and-set. `None` if another writer got in first.
    async fn refresh_locked(
        &self,
        key: &str,
        stale: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        let current = self.store.load(key).await?;
        if let Some(t) = &current
            && self.usable(t, stale)
        {
            self.remember(t);
            return Ok(Some(t.access_token.clone()));
        }
        let mut fetched = self.fetch(false).await?;
        // The stable endpoint (normal mode) hands back the current token; if that is the
        // one WeChat just refused, ask for a new one explicitly.
        if self.account.use_stable_token && stale == Some(fetched.access_token.as_str()) {
            fetched = self.fetch(true).await?;
        }
        let now = self.clock.now_unix_ms();
        let lifetime_ms = i64::try_from(fetched.expires_in)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        let new = StoredToken {
            access_token: fetched.access_token,
            expires_at_ms: now.saturating_add(lifetime_ms),
        };
        // Keep the entry a while past expiry so late readers see "expired", not "absent";
        // an absent entry is also fine (it reads as "refresh").
        let ttl = Duration::from_millis(u64::try_from(lifetime_ms).unwrap_or(0))
            + Duration::from_secs(600);
        let expected = current.as_ref().map(|t| t.access_token.as_str());
        if self.store.compare_and_set(key, expected, &new, ttl).await? {
            self.remember(&new);
            Ok(Some(new.access_token))
        } else {
            Ok(None)
        }
    }

    /// Fetches a token from WeChat, retrying `-1` busy answers like any other call.
    async fn fetch(&self, force_refresh: bool) -> Result<AccessToken, ApiError> {
        let secret = self.account.secret.expose_secret();
        let policy = self.config.retry;
        let mut busy_retries = 0u32;
        loop {
            let result = if self.account.use_stable_token {
                self.client
                    .fetch_stable_token(&self.account.appid, secret, force_refresh)
                    .await
            } else {
                self.client
                    .fetch_access_token(&self.account.appid, secret)
                    .await
            };
            match result {
                Err(e) if e.is_busy() && busy_retries < policy.busy_retries => {
                    tokio::time::sleep(backoff(policy, busy_retries)).await;
                    busy_retries += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs one API call with the policy: a valid token; `-1` busy retried with
    /// backoff; on 40001/40014/42001 the store is re-read (a newer token there is used
    /// without fetching), else the token is refreshed — at most
    /// [`RetryPolicy::token_refreshes`] times and [`RetryPolicy::token_retries`] retries;
    /// 45009 flags the API ([`Self::quota_exhausted`]) and returns at once; every other
    /// error returns at once.
    ///
    /// `f` gets a handle on the client (a cheap clone) and the access token and makes
    /// exactly one request. Borrow other inputs by shared reference so the closure
    /// stays callable more than once:
    ///
    /// ```ignore
    /// let msg = &message;
    /// manager.call(|c, t| async move { c.send_custom_message(&t, msg).await }).await?;
    /// ```
    ///
    /// (A plain closure returning a future, not an `async` closure: futures of async
    /// closures cannot yet be proven `Send`, and callers run this in spawned tasks.)
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, ApiError>
    where
        F: FnMut(ApiClient, String) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let policy = self.config.retry;
        let mut token = self.access_token().await?;
        let mut busy_retries = 0u32;
        let mut token_retries = 0u32;
        let mut refreshes = 0u32;
        loop {
            let err = match f(self.client.clone(), token.clone()).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            match &err {
                ApiError::Busy { .. } if busy_retries < policy.busy_retries => {
                    tokio::time::sleep(backoff(policy, busy_retries)).await;
                    busy_retries += 1;
                }
                ApiError::TokenInvalid { .. } if token_retries < policy.token_retries => {
                    token_retries += 1;
                    lock_ignoring_poison(&self.cache).take();
                    if let Some(newer) = self.stored_newer_than(&token).await? {
                        token = newer;
                    } else if refreshes < policy.token_refreshes {
                        refreshes += 1;
                        token = self.replace_stale(&token).await?;
                    } else {
                        return Err(err);
                    }
                }
                ApiError::QuotaExceeded { api, .. } => {
                    lock_ignoring_poison(&self.quota_flags).insert(api.clone());
                    return Err(err);
                }
                _ => return Err(err),
            }
        }
    }

    /// Whether `api` (a path such as `/cgi-bin/message/custom/send`) answered 45009 since
    /// the flags were last cleared.
    pub fn quota_exhausted(&self, api: &str) -> bool {
        lock_ignoring_poison(&self.quota_flags).contains(api)
    }

    /// Every API flagged with 45009.
    pub fn quota_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = lock_ignoring_poison(&self.quota_flags)
            .iter()
            .cloned()
            .collect();
        flags.sort();
        flags
    }

    /// Forgets the 45009 flags (WeChat resets quotas daily, or on `clear_quota`).
    pub fn clear_quota_flags(&self) {
        lock_ignoring_poison(&self.quota_flags).clear();
    }

    /// Reads `begin..=end` from a datacube endpoint, split into the windows it allows,
    /// one policy-wrapped call per window, rows concatenated in date order.
    pub async fn datacube_range<T: DeserializeOwned>(
        &self,
        endpoint: DatacubeEndpoint,
        begin: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<T>, ApiError> {
        let mut rows = Vec::new();
        for window in split_date_range(begin, end, endpoint.max_days())? {
            let part: Vec<T> = self
                .call(|c, token| async move { c.datacube(&token, endpoint, window).await })
                .await?;
            rows.extend(part);
        }
        Ok(rows)
    }
}

/// Exponential backoff for the `n`th retry (from 0), with up to 50 % random jitter so
/// processes that met the same busy answer do not retry in step.
fn backoff(policy: RetryPolicy, n: u32) -> Duration {
    let base = policy
        .busy_backoff
        .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
        .min(policy.max_backoff);
    jittered(base)
}

/// `d` plus 0–50 % of itself, at random.
fn jittered(d: Duration) -> Duration {
    let mut b = [0u8; 1];
    let r = if getrandom::fill(&mut b).is_ok() {
        u32::from(b[0])
    } else {
        128
    };
    d + d.mul_f64(f64::from(r) / 510.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_store_compare_and_set_and_lock() {
        let store = InMemoryTokenStore::new();
        let t1 = StoredToken {
            access_token: "T1".into(),
            expires_at_ms: 10,
        };
        let t2 = StoredToken {
            access_token: "T2".into(),
            expires_at_ms: 20,
        };
        let ttl = Duration::from_secs(60);
        assert_eq!(store.load("a").await, Ok(None));
        assert_eq!(
            store.compare_and_set("a", Some("T0"), &t1, ttl).await,
            Ok(false)
        );
        assert_eq!(store.compare_and_set("a", None, &t1, ttl).await, Ok(true));
        assert_eq!(store.compare_and_set("a", None, &t2, ttl).await, Ok(false));
        assert_eq!(
            store.compare_and_set("a", Some("T1"), &t2, ttl).await,
            Ok(true)
        );
        assert_eq!(store.load("a").await, Ok(Some(t2)));

        let lock = store.try_lock("a", ttl).await.unwrap().unwrap();
        assert_eq!(store.try_lock("a", ttl).await, Ok(None));
        // Another account's lock is independent.
        assert!(store.try_lock("b", ttl).await.unwrap().is_some());
        assert_eq!(
            store.unlock("a", &LockToken("other".into())).await,
            Ok(false)
        );
        assert_eq!(store.unlock("a", &lock).await, Ok(true));
        assert!(store.try_lock("a", ttl).await.unwrap().is_some());
        // An expired lock can be taken over.
        let _short = store.try_lock("c", Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(store.try_lock("c", ttl).await.unwrap().is_some());
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            busy_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for (n, base) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            let d = backoff(p, n).as_millis();
            assert!(d >= base && d <= base * 3 / 2, "n={n}: {d}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = AccountCredentials::new("wx1", "S3CR3T");
        assert!(!format!("{c:?}").contains("S3CR3T"));
        let t = StoredToken {
            access_token: "TOKEN".into(),
            expires_at_ms: 1,
        };
        assert!(!format!("{t:?}").contains("TOKEN"));
        assert_eq!(LockToken::random().as_str().len(), 32);
        assert_ne!(LockToken::random(), LockToken::random());
    }
}
