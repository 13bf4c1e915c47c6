//! The ops kernels (wisp_shaders::ops) on the machine's real GPU (lavapipe in CI) against
//! the CPU references: model::math, sampling, or a plain f64 loop here.
//!
//! Every test runs twice: on the default device (shader-f16 when the adapter has it) and
//! on a WebGPU-floor device (default limits, no f16). One device per (test, variant) so
//! pipelines compile once each (each costs 100-250 ms on lavapipe).
//!
//! Tolerances (and why):
//! - rms_norm, glu, add, softcap: a few f32 ulps (order of summation, GPU exp/tanh/
//!   inverseSqrt are a few ulps): 1e-5 relative + 1e-6 absolute.
//! - rope: against an f64 reference; f32 frequency and theta rounding grow with the
//!   position (theta ~ 4096 rad at position 4096 has an ulp of 5e-4): 2e-3 absolute on
//!   unit-sized values.
//! - kv_store: exact f16 rounding, allowing 1 ulp (WGSL leaves the f32 -> f16 rounding mode
//!   to the implementation).
//! - attention: against an f64 reference over the same f16 K/V: f32 accumulation only,
//!   2e-5 absolute on outputs in [-1, 1]. The f16 cache itself costs ~1e-3 relative against
//!   an f32 cache (printed, bounded by 5e-3).
//! - argmax / top_k: exact (ids and logit bits).

use wisp::gpu::kernel::f32_bytes;
use wisp::gpu::{DeviceOptions, GpuContext, Kernel};
use wisp::model::math;
use wisp::model::RopeStyle;
use wisp::quant::{f16_to_f32, f32_to_f16};
use wisp::sampling;
use wisp_shaders::ops::{self, OpsVariant};

struct Dev {
    ctx: GpuContext,
    v: OpsVariant,
    name: &'static str,
}

fn devices() -> Vec<Dev> {
    let floor = DeviceOptions {
        webgpu_default_limits: true,
        no_f16: true,
        ..Default::default()
    };
    [
        (DeviceOptions::default(), "default"),
        (floor, "webgpu-floor"),
    ]
    .into_iter()
    .map(|(opts, name)| {
        let ctx = GpuContext::new_blocking(&opts).expect("a device (install mesa-vulkan-drivers)");
        let v = OpsVariant {
            f16: ctx.caps.f16,
            small_groups: false,
        };
        eprintln!(
            "device {name}: {} f16={}",
            ctx.caps.adapter_name, ctx.caps.f16
        );
        Dev { ctx, v, name }
    })
    .collect()
}

