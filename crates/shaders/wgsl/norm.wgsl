// RMSNorm over rows: out_row = x_row / sqrt(mean(x_row^2) + eps) * weight.
// One workgroup per row; the sum of squares is reduced through workgroup memory so the
// kernel needs no subgroups. Rows are addressed as offset + row * stride so the engine
// can normalise just the last token, or rows inside a larger activation buffer.
// INPLACE: one read_write buffer (per-head Q/K norms): WebGPU forbids binding one buffer
// to a read and a read_write binding of the same dispatch. INPLACE_QK: the Q and K heads
// in one dispatch (rows n_rows .. n_rows + n_rows_k are K's, with K's weight).
// ADD: out_row += the normalised row (a post-norm and its residual add in one pass).

struct Params {
    n: u32,          // row length (elements)
    n_rows: u32,
    eps: f32,
    x_offset: u32,   // first element of row 0 in x
    out_offset: u32, // first element of row 0 in out (ignored in place)
    x_stride: u32,   // elements between rows of x
    out_stride: u32, // elements between rows of out (ignored in place)
    n_rows_k: u32,   // INPLACE_QK: rows of the second buffer
}

#if INPLACE
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
#if INPLACE_QK
@group(0) @binding(2) var<storage, read_write> xk: array<f32>;
@group(0) @binding(3) var<storage, read> weight_k: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
#else
@group(0) @binding(2) var<uniform> p: Params;
#endif
#else
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
#endif

#if SMALL_WG
const WG: u32 = 8u;
#else
const WG: u32 = 256u;
#endif
var<workgroup> partial: array<f32, WG>;

// The scale of a row from its sum of squares (each invocation's share in `acc`).
fn row_scale(acc: f32, lid: u32) -> f32 {
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    return inverseSqrt(partial[0] / f32(p.n) + p.eps);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Uniform control flow: a whole workgroup leaves together.
#if INPLACE_QK
    if (row >= p.n_rows + p.n_rows_k) {
        return;
    }
    if (row >= p.n_rows) {
        let kb = p.x_offset + (row - p.n_rows) * p.x_stride;
        var acc = 0.0;
        for (var i = lid; i < p.n; i += WG) {
            let v = xk[kb + i];
            acc += v * v;
        }
        let scale = row_scale(acc, lid);
        for (var i = lid; i < p.n; i += WG) {
            xk[kb + i] = xk[kb + i] * scale * weight_k[i];
        }
        return;
    }
#else
    if (row >= p.n_rows) {
        return;
    }
#endif
    let xb = p.x_offset + row * p.x_stride;
    var acc = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let v = x[xb + i];
        acc += v * v;
    }
    let scale = row_scale(acc, lid);
#if INPLACE
    for (var i = lid; i < p.n; i += WG) {
        x[xb + i] = x[xb + i] * scale * weight[i];
    }
#else
    let ob = p.out_offset + row * p.out_stride;
    for (var i = lid; i < p.n; i += WG) {
#if ADD
        out[ob + i] = out[ob + i] + x[xb + i] * scale * weight[i];
#else
        out[ob + i] = x[xb + i] * scale * weight[i];
#endif
    }
#endif
}
