//! aarch64 NEON, with and without the dot-product extension: the 128-bit kernels of
//! [`super::v128`]. Plain NEON multiplies bytes with `smull` and folds the i16 products
//! pairwise into i32 (`sadalp`); dotprod does all of it in one `sdot`.

use crate::cpu::kernels::DotQ8K;
use crate::quant::GgmlType;

pub(super) fn get(ty: GgmlType, dotprod: bool) -> Option<DotQ8K> {
    if dotprod {
        sdot::get(ty)
    } else {
        plain::get(ty)
    }
}

/// The vocabulary both variants share (everything but the byte dot product).
macro_rules! common {
    ($feat:literal) => {
        use core::arch::aarch64::*;

        type B = uint8x16_t;
        type I = int32x4_t;

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn ld(s: &[u8], i: usize) -> B {
            vld1q_u8(s[i..i + 16].as_ptr())
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn splat(v: u8) -> B {
            vdupq_n_u8(v)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn and(a: B, b: B) -> B {
            vandq_u8(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn or(a: B, b: B) -> B {
            vorrq_u8(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn sub(a: B, b: B) -> B {
            vsubq_u8(a, b)
        }
        /// Variable shifts: `ushl` by a negative count shifts right.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn shr(v: B, n: u32) -> B {
            vshlq_u8(v, vdupq_n_s8(-(n as i8)))
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn shl(v: B, n: u32) -> B {
            vshlq_u8(v, vdupq_n_s8(n as i8))
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn lut(t: B, i: B) -> B {
            vqtbl1q_u8(t, i)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn zero() -> I {
            vdupq_n_s32(0)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn mac(acc: I, v: I, s: i32) -> I {
            vmlaq_n_s32(acc, v, s)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn hsum(v: I) -> i32 {
            vaddvq_s32(v)
        }
    };
}

mod plain {
    use super::super::v128::kernels_128;
    common!("neon");

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn dot16(acc: I, q: B, y: B) -> I {
        let (q, y) = (vreinterpretq_s8_u8(q), vreinterpretq_s8_u8(y));
        // Each i16 product fits (|q·y| ≤ 127 · 127); pairs are summed into i32.
        let lo = vmull_s8(vget_low_s8(q), vget_low_s8(y));
        let hi = vmull_high_s8(q, y);
        vpadalq_s16(vpadalq_s16(acc, lo), hi)
    }

    kernels_128!("neon");
}

mod sdot {
    use super::super::v128::kernels_128;
    common!("neon,dotprod");

    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn dot16(mut acc: I, q: B, y: B) -> I {
        // `vdotq_s32` is still unstable (`stdarch_neon_dotprod`); the instruction is not.
        core::arch::asm!(
            "sdot {acc:v}.4s, {q:v}.16b, {y:v}.16b",
            acc = inout(vreg) acc,
            q = in(vreg) q,
            y = in(vreg) y,
            options(pure, nomem, nostack, preserves_flags),
        );
        acc
    }

    kernels_128!("neon,dotprod");
}