impl Dev {
    fn kernel(&self, name: &str, src: String) -> Kernel {
        self.ctx
            .compile(name, &src)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }
    fn buf(&self, data: &[f32]) -> wgpu::Buffer {
        self.ctx.storage_init("data", &f32_bytes(data))
    }
    fn words(&self, data: &[u32]) -> wgpu::Buffer {
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.ctx.storage_init("words", &bytes)
    }
    fn uniform(&self, bytes: &[u8]) -> wgpu::Buffer {
        self.ctx.uniform_init("params", bytes)
    }
    fn run(&self, k: &Kernel, bufs: &[&wgpu::Buffer], groups: (u32, u32, u32)) {
        self.ctx
            .run_once(k, bufs, groups)
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.name, k.name));
    }
    fn read(&self, b: &wgpu::Buffer) -> Vec<f32> {
        self.ctx.read_f32(b).unwrap()
    }
    fn read_u32(&self, b: &wgpu::Buffer) -> Vec<u32> {
        self.ctx
            .read_back(b)
            .unwrap()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// SplitMix64 → uniform f32 in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

/// Largest |got - want| - rtol * |want|, failing when above `atol`.
fn check(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) -> f32 {
    assert!(
        got.len() >= want.len(),
        "{what}: {} results, want {}",
        got.len(),
        want.len()
    );
    let mut worst = 0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        assert!(
            err <= atol + rtol * w.abs(),
            "{what}: [{i}] got {g}, want {w} (err {err})"
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn rms_norm_rows_and_in_place() {
    let mut rng = Rng(1);
    for d in devices() {
        // Both workgroup sizes: 256 (GPUs) and 8 (CPU-backed devices).
        for small in [false, true] {
            let v = OpsVariant {
                small_groups: small,
                ..d.v
            };
            let k = d.kernel("rms_norm", ops::rms_norm(&v));
            let ki = d.kernel("rms_norm_inplace", ops::rms_norm_inplace(&v));
            // (n, rows, x_offset, extra x stride, out_offset, extra out stride)
            for &(n, rows, xo, xs, oo, os) in &[
                (1u32, 1u32, 0u32, 0u32, 0u32, 0u32),
                (7, 3, 0, 0, 0, 0),
                (2560, 5, 3, 5, 1, 2),
                (4097, 2, 0, 0, 0, 0),
            ] {
                let (x_stride, out_stride) = (n + xs, n + os);
                let x = rng.vec((xo + rows * x_stride) as usize, 3.0);
                let w = rng.vec(n as usize, 1.0);
                let p = ops::RmsNormParams {
                    n,
                    n_rows: rows,
                    eps: 1e-6,
                    x_offset: xo,
                    out_offset: oo,
                    x_stride,
                    out_stride,
                };
                let (xb, wb) = (d.buf(&x), d.buf(&w));
                let ob = d.ctx.storage("out", ((oo + rows * out_stride) * 4) as u64);
                d.run(
                    &k,
                    &[&xb, &wb, &ob, &d.uniform(&p.bytes())],
                    ops::rms_norm_groups(rows),
                );
                let out = d.read(&ob);
                for r in 0..rows {
                    let mut want = x[(xo + r * x_stride) as usize..][..n as usize].to_vec();
                    math::rms_norm(&mut want, &w, 1e-6);
                    let got = &out[(oo + r * out_stride) as usize..][..n as usize];
                    check(
                        got,
                        &want,
                        1e-6,
                        1e-5,
                        &format!("{} rms_norm n={n} row {r}", d.name),
                    );
                }
            }
            // Per-head norms: rows = tokens × heads, n = head_dim.
            for &(n, rows) in &[(64u32, 37 * 3), (256, 5)] {
                let x = rng.vec((n * rows) as usize, 2.0);
                let w = rng.vec(n as usize, 1.0);
                let xb = d.buf(&x);
                let p = ops::RmsNormParams::rows(n, rows, 1e-5);
                d.run(
                    &ki,
                    &[&xb, &d.buf(&w), &d.uniform(&p.bytes())],
                    ops::rms_norm_groups(rows),
                );
                let mut want = x.clone();
                for row in want.chunks_mut(n as usize) {
                    math::rms_norm(row, &w, 1e-5);
                }
                check(
                    &d.read(&xb),
                    &want,
                    1e-6,
                    1e-5,
                    &format!("{} rms_norm_inplace n={n}", d.name),
                );
            }
        }
    }
}

#[test]
fn rope_matches_f64_reference_up_to_position_4096() {
    let mut rng = Rng(2);
    for d in devices() {
        let k = d.kernel("rope", ops::rope(&d.v));
        // (head_dim, heads, tokens, n_rot, pos0, base, freq_scale, style, offset, extra stride)
        let cases = [
            (
                64u32,
                3u32,
                37u32,
                64u32,
                0u32,
                10000.0f32,
                1.0f32,
                RopeStyle::Normal,
                0u32,
                0u32,
            ),
            (128, 2, 5, 64, 4090, 1e6, 1.0, RopeStyle::Neox, 0, 0),
            (256, 1, 1, 256, 4095, 1e6, 0.125, RopeStyle::Neox, 0, 0),
            (64, 5, 37, 64, 4059, 10000.0, 1.0, RopeStyle::Normal, 7, 3),
            (256, 4, 37, 256, 4000, 10000.0, 1.0, RopeStyle::Neox, 0, 0),
        ];
        let mut worst = 0f32;
        for &(hd, nh, nt, n_rot, pos0, base, fs, style, off, extra) in &cases {
            let stride = nh * hd + extra;
            let x = rng.vec((off + nt * stride) as usize, 1.0);
            let xb = d.buf(&x);
            let p = ops::RopeParams {
                head_dim: hd,
                n_heads: nh,
                n_tokens: nt,
                n_rot,
                pos0,
                base,
                freq_scale: fs,
                neox: style == RopeStyle::Neox,
                offset: off,
                token_stride: stride,
            };
            d.run(
                &k,
                &[&xb, &d.uniform(&p.bytes())],
                ops::rope_groups(nh, nt, n_rot),
            );
            let mut want = x.clone();
            for t in 0..nt {
                for h in 0..nh {
                    let s = (off + t * stride + h * hd) as usize;
                    math::rope(
                        &mut want[s..s + hd as usize],
                        (pos0 + t) as usize,
                        n_rot as usize,
                        base,
                        fs,
                        style,
                    );
                }
            }
            let what = format!("{} rope hd={hd} pos0={pos0} {style:?}", d.name);
            worst = worst.max(check(&d.read(&xb), &want, 2e-3, 0.0, &what));
        }
        eprintln!("{}: rope max abs error {worst:e}", d.name);
    }
}

#[test]
fn kv_store_writes_halves_at_pos0() {
    let mut rng = Rng(3);
    for d in devices() {
        let k = d.kernel("kv_store", ops::kv_store(&d.v));
        for &(dim, nt, pos0, off, extra, n_ctx) in &[
            (6u32, 37u32, 5u32, 0u32, 0u32, 50u32),
            (512, 1, 4095, 3, 0, 4096),
            (256, 4, 0, 0, 9, 4),
        ] {
            let stride = dim + extra;
            let src = rng.vec((off + nt * stride) as usize, 4.0);
            let sentinel = 0x3c00_3c00u32; // two halves of 1.0
            let cache = d.words(&vec![sentinel; (n_ctx * dim / 2) as usize]);
            let p = ops::KvStoreParams {
                dim,
                n_tokens: nt,
                pos0,
                src_offset: off,
                src_stride: stride,
            };
            d.run(
                &k,
                &[&d.buf(&src), &cache, &d.uniform(&p.bytes())],
                ops::kv_store_groups(dim, nt),
            );
            let halves: Vec<u16> = d
                .read_u32(&cache)
                .iter()
                .flat_map(|w| [*w as u16, (*w >> 16) as u16])
                .collect();
            for (row, chunk) in halves.chunks(dim as usize).enumerate() {
                let row = row as u32;
                for (c, &h) in chunk.iter().enumerate() {
                    let want = if row >= pos0 && row < pos0 + nt {
                        f32_to_f16(src[(off + (row - pos0) * stride) as usize + c])
                    } else {
                        0x3c00
                    };
                    assert!(
                        (h as i32 - want as i32).abs() <= 1,
                        "{} kv_store row {row} col {c}: {h:#x} vs {want:#x}",
                        d.name
                    );
                }
            }
        }
    }
}

struct AttnCase {
    n_head: u32,
    n_kv: u32,
    dk: u32,
    dv: u32,
    nt: u32,
    pos0: u32,
    window: u32,
}

/// f64 attention over the given cache values (exactly what the CPU oracle computes).
fn attention_ref(c: &AttnCase, q: &[f32], kc: &[f32], vc: &[f32], scale: f32) -> Vec<f32> {
    attention_ref_capped(c, q, kc, vc, scale, 0.0)
}

/// [`attention_ref`] with Gemma 2's score soft-capping (`cap * tanh(s / cap)`, 0: none).
fn attention_ref_capped(
    c: &AttnCase,
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    scale: f32,
    cap: f32,
) -> Vec<f32> {
    let (dk, dv, g) = (c.dk as usize, c.dv as usize, (c.n_head / c.n_kv) as usize);
    let (nh, nkv) = (c.n_head as usize, c.n_kv as usize);
    let mut out = vec![0f32; c.nt as usize * nh * dv];
    for t in 0..c.nt as usize {
        let pos = c.pos0 as usize + t;
        let first = if c.window > 0 {
            (pos + 1).saturating_sub(c.window as usize)
        } else {
            0
        };
        for h in 0..nh {
            let kvh = h / g;
            let qh = &q[(t * nh + h) * dk..][..dk];
            let s: Vec<f64> = (first..=pos)
                .map(|p| {
                    let kh = &kc[(p * nkv + kvh) * dk..][..dk];
                    qh.iter()
                        .zip(kh)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * scale as f64
                })
                .map(|x| {
                    if cap > 0.0 {
                        cap as f64 * (x / cap as f64).tanh()
                    } else {
                        x
                    }
                })
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            let o = &mut out[(t * nh + h) * dv..][..dv];
            for (i, p) in (first..=pos).enumerate() {
                let vh = &vc[(p * nkv + kvh) * dv..][..dv];
                for (oi, &vi) in o.iter_mut().zip(vh) {
                    *oi += (e[i] / sum * vi as f64) as f32;
                }
            }
        }
    }
    out
}

/// The barrier-free attention for CPU-backed devices with subgroups, when this device
/// runs it for these head dims (lavapipe does).
fn rows_kernel(d: &Dev, cs: &AttnCase) -> Option<Kernel> {
    (d.ctx.caps.subgroup_min_size >= 8 && ops::attention_rows_supported(cs.dk, cs.dv))
        .then(|| d.kernel("attention_rows", ops::attention_rows(cs.dk, cs.dv)))
}

/// The attention kernels to check for a case, with their workgroups: the portable one,
/// and `rows` (see [`rows_kernel`]).
fn attention_kernels<'a>(
    portable: &'a Kernel,
    rows: Option<&'a Kernel>,
    cs: &AttnCase,
    plan: &ops::AttentionPlan,
) -> Vec<(&'a Kernel, (u32, u32, u32))> {
    let mut v = vec![(portable, plan.groups)];
    if let Some(r) = rows {
        v.push((r, ops::attention_rows_groups(plan, cs.n_head, cs.nt)));
    }
    v
}

#[test]
fn attention_gqa_causal_window_decode_and_prefill() {
    let mut rng = Rng(4);
    let c = |n_head, n_kv, dk, dv, nt, pos0, window| AttnCase {
        n_head,
        n_kv,
        dk,
        dv,
        nt,
        pos0,
        window,
    };
    let cases = [
        c(4, 4, 64, 64, 1, 0, 0),        // one key, GQA 1
        c(6, 2, 64, 64, 37, 20, 0),      // prefill after a prefix, GQA 3
        c(7, 1, 256, 256, 1, 4095, 0),   // long decode, GQA 7, head_dim 256 (split)
        c(14, 2, 64, 64, 37, 100, 16),   // prefill, GQA 7, window smaller than the sequence
        c(8, 4, 256, 256, 1, 3000, 512), // Gemma-like sliding-window decode
        c(4, 2, 128, 64, 9, 3, 5),       // head_dim_k != head_dim_v
    ];
    for d in devices() {
        let k = d.kernel("attention", ops::attention(&d.v));
        let kc_comb = d.kernel("attention_combine", ops::attention_combine(&d.v));
        for (ci, cs) in cases.iter().enumerate() {
            let kv_len = (cs.pos0 + cs.nt) as usize;
            let q = rng.vec((cs.nt * cs.n_head * cs.dk) as usize, 3.0);
            let k32 = rng.vec(kv_len * (cs.n_kv * cs.dk) as usize, 1.0);
            let v32 = rng.vec(kv_len * (cs.n_kv * cs.dv) as usize, 1.0);
            let to_h = |x: &[f32]| -> (Vec<u32>, Vec<f32>) {
                let h: Vec<u16> = x.iter().map(|&v| f32_to_f16(v)).collect();
                let words = h
                    .chunks(2)
                    .map(|p| p[0] as u32 | (p[1] as u32) << 16)
                    .collect();
                (words, h.iter().map(|&b| f16_to_f32(b)).collect())
            };
            let (kw, k16) = to_h(&k32);
            let (vw, v16) = to_h(&v32);
            let scale = 1.0 / (cs.dk as f32).sqrt();
            let want = attention_ref(cs, &q, &k16, &v16, scale);
            let want32 = attention_ref(cs, &q, &k32, &v32, scale);
            let planned = ops::attention_plan(cs.n_head, cs.n_kv, cs.dv, cs.nt, cs.pos0);
            let rows = rows_kernel(&d, cs);
            if ci == 2 {
                assert!(planned.n_splits > 1, "long decode must split: {planned:?}");
            }
            // Run the planned split and a forced single pass.
            let kv_len = kv_len as u32;
            let single = ops::AttentionPlan {
                split_len: kv_len,
                n_splits: 1,
                groups: (1, planned.groups.1, planned.groups.2),
                combine_groups: None,
                scratch_f32s: 0,
            };
            for plan in [planned, single] {
                let p = ops::AttentionParams::new(
                    cs.n_head, cs.n_kv, cs.dk, cs.dv, cs.nt, cs.pos0, cs.window, scale, &plan,
                );
                let pb = d.uniform(&p.bytes());
                let (qb, kb, vb) = (d.buf(&q), d.words(&kw), d.words(&vw));
                assert!(plan.scratch_f32s <= ops::attention_scratch_max_f32s(cs.dv));
                for (kernel, groups) in attention_kernels(&k, rows.as_ref(), cs, &plan) {
                    let out = d.ctx.storage("out", want.len() as u64 * 4);
                    let scratch = d.ctx.storage("scratch", plan.scratch_f32s.max(1) * 4);
                    d.run(kernel, &[&qb, &kb, &vb, &out, &pb, &scratch], groups);
                    if let Some(g) = plan.combine_groups {
                        d.run(&kc_comb, &[&scratch, &out, &pb], g);
                    }
                    let got = d.read(&out);
                    let what = format!(
                        "{} {} case {ci} splits={}",
                        d.name, kernel.name, plan.n_splits
                    );
                    let err = check(&got, &want, 2e-5, 0.0, &what);
                    let err32 = check(&got, &want32, 5e-3, 0.0, &format!("{what} vs f32 cache"));
                    eprintln!("{what}: max err {err:e} (vs f32 KV {err32:e})");
                }
            }
        }
    }
}

/// Gemma 2's attention soft-cap: scores large enough (q up to ±60 per element, spread ≈ 20) that the cap
/// at 50 bends them, in decode (split keys) and prefill, with a sliding window.
#[test]
fn attention_score_softcap() {
    let mut rng = Rng(14);
    let cases = [
        AttnCase {
            n_head: 8,
            n_kv: 4,
            dk: 256,
            dv: 256,
            nt: 1,
            pos0: 700,
            window: 0,
        },
        AttnCase {
            n_head: 8,
            n_kv: 4,
            dk: 256,
            dv: 256,
            nt: 21,
            pos0: 30,
            window: 16,
        },
    ];
    for d in devices() {
        let k = d.kernel("attention", ops::attention(&d.v));
        let kc_comb = d.kernel("attention_combine", ops::attention_combine(&d.v));
        for (ci, cs) in cases.iter().enumerate() {
            let kv_len = (cs.pos0 + cs.nt) as usize;
            let q = rng.vec((cs.nt * cs.n_head * cs.dk) as usize, 60.0);
            let kh: Vec<u16> = rng
                .vec(kv_len * (cs.n_kv * cs.dk) as usize, 1.0)
                .iter()
                .map(|&v| f32_to_f16(v))
                .collect();
            let vh: Vec<u16> = rng
                .vec(kv_len * (cs.n_kv * cs.dv) as usize, 1.0)
                .iter()
                .map(|&v| f32_to_f16(v))
                .collect();
            let words = |h: &[u16]| -> Vec<u32> {
                h.chunks(2)
                    .map(|p| p[0] as u32 | (p[1] as u32) << 16)
                    .collect()
            };
            let k16: Vec<f32> = kh.iter().map(|&b| f16_to_f32(b)).collect();
            let v16: Vec<f32> = vh.iter().map(|&b| f16_to_f32(b)).collect();
            let scale = 1.0 / (cs.dk as f32).sqrt();
            let want = attention_ref_capped(cs, &q, &k16, &v16, scale, 50.0);
            let uncapped = attention_ref(cs, &q, &k16, &v16, scale);
            let plan = ops::attention_plan(cs.n_head, cs.n_kv, cs.dv, cs.nt, cs.pos0);
            let p = ops::AttentionParams::new(
                cs.n_head, cs.n_kv, cs.dk, cs.dv, cs.nt, cs.pos0, cs.window, scale, &plan,
            )
            .with_softcap(50.0);
            let pb = d.uniform(&p.bytes());
            let rows = rows_kernel(&d, cs);
            for (kernel, groups) in attention_kernels(&k, rows.as_ref(), cs, &plan) {
                let out = d.ctx.storage("out", want.len() as u64 * 4);
                let scratch = d.ctx.storage("scratch", plan.scratch_f32s.max(1) * 4);
                d.run(
                    kernel,
                    &[
                        &d.buf(&q),
                        &d.words(&words(&kh)),
                        &d.words(&words(&vh)),
                        &out,
                        &pb,
                        &scratch,
                    ],
                    groups,
                );
                if let Some(g) = plan.combine_groups {
                    d.run(&kc_comb, &[&scratch, &out, &pb], g);
                }
                let got = d.read(&out);
                let what = format!("{} softcapped {} case {ci}", d.name, kernel.name);
                let err = check(&got, &want, 5e-5, 0.0, &what);
                // The cap must matter here, or this test checks nothing.
                let bend = want
                    .iter()
                    .zip(&uncapped)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    bend > 0.05,
                    "{what}: the cap barely changes the output ({bend})"
                );
                eprintln!("{what}: max err {err:e}, cap moved outputs by up to {bend:.3}");
            }
        }
    }
}

/// RoPE with per-pair frequency divisors: Llama 3's `rope_freqs` (adjacent pairs) and
/// Phi-3's LongRoPE factors (NeoX halves, head_dim 96).
#[test]
fn rope_with_frequency_factors() {
    let mut rng = Rng(15);
    for d in devices() {
        let k = d.kernel("rope_factors", ops::rope_factors(&d.v));
        // (head_dim, heads, tokens, pos0, base, style)
        let cases = [
            (128u32, 3u32, 9u32, 4090u32, 500000.0f32, RopeStyle::Normal),
            (96, 4, 37, 100, 10000.0, RopeStyle::Neox),
        ];
        for &(hd, nh, nt, pos0, base, style) in &cases {
            let factors: Vec<f32> = (0..hd / 2).map(|_| 1.0 + 15.5 * (rng.f() + 1.0)).collect();
            let x = rng.vec((nt * nh * hd) as usize, 1.0);
            let xb = d.buf(&x);
            let p = ops::RopeParams {
                head_dim: hd,
                n_heads: nh,
                n_tokens: nt,
                n_rot: hd,
                pos0,
                base,
                freq_scale: 1.0,
                neox: style == RopeStyle::Neox,
                offset: 0,
                token_stride: nh * hd,
            };
            d.run(
                &k,
                &[&xb, &d.uniform(&p.bytes()), &d.buf(&factors)],
                ops::rope_groups(nh, nt, hd),
            );
            let mut want = x.clone();
            for (i, head) in want.chunks_mut(hd as usize).enumerate() {
                let pos = (pos0 + i as u32 / nh) as usize;
                math::rope_factors(head, pos, hd as usize, base, 1.0, style, Some(&factors));
            }
            let mut plain = x.clone();
            for (i, head) in plain.chunks_mut(hd as usize).enumerate() {
                let pos = (pos0 + i as u32 / nh) as usize;
                math::rope(head, pos, hd as usize, base, 1.0, style);
            }
            assert!(
                want.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 0.1),
                "the factors must matter"
            );
            let what = format!("{} rope_factors hd={hd} {style:?}", d.name);
            check(&d.read(&xb), &want, 2e-3, 0.0, &what);
        }
    }
}

