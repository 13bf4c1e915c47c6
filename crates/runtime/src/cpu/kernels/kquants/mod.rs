//! The 256-element super-block types: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, each dotted
//! with [`BlockQ8K`] activations.
//!
//! Every kernel works the same way: integer sums per sub-block, multiplied by the integer
//! sub-block scales, then one float multiply-add per super-block for `d` (and one for
//! `dmin`, whose per-sub-block minimums meet the activations only through `bsums`). The
//! fixed offsets of Q3_K (−4 on a clear high bit) and Q6_K (−32) also go through
//! `bsums`, so the SIMD kernels multiply unsigned quants by signed activations.
//!
//! The SIMD kernels assume activation quants in −127..=127, which [`quantize_q8_k`]
//! guarantees (`|x| / d ≤ 127`): the AVX2 sign trick for IQ4_XS would overflow on −128.
//!
//! [`BlockQ8K`]: super::BlockQ8K
//! [`quantize_q8_k`]: super::act::quantize_q8_k

use super::{Isa, RowDot, RowDot4};
use crate::quant::GgmlType;

#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(any(
    target_arch = "aarch64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod v128;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

/// Block sizes in bytes.
pub(crate) const Q2K: usize = 84;
pub(crate) const Q3K: usize = 110;
pub(crate) const Q4K: usize = 144;
pub(crate) const Q5K: usize = 176;
pub(crate) const Q6K: usize = 210;
pub(crate) const IQ4XS: usize = 136;

pub(super) fn row_dot(ty: GgmlType, isa: Isa) -> Option<RowDot> {
    let f = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::avx2::get(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => x86::vnni::get(ty).or_else(|| x86::avx2::get(ty)),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::get(ty, false),
        #[cfg(target_arch = "aarch64")]
        Isa::NeonDotprod => neon::get(ty, true),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => wasm::get(ty),
        _ => None,
    };
    f.or_else(|| scalar::get(ty)).map(RowDot::Q8K)
}

/// The four-row kernel for `ty` on `isa` (x86 so far; `None`: four single dots).
pub(super) fn row_dot4(ty: GgmlType, isa: Isa) -> Option<RowDot4> {
    let f = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::avx2::get4(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => x86::vnni::get4(ty),
        _ => {
            let _ = ty;
            None
        }
    };
    f.map(RowDot4::Q8K)
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    crate::quant::f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// The activation quants as bytes, for byte-vector loads.
#[allow(dead_code)] // used by the 128-bit kernels only
#[inline(always)]
fn q8_bytes(a: &super::BlockQ8K) -> &[u8; 256] {
    // SAFETY: i8 and u8 have the same size and alignment, and every bit pattern is valid.
    unsafe { &*(a.qs.as_ptr() as *const [u8; 256]) }
}

#[inline(always)]
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Q4_K / Q5_K: the eight 6-bit scales and eight 6-bit mins packed in 12 bytes. Four
/// bytes at a time: the low four of each are the low 6 bits of bytes 0..4 / 4..8, the high
/// four take bytes 8..12's nibbles with the top 2 bits of bytes 0..8 above them.
#[inline(always)]
fn q4k_scales(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (a, b, c) = (u32_at(s, 0), u32_at(s, 4), u32_at(s, 8));
    let sc_hi = (c & 0x0f0f_0f0f) | ((a >> 2) & 0x3030_3030);
    let mn_hi = ((c >> 4) & 0x0f0f_0f0f) | ((b >> 2) & 0x3030_3030);
    let join = |lo: u32, hi: u32| (lo as u64 | (hi as u64) << 32).to_le_bytes();
    (join(a & 0x3f3f_3f3f, sc_hi), join(b & 0x3f3f_3f3f, mn_hi))
}

/// Q3_K: sixteen 6-bit scales (biased by 32) in 12 bytes: low nibbles from bytes 0..8
/// (all low nibbles first), 2-bit high parts from bytes 8..12. Returned unbiased.
#[inline(always)]
fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let (a, b, c) = (u32_at(s, 0), u32_at(s, 4), u32_at(s, 8));
    let m4 = 0x0f0f_0f0f;
    let m2 = 0x0303_0303;
    let w = [
        (a & m4) | (c & m2) << 4,
        (b & m4) | ((c >> 2) & m2) << 4,
        ((a >> 4) & m4) | ((c >> 4) & m2) << 4,
        ((b >> 4) & m4) | ((c >> 6) & m2) << 4,
    ];
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = ((w[i / 4] >> (8 * (i % 4))) & 0xff) as i8 - 32;
    }
    out
}

/// IQ4_XS: eight 6-bit scales (biased by 32): low nibbles in bytes 4..8, high 2 bits in
/// the u16 at byte 2. Returned unbiased.
#[inline(always)]
fn iq4xs_scales(b: &[u8]) -> [i8; 8] {
    let sh = u16::from_le_bytes([b[2], b[3]]);
    let mut out = [0i8; 8];
    for (j, o) in out.iter_mut().enumerate() {
        let lo = (b[4 + j / 2] >> (4 * (j % 2))) & 0xf;
        let hi = ((sh >> (2 * j)) & 3) as u8;
        *o = (lo | hi << 4) as i8 - 32;
    }
    out
}

/// The 16 non-linear levels of IQ4_XS (as IQ4_NL).
const IQ4_LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];
