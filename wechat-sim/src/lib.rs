//! A WeChat simulator for tests and demos: it plays WeChat's side of the Official
//! Account API as documented, on 127.0.0.1, with a clock tests can advance.
//!
//! * Tokens: `/cgi-bin/token` issues 7200 s tokens and invalidates the previous one
//!   5 minutes after each new fetch; `/cgi-bin/stable_token` returns the current stable
//!   token (a new one only in its last 5 minutes, or on `force_refresh`, which
//!   invalidates the old one at once). Every fetch is counted.
//! * Customer service: allowed only within 48 h of the follower's last message and at
//!   most 5 per window (45015, 45047); unverified accounts get 48001.
//! * A configurable daily quota per API (45009), injected errors such as `-1` busy for
//!   the next N calls, IP whitelist refusal (40164).
//! * Drafts, publishing, uploads, followers, tags and datacube (served from per-day
//!   rows, with the per-call window enforced: 61501 when a call asks too many days).
//! * Every API call, message sent, draft, publish, upload and tag call is recorded.
//! * Follower messages are delivered to the account's callback URL signed and encrypted
//!   like WeChat (safe mode by default), retried when the answer is late (5 s, scalable),
//!   three deliveries in all, each answer and its timing recorded.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wxpilot_wechat_sim::SimError> {
//! use wxpilot_wechat_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::for_tests()).await?;
//! sim.register_account("wx1", "secret", "token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", true)?;
//! let client = wxpilot_wechat::ApiClient::new(sim.base_url()).expect("client");
//! # Ok(()) }
//! ```

mod config;
mod delivery;
pub mod multipart;
mod server;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use serde_json::Value;
use wxpilot_wechat::reply::cdata;
use wxpilot_wechat::{Clock as _, DatacubeEndpoint, ManualClock};

pub use config::{AccountSpec, CallbackMode, SimConfig};
pub use delivery::{AttemptOutcome, DeliveryAttempt, DeliveryReport, ReplyOutcome};
pub use state::{
    ApiCall, DatacubeCall, DraftRecord, Injection, PublishRecord, SentMessage, TagCall, UploadKind,
    UploadRecord, beijing_date, default_errmsg,
};

use delivery::{Delivery, text_message_xml};
use state::SimState;

/// Why the simulator could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or running the server failed.
    #[error("simulator server: {0}")]
    Io(#[from] std::io::Error),
    /// An account setting is invalid (for example the EncodingAESKey).
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// No account with this appid is registered.
    #[error("no simulated account {0}")]
    UnknownAccount(String),
    /// The server task ended abnormally.
    #[error("simulator server task failed: {0}")]
    Task(String),
}

/// State shared by the HTTP workers and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<SimState>,
    clock: ManualClock,
    http: reqwest::Client,
    deliveries: Mutex<Vec<DeliveryReport>>,
    timing: Timing,
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    callback_timeout: Duration,
    callback_deliveries: u32,
    callback_retry_gap: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent, so a panic elsewhere does not
    // make it unusable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, SimState> {
        lock(&self.state)
    }

    pub(crate) async fn follower_says(
        &self,
        appid: &str,
        openid: &str,
        text: &str,
    ) -> Result<DeliveryReport, SimError> {
        let now = self.clock.now_unix_ms();
        let (msg_id, original_id) = {
            let mut state = self.state();
            let msg_id = state.follower_message(appid, openid, now)?;
            let (_, _, _, spec) = state.callback_of(appid)?;
            (msg_id, spec.original_id)
        };
        let xml = text_message_xml(&original_id, openid, now / 1000, text, msg_id);
        self.deliver(appid, &xml, Some(openid), Some(msg_id)).await
    }

    pub(crate) async fn deliver(
        &self,
        appid: &str,
        xml: &str,
        openid: Option<&str>,
        msg_id: Option<u64>,
    ) -> Result<DeliveryReport, SimError> {
        let (url, mode, crypt, spec) = self.state().callback_of(appid)?;
        let (attempts, reply) = match url {
            Some(url) => {
                Delivery {
                    http: &self.http,
                    url: &url,
                    mode,
                    crypt: &crypt,
                    token: &spec.token,
                    original_id: &spec.original_id,
                    openid,
                    timeout: self.timing.callback_timeout,
                    deliveries: self.timing.callback_deliveries,
                    retry_gap: self.timing.callback_retry_gap,
                    timestamp: self.clock.now_unix_ms() / 1000,
                }
                .run(xml)
                .await
            }
            None => (Vec::new(), ReplyOutcome::NoAnswer),
        };
        let report = DeliveryReport {
            appid: appid.to_owned(),
            msg_id,
            message_xml: xml.to_owned(),
            attempts,
            reply,
        };
        lock(&self.deliveries).push(report.clone());
        Ok(report)
    }
}

