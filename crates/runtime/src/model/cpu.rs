//! The CPU oracle: a plain-Rust f32 forward pass, written for clarity over speed.
//!
//! Weights stay quantized in the memory-mapped file; each matrix row is dequantized
//! with [`crate::quant::dequantize`] when it is used, once per batch of tokens, so a
//! prefill of T tokens dequantizes each weight once. Rows are spread over threads with
//! rayon; every row's arithmetic is sequential, so results do not depend on the thread
//! count.

use super::config::ModelConfig;
use super::math::{dot, gelu_tanh, rms_norm, rope_factors, silu, softcap, softmax};
use super::weights::ModelTensors;
use super::Logits;
use crate::generate::Forward;
use crate::gguf::{GgufFile, TensorInfo};
use crate::quant::dequantize;
use crate::Error;
use rayon::prelude::*;
use std::sync::Arc;

/// Small per-layer vectors (norms, biases), dequantized once at load.
struct LayerVectors {
    attn_norm: Vec<f32>,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    attn_post_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    ffn_post_norm: Option<Vec<f32>>,
}

/// A model loaded for the CPU oracle. Shared (`Arc`) by any number of sessions.
pub struct CpuModel {
    file: Arc<GgufFile>,
    pub config: ModelConfig,
    tensors: ModelTensors,
    layers: Vec<LayerVectors>,
    output_norm: Vec<f32>,
    /// RoPE frequency divisors: (within `n_ctx_orig`, beyond it).
    rope_factors: Option<(Vec<f32>, Option<Vec<f32>>)>,
}

fn vector(file: &GgufFile, t: &TensorInfo) -> Result<Vec<f32>, Error> {
    let mut out = vec![0f32; t.n_elements as usize];
    dequantize(t.ggml_type, file.tensor_data(t), &mut out)?;
    Ok(out)
}

fn opt_vector(file: &GgufFile, t: &Option<TensorInfo>) -> Result<Option<Vec<f32>>, Error> {
    t.as_ref().map(|t| vector(file, t)).transpose()
}

impl CpuModel {
    pub fn load(file: Arc<GgufFile>) -> Result<CpuModel, Error> {
        let config = ModelConfig::from_gguf(&file.header)?;
        let tensors = ModelTensors::find(&file.header, &config)?;
        for t in std::iter::once(&tensors.tok_embd).chain(std::iter::once(&tensors.output)) {
            if !t.ggml_type.can_dequantize() {
                return Err(Error::Unsupported(format!(
                    "tensor {} has type {}",
                    t.name, t.ggml_type
                )));
            }
        }
        let mut layers = Vec::with_capacity(config.n_layer);
        for lt in &tensors.layers {
            for t in [
                &lt.wq,
                &lt.wk,
                &lt.wv,
                &lt.wo,
                &lt.ffn_gate,
                &lt.ffn_up,
                &lt.ffn_down,
            ] {
                if !t.ggml_type.can_dequantize() {
                    return Err(Error::Unsupported(format!(
                        "tensor {} has type {}",
                        t.name, t.ggml_type
                    )));
                }
            }
            layers.push(LayerVectors {
                attn_norm: vector(&file, &lt.attn_norm)?,
                bq: opt_vector(&file, &lt.bq)?,
                bk: opt_vector(&file, &lt.bk)?,
                bv: opt_vector(&file, &lt.bv)?,
                q_norm: opt_vector(&file, &lt.q_norm)?,
                k_norm: opt_vector(&file, &lt.k_norm)?,
                attn_post_norm: opt_vector(&file, &lt.attn_post_norm)?,
                ffn_norm: vector(&file, &lt.ffn_norm)?,
                ffn_post_norm: opt_vector(&file, &lt.ffn_post_norm)?,
            });
        }
        let output_norm = vector(&file, &tensors.output_norm)?;
        let rope_factors = match &tensors.rope_factors {
            Some(t) => Some((
                vector(&file, t)?,
                opt_vector(&file, &tensors.rope_factors_long)?,
            )),
            None => None,
        };
        Ok(CpuModel {
            file,
            config,
            tensors,
            layers,
            output_norm,
            rope_factors,
        })
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// `out[t][r] = W[r] · x[t]` for a (rows × cols) weight and `n` inputs of length cols.
    fn matmul(&self, w: &TensorInfo, x: &[f32], n: usize) -> Vec<f32> {
        let cols = w.row_len() as usize;
        let rows = w.n_rows() as usize;
        debug_assert_eq!(x.len(), n * cols);
        let data = self.file.tensor_data(w);
        let row_bytes = data.len() / rows;
        // Row-major result per weight row (rows × n), transposed at the end.
        let mut by_row = vec![0f32; rows * n];
        by_row.par_chunks_mut(n * 64).enumerate().for_each_init(
            || vec![0f32; cols],
            |buf, (chunk, out)| {
                for (i, out_row) in out.chunks_mut(n).enumerate() {
                    let r = chunk * 64 + i;
                    dequantize(w.ggml_type, &data[r * row_bytes..(r + 1) * row_bytes], buf)
                        .expect("types checked at load");
                    for (t, o) in out_row.iter_mut().enumerate() {
                        *o = dot(buf, &x[t * cols..(t + 1) * cols]);
                    }
                }
            },
        );
        let mut out = vec![0f32; n * rows];
        for r in 0..rows {
            for t in 0..n {
                out[t * rows + r] = by_row[r * n + t];
            }
        }
        out
    }

    fn embed(&self, token: u32) -> Vec<f32> {
        let t = &self.tensors.tok_embd;
        let cols = t.row_len() as usize;
        let data = self.file.tensor_data(t);
        let row_bytes = data.len() / t.n_rows() as usize;
        let r = token as usize;
        let mut row = vec![0f32; cols];
        dequantize(
            t.ggml_type,
            &data[r * row_bytes..(r + 1) * row_bytes],
            &mut row,
        )
        .expect("types checked at load");
        if self.config.embd_scale != 1.0 {
            for v in &mut row {
                *v *= self.config.embd_scale;
            }
        }
        row
    }
}

/// One sequence's state: the KV cache of every layer.
pub struct CpuSession {
    model: Arc<CpuModel>,
    n_ctx: usize,
    n_past: usize,
    /// The tokens whose keys and values are cached (`n_past` of them).
    tokens: Vec<u32>,
    k_cache: Vec<Vec<f32>>,
    v_cache: Vec<Vec<f32>>,
}

impl CpuSession {
    pub fn new(model: Arc<CpuModel>, n_ctx: usize) -> CpuSession {
        let cfg = &model.config;
        let k_cache = (0..cfg.n_layer)
            .map(|_| vec![0f32; n_ctx * cfg.k_dim()])
            .collect();
        let v_cache = (0..cfg.n_layer)
            .map(|_| vec![0f32; n_ctx * cfg.v_dim()])
            .collect();
        CpuSession {
            model,
            n_ctx,
            n_past: 0,
            tokens: Vec::new(),
            k_cache,
            v_cache,
        }
    }

