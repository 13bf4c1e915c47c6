//! Kernels over quantized weights: decode mat-vec, prefill matmul and embedding lookup,
//! for every weight type Wisp runs on the GPU.
//!
//! # Layout decision
//!
//! Weights stay in GPU memory exactly as the GGUF file stores them (llama.cpp's block
//! layout, rows back to back), bound as `array<u32>`. Nothing is repacked at load: the
//! browser streams file bytes straight into GPU buffers, and a row chunk of a split
//! tensor is just a byte range. The price is alignment: blocks of 18, 22, 34, 110 … bytes
//! leave fields 2-byte aligned, so kernels read whole words and shift; f16 scales go
//! through `unpack2x16float`, which needs no `shader-f16`.
//!
//! On native CPU-backed devices (`Capabilities::texture_weights`) the same bytes, in the
//! same order, are the texels of an rgba32uint texture instead ([`TEXTURE_WIDTH`] texels
//! of 16 bytes per row, `wgsl/weights.wgsl`): llvmpipe fetches a texel with a branch-free
//! gather, where a storage load is a per-lane loop with a bounds check per word. Measured
//! with `perf stat` on the decode kernel: 28-46% fewer instructions; with each invocation
//! walking its rows in turn (one byte run per lane, which the CPU's prefetcher follows)
//! the 32768-row head runs 26-62% faster by type (`wisp bench --kernels`). Kernels read
//! the weights only through `wd` (a word) and `wv4` (16 bytes), so one source serves both.
//!
//! Each type contributes one WGSL function, `dq8`, returning the f32 weights of eight
//! consecutive columns of a row (see `wgsl/quant_dequant.wgsl`); the mat-vec, the matmul
//! and get_rows are generic over it. Weights are dequantized in registers and never
//! written back to memory.
//!
//! # Two kernel layouts
//!
//! GPUs get [`matvec`] / [`matvec_single`] (the 32 lanes of a row read it coalesced and
//! meet in a workgroup reduction) and the tiled [`matmul`] for prefill. CPU-backed WebGPU
//! devices (lavapipe, SwiftShader) get [`matvec_rows`] for both: whole rows per
//! invocation, no barriers, loads counted rather than bytes, since there a storage load is
//! a per-lane loop and a barrier a coroutine switch (details in `wgsl/matvec_rows.wgsl`).
//! Natively, with subgroups of 8 or more lanes, [`matvec_rows_sg`] shares each block of
//! activations through subgroup broadcasts. For one token the common types read rows in
//! 16-byte loads (`window_wgsl`, generated here unrolled); a batch reads them word by
//! word through `dq32` (the 32-element block types through `dq32b`, one decoder for both
//! readers). The engine picks the layout from the adapter (`wisp::gpu::MatLayout`).
//!
//! # Bindings
//!
//! Mat-vec / matmul: 0 weights `array<u32>` (rows of this chunk), 1 x `array<f32>`,
//! 2 y `array<f32>` (read_write), 3 uniform `MatParams`, 8 u32 (32 bytes):
//! (`rows, cols, n_tokens, x_offset, x_stride, y_offset, y_stride, accumulate`); result
//! `y[y_offset + t*y_stride + r] (+)= Σ_c W[r][c] · x[x_offset + t*x_stride + c]`.
//!
//! get_rows: 0 weights chunk, 1 token ids `array<u32>`, 2 out `array<f32>`, 3 uniform
//! `{cols, n_tokens, row_start, rows_in_chunk, scale: f32, out_offset, _, _}`.
//!
//! # Numerics
//!
//! f32 paths: dequantization performs the CPU oracle's steps (`wisp::quant::dequantize`)
//! in f32, sums are f32 (a GPU may fuse `d*q + m` into an FMA: a rounding apart). Tests
//! accept 1e-5 of Σ|w·x|. The matmul's f16 variant rounds the dequantized weight and the
//! activation to f16 in workgroup memory (relative error ≤ 2⁻¹¹ each, so ≤ ~1e-3 per
//! product) and accumulates in f32: tests accept 2e-3 of Σ|w·x|. Activations beyond f16
//! range (±65504) would overflow that variant; matmul inputs are normed activations.
//!
//! Columns must be a whole number of blocks (GGUF guarantees it); the float types
//! (F32, F16, BF16) take any column count. Byte offsets inside a weights chunk are u32,
//! so a chunk must stay under 4 GiB (the WebGPU binding limit is 128 MiB anyway).

