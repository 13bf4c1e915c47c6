//! CPU dequantization of ggml tensor data to f32: the oracle the GPU kernels are checked
//! against.
//!
//! Results are bit-identical to the `gguf` Python package (`gguf.quants.dequantize`,
//! float32 output). That package is vectorised numpy, so each of its steps is one f32
//! rounding; the kernels below perform the same steps in the same order (for example Q4_K
//! computes `d * sc` and `dmin * m` first, then `(d*sc) * q - (dmin*m)`), and Rust never
//! fuses a multiply and an add on its own, so the roundings match exactly.
//!
//! Each kernel turns a whole number of blocks into f32s and is reached through the
//! `dequant` column of [`TYPE_TABLE`](super::TYPE_TABLE); [`dequantize`] checks the sizes
//! and dispatches.

use super::GgmlType;
use crate::Error;

/// Dequantize `dst.len()` elements of type `ty` from `src`.
///
/// `dst.len()` must be a whole number of blocks and `src.len()` exactly the bytes those
/// blocks take; otherwise [`Error::InvalidRequest`]. A type without a CPU dequantizer
/// gives [`Error::Unsupported`].
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), Error> {
    let kernel = ty.info().dequant.ok_or_else(|| {
        Error::Unsupported(format!(
            "CPU dequantization of {ty} tensors is not implemented"
        ))
    })?;
    let n = dst.len() as u64;
    match ty.bytes_for(n) {
        Some(bytes) if bytes == src.len() as u64 => {
            kernel(src, dst);
            Ok(())
        }
        Some(bytes) => Err(Error::InvalidRequest(format!(
            "dequantize {ty}: {n} elements take {bytes} bytes, but the source has {} bytes",
            src.len()
        ))),
        None => Err(Error::InvalidRequest(format!(
            "dequantize {ty}: {n} elements is not a whole number of {}-element blocks (source has {} bytes)",
            ty.block_size(),
            src.len()
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Half-precision conversions (no dependency: these are small and must match numpy bits).

/// IEEE binary16 bits to f32. Exact for every value; NaN payloads are kept (shifted into
/// the top of the f32 mantissa, quiet bit untouched), as numpy does.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: man * 2^-24. Shift the leading one up to the implicit-bit slot.
            let shift = man.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((man << shift) & 0x3ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// f32 to IEEE binary16 bits, rounding to nearest (ties to even). Overflow gives
/// infinity, tiny values become subnormals or zero. A NaN keeps the top 10 bits of its
/// payload (made non-zero so it stays a NaN), as numpy does.
pub fn f32_to_f16(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        if man == 0 {
            return sign | 0x7c00;
        }
        return sign | 0x7c00 | ((man >> 13) as u16).max(1);
    }
    // Biased f16 exponent of this value if it were normal.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let (kept, shift) = if e <= 0 {
        // Subnormal result: keep (1.man) >> (14 - e) as the f16 mantissa, exponent 0.
        let shift = (14 - e) as u32;
        if shift > 24 {
            // Below half the smallest subnormal (f32 subnormals land here too).
            return sign;
        }
        (0x80_0000 | man, shift)
    } else {
        ((e as u32) << 23 | man, 13)
    };
    let mut h = kept >> shift;
    let rem = kept & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    if rem > half || (rem == half && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

/// bfloat16 bits to f32 (exact: bf16 is the top half of an f32).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

// ---------------------------------------------------------------------------------------
// Block kernels. Each takes a whole number of blocks; `dequantize` guarantees the sizes.

/// A dequantization kernel: `src` holds n whole blocks, `dst` n × block_size elements.
pub type DequantFn = fn(&[u8], &mut [f32]);

/// Apply `block` to each (block bytes, block outputs) pair. Fixed-size arrays let the
/// compiler drop the bounds checks inside the kernels.
#[inline(always)]
fn per_block<const B: usize, const N: usize>(
    src: &[u8],
    dst: &mut [f32],
    block: impl Fn(&[u8; B], &mut [f32; N]),
) {
    for (b, y) in src.chunks_exact(B).zip(dst.chunks_exact_mut(N)) {
        // `chunks_exact` yields exactly B and N items, so both conversions succeed.
        if let (Ok(b), Ok(y)) = (b.try_into(), y.try_into()) {
            block(b, y);
        }
    }
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

pub(super) fn f32(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 4], y: &mut [f32; 1]| {
        y[0] = f32::from_le_bytes(*b);
    });
}

pub(super) fn f16(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 2], y: &mut [f32; 1]| {
        y[0] = f16_to_f32(u16::from_le_bytes(*b));
    });
}

pub(super) fn bf16(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 2], y: &mut [f32; 1]| {
        y[0] = bf16_to_f32(u16::from_le_bytes(*b));
    });
}

/// f64 rounds to nearest f32 (what numpy's `astype(float32)` does).
pub(super) fn f64(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 8], y: &mut [f32; 1]| {
        y[0] = f64::from_le_bytes(*b) as f32;
    });
}

