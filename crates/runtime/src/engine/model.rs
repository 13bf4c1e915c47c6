//! A model on the GPU: weights uploaded once, still quantized, in GGUF block layout,
//! each matrix split into row chunks that fit one storage binding; small vectors (norms,
//! biases) as f32. Shared (`Arc`) by any number of sessions. Matrices that read the same
//! input and share a type (a layer's gate and up; its Q, K and V) are stacked into one
//! matrix as they arrive, so one dispatch computes them ([`FfnInput`], [`AttnInput`]).
//!
//! Why GGUF block layout rather than a repacked one: the kernels read blocks as u32
//! words and dequantize in registers, so the upload is a straight copy of the file's
//! bytes (streamable from a fetch body with no CPU work), and one kernel family per type
//! serves both decode and prefill. On native CPU-backed devices the bytes go, unchanged
//! and in order, into textures rather than buffers (`WeightStore::Texture`; why in
//! `wisp_shaders::quant`): each chunk is staged in a buffer and copied.

use super::kernels::Kernels;
use super::plan::{row_chunks, MemoryPlan};
#[cfg(feature = "native")]
use super::source::{ByteSource, LoadControl};
use crate::gguf::{GgufHeader, TensorInfo};
use crate::gpu::kernel::padded_weights_len;
use crate::gpu::GpuContext;
use crate::model::{ModelConfig, ModelTensors};
use crate::quant::{dequantize, GgmlType};
use crate::Error;
use std::collections::HashMap;
use std::sync::Arc;

/// One bindable piece of a weight matrix: whole rows `[row_start, row_start + rows)`.
pub struct WeightChunk {
    pub store: WeightStore,
    pub row_start: u64,
    pub rows: u64,
}

/// Where a chunk's bytes live: a storage buffer, or on devices with
/// `Capabilities::texture_weights` the same bytes as the texels of a texture.
pub enum WeightStore {
    Buffer(wgpu::Buffer),
    Texture(wgpu::Texture, wgpu::TextureView),
}

impl WeightStore {
    /// The chunk as binding 0 of its kernels.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        match self {
            WeightStore::Buffer(b) => b.as_entire_binding(),
            WeightStore::Texture(_, v) => wgpu::BindingResource::TextureView(v),
        }
    }

    /// Bytes the store occupies (a texture: whole rows of texels).
    pub fn size(&self) -> u64 {
        match self {
            WeightStore::Buffer(b) => b.size(),
            WeightStore::Texture(t, _) => {
                let e = t.size();
                e.width as u64 * e.height as u64 * 16
            }
        }
    }
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
    pub qkv: AttnInput,
    /// Biases of Q, K and V apart (with [`AttnInput::Separate`]).
    pub bq: Option<GpuVector>,
    pub bk: Option<GpuVector>,
    pub bv: Option<GpuVector>,
    /// The same as one vector `[bq | bk | bv]` (absent ones zero), with
    /// [`AttnInput::Stacked`].
    pub bqkv: Option<GpuVector>,
    pub wo: GpuMatrix,
    pub q_norm: Option<GpuVector>,
    pub k_norm: Option<GpuVector>,
    pub attn_post_norm: Option<GpuVector>,
    pub ffn_norm: GpuVector,
    pub ffn_in: FfnInput,
    pub ffn_down: GpuMatrix,
    pub ffn_post_norm: Option<GpuVector>,
}

/// The feed-forward block's input matrices: gate and up apart, or stacked into one matrix
/// (rows `0..ff` the gate's, `ff..2ff` the up's) so one dispatch computes both. Stacked
/// when both have the same type and shape and together fit one weight chunk.
pub enum FfnInput {
    Separate { gate: GpuMatrix, up: GpuMatrix },
    Stacked(GpuMatrix),
}

impl FfnInput {
    pub fn matrices(&self) -> Vec<&GpuMatrix> {
        match self {
            FfnInput::Separate { gate, up } => vec![gate, up],
            FfnInput::Stacked(m) => vec![m],
        }
    }
}

