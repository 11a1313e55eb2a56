//! The encoder's CPU path over packed rows: the texts of a batch lie one after another as
//! rows of one `[tokens, hidden]` matrix, with no padding, as text-embeddings-inference
//! runs BERT-family models.
//!
//! Why: a padded batch computes every projection for `texts × longest` rows, and a batch
//! that mixes a 10-token question with a 300-token passage pays for thirty times the work
//! it needs. Packed, the projections (candle's matrix multiplication) cost the real tokens
//! only; attention, the one step that must keep texts apart, runs per text and head here.
//! Everything between two matrix multiplications (biases, residuals, layer norms, the
//! activation) is one fused pass over the rows, written in place, instead of a chain of
//! tensor operations that each allocate and sweep the whole matrix.
//!
//! The kernels are plain functions over slices (tested on their own); the candle op types
//! at the bottom apply them to tensors.

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Shape};
use rayon::prelude::*;

/// Elements below which row-wise work stays on the calling thread: splitting a lone
/// short text's rows over the pool costs more than it saves.
const PARALLEL_ELEMENTS: usize = 32 * 1024;

/// Multiply-adds below which attention stays on the calling thread.
const PARALLEL_ATTENTION: usize = 256 * 1024;

/// The feed-forward activation a checkpoint's `hidden_act` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: the exact (erf) form.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_approximate`: the tanh form.
    GeluTanh,
    Relu,
}

impl Activation {
    /// The activation `hidden_act` names, or why it is not supported.
    pub fn from_config(name: &str) -> candle_core::Result<Self> {
        match name {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_approximate" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => candle_core::bail!(
                "hidden_act `{other}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)"
            ),
        }
    }

    /// Applies it to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Self::GeluTanh => {
                // √(2/π)
                const C: f32 = 0.797_884_6;
                0.5 * x * (1.0 + tanh(C * (x + 0.044_715 * x * x * x)))
            }
            Self::Relu => x.max(0.0),
        }
    }
}

/// Runs `f` on every `width`-wide row of `data`, over the thread pool when there is enough.
fn for_rows(data: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync) {
    let width = width.max(1);
    if data.len() < PARALLEL_ELEMENTS {
        data.chunks_exact_mut(width).for_each(f);
    } else {
        let rows = (PARALLEL_ELEMENTS / width).max(1);
        data.par_chunks_mut(rows * width)
            .for_each(|chunk| chunk.chunks_exact_mut(width).for_each(&f));
    }
}

/// Like [`for_rows`], with the matching row of `other` (same width) alongside.
fn for_row_pairs(
    data: &mut [f32],
    other: &[f32],
    width: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    let width = width.max(1);
    let run = |(rows, others): (&mut [f32], &[f32])| {
        rows.chunks_exact_mut(width)
            .zip(others.chunks_exact(width))
            .for_each(|(row, o)| f(row, o));
    };
    if data.len() < PARALLEL_ELEMENTS {
        run((data, other));
    } else {
        let chunk = (PARALLEL_ELEMENTS / width).max(1) * width;
        data.par_chunks_mut(chunk)
            .zip(other.par_chunks(chunk))
            .for_each(run);
    }
}

/// `x ← activation(x + bias)` on every row.
pub fn bias_activation(x: &mut [f32], bias: &[f32], activation: Activation) {
    for_rows(x, bias.len(), |row| {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = activation.apply(*v + b);
        }
    });
}

/// `x ← LayerNorm(x + bias + residual)` on every row (`residual` has `x`'s shape).
pub fn residual_layer_norm(x: &mut [f32], residual: &[f32], bias: &[f32], norm: &RowNorm) {
    for_row_pairs(x, residual, bias.len(), |row, r| {
        for ((v, r), b) in row.iter_mut().zip(r).zip(bias) {
            *v += r + b;
        }
        norm.apply(row);
    });
}

/// Layer normalisation of one row: `(x − mean) / √(var + eps) · gamma + beta`.
#[derive(Debug, Clone)]
pub struct RowNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