#[test]
fn glu_add_bias_softcap() {
    let mut rng = Rng(5);
    for d in devices() {
        for act in ["silu", "gelu"] {
            let k = d.kernel(act, ops::glu(&d.v, act));
            for n in [1u32, 1000, 70001] {
                let mut gate = rng.vec(n as usize, 6.0);
                gate[0] = if act == "gelu" { -25.0 } else { -100.0 }; // saturated tails
                let up = rng.vec(n as usize, 2.0);
                let gb = d.buf(&gate);
                let p = ops::ElementwiseParams::n(n);
                d.run(
                    &k,
                    &[&gb, &d.buf(&up), &d.uniform(&p.bytes())],
                    ops::glu_groups(n),
                );
                let f = if act == "silu" {
                    math::silu
                } else {
                    math::gelu_tanh
                };
                let want: Vec<f32> = gate.iter().zip(&up).map(|(&g, &u)| f(g) * u).collect();
                check(
                    &d.read(&gb),
                    &want,
                    1e-6,
                    1e-5,
                    &format!("{} glu {act} n={n}", d.name),
                );
            }
        }
        // Stacked rows [gate | up] of one buffer: the gate halves become act(gate) * up,
        // the up halves stay.
        for act in ["silu", "gelu"] {
            let k = d.kernel(act, ops::glu_pair(&d.v, act));
            let (ff, rows) = (4864u32, 3u32);
            let x = rng.vec((2 * ff * rows) as usize, 6.0);
            let xb = d.buf(&x);
            let p = ops::ElementwiseParams::bias(ff * rows, ff);
            d.run(
                &k,
                &[&xb, &d.uniform(&p.bytes())],
                ops::glu_groups(ff * rows),
            );
            let f = if act == "silu" {
                math::silu
            } else {
                math::gelu_tanh
            };
            let mut want = x.clone();
            for row in want.chunks_mut(2 * ff as usize) {
                let (g, u) = row.split_at_mut(ff as usize);
                for (g, u) in g.iter_mut().zip(u.iter()) {
                    *g = f(*g) * u;
                }
            }
            let what = format!("{} glu_pair {act}", d.name);
            check(&d.read(&xb), &want, 1e-6, 1e-5, &what);
        }
        let k = d.kernel("add", ops::add(&d.v));
        let n = 4099u32;
        let (a, b) = (rng.vec(n as usize, 1.0), rng.vec(n as usize, 1.0));
        let ab = d.buf(&a);
        d.run(
            &k,
            &[
                &ab,
                &d.buf(&b),
                &d.uniform(&ops::ElementwiseParams::n(n).bytes()),
            ],
            ops::add_groups(n),
        );
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        check(&d.read(&ab), &want, 0.0, 0.0, &format!("{} add", d.name));

        let k = d.kernel("add_bias", ops::add_bias(&d.v));
        let (period, rows) = (7u32, 37u32);
        let n = period * rows;
        let (x, bias) = (rng.vec(n as usize, 1.0), rng.vec(period as usize, 1.0));
        let xb = d.buf(&x);
        let p = ops::ElementwiseParams::bias(n, period);
        d.run(
            &k,
            &[&xb, &d.buf(&bias), &d.uniform(&p.bytes())],
            ops::add_bias_groups(n),
        );
        let want: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[i % period as usize])
            .collect();
        check(
            &d.read(&xb),
            &want,
            0.0,
            0.0,
            &format!("{} add_bias", d.name),
        );

        let k = d.kernel("softcap", ops::softcap(&d.v));
        let n = 100_003u32;
        let mut x = rng.vec(n as usize, 100.0);
        x[1] = 1e-4;
        x[2] = 1e30;
        let xb = d.buf(&x);
        let p = ops::ElementwiseParams::softcap(n, 30.0);
        d.run(&k, &[&xb, &d.uniform(&p.bytes())], ops::softcap_groups(n));
        let mut want = x.clone();
        math::softcap(&mut want, 30.0);
        check(
            &d.read(&xb),
            &want,
            1e-6,
            1e-5,
            &format!("{} softcap", d.name),
        );
    }
}

