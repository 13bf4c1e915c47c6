//! A session: one sequence's KV cache and activations on the GPU, and the recorded
//! graphs that evaluate tokens against a shared [`GpuModel`].
//!
//! A decode step is one submission: the token id and positions are written, every layer,
//! the output head and the sampler kernel (argmax or top-k) are encoded into one compute
//! pass, and only the chosen token id (or the k candidates) is copied out and mapped.

use super::graph::{Graph, Params, StepArgs};
use super::kernels::{fields, mat_params, Field};
use super::model::{AttnInput, FfnInput, GpuMatrix, GpuModel};
use super::plan::{logits_rows, MAX_BATCH};
use super::profile::WeightBytes;
#[cfg(feature = "native")]
use crate::generate::Forward;
use crate::gpu::{GpuContext, Kernel};
use crate::model::Logits;
use crate::sampling::Sampler;
use crate::Error;
use std::sync::Arc;
use wisp_shaders::ops;

/// Work done by a session, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub submissions: u64,
    pub dispatches: u64,
    /// Bytes mapped for reading on the CPU.
    pub bytes_read_back: u64,
    /// Weight bytes bound by the recorded mat-vec / mat-mul dispatches (each matrix once
    /// per graph run) and embedding lookups (one row per token); a decode token adds
    /// [`WeightBytes::per_token`].
    pub weight_bytes: u64,
}

/// How many candidates the GPU sampler reads back for non-greedy sampling.
pub const TOP_K_CANDIDATES: usize = 64;

struct Buffers {
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    /// Rows [q | k | v] of a stacked Q/K/V mat-vec.
    qkv: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    attn: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    tokens: wgpu::Buffer,
    logits: wgpu::Buffer,
    picked_argmax: wgpu::Buffer,
    picked_top_k: wgpu::Buffer,
    readback: wgpu::Buffer,
    k_cache: Vec<wgpu::Buffer>,
    v_cache: Vec<wgpu::Buffer>,
    attn_scratch: wgpu::Buffer,
}

/// A sequence evaluated on the GPU.
pub struct GpuSession {
    model: Arc<GpuModel>,
    n_ctx: usize,
    tokens: Vec<u32>,
    bufs: Buffers,
    /// Layers for one token at a time (mat-vec kernels).
    decode: Graph,
    /// Layers for a batch of tokens (tiled mat-mul kernels).
    prefill: Graph,
    /// Final norm + output head for the last position into `logits`.
    head_last: Graph,
    argmax: Graph,
    top_k: Graph,
    /// Final norm + output head for `logits_rows` positions at a time.
    head_all: Graph,
    logits_rows: usize,
    weights: WeightBytes,
    pub counters: Counters,
}

fn f32s(n: usize) -> u64 {
    (n as u64) * 4
}

impl GpuSession {
    /// A session with room for `n_ctx` tokens (blocking; native only).
    #[cfg(feature = "native")]
    pub fn new(model: Arc<GpuModel>, n_ctx: usize) -> Result<GpuSession, Error> {
        crate::gpu::wait::block_on(Self::create(model, n_ctx))
    }