pub(super) fn i8(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 1], y: &mut [f32; 1]| {
        y[0] = b[0] as i8 as f32;
    });
}

pub(super) fn i16(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 2], y: &mut [f32; 1]| {
        y[0] = i16::from_le_bytes(*b) as f32;
    });
}

/// i32 rounds to nearest f32 above 2^24.
pub(super) fn i32(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 4], y: &mut [f32; 1]| {
        y[0] = i32::from_le_bytes(*b) as f32;
    });
}

/// Q4_0: f16 d, 16 bytes of nibbles (low nibbles are elements 0..16, high 16..32);
/// x = d * (q - 8).
pub(super) fn q4_0(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 18], y: &mut [f32; 32]| {
        let d = f16_at(b, 0);
        for l in 0..16 {
            let q = b[2 + l];
            y[l] = d * ((q & 0xf) as i32 - 8) as f32;
            y[l + 16] = d * ((q >> 4) as i32 - 8) as f32;
        }
    });
}

/// Q4_1: f16 d, f16 m, nibbles as Q4_0; x = d * q + m.
pub(super) fn q4_1(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 20], y: &mut [f32; 32]| {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        for l in 0..16 {
            let q = b[4 + l];
            y[l] = d * (q & 0xf) as f32 + m;
            y[l + 16] = d * (q >> 4) as f32 + m;
        }
    });
}

/// Q5_0: f16 d, u32 of fifth bits (bit i for element i), nibbles as Q4_0;
/// x = d * (q - 16).
pub(super) fn q5_0(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 22], y: &mut [f32; 32]| {
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        for l in 0..16 {
            let q = b[6 + l];
            let lo = (q & 0xf) as u32 | ((qh >> l) & 1) << 4;
            let hi = (q >> 4) as u32 | ((qh >> (l + 16)) & 1) << 4;
            y[l] = d * (lo as i32 - 16) as f32;
            y[l + 16] = d * (hi as i32 - 16) as f32;
        }
    });
}

/// Q5_1: f16 d, f16 m, then as Q5_0 without the offset; x = d * q + m.
pub(super) fn q5_1(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 24], y: &mut [f32; 32]| {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        for l in 0..16 {
            let q = b[8 + l];
            let lo = (q & 0xf) as u32 | ((qh >> l) & 1) << 4;
            let hi = (q >> 4) as u32 | ((qh >> (l + 16)) & 1) << 4;
            y[l] = d * lo as f32 + m;
            y[l + 16] = d * hi as f32 + m;
        }
    });
}

/// Q8_0: f16 d, 32 i8; x = d * q.
pub(super) fn q8_0(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 34], y: &mut [f32; 32]| {
        let d = f16_at(b, 0);
        for l in 0..32 {
            y[l] = d * (b[2 + l] as i8) as f32;
        }
    });
}

/// Q2_K: 16 scale bytes (low nibble scale, high nibble min, one per 16 elements),
/// 64 bytes of 2-bit quants, f16 d, f16 dmin; x = (d*sc) * q - (dmin*m).
///
/// Quant layout: element `e` is bits `2*((e%128)/32)` of byte `32*(e/128) + e%32`.
pub(super) fn q2_k(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 84], y: &mut [f32; 256]| {
        let d = f16_at(b, 80);
        let dmin = f16_at(b, 82);
        for (e, out) in y.iter_mut().enumerate() {
            let s = b[e / 16];
            let dl = d * (s & 0xf) as f32;
            let ml = dmin * (s >> 4) as f32;
            let q = (b[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            *out = dl * q as f32 - ml;
        }
    });
}

