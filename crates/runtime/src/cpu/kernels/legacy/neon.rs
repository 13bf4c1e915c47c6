//! aarch64 NEON, with and without the dot-product extension: the 128-bit kernels of
//! [`super::v128`]. Plain NEON multiplies bytes with `smull` and folds the i16 products
//! pairwise into i32 (`sadalp`); dotprod does all of it in one `sdot`. (The vocabulary is
//! `kquants::neon`'s, which is private to that module, plus the few items these kernels
//! add.)

/// The vocabulary both variants share (everything but the byte dot product).
macro_rules! common {
    ($feat:literal) => {
        use core::arch::aarch64::*;

        type B = uint8x16_t;
        type I = int32x4_t;
        type F = float32x4_t;

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
        unsafe fn splat32(v: u32) -> B {
            vreinterpretq_u8_u32(vdupq_n_u32(v))
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
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn eq(a: B, b: B) -> B {
            vceqq_u8(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn shr4(v: B) -> B {
            vshrq_n_u8::<4>(v)
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
        unsafe fn fzero() -> F {
            vdupq_n_f32(0.0)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn fmac(acc: F, v: I, s: f32) -> F {
            vfmaq_n_f32(acc, vcvtq_f32_s32(v), s)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn fhsum(v: F) -> f32 {
            vaddvq_f32(v)
        }
    };
}

pub(super) mod plain {
    use super::super::v128::legacy_128;
    common!("neon");

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn dot16(acc: I, q: B, y: B) -> I {
        let (q, y) = (vreinterpretq_s8_u8(q), vreinterpretq_s8_u8(y));
        // Each i16 product fits (|q·y| ≤ 128 · 127); pairs are summed into i32.
        let lo = vmull_s8(vget_low_s8(q), vget_low_s8(y));
        let hi = vmull_high_s8(q, y);
        vpadalq_s16(vpadalq_s16(acc, lo), hi)
    }

    legacy_128!("neon");
}

pub(super) mod sdot {
    use super::super::v128::legacy_128;
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

    legacy_128!("neon,dotprod");
}