/// The attention block's input matrices: Q, K and V apart, or stacked into one matrix
/// (rows `[q | k | v]`) so one dispatch computes all three (then one split pass hands
/// them out, adding the biases). Stacked when all three have the same type and columns and
/// together fit one weight chunk.
pub enum AttnInput {
    Separate {
        wq: GpuMatrix,
        wk: GpuMatrix,
        wv: GpuMatrix,
    },
    Stacked(GpuMatrix),
}

impl AttnInput {
    pub fn matrices(&self) -> Vec<&GpuMatrix> {
        match self {
            AttnInput::Separate { wq, wk, wv } => vec![wq, wk, wv],
            AttnInput::Stacked(m) => vec![m],
        }
    }
}

/// Tensors uploaded into one staging buffer, back to back, then one matrix.
struct Stack {
    /// The stacked matrix's name.
    name: String,
    /// Its tensors in order, with the byte each starts at.
    parts: Vec<(String, u64)>,
    /// Bytes of all of them.
    bytes: u64,
    buffer: Option<wgpu::Buffer>,
    /// Parts complete.
    done: usize,
}

impl Stack {
    /// A stack of `parts` if they can share one matrix: same type and columns, each
    /// starting at a 4-byte multiple (as `write_buffer` needs), within one chunk.
    fn of(name: String, parts: &[&TensorInfo], max_chunk: u64) -> Option<Stack> {
        let first = parts.first()?;
        let mut at = 0;
        let mut offsets = Vec::new();
        for t in parts {
            let fits = t.ggml_type == first.ggml_type
                && t.dims.len() >= 2
                && t.dims[0] == first.dims[0]
                && t.n_rows() > 1
                && at % 4 == 0;
            if !fits {
                return None;
            }
            offsets.push((t.name.clone(), at));
            at += t.n_bytes;
        }
        (at <= max_chunk).then_some(Stack {
            name,
            parts: offsets,
            bytes: at,
            buffer: None,
            done: 0,
        })
    }
}

/// `[bq | bk | bv]` as one vector (absent ones zero; None when all are), copied on the GPU.
fn concat_biases(
    ctx: &GpuContext,
    biases: [&Option<GpuVector>; 3],
    widths: [u64; 3],
) -> Option<GpuVector> {
    if biases.iter().all(|b| b.is_none()) {
        return None;
    }
    let out = ctx.storage("bqkv", 4 * widths.iter().sum::<u64>());
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let mut at = 0;
    for (b, w) in biases.into_iter().zip(widths) {
        if let Some(b) = b {
            enc.copy_buffer_to_buffer(b, 0, &out, 4 * at, 4 * w);
        }
        at += w;
    }
    ctx.queue.submit([enc.finish()]);
    Some(out)
}

/// The name of a layer's stacked Q/K/V matrix (never a tensor name: it has a '+').
fn stacked_qkv_name(wq: &str) -> String {
    format!("{wq}+kv")
}

/// Remove the uploaded matrix of tensor `t`.
fn take_matrix(
    matrices: &mut HashMap<String, GpuMatrix>,
    t: &TensorInfo,
) -> Result<GpuMatrix, Error> {
    matrices
        .remove(&t.name)
        .ok_or_else(|| Error::InvalidModel(format!("tensor {} was not uploaded", t.name)))
}

