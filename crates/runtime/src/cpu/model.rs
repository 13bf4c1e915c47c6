//! A model loaded for the CPU engine: its matrices (views into the file, still in their
//! GGUF blocks), its small vectors dequantized once, the kernels and the threads.

use super::half::HalfOps;
use super::kernels::Isa;
use super::matrix::{Matrix, Precision};
use super::pool::Pool;
use crate::gguf::{GgufFile, TensorInfo};
use crate::model::config::ModelConfig;
use crate::model::weights::ModelTensors;
use crate::quant::dequantize;
use crate::Error;
use std::sync::Arc;

/// How to run the CPU engine.
#[derive(Debug, Clone, Default)]
pub struct CpuOptions {
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Instruction set to use; `None` = the best this CPU has. Must be one of
    /// [`Isa::available`] (checked at load).
    pub isa: Option<Isa>,
    /// How finely activations are quantized (the default meets the float64 bars).
    pub precision: Precision,
}

pub(super) struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub wo: Matrix,
    pub attn_post_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub ffn_gate: Matrix,
    pub ffn_up: Matrix,
    pub ffn_down: Matrix,
    pub ffn_post_norm: Option<Vec<f32>>,
}

/// A model on the CPU engine. Shared (`Arc`) by any number of sessions.
pub struct CpuEngine {
    pub(super) file: Arc<GgufFile>,
    pub config: ModelConfig,
    pub(super) tok_embd: TensorInfo,
    pub(super) layers: Vec<Layer>,
    pub(super) output_norm: Vec<f32>,
    pub(super) output: Matrix,
    /// RoPE frequency divisors: (within `n_ctx_orig`, beyond it).
    pub(super) rope_factors: Option<(Vec<f32>, Option<Vec<f32>>)>,
    pub(super) pool: Pool,
    pub(super) half: HalfOps,
    pub(super) precision: Precision,
    isa: Isa,
}

fn vector(file: &GgufFile, t: &TensorInfo) -> Result<Vec<f32>, Error> {
    let mut out = vec![0f32; t.n_elements as usize];
    dequantize(t.ggml_type, file.tensor_data(t), &mut out)
        .map_err(|e| Error::InvalidModel(format!("tensor {}: {e}", t.name)))?;
    Ok(out)
}

fn opt_vector(file: &GgufFile, t: &Option<TensorInfo>) -> Result<Option<Vec<f32>>, Error> {
    t.as_ref().map(|t| vector(file, t)).transpose()
}

impl CpuEngine {
    pub fn load(file: Arc<GgufFile>, options: &CpuOptions) -> Result<CpuEngine, Error> {
        let config = ModelConfig::from_gguf(&file.header)?;
        let tensors = ModelTensors::find(&file.header, &config)?;
        let available = Isa::available();
        let isa = match options.isa {
            Some(isa) if !available.contains(&isa) => {
                return Err(Error::InvalidRequest(format!(
                    "this CPU cannot run {} kernels (it has: {})",
                    isa.name(),
                    available
                        .iter()
                        .map(|i| i.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
            Some(isa) => isa,
            None => Isa::best(),
        };
        if !tensors.tok_embd.ggml_type.can_dequantize() {
            return Err(Error::Unsupported(format!(
                "tensor {} has type {}",
                tensors.tok_embd.name, tensors.tok_embd.ggml_type
            )));
        }
        let m = |t: &TensorInfo| Matrix::new(t, isa);
        let precision = options.precision;
        let mut layers = Vec::with_capacity(config.n_layer);
        for lt in &tensors.layers {
            layers.push(Layer {
                attn_norm: vector(&file, &lt.attn_norm)?,
                wq: m(&lt.wq)?,
                wk: m(&lt.wk)?,
                wv: m(&lt.wv)?,
                bq: opt_vector(&file, &lt.bq)?,
                bk: opt_vector(&file, &lt.bk)?,
                bv: opt_vector(&file, &lt.bv)?,
                q_norm: opt_vector(&file, &lt.q_norm)?,
                k_norm: opt_vector(&file, &lt.k_norm)?,
                wo: m(&lt.wo)?,
                attn_post_norm: opt_vector(&file, &lt.attn_post_norm)?,
                ffn_norm: vector(&file, &lt.ffn_norm)?,
                ffn_gate: m(&lt.ffn_gate)?,
                ffn_up: m(&lt.ffn_up)?,
                ffn_down: m(&lt.ffn_down)?,
                ffn_post_norm: opt_vector(&file, &lt.ffn_post_norm)?,
            });
        }
        let rope_factors = match &tensors.rope_factors {
            Some(t) => Some((
                vector(&file, t)?,
                opt_vector(&file, &tensors.rope_factors_long)?,
            )),
            None => None,
        };
        Ok(CpuEngine {
            output_norm: vector(&file, &tensors.output_norm)?,
            output: m(&tensors.output)?,
            tok_embd: tensors.tok_embd.clone(),
            layers,
            rope_factors,
            pool: Pool::new(options.threads)?,
            half: HalfOps::best(),
            isa,
            precision,
            config,
            file,
        })
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The instruction set the kernels use.
    /// How finely activations are quantized.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Weight bytes one decode token reads (every matrix once, the output head included).
    pub fn weight_bytes_per_token(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| {
                [
                    &l.wq,
                    &l.wk,
                    &l.wv,
                    &l.wo,
                    &l.ffn_gate,
                    &l.ffn_up,
                    &l.ffn_down,
                ]
                .iter()
                .map(|m| m.bytes())
                .sum::<usize>()
            })
            .sum();
        per_layer + self.output.bytes()
    }

    /// Bytes of KV cache a session of `n_ctx` positions allocates (f16 keys and values).
    pub fn kv_bytes(&self, n_ctx: usize) -> u64 {
        let c = &self.config;
        n_ctx as u64 * c.n_layer as u64 * (c.k_dim() + c.v_dim()) as u64 * 2
    }
}