/// Logits with planted ties: the max appears at two ids (the lower must win), and a
/// near-top cluster of equal values straddles first-pass workgroup boundaries.
fn planted_logits(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x = rng.vec(n, 10.0);
    if n > 200_000 {
        x[200_001] = 50.0;
        x[123_457] = 50.0;
        for i in (4090..4100).chain(8190..8195).chain([0, n - 1]) {
            x[i] = 40.0;
        }
    }
    x
}

#[test]
fn argmax_first_max_over_262144() {
    let mut rng = Rng(6);
    for d in devices() {
        // Both workgroup sizes: 256 (GPUs) and 8 (CPU-backed devices).
        for small in [false, true] {
            let v = OpsVariant {
                small_groups: small,
                ..d.v
            };
            let k1 = d.kernel("argmax", ops::argmax(&v));
            let k2 = d.kernel("argmax_reduce", ops::argmax_reduce(&v));
            let mut cases: Vec<(Vec<f32>, u32)> = vec![
                (planted_logits(&mut rng, 262_144), 0),
                (vec![0.5], 0),
                (rng.vec(4097, 1.0), 3),
                (vec![-1.0; 5000], 0),
            ];
            let mut last_max = rng.vec(10_000, 1.0);
            last_max[9_999] = 2.0;
            cases.push((last_max, 0));
            // Again, timed without the lazy pipeline JIT of the first dispatch.
            cases.push((planted_logits(&mut rng, 262_144), 0));
            for (logits, off) in cases {
                let n = logits.len() as u32;
                let mut buf = vec![7.0f32; off as usize];
                buf.extend(&logits);
                let out = d.words(&vec![0; ops::argmax_out_words(n) as usize]);
                let p = d.uniform(&ops::SampleParams::argmax(n, off).bytes());
                let t = std::time::Instant::now();
                d.run(&k1, &[&d.buf(&buf), &out, &p], ops::argmax_groups(n));
                d.run(&k2, &[&out, &p], ops::argmax_reduce_groups());
                let got = d.read_u32(&out)[0];
                assert_eq!(got, sampling::argmax(&logits), "{} argmax n={n}", d.name);
                if n == 262_144 {
                    eprintln!(
                        "{}: argmax 262144 in {:?} (two dispatches, with waits)",
                        d.name,
                        t.elapsed()
                    );
                }
            }
        }
    }
}

