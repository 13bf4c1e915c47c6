// Causal, grouped-query attention against the f16 KV cache, with an optional sliding
// window, as one "flash" pass with online softmax plus (when the key range is split) a
// combine pass.
//
// Work split. A workgroup owns one KV head `hk` (wid.y), one block of up to RMAX query
// rows (wid.z), and one slice of the keys (wid.x, `split_len` keys each). Query rows are
// the (token, head-of-this-group) pairs flattened as t * g + j (g = n_head / n_head_kv),
// so all g heads sharing a KV head read each K/V row together, decode (one token) and
// prefill (many) use the same code, and any GQA ratio works. Decode splits the keys over
// many workgroups so a long context keeps the GPU busy; each split writes its partial
// (unnormalised output, running max, running sum) to `scratch` and the COMBINE kernel
// merges them. With one split the kernel writes the normalised output directly.
//
// Per tile of keys: scores (one invocation per (row, key)), a tree max per row through
// workgroup memory (no subgroups needed), the online-softmax rescale, then P.V with each
// invocation owning a column pair of some rows. Workgroup memory: Q tile (RMAX x 256 f32,
// 8 KiB) + 2 x 256 f32 + a few floats, well inside 16 KiB for head_dim up to 256.
//
// The KV cache holds halves (2 bytes per element): vec2<f16> with shader-f16, otherwise
// u32 words unpacked with unpack2x16float. All arithmetic is f32. Params, NEG and
// first_key come from attention_shared.wgsl.

const WG: u32 = 256u;
const RMAX: u32 = 8u;
const NEG_HALF: f32 = -1.0e38;

#if COMBINE
@group(0) @binding(0) var<storage, read> scratch: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// One workgroup per (token, head) output row; invocation i owns columns 2i, 2i+1.
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    let dv = p.head_dim_v;
    if (row >= p.n_tokens * p.n_head || lid >= dv / 2u) {
        return;
    }
    let stride = dv + 2u;
    let first = row * p.n_splits * stride;
    var m = NEG;
    for (var s = 0u; s < p.n_splits; s++) {
        m = max(m, scratch[first + s * stride + dv]);
    }
    var l = 0.0;
    var o = vec2<f32>(0.0);
    for (var s = 0u; s < p.n_splits; s++) {
        let b = first + s * stride;
        let w = exp(scratch[b + dv] - m); // 0 for empty splits (m_s = NEG)
        l += scratch[b + dv + 1u] * w;
        o += vec2<f32>(scratch[b + 2u * lid], scratch[b + 2u * lid + 1u]) * w;
    }
    o /= l;
    out[row * dv + 2u * lid] = o.x;
    out[row * dv + 2u * lid + 1u] = o.y;
}
#else

@group(0) @binding(0) var<storage, read> q: array<f32>;
#if F16
@group(0) @binding(1) var<storage, read> k_cache: array<vec2<f16>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec2<f16>>;
#else
@group(0) @binding(1) var<storage, read> k_cache: array<u32>;
@group(0) @binding(2) var<storage, read> v_cache: array<u32>;
#endif
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
// Per (token, head, split): head_dim_v unnormalised outputs, then max, then sum.
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;

#if F16
fn load_k(i: u32) -> vec2<f32> { return vec2<f32>(k_cache[i]); }
fn load_v(i: u32) -> vec2<f32> { return vec2<f32>(v_cache[i]); }
#else
fn load_k(i: u32) -> vec2<f32> { return unpack2x16float(k_cache[i]); }
fn load_v(i: u32) -> vec2<f32> { return unpack2x16float(v_cache[i]); }
#endif

var<workgroup> qs: array<f32, 2048>; // RMAX rows x head_dim_k, pre-scaled
var<workgroup> sc: array<f32, WG>;   // scores, then probabilities, [row][key]
var<workgroup> red: array<f32, WG>;  // row-max reduction
var<workgroup> m_run: array<f32, RMAX>;
var<workgroup> alpha: array<f32, RMAX>;


