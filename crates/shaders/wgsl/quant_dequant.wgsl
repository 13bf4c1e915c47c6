// Shared dequantization for the quantized matvec / matmul / get_rows kernels.
//
// The weights (binding 0, read through `wd` of weights.wgsl) are raw GGUF bytes (whole
// rows, GGUF block layout unchanged). Blocks of 18, 22, 34, 110 ... bytes leave rows and fields only 2-byte
// aligned, so fields are read as words and shifted (`ld4`, `ld8`); f16 scales go through
// unpack2x16float, which needs no shader-f16.
//
// Every type exposes one function, `dq8(rb, g, cols)`: the f32 weights of columns
// 8g .. 8g+8 of the row whose first byte is `rb`. Eight *consecutive* columns per call
// keep the activation loads contiguous and let matvec, matmul and get_rows share the
// code; for types whose bytes interleave (Q4_0's low/high nibbles, Q6_K's halves) two
// neighbouring calls read the same word, which stays in L1 (lanes of one wave read one
// block together), so DRAM traffic is unchanged.
//
// The Rust side prepends `const BS` (elements per block), `const TS` (bytes per block)
// and the `#if T_<TYPE>` define (plus IQ4 / KSCALE for the helpers two types share).

struct W8 { a: vec4<f32>, b: vec4<f32> }

// A u32 starting at byte `b` (any alignment; the word after is read only when needed).
fn ld4(b: u32) -> u32 {
    let i = b >> 2u;
    let s = (b & 3u) * 8u;
    if (s == 0u) { return wd(i); }
    return (wd(i) >> s) | (wd(i + 1u) << (32u - s));
}

// Eight bytes starting at byte `b`.
fn ld8(b: u32) -> vec2<u32> {
    let i = b >> 2u;
    let s = (b & 3u) * 8u;
    let w0 = wd(i);
    let w1 = wd(i + 1u);
    if (s == 0u) { return vec2<u32>(w0, w1); }
    let w2 = wd(i + 2u);
    return vec2<u32>((w0 >> s) | (w1 << (32u - s)), (w1 >> s) | (w2 << (32u - s)));
}

// One byte.
fn ld1(b: u32) -> u32 {
    return (wd(b >> 2u) >> ((b & 3u) * 8u)) & 0xffu;
}

// The f16 at (2-byte aligned) byte `b`, as f32.
fn ldh(b: u32) -> f32 {
    return unpack2x16float(wd(b >> 2u))[(b >> 1u) & 1u];
}

// Field `(byte >> sh) & mask` of each of the four bytes of `w`.
fn fld(w: u32, sh: u32, mask: u32) -> vec4<u32> {
    return (vec4<u32>(w) >> (vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>(sh))) & vec4<u32>(mask);
}

// Bits i .. i+4 of `v`, one per lane.
fn bits4(v: u32, i: u32) -> vec4<u32> {
    return (vec4<u32>(v) >> (vec4<u32>(0u, 1u, 2u, 3u) + vec4<u32>(i))) & vec4<u32>(1u);
}