    /// A session with room for `n_ctx` tokens.
    pub async fn create(model: Arc<GpuModel>, n_ctx: usize) -> Result<GpuSession, Error> {
        let ctx = Arc::clone(&model.ctx);
        ctx.check_alive()?;
        let cfg = &model.config;
        let b = MAX_BATCH;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let logits_rows = logits_rows(cfg.n_vocab, ctx.max_binding());
        let stacked = (model.layers.iter()).any(|l| matches!(l.ffn_in, FfnInput::Stacked(_)));
        let separate = (model.layers.iter()).any(|l| matches!(l.ffn_in, FfnInput::Separate { .. }));
        let qkv_stacked = (model.layers.iter()).any(|l| matches!(l.qkv, AttnInput::Stacked(_)));
        let qkv_width = cfg.q_dim() + cfg.k_dim() + cfg.v_dim();
        let bufs = Buffers {
            x: ctx.storage("x", f32s(b * cfg.n_embd)),
            h: ctx.storage("h", f32s(b * cfg.n_embd)),
            qkv: ctx.storage("qkv", f32s(if qkv_stacked { b * qkv_width } else { 1 })),
            q: ctx.storage("q", f32s(b * cfg.q_dim())),
            k: ctx.storage("k", f32s(b * cfg.k_dim())),
            v: ctx.storage("v", f32s(b * cfg.v_dim())),
            attn: ctx.storage("attn", f32s(b * cfg.n_head * cfg.head_dim_v)),
            // Stacked gate/up matrices write [gate | up] rows into `gate`.
            gate: ctx.storage("gate", f32s(b * cfg.n_ff * if stacked { 2 } else { 1 })),
            up: ctx.storage("up", f32s(if separate { b * cfg.n_ff } else { 1 })),
            tokens: ctx.storage("tokens", f32s(b)),
            logits: ctx.storage("logits", f32s(logits_rows * cfg.n_vocab)),
            picked_argmax: ctx.storage(
                "picked_argmax",
                4 * ops::argmax_out_words(cfg.n_vocab as u32) as u64,
            ),
            picked_top_k: ctx.storage(
                "picked_top_k",
                4 * ops::top_k_out_words(
                    TOP_K_CANDIDATES as u32,
                    ops::top_k_n_groups(cfg.n_vocab as u32),
                ) as u64,
            ),
            readback: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: (TOP_K_CANDIDATES * 8) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            k_cache: (0..cfg.n_layer)
                .map(|_| {
                    ctx.storage(
                        "k_cache",
                        ops::kv_cache_bytes(n_ctx as u32, cfg.k_dim() as u32),
                    )
                })
                .collect(),
            v_cache: (0..cfg.n_layer)
                .map(|_| {
                    ctx.storage(
                        "v_cache",
                        ops::kv_cache_bytes(n_ctx as u32, cfg.v_dim() as u32),
                    )
                })
                .collect(),
            attn_scratch: ctx.storage(
                "attn_scratch",
                4 * ops::attention_scratch_max_f32s(cfg.head_dim_v as u32),
            ),
        };
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!(
                "out of GPU memory for a session of {n_ctx} tokens: {e}"
            )));
        }
        let decode = build_layers(&model, &bufs, false, n_ctx)?;
        let prefill = build_layers(&model, &bufs, true, n_ctx)?;
        let head_last = build_head(&model, &bufs, false)?;
        let head_all = build_head(&model, &bufs, true)?;
        let (argmax, top_k) = build_samplers(&model, &bufs)?;
        ctx.check()?;
        Ok(GpuSession {
            weights: WeightBytes::of(&model),
            model,
            n_ctx,
            tokens: Vec::new(),
            bufs,
            decode,
            prefill,
            head_last,
            argmax,
            top_k,
            head_all,
            logits_rows,
            counters: Counters::default(),
        })
    }

    pub fn model(&self) -> &Arc<GpuModel> {
        &self.model
    }

    fn ctx(&self) -> &GpuContext {
        &self.model.ctx
    }

    /// Context size the KV cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Tokens currently in the KV cache.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forget everything after the first `n` cached tokens.
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), Error> {
        if tokens.is_empty() {
            return Err(Error::InvalidRequest("no tokens to evaluate".into()));
        }
        if self.tokens.len() + tokens.len() > self.n_ctx {
            return Err(Error::ContextFull {
                needed: self.tokens.len() + tokens.len(),
                n_ctx: self.n_ctx,
            });
        }
        let n_vocab = self.model.config.n_vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::InvalidRequest(format!(
                "token id {bad} is outside the vocabulary (size {n_vocab})"
            )));
        }
        Ok(())
    }

    /// Encode the layers for `batch` (already checked) at the current position.
    fn encode_layers(&mut self, enc: &mut wgpu::CommandEncoder, batch: &[u32]) -> StepArgs {
        let args = StepArgs {
            n_tokens: batch.len() as u32,
            pos0: self.tokens.len() as u32,
        };
        let queue = &self.model.ctx.queue;
        queue.write_buffer(&self.bufs.tokens, 0, &crate::gpu::kernel::u32_bytes(batch));
        let graph = if batch.len() == 1 {
            &mut self.decode
        } else {
            &mut self.prefill
        };
        graph.write_params(queue, args);
        let mut pass = enc.begin_compute_pass(&Default::default());
        self.counters.dispatches += graph.encode(&mut pass, args) as u64;
        self.counters.weight_bytes +=
            self.weights.layers + self.weights.embd_row * batch.len() as u64;
        args
    }

    async fn submit_and_read(
        &mut self,
        enc: wgpu::CommandEncoder,
        bytes: u64,
    ) -> Result<Vec<u8>, Error> {
        let ctx = Arc::clone(&self.model.ctx);
        ctx.queue.submit([enc.finish()]);
        self.counters.submissions += 1;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let slice = self.bufs.readback.slice(..bytes);
        ctx.map_read(slice).await?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("readback map failed: {e:?}")))?
            .to_vec();
        self.bufs.readback.unmap();
        self.counters.bytes_read_back += bytes;
        ctx.check()?;
        Ok(data)
    }

    /// Run all but the last batch of `tokens` through the layers (one submission per
    /// batch), leaving the last batch for the caller to finish in its own submission.
    async fn prefill_prefix<'t>(&mut self, tokens: &'t [u32]) -> Result<&'t [u32], Error> {
        self.check_tokens(tokens)?;
        let mut rest = tokens;
        while rest.len() > MAX_BATCH {
            let (batch, tail) = rest.split_at(MAX_BATCH);
            let mut enc = self
                .ctx()
                .device
                .create_command_encoder(&Default::default());
            self.encode_layers(&mut enc, batch);
            self.submit_and_read(enc, 0).await?;
            self.tokens.extend_from_slice(batch);
            rest = tail;
        }
        Ok(rest)
    }

    /// Evaluate `tokens` into the KV cache without computing logits, and wait until the
    /// GPU has finished: the cache then counts only positions really written, and a
    /// caller evaluating a long prompt chunk by chunk can stop between chunks.
    pub async fn prefill_async(&mut self, tokens: &[u32]) -> Result<(), Error> {
        let last = self.prefill_prefix(tokens).await?;
        let mut enc = self
            .ctx()
            .device
            .create_command_encoder(&Default::default());
        self.encode_layers(&mut enc, last);
        self.submit_and_read(enc, 0).await?;
        self.ctx().wait_submitted().await?;
        self.tokens.extend_from_slice(last);
        Ok(())
    }

    /// Evaluate `tokens` and pick the next token on the GPU: argmax when greedy (4 bytes
    /// read back), else the top candidates sampled on the CPU.
    pub async fn forward_sample_async(
        &mut self,
        tokens: &[u32],
        sampler: &mut Sampler,
        history: &[u32],
    ) -> Result<u32, Error> {
        let params = sampler.params().clone();
        let last = self.prefill_prefix(tokens).await?;
        let mut enc = self
            .ctx()
            .device
            .create_command_encoder(&Default::default());
        let args = self.encode_layers(&mut enc, last);
        let head_args = StepArgs {
            n_tokens: 1,
            pos0: args.n_tokens - 1,
        };
        let queue = &self.model.ctx.queue;
        self.head_last.write_params(queue, head_args);
        let use_argmax = params.is_greedy() && !sampler_has_penalties(sampler);
        let full_logits =
            !params.is_greedy() && (params.top_k == 0 || params.top_k > TOP_K_CANDIDATES);
        let sampler_graph = if full_logits {
            None
        } else if use_argmax {
            Some(&mut self.argmax)
        } else {
            Some(&mut self.top_k)
        };
        let read_bytes = {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.counters.dispatches += self.head_last.encode(&mut pass, head_args) as u64;
            self.counters.weight_bytes += self.weights.head;
            match sampler_graph {
                Some(g) => {
                    g.write_params(queue, head_args);
                    self.counters.dispatches += g.encode(&mut pass, head_args) as u64;
                    if use_argmax {
                        8
                    } else {
                        (TOP_K_CANDIDATES * 8) as u64
                    }
                }
                None => 0,
            }
        };
        if read_bytes > 0 {
            let picked = if read_bytes == 8 {
                &self.bufs.picked_argmax
            } else {
                &self.bufs.picked_top_k
            };
            enc.copy_buffer_to_buffer(picked, 0, &self.bufs.readback, 0, read_bytes);
        }
        let data = self.submit_and_read(enc, read_bytes).await?;
        self.tokens.extend_from_slice(last);
        if read_bytes == 8 {
            return Ok(u32::from_le_bytes(data[..4].try_into().expect("4 bytes")));
        }
        if read_bytes > 0 {
            let cands: Vec<(u32, f32)> = data
                .chunks_exact(8)
                .map(|c| {
                    (
                        u32::from_le_bytes(c[..4].try_into().expect("4")),
                        f32::from_bits(u32::from_le_bytes(c[4..].try_into().expect("4"))),
                    )
                })
                .collect();
            return sampler.sample_candidates(cands, history);
        }
        let logits = self.read_logits(1).await?;
        sampler.sample(&logits, history)
    }

    /// Evaluate one decode token (`token` at the next position, greedy head and argmax)
    /// with every dispatch timed on its own: (kernel name, seconds) in dispatch order.
    /// Needs a device opened with timestamps (`DeviceOptions::timestamps`). The token is
    /// appended to the cache as a normal decode step would.
    pub async fn profile_decode_async(&mut self, token: u32) -> Result<Vec<(String, f64)>, Error> {
        let ctx = Arc::clone(&self.model.ctx);
        if !ctx.caps.timestamps {
            return Err(Error::Unsupported(
                "profiling needs a device opened with timestamp queries".into(),
            ));
        }
        self.check_tokens(&[token])?;
        // wgpu's cap on one query set; two queries per dispatch.
        const MAX_QUERIES: u32 = 4096;
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: MAX_QUERIES,
        });
        let args = StepArgs {
            n_tokens: 1,
            pos0: self.tokens.len() as u32,
        };
        let head_args = StepArgs {
            n_tokens: 1,
            pos0: 0,
        };
        let queue = &ctx.queue;
        queue.write_buffer(
            &self.bufs.tokens,
            0,
            &crate::gpu::kernel::u32_bytes(&[token]),
        );
        self.decode.write_params(queue, args);
        self.head_last.write_params(queue, head_args);
        self.argmax.write_params(queue, head_args);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let mut names = Vec::new();
        for (graph, a) in [
            (&self.decode, args),
            (&self.head_last, head_args),
            (&self.argmax, head_args),
        ] {
            let room = MAX_QUERIES / 2 - names.len() as u32;
            names.extend(graph.encode_timed(&mut enc, a, &set, 2 * names.len() as u32, room));
        }
        let n = 2 * names.len() as u64;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: 8 * n.max(1),
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        enc.resolve_query_set(&set, 0..n as u32, &resolve, 0);
        ctx.queue.submit([enc.finish()]);
        self.counters.submissions += 1;
        let bytes = ctx.read_back_range_async(&resolve, 8 * n).await?;
        self.tokens.push(token);
        let ticks: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let period_s = ctx.queue.get_timestamp_period() as f64 * 1e-9;
        Ok(names
            .into_iter()
            .zip(ticks.chunks_exact(2))
            .map(|(name, t)| (name, t[1].saturating_sub(t[0]) as f64 * period_s))
            .collect())
    }

    /// Copy `rows` positions of logits back (the caller asked for them).
    async fn read_logits(&mut self, rows: usize) -> Result<Vec<f32>, Error> {
        let ctx = Arc::clone(&self.model.ctx);
        let bytes = f32s(rows * self.model.config.n_vocab);
        let bytes_le = ctx.read_back_range_async(&self.bufs.logits, bytes).await?;
        self.counters.submissions += 1;
        self.counters.bytes_read_back += bytes;
        Ok(bytes_le
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect())
    }
}

