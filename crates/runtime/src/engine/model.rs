//! A model on the GPU: weights uploaded once, still quantized, in GGUF block layout,
//! each matrix split into row chunks that fit one storage binding; small vectors (norms,
//! biases) as f32. Shared (`Arc`) by any number of sessions.
//!
//! Why GGUF block layout rather than a repacked one: the kernels read blocks as u32
//! words and dequantize in registers, so the upload is a straight copy of the file's
//! bytes (streamable from a fetch body with no CPU work), and one kernel family per type
//! serves both decode and prefill. Repacking for speed is left to the speed work, where
//! it must be measured.

use super::kernels::Kernels;
use super::plan::{row_chunks, MemoryPlan};
use super::source::{ByteSource, LoadControl};
use crate::gguf::{GgufHeader, TensorInfo};
use crate::gpu::GpuContext;
use crate::model::{ModelConfig, ModelTensors};
use crate::quant::{dequantize, GgmlType};
use crate::Error;
use std::collections::HashMap;
use std::sync::Arc;

/// One bindable piece of a weight matrix: whole rows `[row_start, row_start + rows)`.
pub struct WeightChunk {
    pub buffer: wgpu::Buffer,
    pub row_start: u64,
    pub rows: u64,
}

/// A (rows × cols) weight matrix, quantized, in row chunks.
pub struct GpuMatrix {
    pub name: String,
    pub ty: GgmlType,
    pub rows: u64,
    pub cols: u64,
    pub chunks: Vec<WeightChunk>,
}

/// A small f32 vector (norm weight or bias).
pub type GpuVector = wgpu::Buffer;

pub struct GpuLayer {
    pub attn_norm: GpuVector,
    pub wq: GpuMatrix,
    pub wk: GpuMatrix,
    pub wv: GpuMatrix,
    pub bq: Option<GpuVector>,
    pub bk: Option<GpuVector>,
    pub bv: Option<GpuVector>,
    pub wo: GpuMatrix,
    pub q_norm: Option<GpuVector>,
    pub k_norm: Option<GpuVector>,
    pub attn_post_norm: Option<GpuVector>,
    pub ffn_norm: GpuVector,
    pub ffn_gate: GpuMatrix,
    pub ffn_up: GpuMatrix,
    pub ffn_down: GpuMatrix,
    pub ffn_post_norm: Option<GpuVector>,
}

/// A model whose weights live on the GPU.
pub struct GpuModel {
    pub ctx: Arc<GpuContext>,
    pub config: ModelConfig,
    pub tok_embd: GpuMatrix,
    /// `None` when the output head is tied to `tok_embd`.
    output: Option<GpuMatrix>,
    pub output_norm: GpuVector,
    pub layers: Vec<GpuLayer>,
    /// Bytes of all weight buffers.
    pub gpu_bytes: u64,
    /// The model's pipelines, compiled once and shared by its sessions.
    pub kernels: Kernels,
    /// The memory plan checked at load.
    pub plan: MemoryPlan,
    /// RoPE frequency divisors (Llama 3, Phi-3 short) and Phi-3's long ones.
    pub rope_factors: Option<GpuVector>,
    pub rope_factors_long: Option<GpuVector>,
}

/// Where the bytes of one tensor go during the upload.
enum Dest {
    Matrix {
        chunks: Vec<(wgpu::Buffer, u64)>,
        row_bytes: u64,
    },
    Vector {
        ty: GgmlType,
        n: usize,
    },
}

impl GpuModel {
    pub fn output(&self) -> &GpuMatrix {
        self.output.as_ref().unwrap_or(&self.tok_embd)
    }