// The four bytes of `w` as signed values.
fn sbytes(w: u32) -> vec4<f32> {
    return vec4<f32>((vec4<i32>(bitcast<i32>(w)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

fn uf(v: vec4<u32>) -> vec4<f32> { return vec4<f32>(v); }

// The four bytes of `w` as unsigned values.
fn ubytes(w: u32) -> vec4<f32> {
    return vec4<f32>(vec4<u32>(w & 0xffu, (w >> 8u) & 0xffu, (w >> 16u) & 0xffu, w >> 24u));
}

// Bits 0..4 of `t` moved to bit 0 of bytes 0..4 (the four partial products of the
// multiply land 7 bits apart, so they never carry into each other).
fn spread4(t: u32) -> u32 {
    return ((t & 15u) * 0x00204081u) & 0x01010101u;
}

#if !TEXW
// 32 bytes starting at byte `b` (any alignment) as eight words: nine loads at most.
fn ld32(b: u32) -> array<u32, 8> {
    let i = b >> 2u;
    let s = (b & 3u) * 8u;
    var r: array<u32, 8>;
    if (s == 0u) {
        for (var k = 0u; k < 8u; k++) { r[k] = wd(i + k); }
    } else {
        var p = wd(i);
        for (var k = 0u; k < 8u; k++) {
            let n = wd(i + k + 1u);
            r[k] = (p >> s) | (n << (32u - s));
            p = n;
        }
    }
    return r;
}
#endif

#if WIN
// Words i .. i+8 of a window.
fn a8(A: array<u32, NW>, i: u32) -> array<u32, 8> {
    var r: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) { r[k] = A[i + k]; }
    return r;
}
#endif

#if DQ32_BLOCK
// The 32-element block types decode a block from its bytes read as NB words
// (`dq32b`), wherever those words come from: `blk` below reads them from `W` (one load
// per word, plus one when the block is not 4-byte aligned); the decode mat-vec for
// CPU-backed devices reads several blocks at once through 16-byte loads
// (matvec_rows.wgsl, WIN).
#if !TEXW
fn blk(b: u32) -> array<u32, NB> {
    let i = b >> 2u;
    var r: array<u32, NB>;
    if ((b & 2u) == 0u) {
        for (var k = 0u; k < NB; k++) { r[k] = wd(i + k); }
    } else {
        var p = wd(i);
        for (var k = 0u; k < NB; k++) {
            let n = wd(i + k + 1u);
            r[k] = (p >> 16u) | (n << 16u);
            p = n;
        }
    }
    return r;
}
#endif

// The word at byte 4k + 2 of a block's words.
fn odd(q: array<u32, NB>, k: u32) -> u32 {
    return (q[k] >> 16u) | (q[k + 1u] << 16u);
}

fn dq32(rb: u32, s: u32) -> array<vec4<f32>, 8> {
    return dq32b(blk(rb + s * TS));
}
#endif

#if FLOAT_TAIL
#if X_F32
// w · x for columns c .. c+8 of a float row whose activations start at float index `xb`,
// through the mat-vec kernel's `X` (f32) and `xv`: past the row's end (`cols`) the
// weights are zero and x is not read either.
fn dot_cols8(w: W8, c: u32, xb: u32, cols: u32) -> f32 {
    if (c + 8u > cols) {
        var s = 0.0;
        let wv = array<f32, 8>(w.a.x, w.a.y, w.a.z, w.a.w, w.b.x, w.b.y, w.b.z, w.b.w);
        for (var k = 0u; k < 8u; k++) {
            if (c + k < cols) { s += wv[k] * X[xb + k]; }
        }
        return s;
    }
    return dot(w.a, xv(xb)) + dot(w.b, xv(xb + 4u));
}
#endif
#endif

#if DQ32_GENERIC
// Columns 32s .. 32s+32 through four `dq8` calls (types without a block-wise reader).
fn dq32(rb: u32, s: u32) -> array<vec4<f32>, 8> {
    var r: array<vec4<f32>, 8>;
    for (var q = 0u; q < 4u; q++) {
        let w = dq8(rb, 4u * s + q, 32u * s + 32u);
        r[2u * q] = w.a;
        r[2u * q + 1u] = w.b;
    }
    return r;
}
#endif

// Bytes of one row.
fn row_bytes(cols: u32) -> u32 { return (cols / BS) * TS; }

#if IQ4
// The 16 IQ4 levels as packed i8s; vector indexing compiles to selects, not memory.
const IQ4_LEVELS = vec4<u32>(0xbfad9881u, 0xf6eaddcfu, 0x26190d01u, 0x71594535u);
fn lv4(q: vec4<u32>) -> vec4<f32> {
    var r: vec4<f32>;
    for (var k = 0u; k < 4u; k++) {
        let w = IQ4_LEVELS[q[k] >> 2u];
        r[k] = f32(bitcast<i32>(w << (24u - 8u * (q[k] & 3u))) >> 24u);
    }
    return r;
}
#endif

#if KSCALE
// Scale and min of sub-block j (0..8) from the 12 packed bytes at `s` (Q4_K, Q5_K).
#if TEXW
fn kscale(s: u32, j: u32) -> vec2<f32> {
    let w = rd3(s);
    return kscale3(vec3<u32>(w[0], w[1], w[2]), j);
}
#else
fn kscale(s: u32, j: u32) -> vec2<f32> {
    if (j < 4u) { return vec2<f32>(f32(ld1(s + j) & 63u), f32(ld1(s + 4u + j) & 63u)); }
    let k = j - 4u;
    let x = ld1(s + 8u + k);
    return vec2<f32>(f32((x & 15u) | ((ld1(s + k) >> 2u) & 0x30u)),
                     f32((x >> 4u) | ((ld1(s + 4u + k) >> 2u) & 0x30u)));
}
#endif

// The same from the 12 bytes as three words.
fn kscale3(w: vec3<u32>, j: u32) -> vec2<f32> {
    let b = vec3<u32>(8u * (j & 3u));
    let lo = (w >> b) & vec3<u32>(255u); // bytes j%4, 4 + j%4, 8 + j%4
    if (j < 4u) { return vec2<f32>(f32(lo.x & 63u), f32(lo.y & 63u)); }
    return vec2<f32>(f32((lo.z & 15u) | ((lo.x >> 2u) & 0x30u)),
                     f32((lo.z >> 4u) | ((lo.y >> 2u) & 0x30u)));
}
#endif

#if T_F32
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let c = 8u * g;
    let i = (rb >> 2u) + c;
    var v = array<f32, 8>();
    for (var k = 0u; k < 8u; k++) {
        if (c + k < cols) { v[k] = bitcast<f32>(wd(i + k)); }
    }
    return W8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}
#endif

#if T_F16
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let c = 8u * g;
    let p = ld8(rb + 2u * c);
    let q = ld8(rb + 2u * c + 8u);
    let a = vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y));
    let b = vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
    // Past the row end (cols not a multiple of 8) the bytes belong to the next row.
    let ka = vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u);
    return W8(select(vec4<f32>(0.0), a, ka < vec4<u32>(cols)),
              select(vec4<f32>(0.0), b, ka + vec4<u32>(4u) < vec4<u32>(cols)));
}
#endif