impl RowNorm {
    fn apply(&self, row: &mut [f32]) {
        let n = row.len().max(1) as f32;
        let mean = sum(row) / n;
        let mut squares = [0f32; 8];
        let (chunks, rest) = row.as_chunks::<8>();
        for chunk in chunks {
            for (s, v) in squares.iter_mut().zip(chunk) {
                let d = v - mean;
                *s += d * d;
            }
        }
        let rest: f32 = rest.iter().map(|v| (v - mean) * (v - mean)).sum();
        let variance = (squares.iter().sum::<f32>() + rest) / n;
        let scale = 1.0 / (variance + self.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * scale * g + b;
        }
    }

    /// Normalises every row of `x` in place.
    pub fn rows(&self, x: &mut [f32]) {
        for_rows(x, self.gamma.len(), |row| self.apply(row));
    }
}

/// Self-attention of every text of a packed batch.
///
/// `qkv` holds each token's query, key and value projections (bias not yet added) as one
/// row of `3 · heads · head_dim`, the texts' tokens one after another as `lengths` says;
/// `bias` is the projections' bias (`3 · hidden`). Each token attends over the tokens of
/// its own text only. Returns the attended values, `[tokens, hidden]`.
pub fn packed_attention(
    qkv: &[f32],
    bias: &[f32],
    lengths: &[usize],
    heads: usize,
    head_dim: usize,
) -> Vec<f32> {
    let hidden = heads * head_dim;
    let starts: Vec<usize> = lengths
        .iter()
        .scan(0, |next, &len| {
            let start = *next;
            *next += len;
            Some(start)
        })
        .collect();
    let units: Vec<(usize, usize)> = (0..lengths.len())
        .flat_map(|text| (0..heads).map(move |head| (text, head)))
        .collect();
    let shape = Head {
        qkv,
        bias,
        hidden,
        head_dim,
    };
    let attend = |scratch: &mut Scratch, &(text, head): &(usize, usize)| {
        shape.attend(starts[text], lengths[text], head, scratch)
    };
    let work: usize = lengths.iter().map(|l| l * l).sum::<usize>() * hidden;
    let blocks: Vec<Vec<f32>> = if work < PARALLEL_ATTENTION {
        let mut scratch = Scratch::default();
        units
            .iter()
            .map(|unit| attend(&mut scratch, unit))
            .collect()
    } else {
        units
            .par_iter()
            .map_init(Scratch::default, attend)
            .collect()
    };
    let tokens: usize = lengths.iter().sum();
    let mut out = vec![0f32; tokens * hidden];
    for (&(text, head), block) in units.iter().zip(&blocks) {
        for (i, values) in block.chunks_exact(head_dim.max(1)).enumerate() {
            let at = (starts[text] + i) * hidden + head * head_dim;
            if let Some(slot) = out.get_mut(at..at + head_dim) {
                slot.copy_from_slice(values);
            }
        }
    }
    out
}

/// Where one head's queries, keys and values sit in a packed `qkv` matrix.
struct Head<'a> {
    qkv: &'a [f32],
    bias: &'a [f32],
    hidden: usize,
    head_dim: usize,
}

