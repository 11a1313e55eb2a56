//! The local chat path on tiny random-weight llama and qwen2 GGUF files that the tests
//! write themselves: loading, the GGUF-metadata tokenizer, parity with candle's own
//! quantized models, continuous batching, sampling, stops, cancellation and overload.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod local_support;

use std::time::Duration;

use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use futures_util::StreamExt;
use local_support::{TinyArch, chat_backend, tiny_model};
use wxpilot_inference::local::chat::ChatText;
use wxpilot_inference::local::llm::{PromptWeights, SequenceChunk, Transformer, read_gguf};
use wxpilot_inference::{
    Backend, BatchingConfig, ChatMessage, FinishReason, GenerateEvent, GenerateParams,
    GenerateRequest, InferenceError,
};

fn batching(size: usize, capacity: usize) -> BatchingConfig {
    BatchingConfig {
        max_batch_tokens: 100_000,
        max_batch_size: size,
        max_wait_ms: 2,
        queue_capacity: capacity,
    }
}

fn request(user: &str, params: GenerateParams) -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage::user(user)],
        params,
        model: None,
    }
}

fn greedy(max_tokens: u32) -> GenerateParams {
    GenerateParams {
        max_tokens,
        temperature: 0.0,
        ..GenerateParams::default()
    }
}

