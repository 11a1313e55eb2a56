//! The binary as a user runs it: `serve` on the embedded default, `tenant create` and
//! `apikey create` from another terminal, curl-like calls, and a graceful stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_wxpilot");

fn wxpilot(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WXPILOT_DATA_DIR", data_dir)
        .env("WXPILOT_LOG__FILTER", "warn")
        .output()
        .expect("run wxpilot")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_serve(data_dir: &Path, port: u16) -> Server {
    let child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WXPILOT_DATA_DIR", data_dir)
        .env("WXPILOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("WXPILOT_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    Server(child)
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = client.get(format!("{base}/healthz")).send().await
            && res.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn quick_start_flow_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start_serve(dir.path(), port);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_healthy(&client, &base).await;

    // The master key file was made private, and the database lives in the data folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(dir.path().join("wxpilot.db").exists());

    let out = wxpilot(
        dir.path(),
        &["tenant", "create", "--name", "Acme Digital", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["tenant"]["slug"], "acme-digital");
    let key = created["api_key"]["secret"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wxp_"));

    let res = client
        .post(format!("{base}/v1/accounts"))
        .bearer_auth(&key)
        .json(&json!({
            "name": "Acme Coffee",
            "original_id": "gh_10f6c3c3ac5a",
            "app_id": "wx2c2769f8efd9abc2",
            "app_secret": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "callback_token": "spamtest",
            "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let account: Value = res.json().await.unwrap();
    let res = client
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(&key)
        .json(&json!({"account_id": account["id"], "name": "双十一"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let campaigns: Value = client
        .get(format!("{base}/v1/campaigns"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(campaigns["items"][0]["name"], "双十一");

    // A second key from the CLI, by slug, with a narrower role.
    let out = wxpilot(
        dir.path(),
        &[
            "apikey",
            "create",
            "--tenant",
            "acme-digital",
            "--name",
            "reader",
            "--role",
            "viewer",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let viewer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(viewer["role"], "viewer");
    let viewer_key = viewer["secret"].as_str().unwrap();
    let accounts: Value = client
        .get(format!("{base}/v1/accounts"))
        .bearer_auth(viewer_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts["items"].as_array().unwrap().len(), 1);
    assert!(
        !accounts
            .to_string()
            .contains("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    );

    // SIGTERM stops it cleanly.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(server.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("created a new master key file"), "{stderr}");
    assert!(
        !stderr.contains("a1b2c3d4e5f60718293a4b5c6d7e8f90"),
        "a secret reached the log"
    );
    assert!(!stderr.contains(&key), "an API key reached the log");
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }

    // Rotate the master key: the new one current, the generated file's key as previous.
    let old = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let new = String::from_utf8(wxpilot(dir.path(), &["secrets", "generate-key"]).stdout).unwrap();
    let rotate = |previous: &str| {
        Command::new(BIN)
            .args(["secrets", "rotate-master-key"])
            .env_clear()
            .env("WXPILOT_DATA_DIR", dir.path())
            .env("WXPILOT_LOG__FILTER", "warn")
            .env("WXPILOT_MASTER_KEY", new.trim())
            .env("WXPILOT_PREVIOUS_MASTER_KEYS", previous)
            .output()
            .unwrap()
    };
    let out = rotate(old.trim());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("re-sealed 2 secret(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = rotate("");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("re-sealed 0 secret(s)"),
        "a second run has nothing to do"
    );
}

#[test]
fn production_refuses_to_start_without_a_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("WXPILOT_DATA_DIR", dir.path())
        .env("WXPILOT_ENVIRONMENT", "production")
        .env("WXPILOT_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("production needs a master key"), "{stderr}");
    assert!(!dir.path().join("master.key").exists());
}

#[test]
fn configuration_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxpilot.toml");
    std::fs::write(&config, "listen = 8080\n").unwrap();
    let out = wxpilot(
        dir.path(),
        &["--config", config.to_str().unwrap(), "migrate"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = wxpilot(
        dir.path(),
        &["--config", "/nonexistent/wxpilot.toml", "migrate"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let out = wxpilot(
        dir.path(),
        &[
            "apikey", "create", "--tenant", "nobody", "--name", "x", "--role", "root",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
}

#[test]
fn migrate_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = wxpilot(dir.path(), &["migrate", "--status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pending migration"));
    let out = wxpilot(dir.path(), &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = wxpilot(dir.path(), &["migrate", "--status"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "database is up to date"
    );
}

#[test]
fn openapi_command_prints_the_checked_in_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = wxpilot(dir.path(), &["openapi"]);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checked_in: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        printed == checked_in,
        "openapi/openapi.json is stale: run `cargo run -- openapi -o openapi/openapi.json`"
    );
}

#[test]
fn generated_master_keys_are_usable() {
    let dir = tempfile::tempdir().unwrap();
    let out = wxpilot(dir.path(), &["secrets", "generate-key"]);
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(wxpilot_core::MasterKey::from_base64(key.trim()).is_ok());
}

fn vectors() -> Value {
    let dir = std::env::var("WXPILOT_CONFORMANCE_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/conformance").to_owned()
    });
    serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/wechat/crypto-vectors.json")).unwrap(),
    )
    .unwrap()
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every published vector that carries a signature decrypts through the CLI; a wrong
/// signature exits non-zero and says which check failed.
#[test]
fn wechat_decrypt_cli_passes_the_published_vectors() {
    let vectors = vectors();
    let mut checked = 0;
    for v in vectors.as_array().unwrap() {
        let (Some(sig), Some(ts), Some(nonce)) = (
            v["msg_signature"]
                .as_str()
                .or_else(|| v["derived_msg_signature"].as_str()),
            v["timestamp"].as_str(),
            v["nonce"].as_str(),
        ) else {
            continue;
        };
        let body = format!(
            "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
            v["encrypt"].as_str().unwrap()
        );
        let args = [
            "wechat",
            "decrypt",
            "--token",
            v["token"].as_str().unwrap(),
            "--aes-key",
            v["encoding_aes_key"].as_str().unwrap(),
            "--appid",
            v["appid"].as_str().unwrap(),
            "--timestamp",
            ts,
            "--nonce",
            nonce,
            "--msg-signature",
            sig,
        ];
        let out = run_with_stdin(&args, &body);
        assert!(
            out.status.success(),
            "{}: {}",
            v["id"],
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8(out.stdout).unwrap();
        let expected = v["derived_msg"]
            .as_str()
            .or_else(|| v["msg"].as_str())
            .unwrap();
        assert_eq!(printed.trim_end_matches('\n'), expected, "{}", v["id"]);

        let mut wrong = args.to_vec();
        let last = wrong.len() - 1;
        wrong[last] = "0000000000000000000000000000000000000000";
        let out = run_with_stdin(&wrong, &body);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("msg_signature check failed"));
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} signed vectors");
}

#[test]
fn wechat_encrypt_then_decrypt_round_trips_through_the_cli() {
    let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    let reply = "<xml><Content><![CDATA[你好 ]]]]><![CDATA[> 👋]]></Content></xml>";
    let common = [
        "--token",
        "spamtest",
        "--aes-key",
        key,
        "--appid",
        "wx2c2769f8efd9abc2",
        "--timestamp",
        "1409735669",
        "--nonce",
        "1320562132",
    ];
    let mut args = vec!["wechat", "encrypt"];
    args.extend(common);
    let out = run_with_stdin(&args, reply);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envelope = String::from_utf8(out.stdout).unwrap();
    let sig = envelope
        .split("<MsgSignature><![CDATA[")
        .nth(1)
        .and_then(|s| s.split("]]>").next())
        .unwrap()
        .to_owned();
    let mut args = vec!["wechat", "decrypt"];
    args.extend(common);
    args.extend(["--msg-signature", &sig]);
    let out = run_with_stdin(&args, &envelope);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end_matches('\n'),
        reply
    );

    let out = run_with_stdin(
        &[
            "wechat",
            "verify-url",
            "--token",
            "spamtest",
            "--timestamp",
            "1409735669",
            "--nonce",
            "1320562132",
            "--signature",
            "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a",
            "--echostr",
            "hello",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "hello\n");
}

/// `bench inference` on the fetched models: both comparisons in alternating rounds, with
/// each round's ratio (skipped, with a message, when the models are not fetched and
/// `WXPILOT_REQUIRE_MODELS` is unset).
#[test]
fn inference_bench_reports_every_round() {
    let models = wxpilot_inference::local::models_dir();
    if !wxpilot_inference::local::default_chat_gguf(&models).is_file()
        || !wxpilot_inference::local::default_embedding_dir(&models).is_dir()
    {
        assert!(
            std::env::var_os("WXPILOT_REQUIRE_MODELS").is_none(),
            "models missing in {}; run scripts/fetch-models.sh",
            models.display()
        );
        eprintln!("SKIPPED inference_bench_reports_every_round: models missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let models_arg = models.to_string_lossy().into_owned();
    let out = wxpilot(
        dir.path(),
        &[
            "bench",
            "inference",
            "--models-dir",
            &models_arg,
            "--embed-requests",
            "6",
            "--max-tokens",
            "2",
            "--rounds",
            "2",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let embeddings = &report["embeddings"];
    assert_eq!(embeddings["requests"], 6);
    assert_eq!(embeddings["round_speedups"].as_array().unwrap().len(), 2);
    assert!(embeddings["sequential_per_s"].as_f64().unwrap() > 0.0);
    assert!(embeddings["concurrent_per_s"].as_f64().unwrap() > 0.0);
    let generation = &report["generation"];
    assert_eq!(generation["max_tokens"], 2);
    assert_eq!(generation["rounds"], 2);
    assert_eq!(generation["round_speedups"].as_array().unwrap().len(), 2);
    assert!(generation["sequential_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(generation["concurrent_ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(report["peak_rss_mib"].as_f64().unwrap() > 0.0);
}

/// The benchmarks run and report their figures (their speed is recorded in
/// docs/BENCHMARKS.md, never asserted here).
#[test]
fn benchmarks_report_their_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = wxpilot(
        dir.path(),
        &["bench", "wechat", "--messages", "300", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["messages"], 300);
    assert!(report["messages_per_s"].as_f64().unwrap() > 0.0);

    let out = wxpilot(
        dir.path(),
        &["bench", "jobs", "--jobs", "30", "--workers", "2", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["jobs"], 30);
    assert_eq!(report["queue"], "sqlite");
    assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(
        report["latency_ms"]["p99"].as_f64().unwrap()
            >= report["latency_ms"]["p50"].as_f64().unwrap()
    );
}
