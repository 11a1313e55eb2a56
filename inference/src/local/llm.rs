//! A decoder-only transformer (llama and qwen2 GGUF files) whose forward pass takes many
//! sequences at once, each with its own KV cache and position.
//!
//! candle's `quantized_llama` keeps one KV cache inside the model and takes one position
//! offset per call, which cannot serve a continuous batch. Here the weights are shared and
//! every sequence owns a [`SequenceCache`]: the new tokens of all sequences (prompt chunks
//! and single decode tokens alike) are packed into one `[tokens, hidden]` matrix for the
//! matrix multiplications. A prompt attends over its own cache; the decode tokens of a
//! pass attend together over their caches padded to the longest and masked. Matrix rows
//! are independent, so a sequence gets the same logits alone or in a batch, up to float
//! rounding (how many rows share a pass decides the order of some sums).

use std::fs::File;
use std::path::Path;

use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{D, DType, Device, Module, Tensor};

use super::{candle_err, missing_file};
use crate::types::InferenceError;

/// The architectures this module runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
}

impl Architecture {
    /// The `general.architecture` value of a GGUF file.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            _ => None,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }
}

/// Most bytes of f32 layer weights kept beside the quantized ones.
const DENSE_WEIGHTS_LIMIT: usize = 1 << 30;

/// A projection: quantized weights, and on CPU an f32 copy that is used instead.
///
/// candle's quantized CPU kernels cost the same per row however many rows a pass has
/// (and without AVX2 compiled in they are scalar), so they neither batch nor process
/// prompts well; f32 GEMM reads the weights once for all rows of a pass. On this
/// project's machines the f32 copy is about 3x faster for a single decode token and
/// 6x for prompts, for about four bytes per weight of memory.
struct Linear {
    quantized: QMatMul,
    dense: Option<Tensor>,
}

/// Most rows computed as `(W · xᵀ)ᵀ`; more go as `x · Wᵀ`.
const FEW_ROWS: usize = 16;

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.dense {
            // The weights come from memory on every pass. With few rows (decode steps of
            // a handful of sequences) the CPU GEMM reads them fastest as the left operand:
            // measured with 400 MB of distinct weights, 8 rows × 576 → 1536 took 341 µs
            // instead of 379 and 8 × 1536 → 576 223 µs instead of 392; from about 32 rows
            // on `x · Wᵀ` is as fast or faster. A single row is a GEMV either way.
            Some(dense) if (2..=FEW_ROWS).contains(&x.dim(0)?) => dense.matmul(&x.t()?)?.t(),
            Some(dense) => x.matmul(&dense.t()?),
            None => self.quantized.forward(x),
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    // Qwen2 has biases on q, k and v; llama has none.
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    wo: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Shapes and constants read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerShape {
    pub architecture: Architecture,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub hidden: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub vocab_size: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
}

/// The weights of a loaded model; shared by every sequence.
pub struct Transformer {
    shape: TransformerShape,
    embedding: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// The keys and values one sequence has seen, per layer.
pub struct SequenceCache {
    layers: Vec<Option<KvBuffer>>,
    len: usize,
}

/// One layer's keys and values, `[1, kv_heads, capacity, head_dim]` each, written in place:
/// storing a new token copies its own row, not the whole cache. The buffer starts zeroed,
/// so rows after the sequence's length hold zeros (or, after a failed pass, keys and values
/// that were never counted); batched decode attention masks them out, so a view longer than
/// the sequence serves as its padding.
struct KvBuffer {
    keys: Tensor,
    values: Tensor,
}

/// Rows a cache buffer has beyond what it must hold when it is (re)allocated; it doubles
/// when full, up to the context length.
const KV_INITIAL_CAPACITY: usize = 64;

impl KvBuffer {
    fn capacity(&self) -> candle_core::Result<usize> {
        self.keys.dim(2)
    }

    /// Writes `k` and `v` (`[1, kv_heads, n, head_dim]`) at row `at`, growing as needed,
    /// and hands back the buffer.
    fn write<'a>(
        slot: &'a mut Option<KvBuffer>,
        at: usize,
        k: &Tensor,
        v: &Tensor,
        context: usize,
    ) -> candle_core::Result<&'a KvBuffer> {
        let n = k.dim(2)?;
        let needed = at + n;
        let capacity = match slot {
            Some(buffer) => buffer.capacity()?,
            None => 0,
        };
        if needed > capacity {
            // Headroom, so that a long prompt's first decode token does not reallocate.
            let grown = (needed + KV_INITIAL_CAPACITY)
                .max(capacity * 2)
                .min(context.max(needed));
            let (_, heads, _, dim) = k.dims4()?;
            let zeros = || Tensor::zeros((1, heads, grown, dim), k.dtype(), k.device());
            let (keys, values) = (zeros()?, zeros()?);
            match slot.as_ref() {
                Some(old) if at > 0 => {
                    keys.slice_set(&old.keys.narrow(2, 0, at)?.contiguous()?, 2, 0)?;
                    values.slice_set(&old.values.narrow(2, 0, at)?.contiguous()?, 2, 0)?;
                }
                Some(_) => {}
                // Never attend over history that is not there.
                None if at > 0 => {
                    candle_core::bail!("the key/value cache lost its first {at} rows")
                }
                None => {}
            }
            *slot = Some(KvBuffer { keys, values });
        }
        let Some(buffer) = slot.as_ref() else {
            candle_core::bail!("the key/value cache was not allocated");
        };
        buffer.keys.slice_set(&k.contiguous()?, 2, at)?;
        buffer.values.slice_set(&v.contiguous()?, 2, at)?;
        Ok(buffer)
    }

    /// The first `len` rows of keys and values (views, no copy).
    fn rows(&self, len: usize) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((self.keys.narrow(2, 0, len)?, self.values.narrow(2, 0, len)?))
    }
}