#[test]
fn top_k_sorted_with_ties_over_262144() {
    let mut rng = Rng(7);
    for d in devices() {
        let k1 = d.kernel("top_k", ops::top_k(&d.v));
        let k2 = d.kernel("top_k_merge", ops::top_k_merge(&d.v));
        let big = planted_logits(&mut rng, 262_144);
        let cases: Vec<(Vec<f32>, u32, u32)> = vec![
            (big.clone(), 64, 0),
            (big.clone(), 40, 0),
            (big, 1, 0),
            (rng.vec(50, 1.0), 50, 2),
            (vec![0.25], 1, 0),
            (vec![1.0; 3000], 10, 0),
            // Ascending: every candidate qualifies, so the buffer fills and sorts often.
            ((0..20_000).map(|i| i as f32 * 0.5).collect(), 64, 0),
        ];
        for (logits, k, off) in cases {
            let n = logits.len() as u32;
            let mut buf = vec![99.0f32; off as usize];
            buf.extend(&logits);
            let p = ops::SampleParams::top_k(n, off, k);
            let out = d.words(&vec![0; ops::top_k_out_words(k, p.n_groups) as usize]);
            let pb = d.uniform(&p.bytes());
            let t = std::time::Instant::now();
            d.run(&k1, &[&d.buf(&buf), &out, &pb], ops::top_k_groups(n));
            d.run(&k2, &[&out, &pb], ops::top_k_merge_groups());
            let words = d.read_u32(&out);
            let got: Vec<(u32, f32)> = (0..k as usize)
                .map(|i| (words[2 * i], f32::from_bits(words[2 * i + 1])))
                .collect();
            assert_eq!(
                got,
                sampling::top_k(&logits, k as usize),
                "{} top_k n={n} k={k}",
                d.name
            );
            if n == 262_144 {
                // The first dispatch of a pipeline includes lavapipe's lazy JIT.
                eprintln!("{}: top_k {k} of 262144 in {:?}", d.name, t.elapsed());
            }
        }
    }
}