/// Weight types with GPU kernels, named as llama.cpp names them.
pub const QUANT_TYPES: &[&str] = &[
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
    "Q6_K", "IQ4_NL", "IQ4_XS",
];

/// Which optional device features a specialisation may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MatVariant {
    /// `shader-f16` granted: the matmul keeps its workgroup tiles in f16 (half the
    /// workgroup memory and bandwidth). The mat-vec is bandwidth-bound on the weights and
    /// gains nothing from it, so it is the same shader either way. Otherwise pure f32.
    pub f16: bool,
}

/// (elements per block, bytes per block, extra defines) of each type.
fn block_of(ty: &str) -> Option<(u32, u32, &'static [&'static str])> {
    Some(match ty {
        "F32" => (1, 4, &["FLOAT_TAIL"]),
        "F16" | "BF16" => (1, 2, &["FLOAT_TAIL"]),
        "Q4_0" => (32, 18, &["DQ32_BLOCK"]),
        "Q4_1" => (32, 20, &["DQ32_BLOCK"]),
        "Q5_0" => (32, 22, &["DQ32_BLOCK"]),
        "Q5_1" => (32, 24, &["DQ32_BLOCK"]),
        "Q8_0" => (32, 34, &["DQ32_BLOCK"]),
        "IQ4_NL" => (32, 18, &["IQ4"]),
        "Q2_K" => (256, 84, &[]),
        "Q3_K" => (256, 110, &[]),
        "Q4_K" => (256, 144, &["KSCALE"]),
        "Q5_K" => (256, 176, &["KSCALE"]),
        "Q6_K" => (256, 210, &[]),
        "IQ4_XS" => (256, 136, &["IQ4"]),
        _ => return None,
    })
}

const DEQUANT: &str = include_str!("../wgsl/quant_dequant.wgsl");
const WEIGHTS: &str = include_str!("../wgsl/weights.wgsl");
const MATVEC: &str = include_str!("../wgsl/matvec.wgsl");
const MATVEC_ROWS_SRC: &str = include_str!("../wgsl/matvec_rows.wgsl");
const MATMUL: &str = include_str!("../wgsl/matmul.wgsl");
const GET_ROWS: &str = include_str!("../wgsl/get_rows.wgsl");

/// Assemble kernel + dequantization for `ty`.
fn build(ty: &str, kernel: &str, f16: bool) -> Option<String> {
    build_with(ty, kernel, f16, &[])
}

fn build_with(ty: &str, kernel: &str, f16: bool, more: &[&str]) -> Option<String> {
    let (bs, ts, extra) = block_of(ty)?;
    let tdef = format!("T_{ty}");
    let mut defines: Vec<&str> = vec![&tdef];
    defines.extend_from_slice(more);
    defines.extend_from_slice(extra);
    if f16 {
        defines.push("SHADER_F16");
    }
    let mut out = String::new();
    if f16 {
        out.push_str("enable f16;\n");
    }
    out.push_str(&format!("const BS: u32 = {bs}u;\nconst TS: u32 = {ts}u;\n"));
    if extra.contains(&"DQ32_BLOCK") {
        // Words a block is read as (its last one may run into the next block).
        out.push_str(&format!("const NB: u32 = {}u;\n", ts.div_ceil(4)));
    }
    out.push_str(&crate::preprocess(WEIGHTS, &defines));
    out.push_str(&crate::preprocess(kernel, &defines));
    out.push_str(&crate::preprocess(DEQUANT, &defines));
    if defines.contains(&"TEXW") {
        // Texel readers for the helpers a storage buffer serves word by word (a texel
        // fetch per word would read each texel up to four times). Every caller's offset
        // is 2-byte aligned: blocks and their fields have even sizes.
        out.push_str(&reader_wgsl("ld32", 32, 8, 2));
        if extra.contains(&"KSCALE") {
            out.push_str(&reader_wgsl("rd3", 12, 3, 2));
        }
        if extra.contains(&"DQ32_BLOCK") {
            out.push_str(&reader_wgsl("blk", ts, ts.div_ceil(4), 2));
        }
    }
    Some(out)
}

