//! Sentence embeddings from a BERT-family Hugging Face folder (`config.json`,
//! `tokenizer.json`, `model.safetensors`): tokenise, run the encoder
//! ([`super::encoder`]) on a batch of texts (packed on the CPU, padded elsewhere), pool,
//! normalise.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationParams};

use super::encoder::{Encoder, EncoderConfig, Family, PackedTokens, TokenVectors};
use super::{candle_err, missing_file};
use crate::batcher::BatchCost;
use crate::types::{EmbedKind, InferenceError};

/// Text prefixes a model family was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedPrefix {
    /// Texts go in as they are.
    #[default]
    None,
    /// E5 family: `query: ` or `passage: ` by [`EmbedKind`].
    E5,
}

impl EmbedPrefix {
    /// The text the model sees for `text` used as `kind`.
    pub fn apply(self, kind: EmbedKind, text: &str) -> String {
        match (self, kind) {
            (Self::None, _) => text.to_owned(),
            (Self::E5, EmbedKind::Query) => format!("query: {text}"),
            (Self::E5, EmbedKind::Passage) => format!("passage: {text}"),
        }
    }
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the text's own tokens (not its padding).
    Mean,
    /// The first (`[CLS]`) token.
    Cls,
}

/// The sentence-transformers post-processing a folder asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolingConfig {
    pub pooling: Pooling,
    pub normalize: bool,
}

impl Default for PoolingConfig {
    fn default() -> Self {
        Self {
            pooling: Pooling::Mean,
            normalize: true,
        }
    }
}

#[derive(Deserialize)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct ModelTypeProbe {
    model_type: Option<String>,
    max_position_embeddings: Option<usize>,
}

/// Reads the pooling and normalisation a sentence-transformers folder declares
/// (`modules.json`, `1_Pooling/config.json`); mean + normalise when the folder says nothing.
pub fn read_pooling_config(dir: &Path) -> PoolingConfig {
    let Some(modules) = read_json::<Vec<ModuleEntry>>(&dir.join("modules.json")) else {
        return PoolingConfig::default();
    };
    let normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
    let pooling = modules
        .iter()
        .find(|m| m.kind.ends_with(".Pooling"))
        .and_then(|m| read_json::<PoolingFile>(&dir.join(&m.path).join("config.json")))
        .map(|p| {
            if p.pooling_mode_cls_token && !p.pooling_mode_mean_tokens {
                Pooling::Cls
            } else {
                Pooling::Mean
            }
        })
        .unwrap_or(Pooling::Mean);
    PoolingConfig { pooling, normalize }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// A loaded embedding model. Callers tokenise on their own threads; the batcher thread
/// runs the encoder.
pub struct EmbeddingModel {
    encoder: Encoder,
    tokenizer: Tokenizer,
    pooling: PoolingConfig,
    prefix: EmbedPrefix,
    max_tokens: usize,
}

/// One text ready for the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

impl EmbeddingModel {
    /// Loads a BERT or XLM-RoBERTa folder. Missing files answer `ModelMissing`.
    pub fn load(dir: &Path, prefix: EmbedPrefix, device: &Device) -> Result<Self, InferenceError> {
        let config_path = dir.join("config.json");
        let tokenizer_path = dir.join("tokenizer.json");
        let weights_path = dir.join("model.safetensors");
        for path in [&config_path, &tokenizer_path, &weights_path] {
            if !path.is_file() {
                return Err(missing_file(path));
            }
        }
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| InferenceError::Internal(format!("{}: {e}", config_path.display())))?;
        let probe: ModelTypeProbe = serde_json::from_str(&config_text)
            .map_err(|e| InferenceError::Internal(format!("{}: {e}", config_path.display())))?;
        let weights = std::fs::read(&weights_path)
            .map_err(|e| InferenceError::Internal(format!("{}: {e}", weights_path.display())))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, device)
            .map_err(candle_err)?;
        let model_type = probe.model_type.unwrap_or_else(|| "bert".into());
        let (family, prefix_name) = match model_type.as_str() {
            "bert" => (Family::Bert, "bert"),
            "xlm-roberta" => (Family::XlmRoberta, "roberta"),
            other => {
                return Err(InferenceError::Internal(format!(
                    "{}: model_type `{other}` is not a supported encoder (bert, xlm-roberta)",
                    config_path.display()
                )));
            }
        };
        let config: EncoderConfig = serde_json::from_str(&config_text)
            .map_err(|e| InferenceError::Internal(format!("{}: {e}", config_path.display())))?;
        // Some checkpoints keep the encoder under the family's name.
        let vb = if vb.contains_tensor(&format!("{prefix_name}.embeddings.word_embeddings.weight"))
        {
            vb.pp(prefix_name)
        } else {
            vb
        };
        let encoder = Encoder::load(vb, &config, family)
            .map_err(|e| InferenceError::Internal(format!("{}: {e}", weights_path.display())))?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| InferenceError::Internal(format!("{}: {e}", tokenizer_path.display())))?;
        let reserved = match family {
            Family::Bert => 0,
            Family::XlmRoberta => config.pad_token_id as usize + 1,
        };
        let max_tokens = max_sequence_length(dir, probe.max_position_embeddings, reserved);
        // The folder's tokenizer pads every input to a fixed width; batches pack or pad
        // their texts themselves.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| InferenceError::Internal(format!("tokenizer truncation: {e}")))?;
        Ok(Self {
            encoder,
            tokenizer,
            pooling: read_pooling_config(dir),
            prefix,
            max_tokens,
        })
    }

    /// Most tokens one text keeps (longer texts are truncated).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenises one text as the model sees it (prefix, special tokens, truncation).
    pub fn encode(&self, kind: EmbedKind, text: &str) -> Result<EncodedText, InferenceError> {
        let input = self.prefix.apply(kind, text);
        let encoding = self
            .tokenizer
            .encode(input, true)
            .map_err(|e| InferenceError::Internal(format!("tokenizer: {e}")))?;
        Ok(EncodedText {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
        })
    }

    /// How the batcher counts a batch's cost: the real tokens where batches run packed
    /// (CPU), texts × longest where they run padded.
    pub fn batch_cost(&self) -> BatchCost {
        if self.encoder.runs_packed() {
            BatchCost::Sum
        } else {
            BatchCost::Padded
        }
    }

    /// Embeds already-encoded texts as one batch.
    pub fn embed_encoded(&self, texts: &[EncodedText]) -> Result<Vec<Vec<f32>>, InferenceError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tokens = PackedTokens::default();
        for text in texts {
            tokens.push(&text.ids, &text.type_ids);
        }
        let vectors = match self.encoder.forward(&tokens).map_err(candle_err)? {
            None => Vec::new(),
            Some(TokenVectors::Packed(rows)) => {
                pool(&rows, self.encoder.hidden(), tokens.lengths(), self.pooling)
            }
            Some(TokenVectors::Padded { vectors, mask }) => {
                pool_on_device(&vectors, &mask, self.pooling).map_err(candle_err)?
            }
        };
        if vectors.iter().flatten().any(|v| !v.is_finite()) {
            return Err(InferenceError::Internal(
                "the embedding model produced values that are not finite".into(),
            ));
        }
        Ok(vectors)
    }
}

