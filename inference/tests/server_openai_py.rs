//! The server answers the official `openai` Python package (tests/py/openai_client.py):
//! models, chat, streamed chat, embeddings (base64 and float), 401 and 429.
//!
//! Skipped, with a message, only when `python3 -c "import openai"` fails and
//! `WXPILOT_REQUIRE_PY_OPENAI` is unset; `scripts/setup-python.sh` installs the package.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server_support;

use std::process::Command;
use std::sync::Arc;

use server_support::{KEY, TestServer};
use wxpilot_inference::InferenceError;
use wxpilot_inference::testing::ScriptedBackend;

fn python_has_openai() -> bool {
    Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn the_official_python_client_works_against_the_server() {
    if !python_has_openai() {
        if std::env::var_os("WXPILOT_REQUIRE_PY_OPENAI").is_some() {
            panic!(
                "WXPILOT_REQUIRE_PY_OPENAI is set but python3 cannot import openai: run scripts/setup-python.sh"
            );
        }
        eprintln!(
            "SKIPPED: python3 cannot import openai (run scripts/setup-python.sh, or set WXPILOT_REQUIRE_PY_OPENAI=1 to make this a failure)"
        );
        return;
    }
    let backend = Arc::new(
        ScriptedBackend::new("local")
            .reply("Hello from wxpilot")
            .reply("one two three")
            .fail(InferenceError::Overloaded),
    );
    let server = TestServer::start(backend.clone()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/openai_client.py");
    let base_url = server.url("/v1");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &base_url, KEY])
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for check in [
        "models ok",
        "chat ok",
        "stream ok",
        "embeddings ok",
        "auth ok",
        "overload ok",
    ] {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
    assert_eq!(backend.generate_calls(), 3);
    let chat = &backend.requests()[0];
    assert_eq!(chat.params.seed, Some(42));
    assert_eq!(chat.params.temperature, 0.0);
    assert_eq!(chat.params.stop, vec!["\n\n"]);
    assert_eq!(backend.requests()[1].params.max_tokens, 2);
    server.stop().await;
}