fn sampler_has_penalties(s: &Sampler) -> bool {
    let p = s.params();
    p.repeat_last_n > 0
        && (p.repeat_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0)
}

impl GpuSession {
    /// Evaluate `tokens` after the cached ones and read back the asked-for logits.
    pub async fn forward_async(
        &mut self,
        tokens: &[u32],
        logits: Logits,
    ) -> Result<Vec<f32>, Error> {
        let n_vocab = self.model.config.n_vocab;
        match logits {
            Logits::Last => {
                let last = self.prefill_prefix(tokens).await?;
                let mut enc = self
                    .ctx()
                    .device
                    .create_command_encoder(&Default::default());
                let args = self.encode_layers(&mut enc, last);
                let head_args = StepArgs {
                    n_tokens: 1,
                    pos0: args.n_tokens - 1,
                };
                self.head_last
                    .write_params(&self.model.ctx.queue, head_args);
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    self.counters.dispatches += self.head_last.encode(&mut pass, head_args) as u64;
                    self.counters.weight_bytes += self.weights.head;
                }
                self.submit_and_read(enc, 0).await?;
                self.tokens.extend_from_slice(last);
                self.read_logits(1).await
            }
            Logits::All => {
                self.check_tokens(tokens)?;
                let mut out = Vec::with_capacity(tokens.len() * n_vocab);
                for batch in tokens.chunks(MAX_BATCH) {
                    let mut enc = self
                        .ctx()
                        .device
                        .create_command_encoder(&Default::default());
                    self.encode_layers(&mut enc, batch);
                    self.submit_and_read(enc, 0).await?;
                    self.tokens.extend_from_slice(batch);
                    let mut start = 0;
                    while start < batch.len() {
                        let rows = self.logits_rows.min(batch.len() - start);
                        let args = StepArgs {
                            n_tokens: rows as u32,
                            pos0: start as u32,
                        };
                        self.head_all.write_params(&self.model.ctx.queue, args);
                        let mut enc = self
                            .ctx()
                            .device
                            .create_command_encoder(&Default::default());
                        {
                            let mut pass = enc.begin_compute_pass(&Default::default());
                            self.counters.dispatches +=
                                self.head_all.encode(&mut pass, args) as u64;
                            self.counters.weight_bytes += self.weights.head;
                        }
                        self.submit_and_read(enc, 0).await?;
                        out.extend(self.read_logits(rows).await?);
                        start += rows;
                    }
                }
                Ok(out)
            }
        }
    }
}

