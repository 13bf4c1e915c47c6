//! Activation quantizers: one f32 row into 8-bit blocks ([`BlockQ8_0`], [`BlockQ8_1`],
//! [`BlockQ8K`]). Symmetric: `d = max|x| / 127`, `q = round(x / d)`; an all-zero block
//! gets `d = 0` and zero quants.

use super::{BlockQ8K, BlockQ8_0, BlockQ8_1};

#[inline]
fn quantize_32(x: &[f32]) -> (f32, [i8; 32]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    (d, qs)
}

/// `x.len()` must be `32 * out.len()`.
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    debug_assert_eq!(x.len(), out.len() * 32);
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(32)) {
        let (d, qs) = quantize_32(xs);
        *b = BlockQ8_0 { d, qs };
    }
}

/// `x.len()` must be `32 * out.len()`.
pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    debug_assert_eq!(x.len(), out.len() * 32);
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(32)) {
        let (d, qs) = quantize_32(xs);
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        *b = BlockQ8_1 {
            d,
            s: d * sum as f32,
            qs,
        };
    }
}

/// `x.len()` must be `256 * out.len()`.
pub fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    debug_assert_eq!(x.len(), out.len() * 256);
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(256)) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; 256];
        for (q, &v) in qs.iter_mut().zip(xs) {
            *q = (v * id).round() as i8;
        }
        let mut bsums = [0i16; 16];
        for (s, g) in bsums.iter_mut().zip(qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i16).sum();
        }
        *b = BlockQ8K { d, qs, bsums };
    }
}
