// Mat-vec for CPU-backed devices (lavapipe, SwiftShader): whole rows per invocation.
// y[y_offset + t*y_stride + r] (+)= sum_c W[r][c] * x[x_offset + t*x_stride + c], 1..=16
// tokens per pass (one with TOK1), same bindings and params as matvec.wgsl.
//
// On such a device an invocation is one SIMD slot of a CPU core: every storage load is a
// per-lane loop (even when all lanes read one address: llvmpipe only makes that a scalar
// load outside any loop or branch), and a barrier switches coroutines. So each invocation
// walks whole rows (no reduction, no barrier) and loads are what to save: each block of
// activations serves several rows (SG: loaded by one per-lane loop and handed out by
// subgroup broadcasts), and a row's bytes are read as few times and as wide as possible.
// Real GPUs use matvec.wgsl, whose lanes share a row and read it coalesced.
//
// Rows: invocation `i` of the grid takes rows i, i + n, i + 2n, ... (n = invocations in
// the grid), RPI of them: 8 for one token, 4 for a batch (whose dequantized blocks also
// serve every token of the pass). One token (WIN, the 32-element block types and
// Q4_K/Q5_K/Q6_K): rows are read through 16-byte loads a window at a time (four blocks, or
// one K block; `window` and `wdot` come from the Rust side, unrolled). A batch reads
// blocks word by word (`dq32`): there the loads are shared by 16 tokens.
//
// Measured on lavapipe (wisp bench --kernels, 2048 columns; benches/README.md has the
// history): Q8_0 decode 3.55 -> 5.9 GB/s with WIN; prefill 74 -> 29 ms per 2048x2048x128
// with SG, 16 tokens and 4 rows. Four rows is the sweet spot: written with arrays or as
// eight named rows, llvmpipe spills and runs 3-60x slower.

struct MatParams {
    rows: u32, cols: u32, n_tokens: u32, x_offset: u32,
    x_stride: u32, y_offset: u32, y_stride: u32, accumulate: u32,
}

#if FLOAT_TAIL
@group(0) @binding(1) var<storage, read> X: array<f32>;
#else
// Quantized rows come in whole 32-column blocks and `x_offset`, `x_stride` are multiples
// of 4 (the Rust side documents it): activations are read 16 bytes at a time.
@group(0) @binding(1) var<storage, read> X4: array<vec4<f32>>;
#endif
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> P: MatParams;

// ROWS invocations per workgroup, RPI rows each: 64 rows per workgroup either way, so
// the 192- to 1536-row matrices of small models still spread over the device's threads.
#if TOK1
const ROWS: u32 = 8u;
const TOK: u32 = 1u;
const RPI: u32 = 8u;
#else
const ROWS: u32 = 16u;
const TOK: u32 = 16u;
const RPI: u32 = 4u;
#endif

fn store(row: u32, t: u32, v: f32) {
    let yi = P.y_offset + t * P.y_stride + row;
    if (P.accumulate != 0u) {
        Y[yi] = Y[yi] + v;
    } else {
        Y[yi] = v;
    }
}

#if FLOAT_TAIL
fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(X[i], X[i + 1u], X[i + 2u], X[i + 3u]);
}

// Float weights (any column count): one row at a time, eight columns per step.
fn float_row(row: u32, t0: u32, nt: u32) {
    var acc = array<f32, TOK>();
    let rb = row * row_bytes(P.cols);
    let ng = (P.cols + 7u) / 8u;
    for (var g = 0u; g < ng; g++) {
        let w = dq8(rb, g, P.cols);
        let c = 8u * g;
        for (var t = 0u; t < TOK; t++) {
            if (t < nt) {
                acc[t] += dot_cols8(w, c, P.x_offset + (t0 + t) * P.x_stride + c, P.cols);
            }
        }
    }
    for (var t = 0u; t < nt; t++) { store(row, t0 + t, acc[t]); }
}
#else
fn xv(i: u32) -> vec4<f32> {
    return X4[i >> 2u];
}

// The 32 activations from float index `xb` (a multiple of 4), the same for every lane.
#if SG
// Subgroup variant (native, subgroups of at least 8 lanes): lane k of the subgroup loads
// the k-th vec4 and broadcasts hand it to the others. A storage load inside a loop costs
// lavapipe a per-lane loop even when every lane reads the same address, so this is one
// such loop instead of eight; prefill, which reloads the activations per token, gains
// the most. Needs every lane of the subgroup active: callers stay in uniform control flow.
fn xblock(xb: u32, lane: u32) -> array<vec4<f32>, 8> {
    let mine = X4[(xb >> 2u) + (lane & 7u)];
    return array<vec4<f32>, 8>(
        subgroupBroadcast(mine, 0u), subgroupBroadcast(mine, 1u),
        subgroupBroadcast(mine, 2u), subgroupBroadcast(mine, 3u),
        subgroupBroadcast(mine, 4u), subgroupBroadcast(mine, 5u),
        subgroupBroadcast(mine, 6u), subgroupBroadcast(mine, 7u));
}
#else
fn xblock(xb: u32, lane: u32) -> array<vec4<f32>, 8> {
    var xs: array<vec4<f32>, 8>;
    for (var k = 0u; k < 8u; k++) { xs[k] = xv(xb + 4u * k); }
    return xs;
}
#endif
#endif

#if WIN
fn dot8(w: array<vec4<f32>, 8>, x: array<vec4<f32>, 8>) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < 8u; k++) { s += dot(w[k], x[k]); }
    return s;
}
#endif

@compute @workgroup_size(ROWS)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32
#if SG
        , @builtin(subgroup_invocation_id) lane: u32
