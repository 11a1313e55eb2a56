//! The fetched SmolLM2-135M-Instruct GGUF: its metadata tokenizer, a short answer, batched
//! greedy decoding equal to decoding alone, and streaming that never splits a character.
//! Kept to a few short generations: CI runs it in the debug profile. Skipped (with a
//! message) when the models are not fetched and `WXPILOT_REQUIRE_MODELS` is unset.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod local_support;

use futures_util::StreamExt;
use local_support::fetched_models;
use wxpilot_inference::local::{ChatModelConfig, default_chat_gguf};
use wxpilot_inference::{
    Backend, BatchingConfig, ChatMessage, DeviceChoice, GenerateEvent, GenerateParams,
    GenerateRequest, LocalBackend, LocalConfig,
};

fn backend(models: &std::path::Path) -> LocalBackend {
    LocalBackend::new(LocalConfig {
        embedding_models: Vec::new(),
        chat_model: Some(ChatModelConfig {
            id: "smollm2-135m".into(),
            gguf: default_chat_gguf(models),
            tokenizer_json: None,
        }),
        batching: BatchingConfig::default(),
        device: DeviceChoice::Cpu,
    })
    .unwrap()
}

fn ask(question: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage::user(question)],
        params: GenerateParams {
            max_tokens,
            temperature: 0.0,
            ..GenerateParams::default()
        },
        model: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_answers_batches_and_streams_whole_characters() {
    let Some(models) = fetched_models("smollm2_answers_batches_and_streams_whole_characters")
    else {
        return;
    };
    let backend = backend(&models);

    // SmolLM2's special tokens: <|im_start|> = 1, <|im_end|> = 2; digits split one by one.
    let ids = backend
        .chat_prompt_tokens(&[ChatMessage::user("2024")])
        .unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1);
    // <|im_start|> user \n | 2 0 2 4 | <|im_end|> \n <|im_start|> ass istant \n
    assert_eq!(ids.len(), 13, "{ids:?}");
    assert_eq!(
        &ids[3..7],
        &[34, 32, 34, 36],
        "one token per digit: {ids:?}"
    );
    assert_eq!(&ids[9..], &[1, 520, 9531, 198], "{ids:?}");

    let answer = backend
        .generate(ask("What is the capital of France? Answer in one word.", 8))
        .await
        .unwrap();
    assert!(answer.text.contains("Paris"), "{answer:?}");

    let questions = [
        "Name a fruit.",
        "Write one sentence about the sea and the wind at night.",
        "What is 2 + 2?",
    ];
    let mut alone = Vec::new();
    for q in questions {
        alone.push(backend.generate(ask(q, 10)).await.unwrap().text);
    }
    let together =
        futures_util::future::join_all(questions.iter().map(|q| backend.generate(ask(q, 10))))
            .await;
    for (a, t) in alone.iter().zip(together) {
        assert_eq!(a, &t.unwrap().text);
    }

    // Chinese text is made of multi-byte characters spread over byte-level tokens.
    let mut stream = backend
        .generate_stream(ask("请用中文说：你好，世界", 12))
        .await
        .unwrap();
    let mut streamed = String::new();
    let mut done = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            GenerateEvent::Token(t) => {
                assert!(!t.contains('\u{FFFD}'), "split character in {t:?}");
                streamed.push_str(&t);
            }
            GenerateEvent::Done(g) => done = Some(g),
        }
    }
    let done = done.unwrap();
    assert_eq!(streamed, done.text);
    assert!(done.usage.completion_tokens > 0);
}