/// Rows per mat-vec workgroup (must match `ROWS` in matvec.wgsl).
const MATVEC_ROWS: u32 = 8;
/// Rows per workgroup of the row-per-invocation mat-vec (`ROWS * RPI` in matvec_rows.wgsl).
const MATVEC_ROWS_PER_GROUP: u32 = 64;
/// Tokens per mat-vec pass (`TOK` in matvec.wgsl).
const MATVEC_TOKENS: u32 = 8;
/// Tokens per pass of the batched row kernel (`TOK` in matvec_rows.wgsl).
const MATVEC_ROWS_TOKENS: u32 = 16;
/// Matmul tile: rows x tokens (`TM`, `TN` in matmul.wgsl).
const MATMUL_TILE: (u32, u32) = (64, 64);
/// Columns per get_rows workgroup (64 invocations x 8 columns).
const GET_ROWS_COLS: u32 = 512;
const MAX_GROUPS: u32 = 65535;

/// `n` workgroups laid out over x and y, each ≤ 65535 (kernels read the row index as
/// `wg.x + wg.y * num_workgroups.x`; the excess workgroups of the last y row exit).
fn spread(n: u32) -> (u32, u32) {
    let n = n.max(1);
    let x = n.min(MAX_GROUPS);
    (x, n.div_ceil(x))
}

/// Mat-vec for CPU-backed devices, one row per invocation (`matvec_rows.wgsl`): same
/// bindings and product as [`matvec`], 1..=16 tokens per pass (`single`: exactly one, the
/// decode step). For the quantized types `x_offset` and `x_stride` must be multiples of 4
/// (activations are read as vec4s); the engine's are 0 and the column count. `align` is
/// [`rows_align`] of the matrix: the one-token kernel is specialised on it. `texture`:
/// the weights are bound as a texture ([`TEXTURE_WIDTH`]) instead of a storage buffer.
pub fn matvec_rows(ty: &str, single: bool, align: u32, texture: bool) -> Option<String> {
    rows_kernel(ty, single, false, align, texture)
}

/// The row kernel's source: for one token and a windowed type, the WIN variant (rows read
/// 16 bytes per load, a window of [`WIN_BLOCKS`] blocks or one K block at a time).
fn rows_kernel(ty: &str, single: bool, sg: bool, align: u32, texture: bool) -> Option<String> {
    block_of(ty)?;
    let win = windowed(ty).filter(|_| single);
    // X_F32: the float rows' tail reads activations as the kernel's `X: array<f32>`.
    let mut defines = vec![dq32_define(ty), "X_F32"];
    if single {
        defines.push("TOK1");
    }
    if sg {
        defines.push("SG");
    }
    if win.is_some() {
        defines.push("WIN");
    }
    if texture {
        defines.push("TEXW");
    }
    let mut src = build_with(ty, MATVEC_ROWS_SRC, false, &defines)?;
    if let Some((bs, ts)) = win {
        src.push_str(&window_wgsl(bs, ts, align));
    }
    Some(src)
}

/// [`matvec_rows`] for devices with subgroups of at least 8 lanes (native only: wgpu's
/// WebGPU backend has no subgroups): each block of activations is one per-lane load and
/// eight broadcasts instead of eight loads. Same bindings, params and workgroups. None for
/// the float types (they keep [`matvec_rows`]).
pub fn matvec_rows_sg(ty: &str, single: bool, align: u32, texture: bool) -> Option<String> {
    if block_of(ty)?.2.contains(&"FLOAT_TAIL") {
        return None;
    }
    rows_kernel(ty, single, true, align, texture)
}

/// Blocks per window of the 16-byte-load decode kernel for 32-element block types (the
/// 256-element K types take one block per window).
const WIN_BLOCKS: u32 = 4;

/// Types the windowed one-token row kernel reads: (elements, bytes) per block.
fn windowed(ty: &str) -> Option<(u32, u32)> {
    let (bs, ts, extra) = block_of(ty)?;
    (extra.contains(&"DQ32_BLOCK") || matches!(ty, "Q4_K" | "Q5_K" | "Q6_K")).then_some((bs, ts))
}

/// Bytes of one window of the one-token row kernel.
fn window_bytes(bs: u32, ts: u32) -> u32 {
    if bs == 32 {
        WIN_BLOCKS * ts
    } else {
        ts
    }
}