/// Starts simulators.
#[derive(Debug, Clone, Copy)]
pub struct Simulator;

impl Simulator {
    /// Starts a simulator on 127.0.0.1 with a free port.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `listen` (`wxpilot wechat simulator --listen …`).
    pub async fn start_on(config: SimConfig, listen: SocketAddr) -> Result<SimHandle, SimError> {
        let listener = std::net::TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            // A retry must not reuse the connection WeChat gave up on.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| SimError::Config(format!("HTTP client: {e}")))?;
        let timing = Timing {
            callback_timeout: config.callback_timeout,
            callback_deliveries: config.callback_deliveries,
            callback_retry_gap: config.callback_retry_gap,
        };
        let clock = config.clock.clone();
        let accounts = config.accounts.clone();
        let mut state = SimState::new(config);
        for spec in accounts {
            state.register(spec)?;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            clock,
            http,
            deliveries: Mutex::new(Vec::new()),
            timing,
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(server::MAX_BODY_BYTES))
                .app_data(web::JsonConfig::default().limit(server::MAX_BODY_BYTES))
                .configure(server::routes)
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let server_handle = server.handle();
        let task = tokio::spawn(server);
        Ok(SimHandle {
            shared,
            addr,
            server: server_handle,
            task: Some(task),
        })
    }
}

