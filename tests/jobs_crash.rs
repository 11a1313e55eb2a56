//! A worker killed with SIGKILL in the middle of a job: another worker takes the job over
//! when the lease runs out, it completes exactly once, and nothing is lost. Real processes,
//! on the embedded default and on Postgres + Redis with separate api and worker processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_wxpilot");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // These tests move jobs and requests, not models: skip loading them.
        .env("WXPILOT_INFERENCE__LOCAL__ENABLED", "false")
        .env("WXPILOT_LOG__FILTER", "warn")
        .env("WXPILOT_JOBS__LEASE_SECS", "2")
        .env("WXPILOT_JOBS__SWEEP_INTERVAL_MS", "200")
        .env("WXPILOT_JOBS__POLL_INTERVAL_MS", "20")
        .env("WXPILOT_JOBS__SHUTDOWN_GRACE_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn spawn(args: &[&str], env: &[(&str, String)]) -> Proc {
    Proc(command(args, env).spawn().expect("spawn wxpilot"))
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "{base} did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn job(client: &reqwest::Client, base: &str, key: &str, id: &str) -> Value {
    client
        .get(format!("{base}/v1/jobs/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_status(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    status: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let j = job(client, base, key, id).await;
        if j["status"] == status {
            return j;
        }
        assert!(Instant::now() < deadline, "not {status} in time: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tenant_key(env: &[(&str, String)]) -> String {
    let out = command(&["tenant", "create", "--name", "Crash test", "--json"], env)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    created["api_key"]["secret"].as_str().unwrap().to_owned()
}

fn kill_9(proc: &mut Proc) {
    let pid = proc.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let _ = proc.0.wait();
}

/// Posts a long ping, kills the worker running it, starts `replacement`, and checks the
/// job completes once: attempts 2, succeeded, counted once in the usage ledger.
async fn kill_mid_job(base: &str, key: &str, mut victim: Proc, replacement: impl FnOnce() -> Proc) {
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/v1/jobs/ping"))
        .bearer_auth(key)
        .json(&json!({"sleep_ms": 3_000, "steps": 3, "echo": "once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let running = wait_status(&client, base, key, &id, "running", Duration::from_secs(20)).await;
    assert_eq!(running["attempts"], 1);
    kill_9(&mut victim);
    let _replacement = replacement();
    let done = wait_status(
        &client,
        base,
        key,
        &id,
        "succeeded",
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(
        done["attempts"], 2,
        "the killed attempt counts, the second completes: {done}"
    );
    assert_eq!(done["result"]["echo"], "once");
    let usage: Value = client
        .get(format!("{base}/v1/usage"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["totals"]["jobs.ping"], 1, "recorded once: {usage}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = job(&client, base, key, &id).await;
    assert_eq!(later["attempts"], 2, "nothing ran it again: {later}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_job_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let data: String = dir.path().to_str().unwrap().to_owned();
    let env = |port: u16| {
        vec![
            ("WXPILOT_DATA_DIR", data.clone()),
            ("WXPILOT_LISTEN", format!("127.0.0.1:{port}")),
        ]
    };
    let port_a = free_port();
    let first = spawn(&["serve"], &env(port_a));
    let base_a = format!("http://127.0.0.1:{port_a}");
    wait_healthy(&reqwest::Client::new(), &base_a).await;
    let key = tenant_key(&env(port_a));
    // The API answers from the same database whichever process serves it, so after the kill
    // the replacement's API is used to read the outcome.
    let port_b = free_port();
    let base_b = format!("http://127.0.0.1:{port_b}");
    let env_b = env(port_b);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base_a}/v1/jobs/ping"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "warm-up");
    kill_mid_job_two_bases(&base_a, &base_b, &key, first, move || {
        spawn(&["serve"], &env_b)
    })
    .await;
}

async fn kill_mid_job_two_bases(
    base_a: &str,
    base_b: &str,
    key: &str,
    victim: Proc,
    replacement: impl FnOnce() -> Proc,
) {
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base_a}/v1/jobs/ping"))
        .bearer_auth(key)
        .json(&json!({"sleep_ms": 3_000, "steps": 3, "echo": "once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_status(
        &client,
        base_a,
        key,
        &id,
        "running",
        Duration::from_secs(20),
    )
    .await;
    let mut victim = victim;
    kill_9(&mut victim);
    let _replacement = replacement();
    wait_healthy(&client, base_b).await;
    let done = wait_status(
        &client,
        base_b,
        key,
        &id,
        "succeeded",
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(
        done["attempts"], 2,
        "the killed attempt counts, the second completes: {done}"
    );
    assert_eq!(done["result"]["echo"], "once");
    let usage: Value = client
        .get(format!("{base_b}/v1/usage"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        usage["totals"]["jobs.ping"], 2,
        "the warm-up and this job, each once: {usage}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_a_worker_process_with_postgres_and_redis() {
    let admin_url = std::env::var("WXPILOT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("wxp_test_{}", ulid_like());
    let admin = Database::connect(&admin_url).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let base_url = admin_url.rsplit_once('/').unwrap().0.to_owned();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = vec![
        ("DATABASE_URL", format!("{base_url}/{name}")),
        ("REDIS_URL", "redis://127.0.0.1:6379".to_owned()),
        ("WXPILOT_JOBS__QUEUE_PREFIX", format!("wxptest-{name}")),
        ("WXPILOT_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
        (
            "WXPILOT_MASTER_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned(),
        ),
        ("WXPILOT_LISTEN", format!("127.0.0.1:{port}")),
    ];
    assert!(command(&["migrate"], &env).status().unwrap().success());
    let _api = spawn(&["api"], &env);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&reqwest::Client::new(), &base).await;
    let key = tenant_key(&env);
    let worker = spawn(&["worker"], &env);
    let env2 = env.clone();
    kill_mid_job(&base, &key, worker, move || spawn(&["worker"], &env2)).await;
}

fn ulid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{}", std::process::id())
}

#[test]
fn worker_refuses_postgres_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(
        &["worker"],
        &[
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            ),
            (
                "WXPILOT_MASTER_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned(),
            ),
            ("WXPILOT_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
        ],
    )
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs Redis"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