impl Head<'_> {
    /// Column `part · hidden + head · head_dim` of token `row`, bias added.
    fn vector(&self, row: usize, part: usize, head: usize, out: &mut [f32]) {
        let column = part * self.hidden + head * self.head_dim;
        let at = row * 3 * self.hidden + column;
        let (Some(values), Some(bias)) = (
            self.qkv.get(at..at + self.head_dim),
            self.bias.get(column..column + self.head_dim),
        ) else {
            return;
        };
        for ((o, v), b) in out.iter_mut().zip(values).zip(bias) {
            *o = v + b;
        }
    }

    /// One head of one text (`len` tokens from row `start`): `softmax(q·kᵀ/√d) · v` for
    /// each of its tokens, as `[len, head_dim]`.
    ///
    /// The keys are laid out transposed and zero-padded to a multiple of eight columns, so
    /// a query's scores are computed eight keys at a time with running sums that stay in
    /// registers, instead of one dot product (and its horizontal sum) per key.
    fn attend(&self, start: usize, len: usize, head: usize, scratch: &mut Scratch) -> Vec<f32> {
        if len == 0 {
            return Vec::new();
        }
        let d = self.head_dim.max(1);
        let width = len.next_multiple_of(KEY_BLOCK);
        let Scratch {
            keys,
            key,
            values,
            query,
            scores,
        } = scratch;
        keys.clear();
        keys.resize(d * width, 0.0);
        values.clear();
        values.resize(len * d, 0.0);
        key.resize(d, 0.0);
        query.resize(d, 0.0);
        scores.clear();
        scores.resize(width, 0.0);
        for (j, value) in values.chunks_exact_mut(d).enumerate() {
            self.vector(start + j, 1, head, key);
            for (row, &k) in keys.chunks_exact_mut(width).zip(key.iter()) {
                row[j] = k;
            }
            self.vector(start + j, 2, head, value);
        }
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0f32; len * d];
        for (i, attended) in out.chunks_exact_mut(d).enumerate() {
            self.vector(start + i, 0, head, query);
            for (block, slot) in scores.chunks_exact_mut(KEY_BLOCK).enumerate() {
                let mut sums = [0f32; KEY_BLOCK];
                let at = block * KEY_BLOCK;
                for (&q, row) in query.iter().zip(keys.chunks_exact(width)) {
                    for (s, k) in sums.iter_mut().zip(&row[at..at + KEY_BLOCK]) {
                        *s += q * k;
                    }
                }
                for (slot, s) in slot.iter_mut().zip(sums) {
                    *slot = s * scale;
                }
            }
            let probabilities = &mut scores[..len];
            softmax(probabilities);
            for (&p, v) in probabilities.iter().zip(values.chunks_exact(d)) {
                for (a, v) in attended.iter_mut().zip(v) {
                    *a += p * v;
                }
            }
        }
        out
    }
}

/// Keys scored together: eight running sums fill two SSE registers.
const KEY_BLOCK: usize = 8;

/// One worker's buffers for [`Head::attend`], reused from unit to unit.
#[derive(Default)]
struct Scratch {
    /// `[head_dim, width]`: keys transposed, zero beyond the text's tokens.
    keys: Vec<f32>,
    key: Vec<f32>,
    values: Vec<f32>,
    query: Vec<f32>,
    scores: Vec<f32>,
}

/// Softmax in place (an empty slice stays empty; a NaN makes every value NaN).
fn softmax(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for x in xs.iter_mut() {
        *x = exp_negative(*x - max);
    }
    // The largest value contributes e^0 = 1, so the total is at least 1 (or NaN, which
    // then spreads to every probability).
    let inverse = 1.0 / sum(xs);
    xs.iter_mut().for_each(|x| *x *= inverse);
}

/// Sum with eight running partial sums, so the loop vectorises.
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (chunks, rest) = xs.as_chunks::<8>();
    for chunk in chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
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

/// tanh through [`exp_negative`]: `sign(x) · (1 − e^(−2|x|)) / (1 + e^(−2|x|))`.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let e = exp_negative(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// `e^v` for `v <= 0` (relative error about 1e-7; inputs below -87 give e^-87, about
/// 1.6e-38, which no caller can tell from 0; NaN gives NaN). Positive inputs are outside
/// its contract: every caller passes `−x²`, `−2|x|` or `x − max`.
#[inline(always)]
fn exp_negative(v: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Rounds to the nearest integer without a call: adding 1.5 · 2^23 drops the fraction.
    const ROUND: f32 = 12_582_912.0;
    // A comparison rather than `max`, so that NaN stays NaN (and reaches the finite check
    // on the sentence vectors) instead of becoming e^-87.
    let v = if v < -87.0 { -87.0 } else { v };
    // `shifted` is ROUND + n with n = round(v · log2 e) in its low mantissa bits, so n is
    // read off the bits with integer arithmetic: a float-to-int `as` cast saturates and
    // would compile to a scalar compare-and-move per element, keeping the loop scalar.
    let shifted = v * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = v - n * LN2_HI - n * LN2_LO;
    // e^r on [-ln2/2, ln2/2] (Cephes' expf coefficients).
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n: n + 127 as the exponent field (n lies in [-126, 0]).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e_r * scale
}