#[cfg(feature = "native")]
impl Forward for GpuSession {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn cached_tokens(&self) -> &[u32] {
        &self.tokens
    }

    fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
    }

    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>, Error> {
        crate::gpu::wait::block_on(self.forward_async(tokens, logits))
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<(), Error> {
        crate::gpu::wait::block_on(self.prefill_async(tokens))
    }

    fn forward_sample(
        &mut self,
        tokens: &[u32],
        sampler: &mut Sampler,
        history: &[u32],
    ) -> Result<u32, Error> {
        crate::gpu::wait::block_on(self.forward_sample_async(tokens, sampler, history))
    }
}

/// Dispatch steps of `y (+)= W x` over every row chunk of `w`.
#[allow(clippy::too_many_arguments)]
fn push_matmul(
    g: &mut Graph,
    model: &GpuModel,
    w: &GpuMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    x_stride: u32,
    y_stride: u32,
    accumulate: bool,
    batched: bool,
    key: &str,
) -> Result<(), Error> {
    let ctx = &model.ctx;
    let (kernel, groups_fn) = model.kernels.for_weights(ctx, w.ty, w.cols, batched)?;
    for (ci, chunk) in w.chunks.iter().enumerate() {
        let (rows, cols, row_start) = (chunk.rows, w.cols, chunk.row_start as u32);
        g.push_weights(
            ctx,
            &kernel,
            &chunk.store,
            &[x, y],
            Params::Shared(
                format!("{key}:{ci}:{rows}x{cols}:{row_start}:{accumulate}:{x_stride}:{y_stride}"),
                Box::new(move |a: StepArgs| {
                    mat_params(
                        rows, cols, a.n_tokens, 0, x_stride, row_start, y_stride, accumulate,
                    )
                }),
            ),
            move |a| groups_fn(rows as u32, a.n_tokens),
        );
    }
    Ok(())
}