#if T_BF16
fn bf2(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let c = 8u * g;
    let p = ld8(rb + 2u * c);
    let q = ld8(rb + 2u * c + 8u);
    let a = vec4<f32>(bf2(p.x), bf2(p.y));
    let b = vec4<f32>(bf2(q.x), bf2(q.y));
    let ka = vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u);
    return W8(select(vec4<f32>(0.0), a, ka < vec4<u32>(cols)),
              select(vec4<f32>(0.0), b, ka + vec4<u32>(4u) < vec4<u32>(cols)));
}
#endif

#if T_Q4_0
// 18 bytes: f16 d, 16 bytes of nibbles (low nibbles: elements 0..16, high: 16..32).
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 2u) * TS;
    let j = g & 3u;
    let d = ldh(base);
    let q = ld8(base + 2u + 8u * (j & 1u));
    let sh = 4u * (j >> 1u);
    return W8(d * (uf(fld(q.x, sh, 15u)) - 8.0), d * (uf(fld(q.y, sh, 15u)) - 8.0));
}

// One block from its words (see `blk`).
fn dq32b(q: array<u32, NB>) -> array<vec4<f32>, 8> {
    let d = unpack2x16float(q[0]).x;
    var r: array<vec4<f32>, 8>;
    for (var k = 0u; k < 4u; k++) {
        let w = odd(q, k);
        r[k] = d * (uf(fld(w, 0u, 15u)) - 8.0);
        r[k + 4u] = d * (uf(fld(w, 4u, 15u)) - 8.0);
    }
    return r;
}
#endif

