//! The 32-element block types: Q4_0, Q5_0, Q8_0 and IQ4_NL dotted with [`BlockQ8_0`]
//! activations; Q4_1 and Q5_1 (which carry an offset `m`) with [`BlockQ8_1`], whose `s`
//! (`d · Σ q`) meets the offset: `Σ w·x = dw·da·Σ q·qa + m·s`.
//!
//! Every kernel computes one integer sum per block and one float multiply-add per block.
//! The SIMD kernels assume activation quants in −127..=127, which the quantizers in
//! [`super::act`] guarantee (`|x| / d ≤ 127`): the sign trick would overflow on −128.
//!
//! [`BlockQ8_0`]: super::BlockQ8_0
//! [`BlockQ8_1`]: super::BlockQ8_1

use super::{Isa, RowDot, RowDot4, RowDot8};
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
pub(crate) const Q4_0: usize = 18;
pub(crate) const Q4_1: usize = 20;
pub(crate) const Q5_0: usize = 22;
pub(crate) const Q5_1: usize = 24;
pub(crate) const Q8_0: usize = 34;
pub(crate) const IQ4_NL: usize = 18;

/// IQ4_NL's (and IQ4_XS's) sixteen non-linear levels.
pub(crate) const IQ4_NL_LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// The functions of one instruction set.
pub(super) struct Table {
    pub q4_0: super::DotQ8_0,
    pub q5_0: super::DotQ8_0,
    pub q8_0: super::DotQ8_0,
    pub iq4_nl: super::DotQ8_0,
    pub q4_1: super::DotQ8_1,
    pub q5_1: super::DotQ8_1,
}

/// The four-token functions of one instruction set.
pub(super) struct Table4 {
    pub q4_0: super::Dot4Q8_0,
    pub q5_0: super::Dot4Q8_0,
    pub q8_0: super::Dot4Q8_0,
    pub iq4_nl: super::Dot4Q8_0,
    pub q4_1: super::Dot4Q8_1,
    pub q5_1: super::Dot4Q8_1,
}

/// The four-token table of `isa` (every SIMD set has one; scalar does not).
fn table4(isa: Isa) -> Option<&'static Table4> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(&x86::avx2::TABLE4),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => Some(&x86::vnni::TABLE4),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(&neon::plain::TABLE4),
        #[cfg(target_arch = "aarch64")]
        Isa::NeonDotprod => Some(&neon::sdot::TABLE4),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => Some(&wasm::TABLE4),
        _ => None,
    }
}

pub(super) fn row_dot4(ty: GgmlType, isa: Isa) -> Option<RowDot4> {
    if let Some((_, f)) = unsigned(ty, isa) {
        return Some(RowDot4::Q8_1(f));
    }
    let t = table4(isa)?;
    Some(match ty {
        GgmlType::Q4_0 => RowDot4::Q8_0(t.q4_0),
        GgmlType::Q5_0 => RowDot4::Q8_0(t.q5_0),
        GgmlType::Q8_0 => RowDot4::Q8_0(t.q8_0),
        GgmlType::IQ4_NL => RowDot4::Q8_0(t.iq4_nl),
        GgmlType::Q4_1 => RowDot4::Q8_1(t.q4_1),
        GgmlType::Q5_1 => RowDot4::Q8_1(t.q5_1),
        _ => return None,
    })
}

/// x86's eight-row kernels (the offset types, Q4_0 and Q5_0 among them as unsigned).
pub(super) fn row_dot8(ty: GgmlType, isa: Isa) -> Option<RowDot8> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::avx2::eight(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => x86::vnni::eight(ty),
        _ => {
            let _ = ty;
            None
        }
    }
}

/// x86's Q4_0 and Q5_0 kernels over [`BlockQ8_1`] activations (see `x86::unsigned`).
fn unsigned(ty: GgmlType, isa: Isa) -> Option<(super::DotQ8_1, super::Dot4Q8_1)> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::avx2::unsigned(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => x86::vnni::unsigned(ty),
        _ => {
            let _ = ty;
            None
        }
    }
}

pub(super) fn row_dot(ty: GgmlType, isa: Isa) -> Option<RowDot> {
    if let Some((f, _)) = unsigned(ty, isa) {
        return Some(RowDot::Q8_1(f));
    }
    let t: &Table = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &x86::avx2::TABLE,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => &x86::vnni::TABLE,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => &neon::plain::TABLE,
        #[cfg(target_arch = "aarch64")]
        Isa::NeonDotprod => &neon::sdot::TABLE,
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => &wasm::TABLE,
        _ => &scalar::TABLE,
    };
    Some(match ty {
        GgmlType::Q4_0 => RowDot::Q8_0(t.q4_0),
        GgmlType::Q5_0 => RowDot::Q8_0(t.q5_0),
        GgmlType::Q8_0 => RowDot::Q8_0(t.q8_0),
        GgmlType::IQ4_NL => RowDot::Q8_0(t.iq4_nl),
        GgmlType::Q4_1 => RowDot::Q8_1(t.q4_1),
        GgmlType::Q5_1 => RowDot::Q8_1(t.q5_1),
        _ => return None,
    })
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    crate::quant::f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}
