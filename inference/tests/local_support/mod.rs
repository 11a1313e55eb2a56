//! Shared helpers of the local-backend tests: tiny random-weight GGUF models with a
//! byte-level BPE tokenizer in their metadata, and the fetched-model paths.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use wxpilot_inference::local::{ChatModelConfig, DeviceChoice, LocalConfig, models_dir};
use wxpilot_inference::{BatchingConfig, LocalBackend};

/// Which tiny model to write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TinyArch {
    Llama,
    Qwen2,
}

pub const HIDDEN: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const LAYERS: usize = 2;
pub const FFN: usize = 128;
pub const CONTEXT: usize = 512;

/// GPT-2's printable stand-in for each byte.
pub fn byte_to_char(b: u8) -> char {
    let printable = |b: u8| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    if printable(b) {
        return char::from(b);
    }
    let offset = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + offset).unwrap()
}

/// Vocabulary: 256 byte tokens, a few merges, then the special tokens.
pub fn tiny_vocab() -> (Vec<String>, Vec<String>, Vec<i32>) {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_to_char(b).to_string()).collect();
    let sp = byte_to_char(b' ');
    let merges: Vec<(String, String)> = vec![
        ("h".into(), "e".into()),
        ("l".into(), "l".into()),
        (sp.to_string(), "t".into()),
        ("t".into(), "h".into()),
        (format!("{sp}t"), "he".into()),
        ("o".into(), "u".into()),
    ];
    for (a, b) in &merges {
        tokens.push(format!("{a}{b}"));
    }
    let mut types = vec![1i32; tokens.len()];
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.into());
        types.push(3);
    }
    let merges = merges
        .into_iter()
        .map(|(a, b)| format!("{a} {b}"))
        .collect();
    (tokens, merges, types)
}

