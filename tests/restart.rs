//! Replacing the api process on the same port drops nothing: steady traffic runs while a
//! second process starts on the same listening socket (passed in as systemd does, with
//! `LISTEN_FDS`) and the first gets SIGTERM, drains and exits. Every request must succeed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wxpilot");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(args: &[&str], data: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // These tests move jobs and requests, not models: skip loading them.
        .env("WXPILOT_INFERENCE__LOCAL__ENABLED", "false")
        .env("WXPILOT_DATA_DIR", data)
        .env("WXPILOT_LOG__FILTER", "info,sqlx=warn,sea_orm=warn")
        .env("WXPILOT_HTTP__SHUTDOWN_TIMEOUT_SECS", "10")
        .env("WXPILOT_JOBS__SHUTDOWN_GRACE_SECS", "1");
    cmd
}

/// Starts `wxpilot serve` on the shared socket and returns once it says it is listening.
fn spawn_on(listener: &TcpListener, data: &str) -> Proc {
    let fd: OwnedFd = listener.try_clone().unwrap().into();
    let mut cmd = command(&["serve"], data);
    cmd.env("LISTEN_FDS", "1")
        .fd_mappings(vec![FdMapping {
            parent_fd: fd,
            child_fd: 3,
        }])
        .unwrap();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut passed = false;
        let mut said = false;
        // Keep reading to the end so the child never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            passed |= line.contains("listening socket passed in");
            if !said && line.contains("wxpilot API listening") {
                said = true;
                let _ = ready_tx.send(passed);
            }
        }
    });
    let passed = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the process did not start listening");
    assert!(
        passed,
        "the process took the socket passed in, not a new one"
    );
    Proc(child)
}

fn terminate(proc: &Proc) {
    let pid = proc.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_api_process_on_the_same_port_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());

    let mut old = spawn_on(&listener, &data);
    let out = command(
        &["tenant", "create", "--name", "Restart test", "--json"],
        &data,
    )
    .stderr(Stdio::null())
    .output()
    .unwrap();
    assert!(out.status.success(), "tenant create failed");
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["api_key"]["secret"].as_str().unwrap().to_owned();

    // A new connection per request, as a load balancer sending to a restarting backend
    // would see it: every request goes through accept().
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let outcome = client
                    .get(format!("{base}/v1/campaigns"))
                    .bearer_auth(&key)
                    .send()
                    .await;
                match outcome {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(format!("{e}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 0, "traffic flows to the first process");

    let new = spawn_on(&listener, &data);
    terminate(&old);
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = old.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the old process did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "the old process exits cleanly: {exit}");
    let at_exit = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let total = ok.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        total > at_exit,
        "the new process serves after the old one left ({at_exit} → {total})"
    );
    drop(new);
}