/// Q3_K: 32 bytes of high bits (element `e` is bit `e/32` of byte `e%32`, and a *clear*
/// bit subtracts 4), 64 bytes of 2-bit quants (laid out as Q2_K), 12 bytes of sixteen
/// 6-bit scales (biased by 32), f16 d; x = (d*(sc-32)) * q.
pub(super) fn q3_k(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 110], y: &mut [f32; 256]| {
        let d = f16_at(b, 108);
        let sc = &b[96..108];
        let mut dl = [0f32; 16];
        for (i, dl) in dl.iter_mut().enumerate() {
            // Low 4 bits: nibbles of bytes 0..8 (all low nibbles first); high 2 bits:
            // 2-bit fields of bytes 8..12.
            let lo = (sc[i % 8] >> (4 * (i / 8))) & 0xf;
            let hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
            *dl = d * ((lo | hi << 4) as i32 - 32) as f32;
        }
        for (e, out) in y.iter_mut().enumerate() {
            let ql = (b[32 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            let hbit = (b[e % 32] >> (e / 32)) & 1;
            let q = ql as i32 - if hbit == 0 { 4 } else { 0 };
            *out = dl[e / 16] * q as f32;
        }
    });
}

/// The eight 6-bit scales and mins of Q4_K / Q5_K, packed in 12 bytes.
fn k_scale_min(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[4 + j] & 63;
        sc[4 + j] = (s[8 + j] & 0xf) | ((s[j] >> 2) & 0x30);
        mn[4 + j] = (s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30);
    }
    (sc, mn)
}

/// Q4_K: f16 d, f16 dmin, 12 bytes of scales/mins, 128 bytes of nibbles (sub-block j of
/// 32 elements uses nibble `j%2` of bytes `32*(j/2)..`); x = (d*sc) * q - (dmin*m).
pub(super) fn q4_k(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 144], y: &mut [f32; 256]| {
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let (sc, mn) = k_scale_min(&b[4..16]);
        for j in 0..8 {
            let dl = d * sc[j] as f32;
            let ml = dmin * mn[j] as f32;
            let qs = &b[16 + 32 * (j / 2)..16 + 32 * (j / 2) + 32];
            let shift = 4 * (j % 2);
            for l in 0..32 {
                let q = (qs[l] >> shift) & 0xf;
                y[32 * j + l] = dl * q as f32 - ml;
            }
        }
    });
}

/// Q5_K: as Q4_K plus 32 bytes of fifth bits (element `e` is bit `e/32` of byte `e%32`).
pub(super) fn q5_k(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 176], y: &mut [f32; 256]| {
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let (sc, mn) = k_scale_min(&b[4..16]);
        let qh = &b[16..48];
        for j in 0..8 {
            let dl = d * sc[j] as f32;
            let ml = dmin * mn[j] as f32;
            let qs = &b[48 + 32 * (j / 2)..48 + 32 * (j / 2) + 32];
            let shift = 4 * (j % 2);
            for l in 0..32 {
                let q = ((qs[l] >> shift) & 0xf) | ((qh[l] >> j) & 1) << 4;
                y[32 * j + l] = dl * q as f32 - ml;
            }
        }
    });
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 i8 scales, f16 d;
/// x = (d*sc) * (q - 32).
///
/// In each 128-element half `h`, element `i` takes nibble `i/64` of `ql[64h + i%64]` and
/// bits `2*(i/32)` of `qh[32h + i%32]`.
pub(super) fn q6_k(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 210], y: &mut [f32; 256]| {
        let d = f16_at(b, 208);
        let mut dl = [0f32; 16];
        for (i, dl) in dl.iter_mut().enumerate() {
            *dl = d * (b[192 + i] as i8) as f32;
        }
        for (e, out) in y.iter_mut().enumerate() {
            let (h, i) = (e / 128, e % 128);
            let ql = (b[64 * h + i % 64] >> (4 * (i / 64))) & 0xf;
            let qh = (b[128 + 32 * h + i % 32] >> (2 * (i / 32))) & 3;
            let q = (ql | qh << 4) as i32 - 32;
            *out = dl[e / 16] * q as f32;
        }
    });
}

/// Q8_K: f32 d, 256 i8, 16 i16 block sums (unused here); x = d * q.
pub(super) fn q8_k(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 292], y: &mut [f32; 256]| {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        for (l, out) in y.iter_mut().enumerate() {
            *out = d * (b[4 + l] as i8) as f32;
        }
    });
}

