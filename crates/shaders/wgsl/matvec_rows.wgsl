// Mat-vec for CPU-backed devices (lavapipe, SwiftShader): whole rows per invocation.
// y[y_offset + t*y_stride + r] (+)= sum_c W[r][c] * x[x_offset + t*x_stride + c], 1..=8
// tokens per pass (one with TOK1), same bindings and params as matvec.wgsl.
//
// On such a device an invocation is one SIMD slot of a CPU core: every storage load is a
// per-lane loop, and a barrier switches coroutines. So each invocation walks whole rows
// (no reduction, no barrier); the activation index depends only on uniform values;
// activations are read as vec4s and each one serves several rows; quantized rows go a
// block (32 columns) at a time through `dq32`, which reads each weight word once. Real
// GPUs use matvec.wgsl, whose lanes share a row and read it coalesced.
//
// Rows: invocation `i` of the grid takes rows i, i + n, i + 2n, ... (n = invocations in
// the grid), RPI of them: 8 for one token, 2 for a batch (whose dequantized blocks also
// serve every token of the pass). Measured on lavapipe, SmolLM2 Q4_1, CPU time per
// token: decode 194 -> 124 ms (RPI 1 -> 8), prefill 61 -> 36 ms (1 -> 2 rows).

struct MatParams {
    rows: u32, cols: u32, n_tokens: u32, x_offset: u32,
    x_stride: u32, y_offset: u32, y_stride: u32, accumulate: u32,
}

@group(0) @binding(0) var<storage, read> W: array<u32>;
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
const ROWS: u32 = 32u;
const TOK: u32 = 16u;
const RPI: u32 = 2u;
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
                let xb = P.x_offset + (t0 + t) * P.x_stride + c;
                // Columns past the row end: weights are zero, keep x out of it too.
                if (c + 8u > P.cols) {
                    var s = 0.0;
                    let wv = array<f32, 8>(w.a.x, w.a.y, w.a.z, w.a.w, w.b.x, w.b.y, w.b.z, w.b.w);
                    for (var k = 0u; k < 8u; k++) {
                        if (c + k < P.cols) { s += wv[k] * X[xb + k]; }
                    }
                    acc[t] += s;
                    continue;
                }
                acc[t] += dot(w.a, xv(xb)) + dot(w.b, xv(xb + 4u));
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
    // A batch: two rows, each dequantized block used for every token of the pass and
    // each activation load for both rows.
    let last = max(P.rows, 1u) - 1u;
    let row2 = row + stride;
    let rb = min(row, last) * row_bytes(P.cols);
    let rb2 = min(row2, last) * row_bytes(P.cols);
    var acc = array<f32, TOK>();
    var acc2 = array<f32, TOK>();
    for (var s = 0u; s < ns; s++) {
        let w = dq32(rb, s);
        let w2 = dq32(rb2, s);
        let c = 32u * s;
        for (var t = 0u; t < TOK; t++) {
            if (t < nt) {
                let x = xblock(P.x_offset + (t0 + t) * P.x_stride + c, lane);
                var sum = 0.0;
                var sum2 = 0.0;
                for (var k = 0u; k < 8u; k++) {
                    sum += dot(w[k], x[k]);
                    sum2 += dot(w2[k], x[k]);
                }
                acc[t] += sum;
                acc2[t] += sum2;
            }
        }
    }
    for (var t = 0u; t < nt; t++) {
        if (row < P.rows) { store(row, t0 + t, acc[t]); }
        if (row2 < P.rows) { store(row2, t0 + t, acc2[t]); }
    }
#endif
#endif
}