    /// Plan, check, allocate and upload. `n_ctx` and `budget` are only used to check the
    /// memory plan (sessions allocate their own KV caches).
    pub fn load(
        ctx: Arc<GpuContext>,
        header: &GgufHeader,
        source: &mut dyn ByteSource,
        control: &LoadControl,
        n_ctx: usize,
        budget: Option<u64>,
    ) -> Result<GpuModel, Error> {
        let config = ModelConfig::from_gguf(header)?;
        let tensors = ModelTensors::find(header, &config)?;
        let max_binding = ctx.max_binding();
        let plan = MemoryPlan::new(header, &config, n_ctx, ctx.caps.f16, max_binding)?;
        plan.check(max_binding, ctx.caps.limits.max_buffer_size, budget)?;
        for t in &header.tensors {
            if t.dims.len() >= 2 && !wisp_shaders::quant::QUANT_TYPES.contains(&t.ggml_type.name())
            {
                return Err(Error::Unsupported(format!(
                    "tensor {} has type {}, which the GPU kernels do not handle",
                    t.name, t.ggml_type
                )));
            }
        }
        if let Some(len) = source.total_len() {
            if header.data_end() > len {
                return Err(Error::Io(format!(
                    "the model source has {len} bytes, the header needs {}",
                    header.data_end()
                )));
            }
        }

        // Every tensor the architecture uses, in file order.
        let mut needed: Vec<&TensorInfo> = vec![&tensors.tok_embd, &tensors.output_norm];
        if !tensors.tied_output {
            needed.push(&tensors.output);
        }
        for l in &tensors.layers {
            needed.extend([
                &l.attn_norm,
                &l.wq,
                &l.wk,
                &l.wv,
                &l.wo,
                &l.ffn_norm,
                &l.ffn_gate,
                &l.ffn_up,
                &l.ffn_down,
            ]);
            for t in [
                &l.bq,
                &l.bk,
                &l.bv,
                &l.q_norm,
                &l.k_norm,
                &l.attn_post_norm,
                &l.ffn_post_norm,
            ]
            .into_iter()
            .flatten()
            {
                needed.push(t);
            }
        }
        needed.extend(tensors.rope_factors.iter());
        needed.extend(tensors.rope_factors_long.iter());
        needed.sort_by_key(|t| t.offset);
        let total: u64 = needed.iter().map(|t| t.n_bytes).sum();

        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut matrices: HashMap<String, GpuMatrix> = HashMap::new();
        let mut vectors: HashMap<String, GpuVector> = HashMap::new();
        let mut done = 0u64;
        let mut since_flush = 0u64;
        for t in needed {
            if control.cancelled() {
                return Err(Error::Cancelled);
            }
            let dest = if t.dims.len() >= 2 && t.n_rows() > 1 {
                let rc = row_chunks(t, max_binding)?;
                let chunks = rc
                    .chunks
                    .iter()
                    .map(|&(_, rows)| {
                        (
                            ctx.storage(&t.name, rows * rc.row_bytes),
                            rows * rc.row_bytes,
                        )
                    })
                    .collect();
                Dest::Matrix {
                    chunks,
                    row_bytes: rc.row_bytes,
                }
            } else {
                Dest::Vector {
                    ty: t.ggml_type,
                    n: t.n_elements as usize,
                }
            };
            match dest {
                Dest::Matrix { chunks, row_bytes } => {
                    let mut writer = ChunkWriter::new(&ctx, &chunks);
                    source.read_range(t.offset, t.offset + t.n_bytes, &mut |bytes| {
                        writer.push(bytes);
                        done += bytes.len() as u64;
                        since_flush += bytes.len() as u64;
                        if since_flush > 64 << 20 {
                            // Hand the staged copies to the GPU so staging memory stays bounded.
                            ctx.queue.submit([]);
                            since_flush = 0;
                        }
                        control.progress(done, total);
                        if control.cancelled() {
                            Err(Error::Cancelled)
                        } else {
                            Ok(())
                        }
                    })?;
                    writer.finish();
                    let mut row_start = 0;
                    let chunks = chunks
                        .into_iter()
                        .map(|(buffer, bytes)| {
                            let rows = bytes / row_bytes;
                            let c = WeightChunk {
                                buffer,
                                row_start,
                                rows,
                            };
                            row_start += rows;
                            c
                        })
                        .collect();
                    matrices.insert(
                        t.name.clone(),
                        GpuMatrix {
                            name: t.name.clone(),
                            ty: t.ggml_type,
                            rows: t.n_rows(),
                            cols: t.row_len(),
                            chunks,
                        },
                    );
                }
                Dest::Vector { ty, n } => {
                    let mut raw = Vec::with_capacity(t.n_bytes as usize);
                    source.read_range(t.offset, t.offset + t.n_bytes, &mut |bytes| {
                        raw.extend_from_slice(bytes);
                        Ok(())
                    })?;
                    done += t.n_bytes;
                    control.progress(done, total);
                    let mut values = vec![0f32; n];
                    dequantize(ty, &raw, &mut values)?;
                    vectors.insert(
                        t.name.clone(),
                        ctx.storage_init(&t.name, &crate::gpu::kernel::f32_bytes(&values)),
                    );
                }
            }
        }
        ctx.queue.submit([]);
        if let Some(e) = pollster_scope(scope) {
            return Err(Error::Gpu(format!(
                "out of GPU memory while uploading the model: {e}"
            )));
        }
        ctx.check()?;

        let mut take_m = |t: &TensorInfo| {
            matrices
                .remove(&t.name)
                .ok_or_else(|| Error::InvalidModel(format!("tensor {} was not uploaded", t.name)))
        };
        let tok_embd = take_m(&tensors.tok_embd)?;
        let output = if tensors.tied_output {
            None
        } else {
            Some(take_m(&tensors.output)?)
        };
        let mut layers = Vec::with_capacity(tensors.layers.len());
        for l in &tensors.layers {
            let mut v = |t: &TensorInfo| {
                vectors.remove(&t.name).ok_or_else(|| {
                    Error::InvalidModel(format!("tensor {} was not uploaded", t.name))
                })
            };
            let attn_norm = v(&l.attn_norm)?;
            let ffn_norm = v(&l.ffn_norm)?;
            let mut ov = |t: &Option<TensorInfo>| t.as_ref().map(&mut v).transpose();
            let (bq, bk, bv) = (ov(&l.bq)?, ov(&l.bk)?, ov(&l.bv)?);
            let (q_norm, k_norm) = (ov(&l.q_norm)?, ov(&l.k_norm)?);
            let (attn_post_norm, ffn_post_norm) = (ov(&l.attn_post_norm)?, ov(&l.ffn_post_norm)?);
            layers.push(GpuLayer {
                attn_norm,
                wq: take_m(&l.wq)?,
                wk: take_m(&l.wk)?,
                wv: take_m(&l.wv)?,
                bq,
                bk,
                bv,
                wo: take_m(&l.wo)?,
                q_norm,
                k_norm,
                attn_post_norm,
                ffn_norm,
                ffn_gate: take_m(&l.ffn_gate)?,
                ffn_up: take_m(&l.ffn_up)?,
                ffn_down: take_m(&l.ffn_down)?,
                ffn_post_norm,
            });
        }
        let output_norm = vectors
            .remove(&tensors.output_norm.name)
            .ok_or_else(|| Error::InvalidModel("output_norm.weight was not uploaded".into()))?;
        let mut take_v = |t: &Option<TensorInfo>| {
            t.as_ref()
                .map(|t| {
                    vectors.remove(&t.name).ok_or_else(|| {
                        Error::InvalidModel(format!("tensor {} was not uploaded", t.name))
                    })
                })
                .transpose()
        };
        let rope_factors = take_v(&tensors.rope_factors)?;
        let rope_factors_long = take_v(&tensors.rope_factors_long)?;
        let kernels = Kernels::new(ctx.caps.f16);
        Ok(GpuModel {
            ctx,
            config,
            tok_embd,
            output,
            output_norm,
            layers,
            gpu_bytes: plan.weights_bytes,
            kernels,
            plan,
            rope_factors,
            rope_factors_long,
        })
    }
}