/// The transformer layers, for one token (`batched = false`) or a batch.
fn build_layers(
    model: &GpuModel,
    b: &Buffers,
    batched: bool,
    n_ctx: usize,
) -> Result<Graph, Error> {
    let ctx = &model.ctx;
    let cfg = &model.config;
    let k = &model.kernels;
    let mut g = Graph::default();
    let (e, qd, kd, vd, ff) = (
        cfg.n_embd as u32,
        cfg.q_dim() as u32,
        cfg.k_dim() as u32,
        cfg.v_dim() as u32,
        cfg.n_ff as u32,
    );
    let attn_width = (cfg.n_head * cfg.head_dim_v) as u32;
    let eps = cfg.rms_eps;

    // Embedding lookup, chunk by chunk of the table.
    let get_rows = k.get_rows(ctx, model.tok_embd.ty)?;
    for chunk in &model.tok_embd.chunks {
        let (rs, rn, scale) = (chunk.row_start as u32, chunk.rows as u32, cfg.embd_scale);
        g.push_weights(
            ctx,
            &get_rows,
            &chunk.store,
            &[&b.tokens, &b.x],
            Params::Shared(
                format!("get_rows:{rs}"),
                Box::new(move |a: StepArgs| {
                    fields(&[
                        Field::U(e),
                        Field::U(a.n_tokens),
                        Field::U(rs),
                        Field::U(rn),
                        Field::F(scale),
                        Field::U(0),
                        Field::U(0),
                        Field::U(0),
                    ])
                }),
            ),
            move |a| wisp_shaders::quant::get_rows_groups(e, a.n_tokens),
        );
    }

    // Kernels every layer runs; those of one path only (stacked or separate matrices, post
    // norms, Q/K norms, biases) are taken where used, so a model compiles just its own.
    let rms = k.op(ctx, "rms_norm")?;
    let kv_store = k.op(ctx, "kv_store_kv")?;
    let attention = k.op(ctx, "attention")?;
    let attention_combine = k.op(ctx, "attention_combine")?;
    let attention_rows = k.attention_rows(ctx, cfg.head_dim_k as u32, cfg.head_dim_v as u32)?;
    let act = if cfg.arch.gelu_ffn() { "gelu" } else { "silu" };
    // Phi-3 LongRoPE: the long factors once the session's context exceeds the original.
    let rope_factors = match (&model.rope_factors, &model.rope_factors_long) {
        (Some(_), Some(long)) if n_ctx > cfg.n_ctx_orig => Some(long),
        (short, _) => short.as_ref(),
    };
    // Q and K rotate in one dispatch.
    let rope = match rope_factors {
        Some(_) => k.op(ctx, "rope_qk_factors")?,
        None => k.op(ctx, "rope_qk")?,
    };

    // Row norms of the residual: `rms` writes out = norm(x) * w; `rms_norm_add`, a post-norm
    // and its residual add in one pass, out += norm(x) * w.
    let norm = |g: &mut Graph,
                kernel: &Arc<Kernel>,
                x: &wgpu::Buffer,
                w: &wgpu::Buffer,
                out: &wgpu::Buffer| {
        g.push(
            ctx,
            kernel,
            &[x, w, out],
            Params::Shared(
                format!("rms:{e}"),
                Box::new(move |a: StepArgs| ops::RmsNormParams::rows(e, a.n_tokens, eps).bytes()),
            ),
            move |a| ops::rms_norm_groups(a.n_tokens),
        );
    };
    let (nh, nkv, dk, dv) = (
        cfg.n_head as u32,
        cfg.n_head_kv as u32,
        cfg.head_dim_k as u32,
        cfg.head_dim_v as u32,
    );
    let (n_rot, neox, scale, softcap) = (
        cfg.rope_dims as u32,
        cfg.rope_style == crate::model::RopeStyle::Neox,
        cfg.attn_scale,
        cfg.attn_softcap,
    );

    for (il, layer) in model.layers.iter().enumerate() {
        // Attention block.
        norm(&mut g, &rms, &b.x, &layer.attn_norm, &b.h);
        match &layer.qkv {
            // One mat-vec into [q | k | v] rows, then one pass hands them out (+ biases).
            AttnInput::Stacked(m) => {
                let width = qd + kd + vd;
                push_matmul(
                    &mut g, model, m, &b.h, &b.qkv, e, width, false, batched, "qkv",
                )?;
                let (kernel, bufs) = match &layer.bqkv {
                    Some(bias) => (
                        k.op(ctx, "split_qkv_bias")?,
                        vec![&b.qkv, &b.q, &b.k, &b.v, bias],
                    ),
                    None => (k.op(ctx, "split_qkv")?, vec![&b.qkv, &b.q, &b.k, &b.v]),
                };
                g.push(
                    ctx,
                    &kernel,
                    &bufs,
                    Params::Shared(
                        "split_qkv".into(),
                        Box::new(move |a: StepArgs| {
                            ops::SplitParams {
                                n_tokens: a.n_tokens,
                                qd,
                                kd,
                                vd,
                            }
                            .bytes()
                        }),
                    ),
                    move |a| ops::split_qkv_groups(width, a.n_tokens),
                );
            }
            AttnInput::Separate { wq, wk, wv } => {
                push_matmul(&mut g, model, wq, &b.h, &b.q, e, qd, false, batched, "q")?;
                push_matmul(&mut g, model, wk, &b.h, &b.k, e, kd, false, batched, "k")?;
                push_matmul(&mut g, model, wv, &b.h, &b.v, e, vd, false, batched, "v")?;
                for (bias, buf, width) in [
                    (&layer.bq, &b.q, qd),
                    (&layer.bk, &b.k, kd),
                    (&layer.bv, &b.v, vd),
                ] {
                    if let Some(bias) = bias {
                        g.push(
                            ctx,
                            &k.op(ctx, "add_bias")?,
                            &[buf, bias],
                            Params::Shared(
                                format!("bias:{width}"),
                                Box::new(move |a: StepArgs| {
                                    ops::ElementwiseParams::bias(width * a.n_tokens, width).bytes()
                                }),
                            ),
                            move |a| ops::add_bias_groups(width * a.n_tokens),
                        );
                    }
                }
            }
        }
        // Per-head Q/K norms: both in one dispatch (architectures have both or neither).
        match (&layer.q_norm, &layer.k_norm) {
            (Some(qn), Some(kn)) => g.push(
                ctx,
                &k.op(ctx, "rms_norm_inplace_qk")?,
                &[&b.q, qn, &b.k, kn],
                Params::Shared(
                    "rms_inplace_qk".into(),
                    Box::new(move |a: StepArgs| {
                        ops::RmsNormParams::rows(dk, nh * a.n_tokens, eps)
                            .bytes_qk(nkv * a.n_tokens)
                    }),
                ),
                move |a| ops::rms_norm_groups((nh + nkv) * a.n_tokens),
            ),
            (qn, kn) => {
                for (norm, buf, heads) in [(qn, &b.q, nh), (kn, &b.k, nkv)] {
                    if let Some(norm) = norm {
                        g.push(
                            ctx,
                            &k.op(ctx, "rms_norm_inplace")?,
                            &[buf, norm],
                            Params::Shared(
                                format!("rms_inplace:{heads}"),
                                Box::new(move |a: StepArgs| {
                                    ops::RmsNormParams::rows(dk, heads * a.n_tokens, eps).bytes()
                                }),
                            ),
                            move |a| ops::rms_norm_groups(heads * a.n_tokens),
                        );
                    }
                }
            }
        }
        let base = cfg.layer_rope_base(il);
        let fscale = cfg.layer_rope_freq_scale(il);
        if cfg.rope_layers[il] {
            let params = Params::Shared(
                format!("rope:{base}:{fscale}"),
                Box::new(move |a: StepArgs| {
                    ops::RopeParams {
                        head_dim: dk,
                        n_heads: nh,
                        n_tokens: a.n_tokens,
                        n_rot,
                        pos0: a.pos0,
                        base,
                        freq_scale: fscale,
                        neox,
                        offset: 0,
                        token_stride: nh * dk,
                    }
                    .bytes_qk(nkv)
                }),
            );
            let after: Vec<&wgpu::Buffer> = rope_factors.into_iter().collect();
            g.push_around(ctx, &rope, &[&b.q, &b.k], params, &after, move |a| {
                ops::rope_groups(nh + nkv, a.n_tokens, n_rot)
            });
        }
        g.push(
            ctx,
            &kv_store,
            &[&b.k, &b.v, &b.k_cache[il], &b.v_cache[il]],
            Params::Shared(
                "kv".into(),
                Box::new(move |a: StepArgs| {
                    ops::KvStoreParams {
                        dim: kd,
                        n_tokens: a.n_tokens,
                        pos0: a.pos0,
                        src_offset: 0,
                        src_stride: kd,
                    }
                    .bytes_kv(vd)
                }),
            ),
            move |a| ops::kv_store_kv_groups(kd, vd, a.n_tokens),
        );
        let window = cfg.layer_window(il).unwrap_or(0) as u32;
        let attn_params = move |a: StepArgs| {
            let plan = ops::attention_plan(nh, nkv, dv, a.n_tokens, a.pos0);
            ops::AttentionParams::new(nh, nkv, dk, dv, a.n_tokens, a.pos0, window, scale, &plan)
                .with_softcap(softcap)
                .bytes()
        };
        let (kernel, rows) = match &attention_rows {
            Some(k) => (k, true),
            None => (&attention, false),
        };
        g.push_around(
            ctx,
            kernel,
            &[&b.q, &b.k_cache[il], &b.v_cache[il], &b.attn],
            Params::Shared(format!("attn:{window}"), Box::new(attn_params)),
            &[&b.attn_scratch],
            move |a| {
                let plan = ops::attention_plan(nh, nkv, dv, a.n_tokens, a.pos0);
                if rows {
                    ops::attention_rows_groups(&plan, nh, a.n_tokens)
                } else {
                    plan.groups
                }
            },
        );
        g.push(
            ctx,
            &attention_combine,
            &[&b.attn_scratch, &b.attn],
            Params::Shared(format!("attn:{window}"), Box::new(attn_params)),
            move |a| {
                ops::attention_plan(nh, nkv, dv, a.n_tokens, a.pos0)
                    .combine_groups
                    .unwrap_or((0, 0, 0))
            },
        );

        // Output projection (+ residual).
        if let Some(post) = &layer.attn_post_norm {
            push_matmul(
                &mut g, model, &layer.wo, &b.attn, &b.h, attn_width, e, false, batched, "o",
            )?;
            norm(&mut g, &k.op(ctx, "rms_norm_add")?, &b.h, post, &b.x);
        } else {
            push_matmul(
                &mut g, model, &layer.wo, &b.attn, &b.x, attn_width, e, true, batched, "o",
            )?;
        }

        // Feed-forward block.
        norm(&mut g, &rms, &b.x, &layer.ffn_norm, &b.h);
        // Gate and up: one stacked matrix into [gate | up] rows of b.gate, or two.
        let ffn_x_stride = match &layer.ffn_in {
            FfnInput::Stacked(m) => {
                push_matmul(
                    &mut g,
                    model,
                    m,
                    &b.h,
                    &b.gate,
                    e,
                    2 * ff,
                    false,
                    batched,
                    "gate_up",
                )?;
                g.push(
                    ctx,
                    &k.op(ctx, &format!("glu_pair_{act}"))?,
                    &[&b.gate],
                    Params::Shared(
                        format!("glu_pair:{ff}"),
                        Box::new(move |a: StepArgs| {
                            ops::ElementwiseParams::bias(ff * a.n_tokens, ff).bytes()
                        }),
                    ),
                    move |a| ops::glu_groups(ff * a.n_tokens),
                );
                2 * ff
            }
            FfnInput::Separate { gate, up } => {
                push_matmul(
                    &mut g, model, gate, &b.h, &b.gate, e, ff, false, batched, "gate",
                )?;
                push_matmul(&mut g, model, up, &b.h, &b.up, e, ff, false, batched, "up")?;
                g.push(
                    ctx,
                    &k.op(ctx, &format!("glu_{act}"))?,
                    &[&b.gate, &b.up],
                    Params::Shared(
                        format!("glu:{ff}"),
                        Box::new(move |a: StepArgs| {
                            ops::ElementwiseParams::n(ff * a.n_tokens).bytes()
                        }),
                    ),
                    move |a| ops::glu_groups(ff * a.n_tokens),
                );
                ff
            }
        };
        if let Some(post) = &layer.ffn_post_norm {
            push_matmul(
                &mut g,
                model,
                &layer.ffn_down,
                &b.gate,
                &b.h,
                ffn_x_stride,
                e,
                false,
                batched,
                "down",
            )?;
            norm(&mut g, &k.op(ctx, "rms_norm_add")?, &b.h, post, &b.x);
        } else {
            push_matmul(
                &mut g,
                model,
                &layer.ffn_down,
                &b.gate,
                &b.x,
                ffn_x_stride,
                e,
                true,
                batched,
                "down",
            )?;
        }
    }
    Ok(g)
}

