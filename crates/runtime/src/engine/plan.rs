//! The memory plan: every byte the engine will allocate on the GPU, computed from the
//! GGUF header and the device's limits before anything is allocated, so a model that
//! cannot fit is refused with a message instead of failing halfway through an upload.

use crate::gguf::{GgufHeader, TensorInfo};
use crate::model::ModelConfig;
use crate::Error;

/// Tokens evaluated together in one prefill pass (longer prompts go in several passes):
/// the generation loop's prefill chunk, so each chunk is one submission.
pub const MAX_BATCH: usize = crate::generate::PREFILL_CHUNK;

/// How one weight matrix is split into bindable row chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChunks {
    pub row_bytes: u64,
    /// (first row, number of rows) of each chunk.
    pub chunks: Vec<(u64, u64)>,
}

/// Split a tensor's rows so each chunk fits one storage binding (and one buffer).
pub fn row_chunks(t: &TensorInfo, max_binding: u64) -> Result<RowChunks, Error> {
    let rows = t.n_rows().max(1);
    let row_bytes = t.n_bytes / rows;
    if row_bytes == 0 || row_bytes > max_binding {
        return Err(Error::Unsupported(format!(
            "one row of tensor {} is {row_bytes} bytes, more than the device's {max_binding}-byte storage binding",
            t.name
        )));
    }
    // Keep chunk sizes a multiple of 4 rows' worth of alignment-free bytes: any row count
    // works because kernels address rows by byte offset within the chunk.
    let per_chunk = (max_binding / row_bytes).max(1);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < rows {
        let n = per_chunk.min(rows - start);
        chunks.push((start, n));
        start += n;
    }
    Ok(RowChunks { row_bytes, chunks })
}

/// The GPU memory a loaded model and one session need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Quantized weights as stored in the file (tied heads counted once).
    pub weights_bytes: u64,
    /// KV cache of one session at `n_ctx`.
    pub kv_cache_bytes: u64,
    /// Activations and logits of one session (sized for `MAX_BATCH` tokens).
    pub scratch_bytes: u64,
    pub total_bytes: u64,
    pub n_ctx: usize,
    /// Bytes per KV element (f16 halves).
    pub kv_element_bytes: u64,
    /// The largest single buffer the plan allocates.
    pub largest_buffer: u64,
}

impl MemoryPlan {
    pub fn new(
        header: &GgufHeader,
        cfg: &ModelConfig,
        n_ctx: usize,
        f16_kv: bool,
        max_binding: u64,
    ) -> Result<MemoryPlan, Error> {
        let mut weights_bytes = 0u64;
        let mut largest_buffer = 0u64;
        for t in &header.tensors {
            weights_bytes += t.n_bytes;
            if t.dims.len() >= 2 {
                let rc = row_chunks(t, max_binding)?;
                let biggest = rc
                    .chunks
                    .iter()
                    .map(|c| c.1 * rc.row_bytes)
                    .max()
                    .unwrap_or(0);
                largest_buffer = largest_buffer.max(biggest);
            } else {
                // Vectors are uploaded as f32.
                largest_buffer = largest_buffer.max(t.n_elements * 4);
            }
        }
        // The cache holds 2-byte halves on every device (packed in u32 words without
        // shader-f16), so its size does not depend on the feature.
        let _ = f16_kv;
        let kv_element_bytes = 2;
        let kv_layer = n_ctx as u64 * (cfg.k_dim() + cfg.v_dim()) as u64 * kv_element_bytes;
        let kv_cache_bytes = kv_layer * cfg.n_layer as u64;
        largest_buffer = largest_buffer
            .max(n_ctx as u64 * cfg.k_dim().max(cfg.v_dim()) as u64 * kv_element_bytes);
        let b = MAX_BATCH as u64;
        let widths = [
            cfg.n_embd * 2,                          // x, h
            cfg.q_dim() + cfg.k_dim() + cfg.v_dim(), // stacked [q | k | v]
            cfg.q_dim(),
            cfg.k_dim(),
            cfg.v_dim(),
            cfg.n_head * cfg.head_dim_v,
            cfg.n_ff * 2,
        ];
        let activations: u64 = widths.iter().map(|&w| w as u64 * b * 4).sum();
        let logits_rows = logits_rows(cfg.n_vocab, max_binding) as u64;
        let logits = cfg.n_vocab as u64 * 4 * logits_rows;
        let scratch_bytes = activations + logits + 64 * 1024;
        largest_buffer = largest_buffer.max(logits).max(cfg.n_ff as u64 * b * 4);
        Ok(MemoryPlan {
            weights_bytes,
            kv_cache_bytes,
            scratch_bytes,
            total_bytes: weights_bytes + kv_cache_bytes + scratch_bytes,
            n_ctx,
            kv_element_bytes,
            largest_buffer,
        })
    }

    /// Refuse the plan when it cannot work on a device with these limits and budget.
    pub fn check(
        &self,
        max_binding: u64,
        max_buffer: u64,
        budget: Option<u64>,
    ) -> Result<(), Error> {
        if self.largest_buffer > max_binding.min(max_buffer) {
            return Err(Error::Unsupported(format!(
                "the model needs a {} MiB buffer but the device binds at most {} MiB; use a smaller --ctx-size",
                self.largest_buffer >> 20,
                max_binding.min(max_buffer) >> 20
            )));
        }
        if let Some(budget) = budget {
            if self.total_bytes > budget {
                return Err(Error::Unsupported(format!(
                    "the model needs {} MiB of GPU memory ({} MiB weights, {} MiB KV cache at {} tokens, {} MiB scratch), over the {} MiB budget; use a smaller --ctx-size or a smaller model",
                    self.total_bytes >> 20,
                    self.weights_bytes >> 20,
                    self.kv_cache_bytes >> 20,
                    self.n_ctx,
                    self.scratch_bytes >> 20,
                    budget >> 20
                )));
            }
        }
        Ok(())
    }
}

/// How many positions' logits one logits buffer holds (bounded by the binding size).
pub fn logits_rows(n_vocab: usize, max_binding: u64) -> usize {
    ((max_binding / (n_vocab as u64 * 4)) as usize).clamp(1, MAX_BATCH.min(64))
}