#if T_Q4_1
// 20 bytes: f16 d, f16 m, nibbles as Q4_0; x = d*q + m.
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 2u) * TS;
    let j = g & 3u;
    let dm = unpack2x16float(ld4(base));
    let q = ld8(base + 4u + 8u * (j & 1u));
    let sh = 4u * (j >> 1u);
    return W8(dm.x * uf(fld(q.x, sh, 15u)) + dm.y, dm.x * uf(fld(q.y, sh, 15u)) + dm.y);
}

fn dq32b(q: array<u32, NB>) -> array<vec4<f32>, 8> {
    let dm = unpack2x16float(q[0]);
    var r: array<vec4<f32>, 8>;
    for (var k = 0u; k < 4u; k++) {
        r[k] = dm.x * uf(fld(q[k + 1u], 0u, 15u)) + dm.y;
        r[k + 4u] = dm.x * uf(fld(q[k + 1u], 4u, 15u)) + dm.y;
    }
    return r;
}

#endif

#if T_Q5_0
// 22 bytes: f16 d, u32 of fifth bits (bit e for element e), nibbles as Q4_0; x = d*(q-16).
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 2u) * TS;
    let j = g & 3u;
    let d = ldh(base);
    let qh = ld4(base + 2u);
    let q = ld8(base + 6u + 8u * (j & 1u));
    let sh = 4u * (j >> 1u);
    let a = fld(q.x, sh, 15u) | (bits4(qh, 8u * j) << vec4<u32>(4u));
    let b = fld(q.y, sh, 15u) | (bits4(qh, 8u * j + 4u) << vec4<u32>(4u));
    return W8(d * (uf(a) - 16.0), d * (uf(b) - 16.0));
}

fn dq32b(q: array<u32, NB>) -> array<vec4<f32>, 8> {
    let d = unpack2x16float(q[0]).x;
    let qh = odd(q, 0u);
    var r: array<vec4<f32>, 8>;
    for (var k = 0u; k < 4u; k++) {
        // Four 5-bit values assembled in the bytes of one word, then split: far fewer
        // operations than assembling each lane of a vec4 (this decoder bounds Q5_0's
        // decode speed on CPU devices).
        let w = odd(q, k + 1u);
        let lo = (w & 0x0f0f0f0fu) | (spread4(qh >> (4u * k)) << 4u);
        let hi = ((w >> 4u) & 0x0f0f0f0fu) | (spread4(qh >> (16u + 4u * k)) << 4u);
        r[k] = fma(ubytes(lo), vec4<f32>(d), vec4<f32>(-16.0 * d));
        r[k + 4u] = fma(ubytes(hi), vec4<f32>(d), vec4<f32>(-16.0 * d));
    }
    return r;
}
#endif

#if T_Q5_1
// 24 bytes: f16 d, f16 m, u32 of fifth bits, nibbles; x = d*q + m.
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 2u) * TS;
    let j = g & 3u;
    let dm = unpack2x16float(ld4(base));
    let qh = ld4(base + 4u);
    let q = ld8(base + 8u + 8u * (j & 1u));
    let sh = 4u * (j >> 1u);
    let a = fld(q.x, sh, 15u) | (bits4(qh, 8u * j) << vec4<u32>(4u));
    let b = fld(q.y, sh, 15u) | (bits4(qh, 8u * j + 4u) << vec4<u32>(4u));
    return W8(dm.x * uf(a) + dm.y, dm.x * uf(b) + dm.y);
}

fn dq32b(q: array<u32, NB>) -> array<vec4<f32>, 8> {
    let dm = unpack2x16float(q[0]);
    let qh = q[1];
    var r: array<vec4<f32>, 8>;
    for (var k = 0u; k < 4u; k++) {
        let lo = fld(q[k + 2u], 0u, 15u) | (bits4(qh, 4u * k) << vec4<u32>(4u));
        let hi = fld(q[k + 2u], 4u, 15u) | (bits4(qh, 16u + 4u * k) << vec4<u32>(4u));
        r[k] = dm.x * uf(lo) + dm.y;
        r[k + 4u] = dm.x * uf(hi) + dm.y;
    }
    return r;
}
#endif

