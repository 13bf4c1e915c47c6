// Greedy sampling on the GPU: the index of the largest logit, the first one on ties
// (as sampling::argmax). Two passes so a 262144-entry vocabulary spreads over many
// workgroups:
//   main (default)  bindings 0 logits, 1 out (rw), 2 params: workgroup w reduces
//                   logits[w*4096 ..][..4096] and writes its winner to
//                   out[1 + 2w] (index) and out[2 + 2w] (bitcast value).
//   REDUCE          bindings 0 out (rw), 1 params: one workgroup reduces the partials
//                   and writes the index to out[0].
// `out` must hold 1 + 2 * ceil(n / 4096) words.

struct Params {
    n: u32,
    logits_offset: u32, // first logit (element index)
    _pad0: u32,
    _pad1: u32,
}

#if SMALL_WG
const WG: u32 = 8u;
#else
const WG: u32 = 256u;
#endif
const CHUNK: u32 = 4096u;
const NONE: u32 = 0xffffffffu;

#if REDUCE
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;
#else
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
#endif

var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;

// Is (va, ia) ahead of (vb, ib)? Larger value first, then lower index; NONE marks an
// empty slot (so even all -inf logits give index 0, as on the CPU).
fn ahead(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
    if (ia == NONE) {
        return false;
    }
    return ib == NONE || va > vb || (va == vb && ia < ib);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var v = 0.0;
    var i = NONE;
#if REDUCE
    let parts = (p.n + CHUNK - 1u) / CHUNK;
    for (var w = lid; w < parts; w += WG) {
        let wi = out[1u + 2u * w];
        let wv = bitcast<f32>(out[2u + 2u * w]);
        if (ahead(wv, wi, v, i)) {
            v = wv;
            i = wi;
        }
    }
#else
    let start = wid.x * CHUNK;
    let end = min(start + CHUNK, p.n);
    for (var e = start + lid; e < end; e += WG) {
        let x = logits[p.logits_offset + e];
        if (ahead(x, e, v, i)) {
            v = x;
            i = e;
        }
    }
#endif
    best_v[lid] = v;
    best_i[lid] = i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s && ahead(best_v[lid + s], best_i[lid + s], best_v[lid], best_i[lid])) {
            best_v[lid] = best_v[lid + s];
            best_i[lid] = best_i[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
#if REDUCE
        out[0] = best_i[0];
#else
        out[1u + 2u * wid.x] = best_i[0];
        out[2u + 2u * wid.x] = bitcast<u32>(best_v[0]);
#endif
    }
}
