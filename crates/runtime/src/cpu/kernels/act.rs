//! Activation quantizers: one f32 row into 8-bit blocks ([`BlockQ8_0`], [`BlockQ8_1`],
//! [`BlockQ8K`]). Symmetric: `d = max|x| / 127`, `q = round(x / d)`; an all-zero block
//! gets `d = 0` and zero quants.

use super::{BlockQ8K, BlockQ8_0, BlockQ8_1};

/// `v` rounded to the nearest integer, ties to even (as llama.cpp's SIMD quantizers
/// round), for |v| < 2^22: adding and taking away 1.5·2^23 leaves no fraction bits. Two
/// additions where `f32::round` is a library call (x86-64's baseline has no `roundps`):
/// that call was a third of the activation quantizers' time.
#[inline(always)]
fn round(v: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    (v + SHIFT) - SHIFT
}

#[inline]
fn quantize_32(x: &[f32]) -> (f32, [i8; 32]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round(v * id) as i8;
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
            *q = round(v * id) as i8;
        }
        let mut bsums = [0i16; 16];
        for (s, g) in bsums.iter_mut().zip(qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i16).sum();
        }
        *b = BlockQ8K { d, qs, bsums };
    }
}

/// The residual `r = x − d·q` of 32-blocks `hi` at the fixed scale `hi.d / 256`
/// (|r| ≤ d/2, so |q| ≤ 128, clamped to 127). Fixed rather than each block's own
/// `max|r| / 127` (which is ~d/254: the same precision) so that a kernel may sum a block
/// and its residual in integers, `256·Σ w·q + Σ w·q'`, and convert once.
#[inline]
fn residual_32(r: &[f32], d: f32) -> (f32, [i8; 32]) {
    let dr = d / 256.0;
    let id = if dr > 0.0 { 1.0 / dr } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(r) {
        *q = round(v * id).clamp(-127.0, 127.0) as i8;
    }
    (dr, qs)
}

/// [`residual_32`] of each block of `hi`; `r.len()` must be `32 * hi.len()`.
pub fn quantize_q8_0_residual(r: &[f32], hi: &[BlockQ8_0], out: &mut [BlockQ8_0]) {
    debug_assert_eq!(r.len(), hi.len() * 32);
    for ((b, h), rs) in out.iter_mut().zip(hi).zip(r.chunks_exact(32)) {
        let (d, qs) = residual_32(rs, h.d);
        *b = BlockQ8_0 { d, qs };
    }
}

/// [`residual_32`] of each block of `hi`, with its `s`.
pub fn quantize_q8_1_residual(r: &[f32], hi: &[BlockQ8_1], out: &mut [BlockQ8_1]) {
    debug_assert_eq!(r.len(), hi.len() * 32);
    for ((b, h), rs) in out.iter_mut().zip(hi).zip(r.chunks_exact(32)) {
        let (d, qs) = residual_32(rs, h.d);
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        *b = BlockQ8_1 {
            d,
            s: d * sum as f32,
            qs,
        };
    }
}
