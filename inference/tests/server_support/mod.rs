//! Starts the inference server on 127.0.0.1 port 0 over a backend, for the server tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use wxpilot_inference::{Backend, InferenceServer, ServerConfig};

/// The key the test servers accept.
pub const KEY: &str = "test-inference-key";

/// An HTTP client (reqwest 0.13 needs the crypto provider installed first).
pub fn client() -> reqwest::Client {
    wxpilot_inference::remote::ensure_crypto_provider();
    reqwest::Client::new()
}

/// A running server.
pub struct TestServer {
    pub port: u16,
    pub registry: prometheus::Registry,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Serves `backend` with [`KEY`] as the only key and a 64 KiB body limit.
    pub async fn start(backend: Arc<dyn Backend>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = prometheus::Registry::new();
        let config = ServerConfig {
            api_keys: vec![KEY.to_string().into()],
            body_limit_bytes: 64 * 1024,
            overload_retry_after_secs: 1,
            workers: Some(2),
            shutdown_timeout: Duration::from_secs(1),
            handle_signals: false,
        };
        let server = InferenceServer::bind(listener, backend, config, registry.clone()).unwrap();
        let port = server.port();
        let handle = server.handle();
        tokio::spawn(server.run_until_stopped());
        Self {
            port,
            registry,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}