#if T_Q8_0
// 34 bytes: f16 d, 32 i8; x = d*q.
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 2u) * TS;
    let d = ldh(base);
    let q = ld8(base + 2u + 8u * (g & 3u));
    return W8(d * sbytes(q.x), d * sbytes(q.y));
}

fn dq32b(q: array<u32, NB>) -> array<vec4<f32>, 8> {
    let d = unpack2x16float(q[0]).x;
    var r: array<vec4<f32>, 8>;
    for (var k = 0u; k < 8u; k++) { r[k] = d * sbytes(odd(q, k)); }
    return r;
}
#endif

#if T_IQ4_NL
// 18 bytes: f16 d, nibbles as Q4_0 indexing the non-linear levels; x = d*level.
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 2u) * TS;
    let j = g & 3u;
    let d = ldh(base);
    let q = ld8(base + 2u + 8u * (j & 1u));
    let sh = 4u * (j >> 1u);
    return W8(d * lv4(fld(q.x, sh, 15u)), d * lv4(fld(q.y, sh, 15u)));
}
#endif

#if T_Q2_K
// 84 bytes: 16 scale bytes (low nibble scale, high nibble min per 16 elements), 64 bytes
// of 2-bit quants (element e: bits 2*((e%128)/32) of byte 32*(e/128) + e%32), f16 d,
// f16 dmin; x = (d*sc)*q - dmin*m.
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 5u) * TS;
    let e = 8u * (g & 31u);
    let dd = unpack2x16float(ld4(base + 80u));
    let s = ld1(base + (e >> 4u));
    let dl = dd.x * f32(s & 15u);
    let ml = dd.y * f32(s >> 4u);
    let q = ld8(base + 16u + 32u * (e >> 7u) + (e & 31u));
    let sh = 2u * ((e & 127u) >> 5u);
    return W8(dl * uf(fld(q.x, sh, 3u)) - ml, dl * uf(fld(q.y, sh, 3u)) - ml);
}
#endif

#if T_Q3_K
// 110 bytes: 32 bytes of high bits (element e: bit e/32 of byte e%32; clear means -4),
// 64 bytes of 2-bit quants (as Q2_K), 12 bytes of sixteen 6-bit scales (bias 32), f16 d.
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 5u) * TS;
    let e = 8u * (g & 31u);
    let d = ldh(base + 108u);
    let i = e >> 4u;
    let lo = (ld1(base + 96u + (i & 7u)) >> (4u * (i >> 3u))) & 15u;
    let hi = (ld1(base + 104u + (i & 3u)) >> (2u * (i >> 2u))) & 3u;
    let dl = d * (f32(lo | (hi << 4u)) - 32.0);
    let hm = ld8(base + (e & 31u));
    let q = ld8(base + 32u + 32u * (e >> 7u) + (e & 31u));
    let sh = 2u * ((e & 127u) >> 5u);
    let hb = e >> 5u;
    let a = uf(fld(q.x, sh, 3u)) - 4.0 * uf(vec4<u32>(1u) - fld(hm.x, hb, 1u));
    let b = uf(fld(q.y, sh, 3u)) - 4.0 * uf(vec4<u32>(1u) - fld(hm.y, hb, 1u));
    return W8(dl * a, dl * b);
}
#endif

#if T_Q4_K
// 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
// (sub-block j of 32 uses nibble j%2 of bytes 32*(j/2)..); x = (d*sc)*q - dmin*m.
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 5u) * TS;
    let e = 8u * (g & 31u);
    let dd = unpack2x16float(ld4(base));
    let j = e >> 5u;
    let sm = kscale(base + 4u, j);
    let dl = dd.x * sm.x;
    let ml = dd.y * sm.y;
    let q = ld8(base + 16u + 32u * (j >> 1u) + (e & 31u));
    let sh = 4u * (j & 1u);
    return W8(dl * uf(fld(q.x, sh, 15u)) - ml, dl * uf(fld(q.y, sh, 15u)) - ml);
}