/// What the one-token row kernel for a `cols`-column matrix of `ty` is specialised on: the
/// alignment (16, 8, 4 or 2 bytes) every window of every row has within a 16-byte word.
/// A window starts at `row * row_bytes + k * window_bytes` from the binding's start (which
/// WebGPU aligns to 256), so that is gcd(row bytes, window bytes, 16). The more aligned,
/// the fewer loads and selects per window (Q4_K: 11 loads and 78 selects become 9 loads).
/// 0 where the kernel has no windows (a batch, or a type read word by word).
pub fn rows_align(ty: &str, cols: u32, single: bool) -> u32 {
    match windowed(ty).filter(|_| single) {
        Some((bs, ts)) => {
            let gcd = |mut a: u32, mut b: u32| {
                while b != 0 {
                    (a, b) = (b, a % b);
                }
                a
            };
            gcd(gcd((cols / bs) * ts, window_bytes(bs, ts)), 16)
        }
        None => 0,
    }
}

/// WGSL of the windowed reads of the one-token row kernel: `window(b)` returns `NW` words
/// from byte `b` of the weights (`align`-byte aligned, see [`rows_align`]) through 16-byte
/// loads; a window is `WBYTES` bytes of a row, `WX` groups of 32 columns (four 32-element
/// blocks, or one K block); `xwin(c, lane)` loads their activations and `wdot(A, xs,
/// left)` is the window's dot product, over its first `left` groups at most. Written out
/// unrolled: every index must be a constant, or llvmpipe keeps the arrays in memory and
/// reads them lane by lane.
fn window_wgsl(bs: u32, ts: u32, align: u32) -> String {
    use std::fmt::Write;
    let nb = ts.div_ceil(4);
    let bytes = window_bytes(bs, ts);
    let (groups, blocks) = if bs == 32 {
        (WIN_BLOCKS, WIN_BLOCKS)
    } else {
        (bs / 32, 1)
    };
    // Words of the window proper; block j's decoder indexes words (j*ts)/4 .. + nb, one
    // more when it starts 2 bytes into a word. Words past the window are only the
    // overhang of a block's last word, whose bits no decoder uses: they are 0.
    let nwin = bytes.div_ceil(4);
    let nw = (0..blocks)
        .map(|j| (j * ts) / 4 + nb + u32::from(!(j * ts).is_multiple_of(4)))
        .max()
        .unwrap_or(0)
        .max(nwin);
    let mut f = String::new();
    let _ = writeln!(
        f,
        "const WX: u32 = {groups}u;\nconst WBYTES: u32 = {bytes}u;\nconst NW: u32 = {nw}u;"
    );
    f.push_str(&reader_wgsl("window", bytes, nw, align));
    let calls: Vec<String> = (0..groups)
        .map(|j| format!("xblock(c + {}u, lane)", 32 * j))
        .collect();
    let _ = writeln!(
        f,
        "fn xwin(c: u32, lane: u32) -> array<array<vec4<f32>, 8>, WX> {{\n    return array<array<vec4<f32>, 8>, WX>({});\n}}\n",
        calls.join(", ")
    );
    f.push_str("fn wdot(A: array<u32, NW>, xs: array<array<vec4<f32>, 8>, WX>, left: u32) -> f32 {\n    var s = 0.0;\n");
    for j in 0..groups {
        let w = if bs == 32 {
            let o = j * ts;
            let q: Vec<String> = (o / 4..o / 4 + nb)
                .map(|i| {
                    if o.is_multiple_of(4) {
                        format!("A[{i}]")
                    } else {
                        format!("(A[{i}] >> 16u) | (A[{}] << 16u)", i + 1)
                    }
                })
                .collect();
            format!("dq32b(array<u32, NB>({}))", q.join(", "))
        } else {
            format!("dq32k(A, {j}u)")
        };
        let _ = writeln!(f, "    if ({j}u < left) {{ s += dot8({w}, xs[{j}]); }}");
    }
    f.push_str("    return s;\n}\n");
    f
}