/// Sentence vectors from padded token vectors `[texts, longest, hidden]` and their mask
/// `[texts, longest]`, computed where they are (a GPU), so only `[texts, hidden]` travels.
fn pool_on_device(
    vectors: &Tensor,
    mask: &Tensor,
    config: PoolingConfig,
) -> candle_core::Result<Vec<Vec<f32>>> {
    let pooled = match config.pooling {
        Pooling::Cls => vectors.narrow(1, 0, 1)?.squeeze(1)?,
        Pooling::Mean => {
            let mask = mask.to_dtype(vectors.dtype())?.unsqueeze(2)?;
            let summed = vectors.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9f64, f64::MAX)?;
            summed.broadcast_div(&counts)?
        }
    };
    let pooled = if config.normalize {
        let norms = pooled
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f64, f64::MAX)?;
        pooled.broadcast_div(&norms)?
    } else {
        pooled
    };
    pooled
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .to_vec2::<f32>()
}

/// Sentence vectors from packed token vectors (`[Σ lengths, hidden]`): each text's mean
/// or first row, L2-normalised when asked, as sentence-transformers computes them (a text
/// without tokens gives zeros).
pub fn pool(
    rows: &[f32],
    hidden: usize,
    lengths: &[usize],
    config: PoolingConfig,
) -> Vec<Vec<f32>> {
    let hidden = hidden.max(1);
    let mut texts = rows.chunks_exact(hidden);
    lengths
        .iter()
        .map(|&len| {
            let mut vector = vec![0f32; hidden];
            for (i, row) in texts.by_ref().take(len).enumerate() {
                match config.pooling {
                    Pooling::Mean => vector.iter_mut().zip(row).for_each(|(v, r)| *v += r),
                    Pooling::Cls if i == 0 => vector.copy_from_slice(row),
                    Pooling::Cls => {}
                }
            }
            if config.pooling == Pooling::Mean {
                let count = (len as f32).max(1e-9);
                vector.iter_mut().for_each(|v| *v /= count);
            }
            if config.normalize {
                let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                vector.iter_mut().for_each(|v| *v /= norm);
            }
            vector
        })
        .collect()
}