/// The fused norms: a post-norm with its residual add, and the Q and K head norms in one
/// dispatch, against the CPU oracle's RMSNorm; both workgroup sizes.
#[test]
fn fused_norms_match_separate_ones() {
    let mut rng = Rng(21);
    for d in devices() {
        for small in [false, true] {
            let v = OpsVariant {
                small_groups: small,
                ..d.v
            };
            let add = d.kernel("rms_norm_add", ops::rms_norm_add(&v));
            let qk = d.kernel("rms_norm_inplace_qk", ops::rms_norm_inplace_qk(&v));
            for &(n, rows) in &[(640u32, 1u32), (896, 7), (5, 3)] {
                let x = rng.vec((n * rows) as usize, 3.0);
                let w = rng.vec(n as usize, 1.0);
                let out0 = rng.vec((n * rows) as usize, 2.0);
                let ob = d.buf(&out0);
                let p = ops::RmsNormParams::rows(n, rows, 1e-6);
                d.run(
                    &add,
                    &[&d.buf(&x), &d.buf(&w), &ob, &d.uniform(&p.bytes())],
                    ops::rms_norm_groups(rows),
                );
                let mut want = x.clone();
                for row in want.chunks_mut(n as usize) {
                    math::rms_norm(row, &w, 1e-6);
                }
                for (wv, o) in want.iter_mut().zip(&out0) {
                    *wv += o;
                }
                let what = format!("{} rms_norm_add n={n} small={small}", d.name);
                check(&d.read(&ob), &want, 1e-5, 1e-5, &what);
            }
            // Q: 4 heads × 3 tokens, K: 1 head × 3 tokens, head dim 256 (Gemma 3's shape).
            for &(hd, q_rows, k_rows) in &[(256u32, 12u32, 3u32), (64, 14, 2)] {
                let q = rng.vec((hd * q_rows) as usize, 2.0);
                let k = rng.vec((hd * k_rows) as usize, 2.0);
                let (wq, wk) = (rng.vec(hd as usize, 1.0), rng.vec(hd as usize, 1.0));
                let (qb, kb) = (d.buf(&q), d.buf(&k));
                let p = ops::RmsNormParams::rows(hd, q_rows, 1e-6).bytes_qk(k_rows);
                d.run(
                    &qk,
                    &[&qb, &d.buf(&wq), &kb, &d.buf(&wk), &d.uniform(&p)],
                    ops::rms_norm_groups(q_rows + k_rows),
                );
                for (got, src, w, name) in [(&qb, &q, &wq, "q"), (&kb, &k, &wk, "k")] {
                    let mut want = src.clone();
                    for row in want.chunks_mut(hd as usize) {
                        math::rms_norm(row, w, 1e-6);
                    }
                    let what = format!("{} rms_norm_inplace_qk {name} hd={hd}", d.name);
                    check(&d.read(got), &want, 1e-6, 1e-5, &what);
                }
            }
        }
    }
}

