//! Quantized mat-vec, matmul and get_rows kernels on the machine's real device (lavapipe
//! in CI) against the CPU oracle: `wisp::quant::dequantize` row by row, then an f64 dot.
//!
//! Weights are random bytes with every f16 scale field forced to a modest finite value
//! (random bytes there would give infinities and NaNs that no real file has), so every
//! quant, high bit and packed scale is exercised. Shapes are awkward on purpose: row
//! counts that fill no workgroup or tile evenly, one-block rows, token counts that are not
//! multiples of the mat-vec pass (8) or the matmul tile (64), non-trivial offsets and
//! strides, and `accumulate` on and off. Each test builds one device and compiles each
//! pipeline once (lavapipe JIT-compiles a pipeline in 100–250 ms).
//!
//! Tolerance, relative to Σ|w·x| of the output: 1e-5 for f32 paths (the sums are f32 in a
//! different order than f64, and a GPU may fuse `d*q + m`); 2e-3 for the matmul's f16
//! variant, which rounds weights and activations to f16 in its tiles (≤ 2⁻¹¹ each, ≈1e-3
//! per product), plus 1e-7 per column for f16 subnormals.

use wisp::gpu::kernel::{f32_bytes, u32_bytes};
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::quant::{dequantize, f32_to_f16, GgmlType};
use wisp_shaders::quant::{
    get_rows, get_rows_groups, matmul, matmul_groups, matvec, matvec_groups, matvec_rows,
    matvec_rows_groups, matvec_rows_sg, matvec_single, matvec_single_groups, rows_align,
    MatVariant, MATVEC_ROWS_SG_MIN, QUANT_TYPES,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Byte offsets of the f16 scale fields in one block of `ty`.
fn f16_fields(ty: &str) -> &'static [usize] {
    match ty {
        "Q4_0" | "Q5_0" | "Q8_0" | "IQ4_NL" | "IQ4_XS" => &[0],
        "Q4_1" | "Q5_1" | "Q4_K" | "Q5_K" => &[0, 2],
        "Q2_K" => &[80, 82],
        "Q3_K" => &[108],
        "Q6_K" => &[208],
        _ => &[],
    }
}

fn gg(ty: &str) -> GgmlType {
    GgmlType::from_name(ty).unwrap()
}

fn is_float(ty: &str) -> bool {
    matches!(ty, "F32" | "F16" | "BF16")
}

/// `rows` random rows of `cols` elements of `ty`, in GGUF layout.
fn random_rows(ty: &str, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let t = gg(ty);
    let n = rows * cols;
    match ty {
        "F32" => return (0..n).flat_map(|_| rng.f().to_le_bytes()).collect(),
        "F16" => {
            return (0..n)
                .flat_map(|_| f32_to_f16(rng.f()).to_le_bytes())
                .collect()
        }
        "BF16" => {
            return (0..n)
                .flat_map(|_| ((rng.f().to_bits() >> 16) as u16).to_le_bytes())
                .collect()
        }
        _ => {}
    }
    let bytes = t.bytes_for(n as u64).unwrap() as usize;
    let mut b: Vec<u8> = (0..bytes).map(|_| rng.next() as u8).collect();
    let ts = t.type_size() as usize;
    for block in b.chunks_exact_mut(ts) {
        for &o in f16_fields(ty) {
            // Magnitude in [2^-10, 2^-5], either sign.
            let mag = 2f32.powf(-10.0 + 5.0 * (rng.f() + 1.0) / 2.0);
            let v = if rng.next() & 1 == 0 { mag } else { -mag };
            block[o..o + 2].copy_from_slice(&f32_to_f16(v).to_le_bytes());
        }
    }
    b
}

fn dequant_rows(ty: &str, w: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    let rb = w.len() / rows;
    for r in 0..rows {
        dequantize(
            gg(ty),
            &w[r * rb..(r + 1) * rb],
            &mut out[r * cols..(r + 1) * cols],
        )
        .unwrap();
    }
    out
}

#[derive(Clone, Copy)]
struct Case {
    rows: usize,
    blocks: usize,
    /// Column count used by the float types (any count is allowed there).
    float_cols: usize,
    n: usize,
    accumulate: bool,
    x_offset: usize,
    x_pad: usize,
    y_offset: usize,
    y_pad: usize,
}

