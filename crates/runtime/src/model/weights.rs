//! The tensors an architecture needs, found by name in the tensor table and checked
//! against the configuration before anything is computed or uploaded.

use super::config::{Arch, ModelConfig};
use crate::gguf::{GgufHeader, TensorInfo};
use crate::Error;

/// Tensors of one transformer block.
#[derive(Debug, Clone)]
pub struct LayerTensors {
    pub attn_norm: TensorInfo,
    pub wq: TensorInfo,
    pub wk: TensorInfo,
    pub wv: TensorInfo,
    pub bq: Option<TensorInfo>,
    pub bk: Option<TensorInfo>,
    pub bv: Option<TensorInfo>,
    pub wo: TensorInfo,
    pub q_norm: Option<TensorInfo>,
    pub k_norm: Option<TensorInfo>,
    pub attn_post_norm: Option<TensorInfo>,
    pub ffn_norm: TensorInfo,
    pub ffn_gate: TensorInfo,
    pub ffn_up: TensorInfo,
    pub ffn_down: TensorInfo,
    pub ffn_post_norm: Option<TensorInfo>,
}

/// Every tensor of a model.
#[derive(Debug, Clone)]
pub struct ModelTensors {
    pub tok_embd: TensorInfo,
    pub output_norm: TensorInfo,
    /// The output head: `output.weight`, or `tok_embd` when the model ties them.
    pub output: TensorInfo,
    pub tied_output: bool,
    pub layers: Vec<LayerTensors>,
    /// Per-pair RoPE frequency divisors (`rope_dims / 2`): Llama 3's `rope_freqs`, or
    /// Phi-3's LongRoPE short factors (used while the context fits `n_ctx_orig`).
    pub rope_factors: Option<TensorInfo>,
    /// Phi-3's LongRoPE long factors (used beyond `n_ctx_orig`).
    pub rope_factors_long: Option<TensorInfo>,
}

/// Rows `[start, start + rows)` of a 2-D tensor as a tensor of its own: fused weights
/// (Phi-3's `attn_qkv`, gate+up `ffn_up`) are used as separate matrices without copying.
fn row_slice(t: &TensorInfo, part: &str, start: u64, rows: u64) -> TensorInfo {
    let row_bytes = t.n_bytes / t.n_rows().max(1);
    TensorInfo {
        name: format!("{}[{part}]", t.name),
        dims: vec![t.row_len(), rows],
        ggml_type: t.ggml_type,
        offset: t.offset + start * row_bytes,
        n_elements: t.row_len() * rows,
        n_bytes: rows * row_bytes,
    }
}

struct Finder<'a> {
    header: &'a GgufHeader,
}

impl Finder<'_> {
    fn optional(&self, name: &str, shape: &[usize]) -> Result<Option<TensorInfo>, Error> {
        let Some(t) = self.header.tensor(name) else {
            return Ok(None);
        };
        let want: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        // Trailing dimensions of 1 are equivalent in ggml.
        let mut have = t.dims.clone();
        while have.len() > want.len() && have.last() == Some(&1) {
            have.pop();
        }
        if have != want {
            return Err(Error::InvalidModel(format!(
                "tensor {name} has shape {:?}, the metadata implies {want:?}",
                t.dims
            )));
        }
        Ok(Some(t.clone()))
    }

    fn required(&self, name: &str, shape: &[usize]) -> Result<TensorInfo, Error> {
        self.optional(name, shape)?
            .ok_or_else(|| Error::InvalidModel(format!("missing tensor {name}")))
    }
}

