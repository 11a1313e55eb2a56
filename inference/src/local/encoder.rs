//! The BERT-family encoder (BERT and XLM-RoBERTa checkpoints) of the embedding models.
//!
//! candle-transformers has both models; this one computes the same thing with two changes
//! that matter when a batch of texts runs as one padded matrix, where the per-row work is
//! what remains after the matrix multiplications amortise their setup:
//! - the query, key and value projections are one matrix multiplication (the input is
//!   read and packed once, not three times);
//! - on CPU the exact (erf) GELU is a branch-free polynomial the compiler vectorises, with
//!   an error below 1e-6, instead of a scalar `erf` call per element (the largest per-row
//!   cost of candle's version: about a quarter of a 32-text batch).
//!
//! XLM-RoBERTa differs from BERT only in its positions, which count the real tokens from
//! `pad_token_id + 1`.

use candle_core::{CpuStorage, CustomOp1, D, DType, Device, Layout, Module, Shape, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use super::dense::DenseLinear;
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

struct Layer {
    qkv: DenseLinear,
    attention_out: DenseLinear,
    attention_norm: LayerNorm,
    intermediate: DenseLinear,
    output: DenseLinear,
    output_norm: LayerNorm,
}

/// A loaded encoder.
pub struct Encoder {
    family: Family,
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    activation: Activation,
    pad_token_id: u32,
    device: Device,
}

/// The feed-forward activation a checkpoint's `hidden_act` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    /// `gelu`: the exact (erf) form.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_approximate`: the tanh form.
    GeluTanh,
    Relu,
}

impl Activation {
    fn from_config(name: &str) -> candle_core::Result<Self> {
        match name {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_approximate" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => candle_core::bail!(
                "hidden_act `{other}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)"
            ),
        }
    }

    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Gelu => gelu(x),
            Self::GeluTanh => x.gelu(),
            Self::Relu => x.relu(),
        }
    }
}

fn linear(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<DenseLinear> {
    let weight = vb.get((outputs, inputs), "weight")?;
    let bias = vb.get(outputs, "bias")?;
    DenseLinear::new(&weight, Some(bias))
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    let weight = vb.get(size, "weight")?;
    let bias = vb.get(size, "bias")?;
    Ok(LayerNorm::new(weight, bias, eps))
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
                qkv: DenseLinear::new(&Tensor::cat(&weights, 0)?, Some(Tensor::cat(&biases, 0)?))?,
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

    /// Token vectors `[batch, width, hidden]` of right-padded `ids` (`[batch, width]`),
    /// with `mask` (1 for real tokens) as `u32` rows on the host.
    pub fn forward(
        &self,
        batch: usize,
        width: usize,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &[u32],
    ) -> candle_core::Result<Tensor> {
        let positions = Tensor::from_vec(
            position_ids(self.family, mask, width, self.pad_token_id),
            (batch, width),
            &self.device,
        )?;
        let x = (self.words.forward(ids)?
            + self.types.forward(type_ids)?
            + self.positions.forward(&positions)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        let additive = Tensor::from_vec(
            mask.iter()
                .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
                .collect::<Vec<f32>>(),
            (batch, 1, 1, width),
            &self.device,
        )?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &additive, batch, width)?;
        }
        Ok(x)
    }

    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        mask: &Tensor,
        batch: usize,
        width: usize,
    ) -> candle_core::Result<Tensor> {
        let hidden = self.heads * self.head_dim;
        let qkv = layer.qkv.forward(x)?;
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
            .forward(&(layer.attention_out.forward(&context)? + x)?)?;
        let inner = self
            .activation
            .apply(&layer.intermediate.forward(&attended)?)?;
        layer
            .output_norm
            .forward(&(layer.output.forward(&inner)? + attended)?)
    }
}