@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = p.n_head / p.n_head_kv;
    let split = wid.x;
    let hk = wid.y;
    let f0 = wid.z * RMAX;
    let nrows = min(RMAX, p.n_tokens * g - f0);
    let dk = p.head_dim_k;
    let dv = p.head_dim_v;

    // Tile shape: rp (rows rounded up to a power of two) x kt keys = 256 scores.
    var rp = 1u;
    while (rp < nrows) {
        rp *= 2u;
    }
    let kt = WG / rp;

    // Keys this workgroup needs: its split, clipped to what any of its rows can see.
    let pos_first = p.pos0 + f0 / g;
    let pos_last = p.pos0 + (f0 + nrows - 1u) / g;
    let lo = max(split * p.split_len, first_key(pos_first));
    let hi = min((split + 1u) * p.split_len, pos_last + 1u);

    for (var e = lid; e < nrows * dk; e += WG) {
        let r = e / dk;
        let f = f0 + r;
        let h = hk * g + f % g;
        qs[e] = q[((f / g) * p.n_head + h) * dk + e % dk] * p.scale;
    }
    if (lid < RMAX) {
        m_run[lid] = NEG;
    }

    // Scoring role: row sr, key sj of the tile.
    let sr = lid / kt;
    let sj = lid % kt;
    var s_pos = 0u;
    var s_first = 0u;
    if (sr < nrows) {
        s_pos = p.pos0 + (f0 + sr) / g;
        s_first = first_key(s_pos);
    }
    // P.V role: column pair od of rows or0, or0 + rg, ... (rg row groups).
    let dv2 = dv / 2u;
    let rg = WG / dv2;
    let od = lid % dv2;
    let or0 = lid / dv2;
    var acc: array<vec2<f32>, 4>; // RMAX / min(rg) = 8 / 2
    var lsum: array<f32, 4>;
    for (var k = 0u; k < 4u; k++) {
        acc[k] = vec2<f32>(0.0);
        lsum[k] = 0.0;
    }
    workgroupBarrier();

    for (var base = lo; base < hi; base += kt) {
        let key = base + sj;
        var s = NEG;
        if (sr < nrows && key < hi && key <= s_pos && key >= s_first) {
            let kb = (key * p.n_head_kv + hk) * dk / 2u;
            let qb = sr * dk;
            var d = 0.0;
            for (var c = 0u; c < dk / 2u; c++) {
                let kk = load_k(kb + c);
                d += qs[qb + 2u * c] * kk.x + qs[qb + 2u * c + 1u] * kk.y;
            }
            s = d;
            if (p.softcap > 0.0) {
                s = p.softcap * tanh(d / p.softcap);
            }
        }
        red[lid] = s;
        workgroupBarrier();
        for (var st = kt / 2u; st > 0u; st >>= 1u) {
            if (sj < st) {
                red[lid] = max(red[lid], red[lid + st]);
            }
            workgroupBarrier();
        }
        if (lid < nrows) {
            let m_old = m_run[lid];
            let m_new = max(m_old, red[lid * kt]);
            alpha[lid] = exp(m_old - m_new); // 0 when m_old was "-inf", 1 if both are
            m_run[lid] = m_new;
        }
        workgroupBarrier();
        var pr = 0.0;
        if (sr < nrows && s > NEG_HALF) {
            pr = exp(s - m_run[sr]);
        }
        sc[lid] = pr;
        workgroupBarrier();
        let nk = min(kt, hi - base);
        if (or0 < rg) {
            for (var k = 0u; k < 4u; k++) {
                let r = or0 + rg * k;
                if (r < nrows) {
                    acc[k] *= alpha[r];
                    lsum[k] *= alpha[r];
                }
            }
            for (var j = 0u; j < nk; j++) {
                let vv = load_v(((base + j) * p.n_head_kv + hk) * dv2 + od);
                for (var k = 0u; k < 4u; k++) {
                    let r = or0 + rg * k;
                    if (r < nrows) {
                        let pj = sc[r * kt + j];
                        acc[k] += pj * vv;
                        lsum[k] += pj;
                    }
                }
            }
        }
        workgroupBarrier();
    }

    if (or0 < rg) {
        for (var k = 0u; k < 4u; k++) {
            let r = or0 + rg * k;
            if (r < nrows) {
                let f = f0 + r;
                let row = (f / g) * p.n_head + hk * g + f % g;
                if (p.n_splits == 1u) {
                    let o = acc[k] / lsum[k];
                    out[row * dv + 2u * od] = o.x;
                    out[row * dv + 2u * od + 1u] = o.y;
                } else {
                    let b = (row * p.n_splits + split) * (dv + 2u);
                    scratch[b + 2u * od] = acc[k].x;
                    scratch[b + 2u * od + 1u] = acc[k].y;
                    if (od == 0u) {
                        scratch[b + dv] = m_run[r];
                        scratch[b + dv + 1u] = lsum[k];
                    }
                }
            }
        }
    }
}
#endif