// Sub-block s % 8 of block s / 8: its scale and min once, then 32 bytes of nibbles.
fn dq32(rb: u32, s: u32) -> array<vec4<f32>, 8> {
    let base = rb + (s >> 3u) * TS;
    let j = s & 7u;
    return q4k32(unpack2x16float(ld4(base)), kscale(base + 4u, j), ld32(base + 16u + 32u * (j >> 1u)), j);
}

// Sub-block j from d/dmin, its scale/min and the 8 words of nibbles it shares with j ^ 1.
fn q4k32(dd: vec2<f32>, sm: vec2<f32>, q: array<u32, 8>, j: u32) -> array<vec4<f32>, 8> {
    let dl = dd.x * sm.x;
    let ml = dd.y * sm.y;
    let sh = 4u * (j & 1u);
    var r: array<vec4<f32>, 8>;
    for (var k = 0u; k < 8u; k++) { r[k] = dl * uf(fld(q[k], sh, 15u)) - ml; }
    return r;
}

#if WIN
// Sub-block j of the block whose words are A (see matvec_rows.wgsl, WIN).
fn dq32k(A: array<u32, NW>, j: u32) -> array<vec4<f32>, 8> {
    return q4k32(unpack2x16float(A[0]), kscale3(vec3<u32>(A[1], A[2], A[3]), j), a8(A, 4u + 8u * (j >> 1u)), j);
}
#endif
#endif

#if T_Q5_K
// 176 bytes: as Q4_K plus 32 bytes of fifth bits (element e: bit e/32 of byte e%32).
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 5u) * TS;
    let e = 8u * (g & 31u);
    let dd = unpack2x16float(ld4(base));
    let j = e >> 5u;
    let sm = kscale(base + 4u, j);
    let dl = dd.x * sm.x;
    let ml = dd.y * sm.y;
    let hm = ld8(base + 16u + (e & 31u));
    let q = ld8(base + 48u + 32u * (j >> 1u) + (e & 31u));
    let sh = 4u * (j & 1u);
    let a = fld(q.x, sh, 15u) | (fld(hm.x, j, 1u) << vec4<u32>(4u));
    let b = fld(q.y, sh, 15u) | (fld(hm.y, j, 1u) << vec4<u32>(4u));
    return W8(dl * uf(a) - ml, dl * uf(b) - ml);
}

// Sub-block s % 8 of block s / 8.
fn dq32(rb: u32, s: u32) -> array<vec4<f32>, 8> {
    let base = rb + (s >> 3u) * TS;
    let j = s & 7u;
    return q5k32(unpack2x16float(ld4(base)), kscale(base + 4u, j), ld32(base + 48u + 32u * (j >> 1u)), ld32(base + 16u), j);
}

// Sub-block j from d/dmin, its scale/min, its 8 words of nibbles and the 8 words of
// fifth bits (bit j of each byte).
fn q5k32(dd: vec2<f32>, sm: vec2<f32>, q: array<u32, 8>, qh: array<u32, 8>, j: u32) -> array<vec4<f32>, 8> {
    let dl = dd.x * sm.x;
    let ml = dd.y * sm.y;
    let sh = 4u * (j & 1u);
    var r: array<vec4<f32>, 8>;
    for (var k = 0u; k < 8u; k++) {
        r[k] = dl * uf(fld(q[k], sh, 15u) | (fld(qh[k], j, 1u) << vec4<u32>(4u))) - ml;
    }
    return r;
}

#if WIN
fn dq32k(A: array<u32, NW>, j: u32) -> array<vec4<f32>, 8> {
    return q5k32(unpack2x16float(A[0]), kscale3(vec3<u32>(A[1], A[2], A[3]), j), a8(A, 12u + 8u * (j >> 1u)), a8(A, 4u), j);
}
#endif
#endif