const CASES: &[Case] = &[
    // One token, rows whose windows are 8- or 16-byte aligned for most types (the
    // one-token row kernel is specialised on the alignment, `rows_align`).
    Case {
        rows: 70,
        blocks: 8,
        float_cols: 64,
        n: 1,
        accumulate: false,
        x_offset: 0,
        x_pad: 0,
        y_offset: 0,
        y_pad: 0,
    },
    Case {
        rows: 9,
        blocks: 4,
        float_cols: 33,
        n: 1,
        accumulate: true,
        x_offset: 8,
        x_pad: 4,
        y_offset: 1,
        y_pad: 2,
    },
    // One token over several windows of the row kernel (4 blocks each), the last partial.
    Case {
        rows: 65,
        blocks: 6,
        float_cols: 70,
        n: 1,
        accumulate: false,
        x_offset: 4,
        x_pad: 4,
        y_offset: 2,
        y_pad: 0,
    },
    Case {
        rows: 130,
        blocks: 9,
        float_cols: 9,
        n: 1,
        accumulate: true,
        x_offset: 0,
        x_pad: 0,
        y_offset: 0,
        y_pad: 3,
    },
    Case {
        rows: 1,
        blocks: 1,
        float_cols: 1,
        n: 1,
        accumulate: false,
        x_offset: 0,
        x_pad: 0,
        y_offset: 0,
        y_pad: 0,
    },
    Case {
        rows: 7,
        blocks: 3,
        float_cols: 37,
        n: 2,
        accumulate: true,
        x_offset: 5,
        x_pad: 3,
        y_offset: 2,
        y_pad: 5,
    },
    Case {
        rows: 33,
        blocks: 1,
        float_cols: 8,
        n: 5,
        accumulate: false,
        x_offset: 1,
        x_pad: 1,
        y_offset: 3,
        y_pad: 7,
    },
    Case {
        rows: 257,
        blocks: 2,
        float_cols: 93,
        n: 17,
        accumulate: true,
        x_offset: 7,
        x_pad: 9,
        y_offset: 11,
        y_pad: 43,
    },
    Case {
        rows: 33,
        blocks: 4,
        float_cols: 256,
        n: 64,
        accumulate: false,
        x_offset: 0,
        x_pad: 2,
        y_offset: 1,
        y_pad: 0,
    },
    Case {
        rows: 257,
        blocks: 1,
        float_cols: 61,
        n: 64,
        accumulate: true,
        x_offset: 3,
        x_pad: 0,
        y_offset: 0,
        y_pad: 1,
    },
    Case {
        rows: 7,
        blocks: 2,
        float_cols: 15,
        n: 8,
        accumulate: true,
        x_offset: 0,
        x_pad: 0,
        y_offset: 0,
        y_pad: 0,
    },
];