#endif
        ) {
#if !SG
    let lane = 0u;
#endif
    let row = (wg.x + wg.y * nwg.x) * ROWS + li;
    let stride = ROWS * nwg.x * nwg.y;
    let t0 = wg.z * TOK;
    let nt = min(TOK, P.n_tokens - min(t0, P.n_tokens));
#if FLOAT_TAIL
    if (row >= P.rows) { return; }
    for (var r = 0u; r < RPI; r++) {
        if (row + r * stride < P.rows) { float_row(row + r * stride, t0, nt); }
    }
#else
    // No early exit for rows past the end: with SG every lane must reach the broadcasts.
    // Such lanes read the last row and store nothing.
    let ns = P.cols / 32u;
#if WIN
    let xb = P.x_offset + t0 * P.x_stride;
    let last = max(P.rows, 1u) - 1u;
    let rbytes = row_bytes(P.cols);
#if TEXW
    // Decode from a texture: an invocation walks its RPI adjacent rows one after the
    // other, a window at a time (the activations reloaded per row), so each lane reads
    // one run of consecutive bytes. Fetches are branch-free here, which lets the CPU keep
    // many in flight, and eight runs per core are what its prefetcher follows; with the
    // interleaved order below it runs 13-35% slower (Q4_K .. Q8_0, 2048-65536 rows).
    let first = ((wg.x + wg.y * nwg.x) * ROWS + li) * RPI;
    for (var r = 0u; r < RPI; r++) {
        let rr = min(first + r, last);
        var acc = 0.0;
        for (var g = 0u; g < ns; g += WX) {
            // Groups past the row's end are read but not used (wdot's `left`).
            let xs = xwin(xb + 32u * g, lane);
            acc += wdot(window(rr * rbytes + (g / WX) * WBYTES), xs, ns - g);
        }
        if (nt == 1u && first + r < P.rows) { store(first + r, t0, acc); }
    }
#else
    // Decode, a window (WX groups of 32 columns) at a time: its activations are loaded
    // once for RPI rows, each row's bytes for it in 16-byte loads. Rows past the end
    // read the last row.
    var acc = array<f32, RPI>();
    for (var g = 0u; g < ns; g += WX) {
        // Groups past the row's end are read but not used (wdot's `left`).
        let xs = xwin(xb + 32u * g, lane);
        for (var r = 0u; r < RPI; r++) {
            let rr = min(row + r * stride, last);
            acc[r] += wdot(window(rr * rbytes + (g / WX) * WBYTES), xs, ns - g);
        }
    }
    if (nt == 1u) {
        for (var r = 0u; r < RPI; r++) {
            if (row + r * stride < P.rows) { store(row + r * stride, t0, acc[r]); }
        }
    }
#endif
#else
#if TOK1
    // Decode: each activation block is loaded once for RPI rows.
    var acc = array<f32, RPI>();
    let xb = P.x_offset + t0 * P.x_stride;
    for (var s = 0u; s < ns; s++) {
        let xs = xblock(xb + 32u * s, lane);
        for (var r = 0u; r < RPI; r++) {
            let rr = row + r * stride;
            if (rr < P.rows) {
                let w = dq32(rr * row_bytes(P.cols), s);
                var sum = 0.0;
                for (var k = 0u; k < 8u; k++) { sum += dot(w[k], xs[k]); }
                acc[r] += sum;
            }
        }
    }
    if (nt == 1u) {
        for (var r = 0u; r < RPI; r++) {
            if (row + r * stride < P.rows) { store(row + r * stride, t0, acc[r]); }
        }
    }
#else
    // A batch: four rows, each dequantized block used for every token of the pass and
    // each activation block (the costly load on lavapipe) for all four rows.
    let last = max(P.rows, 1u) - 1u;
    let rbytes = row_bytes(P.cols);
    let r0 = min(row, last) * rbytes;
    let r1 = min(row + stride, last) * rbytes;
    let r2 = min(row + 2u * stride, last) * rbytes;
    let r3 = min(row + 3u * stride, last) * rbytes;
    var a0 = array<f32, TOK>();
    var a1 = array<f32, TOK>();
    var a2 = array<f32, TOK>();
    var a3 = array<f32, TOK>();
    for (var s = 0u; s < ns; s++) {
        let w0 = dq32(r0, s);
        let w1 = dq32(r1, s);
        let w2 = dq32(r2, s);
        let w3 = dq32(r3, s);
        let c = 32u * s;
        for (var t = 0u; t < TOK; t++) {
            if (t < nt) {
                let x = xblock(P.x_offset + (t0 + t) * P.x_stride + c, lane);
                var s0 = 0.0;
                var s1 = 0.0;
                var s2 = 0.0;
                var s3 = 0.0;
                for (var k = 0u; k < 8u; k++) {
                    s0 += dot(w0[k], x[k]);
                    s1 += dot(w1[k], x[k]);
                    s2 += dot(w2[k], x[k]);
                    s3 += dot(w3[k], x[k]);
                }
                a0[t] += s0;
                a1[t] += s1;
                a2[t] += s2;
                a3[t] += s3;
            }
        }
    }
    for (var t = 0u; t < nt; t++) {
        if (row < P.rows) { store(row, t0 + t, a0[t]); }
        if (row + stride < P.rows) { store(row + stride, t0 + t, a1[t]); }
        if (row + 2u * stride < P.rows) { store(row + 2u * stride, t0 + t, a2[t]); }
        if (row + 3u * stride < P.rows) { store(row + 3u * stride, t0 + t, a3[t]); }
    }
#endif
#endif
#endif
}