/// The 16 non-linear levels of IQ4_NL and IQ4_XS.
const IQ4_LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// IQ4_NL: f16 d, nibbles as Q4_0 indexing [`IQ4_LEVELS`]; x = d * level.
pub(super) fn iq4_nl(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 18], y: &mut [f32; 32]| {
        let d = f16_at(b, 0);
        for l in 0..16 {
            let q = b[2 + l];
            y[l] = d * IQ4_LEVELS[(q & 0xf) as usize] as f32;
            y[l + 16] = d * IQ4_LEVELS[(q >> 4) as usize] as f32;
        }
    });
}

/// IQ4_XS: f16 d, u16 of high scale bits, 4 bytes of low scale nibbles, 128 bytes of
/// nibbles (sub-block j: bytes `16j..16j+16`, low nibbles first); x = (d*(sc-32)) * level.
pub(super) fn iq4_xs(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 136], y: &mut [f32; 256]| {
        let d = f16_at(b, 0);
        let sh = u16::from_le_bytes([b[2], b[3]]);
        for j in 0..8 {
            let lo = (b[4 + j / 2] >> (4 * (j % 2))) & 0xf;
            let hi = ((sh >> (2 * j)) & 3) as u8;
            let dl = d * ((lo | hi << 4) as i32 - 32) as f32;
            let qs = &b[8 + 16 * j..8 + 16 * j + 16];
            for l in 0..16 {
                y[32 * j + l] = dl * IQ4_LEVELS[(qs[l] & 0xf) as usize] as f32;
                y[32 * j + 16 + l] = dl * IQ4_LEVELS[(qs[l] >> 4) as usize] as f32;
            }
        }
    });
}

/// TQ1_0: ternary digits packed five (or four) per byte as a base-3 fixed-point fraction:
/// multiplying the byte by 3^k (mod 256) brings digit k to the top, read as
/// `(x * 3) >> 8`. 48 bytes of five digits, 4 bytes of four, f16 d; x = d * (t - 1).
pub(super) fn tq1_0(src: &[u8], dst: &mut [f32]) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let trit = |byte: u8, k: usize| ((byte.wrapping_mul(POW3[k]) as u16 * 3) >> 8) as i32 - 1;
    per_block(src, dst, |b: &[u8; 54], y: &mut [f32; 256]| {
        let d = f16_at(b, 52);
        for (e, out) in y.iter_mut().enumerate() {
            let t = match e {
                0..160 => trit(b[e % 32], e / 32),
                160..240 => trit(b[32 + (e - 160) % 16], (e - 160) / 16),
                _ => trit(b[48 + (e - 240) % 4], (e - 240) / 4),
            };
            *out = d * t as f32;
        }
    });
}