    pub fn model(&self) -> &Arc<CpuModel> {
        &self.model
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Tokens already in the KV cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Forget everything after the first `n` tokens.
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
        self.tokens.truncate(self.n_past);
    }

    /// Run `tokens` through the model after the cached ones; returns the logits of the
    /// last position, or of every position (flattened, `n_vocab` each).
    pub fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>, Error> {
        let model = Arc::clone(&self.model);
        let cfg = &model.config;
        let n = tokens.len();
        if n == 0 {
            return Err(Error::InvalidRequest("no tokens to evaluate".into()));
        }
        if self.n_past + n > self.n_ctx {
            return Err(Error::ContextFull {
                needed: self.n_past + n,
                n_ctx: self.n_ctx,
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= cfg.n_vocab) {
            return Err(Error::InvalidRequest(format!(
                "token id {bad} is outside the vocabulary (size {})",
                cfg.n_vocab
            )));
        }
        let e = cfg.n_embd;
        let mut x: Vec<f32> = tokens.iter().flat_map(|&t| model.embed(t)).collect();

        for (il, (lt, lv)) in model.tensors.layers.iter().zip(&model.layers).enumerate() {
            // Attention block.
            let mut h = x.clone();
            for row in h.chunks_mut(e) {
                rms_norm(row, &lv.attn_norm, cfg.rms_eps);
            }
            let mut q = model.matmul(&lt.wq, &h, n);
            let mut k = model.matmul(&lt.wk, &h, n);
            let mut v = model.matmul(&lt.wv, &h, n);
            add_bias(&mut q, &lv.bq);
            add_bias(&mut k, &lv.bk);
            add_bias(&mut v, &lv.bv);
            let base = cfg.layer_rope_base(il);
            let freq_scale = cfg.layer_rope_freq_scale(il);
            let factors = model.rope_factors.as_ref().map(|(short, long)| match long {
                Some(long) if self.n_ctx > cfg.n_ctx_orig => long.as_slice(),
                _ => short.as_slice(),
            });
            let use_rope = cfg.rope_layers[il];
            for (t, (qt, kt)) in q
                .chunks_mut(cfg.q_dim())
                .zip(k.chunks_mut(cfg.k_dim()))
                .enumerate()
            {
                let pos = self.n_past + t;
                for (heads, norm) in [(qt, &lv.q_norm), (kt, &lv.k_norm)] {
                    for head in heads.chunks_mut(cfg.head_dim_k) {
                        if let Some(w) = norm {
                            rms_norm(head, w, cfg.rms_eps);
                        }
                        if use_rope {
                            rope_factors(
                                head,
                                pos,
                                cfg.rope_dims,
                                base,
                                freq_scale,
                                cfg.rope_style,
                                factors,
                            );
                        }
                    }
                }
            }
            let (kd, vd) = (cfg.k_dim(), cfg.v_dim());
            self.k_cache[il][self.n_past * kd..(self.n_past + n) * kd].copy_from_slice(&k);
            self.v_cache[il][self.n_past * vd..(self.n_past + n) * vd].copy_from_slice(&v);
            let attn = self.attention(il, &q, n);
            let mut o = model.matmul(&lt.wo, &attn, n);
            if let Some(w) = &lv.attn_post_norm {
                for row in o.chunks_mut(e) {
                    rms_norm(row, w, cfg.rms_eps);
                }
            }
            for (xi, oi) in x.iter_mut().zip(&o) {
                *xi += oi;
            }

            // Feed-forward block.
            let mut h = x.clone();
            for row in h.chunks_mut(e) {
                rms_norm(row, &lv.ffn_norm, cfg.rms_eps);
            }
            let mut gate = model.matmul(&lt.ffn_gate, &h, n);
            let up = model.matmul(&lt.ffn_up, &h, n);
            let act: fn(f32) -> f32 = if cfg.arch.gelu_ffn() { gelu_tanh } else { silu };
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = act(*g) * u;
            }
            let mut down = model.matmul(&lt.ffn_down, &gate, n);
            if let Some(w) = &lv.ffn_post_norm {
                for row in down.chunks_mut(e) {
                    rms_norm(row, w, cfg.rms_eps);
                }
            }
            for (xi, di) in x.iter_mut().zip(&down) {
                *xi += di;
            }
        }
        self.n_past += n;
        self.tokens.extend_from_slice(tokens);

        let rows: Vec<f32> = match logits {
            Logits::All => x,
            Logits::Last => x[(n - 1) * e..].to_vec(),
        };
        let m = rows.len() / e;
        let mut normed = rows;
        for row in normed.chunks_mut(e) {
            rms_norm(row, &model.output_norm, cfg.rms_eps);
        }
        let mut out = model.matmul(&model.tensors.output, &normed, m);
        if cfg.final_logit_softcap > 0.0 {
            softcap(&mut out, cfg.final_logit_softcap);
        }
        Ok(out)
    }

    /// Causal (optionally sliding-window) GQA attention of `n` new queries against the
    /// cache, which already holds their keys and values.
    fn attention(&self, il: usize, q: &[f32], n: usize) -> Vec<f32> {
        let cfg = &self.model.config;
        let (dk, dv) = (cfg.head_dim_k, cfg.head_dim_v);
        let group = cfg.n_head / cfg.n_head_kv;
        let window = cfg.layer_window(il);
        let (kc, vc) = (&self.k_cache[il], &self.v_cache[il]);
        let mut out = vec![0f32; n * cfg.n_head * dv];
        out.par_chunks_mut(dv).enumerate().for_each(|(idx, o)| {
            let (t, head) = (idx / cfg.n_head, idx % cfg.n_head);
            let kv_head = head / group;
            let pos = self.n_past + t;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let qh = &q[t * cfg.q_dim() + head * dk..][..dk];
            let mut scores: Vec<f32> = (first..=pos)
                .map(|p| dot(qh, &kc[p * cfg.k_dim() + kv_head * dk..][..dk]) * cfg.attn_scale)
                .collect();
            if cfg.attn_softcap > 0.0 {
                softcap(&mut scores, cfg.attn_softcap);
            }
            softmax(&mut scores);
            for (p, &s) in (first..=pos).zip(&scores) {
                let vh = &vc[p * cfg.v_dim() + kv_head * dv..][..dv];
                for (oi, &vi) in o.iter_mut().zip(vh) {
                    *oi += s * vi;
                }
            }
        });
        out
    }
}

fn add_bias(x: &mut [f32], bias: &Option<Vec<f32>>) {
    if let Some(b) = bias {
        for row in x.chunks_mut(b.len()) {
            for (v, bi) in row.iter_mut().zip(b) {
                *v += bi;
            }
        }
    }
}

impl Forward for CpuSession {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn cached_tokens(&self) -> &[u32] {
        &self.tokens
    }

    fn truncate(&mut self, n: usize) {
        CpuSession::truncate(self, n)
    }

    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>, Error> {
        CpuSession::forward(self, tokens, logits)
    }
}