/// Streams one tensor's bytes into its chunk buffers with 4-byte-aligned writes
/// (`write_buffer` needs aligned offsets and sizes; chunk boundaries need not be).
struct ChunkWriter<'a> {
    ctx: &'a GpuContext,
    chunks: &'a [(wgpu::Buffer, u64)],
    index: usize,
    /// Bytes of the current chunk already written.
    written: u64,
    pending: Vec<u8>,
}

const WRITE_PIECE: usize = 4 << 20;

impl<'a> ChunkWriter<'a> {
    fn new(ctx: &'a GpuContext, chunks: &'a [(wgpu::Buffer, u64)]) -> Self {
        ChunkWriter {
            ctx,
            chunks,
            index: 0,
            written: 0,
            pending: Vec::with_capacity(WRITE_PIECE),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.index < self.chunks.len() {
            let chunk_len = self.chunks[self.index].1;
            let room = (chunk_len - self.written - self.pending.len() as u64) as usize;
            let take = room.min(bytes.len()).min(WRITE_PIECE - self.pending.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            let chunk_full = self.written + self.pending.len() as u64 == chunk_len;
            if chunk_full || self.pending.len() == WRITE_PIECE {
                self.flush(chunk_full);
            }
        }
    }

    /// Write the pending bytes (all of them when the chunk is complete, else the
    /// 4-byte-aligned prefix).
    fn flush(&mut self, chunk_complete: bool) {
        let (buffer, _) = &self.chunks[self.index];
        let n = if chunk_complete {
            self.pending.len()
        } else {
            self.pending.len() / 4 * 4
        };
        if n > 0 {
            let mut piece = self.pending[..n].to_vec();
            piece.resize(n.div_ceil(4) * 4, 0);
            self.ctx.queue.write_buffer(buffer, self.written, &piece);
            self.written += n as u64;
            self.pending.drain(..n);
        }
        if chunk_complete {
            self.index += 1;
            self.written = 0;
        }
    }

    fn finish(mut self) {
        if !self.pending.is_empty() && self.index < self.chunks.len() {
            self.flush(true);
        }
    }
}

fn pollster_scope(scope: wgpu::ErrorScopeGuard) -> Option<wgpu::Error> {
    #[cfg(feature = "native")]
    {
        pollster::block_on(scope.pop())
    }
    #[cfg(not(feature = "native"))]
    {
        drop(scope);
        None
    }
}
