// Causal, grouped-query attention for CPU-backed devices with subgroups (lavapipe): the
// same product, params, bindings and split scratch as attention.wgsl, without workgroup
// memory or barriers (a barrier is a coroutine switch there).
//
// A workgroup is one subgroup of 8 lanes and owns one query row (token t, head h) and one
// split of the keys. Lane l holds dims [l*DK/8, (l+1)*DK/8) of q and of every key, and
// [l*DV/8, (l+1)*DV/8) of the output: a score is eight partial dot products and one
// subgroupAdd, and each lane keeps its own slice of the online-softmax accumulator. K and
// V come 16 bytes (8 halves) per load. The Rust side prepends `const DK`, `const DV`
// (multiples of 64) and dispatches (n_splits, rows); rows = n_tokens * n_head. Params,
// NEG and first_key come from attention_shared.wgsl.


@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;

const KQ: u32 = DK / 32u; // vec4<f32> of q per lane
const KW: u32 = DK / 64u; // vec4<u32> (8 halves) of a key per lane
const VW: u32 = DV / 64u; // vec4<u32> of a value per lane
const VA: u32 = DV / 32u; // vec4<f32> of output per lane

fn halves(w: vec4<u32>) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(
        vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)),
        vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)));
}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
    let split = wid.x;
    let row = wid.y + wid.z * nwg.y;
    if (row >= p.n_tokens * p.n_head) {
        return;
    }
    let h = row % p.n_head;
    let hk = h / (p.n_head / p.n_head_kv);
    let pos = p.pos0 + row / p.n_head;
    let lo = max(split * p.split_len, first_key(pos));
    let hi = min((split + 1u) * p.split_len, pos + 1u);

    var qv: array<vec4<f32>, KQ>;
    for (var i = 0u; i < KQ; i++) {
        qv[i] = q[row * (DK / 4u) + lane * KQ + i] * p.scale;
    }
    var acc: array<vec4<f32>, VA>;
    var m = NEG;
    var l = 0.0;
    let kb = hk * (DK / 8u) + lane * KW;
    let vb = hk * (DV / 8u) + lane * VW;
    for (var j = lo; j < hi; j++) {
        var d = 0.0;
        for (var i = 0u; i < KW; i++) {
            let k = halves(k_cache[j * p.n_head_kv * (DK / 8u) + kb + i]);
            d += dot(qv[2u * i], k[0]) + dot(qv[2u * i + 1u], k[1]);
        }
        var s = subgroupAdd(d);
        if (p.softcap > 0.0) {
            s = p.softcap * tanh(s / p.softcap);
        }
        let m_new = max(m, s);
        let corr = exp(m - m_new); // 0 at the first key (m was "-inf")
        let pj = exp(s - m_new);
        l = l * corr + pj;
        for (var i = 0u; i < VW; i++) {
            let v = halves(v_cache[j * p.n_head_kv * (DV / 8u) + vb + i]);
            acc[2u * i] = acc[2u * i] * corr + pj * v[0];
            acc[2u * i + 1u] = acc[2u * i + 1u] * corr + pj * v[1];
        }
        m = m_new;
    }

    let o0 = lane * (DV / 8u);
    if (p.n_splits == 1u) {
        for (var i = 0u; i < VA; i++) {
            let o = acc[i] / l;
            let b = row * DV + o0 + 4u * i;
            out[b] = o.x;
            out[b + 1u] = o.y;
            out[b + 2u] = o.z;
            out[b + 3u] = o.w;
        }
    } else {
        // Unnormalised output, running max and sum, as attention.wgsl's splits write them.
        let b = (row * p.n_splits + split) * (DV + 2u);
        for (var i = 0u; i < VA; i++) {
            scratch[b + o0 + 4u * i] = acc[i].x;
            scratch[b + o0 + 4u * i + 1u] = acc[i].y;
            scratch[b + o0 + 4u * i + 2u] = acc[i].z;
            scratch[b + o0 + 4u * i + 3u] = acc[i].w;
        }
        if (lane == 0u) {
            scratch[b + DV] = m;
            scratch[b + DV + 1u] = l;
        }
    }
}
