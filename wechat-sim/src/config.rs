//! Simulator settings: WeChat's documented limits, scalable for tests.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wxpilot_wechat::ManualClock;

/// How callbacks are delivered to an account (the console's message encryption mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackMode {
    /// Plain XML, `signature` only.
    Plain,
    /// Plain fields plus `<Encrypt>`, `encrypt_type=aes` and `msg_signature`.
    Compatible,
    /// `<ToUserName>` and `<Encrypt>` only (the default; what production accounts use).
    #[default]
    Safe,
}

/// An Official Account the simulator knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSpec {
    /// The appid.
    pub appid: String,
    /// The AppSecret.
    pub secret: String,
    /// The callback token (for signatures).
    pub token: String,
    /// The 43-character EncodingAESKey.
    pub encoding_aes_key: String,
    /// Verified (认证) accounts have the customer-service API; others get 48001.
    #[serde(default = "yes")]
    pub verified: bool,
    /// The original id (`gh_…`) callbacks are addressed to.
    #[serde(default)]
    pub original_id: String,
    /// Where follower messages are delivered.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Callback encryption mode.
    #[serde(default)]
    pub mode: CallbackMode,
}

fn yes() -> bool {
    true
}

impl AccountSpec {
    /// A verified account in safe mode without a callback URL; the original id is
    /// derived from the appid.
    pub fn new(
        appid: impl Into<String>,
        secret: impl Into<String>,
        token: impl Into<String>,
        encoding_aes_key: impl Into<String>,
    ) -> Self {
        let appid = appid.into();
        let original_id = format!("gh_{}", appid.trim_start_matches("wx"));
        Self {
            appid,
            secret: secret.into(),
            token: token.into(),
            encoding_aes_key: encoding_aes_key.into(),
            verified: true,
            original_id,
            callback_url: None,
            mode: CallbackMode::Safe,
        }
    }
}

/// The simulator's settings. [`SimConfig::default`] follows WeChat's documentation;
/// [`SimConfig::for_tests`] shrinks the callback timing (the token and window rules run
/// on [`SimConfig::clock`], which tests advance instead of waiting).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Lifetime of an access token (7200 s).
    pub token_lifetime: Duration,
    /// How long the previous token keeps working after a new fetch (5 min).
    pub old_token_grace: Duration,
    /// A stable token is renewed by a normal-mode request in its last this-long (5 min).
    pub stable_renew_window: Duration,
    /// Customer-service messages are allowed this long after the follower's last
    /// message (48 h).
    pub reply_window: Duration,
    /// Customer-service messages allowed per window (5).
    pub messages_per_window: u32,
    /// How long a callback may take to answer before WeChat gives up on it (5 s).
    pub callback_timeout: Duration,
    /// Deliveries of one message in all (3).
    pub callback_deliveries: u32,
    /// Pause between a late delivery and the next one (WeChat retries at once, so the
    /// deliveries are about `callback_timeout` apart).
    pub callback_retry_gap: Duration,
    /// The simulated clock (shared with managers in tests). Callback `timestamp`s and
    /// `CreateTime`s are simulated time too: keep the clock near real time when the
    /// receiving endpoint checks timestamp freshness against its own clock.
    pub clock: ManualClock,
    /// Accounts known from the start.
    pub accounts: Vec<AccountSpec>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(7200),
            old_token_grace: Duration::from_secs(300),
            stable_renew_window: Duration::from_secs(300),
            reply_window: Duration::from_secs(48 * 3600),
            messages_per_window: 5,
            callback_timeout: Duration::from_secs(5),
            callback_deliveries: 3,
            callback_retry_gap: Duration::ZERO,
            clock: ManualClock::starting_now(),
            accounts: Vec::new(),
        }
    }
}

impl SimConfig {
    /// WeChat's rules with the callback timing divided by `factor` (5 s → 5 s / factor),
    /// for tests that exercise retries without waiting 15 s.
    pub fn scaled(factor: u32) -> Self {
        let mut config = Self::default();
        let factor = factor.max(1);
        config.callback_timeout /= factor;
        config.callback_retry_gap /= factor;
        config
    }

    /// [`SimConfig::scaled`] by 25: callbacks time out after 200 ms.
    pub fn for_tests() -> Self {
        Self::scaled(25)
    }

    /// The same settings with `account` registered from the start.
    pub fn with_account(mut self, account: AccountSpec) -> Self {
        self.accounts.push(account);
        self
    }
}