/// WGSL of `fn {name}(b: u32) -> array<u32, {n_out}>`: the words of the `bytes` bytes from
/// byte `b` of the weights (`align`-byte aligned, at least 2) through 16-byte reads
/// (`wv4`), as few as the alignment allows, then selects that line the words up. Words
/// past the `bytes` (up to `n_out`) are 0 or whatever follows: callers must not use them.
fn reader_wgsl(name: &str, bytes: u32, n_out: u32, align: u32) -> String {
    use std::fmt::Write;
    // Word k is loaded word o + k, shifted 2 bytes when `b` is 2 mod 4 (o = (b / 4) % 4):
    // how far o and the shift can go depends on the alignment.
    let align = align.clamp(2, 16);
    let nwin = bytes.div_ceil(4);
    let max_o = (16 - align) / 4;
    let half = align < 4;
    let ne = nwin + max_o + u32::from(half);
    let nv = (16 - align + bytes).div_ceil(16);
    let mut f = String::new();
    let _ = writeln!(
        f,
        "fn {name}(b: u32) -> array<u32, {n_out}> {{\n    let v = b >> 4u;"
    );
    for i in 0..nv {
        let _ = writeln!(f, "    let a{i} = wv4(v + {i}u);");
    }
    for i in 0..ne {
        if i < 4 * nv {
            let _ = writeln!(
                f,
                "    let e{i} = a{}.{};",
                i / 4,
                ["x", "y", "z", "w"][i as usize % 4]
            );
        } else {
            let _ = writeln!(f, "    let e{i} = 0u;");
        }
    }
    // Select levels: o's bit 0 (4 bytes), o's bit 1 (8 bytes), then the 2-byte shift.
    let mut cur = "e";
    let mut len = ne;
    for (bit, level, step) in [(4u32, "p", 1u32), (8, "s", 2)] {
        if align > bit {
            continue;
        }
        len -= step;
        let _ = writeln!(f, "    let c{level} = (b & {bit}u) != 0u;");
        for j in 0..len {
            let _ = writeln!(
                f,
                "    let {level}{j} = select({cur}{j}, {cur}{}, c{level});",
                j + step
            );
        }
        cur = level;
    }
    let _ = writeln!(f, "    return array<u32, {n_out}>(");
    for k in 0..n_out {
        let word = if k >= nwin {
            "0u".to_string()
        } else if half {
            format!(
                "select({cur}{k}, ({cur}{k} >> 16u) | ({cur}{} << 16u), (b & 2u) != 0u)",
                k + 1
            )
        } else {
            format!("{cur}{k}")
        };
        let _ = writeln!(f, "        {word},");
    }
    f.push_str("    );\n}\n\n");
    f
}

/// Smallest subgroup [`matvec_rows_sg`] works with.
pub const MATVEC_ROWS_SG_MIN: u32 = 8;

/// Workgroups for [`matvec_rows`]: 64 rows per workgroup over x/y,
/// 16 tokens (or one, when `single`) per z slice.
pub fn matvec_rows_groups(rows: u32, n_tokens: u32, single: bool) -> (u32, u32, u32) {
    let (x, y) = spread(rows.div_ceil(MATVEC_ROWS_PER_GROUP));
    let per = if single { 1 } else { MATVEC_ROWS_TOKENS };
    (x, y, n_tokens.div_ceil(per).max(1))
}

/// Types whose `dq32` reads a whole block at once (the others build it from `dq8`).
fn dq32_define(ty: &str) -> &'static str {
    match ty {
        "Q4_0" | "Q4_1" | "Q5_0" | "Q5_1" | "Q8_0" | "Q4_K" | "Q5_K" | "Q6_K" => "DQ32_NATIVE",
        _ => "DQ32_GENERIC",
    }
}

/// Decode mat-vec for `ty`: tuned for 1..=8 tokens, correct for any count.
pub fn matvec(ty: &str, _v: &MatVariant) -> Option<String> {
    build_with(ty, MATVEC, false, &["X_F32"])
}

/// Mat-vec with one token per z slice (the per-token decode path): same bindings and
/// params as [`matvec`], a single accumulator per lane and a quarter of the reduction
/// traffic; dispatch with [`matvec_single_groups`].
pub fn matvec_single(ty: &str) -> Option<String> {
    build_with(ty, MATVEC, false, &["TOK1", "X_F32"])
}

/// Prefill matmul for `ty`: 64x64 output tiles, each weight dequantized once per tile.
pub fn matmul(ty: &str, v: &MatVariant) -> Option<String> {
    build(ty, MATMUL, v.f16)
}

/// Embedding lookup for `ty` (`texture`: weights bound as a texture, as the row kernels').
pub fn get_rows(ty: &str, texture: bool) -> Option<String> {
    build_with(ty, GET_ROWS, false, if texture { &["TEXW"] } else { &[] })
}