/// Deterministic pseudo-random weights (an LCG), uniform in [-scale, scale].
fn weights(seed: u64, shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = ((state >> 40) as f32) / ((1u64 << 24) as f32);
            (unit * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn q(t: Tensor, dtype: GgmlDType) -> QTensor {
    QTensor::quantize(&t, dtype).unwrap()
}

/// Writes a tiny random model of `arch` as GGUF at `path`.
pub fn write_tiny_gguf(path: &Path, arch: TinyArch) {
    write_tiny_gguf_with(path, arch, "gpt2");
}

/// Like [`write_tiny_gguf`], declaring `tokenizer_model` as `tokenizer.ggml.model`.
pub fn write_tiny_gguf_with(path: &Path, arch: TinyArch, tokenizer_model: &str) {
    let (tokens, merges, types) = tiny_vocab();
    let vocab = tokens.len();
    let name = match arch {
        TinyArch::Llama => "llama",
        TinyArch::Qwen2 => "qwen2",
    };
    let head_dim = HIDDEN / HEADS;
    let kv = KV_HEADS * head_dim;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut seed = 1u64;
    let mut next = |shape: &[usize], scale: f32| {
        seed += 1;
        weights(seed, shape, scale)
    };
    tensors.push((
        "token_embd.weight".into(),
        q(next(&[vocab, HIDDEN], 1.0), GgmlDType::Q8_0),
    ));
    tensors.push((
        "output_norm.weight".into(),
        q((next(&[HIDDEN], 0.1) + 1.0).unwrap(), GgmlDType::F32),
    ));
    if arch == TinyArch::Llama {
        // qwen2 ties the output to the embedding table: tests the other path.
        tensors.push((
            "output.weight".into(),
            q(next(&[vocab, HIDDEN], 0.5), GgmlDType::Q4_0),
        ));
    }
    let w = 1.0 / (HIDDEN as f32).sqrt() * 1.7;
    for i in 0..LAYERS {
        let p = |s: &str| format!("blk.{i}.{s}");
        tensors.push((
            p("attn_norm.weight"),
            q((next(&[HIDDEN], 0.1) + 1.0).unwrap(), GgmlDType::F32),
        ));
        tensors.push((
            p("attn_q.weight"),
            q(next(&[HIDDEN, HIDDEN], w), GgmlDType::Q8_0),
        ));
        tensors.push((
            p("attn_k.weight"),
            q(next(&[kv, HIDDEN], w), GgmlDType::Q8_0),
        ));
        tensors.push((
            p("attn_v.weight"),
            q(next(&[kv, HIDDEN], w), GgmlDType::Q8_0),
        ));
        if arch == TinyArch::Qwen2 {
            tensors.push((p("attn_q.bias"), q(next(&[HIDDEN], 0.2), GgmlDType::F32)));
            tensors.push((p("attn_k.bias"), q(next(&[kv], 0.2), GgmlDType::F32)));
            tensors.push((p("attn_v.bias"), q(next(&[kv], 0.2), GgmlDType::F32)));
        }
        tensors.push((
            p("attn_output.weight"),
            q(next(&[HIDDEN, HIDDEN], w), GgmlDType::Q4_1),
        ));
        tensors.push((
            p("ffn_norm.weight"),
            q((next(&[HIDDEN], 0.1) + 1.0).unwrap(), GgmlDType::F32),
        ));
        tensors.push((
            p("ffn_gate.weight"),
            q(next(&[FFN, HIDDEN], w), GgmlDType::Q8_0),
        ));
        tensors.push((
            p("ffn_up.weight"),
            q(next(&[FFN, HIDDEN], w), GgmlDType::Q4_0),
        ));
        tensors.push((
            p("ffn_down.weight"),
            q(next(&[HIDDEN, FFN], w), GgmlDType::Q8_0),
        ));
    }
    let key = |k: &str| format!("{name}.{k}");
    let eos = (vocab - 1) as u32; // <|im_end|>
    let metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(name.into())),
        (key("context_length"), Value::U32(CONTEXT as u32)),
        (key("embedding_length"), Value::U32(HIDDEN as u32)),
        (key("block_count"), Value::U32(LAYERS as u32)),
        (key("feed_forward_length"), Value::U32(FFN as u32)),
        (key("attention.head_count"), Value::U32(HEADS as u32)),
        (key("attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (key("rope.dimension_count"), Value::U32(head_dim as u32)),
        (key("rope.freq_base"), Value::F32(10_000.0)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        (
            "tokenizer.ggml.model".into(),
            Value::String(tokenizer_model.into()),
        ),
        (
            "tokenizer.ggml.pre".into(),
            Value::String(if arch == TinyArch::Qwen2 { "qwen2" } else { "smollm" }.into()),
        ),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.iter().cloned().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(merges.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32((vocab - 3) as u32)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)),
        (
            "tokenizer.chat_template".into(),
            Value::String("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}".into()),
        ),
    ];
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &md, &ts).unwrap();
}

/// A temporary folder holding a tiny model of `arch`; the path of its GGUF file.
pub fn tiny_model(arch: TinyArch) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("tiny-{arch:?}.gguf"));
    write_tiny_gguf(&path, arch);
    (dir, path)
}

/// A backend serving only `gguf` as chat model `tiny`.
pub fn chat_backend(gguf: &Path, batching: BatchingConfig) -> LocalBackend {
    LocalBackend::new(LocalConfig {
        embedding_models: Vec::new(),
        chat_model: Some(ChatModelConfig {
            id: "tiny".into(),
            gguf: gguf.to_path_buf(),
            tokenizer_json: None,
        }),
        batching,
        device: DeviceChoice::Cpu,
    })
    .unwrap()
}

/// The fetched models folder, or `None` (with a printed reason) when it is missing and
/// `WXPILOT_REQUIRE_MODELS` is unset. Panics when the variable is set and models are
/// missing, so CI cannot skip silently.
pub fn fetched_models(test: &str) -> Option<PathBuf> {
    let dir = models_dir();
    let present = wxpilot_inference::local::default_embedding_dir(&dir).is_dir()
        && wxpilot_inference::local::default_chat_gguf(&dir).is_file();
    if present {
        return Some(dir);
    }
    if std::env::var_os("WXPILOT_REQUIRE_MODELS").is_some() {
        panic!(
            "{test}: models missing in {} and WXPILOT_REQUIRE_MODELS is set; run scripts/fetch-models.sh",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED {test}: models missing in {} (run scripts/fetch-models.sh; set WXPILOT_REQUIRE_MODELS to make this fail)",
        dir.display()
    );
    None
}

/// The shared conformance folder, found as the wechat tests find it:
/// `$WXPILOT_CONFORMANCE_DIR`, else `shared/conformance` next to the repository.
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("WXPILOT_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    }
}
