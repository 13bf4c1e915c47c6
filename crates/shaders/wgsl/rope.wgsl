// Rotary position embedding, in place on [token][head][head_dim] rows (q or k; QK: both
// in one dispatch, K's pairs after Q's, K packed from element 0).
// One invocation per rotated pair. Normal style rotates adjacent pairs (2i, 2i+1)
// (llama: the GGUF converter permutes Q/K for it), NeoX style the halves (i, i + n_rot/2)
// (qwen2, gemma3). Dimensions >= n_rot pass through untouched.
//
// Accuracy: theta = pos * freq_scale * base^(-2i/n_rot) reaches thousands of radians, and
// GPU sin/cos are only specified near [-pi, pi]; so theta is reduced modulo 2*pi with a
// two-part constant (Cody-Waite) before sin/cos. What remains is f32 rounding of the
// frequency and of theta itself (about 1e-3 rad at position 4096; llama.cpp has the same).

struct Params {
    head_dim: u32,
    n_heads: u32,
    n_tokens: u32,
    n_rot: u32,        // rotated dimensions per head (even, <= head_dim)
    pos0: u32,         // position of token 0
    base: f32,         // frequency base (10000, 1e6, ...)
    freq_scale: f32,   // position multiplier (1 / linear scaling factor)
    neox: u32,         // 0: adjacent pairs, 1: halves
    offset: u32,       // first element of token 0
    token_stride: u32, // elements between tokens (n_heads * head_dim when packed)
    k_heads: u32,      // QK: heads of the second buffer
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> data: array<f32>;
#if QK
@group(0) @binding(1) var<storage, read_write> kdata: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
#if FACTORS
@group(0) @binding(3) var<storage, read> factors: array<f32>;
#endif
#else
@group(0) @binding(1) var<uniform> p: Params;
#if FACTORS
// Per-pair frequency divisors (Llama 3 rope_freqs, Phi-3 LongRoPE), n_rot / 2 of them.
@group(0) @binding(2) var<storage, read> factors: array<f32>;
#endif
#endif

const TWO_PI_HI: f32 = 6.28125;               // exact in 8 bits, so k * TWO_PI_HI is exact
const TWO_PI_LO: f32 = 0.0019353071795864769; // 2*pi - TWO_PI_HI
const INV_TWO_PI: f32 = 0.15915494309189535;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    var idx = (wid.x + wid.y * nwg.x) * 256u + lid;
    let half = p.n_rot / 2u;
    var heads = p.n_heads;
    var offset = p.offset;
    var stride = p.token_stride;
    let q_pairs = half * p.n_heads * p.n_tokens;
#if QK
    let is_k = idx >= q_pairs;
    if (is_k) {
        idx -= q_pairs;
        heads = p.k_heads;
        offset = 0u;
        stride = p.k_heads * p.head_dim;
    }
    if (is_k && idx >= half * p.k_heads * p.n_tokens) {
        return;
    }
#else
    if (idx >= q_pairs) {
        return;
    }
#endif
    let i = idx % half;
    let head = (idx / half) % heads;
    let tok = idx / (half * heads);
    let pos = p.pos0 + tok;
    // base^(-2i/n_rot) as exp2 of a small exponent.
    let inv_freq = exp2(-2.0 * f32(i) / f32(p.n_rot) * log2(p.base));
#if FACTORS
    let theta = f32(pos) * p.freq_scale * inv_freq / factors[i];
#else
    let theta = f32(pos) * p.freq_scale * inv_freq;
#endif
    let k = round(theta * INV_TWO_PI);
    let r = (theta - k * TWO_PI_HI) - k * TWO_PI_LO;
    let c = cos(r);
    let s = sin(r);
    let base_idx = offset + tok * stride + head * p.head_dim;
    var a = base_idx + 2u * i;
    var b = a + 1u;
    if (p.neox != 0u) {
        a = base_idx + i;
        b = a + half;
    }
#if QK
    if (is_k) {
        let x0 = kdata[a];
        let x1 = kdata[b];
        kdata[a] = x0 * c - x1 * s;
        kdata[b] = x0 * s + x1 * c;
        return;
    }
#endif
    let x0 = data[a];
    let x1 = data[b];
    data[a] = x0 * c - x1 * s;
    data[b] = x0 * s + x1 * c;
}