/// Texels (16 bytes each) per row of a weights texture: word `i` of the weights is
/// component `i % 4` of texel `(i / 4) % TEXTURE_WIDTH`, row `i / 4 / TEXTURE_WIDTH`
/// (`wgsl/weights.wgsl` hard-codes it). A 128 MiB chunk is 2048 rows, within WebGPU's
/// default 8192.
pub const TEXTURE_WIDTH: u32 = 4096;

/// Workgroups for [`matvec`]: 8 rows per workgroup over x/y, 8 tokens per z slice.
pub fn matvec_groups(rows: u32, n_tokens: u32) -> (u32, u32, u32) {
    let (x, y) = spread(rows.div_ceil(MATVEC_ROWS));
    (x, y, n_tokens.div_ceil(MATVEC_TOKENS).max(1))
}

/// Workgroups for [`matvec_single`]: 8 rows per workgroup over x/y, one token per z slice.
pub fn matvec_single_groups(rows: u32, n_tokens: u32) -> (u32, u32, u32) {
    let (x, y) = spread(rows.div_ceil(MATVEC_ROWS));
    (x, y, n_tokens.max(1))
}

/// Workgroups for [`matmul`]: 64-row tiles over x/y, 64-token tiles over z.
pub fn matmul_groups(rows: u32, n_tokens: u32) -> (u32, u32, u32) {
    let (x, y) = spread(rows.div_ceil(MATMUL_TILE.0));
    (x, y, n_tokens.div_ceil(MATMUL_TILE.1).max(1))
}

/// Workgroups for [`get_rows`]: 512 columns per workgroup over x, tokens over y/z.
pub fn get_rows_groups(cols: u32, n_tokens: u32) -> (u32, u32, u32) {
    let (y, z) = spread(n_tokens);
    (cols.div_ceil(GET_ROWS_COLS).max(1), y, z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_builds_every_kernel() {
        for ty in QUANT_TYPES {
            for f16 in [false, true] {
                let v = MatVariant { f16 };
                let mv = matvec(ty, &v).unwrap();
                let mm = matmul(ty, &v).unwrap();
                assert!(mv.contains("fn dq8") && mm.contains("fn dq8"), "{ty}");
                assert_eq!(mm.starts_with("enable f16;"), f16);
                let stray = |s: &str| s.lines().any(|l| l.trim_start().starts_with('#'));
                assert!(!stray(&mv) && !stray(&mm), "{ty}: preprocessor left-overs");
            }
            assert!(get_rows(ty, false).unwrap().contains("fn dq8"));
        }
        assert!(matvec("Q8_1", &MatVariant::default()).is_none());
        assert!(matvec_rows_sg("F16", true, 0, false).is_none());
        assert!(matvec_rows_sg("Q4_K", false, 0, false)
            .unwrap()
            .contains("subgroupBroadcast"));
        assert!(!matvec_rows("Q4_K", false, 0, false)
            .unwrap()
            .contains("subgroupBroadcast"));
        for ty in QUANT_TYPES {
            for single in [false, true] {
                let t = matvec_rows(ty, single, 2, true).unwrap();
                assert!(t.contains("texture_2d<u32>") && !t.contains("var<storage, read> W"));
            }
            assert!(get_rows(ty, true).unwrap().contains("texture_2d<u32>"));
        }
        // weights.wgsl's texel addressing is TEXTURE_WIDTH wide.
        assert!(WEIGHTS.contains(&format!(
            "i & {}u, i >> {}u",
            TEXTURE_WIDTH - 1,
            TEXTURE_WIDTH.trailing_zeros()
        )));
    }

    #[test]
    fn groups_stay_within_limits() {
        // Gemma 3's 262144-row output head, one token and a long prompt.
        for (rows, n) in [
            (262144, 1),
            (262144, 512),
            (1, 1),
            (600_000, 3),
            (u32::MAX, 1),
        ] {
            for (x, y, z) in [matvec_groups(rows, n), matmul_groups(rows, n)] {
                assert!(
                    x <= MAX_GROUPS && y <= MAX_GROUPS && z <= MAX_GROUPS,
                    "{rows} {n}"
                );
            }
        }
        let (x, y, _) = matvec_groups(600_000, 1);
        assert!(x as u64 * y as u64 * 8 >= 600_000);
        assert_eq!(matvec_groups(7, 17), (1, 1, 3));
        assert_eq!(matmul_groups(257, 64), (5, 1, 1));
        assert_eq!(get_rows_groups(2560, 70000), (5, 65535, 2));
    }
}