/// Final norm and output head for `n_tokens` rows of the batch starting at row `pos0`
/// into logits rows 0.. (the last token alone: `n_tokens = 1`). `all` picks the tiled
/// mat-mul for many rows instead of the mat-vec.
fn build_head(model: &GpuModel, b: &Buffers, all: bool) -> Result<Graph, Error> {
    let ctx = &model.ctx;
    let cfg = &model.config;
    let mut g = Graph::default();
    let (e, eps, nv) = (cfg.n_embd as u32, cfg.rms_eps, cfg.n_vocab as u32);
    let rms = model.kernels.op(ctx, "rms_norm")?;
    g.push(
        ctx,
        &rms,
        &[&b.x, &model.output_norm, &b.h],
        Params::Shared(
            "head_norm".into(),
            Box::new(move |a: StepArgs| {
                ops::RmsNormParams {
                    x_offset: a.pos0 * e,
                    ..ops::RmsNormParams::rows(e, a.n_tokens, eps)
                }
                .bytes()
            }),
        ),
        move |a| ops::rms_norm_groups(a.n_tokens),
    );
    push_matmul(
        &mut g,
        model,
        model.output(),
        &b.h,
        &b.logits,
        e,
        nv,
        false,
        all,
        "head",
    )?;
    if cfg.final_logit_softcap > 0.0 {
        let softcap = model.kernels.op(ctx, "softcap")?;
        let cap = cfg.final_logit_softcap;
        g.push(
            ctx,
            &softcap,
            &[&b.logits],
            Params::Shared(
                "softcap".into(),
                Box::new(move |a: StepArgs| {
                    ops::ElementwiseParams::softcap(nv * a.n_tokens, cap).bytes()
                }),
            ),
            move |a| ops::softcap_groups(nv * a.n_tokens),
        );
    }
    Ok(g)
}