impl SequenceCache {
    /// Tokens already in the cache (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// New tokens of one sequence for a forward pass.
pub struct SequenceChunk<'a> {
    pub cache: &'a mut SequenceCache,
    pub tokens: &'a [u32],
}

fn md<'a>(
    content: &'a gguf_file::Content,
    key: &str,
) -> Result<&'a gguf_file::Value, InferenceError> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| InferenceError::Internal(format!("GGUF metadata has no `{key}`")))
}

fn md_usize(content: &gguf_file::Content, key: &str) -> Result<usize, InferenceError> {
    let value = md(content, key)?;
    value
        .to_u32()
        .map(|v| v as usize)
        .or_else(|_| value.to_u64().map(|v| v as usize))
        .map_err(|e| InferenceError::Internal(format!("GGUF `{key}`: {e}")))
}

fn md_f32(content: &gguf_file::Content, key: &str) -> Option<f32> {
    content.metadata.get(key).and_then(|v| v.to_f32().ok())
}

/// The architecture a GGUF file declares.
pub fn gguf_architecture(content: &gguf_file::Content) -> Result<Architecture, InferenceError> {
    let name = md(content, "general.architecture")?
        .to_string()
        .map_err(candle_err)?;
    Architecture::from_gguf_name(name).ok_or_else(|| {
        InferenceError::Internal(format!(
            "GGUF architecture `{name}` is not supported (llama, qwen2)"
        ))
    })
}

/// Opens a GGUF file and reads its header (metadata and tensor index).
pub fn read_gguf(path: &Path) -> Result<(gguf_file::Content, File), InferenceError> {
    if !path.is_file() {
        return Err(missing_file(path));
    }
    let mut file = File::open(path)
        .map_err(|e| InferenceError::Internal(format!("{}: {e}", path.display())))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| InferenceError::Internal(format!("{}: {e}", path.display())))?;
    Ok((content, file))
}

