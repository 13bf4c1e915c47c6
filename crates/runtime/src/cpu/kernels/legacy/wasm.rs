//! wasm32 `simd128`: the 128-bit kernels of [`super::v128`], with i16 widening and
//! `i32x4.dot_i16x8_s` for the byte products (wasm has no 8-bit dot product). (The
//! vocabulary is `kquants::wasm`'s, private to that module, plus the few items these
//! kernels add.)

use super::v128::legacy_128;
use core::arch::wasm32::*;

type B = v128;
type I = v128;
type F = v128;

#[inline]
fn ld(s: &[u8], i: usize) -> B {
    let s = &s[i..i + 16];
    // SAFETY: 16 bytes in bounds; wasm loads need no alignment.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}
#[inline]
fn splat(v: u8) -> B {
    u8x16_splat(v)
}
#[inline]
fn splat32(v: u32) -> B {
    u32x4_splat(v)
}
#[inline]
fn and(a: B, b: B) -> B {
    v128_and(a, b)
}
#[inline]
fn or(a: B, b: B) -> B {
    v128_or(a, b)
}
#[inline]
fn sub(a: B, b: B) -> B {
    i8x16_sub(a, b)
}
#[inline]
fn eq(a: B, b: B) -> B {
    i8x16_eq(a, b)
}
#[inline]
fn shr4(v: B) -> B {
    u8x16_shr(v, 4)
}
#[inline]
fn lut(t: B, i: B) -> B {
    i8x16_swizzle(t, i)
}
#[inline]
fn zero() -> I {
    i32x4_splat(0)
}
#[inline]
fn dot16(acc: I, q: B, y: B) -> I {
    let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(q), i16x8_extend_low_i8x16(y));
    let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(q), i16x8_extend_high_i8x16(y));
    i32x4_add(acc, i32x4_add(lo, hi))
}
#[inline]
fn fzero() -> F {
    f32x4_splat(0.0)
}
#[inline]
fn fmac(acc: F, v: I, s: f32) -> F {
    f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(v), f32x4_splat(s)))
}
#[inline]
fn fhsum(v: F) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
        + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

legacy_128!("simd128");
