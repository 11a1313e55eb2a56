//! The BERT-family encoder (BERT and XLM-RoBERTa checkpoints) of the embedding models.
//!
//! candle-transformers has both models; this one computes the same thing in two ways:
//! - on the CPU, the texts of a batch are packed one after another with no padding and
//!   everything between two matrix multiplications is one fused pass ([`super::packed`]);
//! - on other devices (CUDA), as one padded `[texts, longest, hidden]` batch of tensor
//!   operations with an attention mask, which is what a GPU runs well.
//!
//! Both project query, key and value with one matrix multiplication. XLM-RoBERTa differs
//! from BERT only in its positions, which count the real tokens from `pad_token_id + 1`.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use super::dense::DenseLinear;
use super::packed::{Activation, AttentionOp, BiasActivationOp, NormOp, ResidualNormOp, RowNorm};
use serde::Deserialize;

/// Which checkpoint family: they differ in how positions are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    XlmRoberta,
}

/// The `config.json` fields the encoder needs (BERT and XLM-R name them alike).
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
}

fn default_act() -> String {
    "gelu".into()
}

fn default_type_vocab() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

/// A projection: its weights for the matrix multiplication and its bias on the host,
/// where the packed path adds it inside a fused pass.
struct Projection {
    linear: DenseLinear,
    bias: Vec<f32>,
}

/// A layer norm as a tensor module (padded path) and as host values (packed path).
struct Norm {
    module: LayerNorm,
    host: RowNorm,
}

struct Layer {
    qkv: Projection,
    attention_out: Projection,
    attention_norm: Norm,
    intermediate: Projection,
    output: Projection,
    output_norm: Norm,
}

/// Token ids of a batch of texts, one text after another with no padding. Built with
/// [`PackedTokens::push`], so ids, type ids and lengths always agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedTokens {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    lengths: Vec<usize>,
}

impl PackedTokens {
    /// Appends one text (`type_ids` is cut or filled with 0 to the length of `ids`).
    pub fn push(&mut self, ids: &[u32], type_ids: &[u32]) {
        self.ids.extend_from_slice(ids);
        self.type_ids.extend(
            type_ids
                .iter()
                .copied()
                .chain(std::iter::repeat(0))
                .take(ids.len()),
        );
        self.lengths.push(ids.len());
    }

    /// Tokens of all texts.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// How many tokens each text has, in order.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// Each text's token ids and type ids, in order.
    fn texts(&self) -> impl Iterator<Item = (&[u32], &[u32])> {
        let mut start = 0;
        self.lengths.iter().map(move |&len| {
            let range = start..start + len;
            start += len;
            (&self.ids[range.clone()], &self.type_ids[range])
        })
    }
}

/// What the encoder gives back for a batch.
pub enum TokenVectors {
    /// `[tokens, hidden]` on the host, the texts one after another (the CPU path).
    Packed(Vec<f32>),
    /// `[texts, longest, hidden]` on the model's device with its `[texts, longest]` mask
    /// (1.0 for real tokens), so pooling can run there and only sentence vectors travel.
    Padded { vectors: Tensor, mask: Tensor },
}

/// A loaded encoder.
pub struct Encoder {
    family: Family,
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    activation: Activation,
    pad_token_id: u32,
    device: Device,
}

fn projection(weight: &Tensor, bias: Tensor) -> candle_core::Result<Projection> {
    let host = bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(Projection {
        linear: DenseLinear::new(weight, Some(bias))?,
        bias: host,
    })
}