/// Whether the layer weights get f32 copies for the matrix multiplications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptWeights {
    /// On CPU, when the copies take at most 1 GiB (the default).
    Auto,
    /// Quantized weights only: exactly candle's `quantized_llama` arithmetic.
    Quantized,
}

impl Transformer {
    /// Loads the weights of a llama or qwen2 GGUF file.
    pub fn from_gguf(
        content: &gguf_file::Content,
        file: &mut File,
        device: &Device,
    ) -> Result<Self, InferenceError> {
        Self::from_gguf_with(content, file, device, PromptWeights::Auto)
    }

    /// Loads the weights, choosing how prompt rows are computed.
    pub fn from_gguf_with(
        content: &gguf_file::Content,
        file: &mut File,
        device: &Device,
        prompt_weights: PromptWeights,
    ) -> Result<Self, InferenceError> {
        let architecture = gguf_architecture(content)?;
        let key = architecture.key();
        let n_head = md_usize(content, &format!("{key}.attention.head_count"))?;
        let n_kv_head = md_usize(content, &format!("{key}.attention.head_count_kv"))?;
        let hidden = md_usize(content, &format!("{key}.embedding_length"))?;
        let n_layer = md_usize(content, &format!("{key}.block_count"))?;
        let context_length = md_usize(content, &format!("{key}.context_length")).unwrap_or(4096);
        let rms_eps = md_f32(content, &format!("{key}.attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-6) as f64;
        let rope_base = md_f32(content, &format!("{key}.rope.freq_base")).unwrap_or(10_000.0);
        if n_head == 0 || n_kv_head == 0 || hidden % n_head != 0 || n_head % n_kv_head != 0 {
            return Err(InferenceError::Internal(format!(
                "GGUF head counts do not fit: hidden {hidden}, heads {n_head}, kv heads {n_kv_head}"
            )));
        }
        let head_dim = hidden / n_head;
        if let Ok(rope_dim) = md_usize(content, &format!("{key}.rope.dimension_count"))
            && rope_dim != head_dim
        {
            return Err(InferenceError::Internal(format!(
                "partial rotary embeddings ({rope_dim} of {head_dim}) are not supported"
            )));
        }
        let tensor = |file: &mut File, name: &str| -> Result<QTensor, InferenceError> {
            content
                .tensor(file, name, device)
                .map_err(|e| InferenceError::Internal(format!("GGUF tensor `{name}`: {e}")))
        };
        let dense = |q: QTensor| q.dequantize(device).map_err(candle_err);
        let matmul = |q: QTensor| QMatMul::from_qtensor(q).map_err(candle_err);
        let layer_weights: usize = content
            .tensor_infos
            .iter()
            .filter(|(name, _)| name.starts_with("blk."))
            .map(|(_, info)| info.shape.elem_count())
            .sum();
        let keep_dense = prompt_weights == PromptWeights::Auto
            && device.is_cpu()
            && layer_weights * 4 <= DENSE_WEIGHTS_LIMIT;
        let linear = |q: QTensor| -> Result<Linear, InferenceError> {
            let dense = match keep_dense {
                true => Some(q.dequantize(device).map_err(candle_err)?),
                false => None,
            };
            Ok(Linear {
                quantized: matmul(q)?,
                dense,
            })
        };

        let embedding_q = tensor(file, "token_embd.weight")?;
        let embedding = embedding_q.dequantize(device).map_err(candle_err)?;
        let vocab_size = embedding.dim(0).map_err(candle_err)?;
        let norm = dense(tensor(file, "output_norm.weight")?)?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => matmul(tensor(file, "output.weight")?)?,
            // Tied embeddings: the output projection is the embedding table.
            false => matmul(embedding_q)?,
        };
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let name = |suffix: &str| format!("blk.{i}.{suffix}");
            let bias = |file: &mut File, suffix: &str| -> Result<Option<Tensor>, InferenceError> {
                let n = name(suffix);
                if content.tensor_infos.contains_key(&n) {
                    Ok(Some(dense(tensor(file, &n)?)?))
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: dense(tensor(file, &name("attn_norm.weight"))?)?,
                wq: linear(tensor(file, &name("attn_q.weight"))?)?,
                wk: linear(tensor(file, &name("attn_k.weight"))?)?,
                wv: linear(tensor(file, &name("attn_v.weight"))?)?,
                bq: bias(file, "attn_q.bias")?,
                bk: bias(file, "attn_k.bias")?,
                bv: bias(file, "attn_v.bias")?,
                wo: linear(tensor(file, &name("attn_output.weight"))?)?,
                ffn_norm: dense(tensor(file, &name("ffn_norm.weight"))?)?,
                gate: linear(tensor(file, &name("ffn_gate.weight"))?)?,
                up: linear(tensor(file, &name("ffn_up.weight"))?)?,
                down: linear(tensor(file, &name("ffn_down.weight"))?)?,
            });
        }
        let (cos, sin) =
            rotary_tables(head_dim, rope_base, context_length, device).map_err(candle_err)?;
        Ok(Self {
            shape: TransformerShape {
                architecture,
                n_layer,
                n_head,
                n_kv_head,
                hidden,
                head_dim,
                context_length,
                vocab_size,
                rms_eps,
                rope_base,
            },
            embedding,
            layers,
            norm,
            output,
            cos,
            sin,
            device: device.clone(),
        })
    }

