// A stacked Q/K/V mat-vec's rows [q | k | v] (per token, `width` = qd + kd + vd wide) into
// the Q, K and V buffers, adding the biases on the way (BIAS: one vector [bq | bk | bv]).
// One invocation per element. Bindings: 0 src (read), 1 q, 2 k, 3 v (read_write),
// (BIAS: 4 bias), then params.

struct Params {
    n: u32,     // elements: width * n_tokens
    width: u32, // qd + kd + vd
    qd: u32,
    kd: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> k: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
#else
@group(0) @binding(4) var<uniform> p: Params;
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let t = i / p.width;
    let c = i % p.width;
#if BIAS
    let x = src[i] + bias[c];
#else
    let x = src[i];
#endif
    let vd = p.width - p.qd - p.kd;
    if (c < p.qd) {
        q[t * p.qd + c] = x;
    } else if (c < p.qd + p.kd) {
        k[t * p.kd + c - p.qd] = x;
    } else {
        v[t * vd + c - p.qd - p.kd] = x;
    }
}
