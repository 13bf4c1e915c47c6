// Decode mat-vec: y[y_offset + t*y_stride + r] (+)= sum_c W[r][c] * x[x_offset + t*x_stride + c]
// for a few tokens (1..=8 per pass; more tokens run as further passes along z).
//
// Workgroup: 256 invocations = 8 rows x 32 lanes. The 32 lanes of a row walk its columns
// eight at a time (`dq8`), so one wave reads a contiguous run of the row's blocks
// (coalesced); each dequantized weight is used for every token of the pass, then the
// lanes' partial sums meet in workgroup memory (8 KiB) through a tree reduction: portable,
// no subgroups needed. Workgroups are numbered over x and y (<= 65535 each) so a
// 262144-row output head fits in one dispatch.

struct MatParams {
    rows: u32, cols: u32, n_tokens: u32, x_offset: u32,
    x_stride: u32, y_offset: u32, y_stride: u32, accumulate: u32,
}

@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> P: MatParams;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;
#if TOK1
// Single-token decode: one accumulator, a quarter of the reduction traffic.
const TOK: u32 = 1u;
var<workgroup> red: array<f32, 256>; // TOK * ROWS * LANES
#else
const TOK: u32 = 8u;
var<workgroup> red: array<f32, 2048>; // TOK * ROWS * LANES
#endif

fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(X[i], X[i + 1u], X[i + 2u], X[i + 3u]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let lane = li % LANES;
    let rl = li / LANES;
    let row = (wg.x + wg.y * nwg.x) * ROWS + rl;
    let t0 = wg.z * TOK;
    let nt = min(TOK, P.n_tokens - min(t0, P.n_tokens));
    var acc = array<f32, TOK>();
    if (row < P.rows) {
        let rb = row * row_bytes(P.cols);
        let ng = (P.cols + 7u) / 8u;
        for (var g = lane; g < ng; g += LANES) {
            let w = dq8(rb, g, P.cols);
            let c = 8u * g;
            // Constant trip count: the compiler unrolls it and keeps `acc` in registers.
            for (var t = 0u; t < TOK; t++) {
                if (t < nt) {
                    let xb = P.x_offset + (t0 + t) * P.x_stride + c;
#if FLOAT_TAIL
                    acc[t] += dot_cols8(w, c, xb, P.cols);
#else
                    acc[t] += dot(w.a, xv(xb)) + dot(w.b, xv(xb + 4u));
#endif
                }
            }
        }
    }
    for (var t = 0u; t < TOK; t++) {
        red[(t * ROWS + rl) * LANES + lane] = acc[t];
    }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            for (var t = 0u; t < TOK; t++) {
                // Only live tokens: decode (one token) does 1/8 of the traffic.
                if (t < nt) {
                    let i = (t * ROWS + rl) * LANES + lane;
                    red[i] += red[i + s];
                }
            }
        }
        workgroupBarrier();
    }
    if (lane < nt && row < P.rows) {
        let yi = P.y_offset + (t0 + lane) * P.y_stride + row;
        var v = red[(lane * ROWS + rl) * LANES];
        if (P.accumulate != 0u) { v += Y[yi]; }
        Y[yi] = v;
    }
}