fn linear(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Projection> {
    projection(
        &vb.get((outputs, inputs), "weight")?,
        vb.get(outputs, "bias")?,
    )
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Norm> {
    let weight = vb.get(size, "weight")?;
    let bias = vb.get(size, "bias")?;
    let host = RowNorm {
        gamma: weight.to_dtype(DType::F32)?.to_vec1::<f32>()?,
        beta: bias.to_dtype(DType::F32)?.to_vec1::<f32>()?,
        eps: eps as f32,
    };
    Ok(Norm {
        module: LayerNorm::new(weight, bias, eps),
        host,
    })
}

impl Encoder {
    /// Loads the weights under `vb` (already past any `bert.` or `roberta.` prefix).
    pub fn load(
        vb: VarBuilder,
        config: &EncoderConfig,
        family: Family,
    ) -> candle_core::Result<Self> {
        let activation = Activation::from_config(&config.hidden_act)?;
        let (hidden, heads) = (config.hidden_size, config.num_attention_heads);
        if heads == 0 || hidden % heads != 0 {
            candle_core::bail!("hidden size {hidden} does not split into {heads} heads");
        }
        if config.pad_token_id as usize >= config.vocab_size {
            candle_core::bail!(
                "pad_token_id {} is outside the vocabulary of {}",
                config.pad_token_id,
                config.vocab_size
            );
        }
        let eps = config.layer_norm_eps;
        let emb = vb.pp("embeddings");
        let table = |name: &str, rows: usize| -> candle_core::Result<Embedding> {
            Ok(Embedding::new(
                emb.pp(name).get((rows, hidden), "weight")?,
                hidden,
            ))
        };
        let words = table("word_embeddings", config.vocab_size)?;
        let positions = table("position_embeddings", config.max_position_embeddings)?;
        let types = table("token_type_embeddings", config.type_vocab_size)?;
        let embedding_norm = layer_norm(emb.pp("LayerNorm"), hidden, eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let vb = vb.pp(format!("encoder.layer.{i}"));
            let attention = vb.pp("attention");
            let own = attention.pp("self");
            let (mut weights, mut biases) = (Vec::with_capacity(3), Vec::with_capacity(3));
            for name in ["query", "key", "value"] {
                weights.push(own.pp(name).get((hidden, hidden), "weight")?);
                biases.push(own.pp(name).get(hidden, "bias")?);
            }
            layers.push(Layer {
                qkv: projection(&Tensor::cat(&weights, 0)?, Tensor::cat(&biases, 0)?)?,
                attention_out: linear(attention.pp("output.dense"), hidden, hidden)?,
                attention_norm: layer_norm(attention.pp("output.LayerNorm"), hidden, eps)?,
                intermediate: linear(
                    vb.pp("intermediate.dense"),
                    hidden,
                    config.intermediate_size,
                )?,
                output: linear(vb.pp("output.dense"), config.intermediate_size, hidden)?,
                output_norm: layer_norm(vb.pp("output.LayerNorm"), hidden, eps)?,
            });
        }
        Ok(Self {
            family,
            words,
            positions,
            types,
            embedding_norm,
            layers,
            heads,
            head_dim: hidden / heads,
            activation,
            pad_token_id: config.pad_token_id,
            device: vb.device().clone(),
        })
    }

    /// Width of a token vector.
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Whether batches run packed (CPU) or padded (other devices); this decides what a
    /// batch costs.
    pub fn runs_packed(&self) -> bool {
        self.device.is_cpu()
    }

    /// Token vectors of every text (`None` for an empty batch).
    pub fn forward(&self, tokens: &PackedTokens) -> candle_core::Result<Option<TokenVectors>> {
        if tokens.lengths.is_empty() {
            Ok(None)
        } else if self.runs_packed() {
            Ok(Some(TokenVectors::Packed(self.forward_packed(tokens)?)))
        } else {
            let (vectors, mask) = self.forward_padded(tokens)?;
            Ok(Some(TokenVectors::Padded { vectors, mask }))
        }
    }

    /// Word, type and position embeddings added up (before the embedding layer norm), in
    /// the shape of the ids.
    fn token_embeddings(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        positions: &Tensor,
    ) -> candle_core::Result<Tensor> {
        self.words.forward(ids)?
            + self.types.forward(type_ids)?
            + self.positions.forward(positions)?
    }

    /// The CPU path: packed rows, fused passes between the matrix multiplications.
    fn forward_packed(&self, tokens: &PackedTokens) -> candle_core::Result<Vec<f32>> {
        let n = tokens.tokens();
        let ids = Tensor::from_slice(&tokens.ids, n, &self.device)?;
        let type_ids = Tensor::from_slice(&tokens.type_ids, n, &self.device)?;
        let positions = Tensor::from_vec(
            packed_positions(self.family, tokens, self.pad_token_id),
            n,
            &self.device,
        )?;
        let mut x = self.token_embeddings(&ids, &type_ids, &positions)?;
        x.inplace_op1(&NormOp(&self.embedding_norm.host))?;
        for layer in &self.layers {
            let qkv = layer.qkv.linear.project(&x)?;
            let context = qkv.apply_op1_no_bwd(&AttentionOp {
                bias: &layer.qkv.bias,
                lengths: &tokens.lengths,
                heads: self.heads,
                head_dim: self.head_dim,
            })?;
            let attended = layer.attention_out.linear.project(&context)?;
            attended.inplace_op2(
                &x,
                &ResidualNormOp {
                    bias: &layer.attention_out.bias,
                    norm: &layer.attention_norm.host,
                },
            )?;
            let inner = layer.intermediate.linear.project(&attended)?;
            inner.inplace_op1(&BiasActivationOp {
                bias: &layer.intermediate.bias,
                activation: self.activation,
            })?;
            let output = layer.output.linear.project(&inner)?;
            output.inplace_op2(
                &attended,
                &ResidualNormOp {
                    bias: &layer.output.bias,
                    norm: &layer.output_norm.host,
                },
            )?;
            x = output;
        }
        x.flatten_all()?.to_vec1::<f32>()
    }

    /// The path for other devices (and the reference for the packed one): the texts
    /// right-padded to the longest, as `[texts, longest]` with an attention mask, through
    /// tensor operations. Gives the token vectors `[texts, longest, hidden]` and the mask
    /// as f32, both on the model's device.
    pub fn forward_padded(&self, tokens: &PackedTokens) -> candle_core::Result<(Tensor, Tensor)> {
        let batch = tokens.lengths.len();
        let width = tokens.lengths.iter().copied().max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch * width);
        let mut type_ids = Vec::with_capacity(batch * width);
        let mut mask = Vec::with_capacity(batch * width);
        for (text, types) in tokens.texts() {
            let pad = width - text.len();
            ids.extend_from_slice(text);
            ids.extend(std::iter::repeat_n(self.pad_token_id, pad));
            type_ids.extend_from_slice(types);
            type_ids.extend(std::iter::repeat_n(0, pad));
            mask.extend(std::iter::repeat_n(1u32, text.len()));
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        let positions = Tensor::from_vec(
            position_ids(self.family, &ids, width, self.pad_token_id),
            (batch, width),
            &self.device,
        )?;
        let ids = Tensor::from_vec(ids, (batch, width), &self.device)?;
        let type_ids = Tensor::from_vec(type_ids, (batch, width), &self.device)?;
        let mut x = self
            .embedding_norm
            .module
            .forward(&self.token_embeddings(&ids, &type_ids, &positions)?)?;
        let additive = Tensor::from_vec(
            mask.iter()
                .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
                .collect::<Vec<f32>>(),
            (batch, 1, 1, width),
            &self.device,
        )?;
        for layer in &self.layers {
            x = self.padded_layer(layer, &x, &additive, batch, width)?;
        }
        let mask = Tensor::from_vec(
            mask.into_iter().map(|m| m as f32).collect::<Vec<f32>>(),
            (batch, width),
            &self.device,
        )?;
        Ok((x, mask))
    }

    fn padded_layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        mask: &Tensor,
        batch: usize,
        width: usize,
    ) -> candle_core::Result<Tensor> {
        let hidden = self.hidden();
        let qkv = layer.qkv.linear.forward(x)?;
        let split = |part: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(D::Minus1, part * hidden, hidden)?
                .reshape((batch, width, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, width, hidden))?;
        let attended = layer
            .attention_norm
            .module
            .forward(&(layer.attention_out.linear.forward(&context)? + x)?)?;
        let inner = layer.intermediate.linear.forward(&attended)?;
        let inner = match self.activation {
            Activation::Gelu => inner.gelu_erf()?,
            Activation::GeluTanh => inner.gelu()?,
            Activation::Relu => inner.relu()?,
        };
        layer
            .output_norm
            .module
            .forward(&(layer.output.linear.forward(&inner)? + attended)?)
    }
}

/// Position ids of packed texts: `0..len` for BERT. For XLM-R, as Hugging Face numbers
/// them: tokens that are not the padding id count up from `pad + 1`, and a padding id
/// (padding, or `<pad>` written in the text) sits at `pad`.
fn packed_positions(family: Family, tokens: &PackedTokens, pad: u32) -> Vec<u32> {
    tokens
        .texts()
        .flat_map(|(ids, _)| text_positions(family, ids, pad))
        .collect()
}

/// Position ids of right-padded rows (`width` ids each, padded with `pad`): each row as
/// one text of [`packed_positions`], so the padding of a BERT row continues the count and
/// that of an XLM-R row sits at `pad`.
fn position_ids(family: Family, ids: &[u32], width: usize, pad: u32) -> Vec<u32> {
    ids.chunks(width.max(1))
        .flat_map(|row| text_positions(family, row, pad))
        .collect()
}

fn text_positions(family: Family, ids: &[u32], pad: u32) -> Vec<u32> {
    match family {
        Family::Bert => (0..ids.len() as u32).collect(),
        Family::XlmRoberta => ids
            .iter()
            .scan(pad, |seen, &id| {
                if id == pad {
                    Some(pad)
                } else {
                    *seen += 1;
                    Some(*seen)
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn xlm_r_positions_count_real_tokens_after_the_pad_id() {
        // Two padded rows of width 4: [5 6 7 pad] [8 9 pad pad]; pad id 1.
        let ids = [5, 6, 7, 1, 8, 9, 1, 1];
        assert_eq!(
            position_ids(Family::XlmRoberta, &ids, 4, 1),
            vec![2, 3, 4, 1, 2, 3, 1, 1]
        );
        assert_eq!(
            position_ids(Family::Bert, &ids, 4, 0),
            vec![0, 1, 2, 3, 0, 1, 2, 3]
        );
        let mut tokens = PackedTokens::default();
        tokens.push(&[5, 6, 7], &[]);
        tokens.push(&[8, 9], &[]);
        assert_eq!(
            packed_positions(Family::XlmRoberta, &tokens, 1),
            vec![2, 3, 4, 2, 3]
        );
        assert_eq!(
            packed_positions(Family::Bert, &tokens, 0),
            vec![0, 1, 2, 0, 1]
        );
        // `<pad>` written in a text keeps the padding position and does not count, as
        // Hugging Face's `create_position_ids_from_input_ids` numbers it.
        let mut literal = PackedTokens::default();
        literal.push(&[0, 1, 7, 2], &[]);
        assert_eq!(
            packed_positions(Family::XlmRoberta, &literal, 1),
            vec![2, 1, 3, 4]
        );
    }

    /// A tiny encoder with seeded random weights.
    fn tiny_encoder(family: Family, hidden_act: &str) -> Encoder {
        let config = EncoderConfig {
            vocab_size: 50,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 40,
            hidden_act: hidden_act.into(),
            max_position_embeddings: 64,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 1,
        };
        let device = Device::Cpu;
        let mut seed = 12_345u64;
        let mut random = |shape: &[usize]| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
                })
                .collect();
            Tensor::from_vec(values, shape, &device).unwrap()
        };
        let (h, i) = (16, 40);
        let mut tensors = HashMap::new();
        tensors.insert(
            "embeddings.word_embeddings.weight".to_string(),
            random(&[50, h]),
        );
        tensors.insert(
            "embeddings.position_embeddings.weight".into(),
            random(&[64, h]),
        );
        tensors.insert(
            "embeddings.token_type_embeddings.weight".into(),
            random(&[2, h]),
        );
        tensors.insert("embeddings.LayerNorm.weight".into(), random(&[h]));
        tensors.insert("embeddings.LayerNorm.bias".into(), random(&[h]));
        for layer in 0..2 {
            let p = format!("encoder.layer.{layer}");
            for (name, rows, cols) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", i, h),
                ("output.dense", h, i),
            ] {
                tensors.insert(format!("{p}.{name}.weight"), random(&[rows, cols]));
                tensors.insert(format!("{p}.{name}.bias"), random(&[rows]));
            }
            for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
                tensors.insert(format!("{p}.{name}.weight"), random(&[h]));
                tensors.insert(format!("{p}.{name}.bias"), random(&[h]));
            }
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        Encoder::load(vb, &config, family).unwrap()
    }

    #[test]
    fn packed_rows_match_the_padded_batch() {
        let hidden = 16;
        let mut tokens = PackedTokens::default();
        for len in [2usize, 9, 1, 30, 5] {
            let ids: Vec<u32> = (0..len as u32).map(|i| (i * 7 + len as u32) % 50).collect();
            let types: Vec<u32> = (0..len as u32).map(|i| u32::from(i >= 3)).collect();
            tokens.push(&ids, &types);
        }
        for family in [Family::Bert, Family::XlmRoberta] {
            for act in ["gelu", "gelu_new", "relu"] {
                let encoder = tiny_encoder(family, act);
                let Some(TokenVectors::Packed(packed)) = encoder.forward(&tokens).unwrap() else {
                    panic!("the CPU runs packed");
                };
                assert_eq!(packed.len(), 47 * hidden);
                // The padded path's rows, padding dropped, are the same vectors.
                let (padded, mask) = encoder.forward_padded(&tokens).unwrap();
                assert_eq!(padded.dims(), &[5, 30, hidden]);
                assert_eq!(mask.sum_all().unwrap().to_scalar::<f32>().unwrap(), 47.0);
                let padded = padded.to_vec3::<f32>().unwrap();
                let unpadded: Vec<f32> = padded
                    .iter()
                    .zip(tokens.lengths())
                    .flat_map(|(rows, &len)| rows[..len].concat())
                    .collect();
                let worst = packed
                    .iter()
                    .zip(&unpadded)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-4, "{family:?} {act}: largest difference {worst}");
                // Each text alone gives its rows of the batch.
                let mut start = 0;
                for (text, (ids, types)) in tokens.texts().enumerate() {
                    let mut alone = PackedTokens::default();
                    alone.push(ids, types);
                    let Some(TokenVectors::Packed(rows)) = encoder.forward(&alone).unwrap() else {
                        panic!("the CPU runs packed");
                    };
                    let batch_rows = &packed[start * hidden..(start + ids.len()) * hidden];
                    let worst = rows
                        .iter()
                        .zip(batch_rows)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(worst < 1e-5, "text {text}: {worst}");
                    start += ids.len();
                }
            }
        }
        let encoder = tiny_encoder(Family::Bert, "gelu");
        assert!(encoder.forward(&PackedTokens::default()).unwrap().is_none());
    }

    #[test]
    fn type_ids_follow_the_ids_length() {
        let mut tokens = PackedTokens::default();
        tokens.push(&[5, 6, 7], &[1]);
        tokens.push(&[8], &[0, 1, 1]);
        assert_eq!(tokens.type_ids, vec![1, 0, 0, 0]);
        assert_eq!(tokens.lengths, vec![3, 1]);
        assert_eq!(tokens.tokens(), 4);
    }
}