/// Runs a simulator on `listen` until the process is stopped (the
/// `wxpilot wechat simulator --listen ADDR` entry). Accounts come from `config` or the
/// admin API (`POST /_sim/accounts`).
pub async fn run(listen: SocketAddr, config: SimConfig) -> Result<(), SimError> {
    Simulator::start_on(config, listen).await?.wait().await
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the base URL for [`wxpilot_wechat::ApiClient::new`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The simulated clock (share it with token managers via `with_clock`).
    pub fn clock(&self) -> ManualClock {
        self.shared.clock.clone()
    }

    /// Moves the simulated clock forward.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Registers (or updates) an account in safe mode without a callback URL.
    pub fn register_account(
        &self,
        appid: &str,
        secret: &str,
        token: &str,
        encoding_aes_key: &str,
        verified: bool,
    ) -> Result<(), SimError> {
        let mut spec = AccountSpec::new(appid, secret, token, encoding_aes_key);
        spec.verified = verified;
        self.register(spec)
    }

    /// Registers (or updates) an account with every setting.
    pub fn register(&self, spec: AccountSpec) -> Result<(), SimError> {
        self.shared.state().register(spec)
    }

    /// Sets where and how an account's callbacks are delivered.
    pub fn set_callback(&self, appid: &str, url: &str, mode: CallbackMode) -> Result<(), SimError> {
        let mut state = self.shared.state();
        let account = state.account_mut(appid)?;
        account.spec.callback_url = Some(url.to_owned());
        account.spec.mode = mode;
        Ok(())
    }

    /// Adds a follower who has not messaged (no customer-service window yet).
    pub fn add_follower(&self, appid: &str, openid: &str) -> Result<(), SimError> {
        let now = self.shared.clock.now_unix_ms();
        self.shared.state().add_follower(appid, openid, now)
    }

    /// A follower sends a text message: it opens a 48-hour customer-service window (and
    /// resets the per-window count) and is delivered to the callback URL, if set.
    pub async fn follower_says(
        &self,
        appid: &str,
        openid: &str,
        text: &str,
    ) -> Result<DeliveryReport, SimError> {
        self.shared.follower_says(appid, openid, text).await
    }

    /// A follower subscribes: recorded, and the `subscribe` event is delivered.
    pub async fn follower_subscribes(
        &self,
        appid: &str,
        openid: &str,
    ) -> Result<DeliveryReport, SimError> {
        let now = self.shared.clock.now_unix_ms();
        let original_id = {
            let mut state = self.shared.state();
            state.add_follower(appid, openid, now)?;
            state.callback_of(appid)?.3.original_id
        };
        let xml = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime>\
             <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>",
            cdata(&original_id),
            cdata(openid),
            now / 1000
        );
        self.shared.deliver(appid, &xml, Some(openid), None).await
    }

    /// Delivers any message or event XML to the account's callback (encrypted per mode).
    pub async fn deliver_xml(&self, appid: &str, xml: &str) -> Result<DeliveryReport, SimError> {
        self.shared.deliver(appid, xml, None, None).await
    }

    /// Every customer-service message accepted, in order.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.state().sent.clone()
    }

    /// Every API call received, in order.
    pub fn api_calls(&self) -> Vec<ApiCall> {
        self.shared.state().calls.clone()
    }

    /// Number of calls received on `path` (answered with any errcode).
    pub fn calls_to(&self, path: &str) -> usize {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|c| c.path == path)
            .count()
    }

    /// Number of successful `/cgi-bin/token` fetches for `appid`.
    pub fn token_requests(&self, appid: &str) -> u32 {
        self.shared.state().token_requests(appid)
    }

    /// Number of successful `/cgi-bin/stable_token` requests for `appid`.
    pub fn stable_token_requests(&self, appid: &str) -> u32 {
        self.shared.state().stable_token_requests(appid)
    }

    /// The newest ordinary access token of `appid`, if one is valid now.
    pub fn current_token(&self, appid: &str) -> Option<String> {
        let now = self.shared.clock.now_unix_ms();
        self.shared.state().current_token(appid, now)
    }

    /// Drafts stored.
    pub fn drafts(&self) -> Vec<DraftRecord> {
        self.shared.state().drafts.clone()
    }

    /// Publish jobs submitted.
    pub fn publishes(&self) -> Vec<PublishRecord> {
        self.shared.state().publishes.clone()
    }

    /// Tag calls accepted.
    pub fn tag_calls(&self) -> Vec<TagCall> {
        self.shared.state().tag_calls.clone()
    }

    /// Uploads accepted.
    pub fn uploads(&self) -> Vec<UploadRecord> {
        self.shared.state().uploads.clone()
    }

    /// Datacube calls that passed the checks.
    pub fn datacube_calls(&self) -> Vec<DatacubeCall> {
        self.shared.state().datacube_calls.clone()
    }

    /// Every callback delivery report, in order.
    pub fn deliveries(&self) -> Vec<DeliveryReport> {
        lock(&self.shared.deliveries).clone()
    }

    /// Answers an error instead of serving, as `injection` says.
    pub fn inject(&self, injection: Injection) {
        self.shared.state().inject(injection);
    }

    /// The next `times` API calls (any path, any account) answer `-1` busy.
    pub fn inject_busy(&self, times: u32) {
        self.inject(Injection::busy(times));
    }

    /// The next `times` calls on `path` answer `errcode`.
    pub fn inject_errcode(&self, path: &str, errcode: i64, times: u32) {
        self.inject(Injection::on_path(path, errcode, times));
    }

    /// Limits `path` to `limit` calls per (China) day for `appid` (`None`: unlimited);
    /// further calls answer 45009.
    pub fn set_daily_quota(
        &self,
        appid: &str,
        path: &str,
        limit: Option<u32>,
    ) -> Result<(), SimError> {
        self.shared.state().set_daily_quota(appid, path, limit)
    }

    /// Makes token requests and API calls of `appid` answer 40164 (IP not whitelisted).
    pub fn set_ip_blocked(&self, appid: &str, blocked: bool) -> Result<(), SimError> {
        self.shared.state().set_ip_blocked(appid, blocked)
    }

    /// The per-day rows `endpoint` serves for `appid` (each with a `ref_date`).
    pub fn set_datacube_rows(
        &self,
        appid: &str,
        endpoint: DatacubeEndpoint,
        rows: Vec<Value>,
    ) -> Result<(), SimError> {
        self.shared
            .state()
            .set_datacube_rows(appid, endpoint.path(), rows)
    }

    /// Overrides the most days one call to `endpoint` may ask for.
    pub fn set_datacube_max_days(&self, endpoint: DatacubeEndpoint, days: u32) {
        self.shared
            .state()
            .set_datacube_max_days(endpoint.path(), days);
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.server.stop(true).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the server stops.
    pub async fn wait(mut self) -> Result<(), SimError> {
        match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(SimError::from),
                Err(e) => Err(SimError::Task(e.to_string())),
            },
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if self.task.is_some()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let server = self.server.clone();
            rt.spawn(async move { server.stop(false).await });
        }
    }
}
