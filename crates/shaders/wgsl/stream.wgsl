// Roofline probes (never used by the forward pass).
//
// STREAM: every invocation reads vec4<u32> words of a large buffer, grid-stride (so a
// wave reads consecutive words), and folds them with XOR; its time is the device's
// achievable read bandwidth. FLOPS: independent f32 FMA chains in registers; its time is
// the arithmetic rate a kernel can reach without memory traffic. Both write their result
// to a tiny output only when it equals a value the compiler cannot know (`P.magic`), so
// the work cannot be removed and the writes cost nothing.

struct Params { n: u32, iters: u32, magic: u32, _pad: u32 }

#if STREAM
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> P: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let stride = nwg.x * 256u;
    var a = vec4<u32>(0u);
    var b = vec4<u32>(0u);
    var i = gid.x;
    // Two loads in flight per iteration.
    for (; i + stride < P.n; i += 2u * stride) {
        a ^= src[i];
        b ^= src[i + stride];
    }
    if (i < P.n) {
        a ^= src[i];
    }
    let v = a ^ b;
    let r = v.x ^ v.y ^ v.z ^ v.w;
    if (r == P.magic) {
        out[gid.x % 64u] = r;
    }
}
#endif

#if FLOPS
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;

// Eight independent vec4 chains: 8 x 4 FMAs = 64 flops per iteration and invocation.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = f32(gid.x & 255u) * 1e-3;
    var c0 = vec4<f32>(s, s + 0.1, s + 0.2, s + 0.3);
    var c1 = c0 + 0.01; var c2 = c0 + 0.02; var c3 = c0 + 0.03;
    var c4 = c0 + 0.04; var c5 = c0 + 0.05; var c6 = c0 + 0.06; var c7 = c0 + 0.07;
    let m = vec4<f32>(0.9999);
    let k = vec4<f32>(1e-4);
    for (var i = 0u; i < P.iters; i++) {
        c0 = fma(c0, m, k); c1 = fma(c1, m, k); c2 = fma(c2, m, k); c3 = fma(c3, m, k);
        c4 = fma(c4, m, k); c5 = fma(c5, m, k); c6 = fma(c6, m, k); c7 = fma(c7, m, k);
    }
    let v = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7;
    let r = v.x + v.y + v.z + v.w;
    if (bitcast<u32>(r) == P.magic) {
        out[gid.x % 64u] = r;
    }
}
#endif