/// The longest input: sentence-transformers' `max_seq_length` when the folder has it,
/// otherwise the position table less the positions a family reserves (XLM-R numbers real
/// tokens from `pad_token_id + 1`).
fn max_sequence_length(dir: &Path, positions: Option<usize>, reserved: usize) -> usize {
    let usable = positions.unwrap_or(512).saturating_sub(reserved);
    read_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))
        .and_then(|c| c.max_seq_length)
        .map(|m| m.min(usable))
        .unwrap_or(usable)
        .max(2)
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e5_prefixes_by_kind_and_others_pass_text_through() {
        assert_eq!(
            EmbedPrefix::E5.apply(EmbedKind::Query, "运费"),
            "query: 运费"
        );
        assert_eq!(EmbedPrefix::E5.apply(EmbedKind::Passage, "x"), "passage: x");
        assert_eq!(EmbedPrefix::None.apply(EmbedKind::Query, "x"), "x");
    }

    #[test]
    fn pooling_follows_the_sentence_transformers_modules() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_pooling_config(dir.path()), PoolingConfig::default());
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        std::fs::write(
            dir.path().join("modules.json"),
            r#"[{"type":"sentence_transformers.models.Transformer","path":""},
                {"type":"sentence_transformers.models.Pooling","path":"1_Pooling"}]"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("1_Pooling/config.json"),
            r#"{"pooling_mode_cls_token":true,"pooling_mode_mean_tokens":false}"#,
        )
        .unwrap();
        let config = read_pooling_config(dir.path());
        assert_eq!(config.pooling, Pooling::Cls);
        assert!(!config.normalize, "no Normalize module");
    }

    #[test]
    fn max_length_prefers_sentence_transformers_and_respects_positions() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(max_sequence_length(dir.path(), Some(512), 0), 512);
        // XLM-R with pad id 1: positions 2..=513 of a table of 514.
        assert_eq!(max_sequence_length(dir.path(), Some(514), 2), 512);
        std::fs::write(
            dir.path().join("sentence_bert_config.json"),
            r#"{"max_seq_length":256}"#,
        )
        .unwrap();
        assert_eq!(max_sequence_length(dir.path(), Some(512), 0), 256);
        assert_eq!(max_sequence_length(dir.path(), Some(128), 0), 128);
    }

    #[test]
    fn pooling_takes_each_texts_own_rows() {
        // Two texts of widths 2: rows [1,0],[3,4] | [0,2] (one token) | no tokens.
        let rows = [1.0, 0.0, 3.0, 4.0, 0.0, 2.0];
        let mean = pool(
            &rows,
            2,
            &[2, 1, 0],
            PoolingConfig {
                pooling: Pooling::Mean,
                normalize: false,
            },
        );
        assert_eq!(mean, vec![vec![2.0, 2.0], vec![0.0, 2.0], vec![0.0, 0.0]]);
        let cls = pool(
            &rows,
            2,
            &[2, 1],
            PoolingConfig {
                pooling: Pooling::Cls,
                normalize: true,
            },
        );
        assert_eq!(cls, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        let normalised = pool(&rows, 2, &[2], PoolingConfig::default());
        let expected = 1.0 / 2f32.sqrt();
        assert!(normalised[0].iter().all(|v| (v - expected).abs() < 1e-6));
    }

    #[test]
    fn pooling_on_the_device_matches_the_host() {
        // Texts of 2, 1 and 3 tokens padded to 3, hidden 2.
        let rows = [
            1.0f32, 0.0, 3.0, 4.0, 0.0, 2.0, -1.0, 1.0, 2.0, 2.0, 0.5, -3.0,
        ];
        let lengths = [2usize, 1, 3];
        let mut padded = vec![9.0f32; 3 * 3 * 2];
        let mut mask = vec![0f32; 9];
        let mut at = 0;
        for (text, &len) in lengths.iter().enumerate() {
            for i in 0..len {
                padded[(text * 3 + i) * 2..(text * 3 + i + 1) * 2]
                    .copy_from_slice(&rows[(at + i) * 2..(at + i + 1) * 2]);
                mask[text * 3 + i] = 1.0;
            }
            at += len;
        }
        let device = Device::Cpu;
        let vectors = Tensor::from_vec(padded, (3, 3, 2), &device).unwrap();
        let mask = Tensor::from_vec(mask, (3, 3), &device).unwrap();
        for pooling in [Pooling::Mean, Pooling::Cls] {
            for normalize in [false, true] {
                let config = PoolingConfig { pooling, normalize };
                let host = pool(&rows, 2, &lengths, config);
                let there = pool_on_device(&vectors, &mask, config).unwrap();
                for (a, b) in host.iter().flatten().zip(there.iter().flatten()) {
                    assert!((a - b).abs() < 1e-6, "{config:?}: {host:?} vs {there:?}");
                }
            }
        }
    }

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
