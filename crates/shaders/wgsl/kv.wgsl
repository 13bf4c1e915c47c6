// Store new K or V rows into the cache at row pos0: cache[(pos0 + t) * dim + c] = src[t][c].
// The cache always holds IEEE half floats, 2 bytes per element, whatever the device: with
// shader-f16 it is read as array<vec2<f16>>, without it as array<u32> packed with
// pack2x16float (the low half is the first element, so the bytes are identical). One
// invocation per pair, so no two invocations touch the same 32-bit word. dim must be even.

struct Params {
    dim: u32,        // elements per token row (n_head_kv * head_dim)
    n_tokens: u32,
    pos0: u32,       // cache row of token 0
    src_offset: u32, // first element of token 0 in src
    src_stride: u32, // elements between tokens in src (dim when packed)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
#if F16
@group(0) @binding(1) var<storage, read_write> cache: array<vec2<f16>>;
#else
@group(0) @binding(1) var<storage, read_write> cache: array<u32>;
#endif
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.x + wid.y * nwg.x) * 256u + lid;
    let pairs = p.dim / 2u;
    if (idx >= pairs * p.n_tokens) {
        return;
    }
    let t = idx / pairs;
    let c = 2u * (idx % pairs);
    let s = p.src_offset + t * p.src_stride + c;
    let v = vec2<f32>(src[s], src[s + 1u]);
    let dst = (p.pos0 + t) * pairs + idx % pairs;
#if F16
    cache[dst] = vec2<f16>(v);
#else
    cache[dst] = pack2x16float(v);
#endif
}