/// TQ2_0: 64 bytes of 2-bit values (laid out as Q2_K), f16 d; x = d * (q - 1).
pub(super) fn tq2_0(src: &[u8], dst: &mut [f32]) {
    per_block(src, dst, |b: &[u8; 66], y: &mut [f32; 256]| {
        let d = f16_at(b, 64);
        for (e, out) in y.iter_mut().enumerate() {
            let q = (b[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            *out = d * (q as i32 - 1) as f32;
        }
    });
}

/// MXFP4: an e8m0 exponent byte, 16 bytes of e2m1 nibbles (low nibbles first). The level
/// table holds doubled e2m1 values, so the scale is half of 2^(e-127).
pub(super) fn mxfp4(src: &[u8], dst: &mut [f32]) {
    const LEVELS: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];
    per_block(src, dst, |b: &[u8; 17], y: &mut [f32; 32]| {
        let e = b[0] as u32;
        // 2^(e-128) as f32 bits; e < 2 needs a subnormal.
        let d = f32::from_bits(if e < 2 {
            0x0020_0000 << e
        } else {
            (e - 1) << 23
        });
        for l in 0..16 {
            let q = b[1 + l];
            y[l] = d * LEVELS[(q & 0xf) as usize] as f32;
            y[l + 16] = d * LEVELS[(q >> 4) as usize] as f32;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent f16 decoding in exact f64 arithmetic.
    fn f16_reference(h: u16) -> f64 {
        let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
        let exp = ((h >> 10) & 0x1f) as i32;
        let man = (h & 0x3ff) as f64;
        match exp {
            0 => sign * man * 2f64.powi(-24),
            0x1f if man == 0.0 => sign * f64::INFINITY,
            0x1f => f64::NAN,
            _ => sign * (1024.0 + man) * 2f64.powi(exp - 25),
        }
    }

    #[test]
    fn f16_to_f32_exhaustive() {
        for h in 0..=u16::MAX {
            let got = f16_to_f32(h);
            let want = f16_reference(h);
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
                // Payload and sign carried over unchanged.
                let bits = got.to_bits();
                assert_eq!(bits >> 31, (h >> 15) as u32, "{h:#06x}");
                assert_eq!((bits >> 13) & 0x3ff, (h & 0x3ff) as u32, "{h:#06x}");
                assert_eq!(bits & 0x1fff, 0, "{h:#06x}");
            } else {
                assert_eq!(got as f64, want, "{h:#06x}");
                assert_eq!(got.is_sign_negative(), h & 0x8000 != 0, "{h:#06x}");
            }
        }
    }

    #[test]
    fn f16_round_trip_exhaustive() {
        for h in 0..=u16::MAX {
            assert_eq!(f32_to_f16(f16_to_f32(h)), h, "{h:#06x}");
        }
    }

    #[test]
    fn f32_to_f16_rounding() {
        // Midpoints between neighbouring f16 values round to the even one; anything past
        // the midpoint rounds away.
        for h in 0..0x7bffu16 {
            let (lo, hi) = (f16_to_f32(h) as f64, f16_to_f32(h + 1) as f64);
            let mid = ((lo + hi) / 2.0) as f32; // exact: f16 midpoints fit in f32
            let even = if h % 2 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_f16(mid), even, "midpoint after {h:#06x}");
            assert_eq!(f32_to_f16(-mid), even | 0x8000, "-midpoint after {h:#06x}");
            let above = f32::from_bits(mid.to_bits() + 1);
            let below = f32::from_bits(mid.to_bits() - 1);
            assert_eq!(f32_to_f16(above), h + 1, "above midpoint after {h:#06x}");
            assert_eq!(f32_to_f16(below), h, "below midpoint after {h:#06x}");
        }
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65519.99), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // midpoint to "65536" rounds to inf
        assert_eq!(f32_to_f16(f32::MAX), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0); // half the smallest subnormal: tie to 0
        assert_eq!(f32_to_f16(f32::from_bits(2f32.powi(-25).to_bits() + 1)), 1);
        assert_eq!(f32_to_f16(f32::from_bits(1)), 0);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        // NaNs (numpy's rule): top payload bits kept, never collapsing to infinity.
        assert_eq!(f32_to_f16(f32::from_bits(0x7fc0_0000)), 0x7e00);
        assert_eq!(f32_to_f16(f32::from_bits(0x7f80_0001)), 0x7c01);
        assert_eq!(f32_to_f16(f32::from_bits(0xff81_2345)), 0xfc09);
    }

    #[test]
    fn bf16() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc000), -2.0);
        assert_eq!(bf16_to_f32(0x7fc1).to_bits(), 0x7fc1_0000);
    }

    #[test]
    fn size_errors() {
        let mut dst = [0f32; 32];
        assert!(dequantize(GgmlType::Q4_0, &[0; 18], &mut dst).is_ok());
        let e = dequantize(GgmlType::Q4_0, &[0; 17], &mut dst).unwrap_err();
        assert!(matches!(&e, Error::InvalidRequest(m) if m.contains("18") && m.contains("17")));
        let e = dequantize(GgmlType::Q4_0, &[0; 18], &mut dst[..31]).unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)));
        let e = dequantize(GgmlType::Q4_K, &[0; 18], &mut dst).unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)));
        let e = dequantize(GgmlType::IQ2_XXS, &[0; 66], &mut [0f32; 256]).unwrap_err();
        assert!(matches!(&e, Error::Unsupported(m) if m.contains("IQ2_XXS")));
        assert!(dequantize(GgmlType::Q6_K, &[], &mut []).is_ok());
    }

    #[test]
    fn q4_0_by_hand() {
        // d = 0.5; byte 0x9f: element 0 = 0xf - 8 = 7, element 16 = 0x9 - 8 = 1.
        let mut b = [0u8; 18];
        b[..2].copy_from_slice(&f32_to_f16(0.5).to_le_bytes());
        b[2] = 0x9f;
        let mut y = [0f32; 32];
        dequantize(GgmlType::Q4_0, &b, &mut y).unwrap();
        assert_eq!(y[0], 3.5);
        assert_eq!(y[16], 0.5);
        assert_eq!(y[1], -4.0);
    }
}