/// Position ids: `0..width` for BERT; for XLM-R, real tokens count from `pad + 1` and
/// padding sits at `pad` (as fairseq numbers them).
fn position_ids(family: Family, mask: &[u32], width: usize, pad: u32) -> Vec<u32> {
    match family {
        Family::Bert => (0..mask.len()).map(|i| (i % width.max(1)) as u32).collect(),
        Family::XlmRoberta => mask
            .chunks(width.max(1))
            .flat_map(|row| {
                row.iter()
                    .scan(0u32, move |seen, &m| {
                        *seen += u32::from(m != 0);
                        Some(if m != 0 { pad + *seen } else { pad })
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

/// The exact GELU, `x/2 · (1 + erf(x/√2))`: the vectorised form on CPU, candle's elsewhere.
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.apply_op1_no_bwd(&FastGelu)
    } else {
        x.gelu_erf()
    }
}

struct FastGelu;

impl CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "fast-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("fast-gelu-erf takes f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fast-gelu-erf takes a contiguous tensor");
        };
        let input = &values[start..end];
        let mut output = vec![0f32; input.len()];
        gelu_slice(input, &mut output);
        Ok((CpuStorage::F32(output), layout.shape().clone()))
    }
}

/// Elements one thread takes at a time: large enough that splitting pays.
const GELU_CHUNK: usize = 16 * 1024;

/// GELU over a slice, element by element, in a form without branches or calls; long
/// slices are split over the thread pool, as candle's own element-wise ops are.
pub fn gelu_slice(input: &[f32], output: &mut [f32]) {
    use rayon::prelude::*;
    let run = |(out, x): (&mut [f32], &[f32])| {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
        }
    };
    if input.len() <= GELU_CHUNK {
        run((output, input));
    } else {
        output
            .par_chunks_mut(GELU_CHUNK)
            .zip(input.par_chunks(GELU_CHUNK))
            .for_each(run);
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), with a polynomial
/// `exp`; branch-free so that loops over it vectorise.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp_negative(-ax * ax);
    y.copysign(x)
}

/// `e^v` for `v <= 0` (relative error about 1e-7; inputs below -87 give e^-87, about
/// 1.6e-38, which erf's use of it cannot tell from 0).
#[inline(always)]
fn exp_negative(v: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Rounds to the nearest integer without a call: adding 1.5 · 2^23 drops the fraction.
    const ROUND: f32 = 12_582_912.0;
    let v = v.max(-87.0);
    let n = (v * LOG2E + ROUND) - ROUND;
    let r = v - n * LN2_HI - n * LN2_LO;
    // e^r on [-ln2/2, ln2/2] (Cephes' expf coefficients).
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    e_r * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_the_erf_definition() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 / 200.0).collect();
        let mut fast = vec![0f32; xs.len()];
        gelu_slice(&xs, &mut fast);
        let exact = Tensor::new(xs.as_slice(), &Device::Cpu)
            .and_then(|t| t.gelu_erf())
            .and_then(|t| t.to_vec1::<f32>())
            .unwrap();
        let worst = fast
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "largest difference {worst}");
        // Far tails: exactly x and exactly 0, no NaN.
        gelu_slice(&[100.0, -100.0, 0.0], &mut fast[..3]);
        assert_eq!(&fast[..3], &[100.0, -0.0, 0.0]);
    }

    #[test]
    fn exp_is_accurate_on_the_range_erf_uses() {
        for i in 0..=870 {
            let v = -(i as f32) / 10.0;
            let (fast, exact) = (exp_negative(v), v.exp());
            assert!(
                (fast - exact).abs() <= exact * 2e-6 + 1e-37,
                "{v}: {fast} vs {exact}"
            );
        }
    }

    #[test]
    fn activations_by_config_name() {
        assert_eq!(Activation::from_config("gelu").unwrap(), Activation::Gelu);
        assert_eq!(
            Activation::from_config("gelu_new").unwrap(),
            Activation::GeluTanh
        );
        assert_eq!(Activation::from_config("relu").unwrap(), Activation::Relu);
        assert!(Activation::from_config("swish").is_err());
    }

    #[test]
    fn xlm_r_positions_count_real_tokens_after_the_pad_id() {
        let mask = [1, 1, 1, 0, 1, 1, 0, 0];
        assert_eq!(
            position_ids(Family::XlmRoberta, &mask, 4, 1),
            vec![2, 3, 4, 1, 2, 3, 1, 1]
        );
        assert_eq!(
            position_ids(Family::Bert, &mask, 4, 0),
            vec![0, 1, 2, 3, 0, 1, 2, 3]
        );
    }
}