impl ModelTensors {
    pub fn find(header: &GgufHeader, cfg: &ModelConfig) -> Result<ModelTensors, Error> {
        let f = Finder { header };
        let (e, v) = (cfg.n_embd, cfg.n_vocab);
        let tok_embd = f.required("token_embd.weight", &[e, v])?;
        let output_norm = f.required("output_norm.weight", &[e])?;
        let (output, tied_output) = match f.optional("output.weight", &[e, v])? {
            Some(t) => (t, false),
            None => (tok_embd.clone(), true),
        };
        let gemma = matches!(cfg.arch, Arch::Gemma2 | Arch::Gemma3);
        let half_rot = cfg.rope_dims / 2;
        let rope_factors = match f.optional("rope_freqs.weight", &[half_rot])? {
            Some(t) => Some(t),
            None => f.optional("rope_factors_short.weight", &[half_rot])?,
        };
        let rope_factors_long = f.optional("rope_factors_long.weight", &[half_rot])?;
        if rope_factors_long.is_some() && rope_factors.is_none() {
            return Err(Error::InvalidModel(
                "rope_factors_long.weight without rope_factors_short.weight".into(),
            ));
        }
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for il in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            let (q, k, vd) = (cfg.q_dim(), cfg.k_dim(), cfg.v_dim());
            let (wq, wk, wv) = match f.optional(&n("attn_qkv.weight"), &[e, q + k + vd])? {
                Some(qkv) => (
                    row_slice(&qkv, "q", 0, q as u64),
                    row_slice(&qkv, "k", q as u64, k as u64),
                    row_slice(&qkv, "v", (q + k) as u64, vd as u64),
                ),
                None => (
                    f.required(&n("attn_q.weight"), &[e, q])?,
                    f.required(&n("attn_k.weight"), &[e, k])?,
                    f.required(&n("attn_v.weight"), &[e, vd])?,
                ),
            };
            let ff = cfg.n_ff as u64;
            // Phi-3 fuses gate and up (gate first: llama.cpp's swiglu activates the first half).
            let (ffn_gate, ffn_up) = match f.optional(&n("ffn_gate.weight"), &[e, cfg.n_ff])? {
                Some(gate) => (gate, f.required(&n("ffn_up.weight"), &[e, cfg.n_ff])?),
                None => {
                    let fused = f.required(&n("ffn_up.weight"), &[e, 2 * cfg.n_ff])?;
                    (
                        row_slice(&fused, "gate", 0, ff),
                        row_slice(&fused, "up", ff, ff),
                    )
                }
            };
            let layer = LayerTensors {
                attn_norm: f.required(&n("attn_norm.weight"), &[e])?,
                wq,
                wk,
                wv,
                bq: f.optional(&n("attn_q.bias"), &[q])?,
                bk: f.optional(&n("attn_k.bias"), &[k])?,
                bv: f.optional(&n("attn_v.bias"), &[vd])?,
                wo: f.required(&n("attn_output.weight"), &[cfg.n_head * cfg.head_dim_v, e])?,
                q_norm: f.optional(&n("attn_q_norm.weight"), &[cfg.head_dim_k])?,
                k_norm: f.optional(&n("attn_k_norm.weight"), &[cfg.head_dim_k])?,
                attn_post_norm: f.optional(&n("post_attention_norm.weight"), &[e])?,
                ffn_norm: f.required(&n("ffn_norm.weight"), &[e])?,
                ffn_gate,
                ffn_up,
                ffn_down: f.required(&n("ffn_down.weight"), &[cfg.n_ff, e])?,
                ffn_post_norm: f.optional(&n("post_ffw_norm.weight"), &[e])?,
            };
            let needs_qk_norm = matches!(cfg.arch, Arch::Gemma3 | Arch::Qwen3);
            if gemma || needs_qk_norm {
                for (t, name) in [
                    (&layer.q_norm, "attn_q_norm.weight"),
                    (&layer.k_norm, "attn_k_norm.weight"),
                    (&layer.attn_post_norm, "post_attention_norm.weight"),
                    (&layer.ffn_post_norm, "post_ffw_norm.weight"),
                ] {
                    let is_qk = name.starts_with("attn_q_norm") || name.starts_with("attn_k_norm");
                    if (is_qk && !needs_qk_norm) || (!is_qk && !gemma) {
                        continue;
                    }
                    if t.is_none() {
                        return Err(Error::InvalidModel(format!("missing tensor {}", n(name))));
                    }
                }
            }
            if cfg.arch == Arch::Qwen2
                && (layer.bq.is_none() || layer.bk.is_none() || layer.bv.is_none())
            {
                return Err(Error::InvalidModel(format!(
                    "missing Q/K/V bias in block {il}"
                )));
            }
            layers.push(layer);
        }
        Ok(ModelTensors {
            tok_embd,
            output_norm,
            output,
            tied_output,
            layers,
            rope_factors,
            rope_factors_long,
        })
    }
}