// The kernels as candle ops, for tensors on the CPU.

fn host<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("the packed encoder runs on f32");
    };
    layout
        .contiguous_offsets()
        .and_then(|(start, end)| values.get(start..end))
        .ok_or_else(|| candle_core::Error::Msg("the packed encoder needs contiguous rows".into()))
}

/// Refuses a tensor whose rows are not `width` wide (a bias or norm of another layer).
fn check_width(layout: &Layout, width: usize, op: &str) -> candle_core::Result<()> {
    match layout.dims().last() {
        Some(&last) if last == width => Ok(()),
        last => candle_core::bail!("{op}: rows of {last:?} values for parameters of {width}"),
    }
}

fn host_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("the packed encoder runs on f32");
    };
    layout
        .contiguous_offsets()
        .and_then(|(start, end)| values.get_mut(start..end))
        .ok_or_else(|| candle_core::Error::Msg("the packed encoder needs contiguous rows".into()))
}

/// [`packed_attention`] on a `[tokens, 3 · hidden]` tensor.
pub struct AttentionOp<'a> {
    pub bias: &'a [f32],
    pub lengths: &'a [usize],
    pub heads: usize,
    pub head_dim: usize,
}

impl CustomOp1 for AttentionOp<'_> {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let hidden = self.heads * self.head_dim;
        let tokens: usize = self.lengths.iter().sum();
        let qkv = host(storage, layout)?;
        if qkv.len() != tokens * 3 * hidden || self.bias.len() != 3 * hidden {
            candle_core::bail!(
                "packed attention: {} values for {tokens} tokens of 3 × {hidden}",
                qkv.len()
            );
        }
        let out = packed_attention(qkv, self.bias, self.lengths, self.heads, self.head_dim);
        Ok((CpuStorage::F32(out), Shape::from((tokens, hidden))))
    }
}

/// [`bias_activation`] in place.
pub struct BiasActivationOp<'a> {
    pub bias: &'a [f32],
    pub activation: Activation,
}

impl InplaceOp1 for BiasActivationOp<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        check_width(layout, self.bias.len(), self.name())?;
        bias_activation(host_mut(storage, layout)?, self.bias, self.activation);
        Ok(())
    }
}

/// [`residual_layer_norm`] in place, the residual being the op's second tensor.
pub struct ResidualNormOp<'a> {
    pub bias: &'a [f32],
    pub norm: &'a RowNorm,
}

impl InplaceOp2 for ResidualNormOp<'_> {
    fn name(&self) -> &'static str {
        "residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> candle_core::Result<()> {
        check_width(dst_l, self.bias.len(), self.name())?;
        check_width(dst_l, self.norm.gamma.len(), self.name())?;
        let residual = host(src, src_l)?;
        let x = host_mut(dst, dst_l)?;
        if x.len() != residual.len() {
            candle_core::bail!("a residual of {} values for {}", residual.len(), x.len());
        }
        residual_layer_norm(x, residual, self.bias, self.norm);
        Ok(())
    }
}

/// [`RowNorm::rows`] in place.
pub struct NormOp<'a>(pub &'a RowNorm);

