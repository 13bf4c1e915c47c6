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
        let gemma = cfg.arch == Arch::Gemma3;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for il in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            let (q, k, vd) = (cfg.q_dim(), cfg.k_dim(), cfg.v_dim());
            let layer = LayerTensors {
                attn_norm: f.required(&n("attn_norm.weight"), &[e])?,
                wq: f.required(&n("attn_q.weight"), &[e, q])?,
                wk: f.required(&n("attn_k.weight"), &[e, k])?,
                wv: f.required(&n("attn_v.weight"), &[e, vd])?,
                bq: f.optional(&n("attn_q.bias"), &[q])?,
                bk: f.optional(&n("attn_k.bias"), &[k])?,
                bv: f.optional(&n("attn_v.bias"), &[vd])?,
                wo: f.required(&n("attn_output.weight"), &[cfg.n_head * cfg.head_dim_v, e])?,
                q_norm: f.optional(&n("attn_q_norm.weight"), &[cfg.head_dim_k])?,
                k_norm: f.optional(&n("attn_k_norm.weight"), &[cfg.head_dim_k])?,
                attn_post_norm: f.optional(&n("post_attention_norm.weight"), &[e])?,
                ffn_norm: f.required(&n("ffn_norm.weight"), &[e])?,
                ffn_gate: f.required(&n("ffn_gate.weight"), &[e, cfg.n_ff])?,
                ffn_up: f.required(&n("ffn_up.weight"), &[e, cfg.n_ff])?,
                ffn_down: f.required(&n("ffn_down.weight"), &[cfg.n_ff, e])?,
                ffn_post_norm: f.optional(&n("post_ffw_norm.weight"), &[e])?,
            };
            if gemma {
                for (t, name) in [
                    (&layer.q_norm, "attn_q_norm.weight"),
                    (&layer.k_norm, "attn_k_norm.weight"),
                    (&layer.attn_post_norm, "post_attention_norm.weight"),
                    (&layer.ffn_post_norm, "post_ffw_norm.weight"),
                ] {
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
        })
    }
}
