//! `wxpilot bench callback`: a load generator for a running server's WeChat callback. It
//! creates accounts in safe mode with one FAQ entry each through the REST API (with the
//! tenant key it is given), encrypts and signs every message beforehand as WeChat would,
//! then sends them open-loop at a fixed rate and times each answer from the moment it was
//! due, so a slow server cannot hide latency by slowing the sender. Every answer must be
//! the FAQ's encrypted passive reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use wxpilot_wechat::{MessageCrypt, url_signature};

const TOKEN: &str = "benchtoken";
const NONCE: &str = "1320562132";
const QUESTION: &str = "请问怎么退货？";
const ANSWER: &str = "签收后七天内在订单页申请售后，我们会尽快处理。";

/// What to send.
#[derive(Debug, Clone)]
pub struct CallbackBench {
    /// The server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// A tenant API key with the admin role (to create the accounts).
    pub key: String,
    /// Messages in all.
    pub messages: usize,
    /// Messages per second.
    pub rate: f64,
    /// Accounts the messages are spread over.
    pub accounts: usize,
    /// Requests in flight at most.
    pub connections: usize,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackBenchReport {
    pub messages: usize,
    pub accounts: usize,
    pub target_rate_per_s: f64,
    pub achieved_rate_per_s: f64,
    pub errors: usize,
    pub first_error: Option<String>,
    pub latency_ms: Latency,
    /// When sending began (RFC 3339), to line stalls up with server logs.
    pub started_at: String,
    /// The one-second window (by when messages were due) with the slowest answer: where a
    /// stall was, if there was one.
    pub worst_second: Option<WorstSecond>,
}

/// The slowest second of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorstSecond {
    /// Seconds after sending began.
    pub at_s: u64,
    /// Messages due in that second.
    pub messages: usize,
    /// Their median and slowest answers, milliseconds.
    pub p50_ms: f64,
    pub max_ms: f64,
}

/// The second (of `(due offset in seconds, latency in ms)` pairs) holding the slowest answer.
fn worst_second(samples: &[(f64, f64)]) -> Option<WorstSecond> {
    let (due, _) = samples.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let at_s = due.max(0.0).floor() as u64;
    let mut in_second: Vec<f64> = samples
        .iter()
        .filter(|(d, _)| d.max(0.0).floor() as u64 == at_s)
        .map(|(_, ms)| *ms)
        .collect();
    in_second.sort_by(f64::total_cmp);
    Some(WorstSecond {
        at_s,
        messages: in_second.len(),
        p50_ms: quantile(&in_second, 0.5),
        max_ms: in_second.last().copied().unwrap_or(0.0),
    })
}

