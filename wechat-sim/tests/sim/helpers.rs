//! Shared set-up: a simulator with one verified account, managers on its clock.

use std::sync::Arc;
use std::time::Duration;

use wxpilot_wechat::{
    AccountCredentials, ApiClient, ManualClock, RetryPolicy, TokenConfig, TokenManager, TokenStore,
};
use wxpilot_wechat_sim::{SimConfig, SimHandle, Simulator};

pub const APPID: &str = "wx49f0ab532d5d035a";
pub const SECRET: &str = "sim-secret-0001";
pub const TOKEN: &str = "simtoken";
pub const AES_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";

/// 2026-06-01T00:00:00Z: fixed, so datacube "yesterday" rules are deterministic.
pub const START_MS: i64 = 1_780_272_000_000;

pub const SEND: &str = "/cgi-bin/message/custom/send";
pub const USER_GET: &str = "/cgi-bin/user/get";

/// A simulator (callbacks time out after 500 ms: WeChat's 5 s scaled by 10, enough
/// headroom for a loaded CI machine) with [`APPID`] registered, verified.
pub async fn sim() -> SimHandle {
    let config = SimConfig {
        clock: ManualClock::new(START_MS),
        ..SimConfig::scaled(10)
    };
    let sim = Simulator::start(config).await.expect("simulator starts");
    sim.register_account(APPID, SECRET, TOKEN, AES_KEY, true)
        .expect("account registers");
    sim
}

/// Timing for tests: quick polls and backoffs, the real refresh margin.
pub fn fast_config() -> TokenConfig {
    TokenConfig {
        lock_poll: Duration::from_millis(5),
        lock_wait: Duration::from_secs(5),
        lock_ttl: Duration::from_secs(5),
        retry: RetryPolicy {
            busy_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        ..TokenConfig::default()
    }
}

/// A manager with its own HTTP client, on the simulator's clock, sharing `store`.
pub fn manager(sim: &SimHandle, store: Arc<dyn TokenStore>) -> TokenManager {
    manager_for(sim, store, AccountCredentials::new(APPID, SECRET))
}

pub fn manager_for(
    sim: &SimHandle,
    store: Arc<dyn TokenStore>,
    account: AccountCredentials,
) -> TokenManager {
    let client = ApiClient::new(sim.base_url()).expect("client builds");
    TokenManager::new(client, store, account)
        .with_clock(Arc::new(sim.clock()))
        .with_config(fast_config())
}

/// The Redis of the test machines (override with WXPILOT_TEST_REDIS_URL).
pub fn redis_url() -> String {
    std::env::var("WXPILOT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test run uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("wxpilot-test:{test}:{}:{nanos}:", std::process::id())
}