/// Run one case of `kernel`; `Err` describes the first mismatch.
#[allow(clippy::too_many_arguments)]
fn run_case(
    ctx: &GpuContext,
    kernel: &wisp::gpu::kernel::Kernel,
    groups: fn(u32, u32) -> (u32, u32, u32),
    ty: &str,
    c: &Case,
    tol: f64,
    abs_per_col: f64,
    rng: &mut Rng,
    texture: bool,
) -> Result<(), String> {
    let block = gg(ty).block_size() as usize;
    let cols = if is_float(ty) {
        c.float_cols
    } else {
        c.blocks * block
    };
    let w = random_rows(ty, c.rows, cols, rng);
    let wf = dequant_rows(ty, &w, c.rows, cols);
    let x_stride = cols + c.x_pad;
    let y_stride = c.rows + c.y_pad;
    let x: Vec<f32> = (0..c.x_offset + c.n * x_stride + 3)
        .map(|_| rng.f())
        .collect();
    let y0: Vec<f32> = (0..c.y_offset + c.n * y_stride + 5)
        .map(|_| rng.f())
        .collect();
    let params = [
        c.rows,
        cols,
        c.n,
        c.x_offset,
        x_stride,
        c.y_offset,
        y_stride,
        c.accumulate as usize,
    ]
    .map(|v| v as u32);
    let xb = ctx.storage_init("x", &f32_bytes(&x));
    let yb = ctx.storage_init("y", &f32_bytes(&y0));
    let pb = ctx.uniform_init("p", &u32_bytes(&params));
    let wb = ctx.storage_init("w", &w);
    let wt = ctx
        .weights_texture_init("w", &w)
        .create_view(&Default::default());
    let weights = if texture {
        wisp::gpu::wgpu::BindingResource::TextureView(&wt)
    } else {
        wb.as_entire_binding()
    };
    let rest = [&xb, &yb, &pb].map(|b| b.as_entire_binding());
    ctx.run_once_with(
        kernel,
        std::iter::once(weights).chain(rest).collect(),
        groups(c.rows as u32, c.n as u32),
    )
    .map_err(|e| e.to_string())?;
    let y = ctx.read_f32(&yb).map_err(|e| e.to_string())?;
    let mut want: Vec<f64> = y0.iter().map(|&v| v as f64).collect();
    let mut bound = vec![0f64; want.len()];
    for t in 0..c.n {
        for r in 0..c.rows {
            let (mut s, mut a) = (0f64, 0f64);
            for k in 0..cols {
                let p = wf[r * cols + k] as f64 * x[c.x_offset + t * x_stride + k] as f64;
                s += p;
                a += p.abs();
            }
            let i = c.y_offset + t * y_stride + r;
            want[i] = if c.accumulate { want[i] + s } else { s };
            bound[i] = tol * (a + if c.accumulate { want[i].abs() } else { 0.0 })
                + abs_per_col * cols as f64;
        }
    }
    for (i, (&g, &wv)) in y.iter().zip(&want).enumerate() {
        // Untouched elements (bound 0) must be bit-identical.
        if (g as f64 - wv).abs() > bound[i] || !g.is_finite() {
            return Err(format!(
                "rows {} cols {cols} n {} acc {}: y[{i}] = {g}, want {wv} (±{:e})",
                c.rows, c.n, c.accumulate, bound[i]
            ));
        }
    }
    Ok(())
}

