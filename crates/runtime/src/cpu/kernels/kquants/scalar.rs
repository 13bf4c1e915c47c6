//! Plain Rust dot products: the reference every SIMD kernel is tested against. Integer
//! sums per sub-block, integer scales, then one float multiply-add per super-block for `d`
//! and one for `dmin`.

use super::super::{BlockQ8K, DotQ8K};
use super::{f16_at, iq4xs_scales, q3k_scales, q4k_scales, IQ4_LEVELS};
use super::{IQ4XS, Q2K, Q3K, Q4K, Q5K, Q6K};
use crate::quant::GgmlType;

pub(super) fn get(ty: GgmlType) -> Option<DotQ8K> {
    Some(match ty {
        GgmlType::Q2_K => dot_q2_k,
        GgmlType::Q3_K => dot_q3_k,
        GgmlType::Q4_K => dot_q4_k,
        GgmlType::Q5_K => dot_q5_k,
        GgmlType::Q6_K => dot_q6_k,
        GgmlType::IQ4_XS => dot_iq4_xs,
        _ => return None,
    })
}

/// `Σ m[k] · bsums[k]` for per-16 minimums, or per-32 ones doubled up by the caller.
#[inline(always)]
fn min_sum16(m: impl Fn(usize) -> i32, a: &BlockQ8K) -> i32 {
    (0..16).map(|k| m(k) * a.bsums[k] as i32).sum()
}

/// Element `e` of a 2-bit plane laid out as Q2_K / Q3_K: bits `2*((e%128)/32)` of byte
/// `32*(e/128) + e%32`.
#[inline(always)]
fn two_bits(qs: &[u8], e: usize) -> i32 {
    ((qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3) as i32
}

pub(super) fn dot_q2_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (b, a) in w.chunks_exact(Q2K).zip(a) {
        let qs = &b[16..80];
        let mut isum = 0i32;
        for (k, &sm) in b[..16].iter().enumerate() {
            let s: i32 = (16 * k..16 * k + 16)
                .map(|e| two_bits(qs, e) * a.qs[e] as i32)
                .sum();
            isum += (sm & 0xf) as i32 * s;
        }
        let msum = min_sum16(|k| (b[k] >> 4) as i32, a);
        sum += a.d * f16_at(b, 80) * isum as f32;
        sum -= a.d * f16_at(b, 82) * msum as f32;
    }
    sum
}

pub(super) fn dot_q3_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (b, a) in w.chunks_exact(Q3K).zip(a) {
        let (hm, qs) = (&b[..32], &b[32..96]);
        let sc = q3k_scales(&b[96..108]);
        let mut isum = 0i32;
        for (k, &sc) in sc.iter().enumerate() {
            let s: i32 = (16 * k..16 * k + 16)
                .map(|e| {
                    // A clear high bit subtracts 4.
                    let h = ((hm[e % 32] >> (e / 32)) & 1) as i32;
                    (two_bits(qs, e) - 4 + 4 * h) * a.qs[e] as i32
                })
                .sum();
            isum += sc as i32 * s;
        }
        sum += a.d * f16_at(b, 108) * isum as f32;
    }
    sum
}

/// Q4_K and Q5_K share everything but the fifth bit (`qh` empty for Q4_K).
#[inline(always)]
fn dot_q45_k(b: &[u8], qs: &[u8], qh: Option<&[u8]>, a: &BlockQ8K) -> (i32, i32) {
    let (sc, mn) = q4k_scales(&b[4..16]);
    let mut isum = 0i32;
    for j in 0..8 {
        let q = &qs[32 * (j / 2)..32 * (j / 2) + 32];
        let s: i32 = (0..32)
            .map(|l| {
                let lo = ((q[l] >> (4 * (j % 2))) & 0xf) as i32;
                let hi = qh.map_or(0, |h| ((h[l] >> j) & 1) as i32);
                (lo | hi << 4) * a.qs[32 * j + l] as i32
            })
            .sum();
        isum += sc[j] as i32 * s;
    }
    (isum, min_sum16(|k| mn[k / 2] as i32, a))
}

pub(super) fn dot_q4_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (b, a) in w.chunks_exact(Q4K).zip(a) {
        let (isum, msum) = dot_q45_k(b, &b[16..144], None, a);
        sum += a.d * f16_at(b, 0) * isum as f32;
        sum -= a.d * f16_at(b, 2) * msum as f32;
    }
    sum
}

pub(super) fn dot_q5_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (b, a) in w.chunks_exact(Q5K).zip(a) {
        let (isum, msum) = dot_q45_k(b, &b[48..176], Some(&b[16..48]), a);
        sum += a.d * f16_at(b, 0) * isum as f32;
        sum -= a.d * f16_at(b, 2) * msum as f32;
    }
    sum
}

pub(super) fn dot_q6_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (b, a) in w.chunks_exact(Q6K).zip(a) {
        let mut isum = 0i32;
        for k in 0..16 {
            let s: i32 = (16 * k..16 * k + 16)
                .map(|e| {
                    let (h, i) = (e / 128, e % 128);
                    let ql = (b[64 * h + i % 64] >> (4 * (i / 64))) & 0xf;
                    let qh = (b[128 + 32 * h + i % 32] >> (2 * (i / 32))) & 3;
                    ((ql | qh << 4) as i32 - 32) * a.qs[e] as i32
                })
                .sum();
            isum += (b[192 + k] as i8) as i32 * s;
        }
        sum += a.d * f16_at(b, 208) * isum as f32;
    }
    sum
}

pub(super) fn dot_iq4_xs(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (b, a) in w.chunks_exact(IQ4XS).zip(a) {
        let sc = iq4xs_scales(b);
        let mut isum = 0i32;
        for j in 0..8 {
            let q = &b[8 + 16 * j..8 + 16 * j + 16];
            let s: i32 = (0..16)
                .map(|l| {
                    IQ4_LEVELS[(q[l] & 0xf) as usize] as i32 * a.qs[32 * j + l] as i32
                        + IQ4_LEVELS[(q[l] >> 4) as usize] as i32 * a.qs[32 * j + 16 + l] as i32
                })
                .sum();
            isum += sc[j] as i32 * s;
        }
        sum += a.d * f16_at(b, 0) * isum as f32;
    }
    sum
}