/// RoPE of Q and K in one dispatch rotates each exactly as a dispatch of its own would.
#[test]
fn rope_qk_matches_rope_per_buffer() {
    let mut rng = Rng(22);
    for d in devices() {
        for factors in [false, true] {
            let fused = d.kernel("rope_qk", ops::rope_qk(&d.v, factors));
            let single = if factors {
                d.kernel("rope_factors", ops::rope_factors(&d.v))
            } else {
                d.kernel("rope", ops::rope(&d.v))
            };
            // (head_dim, q heads, k heads, tokens, n_rot, pos0, neox)
            for &(hd, nh, nkv, nt, n_rot, pos0, neox) in &[
                (64u32, 14u32, 2u32, 3u32, 64u32, 17u32, true),
                (256, 4, 1, 1, 256, 4000, true),
                (128, 6, 3, 5, 96, 0, false),
            ] {
                let q = rng.vec((nt * nh * hd) as usize, 1.0);
                let k = rng.vec((nt * nkv * hd) as usize, 1.0);
                let f: Vec<f32> = (0..n_rot / 2)
                    .map(|_| 1.0 + (rng.f() + 1.0) * 4.0)
                    .collect();
                let params = |heads: u32| ops::RopeParams {
                    head_dim: hd,
                    n_heads: heads,
                    n_tokens: nt,
                    n_rot,
                    pos0,
                    base: 10000.0,
                    freq_scale: 1.0,
                    neox,
                    offset: 0,
                    token_stride: heads * hd,
                };
                let fb = d.buf(&f);
                let (qb, kb) = (d.buf(&q), d.buf(&k));
                let p = d.uniform(&params(nh).bytes_qk(nkv));
                let mut bufs = vec![&qb, &kb, &p];
                if factors {
                    bufs.push(&fb);
                }
                d.run(&fused, &bufs, ops::rope_groups(nh + nkv, nt, n_rot));
                for (got, src, heads, name) in [(&qb, &q, nh, "q"), (&kb, &k, nkv, "k")] {
                    let wb = d.buf(src);
                    let p = d.uniform(&params(heads).bytes());
                    let mut bufs = vec![&wb, &p];
                    if factors {
                        bufs.push(&fb);
                    }
                    d.run(&single, &bufs, ops::rope_groups(heads, nt, n_rot));
                    let what = format!("{} rope_qk {name} hd={hd} factors={factors}", d.name);
                    check(&d.read(got), &d.read(&wb), 0.0, 0.0, &what);
                }
            }
        }
    }
}

