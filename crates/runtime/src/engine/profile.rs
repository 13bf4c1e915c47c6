//! Measuring instruments: the weight bytes one decode token touches ([`WeightBytes`]),
//! and (natively) a pass timer, the roofline probes (streaming-read bandwidth, f32 FMA
//! rate) and microbenchmarks of the engine's own quantized mat-vec and mat-mul kernels
//! ([`kernel_bench`], behind `wisp bench --kernels`).
//!
//! # Timing
//!
//! A measurement records `reps` repetitions of the same dispatches into one compute pass.
//! Where the device was created with [`DeviceOptions::timestamps`](crate::gpu::DeviceOptions)
//! and granted `timestamp-query`, timestamps written at the beginning and end of the pass
//! time it on the device; otherwise the wall clock times submit + wait, and `reps` is
//! chosen so a pass lasts about `target_s`, which amortises the fixed submit/poll cost.
//! Every kernel runs once untimed first (pipelines compile on first use, 100–250 ms on
//! lavapipe), then one pass calibrates `reps`, then the median of `samples` passes is
//! reported, per repetition.
//!
//! # Decisions a newcomer may question
//!
//! - Benchmark weights are random bytes in `0x30..=0x3F`: every f16, bf16 or f32 field
//!   they form is a normal number of moderate size (no NaN, no subnormals, which some
//!   hardware runs slowly), any byte string is a valid block of every type, and the data
//!   is not a constant a memory system could compress.
//! - Each matrix is replicated through a pool of buffers (≥ 192 MiB unless `quick`) and
//!   successive repetitions read successive copies, so weights come from memory as they do
//!   in decode (each weight read once per token), not from a cache a 2–9 MB matrix fits in.
//! - Kernels come from the engine's [`Kernels`] and [`mat_params`] through one adapter,
//!   [`weight_dispatch`]: when the kernels' interface changes, that function is the fix.
//! - The mat-mul is compute-bound on every device, so its roof is the lower of the FMA
//!   probe and (arithmetic intensity × stream bandwidth), the classic roofline; the
//!   mat-vecs' roof is the stream bandwidth.

use super::model::{GpuMatrix, GpuModel};

/// Weight bytes one decode token reads: every matrix the layers' mat-vecs bind, once, the
/// output head once, and one row of the token-embedding table (`get_rows`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeightBytes {
    pub layers: u64,
    pub head: u64,
    pub embd_row: u64,
}

fn matrix_bytes(m: &GpuMatrix) -> u64 {
    m.rows * row_bytes(m)
}

fn row_bytes(m: &GpuMatrix) -> u64 {
    m.ty.bytes_for(m.cols).unwrap_or(0)
}

impl WeightBytes {
    pub fn of(model: &GpuModel) -> WeightBytes {
        let layers = model
            .layers
            .iter()
            .map(|l| {
                [&l.wo, &l.ffn_down]
                    .into_iter()
                    .chain(l.qkv.matrices())
                    .chain(l.ffn_in.matrices())
                    .map(matrix_bytes)
                    .sum::<u64>()
            })
            .sum();
        WeightBytes {
            layers,
            head: matrix_bytes(model.output()),
            embd_row: row_bytes(&model.tok_embd),
        }
    }

    /// All of a decode token's weight bytes.
    pub fn per_token(&self) -> u64 {
        self.layers + self.head + self.embd_row
    }
}

#[cfg(feature = "native")]
pub use native::*;

#[cfg(feature = "native")]
mod native {
    use crate::engine::kernels::{mat_params, Kernels};
    use crate::gpu::kernel::padded_weights_len;
    use crate::gpu::{GpuContext, Kernel};
    use crate::quant::GgmlType;
    use crate::Error;
    use std::sync::Arc;
    use std::time::Instant;
    use wisp_shaders::bench as probes;