/// The name of a layer's stacked gate/up matrix (never a tensor name: it has a '+').
fn stacked_name(gate: &str) -> String {
    format!("{gate}+up")
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
    /// Chunks as (buffer, bytes); `stack`: the tensor is one part of `stacks[i]`, whose one
    /// buffer it fills from byte `start`.
    Matrix {
        chunks: Vec<(wgpu::Buffer, u64)>,
        row_bytes: u64,
        stack: Option<usize>,
        start: u64,
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

    /// Plan, check, allocate and upload from a blocking source (native).
    /// `n_ctx` and `budget` are only used to check the memory plan (sessions allocate
    /// their own KV caches).
    #[cfg(feature = "native")]
    pub fn load(
        ctx: Arc<GpuContext>,
        header: &GgufHeader,
        source: &mut dyn ByteSource,
        control: &LoadControl,
        n_ctx: usize,
        budget: Option<u64>,
    ) -> Result<GpuModel, Error> {
        let mut upload = ModelUpload::begin(ctx, header, n_ctx, budget)?;
        if let Some(len) = source.total_len() {
            upload.check_source_len(len)?;
        }
        for (start, end) in upload.ranges() {
            source.read_range(start, end, &mut |bytes| {
                upload.push(bytes)?;
                control.progress(upload.done, upload.total);
                if control.cancelled() {
                    Err(Error::Cancelled)
                } else {
                    Ok(())
                }
            })?;
        }
        crate::gpu::wait::block_on(upload.finish())
    }
}

/// Bytes on their way to the GPU: a slice natively; in the browser a JS array that is
/// written to the GPU without being copied into wasm memory.
pub trait UploadBytes {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Append bytes `[start, end)` to `out`.
    fn copy_to(&self, start: usize, end: usize, out: &mut Vec<u8>);
    /// Write bytes `[start, end)` (a multiple of 4 long) at `offset` of `buffer`.
    fn write_to(
        &self,
        queue: &wgpu::Queue,
        buffer: &wgpu::Buffer,
        offset: u64,
        start: usize,
        end: usize,
    );
}

impl UploadBytes for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn copy_to(&self, start: usize, end: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self[start..end]);
    }
    fn write_to(
        &self,
        queue: &wgpu::Queue,
        buffer: &wgpu::Buffer,
        offset: u64,
        start: usize,
        end: usize,
    ) {
        queue.write_buffer(buffer, offset, &self[start..end]);
    }
}

/// Where the bytes of one tensor go.
struct Pending {
    tensor: TensorInfo,
    dest: Dest,
}

/// A model upload in progress: the plan is checked and the buffers allocated; the
/// caller reads [`ModelUpload::ranges`] of the file in order, from wherever the file
/// is, and pushes the bytes; [`ModelUpload::finish`] waits for the GPU and assembles the
/// model. Only small vectors (norms, biases) are copied on the CPU.
pub struct ModelUpload {
    ctx: Arc<GpuContext>,
    config: ModelConfig,
    tensors: ModelTensors,
    plan: MemoryPlan,
    data_end: u64,
    /// Every tensor the architecture uses, in file order.
    order: Vec<TensorInfo>,
    /// Index in `order` of the tensor being received, and its bytes received so far.
    current: usize,
    received: u64,
    dest: Option<Pending>,
    writer: ChunkWriter,
    stacks: Vec<Stack>,
    /// Tensor name → its stack in `stacks`.
    stack_of: HashMap<String, usize>,
    matrices: HashMap<String, GpuMatrix>,
    vectors: HashMap<String, GpuVector>,
    raw: Vec<u8>,
    since_flush: u64,
    scope: Option<wgpu::ErrorScopeGuard>,
    /// Bytes received and bytes to receive.
    pub done: u64,
    pub total: u64,
}