impl InplaceOp1 for NormOp<'_> {
    fn name(&self) -> &'static str {
        "layer-norm-rows"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        check_width(layout, self.0.gamma.len(), self.name())?;
        self.0.rows(host_mut(storage, layout)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn close(a: &[f32], b: &[f32], tolerance: f32) {
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst <= tolerance, "largest difference {worst}");
    }

    #[test]
    fn activations_match_candles() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 / 200.0).collect();
        let t = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        for (activation, reference) in [
            (Activation::Gelu, t.gelu_erf().unwrap()),
            (Activation::GeluTanh, t.gelu().unwrap()),
            (Activation::Relu, t.relu().unwrap()),
        ] {
            let ours: Vec<f32> = xs.iter().map(|&x| activation.apply(x)).collect();
            close(&ours, &reference.to_vec1::<f32>().unwrap(), 1e-6);
        }
        // Far tails: exactly x and exactly 0, no NaN.
        assert_eq!(Activation::Gelu.apply(100.0), 100.0);
        assert_eq!(Activation::Gelu.apply(-100.0), 0.0);
        assert_eq!(Activation::GeluTanh.apply(100.0), 100.0);
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
    fn not_a_number_stays_not_a_number() {
        assert!(exp_negative(f32::NAN).is_nan());
        assert_eq!(exp_negative(-0.0), 1.0);
        let mut scores = [0.5, f32::NAN, -1.0];
        softmax(&mut scores);
        assert!(scores.iter().all(|p| p.is_nan()), "{scores:?}");
    }

    #[test]
    fn exp_is_accurate_on_the_range_used() {
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
    fn layer_norm_matches_candles() {
        let x: Vec<f32> = (0..3 * 20)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0)
            .collect();
        let gamma: Vec<f32> = (0..20).map(|i| 0.5 + i as f32 / 10.0).collect();
        let beta: Vec<f32> = (0..20).map(|i| i as f32 / 7.0 - 1.0).collect();
        let residual: Vec<f32> = (0..60).map(|i| (i % 5) as f32 * 0.25).collect();
        let bias: Vec<f32> = (0..20).map(|i| (i % 3) as f32 - 1.0).collect();
        let norm = RowNorm {
            gamma: gamma.clone(),
            beta: beta.clone(),
            eps: 1e-12,
        };
        let mut ours = x.clone();
        residual_layer_norm(&mut ours, &residual, &bias, &norm);
        let device = Device::Cpu;
        let t = |v: &[f32], shape: (usize, usize)| Tensor::from_slice(v, shape, &device).unwrap();
        let summed = (t(&x, (3, 20)) + t(&residual, (3, 20)))
            .unwrap()
            .broadcast_add(&Tensor::new(bias.as_slice(), &device).unwrap())
            .unwrap();
        let reference = candle_nn::LayerNorm::new(
            Tensor::new(gamma.as_slice(), &device).unwrap(),
            Tensor::new(beta.as_slice(), &device).unwrap(),
            1e-12,
        );
        let expected = candle_core::Module::forward(&reference, &summed)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        close(&ours, &expected, 1e-5);
    }

    /// Attention of one text with tensors, the textbook way.
    fn reference_attention(
        qkv: &[f32],
        bias: &[f32],
        len: usize,
        heads: usize,
        d: usize,
    ) -> Vec<f32> {
        let device = Device::Cpu;
        let hidden = heads * d;
        let qkv = Tensor::from_slice(qkv, (len, 3 * hidden), &device)
            .unwrap()
            .broadcast_add(&Tensor::new(bias, &device).unwrap())
            .unwrap();
        let split = |part: usize| {
            qkv.narrow(1, part * hidden, hidden)
                .unwrap()
                .reshape((len, heads, d))
                .unwrap()
                .transpose(0, 1)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        probs
            .matmul(&v)
            .unwrap()
            .transpose(0, 1)
            .unwrap()
            .reshape((len, hidden))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn packed_attention_keeps_texts_apart() {
        let (heads, d) = (3, 8);
        let hidden = heads * d;
        let lengths = [1usize, 5, 13, 2];
        let tokens: usize = lengths.iter().sum();
        let qkv: Vec<f32> = (0..tokens * 3 * hidden)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let bias: Vec<f32> = (0..3 * hidden)
            .map(|i| (i % 7) as f32 * 0.1 - 0.3)
            .collect();
        let ours = packed_attention(&qkv, &bias, &lengths, heads, d);
        assert_eq!(ours.len(), tokens * hidden);
        let mut row = 0;
        for &len in &lengths {
            let own = &qkv[row * 3 * hidden..(row + len) * 3 * hidden];
            let expected = reference_attention(own, &bias, len, heads, d);
            close(&ours[row * hidden..(row + len) * hidden], &expected, 1e-5);
            row += len;
        }
        // A lone token attends to itself only: its output is its own value vector.
        let value: Vec<f32> = (0..hidden)
            .map(|c| qkv[2 * hidden + c] + bias[2 * hidden + c])
            .collect();
        close(&ours[..hidden], &value, 1e-6);
    }

    #[test]
    fn large_batches_split_over_the_pool_and_agree() {
        let (heads, d) = (4, 16);
        let hidden = heads * d;
        let lengths: Vec<usize> = (0..24).map(|i| 8 + i * 3).collect();
        let tokens: usize = lengths.iter().sum();
        let qkv: Vec<f32> = (0..tokens * 3 * hidden)
            .map(|i| ((i * 104_729 % 2000) as f32 / 1000.0) - 1.0)
            .collect();
        let bias = vec![0.01f32; 3 * hidden];
        let together = packed_attention(&qkv, &bias, &lengths, heads, d);
        let mut row = 0;
        for &len in &lengths {
            let own = &qkv[row * 3 * hidden..(row + len) * 3 * hidden];
            let alone = packed_attention(own, &bias, &[len], heads, d);
            assert_eq!(
                &together[row * hidden..(row + len) * hidden],
                alone.as_slice()
            );
            row += len;
        }
        // Row-wise kernels over the pool give what one thread gives.
        let mut wide: Vec<f32> = (0..tokens * hidden)
            .map(|i| (i % 97) as f32 / 50.0 - 1.0)
            .collect();
        let mut rows = wide.clone();
        let b = vec![0.1f32; hidden];
        bias_activation(&mut wide, &b, Activation::Gelu);
        for row in rows.chunks_exact_mut(hidden) {
            bias_activation(row, &b, Activation::Gelu);
        }
        assert_eq!(wide, rows);
    }

    #[test]
    fn ops_apply_the_kernels_to_tensors() {
        let device = Device::Cpu;
        let x = Tensor::new(&[[1f32, -2.0, 3.0], [0.5, 0.0, -0.5]], &device).unwrap();
        let bias = [0.0f32, 1.0, -1.0];
        x.inplace_op1(&BiasActivationOp {
            bias: &bias,
            activation: Activation::Relu,
        })
        .unwrap();
        assert_eq!(
            x.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 0.0, 2.0], vec![0.5, 1.0, 0.0]]
        );
        let bad = Tensor::new(&[[1u32, 2, 3]], &device).unwrap();
        assert!(
            bad.inplace_op1(&NormOp(&RowNorm {
                gamma: vec![1.0; 3],
                beta: vec![0.0; 3],
                eps: 1e-5
            }))
            .is_err()
        );
        let narrow = Tensor::zeros((2, 4), candle_core::DType::F32, &device).unwrap();
        assert!(
            narrow
                .inplace_op1(&BiasActivationOp {
                    bias: &bias,
                    activation: Activation::Gelu,
                })
                .is_err(),
            "a bias of 3 for rows of 4"
        );
        let wrong = AttentionOp {
            bias: &[0.0; 6],
            lengths: &[2],
            heads: 1,
            head_dim: 2,
        };
        let qkv = Tensor::zeros((3, 6), candle_core::DType::F32, &device).unwrap();
        assert!(qkv.apply_op1_no_bwd(&wrong).is_err(), "3 rows for 2 tokens");
    }
}