#if T_Q6_K
// 210 bytes: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 i8 scales, f16 d.
// In half h, element i takes nibble i/64 of ql[64h + i%64] and bits 2*(i/32) of
// qh[32h + i%32]; x = (d*sc)*(q-32).
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 5u) * TS;
    let e = 8u * (g & 31u);
    let d = ldh(base + 208u);
    let sc = bitcast<i32>(ld1(base + 192u + (e >> 4u)) << 24u) >> 24u;
    let dl = d * f32(sc);
    let h = e >> 7u;
    let i = e & 127u;
    let ql = ld8(base + 64u * h + (i & 63u));
    let qh = ld8(base + 128u + 32u * h + (i & 31u));
    let sl = 4u * (i >> 6u);
    let shh = 2u * (i >> 5u);
    let a = fld(ql.x, sl, 15u) | (fld(qh.x, shh, 3u) << vec4<u32>(4u));
    let b = fld(ql.y, sl, 15u) | (fld(qh.y, shh, 3u) << vec4<u32>(4u));
    return W8(dl * (uf(a) - 32.0), dl * (uf(b) - 32.0));
}

fn dq32(rb: u32, s: u32) -> array<vec4<f32>, 8> {
    let base = rb + (s >> 3u) * TS;
    let j = s & 7u;
    let o = q6k_offsets(j);
    return q6k32(ldh(base + 208u), ld4(base + 192u + 2u * j), ld32(base + o.x), ld32(base + o.y), j);
}

// Byte offsets of sub-block j's low nibbles and high bit pairs.
fn q6k_offsets(j: u32) -> vec2<u32> {
    let h = j >> 2u;
    return vec2<u32>(64u * h + 32u * (j & 1u), 128u + 32u * h);
}

// Sub-block j from d, the word whose low two bytes are its two scales, and its 8 words
// of low nibbles and of high bit pairs.
fn q6k32(d: f32, scw: u32, ql: array<u32, 8>, qh: array<u32, 8>, j: u32) -> array<vec4<f32>, 8> {
    let sl = 4u * ((j & 3u) >> 1u);
    let shh = 2u * (j & 3u);
    let d0 = d * f32(bitcast<i32>(scw << 24u) >> 24u);
    let d1 = d * f32(bitcast<i32>(scw << 16u) >> 24u);
    var r: array<vec4<f32>, 8>;
    for (var k = 0u; k < 8u; k++) {
        let v = fld(ql[k], sl, 15u) | (fld(qh[k], shh, 3u) << vec4<u32>(4u));
        r[k] = select(d1, d0, k < 4u) * (uf(v) - 32.0);
    }
    return r;
}

#if WIN
fn dq32k(A: array<u32, NW>, j: u32) -> array<vec4<f32>, 8> {
    let o = q6k_offsets(j) / 4u;
    return q6k32(unpack2x16float(A[52]).x, A[48u + (j >> 1u)] >> (16u * (j & 1u)), a8(A, o.x), a8(A, o.y), j);
}
#endif
#endif

#if T_IQ4_XS
// 136 bytes: f16 d, u16 of high scale bits, 4 bytes of low scale nibbles, 128 bytes of
// nibbles (sub-block j: bytes 16j..16j+16, low nibbles first); x = (d*(sc-32))*level.
fn dq8(rb: u32, g: u32, cols: u32) -> W8 {
    let base = rb + (g >> 5u) * TS;
    let e = 8u * (g & 31u);
    let w0 = ld4(base);
    let d = unpack2x16float(w0).x;
    let j = e >> 5u;
    let lo = (ld1(base + 4u + (j >> 1u)) >> (4u * (j & 1u))) & 15u;
    let hi = (w0 >> (16u + 2u * j)) & 3u;
    let dl = d * (f32(lo | (hi << 4u)) - 32.0);
    let l = e & 31u;
    let q = ld8(base + 8u + 16u * j + (l & 15u));
    let sh = 4u * (l >> 4u);
    return W8(dl * lv4(fld(q.x, sh, 15u)), dl * lv4(fld(q.y, sh, 15u)));
}
#endif