/// K and V into their caches in one dispatch, as two kv_store dispatches would.
#[test]
fn kv_store_kv_matches_kv_store() {
    let mut rng = Rng(23);
    for d in devices() {
        let fused = d.kernel("kv_store_kv", ops::kv_store_kv(&d.v));
        let single = d.kernel("kv_store", ops::kv_store(&d.v));
        for &(dk, dv, nt, pos0, n_ctx) in &[(256u32, 256u32, 1u32, 9u32, 16u32), (128, 64, 5, 3, 8)]
        {
            let k = rng.vec((nt * dk) as usize, 3.0);
            let v = rng.vec((nt * dv) as usize, 3.0);
            let sentinel = 0x3c00_3c00u32;
            let kc = d.words(&vec![sentinel; (n_ctx * dk / 2) as usize]);
            let vc = d.words(&vec![sentinel; (n_ctx * dv / 2) as usize]);
            let p = |dim: u32| ops::KvStoreParams {
                dim,
                n_tokens: nt,
                pos0,
                src_offset: 0,
                src_stride: dim,
            };
            d.run(
                &fused,
                &[
                    &d.buf(&k),
                    &d.buf(&v),
                    &kc,
                    &vc,
                    &d.uniform(&p(dk).bytes_kv(dv)),
                ],
                ops::kv_store_kv_groups(dk, dv, nt),
            );
            for (got, src, dim, name) in [(&kc, &k, dk, "k"), (&vc, &v, dv, "v")] {
                let want = d.words(&vec![sentinel; (n_ctx * dim / 2) as usize]);
                d.run(
                    &single,
                    &[&d.buf(src), &want, &d.uniform(&p(dim).bytes())],
                    ops::kv_store_groups(dim, nt),
                );
                assert_eq!(
                    d.read_u32(got),
                    d.read_u32(&want),
                    "{} kv_store_kv {name} dk={dk} dv={dv}",
                    d.name
                );
            }
        }
    }
}

/// A stacked Q/K/V mat-vec's rows handed out to Q, K and V, with and without biases.
#[test]
fn split_qkv_hands_out_rows_and_adds_biases() {
    let mut rng = Rng(24);
    for d in devices() {
        for bias in [false, true] {
            let k = d.kernel("split_qkv", ops::split_qkv(&d.v, bias));
            for &(qd, kd, vd, nt) in &[(896u32, 128u32, 128u32, 3u32), (1024, 256, 256, 1)] {
                let w = qd + kd + vd;
                let src = rng.vec((w * nt) as usize, 2.0);
                let b = rng.vec(w as usize, 1.0);
                let (qb, kb, vb) = (
                    d.buf(&vec![0.0; (qd * nt) as usize]),
                    d.buf(&vec![0.0; (kd * nt) as usize]),
                    d.buf(&vec![0.0; (vd * nt) as usize]),
                );
                let p = ops::SplitParams {
                    n_tokens: nt,
                    qd,
                    kd,
                    vd,
                };
                let (sb, bb, pb) = (d.buf(&src), d.buf(&b), d.uniform(&p.bytes()));
                let mut bufs = vec![&sb, &qb, &kb, &vb];
                if bias {
                    bufs.push(&bb);
                }
                bufs.push(&pb);
                d.run(&k, &bufs, ops::split_qkv_groups(w, nt));
                let mut want = [vec![], vec![], vec![]];
                for t in 0..nt as usize {
                    for c in 0..w as usize {
                        let x = src[t * w as usize + c] + if bias { b[c] } else { 0.0 };
                        let part = (c >= qd as usize) as usize + (c >= (qd + kd) as usize) as usize;
                        want[part].push(x);
                    }
                }
                for (got, want, name) in [
                    (&qb, &want[0], "q"),
                    (&kb, &want[1], "k"),
                    (&vb, &want[2], "v"),
                ] {
                    let what = format!("{} split_qkv {name} bias={bias}", d.name);
                    check(&d.read(got), want, 0.0, 0.0, &what);
                }
            }
        }
    }
}