    /// How passes are timed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TimerKind {
        Timestamps,
        WallClock,
    }

    impl TimerKind {
        pub fn name(self) -> &'static str {
            match self {
                TimerKind::Timestamps => "timestamp-query",
                TimerKind::WallClock => "wall-clock",
            }
        }
    }

    struct Queries {
        set: wgpu::QuerySet,
        resolve: wgpu::Buffer,
        read: wgpu::Buffer,
        period_ns: f64,
    }

    /// Times passes of repeated dispatches on one device.
    pub struct Timer<'a> {
        ctx: &'a GpuContext,
        queries: Option<Queries>,
    }

    /// Records repetition `r` of the measured work into a pass.
    pub type Record<'r> = dyn FnMut(&mut wgpu::ComputePass<'_>, u32) + 'r;

    impl<'a> Timer<'a> {
        pub fn new(ctx: &'a GpuContext) -> Timer<'a> {
            let queries = ctx.caps.timestamps.then(|| Queries {
                set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("bench timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                }),
                resolve: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench timestamps"),
                    size: 16,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                read: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench timestamps readback"),
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                period_ns: ctx.queue.get_timestamp_period() as f64,
            });
            Timer { ctx, queries }
        }

        pub fn kind(&self) -> TimerKind {
            if self.queries.is_some() {
                TimerKind::Timestamps
            } else {
                TimerKind::WallClock
            }
        }

        /// Seconds one pass of `reps` repetitions takes.
        fn pass(&self, reps: u32, record: &mut Record<'_>) -> Result<f64, Error> {
            let ctx = self.ctx;
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("bench"),
                    timestamp_writes: self.queries.as_ref().map(|q| {
                        wgpu::ComputePassTimestampWrites {
                            query_set: &q.set,
                            beginning_of_pass_write_index: Some(0),
                            end_of_pass_write_index: Some(1),
                        }
                    }),
                });
                for r in 0..reps {
                    record(&mut pass, r);
                }
            }
            if let Some(q) = &self.queries {
                enc.resolve_query_set(&q.set, 0..2, &q.resolve, 0);
                enc.copy_buffer_to_buffer(&q.resolve, 0, &q.read, 0, 16);
            }
            let start = Instant::now();
            ctx.queue.submit([enc.finish()]);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
            let wall = start.elapsed().as_secs_f64();
            ctx.check()?;
            let Some(q) = &self.queries else {
                return Ok(wall);
            };
            let slice = q.read.slice(..);
            crate::gpu::wait::block_on(ctx.map_read(slice))?;
            let ticks: Vec<u64> = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("timestamp map failed: {e:?}")))?
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            q.read.unmap();
            let device_s = ticks[1].saturating_sub(ticks[0]) as f64 * q.period_ns * 1e-9;
            // A driver that leaves the queries unwritten (zeros) must not report infinite
            // speed: fall back to the wall clock, which is an upper bound.
            Ok(if device_s > 0.0 { device_s } else { wall })
        }

        /// Seconds per repetition of `record`: one untimed pass (compilation), one that
        /// calibrates the repetitions, then the median of `samples` passes of ~`target_s`.
        pub fn measure(
            &self,
            target_s: f64,
            samples: usize,
            record: &mut Record<'_>,
        ) -> Result<f64, Error> {
            self.pass(1, record)?;
            let one = self.pass(1, record)?.max(1e-7);
            let reps = ((target_s / one).ceil() as u32).clamp(1, 1000);
            // A pass already as long as the target counts as the first sample (slow
            // devices: a 2048×2048×128 mat-mul takes seconds on lavapipe).
            let mut times = if reps == 1 { vec![one] } else { Vec::new() };
            while times.len() < samples.max(1) {
                times.push(self.pass(reps, record)? / reps as f64);
            }
            times.sort_by(f64::total_cmp);
            Ok(times[times.len() / 2])
        }
    }

    /// Random bytes in `0x30..=0x3F` (see the module docs), from a fixed seed.
    fn bench_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                0x30 | (s >> 60) as u8
            })
            .collect()
    }

    /// Fill `buffer` with `chunk` repeated.
    fn fill(ctx: &GpuContext, buffer: &wgpu::Buffer, chunk: &[u8]) {
        let size = buffer.size();
        let mut off = 0;
        while off < size {
            let n = (chunk.len() as u64).min(size - off) as usize;
            ctx.queue.write_buffer(buffer, off, &chunk[..n]);
            off += n as u64;
        }
    }

    fn stream_buffer_bytes(ctx: &GpuContext, want: u64) -> u64 {
        (want.min(ctx.max_binding()) / 256 * 256).max(256)
    }

    /// The device's achievable read bandwidth in GB/s (10⁹ bytes/s): the streaming probe
    /// over a buffer of `bytes` (clamped to one storage binding).
    pub fn stream_bandwidth(
        ctx: &GpuContext,
        timer: &Timer<'_>,
        bytes: u64,
        target_s: f64,
        samples: usize,
    ) -> Result<f64, Error> {
        let bytes = stream_buffer_bytes(ctx, bytes);
        let src = ctx.storage("stream src", bytes);
        fill(ctx, &src, &bench_bytes(1 << 20, 7));
        let out = ctx.storage("stream out", 4 * probes::PROBE_OUT_WORDS as u64);
        let n = (bytes / 16) as u32;
        let params = ctx.uniform_init(
            "stream params",
            &probes::ProbeParams {
                n,
                iters: 0,
                magic: 0x9e37_79b9,
            }
            .bytes(),
        );
        let kernel = ctx.compile("stream", &probes::stream())?;
        let bind = ctx.bind(&kernel, &[&src, &out, &params]);
        let g = probes::stream_groups(n);
        let s = timer.measure(target_s, samples, &mut |pass, _| {
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(g.0, g.1, g.2);
        })?;
        Ok(bytes as f64 / s / 1e9)
    }

    /// The f32 arithmetic rate in GFLOP/s (FMA = 2 flops) of `groups` workgroups of the
    /// FMA probe, `iters` loop trips each.
    pub fn peak_flops(
        ctx: &GpuContext,
        timer: &Timer<'_>,
        groups: u32,
        iters: u32,
        target_s: f64,
        samples: usize,
    ) -> Result<f64, Error> {
        let out = ctx.storage("flops out", 4 * probes::PROBE_OUT_WORDS as u64);
        let params = ctx.uniform_init(
            "flops params",
            &probes::ProbeParams {
                n: 0,
                iters,
                magic: 0x7f80_0001, // a NaN bit pattern the sum never takes
            }
            .bytes(),
        );
        let kernel = ctx.compile("flops", &probes::flops())?;
        let bind = ctx.bind(&kernel, &[&out, &params]);
        let g = probes::flops_groups(groups);
        let s = timer.measure(target_s, samples, &mut |pass, _| {
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(g.0, g.1, g.2);
        })?;
        let flops = g.0 as f64
            * probes::PROBE_WORKGROUP as f64
            * iters as f64
            * probes::FLOPS_PER_ITER as f64;
        Ok(flops / s / 1e9)
    }

    /// Which weight kernel.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum MatKind {
        /// The decode mat-vec (one token).
        MatVec,
        /// The prefill tiled mat-mul.
        MatMul,
    }

    impl MatKind {
        pub fn name(self) -> &'static str {
            match self {
                MatKind::MatVec => "matvec",
                MatKind::MatMul => "matmul",
            }
        }
    }

    /// One recorded dispatch.
    struct Dispatch {
        kernel: Arc<Kernel>,
        bind: wgpu::BindGroup,
        groups: (u32, u32, u32),
    }

    /// The one place that knows how the engine builds and dispatches its weight kernels
    /// (which kernel, binding order, params, workgroup counts), as `push_matmul` in
    /// `session.rs` does: `y[t][r] = Σ_c W[r][c] · x[t][c]` for `n_tokens` tokens, with `w`
    /// the rows × cols matrix in GGUF block layout.
    #[allow(clippy::too_many_arguments)]
    fn weight_dispatch(
        ctx: &GpuContext,
        kernels: &Kernels,
        kind: MatKind,
        ty: GgmlType,
        rows: u64,
        cols: u64,
        n_tokens: u32,
        w: wgpu::BindingResource<'_>,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<Dispatch, Error> {
        let (kernel, groups_fn) = kernels.for_weights(ctx, ty, cols, kind == MatKind::MatMul)?;
        let groups = groups_fn(rows as u32, n_tokens);
        let params = ctx.uniform_init(
            "params",
            &mat_params(rows, cols, n_tokens, 0, cols as u32, 0, rows as u32, false),
        );
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.name),
            layout: &kernel.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: w,
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: x.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: y.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: params.as_entire_binding(),
                },
            ],
        });
        Ok(Dispatch {
            kernel,
            bind,
            groups,
        })
    }

    /// What [`kernel_bench`] measures.
    #[derive(Debug, Clone, Default)]
    pub struct KernelBenchOptions {
        /// Small sizes, short passes, a few types: checks the plumbing (CI), not speed.
        pub quick: bool,
        /// Weight types to run (llama.cpp names); empty: every type with GPU kernels.
        pub types: Vec<String>,
    }

    /// One kernel's measurement.
    #[derive(Debug, Clone)]
    pub struct KernelResult {
        pub kind: MatKind,
        /// `decode`, `head` or `prefill`.
        pub shape: &'static str,
        pub ty: GgmlType,
        pub rows: u64,
        pub cols: u64,
        pub n_tokens: u32,
        pub seconds: f64,
        pub weight_bytes: u64,
        /// Weight bytes per second / 10⁹.
        pub gb_s: f64,
        pub gflop_s: f64,
        /// Fraction of the roof: `gb_s / stream` for mat-vecs, `gflop_s / min(peak,
        /// intensity × stream)` for the mat-mul.
        pub of_roof: f64,
    }

    /// The roofline of a device and its kernels' places under it.
    #[derive(Debug, Clone)]
    pub struct KernelReport {
        pub adapter: String,
        pub backend: String,
        pub f16: bool,
        /// Which matrix kernels the device runs (GPU layout or one row per invocation).
        pub layout: crate::gpu::MatLayout,
        pub timer: TimerKind,
        pub stream_bytes: u64,
        pub stream_gb_s: f64,
        pub peak_gflop_s: f64,
        pub kernels: Vec<KernelResult>,
    }

    /// Weight types `quick` runs: one legacy, the two of Q4_K_M, one float.
    const QUICK_TYPES: &[&str] = &["Q4_0", "Q4_K", "Q6_K", "F16"];

    /// Stream probe, FMA probe, then every (type, shape) of the weight kernels.
    pub fn kernel_bench(
        ctx: &GpuContext,
        opts: &KernelBenchOptions,
    ) -> Result<KernelReport, Error> {
        let names: Vec<String> = if !opts.types.is_empty() {
            opts.types.clone()
        } else if opts.quick {
            QUICK_TYPES.iter().map(|s| s.to_string()).collect()
        } else {
            wisp_shaders::quant::QUANT_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        let mut types = Vec::new();
        for n in &names {
            let ty = GgmlType::from_name(n)
                .filter(|_| wisp_shaders::quant::QUANT_TYPES.contains(&n.as_str()))
                .ok_or_else(|| {
                    Error::InvalidRequest(format!(
                        "no GPU kernels for weight type {n:?} (known: {})",
                        wisp_shaders::quant::QUANT_TYPES.join(", ")
                    ))
                })?;
            types.push(ty);
        }

        let timer = Timer::new(ctx);
        let (target_s, samples) = if opts.quick { (0.02, 1) } else { (0.25, 3) };
        let stream_bytes = stream_buffer_bytes(ctx, if opts.quick { 16 << 20 } else { 128 << 20 });
        let stream_gb_s = stream_bandwidth(ctx, &timer, stream_bytes, target_s, samples)?;
        let (fg, fi) = if opts.quick { (32, 128) } else { (512, 1024) };
        let peak_gflop_s = peak_flops(ctx, &timer, fg, fi, target_s, samples)?;

        // (shape, kind, rows, cols, tokens): a 2048-wide decode layer, an output head
        // (as many rows as one binding holds, up to 32768), a 128-token prefill.
        let shapes: &[(&str, MatKind, u64, u64, u32)] = if opts.quick {
            &[
                ("decode", MatKind::MatVec, 512, 512, 1),
                ("head", MatKind::MatVec, 4096, 512, 1),
                ("prefill", MatKind::MatMul, 512, 512, 64),
            ]
        } else {
            &[
                ("decode", MatKind::MatVec, 2048, 2048, 1),
                ("head", MatKind::MatVec, 32768, 2048, 1),
                ("prefill", MatKind::MatMul, 2048, 2048, 128),
            ]
        };

        let kernels = Kernels::new(ctx.caps.f16, ctx.caps.mat_layout);
        let align = ctx.caps.limits.min_storage_buffer_offset_alignment.max(256) as u64;
        let buf_size = (ctx.max_binding().min(128 << 20)) / align * align;
        let pool_bytes: u64 = if opts.quick { 16 << 20 } else { 256 << 20 };
        let chunk = bench_bytes(4 << 20, 11);
        // Weights: buffers filled once and sliced per shape, or (texture weights) textures
        // made per shape from one staging copy; the buffer pool is not needed then.
        let textures = ctx.caps.weights_in_textures();
        let n_pool = if textures {
            0
        } else {
            pool_bytes.div_ceil(buf_size).max(1)
        };
        let pool: Vec<wgpu::Buffer> = (0..n_pool)
            .map(|_| {
                let b = ctx.storage("bench weights", buf_size);
                fill(ctx, &b, &chunk);
                b
            })
            .collect();
        let max_rows = shapes.iter().map(|s| s.2 * s.4 as u64).max().unwrap_or(1);
        let max_x = shapes.iter().map(|s| s.3 * s.4 as u64).max().unwrap_or(1);
        let x_vals: Vec<f32> = bench_bytes(max_x as usize, 13)
            .iter()
            .map(|&b| (b & 15) as f32 / 7.5 - 1.0)
            .collect();
        let x = ctx.storage_init("bench x", &crate::gpu::kernel::f32_bytes(&x_vals));
        let y = ctx.storage("bench y", 4 * max_rows);

        let mut results = Vec::new();
        for &ty in &types {
            for &(shape, kind, rows, cols, n_tokens) in shapes {
                let row = ty.bytes_for(cols).ok_or_else(|| {
                    Error::InvalidRequest(format!("{cols} columns are not whole {ty} blocks"))
                })?;
                let rows = rows.min(buf_size / row);
                let bytes = rows * row;
                let stride = bytes.div_ceil(align) * align;
                let per_buf = (buf_size / stride).max(1);
                // As many textures as the pool's bytes allow (up to 64), each filled from one
                // staging copy of the pool's pattern.
                let views: Vec<wgpu::TextureView> = if textures {
                    let n = (pool_bytes / bytes).clamp(1, 64);
                    let staging = ctx.storage("bench staging", padded_weights_len(bytes));
                    fill(ctx, &staging, &chunk);
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    let views = (0..n)
                        .map(|_| {
                            let t = ctx.weights_texture("bench weights", bytes);
                            ctx.copy_to_weights(&mut enc, &staging, &t);
                            t.create_view(&Default::default())
                        })
                        .collect();
                    ctx.queue.submit([enc.finish()]);
                    views
                } else {
                    Vec::new()
                };
                let dispatch =
                    |w| weight_dispatch(ctx, &kernels, kind, ty, rows, cols, n_tokens, w, &x, &y);
                let mut slots = Vec::new();
                for v in &views {
                    slots.push(dispatch(wgpu::BindingResource::TextureView(v))?);
                }
                'fill: for b in &pool {
                    for i in 0..per_buf {
                        if slots.len() >= 64 {
                            break 'fill;
                        }
                        slots.push(dispatch(wgpu::BindingResource::Buffer(
                            wgpu::BufferBinding {
                                buffer: b,
                                offset: i * stride,
                                size: wgpu::BufferSize::new(bytes),
                            },
                        ))?);
                    }
                }
                let seconds = timer.measure(target_s, samples, &mut |pass, r| {
                    let d = &slots[r as usize % slots.len()];
                    pass.set_pipeline(&d.kernel.pipeline);
                    pass.set_bind_group(0, &d.bind, &[]);
                    pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
                })?;
                let flops = 2.0 * rows as f64 * cols as f64 * n_tokens as f64;
                let gb_s = bytes as f64 / seconds / 1e9;
                let gflop_s = flops / seconds / 1e9;
                let of_roof = match kind {
                    MatKind::MatVec => gb_s / stream_gb_s,
                    MatKind::MatMul => {
                        let traffic = bytes as f64 + 4.0 * n_tokens as f64 * (rows + cols) as f64;
                        let roof = peak_gflop_s.min(flops / traffic * stream_gb_s);
                        gflop_s / roof
                    }
                };
                results.push(KernelResult {
                    kind,
                    shape,
                    ty,
                    rows,
                    cols,
                    n_tokens,
                    seconds,
                    weight_bytes: bytes,
                    gb_s,
                    gflop_s,
                    of_roof,
                });
            }
        }
        Ok(KernelReport {
            adapter: ctx.caps.adapter_name.clone(),
            backend: ctx.caps.backend.clone(),
            f16: ctx.caps.f16,
            layout: ctx.caps.mat_layout,
            timer: timer.kind(),
            stream_bytes,
            stream_gb_s,
            peak_gflop_s,
            kernels: results,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::gpu::DeviceOptions;

        fn device(timestamps: bool) -> GpuContext {
            GpuContext::new_blocking(&DeviceOptions {
                webgpu_default_limits: true,
                timestamps,
                ..Default::default()
            })
            .expect("a GPU adapter (lavapipe: mesa-vulkan-drivers)")
        }

        #[test]
        fn both_timers_agree_on_the_stream_probe() {
            let with = device(true);
            let without = device(false);
            assert_eq!(Timer::new(&without).kind(), TimerKind::WallClock);
            let a = stream_bandwidth(&with, &Timer::new(&with), 8 << 20, 0.02, 3).unwrap();
            let b = stream_bandwidth(&without, &Timer::new(&without), 8 << 20, 0.02, 3).unwrap();
            assert!(
                a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite(),
                "{a} {b}"
            );
            // Same probe, two clocks: within a factor of 4 even on a loaded machine.
            assert!(
                a / b < 4.0 && b / a < 4.0,
                "timestamps {a} GB/s, wall {b} GB/s"
            );
        }

        #[test]
        fn quick_kernel_bench_reports_every_case() {
            let ctx = device(true);
            let opts = KernelBenchOptions {
                quick: true,
                types: vec!["Q4_K".into(), "Q8_0".into()],
            };
            let r = kernel_bench(&ctx, &opts).unwrap();
            assert!(r.stream_gb_s > 0.0 && r.peak_gflop_s > 0.0);
            assert_eq!(r.kernels.len(), 6);
            for k in &r.kernels {
                assert!(k.seconds > 0.0 && k.gb_s > 0.0 && k.of_roof > 0.0, "{k:?}");
            }
            let bad = KernelBenchOptions {
                quick: true,
                types: vec!["Q8_1".into()],
            };
            assert!(matches!(
                kernel_bench(&ctx, &bad),
                Err(Error::InvalidRequest(_))
            ));
        }
    }
}
