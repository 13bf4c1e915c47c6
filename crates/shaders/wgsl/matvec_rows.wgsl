// Mat-vec for CPU-backed devices (lavapipe, SwiftShader): one row per invocation.
// y[y_offset + t*y_stride + r] (+)= sum_c W[r][c] * x[x_offset + t*x_stride + c], 1..=8
// tokens per pass (one with TOK1), same bindings and params as matvec.wgsl.
//
// On such a device an invocation is one SIMD slot of a CPU core: every storage load is a
// per-lane loop, and a barrier switches coroutines. So each invocation walks a whole row
// (no reduction, no barrier), the activation index depends only on uniform values (the
// same for every lane), activations are read as vec4s, and quantized rows go a block
// (32 columns) at a time through `dq32`, which reads each weight word once. Real GPUs use
// matvec.wgsl, whose lanes share a row and read it coalesced.

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

const ROWS: u32 = 64u;
#if TOK1
const TOK: u32 = 1u;
#else
const TOK: u32 = 8u;
#endif

#if FLOAT_TAIL
fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(X[i], X[i + 1u], X[i + 2u], X[i + 3u]);
}
#else
fn xv(i: u32) -> vec4<f32> {
    return X4[i >> 2u];
}
#endif

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row = (wg.x + wg.y * nwg.x) * ROWS + li;
    let t0 = wg.z * TOK;
    let nt = min(TOK, P.n_tokens - min(t0, P.n_tokens));
    if (row >= P.rows) { return; }
    var acc = array<f32, TOK>();
    let rb = row * row_bytes(P.cols);
#if FLOAT_TAIL
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
#else
    let ns = P.cols / 32u;
    for (var s = 0u; s < ns; s++) {
        // Dequantized once, used for every token of the pass.
        let w = dq32(rb, s);
        let c = 32u * s;
        for (var t = 0u; t < TOK; t++) {
            if (t < nt) {
                let xb = P.x_offset + (t0 + t) * P.x_stride + c;
                var sum = 0.0;
                for (var k = 0u; k < 8u; k++) { sum += dot(w[k], xv(xb + 4u * k)); }
                acc[t] += sum;
            }
        }
    }
#endif
    for (var t = 0u; t < nt; t++) {
        let yi = P.y_offset + (t0 + t) * P.y_stride + row;
        var v = acc[t];
        if (P.accumulate != 0u) { v += Y[yi]; }
        Y[yi] = v;
    }
}