struct Prepared {
    path: String,
    query: Vec<(&'static str, String)>,
    body: String,
}

fn aes_key(i: usize) -> String {
    // 43 characters of base64 without padding.
    let seed = format!("{i:04}benchkeybenchkeybenchkeybenchkeybenchke");
    seed.chars().take(43).collect()
}

async fn create_account(
    client: &reqwest::Client,
    bench: &CallbackBench,
    i: usize,
    stamp: u64,
) -> anyhow::Result<(String, MessageCrypt)> {
    let app_id = format!("wx{:016x}", stamp.wrapping_add(i as u64));
    let body = json!({
        "name": format!("bench {i}"),
        "original_id": format!("gh_{:012x}", stamp.wrapping_add(i as u64) & 0xffff_ffff_ffff),
        "app_id": app_id,
        "app_secret": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "callback_token": TOKEN,
        "encoding_aes_key": aes_key(i),
        "encryption_mode": "safe",
        "verified": true,
    });
    let res = client
        .post(format!("{}/v1/accounts", bench.url))
        .bearer_auth(&bench.key)
        .json(&body)
        .send()
        .await
        .context("creating a bench account")?;
    anyhow::ensure!(
        res.status().is_success(),
        "creating a bench account answered {}: {}",
        res.status(),
        res.text().await.unwrap_or_default()
    );
    let account: Value = res.json().await?;
    let id = account["id"]
        .as_str()
        .context("the account has no id")?
        .to_owned();
    let res = client
        .post(format!("{}/v1/accounts/{id}/knowledge", bench.url))
        .bearer_auth(&bench.key)
        .json(&json!({"question": "怎么退货", "answer": ANSWER}))
        .send()
        .await
        .context("adding the FAQ entry")?;
    anyhow::ensure!(
        res.status().is_success(),
        "adding the FAQ entry answered {}",
        res.status()
    );
    let crypt = MessageCrypt::new(TOKEN, &aes_key(i), &app_id)
        .map_err(|e| anyhow::anyhow!("bench account crypto: {e}"))?;
    Ok((id, crypt))
}

/// Waits (at most a minute) until the server has embedded the new FAQ entries, as a
/// deployment's accounts are set up before their followers write: the figures measure
/// answering, not the one-time embedding of a new knowledge base.
async fn wait_for_knowledge(client: &reqwest::Client, bench: &CallbackBench) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut busy = 0;
        for status in ["queued", "running"] {
            let page: Value = client
                .get(format!("{}/v1/jobs", bench.url))
                .bearer_auth(&bench.key)
                .query(&[("kind", "embed_knowledge"), ("status", status)])
                .send()
                .await
                .context("listing the knowledge embedding jobs")?
                .error_for_status()
                .context("listing the knowledge embedding jobs")?
                .json()
                .await?;
            busy += page["items"].as_array().map_or(0, Vec::len);
        }
        if busy == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            eprintln!("{busy} knowledge embedding job(s) still running; starting anyway");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn prepare(account: &str, crypt: &MessageCrypt, n: usize, now: i64) -> anyhow::Result<Prepared> {
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>\
         <FromUserName><![CDATA[oBench{n:022}]]></FromUserName>\
         <CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{QUESTION}]]></Content><MsgId>{}</MsgId></xml>",
        7_000_000_000_000_000_000u64 + n as u64
    );
    let ts = now.to_string();
    let enc = crypt
        .encrypt_reply(&xml, &ts, NONCE)
        .map_err(|e| anyhow::anyhow!("encrypting a bench message: {e}"))?;
    Ok(Prepared {
        path: format!("/wechat/{account}"),
        query: vec![
            ("signature", url_signature(TOKEN, &ts, NONCE)),
            ("timestamp", ts),
            ("nonce", NONCE.to_owned()),
            ("encrypt_type", "aes".to_owned()),
            ("msg_signature", enc.msg_signature),
        ],
        body: format!(
            "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
            enc.encrypt
        ),
    })
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark against `bench.url`.
pub async fn run(bench: CallbackBench) -> anyhow::Result<CallbackBenchReport> {
    anyhow::ensure!(bench.messages > 0 && bench.rate > 0.0, "nothing to send");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.connections.max(1))
        .timeout(Duration::from_secs(10))
        .build()?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut accounts = Vec::new();
    for i in 0..bench.accounts.max(1) {
        accounts.push(create_account(&client, &bench, i, stamp).await?);
    }
    wait_for_knowledge(&client, &bench).await?;
    eprintln!(
        "prepared {} account(s); encrypting {} messages…",
        accounts.len(),
        bench.messages
    );
    let now = chrono::Utc::now().timestamp();
    let prepared: Vec<Prepared> = (0..bench.messages)
        .map(|n| {
            let (id, crypt) = &accounts[n % accounts.len()];
            prepare(id, crypt, n, now)
        })
        .collect::<anyhow::Result<_>>()?;
    eprintln!("sending {} messages at {}/s…", bench.messages, bench.rate);
    let gate = Arc::new(Semaphore::new(bench.connections.max(1)));
    let interval = Duration::from_secs_f64(1.0 / bench.rate);
    let started_at = chrono::Utc::now().to_rfc3339();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(prepared.len());
    for (n, message) in prepared.into_iter().enumerate() {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = gate.clone().acquire_owned().await?;
        let client = client.clone();
        let url = format!("{}{}", bench.url, message.path);
        tasks.push(tokio::spawn(async move {
            let outcome = client
                .post(url)
                .query(&message.query)
                .body(message.body)
                .send()
                .await;
            let result = match outcome {
                Ok(res) if res.status().is_success() => match res.text().await {
                    Ok(text) if text.contains("<Encrypt>") => Ok(()),
                    Ok(text) => Err(format!(
                        "not a passive reply: {}",
                        text.chars().take(80).collect::<String>()
                    )),
                    Err(e) => Err(e.to_string()),
                },
                Ok(res) => Err(format!("HTTP {}", res.status())),
                Err(e) => Err(e.to_string()),
            };
            drop(permit);
            let offset = due.saturating_duration_since(start).as_secs_f64();
            (offset, due.elapsed().as_secs_f64() * 1_000.0, result)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut samples = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (offset, ms, result) = task.await?;
        latencies.push(ms);
        samples.push((offset, ms));
        if let Err(e) = result {
            errors += 1;
            first_error.get_or_insert(e);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(CallbackBenchReport {
        messages: bench.messages,
        accounts: accounts.len(),
        target_rate_per_s: bench.rate,
        achieved_rate_per_s: bench.messages as f64 / elapsed,
        errors,
        first_error,
        latency_ms: Latency {
            p50: quantile(&latencies, 0.50),
            p90: quantile(&latencies, 0.90),
            p99: quantile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or(0.0),
        },
        started_at,
        worst_second: worst_second(&samples),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_second_is_where_the_slowest_answer_was_due() {
        let samples = [
            (0.1, 3.0),
            (0.9, 4.0),
            (1.2, 5.0),
            (1.5, 180.0),
            (1.7, 90.0),
            (2.0, 2.0),
        ];
        let worst = worst_second(&samples).unwrap();
        assert_eq!(
            worst,
            WorstSecond {
                at_s: 1,
                messages: 3,
                p50_ms: 90.0,
                max_ms: 180.0
            }
        );
        assert_eq!(worst_second(&[]), None);
    }
}