    /// Shapes and constants of this model.
    pub fn shape(&self) -> &TransformerShape {
        &self.shape
    }

    /// An empty cache for a new sequence.
    pub fn new_cache(&self) -> SequenceCache {
        SequenceCache {
            layers: (0..self.shape.n_layer).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Feeds each chunk's tokens after what its cache holds, and returns the logits of the
    /// last token of every chunk, `[chunks, vocab]`, in chunk order.
    pub fn forward(&self, chunks: &mut [SequenceChunk<'_>]) -> Result<Tensor, InferenceError> {
        self.forward_inner(chunks).map_err(candle_err)
    }

    fn forward_inner(&self, chunks: &mut [SequenceChunk<'_>]) -> candle_core::Result<Tensor> {
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut last_rows = Vec::with_capacity(chunks.len());
        for chunk in chunks.iter() {
            if chunk.tokens.is_empty() {
                candle_core::bail!("a sequence chunk without tokens");
            }
            if chunk.cache.len + chunk.tokens.len() > self.shape.context_length {
                candle_core::bail!("sequence longer than the context window");
            }
            ids.extend_from_slice(chunk.tokens);
            positions.extend((0..chunk.tokens.len()).map(|i| (chunk.cache.len + i) as u32));
            last_rows.push((ids.len() - 1) as u32);
        }
        let total = ids.len();
        let ids = Tensor::from_vec(ids, total, &self.device)?;
        let positions = Tensor::from_vec(positions, total, &self.device)?;
        let cos = self.cos.index_select(&positions, 0)?;
        let sin = self.sin.index_select(&positions, 0)?;
        let mut x = self.embedding.index_select(&ids, 0)?;
        for (layer_index, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.shape.rms_eps as f32)?;
            let attn = self.attention(layer, layer_index, &h, &cos, &sin, chunks)?;
            x = (x + attn)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.shape.rms_eps as f32)?;
            let gate = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let mlp = layer.down.forward(&(gate * layer.up.forward(&h)?)?)?;
            x = (x + mlp)?;
        }
        for chunk in chunks.iter_mut() {
            chunk.cache.len += chunk.tokens.len();
        }
        let last_rows = Tensor::from_vec(last_rows, chunks.len(), &self.device)?;
        let last = x.index_select(&last_rows, 0)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.shape.rms_eps as f32)?;
        self.output.forward(&last)
    }

    /// Self-attention of one layer for all chunks: projections over the packed rows, then
    /// each sequence attends over its own cache.
    fn attention(
        &self,
        layer: &Layer,
        layer_index: usize,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        chunks: &mut [SequenceChunk<'_>],
    ) -> candle_core::Result<Tensor> {
        let s = &self.shape;
        let total = h.dim(0)?;
        let project =
            |w: &Linear, b: &Option<Tensor>, heads: usize| -> candle_core::Result<Tensor> {
                let y = w.forward(h)?;
                let y = match b {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                };
                y.reshape((1, total, heads, s.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
        let q = self.rotate(&project(&layer.wq, &layer.bq, s.n_head)?, cos, sin)?;
        let k = self.rotate(&project(&layer.wk, &layer.bk, s.n_kv_head)?, cos, sin)?;
        let v = project(&layer.wv, &layer.bv, s.n_kv_head)?;
        let scale = 1.0 / (s.head_dim as f64).sqrt();
        let group = s.n_head / s.n_kv_head;
        // Each chunk's output, `[1, heads, tokens, head_dim]`, filled in chunk order below.
        let mut outputs: Vec<Option<Tensor>> = vec![None; chunks.len()];
        let is_decode = |chunk: &SequenceChunk<'_>| chunk.tokens.len() == 1 && chunk.cache.len > 0;
        // Alone, a decode row attends exactly as a prompt row does, without padding.
        let batch_decode = chunks.iter().filter(|c| is_decode(c)).count() > 1;
        let mut decode = Vec::new();
        let mut offset = 0;
        for (index, chunk) in chunks.iter_mut().enumerate() {
            let n = chunk.tokens.len();
            let past = chunk.cache.len;
            let decoding = batch_decode && is_decode(chunk);
            let buffer = KvBuffer::write(
                &mut chunk.cache.layers[layer_index],
                past,
                &k.narrow(2, offset, n)?,
                &v.narrow(2, offset, n)?,
                s.context_length,
            )?;
            if decoding {
                // A decode token: attended below together with the others of this pass.
                decode.push(DecodeRow {
                    chunk: index,
                    row: offset as u32,
                    len: past + 1,
                    keys: buffer.keys.clone(),
                    values: buffer.values.clone(),
                });
                offset += n;
                continue;
            }
            let (k_all, v_all) = buffer.rows(past + n)?;
            // The query heads that share a key/value head are stacked as extra rows
            // (`[kv_heads, group × n, head_dim]`), so grouped-query attention needs no
            // copies of the cache. Contiguous copies keep the layout of a lone sequence.
            let q_i = q.narrow(2, offset, n)?.contiguous()?.reshape((
                1,
                s.n_kv_head,
                group * n,
                s.head_dim,
            ))?;
            offset += n;
            let scores = (q_i.matmul(&k_all.t()?)? * scale)?;
            let scores = if n > 1 {
                let mask = causal_mask(n, past, &self.device)?;
                let mask = mask
                    .unsqueeze(0)?
                    .broadcast_as((group, n, past + n))?
                    .reshape((group * n, past + n))?;
                scores.broadcast_add(&mask)?
            } else {
                scores
            };
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            outputs[index] = Some(
                probs
                    .matmul(&v_all)?
                    .reshape((1, s.n_head, n, s.head_dim))?,
            );
        }
        if !decode.is_empty() {
            let attended = self.decode_attention(&q, &decode, scale)?;
            for (i, row) in decode.iter().enumerate() {
                outputs[row.chunk] = Some(attended.narrow(0, i, 1)?);
            }
        }
        let outputs = outputs
            .into_iter()
            .map(|o| o.ok_or_else(|| candle_core::Error::Msg("a chunk without output".into())))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let y = Tensor::cat(&outputs, 2)?
            .transpose(1, 2)?
            .reshape((total, s.n_head * s.head_dim))?;
        layer.wo.forward(&y)
    }

    /// Attention of many decode tokens at once: every sequence's keys and values are padded
    /// to the longest, the padding is masked out, and one set of operations serves them all
    /// instead of about ten small ones per sequence. This copies each sequence's keys and
    /// values (padded) once per layer and step, and a short sequence attends over the
    /// longest one's length; both are cheap next to the projections at the lengths a chat
    /// turn has. Returns `[rows, heads, 1, head_dim]` in the order of `rows`.
    ///
    /// The masked positions get a probability of exactly 0, so each row gets what it
    /// would get alone up to float rounding (the sums run over the padded length).
    fn decode_attention(
        &self,
        q: &Tensor,
        rows: &[DecodeRow],
        scale: f64,
    ) -> candle_core::Result<Tensor> {
        let s = &self.shape;
        let group = s.n_head / s.n_kv_head;
        let lengths: Vec<usize> = rows.iter().map(|r| r.len).collect();
        let longest = lengths.iter().copied().max().unwrap_or(0);
        // A buffer at least `longest` rows long is its own zero padding; a shorter one
        // (it has not grown yet) is padded.
        let padded = |buffer: &Tensor, len: usize| -> candle_core::Result<Tensor> {
            if buffer.dim(2)? >= longest {
                buffer.narrow(2, 0, longest)
            } else {
                buffer
                    .narrow(2, 0, len)?
                    .pad_with_zeros(2, 0, longest - len)
            }
        };
        let keys = rows
            .iter()
            .map(|r| padded(&r.keys, r.len))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let values = rows
            .iter()
            .map(|r| padded(&r.values, r.len))
            .collect::<candle_core::Result<Vec<_>>>()?;
        // [rows, kv_heads, longest, head_dim]
        let keys = Tensor::cat(&keys, 0)?;
        let values = Tensor::cat(&values, 0)?;
        let n = rows.len();
        let index = Tensor::from_vec(
            rows.iter().map(|r| r.row).collect::<Vec<u32>>(),
            n,
            &self.device,
        )?;
        // q is [1, heads, tokens, head_dim]; take the decode rows: [rows, kv_heads, group, head_dim].
        let q = q
            .index_select(&index, 2)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n, s.n_kv_head, group, s.head_dim))?;
        let mask: Vec<f32> = lengths
            .iter()
            .flat_map(|&len| {
                (0..longest).map(move |j| if j < len { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, 1, 1, longest), &self.device)?;
        let scores = (q.matmul(&keys.t()?)? * scale)?.broadcast_add(&mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        probs.matmul(&values)?.reshape((n, s.n_head, 1, s.head_dim))
    }

    fn rotate(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
        match self.shape.architecture {
            // llama GGUF files store q/k permuted for the interleaved convention.
            Architecture::Llama => candle_nn::rotary_emb::rope_i(x, cos, sin),
            Architecture::Qwen2 => candle_nn::rotary_emb::rope(x, cos, sin),
        }
    }
}

/// One decode token of a pass: which chunk, its row in the packed matrix, its sequence's
/// length including it, and that sequence's whole cache buffers
/// (`[1, kv_heads, capacity, head_dim]`, zeros from `len` on).
struct DecodeRow {
    chunk: usize,
    row: u32,
    len: usize,
    keys: Tensor,
    values: Tensor,
}

/// Additive mask for `n` new tokens after `past` cached ones: a token sees the cache and
/// the new tokens up to itself.
fn causal_mask(n: usize, past: usize, device: &Device) -> candle_core::Result<Tensor> {
    let width = past + n;
    let values: Vec<f32> = (0..n)
        .flat_map(|i| (0..width).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (n, width), device)
}

/// Cosine and sine tables, `[context, head_dim / 2]`.
fn rotary_tables(
    head_dim: usize,
    base: f32,
    context: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let inv_freq: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let half = inv_freq.len();
    let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
    let positions = Tensor::arange(0u32, context as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((context, 1))?;
    let angles = positions.matmul(&inv_freq)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Index of the largest logit (greedy decoding), first on ties.
pub fn argmax(logits: &Tensor) -> Result<u32, InferenceError> {
    let index = logits
        .argmax(D::Minus1)
        .and_then(|t| t.to_scalar::<u32>())
        .map_err(candle_err)?;
    Ok(index)
}
