//! The README's first command, as CI runs it: `wxpilot demo --exit` on the embedded default
//! with the fetched models and public data sets. Every step must succeed with real values:
//! the summary it writes is checked here, and so are the charts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wxpilot");

fn step<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {summary}"))
}

#[test]
fn the_demo_runs_every_step_with_real_values() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    let output = Command::new(BIN)
        .args(["demo", "--exit", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .env_remove("REDIS_URL")
        .env_remove("WXPILOT_REDIS_URL")
        .env_remove("WXPILOT_DATABASE_URL")
        .output()
        .expect("run wxpilot demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("All steps succeeded"), "{stdout}");
    assert!(
        stdout.contains("api key  wxp_"),
        "the key is printed: {stdout}"
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    for s in summary["steps"].as_array().unwrap() {
        assert_eq!(s["ok"], true, "{s}");
    }
    assert_eq!(summary["steps"].as_array().unwrap().len(), 7);

    let data = &step(&summary, "data")["facts"];
    assert!(data["page_view_days"].as_u64().unwrap() > 2_800, "{data}");
    assert_eq!(data["items"], 1682);
    assert_eq!(data["interactions"], 100_000);
    assert!(data["knowledge_entries"].as_u64().unwrap() >= 5);
    // multilingual-e5-small (fetched by scripts/fetch-models.sh) embeds every entry.
    assert_eq!(
        data["knowledge_embedded"], data["knowledge_entries"],
        "{data}"
    );

    let forecast = &step(&summary, "forecast")["facts"];
    assert_eq!(forecast["daily_points"], 28);
    assert_eq!(forecast["monthly_points"], 18);
    let smape = forecast["monthly_smape"].as_f64().unwrap();
    assert!(smape > 0.0 && smape < 50.0, "M3 sMAPE {smape}");
    for chart in ["daily_chart", "monthly_chart"] {
        let svg = std::fs::read_to_string(forecast[chart].as_str().unwrap()).unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{chart}");
    }

    let recommend = &step(&summary, "recommend")["facts"];
    let followers = recommend["followers"].as_array().unwrap();
    assert_eq!(followers.len(), 3);
    for f in followers {
        assert_eq!(f["fallback"], false, "{f}");
        assert_eq!(f["top"].as_array().unwrap().len(), 3, "{f}");
    }

    let content = &step(&summary, "content")["facts"];
    assert!(content["chars"].as_u64().unwrap() > 20, "{content}");
    assert!(content["verdict"].is_string(), "{content}");

    let wechat = &step(&summary, "wechat")["facts"];
    let exchanges = wechat["exchanges"].as_array().unwrap();
    let faq = exchanges
        .iter()
        .find(|e| e["sent"] == "请问买错了可以退货吗？")
        .unwrap();
    assert!(
        faq["passive_reply"].as_str().unwrap().contains("七天内"),
        "the FAQ answer comes passively: {faq}"
    );
    let handoff = exchanges.iter().find(|e| e["sent"] == "人工").unwrap();
    assert!(!handoff["passive_reply"].as_str().unwrap().starts_with('('));
    assert!(wechat["model_answer_messages"].as_u64().unwrap() >= 1);
    // Whatever the small model wrote, its instructions never reach a follower.
    for m in wechat["customer_service_messages"].as_array().unwrap() {
        let text = m["text"].as_str().unwrap();
        assert!(!text.trim().is_empty(), "{m}");
        assert!(!text.contains("provided knowledge"), "{m}");
    }
}
