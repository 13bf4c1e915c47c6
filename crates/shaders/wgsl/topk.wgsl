// The k (<= 64) largest logits as (id, logit) pairs, sorted descending, ties to the lower
// id (as sampling::top_k), so a sampler reads back 2k words instead of the vocabulary.
//   main (default)  bindings 0 logits, 1 out (rw), 2 params: workgroup w keeps the top k
//                   of logits [w * span, (w + 1) * span), span = ceil(n / n_groups), and
//                   writes them sorted to out[2k * (1 + w) ..][..2k].
//   MERGE           bindings 0 out (rw), 1 params: one workgroup merges the n_groups
//                   lists into out[0 .. 2k].
// Each pair is [id, bitcast<u32>(logit)]; `out` must hold 2k * (1 + n_groups) words.
//
// Method: a 1024-slot buffer in workgroup memory (8 KiB) whose slots [0, k) hold the best
// k so far. The range is scanned 256 candidates per step; a candidate that beats the
// current k-th best is appended (atomic slot counter) behind them, and when the free
// slots could overflow the whole buffer is bitonic-sorted (2 compare-exchanges per
// invocation per stage, no subgroups). Once the buffer holds good candidates few new ones
// qualify, so a 262144-entry vocabulary needs a handful of sorts, not one per 1024 logits.

struct Params {
    n: u32,
    logits_offset: u32, // first logit (element index)
    k: u32,             // 1 ..= 64, and <= n
    n_groups: u32,      // workgroups of the first pass
}

const WG: u32 = 256u;
const SLOTS: u32 = 1024u;
const NONE: u32 = 0xffffffffu;

#if MERGE
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;
#else
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
#endif

var<workgroup> kv: array<f32, SLOTS>;
var<workgroup> ki: array<u32, SLOTS>;
var<workgroup> count: atomic<u32>; // candidates appended behind the best k
var<workgroup> filled: u32;        // count, made uniform

// Is (va, ia) ahead of (vb, ib)? Larger value, then lower id; NONE (empty) last.
fn ahead_vals(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
    if (ia == NONE) {
        return false;
    }
    return ib == NONE || va > vb || (va == vb && ia < ib);
}

fn ahead(a: u32, b: u32) -> bool {
    return ahead_vals(kv[a], ki[a], kv[b], ki[b]);
}

// Sort all slots best-first.
fn bitonic_sort(lid: u32) {
    for (var size = 2u; size <= SLOTS; size <<= 1u) {
        for (var stride = size / 2u; stride > 0u; stride >>= 1u) {
            for (var t = lid; t < SLOTS / 2u; t += WG) {
                let i = 2u * stride * (t / stride) + t % stride;
                let j = i + stride;
                // Blocks with (i & size) == 0 sort best-first, the others worst-first.
                if (select(ahead(i, j), ahead(j, i), (i & size) == 0u)) {
                    let tv = kv[i];
                    kv[i] = kv[j];
                    kv[j] = tv;
                    let ti = ki[i];
                    ki[i] = ki[j];
                    ki[j] = ti;
                }
            }
            workgroupBarrier();
        }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let k = p.k;
#if MERGE
    let start = 0u;
    let end = p.n_groups * k;
#else
    let span = (p.n + p.n_groups - 1u) / p.n_groups;
    let start = min(wid.x * span, p.n);
    let end = min(start + span, p.n);
#endif
    for (var s = lid; s < SLOTS; s += WG) {
        ki[s] = NONE;
        kv[s] = 0.0;
    }
    if (lid == 0u) {
        atomicStore(&count, 0u);
    }
    workgroupBarrier();
    let fresh = SLOTS - k;
    var cursor = start;
    loop {
        if (lid == 0u) {
            filled = atomicLoad(&count);
        }
        let used = workgroupUniformLoad(&filled);
        let done = cursor >= end;
        if (done || used + WG > fresh) {
            if (used > 0u) {
                bitonic_sort(lid);
                for (var s = k + lid; s < SLOTS; s += WG) {
                    ki[s] = NONE;
                }
                if (lid == 0u) {
                    atomicStore(&count, 0u);
                }
                workgroupBarrier();
            }
            if (done) {
                break;
            }
            continue;
        }
        let e = cursor + lid;
        if (e < end) {
#if MERGE
            let id = out[2u * k + 2u * e];
            let v = bitcast<f32>(out[2u * k + 2u * e + 1u]);
#else
            let id = e;
            let v = logits[p.logits_offset + e];
#endif
            if (ahead_vals(v, id, kv[k - 1u], ki[k - 1u])) {
                let slot = k + atomicAdd(&count, 1u);
                kv[slot] = v;
                ki[slot] = id;
            }
        }
        cursor += WG;
        // All appends land before the count is read again.
        workgroupBarrier();
    }
#if MERGE
    let dst = 0u;
#else
    let dst = 2u * k * (1u + wid.x);
#endif
    for (var s = lid; s < k; s += WG) {
        out[dst + 2u * s] = ki[s];
        out[dst + 2u * s + 1u] = bitcast<u32>(kv[s]);
    }
}