/// Logits of candle's reference implementation for `tokens`, fed as one prompt chunk
/// and then one token at a time.
fn reference_logits(
    path: &std::path::Path,
    arch: TinyArch,
    prompt: &[u32],
    then: &[u32],
) -> Vec<Vec<f32>> {
    let (content, mut file) = read_gguf(path).unwrap();
    let device = Device::Cpu;
    let mut out = Vec::new();
    let input = Tensor::new(prompt, &device).unwrap().unsqueeze(0).unwrap();
    macro_rules! run {
        ($model:expr) => {{
            let mut model = $model;
            out.push(
                model
                    .forward(&input, 0)
                    .unwrap()
                    .squeeze(0)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            );
            for (i, &t) in then.iter().enumerate() {
                let x = Tensor::new(&[t], &device).unwrap().unsqueeze(0).unwrap();
                let logits = model.forward(&x, prompt.len() + i).unwrap();
                out.push(logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap());
            }
        }};
    }
    match arch {
        TinyArch::Llama => {
            run!(quantized_llama::ModelWeights::from_gguf(content, &mut file, &device).unwrap())
        }
        TinyArch::Qwen2 => {
            run!(quantized_qwen2::ModelWeights::from_gguf(content, &mut file, &device).unwrap())
        }
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_parity_with_candle(arch: TinyArch) {
    let (_dir, path) = tiny_model(arch);
    let (content, mut file) = read_gguf(&path).unwrap();
    let text = ChatText::load(&content, None, None).unwrap();
    let model =
        Transformer::from_gguf_with(&content, &mut file, &Device::Cpu, PromptWeights::Quantized)
            .unwrap();
    let prompt = text.encode_chat(&[ChatMessage::user("the house")]).unwrap();
    let then = [40u32, 41, 260];
    let expected = reference_logits(&path, arch, &prompt, &then);

    // Ours, with a second unrelated sequence in every batch to prove isolation.
    let mut cache = model.new_cache();
    let mut other = model.new_cache();
    let other_prompt: Vec<u32> = (50..70).collect();
    let mut got = Vec::new();
    let logits = model
        .forward(&mut [
            SequenceChunk {
                cache: &mut other,
                tokens: &other_prompt,
            },
            SequenceChunk {
                cache: &mut cache,
                tokens: &prompt,
            },
        ])
        .unwrap();
    got.push(logits.get(1).unwrap().to_vec1::<f32>().unwrap());
    for &t in &then {
        let logits = model
            .forward(&mut [
                SequenceChunk {
                    cache: &mut cache,
                    tokens: &[t],
                },
                SequenceChunk {
                    cache: &mut other,
                    tokens: &[7],
                },
            ])
            .unwrap();
        got.push(logits.get(0).unwrap().to_vec1::<f32>().unwrap());
    }
    assert_eq!(cache.len(), prompt.len() + then.len());
    for (step, (e, g)) in expected.iter().zip(&got).enumerate() {
        let diff = max_abs_diff(e, g);
        assert!(diff < 1e-3, "{arch:?} step {step}: logits differ by {diff}");
    }
}

#[test]
fn llama_forward_matches_candle_quantized_llama() {
    check_parity_with_candle(TinyArch::Llama);
}

#[test]
fn qwen2_forward_matches_candle_quantized_qwen2() {
    check_parity_with_candle(TinyArch::Qwen2);
}

fn logits_of(model: &Transformer, chunks: &mut [SequenceChunk<'_>]) -> Vec<Vec<f32>> {
    model.forward(chunks).unwrap().to_vec2::<f32>().unwrap()
}

/// With the f32 weight copies, a decode step that shares its forward pass with another
/// sequence's prompt gives the same logits as each run alone.
fn check_mixed_prompt_and_decode_rows(arch: TinyArch) {
    let (_dir, path) = tiny_model(arch);
    let (content, mut file) = read_gguf(&path).unwrap();
    let model = Transformer::from_gguf(&content, &mut file, &Device::Cpu).unwrap();
    let quantized =
        Transformer::from_gguf_with(&content, &mut file, &Device::Cpu, PromptWeights::Quantized)
            .unwrap();
    let a_prompt: Vec<u32> = (30..45).collect();
    let b_prompt: Vec<u32> = (60..90).collect();

    let mut a_alone = model.new_cache();
    let a0 = logits_of(
        &model,
        &mut [SequenceChunk {
            cache: &mut a_alone,
            tokens: &a_prompt,
        }],
    );
    let a1 = logits_of(
        &model,
        &mut [SequenceChunk {
            cache: &mut a_alone,
            tokens: &[9],
        }],
    );
    let mut b_alone = model.new_cache();
    let b0 = logits_of(
        &model,
        &mut [SequenceChunk {
            cache: &mut b_alone,
            tokens: &b_prompt,
        }],
    );

    let mut a = model.new_cache();
    let mut b = model.new_cache();
    logits_of(
        &model,
        &mut [SequenceChunk {
            cache: &mut a,
            tokens: &a_prompt,
        }],
    );
    let mixed = logits_of(
        &model,
        &mut [
            SequenceChunk {
                cache: &mut a,
                tokens: &[9],
            },
            SequenceChunk {
                cache: &mut b,
                tokens: &b_prompt,
            },
        ],
    );
    assert!(
        max_abs_diff(&mixed[0], &a1[0]) < 1e-5,
        "{arch:?} decode row"
    );
    assert!(
        max_abs_diff(&mixed[1], &b0[0]) < 1e-5,
        "{arch:?} prompt row"
    );

    // The f32 copies agree with the quantized weights up to activation quantisation.
    let mut q = quantized.new_cache();
    let q0 = logits_of(
        &quantized,
        &mut [SequenceChunk {
            cache: &mut q,
            tokens: &a_prompt,
        }],
    );
    let scale = q0[0].iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = max_abs_diff(&q0[0], &a0[0]);
    assert!(
        diff < 0.1 * scale,
        "{arch:?}: {diff} against logits up to {scale}"
    );
}

/// Decode rows of sequences of very different lengths attend together (keys and values
/// padded to the longest and masked) and still give each sequence the logits it gets alone,
/// step after step, while the longest one's cache grows past its first buffer.
fn check_batched_decode_rows(arch: TinyArch) {
    let (_dir, path) = tiny_model(arch);
    let (content, mut file) = read_gguf(&path).unwrap();
    let model = Transformer::from_gguf(&content, &mut file, &Device::Cpu).unwrap();
    let prompts: [Vec<u32>; 3] = [
        (30..33).collect(),
        (40..110).map(|t| t % 200 + 5).collect(),
        (60..80).collect(),
    ];
    let steps: [u32; 6] = [9, 17, 3, 44, 12, 7];

    // Each sequence alone: its prompt, then the decode tokens one by one.
    let alone: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .map(|prompt| {
            let mut cache = model.new_cache();
            logits_of(
                &model,
                &mut [SequenceChunk {
                    cache: &mut cache,
                    tokens: prompt,
                }],
            );
            steps
                .iter()
                .map(|&t| {
                    logits_of(
                        &model,
                        &mut [SequenceChunk {
                            cache: &mut cache,
                            tokens: &[t],
                        }],
                    )
                    .remove(0)
                })
                .collect()
        })
        .collect();

    // Together: the prompts alone, then every decode step as one pass of three rows.
    let mut caches: Vec<_> = prompts.iter().map(|_| model.new_cache()).collect();
    for (cache, prompt) in caches.iter_mut().zip(&prompts) {
        logits_of(
            &model,
            &mut [SequenceChunk {
                cache,
                tokens: prompt,
            }],
        );
    }
    // A fourth sequence's prompt joins the third step between the decode rows, so decode
    // rows sit at packed rows that are not their chunk's index.
    let late_prompt: Vec<u32> = (100..112).collect();
    let mut late_alone = model.new_cache();
    let late_expected = logits_of(
        &model,
        &mut [SequenceChunk {
            cache: &mut late_alone,
            tokens: &late_prompt,
        }],
    )
    .remove(0);
    let mut late = model.new_cache();
    for (step, &t) in steps.iter().enumerate() {
        let tokens = [t];
        let mut chunks: Vec<SequenceChunk<'_>> = caches
            .iter_mut()
            .map(|cache| SequenceChunk {
                cache,
                tokens: &tokens,
            })
            .collect();
        let joins = step == 2;
        if joins {
            chunks.insert(
                1,
                SequenceChunk {
                    cache: &mut late,
                    tokens: &late_prompt,
                },
            );
        }
        let mut together = logits_of(&model, &mut chunks);
        if joins {
            let diff = max_abs_diff(&together.remove(1), &late_expected);
            assert!(diff < 1e-5, "{arch:?} the joining prompt: {diff}");
        }
        for (sequence, logits) in together.iter().enumerate() {
            let diff = max_abs_diff(logits, &alone[sequence][step]);
            assert!(
                diff < 1e-5,
                "{arch:?} step {step} sequence {sequence}: {diff}"
            );
        }
    }
    assert_eq!(caches[1].len(), 70 + steps.len());
}

#[test]
fn llama_decode_rows_of_different_lengths_attend_together() {
    check_batched_decode_rows(TinyArch::Llama);
}

#[test]
fn qwen2_decode_rows_of_different_lengths_attend_together() {
    check_batched_decode_rows(TinyArch::Qwen2);
}

#[test]
fn llama_prompt_and_decode_rows_mix_without_changing_results() {
    check_mixed_prompt_and_decode_rows(TinyArch::Llama);
}

#[test]
fn qwen2_prompt_and_decode_rows_mix_without_changing_results() {
    check_mixed_prompt_and_decode_rows(TinyArch::Qwen2);
}

#[test]
fn gguf_metadata_tokenizer_round_trips_and_knows_the_chat_tokens() {
    let (_dir, path) = tiny_model(TinyArch::Llama);
    let (content, _) = read_gguf(&path).unwrap();
    let text = ChatText::load(&content, None, None).unwrap();
    let ids = text
        .encode_chat(&[ChatMessage::user("hello the world, 42 ünï")])
        .unwrap();
    let vocab = text.tokenizer.get_vocab_size(true) as u32;
    // <|im_start|> is one token, and it opens the prompt.
    assert_eq!(ids[0], vocab - 2);
    assert_eq!(
        ids.iter().filter(|&&i| i == vocab - 1).count(),
        1,
        "one <|im_end|>"
    );
    // The merges were used: "he" and "ll" are single tokens.
    assert!(ids.contains(&text.tokenizer.token_to_id("he").unwrap()));
    assert!(ids.contains(&text.tokenizer.token_to_id("ll").unwrap()));
    let end = ids.iter().position(|&i| i == vocab - 1).unwrap();
    assert_eq!(
        text.decode(&ids[1..end]).unwrap(),
        "user\nhello the world, 42 ünï"
    );
    assert!(
        text.stop_ids.contains(&(vocab - 1)),
        "<|im_end|> ends a turn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_generations_are_the_same_batched_and_alone() {
    for arch in [TinyArch::Llama, TinyArch::Qwen2] {
        let (_dir, path) = tiny_model(arch);
        let backend = chat_backend(&path, batching(8, 64));
        let prompts = [
            "hi",
            "tell me about the weather in the mountains in a long and winding sentence please",
            "ou",
            "the the the hello hello",
            "a medium length prompt with some words",
        ];
        let mut alone = Vec::new();
        for p in prompts {
            alone.push(backend.generate(request(p, greedy(24))).await.unwrap());
        }
        let together = futures_util::future::join_all(
            prompts
                .iter()
                .map(|p| backend.generate(request(p, greedy(24)))),
        )
        .await;
        for (a, t) in alone.iter().zip(together) {
            let t = t.unwrap();
            assert_eq!(a.text, t.text, "{arch:?}");
            assert_eq!(a.usage, t.usage);
        }
        let largest = backend.batch_sizes(None).chat.unwrap().largest;
        assert!(
            largest >= 2,
            "{arch:?}: sequences never shared a step ({largest})"
        );
        // Random weights still make different prompts diverge.
        assert!(alone.iter().any(|g| g.text != alone[0].text));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_text_and_other_seeds_differ() {
    let (_dir, path) = tiny_model(TinyArch::Qwen2);
    let backend = chat_backend(&path, batching(8, 64));
    let sampled = |seed| GenerateParams {
        max_tokens: 32,
        temperature: 1.0,
        top_p: 0.95,
        seed: Some(seed),
        stop: Vec::new(),
    };
    let a = backend
        .generate(request("hello", sampled(7)))
        .await
        .unwrap();
    let b = backend
        .generate(request("hello", sampled(7)))
        .await
        .unwrap();
    assert_eq!(a.text, b.text);
    let mut others = Vec::new();
    for seed in 8..12 {
        others.push(
            backend
                .generate(request("hello", sampled(seed)))
                .await
                .unwrap()
                .text,
        );
    }
    assert!(
        others.iter().any(|t| *t != a.text),
        "every seed gave the same text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_and_stop_strings_are_honoured() {
    let (_dir, path) = tiny_model(TinyArch::Llama);
    let backend = chat_backend(&path, batching(8, 64));
    // Random weights may pick the end-of-turn token early for some prompts: use the first
    // prompt that runs to the limit.
    let mut found = None;
    for prompt in ["hello", "the house", "tell me", "ou ou", "abc", "weather"] {
        let g = backend.generate(request(prompt, greedy(40))).await.unwrap();
        if g.finish_reason == FinishReason::Length {
            found = Some((prompt, g));
            break;
        }
        assert_eq!(g.finish_reason, FinishReason::Stop);
        assert!(g.usage.completion_tokens < 40);
    }
    let (prompt, long) = found.expect("some prompt runs to max_tokens");
    assert_eq!(long.usage.completion_tokens, 40);
    assert_eq!(long.model, "tiny");

    // Pick a stop string from the middle of the greedy text, crossing token boundaries.
    let chars: Vec<char> = long.text.chars().collect();
    assert!(chars.len() >= 12, "{:?}", long.text);
    let stop: String = chars[6..9].iter().collect();
    let expected: String = {
        let at = long.text.find(&stop).unwrap();
        long.text[..at].to_owned()
    };
    let mut params = greedy(40);
    params.stop = vec![stop.clone(), "never appears 🙂".into()];
    let mut stream = backend
        .generate_stream(request(prompt, params))
        .await
        .unwrap();
    let mut streamed = String::new();
    let mut done = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            GenerateEvent::Token(t) => streamed.push_str(&t),
            GenerateEvent::Done(g) => done = Some(g),
        }
    }
    let done = done.unwrap();
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert_eq!(done.text, expected, "stop {stop:?}");
    assert_eq!(streamed, done.text);
    assert!(!done.text.contains(&stop));

    let short = backend.generate(request(prompt, greedy(3))).await.unwrap();
    assert_eq!(short.usage.completion_tokens, 3);
    assert!(long.text.starts_with(&short.text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_frees_its_slot_for_the_next_request() {
    let (_dir, path) = tiny_model(TinyArch::Llama);
    // One slot only: the second request can only run once the first one leaves.
    let backend = chat_backend(&path, batching(1, 8));
    let mut first = backend
        .generate_stream(request("hello", greedy(400)))
        .await
        .unwrap();
    let event = first.next().await.unwrap().unwrap();
    assert!(matches!(event, GenerateEvent::Token(_)));
    drop(first);
    let second = tokio::time::timeout(
        Duration::from_secs(60),
        backend.generate(request("the", greedy(4))),
    )
    .await
    .expect("the freed slot admitted the next request")
    .unwrap();
    assert_eq!(second.usage.completion_tokens, 4);
    assert_eq!(backend.batch_sizes(None).chat.unwrap().largest, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_overloaded() {
    let (_dir, path) = tiny_model(TinyArch::Llama);
    let backend = chat_backend(&path, batching(1, 2));
    // The first request occupies the only slot for a long time; two more fill the queue.
    let long_prompt = "hello the world ".repeat(20);
    let mut streams = Vec::new();
    let mut overloaded = 0;
    for _ in 0..6 {
        match backend
            .generate_stream(request(&long_prompt, greedy(400)))
            .await
        {
            Ok(stream) => streams.push(stream),
            Err(InferenceError::Overloaded) => overloaded += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(streams.len() <= 3, "{} accepted", streams.len());
    assert!(overloaded >= 3);
    assert!(InferenceError::Overloaded.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_queueing() {
    let (_dir, path) = tiny_model(TinyArch::Qwen2);
    let backend = chat_backend(&path, batching(4, 4));
    let empty = GenerateRequest {
        messages: vec![],
        params: greedy(4),
        model: None,
    };
    assert!(matches!(
        backend.generate(empty).await,
        Err(InferenceError::InvalidRequest(_))
    ));
    let mut unknown = request("hi", greedy(4));
    unknown.model = Some("gpt-9".into());
    assert!(matches!(
        backend.generate(unknown).await,
        Err(InferenceError::InvalidRequest(_))
    ));
    let too_long = request(&"hello ".repeat(400), greedy(4));
    assert!(matches!(
        backend.generate(too_long).await,
        Err(InferenceError::InvalidRequest(_))
    ));
    assert!(matches!(
        backend.generate(request("hi", greedy(0))).await,
        Err(InferenceError::InvalidRequest(_))
    ));
    let models = backend.models();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].id, "tiny");
}

#[test]
fn a_missing_model_file_names_the_path_and_the_fetch_script() {
    let missing = std::path::Path::new("/nonexistent/model.gguf");
    let error = match wxpilot_inference::LocalBackend::new(wxpilot_inference::LocalConfig {
        embedding_models: vec![wxpilot_inference::EmbeddingModelConfig {
            id: "e".into(),
            dir: "/nonexistent/folder".into(),
            prefix: Default::default(),
        }],
        chat_model: None,
        batching: BatchingConfig::default(),
        device: Default::default(),
    }) {
        Err(e) => e,
        Ok(_) => panic!("loaded a missing folder"),
    };
    match error {
        InferenceError::ModelMissing { what, hint } => {
            assert!(what.starts_with("/nonexistent/folder/"), "{what}");
            assert!(hint.contains("scripts/fetch-models.sh"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let error = match read_gguf(missing) {
        Err(e) => e,
        Ok(_) => panic!("read a missing file"),
    };
    assert!(error.to_string().contains("/nonexistent/model.gguf"));
    assert!(error.to_string().contains("scripts/fetch-models.sh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenizer_json_beside_the_file_is_used_when_the_metadata_has_none_candle_builds() {
    let (dir, path) = tiny_model(TinyArch::Llama);
    let (content, _) = read_gguf(&path).unwrap();
    let reference = ChatText::load(&content, None, None).unwrap();
    let prompt = [ChatMessage::user("hello there")];
    let expected = reference.encode_chat(&prompt).unwrap();

    let other = dir.path().join("sentencepiece-declared.gguf");
    local_support::write_tiny_gguf_with(&other, TinyArch::Llama, "llama");
    let (content, _) = read_gguf(&other).unwrap();
    assert!(
        ChatText::load(&content, None, None).is_err(),
        "no tokenizer to build"
    );
    reference
        .tokenizer
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    let beside = ChatText::load(&content, None, Some(dir.path())).unwrap();
    assert_eq!(beside.encode_chat(&prompt).unwrap(), expected);
    let backend = chat_backend(&other, batching(2, 4));
    let g = backend
        .generate(request("hello there", greedy(5)))
        .await
        .unwrap();
    assert!(g.usage.completion_tokens >= 1);
    assert_eq!(g.usage.prompt_tokens as usize, expected.len());

    let missing = dir.path().join("absent/tokenizer.json");
    match ChatText::load(&content, Some(&missing), None) {
        Err(InferenceError::ModelMissing { what, .. }) => assert!(what.contains("absent")),
        other => panic!("unexpected {:?}", other.err()),
    }
}