fn check_device(opts: DeviceOptions, seed: u64) {
    let ctx = GpuContext::new_blocking(&opts).expect("a device (install mesa-vulkan-drivers)");
    let v = MatVariant { f16: ctx.caps.f16 };
    eprintln!(
        "{} ({}), f16 {}",
        ctx.caps.adapter_name, ctx.caps.backend, v.f16
    );
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    let start = std::time::Instant::now();
    type Source = fn(&str, u32) -> String;
    type Groups = fn(u32, u32) -> (u32, u32, u32);
    let sg = ctx.caps.subgroup_min_size >= MATVEC_ROWS_SG_MIN;
    let rows_groups: Groups = |r, n| matvec_rows_groups(r, n, false);
    let rows1_groups: Groups = |r, n| matvec_rows_groups(r, n, true);
    for ty in QUANT_TYPES {
        // (name, source for a column count, workgroups, f16 tolerance, weights in a
        // texture). The one-token row kernels are specialised on the columns' alignment.
        let mut kernels: Vec<(&str, Source, Groups, bool, bool)> = vec![
            (
                "matvec",
                |ty, _| matvec(ty, &MatVariant::default()).unwrap(),
                matvec_groups,
                false,
                false,
            ),
            (
                "matvec_single",
                |ty, _| matvec_single(ty).unwrap(),
                matvec_single_groups,
                false,
                false,
            ),
            (
                "matvec_rows",
                |ty, _| matvec_rows(ty, false, 0, false).unwrap(),
                rows_groups,
                false,
                false,
            ),
            (
                "matvec_rows_single",
                |ty, c| matvec_rows(ty, true, rows_align(ty, c, true), false).unwrap(),
                rows1_groups,
                false,
                false,
            ),
            (
                "matvec_rows_tex",
                |ty, _| matvec_rows(ty, false, 0, true).unwrap(),
                rows_groups,
                false,
                true,
            ),
            (
                "matvec_rows_single_tex",
                |ty, c| matvec_rows(ty, true, rows_align(ty, c, true), true).unwrap(),
                rows1_groups,
                false,
                true,
            ),
        ];
        if v.f16 {
            kernels.push((
                "matmul",
                |ty, _| matmul(ty, &MatVariant { f16: true }).unwrap(),
                matmul_groups,
                true,
                false,
            ));
        } else {
            kernels.push((
                "matmul",
                |ty, _| matmul(ty, &MatVariant::default()).unwrap(),
                matmul_groups,
                false,
                false,
            ));
        }
        // The subgroup variants where the device runs them (lavapipe: 8 lanes).
        if sg && !is_float(ty) {
            kernels.push((
                "matvec_rows_sg",
                |ty, _| matvec_rows_sg(ty, false, 0, false).unwrap(),
                rows_groups,
                false,
                false,
            ));
            kernels.push((
                "matvec_rows_sg_single",
                |ty, c| matvec_rows_sg(ty, true, rows_align(ty, c, true), false).unwrap(),
                rows1_groups,
                false,
                false,
            ));
            kernels.push((
                "matvec_rows_sg_tex",
                |ty, _| matvec_rows_sg(ty, false, 0, true).unwrap(),
                rows_groups,
                false,
                true,
            ));
            kernels.push((
                "matvec_rows_sg_single_tex",
                |ty, c| matvec_rows_sg(ty, true, rows_align(ty, c, true), true).unwrap(),
                rows1_groups,
                false,
                true,
            ));
        }
        let mut compiled: std::collections::HashMap<String, wisp::gpu::Kernel> = Default::default();
        for (name, source, groups, f16, texture) in kernels {
            let (tol, abs) = if f16 { (2e-3, 1e-7) } else { (1e-5, 0.0) };
            for c in CASES {
                let cols = if is_float(ty) {
                    c.float_cols
                } else {
                    c.blocks * gg(ty).block_size() as usize
                };
                let src = source(ty, cols as u32);
                if !compiled.contains_key(&src) {
                    match ctx.compile(&format!("{name}_{ty}"), &src) {
                        Ok(k) => {
                            compiled.insert(src.clone(), k);
                        }
                        Err(e) => {
                            failures.push(format!("{ty} {name}: {e}"));
                            break;
                        }
                    }
                }
                let k = &compiled[&src];
                // The row-per-invocation kernels read quantized rows' activations as vec4s:
                // offsets and strides are multiples of 4 there (as in the engine).
                let aligned;
                let c = if name.starts_with("matvec_rows") && !is_float(ty) {
                    aligned = Case {
                        x_offset: c.x_offset.next_multiple_of(4),
                        x_pad: c.x_pad.next_multiple_of(4),
                        ..*c
                    };
                    &aligned
                } else {
                    c
                };
                if let Err(e) = run_case(&ctx, k, groups, ty, c, tol, abs, &mut rng, texture) {
                    failures.push(format!("{ty} {name}: {e}"));
                    break;
                }
            }
        }
    }
    eprintln!("{:?}: {:.1} s", opts, start.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn matvec_matmul_default_device() {
    check_device(DeviceOptions::default(), 1);
}

#[test]
fn matvec_matmul_no_f16() {
    check_device(
        DeviceOptions {
            no_f16: true,
            ..Default::default()
        },
        2,
    );
}

#[test]
fn matvec_matmul_webgpu_default_limits() {
    check_device(
        DeviceOptions {
            webgpu_default_limits: true,
            no_f16: true,
            ..Default::default()
        },
        3,
    );
}

/// More than 65535 × 8 rows: the mat-vec's workgroups spill into y (one output head of
/// Gemma 3 needs 32768; this checks the second dimension's indexing).
#[test]
fn matvec_rows_beyond_one_grid_dimension() {
    let opts = DeviceOptions {
        webgpu_default_limits: true,
        no_f16: true,
        ..Default::default()
    };
    let ctx = GpuContext::new_blocking(&opts).unwrap();
    let k = ctx
        .compile(
            "matvec_Q8_0",
            &matvec("Q8_0", &MatVariant::default()).unwrap(),
        )
        .unwrap();
    let groups = matvec_groups(65535 * 8 + 9, 1);
    assert!(groups.1 > 1, "{groups:?}");
    let c = Case {
        rows: 65535 * 8 + 9,
        blocks: 1,
        float_cols: 0,
        n: 1,
        accumulate: false,
        x_offset: 0,
        x_pad: 0,
        y_offset: 0,
        y_pad: 0,
    };
    run_case(
        &ctx,
        &k,
        matvec_groups,
        "Q8_0",
        &c,
        1e-5,
        0.0,
        &mut Rng(4),
        false,
    )
    .unwrap();
}

fn check_get_rows(opts: DeviceOptions, seed: u64) {
    let ctx = GpuContext::new_blocking(&opts).unwrap();
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    let vocab = 37usize;
    let split = 20usize;
    let ids: Vec<u32> = [0, 36, 19, 20, 5, 5, 33, 21, 1].to_vec();
    let n = ids.len();
    let out_offset = 3usize;
    let scale = 1.5f32;
    for (ty, texture) in QUANT_TYPES.iter().flat_map(|t| [(t, false), (t, true)]) {
        let k = match ctx.compile(&format!("get_rows_{ty}"), &get_rows(ty, texture).unwrap()) {
            Ok(k) => k,
            Err(e) => {
                failures.push(format!("{ty}: {e}"));
                continue;
            }
        };
        let cols = if is_float(ty) {
            45
        } else {
            2 * gg(ty).block_size() as usize
        };
        let w = random_rows(ty, vocab, cols, &mut rng);
        let wf = dequant_rows(ty, &w, vocab, cols);
        let rb = w.len() / vocab;
        let out0: Vec<f32> = (0..out_offset + n * cols + 4)
            .map(|i| -1000.0 - i as f32)
            .collect();
        let ob = ctx.storage_init("out", &f32_bytes(&out0));
        let idb = ctx.storage_init("ids", &u32_bytes(&ids));
        // The table in two chunks, each its own buffer, as a >128 MiB table is split.
        for (start, len) in [(0, split), (split, vocab - split)] {
            let bytes = &w[start * rb..(start + len) * rb];
            let wb = ctx.storage_init("w", bytes);
            let wt = ctx
                .weights_texture_init("w", bytes)
                .create_view(&Default::default());
            let mut p = u32_bytes(&[cols as u32, n as u32, start as u32, len as u32]);
            p.extend(scale.to_le_bytes());
            p.extend(u32_bytes(&[out_offset as u32, 0, 0]));
            let pb = ctx.uniform_init("p", &p);
            let weights = if texture {
                wisp::gpu::wgpu::BindingResource::TextureView(&wt)
            } else {
                wb.as_entire_binding()
            };
            let rest = [&idb, &ob, &pb].map(|b| b.as_entire_binding());
            ctx.run_once_with(
                &k,
                std::iter::once(weights).chain(rest).collect(),
                get_rows_groups(cols as u32, n as u32),
            )
            .unwrap();
        }
        let out = ctx.read_f32(&ob).unwrap();
        let mut want = out0.clone();
        for (t, &id) in ids.iter().enumerate() {
            for c in 0..cols {
                want[out_offset + t * cols + c] = wf[id as usize * cols + c] * scale;
            }
        }
        let maxw = wf.iter().fold(0f32, |m, v| m.max(v.abs())) * scale;
        // Exact up to a fused multiply-add in dequantization.
        if let Some(i) = (0..out.len()).find(|&i| (out[i] - want[i]).abs() > 1e-6 * maxw) {
            failures.push(format!(
                "{ty} texture {texture}: out[{i}] = {}, want {}",
                out[i], want[i]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn get_rows_default_device() {
    check_get_rows(DeviceOptions::default(), 5);
}

#[test]
fn get_rows_no_f16() {
    check_get_rows(
        DeviceOptions {
            no_f16: true,
            ..Default::default()
        },
        6,
    );
}

#[test]
fn get_rows_webgpu_default_limits() {
    check_get_rows(
        DeviceOptions {
            webgpu_default_limits: true,
            no_f16: true,
            ..Default::default()
        },
        7,
    );
}