/// Argmax and top-k over logits row 0.
fn build_samplers(model: &GpuModel, b: &Buffers) -> Result<(Graph, Graph), Error> {
    let ctx = &model.ctx;
    let nv = model.config.n_vocab as u32;
    let k = &model.kernels;
    let mut argmax = Graph::default();
    let bytes = ops::SampleParams::argmax(nv, 0).bytes();
    argmax.push(
        ctx,
        &k.op(ctx, "argmax")?,
        &[&b.logits, &b.picked_argmax],
        Params::Fixed(bytes.clone()),
        move |_| ops::argmax_groups(nv),
    );
    argmax.push(
        ctx,
        &k.op(ctx, "argmax_reduce")?,
        &[&b.picked_argmax],
        Params::Fixed(bytes),
        |_| ops::argmax_reduce_groups(),
    );
    let mut top_k = Graph::default();
    let bytes = ops::SampleParams::top_k(nv, 0, (TOP_K_CANDIDATES as u32).min(nv)).bytes();
    top_k.push(
        ctx,
        &k.op(ctx, "top_k")?,
        &[&b.logits, &b.picked_top_k],
        Params::Fixed(bytes.clone()),
        move |_| ops::top_k_groups(nv),
    );
    top_k.push(
        ctx,
        &k.op(ctx, "top_k_merge")?,
        &[&b.picked_top_k],
        Params::Fixed(bytes),
        |_| ops::top_k_merge_groups(),
    );
    Ok((argmax, top_k))
}
