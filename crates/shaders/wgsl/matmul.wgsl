// Prefill matmul: the same product as the mat-vec for many tokens, tiled.
//
// A workgroup (256 invocations) computes a 64-row x 64-token tile of y. Per step of 32
// columns it dequantizes the 64x32 weight tile once (one `dq8` per invocation) and loads
// the 32x64 activation tile into workgroup memory; each invocation then accumulates a 4x4
// block of outputs (rows tr + 16i, tokens tt + 16j), so every dequantized weight is reused
// by 64 tokens. Tiles are f32 (2 x 8 KiB = the 16 KiB WebGPU floor exactly) or, with
// shader-f16, f16 (8 KiB: leaves room for two resident workgroups); products and sums are
// always f32.

struct MatParams {
    rows: u32, cols: u32, n_tokens: u32, x_offset: u32,
    x_stride: u32, y_offset: u32, y_stride: u32, accumulate: u32,
}

@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> P: MatParams;

const TM: u32 = 64u;
const TN: u32 = 64u;
const BK: u32 = 32u;

#if SHADER_F16
alias tile_t = f16;
#else
alias tile_t = f32;
#endif

var<workgroup> ws: array<tile_t, 2048>; // [BK][TM]
var<workgroup> xs: array<tile_t, 2048>; // [BK][TN]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = (wg.x + wg.y * nwg.x) * TM;
    let tok0 = wg.z * TN;
    let tr = li % 16u;
    let tt = li / 16u;
    let rb0 = row_bytes(P.cols);
    // This invocation's share of the weight tile: row lr, 8-column group lg.
    let lr = li / 4u;
    let lg = li % 4u;
    let wrow = row0 + lr;
    var acc = array<f32, 16>();
    for (var k0 = 0u; k0 < P.cols; k0 += BK) {
        var w = W8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (wrow < P.rows && k0 + 8u * lg < P.cols) {
            w = dq8(wrow * rb0, k0 / 8u + lg, P.cols);
        }
        let wb = 8u * lg * TM + lr;
        for (var k = 0u; k < 4u; k++) {
            ws[wb + k * TM] = tile_t(w.a[k]);
            ws[wb + (k + 4u) * TM] = tile_t(w.b[k]);
        }
        // Activation tile: consecutive invocations read consecutive columns.
        for (var i = 0u; i < 8u; i++) {
            let e = li + 256u * i;
            let tok = tok0 + e / BK;
            let c = k0 + e % BK;
            var v = 0.0;
            if (tok < P.n_tokens && c < P.cols) {
                v = X[P.x_offset + tok * P.x_stride + c];
            }
            xs[(e % BK) * TN + e / BK] = tile_t(v);
        }
        workgroupBarrier();
        for (var k = 0u; k < BK; k++) {
            var a: vec4<f32>;
            var b: vec4<f32>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = f32(ws[k * TM + tr + 16u * i]);
                b[i] = f32(xs[k * TN + tt + 16u * i]);
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[4u * i + j] += a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + tr + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let t = tok0 + tt + 16u * j;
            if (r < P.rows && t < P.n_tokens) {
                let yi = P.y_offset + t * P.y_stride + r;
                var v = acc[4u * i + j];
                if (P.accumulate != 0u) { v += Y[yi]; }
                Y[yi] = v;
            }
        }
    }
}