impl ModelUpload {
    /// Read the architecture, check the memory plan against the device (and `budget`)
    /// for a context of `n_ctx` tokens, and check every matrix type has a kernel.
    pub fn begin(
        ctx: Arc<GpuContext>,
        header: &GgufHeader,
        n_ctx: usize,
        budget: Option<u64>,
    ) -> Result<ModelUpload, Error> {
        ctx.check_alive()?;
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
        let order: Vec<TensorInfo> = needed.into_iter().cloned().collect();
        let total: u64 = order.iter().map(|t| t.n_bytes).sum();
        // Gate and up, and Q, K and V, stacked where they match and fit one chunk.
        let mut stacks = Vec::new();
        let mut stack_of = HashMap::new();
        let max_chunk = ctx.max_weight_chunk();
        for l in &tensors.layers {
            // The paired GLU needs gate and up of one shape.
            let ffn_pair = l.ffn_gate.dims == l.ffn_up.dims;
            let candidates = [
                Stack::of(
                    stacked_name(&l.ffn_gate.name),
                    &[&l.ffn_gate, &l.ffn_up],
                    max_chunk,
                )
                .filter(|_| ffn_pair),
                Stack::of(
                    stacked_qkv_name(&l.wq.name),
                    &[&l.wq, &l.wk, &l.wv],
                    max_chunk,
                ),
            ];
            for st in candidates.into_iter().flatten() {
                for (name, _) in &st.parts {
                    stack_of.insert(name.clone(), stacks.len());
                }
                stacks.push(st);
            }
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        Ok(ModelUpload {
            ctx,
            config,
            tensors,
            plan,
            data_end: header.data_end(),
            order,
            current: 0,
            received: 0,
            dest: None,
            writer: ChunkWriter::default(),
            stacks,
            stack_of,
            matrices: HashMap::new(),
            vectors: HashMap::new(),
            raw: Vec::new(),
            since_flush: 0,
            scope: Some(scope),
            done: 0,
            total,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The checked memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// Fail early when the source is shorter than the header says.
    pub fn check_source_len(&self, len: u64) -> Result<(), Error> {
        if self.data_end > len {
            return Err(Error::Io(format!(
                "the model source has {len} bytes, the header needs {}",
                self.data_end
            )));
        }
        Ok(())
    }

    /// The file ranges to read, in order (adjacent tensors merged).
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for t in &self.order {
            let (start, end) = (t.offset, t.offset + t.n_bytes);
            match out.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => out.push((start, end)),
            }
        }
        out
    }

    /// Take the next bytes of [`ModelUpload::ranges`], in order, in pieces of any size.
    pub fn push(&mut self, bytes: &(impl UploadBytes + ?Sized)) -> Result<(), Error> {
        let mut at = 0;
        while at < bytes.len() {
            let Some(t) = self.order.get(self.current).cloned() else {
                return Err(Error::Io("more model bytes than the upload expects".into()));
            };
            if self.dest.is_none() {
                let dest = self.allocate(&t)?;
                if let Dest::Matrix { start, .. } = dest {
                    self.writer.written = start;
                }
                self.dest = Some(Pending {
                    tensor: t.clone(),
                    dest,
                });
                self.received = 0;
            }
            let n_bytes = t.n_bytes;
            let take = ((n_bytes - self.received) as usize).min(bytes.len() - at);
            let pending = self.dest.as_ref().expect("set above");
            match &pending.dest {
                Dest::Matrix { chunks, .. } => {
                    self.writer
                        .push(&self.ctx.queue, chunks, bytes, at, at + take);
                }
                Dest::Vector { .. } => bytes.copy_to(at, at + take, &mut self.raw),
            }
            at += take;
            self.received += take as u64;
            self.done += take as u64;
            self.since_flush += take as u64;
            if self.since_flush > 64 << 20 {
                // Hand the staged copies to the GPU so staging memory stays bounded.
                self.ctx.queue.submit([]);
                self.since_flush = 0;
            }
            if self.received == n_bytes {
                self.complete()?;
            }
        }
        Ok(())
    }

    fn allocate(&mut self, t: &TensorInfo) -> Result<Dest, Error> {
        let texture = self.ctx.caps.weights_in_textures();
        if let Some(&si) = self.stack_of.get(&t.name) {
            let ctx = &self.ctx;
            let st = &mut self.stacks[si];
            let size = if texture {
                padded_weights_len(st.bytes)
            } else {
                st.bytes
            };
            let buffer = st
                .buffer
                .get_or_insert_with(|| ctx.storage(&st.name, size))
                .clone();
            let start = (st.parts.iter())
                .find(|(name, _)| *name == t.name)
                .map_or(0, |&(_, at)| at);
            return Ok(Dest::Matrix {
                chunks: vec![(buffer, start + t.n_bytes)],
                row_bytes: t.n_bytes / t.n_rows(),
                stack: Some(si),
                start,
            });
        }
        Ok(if t.dims.len() >= 2 && t.n_rows() > 1 {
            let rc = row_chunks(t, self.ctx.max_weight_chunk())?;
            // With texture weights the buffers are staging, whole texture rows long.
            let chunks = rc
                .chunks
                .iter()
                .map(|&(_, rows)| {
                    let len = rows * rc.row_bytes;
                    let size = if texture {
                        padded_weights_len(len)
                    } else {
                        len
                    };
                    (self.ctx.storage(&t.name, size), len)
                })
                .collect();
            Dest::Matrix {
                chunks,
                row_bytes: rc.row_bytes,
                stack: None,
                start: 0,
            }
        } else {
            Dest::Vector {
                ty: t.ggml_type,
                n: t.n_elements as usize,
            }
        })
    }

    /// A matrix from its filled chunk buffers: the buffers themselves, or with texture
    /// weights textures they are copied into (the buffers are dropped once the copy is
    /// submitted).
    fn matrix(
        &self,
        name: &str,
        ty: GgmlType,
        cols: u64,
        row_bytes: u64,
        chunks: Vec<(wgpu::Buffer, u64)>,
    ) -> GpuMatrix {
        let mut copies = self.ctx.device.create_command_encoder(&Default::default());
        let mut row_start = 0;
        let chunks: Vec<WeightChunk> = chunks
            .into_iter()
            .map(|(buffer, bytes)| {
                let rows = bytes / row_bytes;
                let store = if self.ctx.caps.weights_in_textures() {
                    let texture = self.ctx.weights_texture(name, bytes);
                    self.ctx.copy_to_weights(&mut copies, &buffer, &texture);
                    let view = texture.create_view(&Default::default());
                    WeightStore::Texture(texture, view)
                } else {
                    WeightStore::Buffer(buffer)
                };
                let c = WeightChunk {
                    store,
                    row_start,
                    rows,
                };
                row_start += rows;
                c
            })
            .collect();
        if self.ctx.caps.weights_in_textures() {
            self.ctx.queue.submit([copies.finish()]);
        }
        GpuMatrix {
            name: name.to_string(),
            ty,
            rows: row_start,
            cols,
            chunks,
        }
    }

    /// The current tensor has all its bytes.
    fn complete(&mut self) -> Result<(), Error> {
        let Pending { tensor: t, dest } = self.dest.take().expect("a tensor in progress");
        self.current += 1;
        match dest {
            Dest::Matrix {
                chunks,
                row_bytes,
                stack: None,
                ..
            } => {
                self.writer.finish(&self.ctx.queue, &chunks);
                let m = self.matrix(&t.name, t.ggml_type, t.row_len(), row_bytes, chunks);
                self.matrices.insert(t.name.clone(), m);
            }
            Dest::Matrix {
                chunks,
                row_bytes,
                stack: Some(si),
                ..
            } => {
                self.writer.finish(&self.ctx.queue, &chunks);
                let st = &mut self.stacks[si];
                st.done += 1;
                if st.done == st.parts.len() {
                    let name = st.name.clone();
                    let whole = st.buffer.take().expect("allocated with its first part");
                    let chunks = vec![(whole, st.bytes)];
                    let m = self.matrix(&name, t.ggml_type, t.row_len(), row_bytes, chunks);
                    self.matrices.insert(name, m);
                }
            }
            Dest::Vector { ty, n } => {
                let mut values = vec![0f32; n];
                dequantize(ty, &self.raw, &mut values)?;
                self.raw.clear();
                self.vectors.insert(
                    t.name.clone(),
                    self.ctx
                        .storage_init(&t.name, &crate::gpu::kernel::f32_bytes(&values)),
                );
            }
        }
        Ok(())
    }

    /// Wait for the uploads and assemble the model.
    pub async fn finish(mut self) -> Result<GpuModel, Error> {
        if self.current < self.order.len() {
            return Err(Error::Io(format!(
                "the model data ended early: {} of {} bytes arrived",
                self.done, self.total
            )));
        }
        let ctx = Arc::clone(&self.ctx);
        ctx.queue.submit([]);
        if let Some(scope) = self.scope.take() {
            if let Some(e) = scope.pop().await {
                return Err(Error::Gpu(format!(
                    "out of GPU memory while uploading the model: {e}"
                )));
            }
        }
        ctx.check()?;
        let tensors = &self.tensors;
        let matrices = &mut self.matrices;
        let vectors = &mut self.vectors;
        let tok_embd = take_matrix(matrices, &tensors.tok_embd)?;
        let output = if tensors.tied_output {
            None
        } else {
            Some(take_matrix(matrices, &tensors.output)?)
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
            let (qkv, bqkv) = match matrices.remove(&stacked_qkv_name(&l.wq.name)) {
                Some(m) => {
                    let widths = [l.wq.n_rows(), l.wk.n_rows(), l.wv.n_rows()];
                    let bqkv = concat_biases(&ctx, [&bq, &bk, &bv], widths);
                    (AttnInput::Stacked(m), bqkv)
                }
                None => (
                    AttnInput::Separate {
                        wq: take_matrix(matrices, &l.wq)?,
                        wk: take_matrix(matrices, &l.wk)?,
                        wv: take_matrix(matrices, &l.wv)?,
                    },
                    None,
                ),
            };
            layers.push(GpuLayer {
                attn_norm,
                qkv,
                bq,
                bk,
                bv,
                bqkv,
                wo: take_matrix(matrices, &l.wo)?,
                q_norm,
                k_norm,
                attn_post_norm,
                ffn_norm,
                ffn_in: match matrices.remove(&stacked_name(&l.ffn_gate.name)) {
                    Some(m) => FfnInput::Stacked(m),
                    None => FfnInput::Separate {
                        gate: take_matrix(matrices, &l.ffn_gate)?,
                        up: take_matrix(matrices, &l.ffn_up)?,
                    },
                },
                ffn_down: take_matrix(matrices, &l.ffn_down)?,
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
        let kernels = Kernels::new(ctx.caps.f16, ctx.caps.mat_layout);
        Ok(GpuModel {
            ctx,
            config: self.config,
            tok_embd,
            output,
            output_norm,
            layers,
            gpu_bytes: self.plan.weights_bytes,
            kernels,
            plan: self.plan,
            rope_factors,
            rope_factors_long,
        })
    }
}

/// Streams one tensor's bytes into its chunk buffers with 4-byte-aligned writes
/// (`write_buffer` needs aligned offsets and sizes; neither incoming pieces nor chunk
/// boundaries need be). Aligned runs are written straight from the incoming bytes; only
/// the up-to-3 bytes that straddle a piece boundary are copied here.
#[derive(Default)]
struct ChunkWriter {
    index: usize,
    /// Bytes of the current chunk already written.
    written: u64,
    /// Bytes received for the current chunk but not yet written (fewer than 4).
    carry: Vec<u8>,
}

impl ChunkWriter {
    fn push(
        &mut self,
        queue: &wgpu::Queue,
        chunks: &[(wgpu::Buffer, u64)],
        bytes: &(impl UploadBytes + ?Sized),
        mut start: usize,
        end: usize,
    ) {
        while start < end && self.index < chunks.len() {
            let (buffer, chunk_len) = &chunks[self.index];
            let room = (chunk_len - self.written - self.carry.len() as u64) as usize;
            let take = room.min(end - start);
            let mut run = (start, start + take);
            if !self.carry.is_empty() {
                // Complete the carried word first.
                let fill = (4 - self.carry.len()).min(take);
                bytes.copy_to(run.0, run.0 + fill, &mut self.carry);
                run.0 += fill;
                if self.carry.len() == 4 {
                    queue.write_buffer(buffer, self.written, &self.carry);
                    self.written += 4;
                    self.carry.clear();
                }
            }
            if self.carry.is_empty() {
                let aligned = (run.1 - run.0) / 4 * 4;
                if aligned > 0 {
                    bytes.write_to(queue, buffer, self.written, run.0, run.0 + aligned);
                    self.written += aligned as u64;
                }
                bytes.copy_to(run.0 + aligned, run.1, &mut self.carry);
            }
            start += take;
            if self.written + self.carry.len() as u64 == *chunk_len {
                self.close_chunk(queue, chunks);
            }
        }
    }

    /// The current chunk is complete: write its last partial word, zero-padded.
    fn close_chunk(&mut self, queue: &wgpu::Queue, chunks: &[(wgpu::Buffer, u64)]) {
        if !self.carry.is_empty() {
            self.carry.resize(4, 0);
            queue.write_buffer(&chunks[self.index].0, self.written, &self.carry);
            self.carry.clear();
        }
        self.index += 1;
        self.written = 0;
    }

    /// The tensor is complete: reset for the next one.
    fn finish(&mut self, queue: &wgpu::Queue, chunks: &[(wgpu::Buffer, u64)]) {
        if !self.carry.is_empty() && self.index < chunks.len() {
            self.close_chunk(queue, chunks);
        }
        *self = ChunkWriter::default();
    }
}
