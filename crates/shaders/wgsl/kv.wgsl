// Store new K or V rows into the cache at row pos0: cache[(pos0 + t) * dim + c] = src[t][c].
// The cache always holds IEEE half floats, 2 bytes per element, whatever the device: with
// shader-f16 it is read as array<vec2<f16>>, without it as array<u32> packed with
// pack2x16float (the low half is the first element, so the bytes are identical). One
// invocation per pair, so no two invocations touch the same 32-bit word. dim must be even.
// KV2: K and V in one dispatch (bindings k, v, k cache, v cache, params; V's pairs after
// K's; V's source packed, K's as src_offset and src_stride say).

struct Params {
    dim: u32,        // elements per token row (n_head_kv * head_dim)
    n_tokens: u32,
    pos0: u32,       // cache row of token 0
    src_offset: u32, // first element of token 0 in src
    src_stride: u32, // elements between tokens in src (dim when packed)
    dim_v: u32,      // KV2: elements per token row of V
    _pad1: u32,
    _pad2: u32,
}

#if F16
alias CacheWord = vec2<f16>;
fn cache_word(v: vec2<f32>) -> vec2<f16> { return vec2<f16>(v); }
#else
alias CacheWord = u32;
fn cache_word(v: vec2<f32>) -> u32 { return pack2x16float(v); }
#endif

@group(0) @binding(0) var<storage, read> src: array<f32>;
#if KV2
@group(0) @binding(1) var<storage, read> src_v: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<CacheWord>;
@group(0) @binding(3) var<storage, read_write> cache_v: array<CacheWord>;
@group(0) @binding(4) var<uniform> p: Params;
#else
@group(0) @binding(1) var<storage, read_write> cache: array<CacheWord>;
@group(0) @binding(2) var<uniform> p: Params;
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.x + wid.y * nwg.x) * 256u + lid;
    let pairs = p.dim / 2u;
#if KV2
    if (idx >= pairs * p.n_tokens) {
        let j = idx - pairs * p.n_tokens;
        let pairs_v = p.dim_v / 2u;
        if (j >= pairs_v * p.n_tokens) {
            return;
        }
        let c = 2u * j; // packed: token t's pair c starts at element t * dim_v + c % dim_v
        cache_v[p.pos0 * pairs_v + j] = cache_word(vec2<f32>(src_v[c], src_v[c + 1u]));
        return;
    }
#else
    if (idx >= pairs * p.n_tokens) {
        return;
    }
#endif
    let t = idx / pairs;
    let c = 2u * (idx % pairs);
    let s = p.src_offset + t * p.src_stride + c;
    let v = vec2<f32>(src[s], src[s + 1u]);
    cache[(p.pos0 + t) * pairs + idx % pairs] = cache_word(v);
}
