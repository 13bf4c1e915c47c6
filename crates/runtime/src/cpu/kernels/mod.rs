//! Dot products of one quantized weight row with one quantized activation row: the inner
//! loop of every mat-vec and mat-mul of the CPU engine.
//!
//! Weights stay in their GGUF blocks, byte for byte. Activations are quantized once per
//! row (per token) into an 8-bit block format matched to the weight type, as llama.cpp's
//! CPU backend does, so the inner loop is an integer dot product:
//!
//! | weight types | activation blocks |
//! |---|---|
//! | Q4_0, Q5_0, Q8_0, IQ4_NL | [`BlockQ8_0`] (32 values, one scale) |
//! | Q4_1, Q5_1 | [`BlockQ8_1`] (32 values, scale and `d * Σq` for the weight's offset) |
//! | Q2_K … Q6_K, IQ4_XS | [`BlockQ8K`] (256 values, one scale, sums per 16 for the mins) |
//! | F32, F16, BF16 and every other type | f32 (float weights, or dequantize-then-dot) |
//!
//! Unlike llama.cpp, activation scales are f32, not f16: the blocks never leave memory,
//! and an f32 scale removes one rounding from every dot product.
//!
//! Each (weight type, instruction set) pair has its own function; [`row_dot`] hands out
//! the one for the best [`Isa`] the CPU has, checked at run time, so an AVX2 function is
//! only ever called on a CPU with AVX2. The scalar functions are the reference every SIMD
//! function is tested against.

pub mod act;
pub mod float;
pub mod kquants;
pub mod legacy;

use crate::quant::GgmlType;

/// 32 activations quantized to i8 with one scale: `x[i] ≈ d * qs[i]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8_0 {
    pub d: f32,
    pub qs: [i8; 32],
}

/// [`BlockQ8_0`] plus `s = d * Σ qs`, which a weight with an offset (Q4_1, Q5_1:
/// `w = dw * q + m`) needs: `Σ w·x = dw·d·Σ q·qs + m·s`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; 32],
}

/// 256 activations quantized to i8 with one scale, and the sum of each 16 of them (the
/// K-quants subtract a per-16 or per-32 minimum: `Σ (dl·q − ml)·x` needs `Σ x` per group).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; 256],
    pub bsums: [i16; 16],
}

/// The instruction sets the kernels are written for, best last within each family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust: the reference, and the fallback on every CPU.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL + VNNI (`vpdpbusd`), on top of AVX2.
    Avx512Vnni,
    /// aarch64 NEON (always present on aarch64).
    Neon,
    /// aarch64 NEON + the dot-product extension (`sdot`).
    NeonDotprod,
    /// wasm32 `simd128` (chosen at compile time: wasm has no run-time detection).
    Simd128,
}

impl Isa {
    /// Every instruction set this CPU can run, the scalar reference first.
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                out.push(Isa::Avx2);
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                {
                    out.push(Isa::Avx512Vnni);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            out.push(Isa::Neon);
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                out.push(Isa::NeonDotprod);
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        out.push(Isa::Simd128);
        out
    }

    /// The best instruction set this CPU can run.
    pub fn best() -> Isa {
        *Isa::available().last().expect("scalar is always available")
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "neon-dotprod",
            Isa::Simd128 => "simd128",
        }
    }
}

/// Which activation blocks a weight type's dot product reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActKind {
    Q8_0,
    Q8_1,
    Q8K,
    F32,
}

/// One weight row (`w`: the row's raw GGUF bytes) · one activation row. The slices cover
/// the same number of elements (the row length, a whole number of blocks).
pub type DotQ8_0 = fn(w: &[u8], a: &[BlockQ8_0]) -> f32;
pub type DotQ8_1 = fn(w: &[u8], a: &[BlockQ8_1]) -> f32;
pub type DotQ8K = fn(w: &[u8], a: &[BlockQ8K]) -> f32;
/// Float weights, or any type through dequantize-then-dot (`ty` says which).
pub type DotF32 = fn(ty: GgmlType, w: &[u8], a: &[f32]) -> f32;

/// The dot product for one weight type, by the activation blocks it reads.
#[derive(Clone, Copy)]
pub enum RowDot {
    Q8_0(DotQ8_0),
    Q8_1(DotQ8_1),
    Q8K(DotQ8K),
    F32(DotF32),
}

impl RowDot {
    pub fn act_kind(&self) -> ActKind {
        match self {
            RowDot::Q8_0(_) => ActKind::Q8_0,
            RowDot::Q8_1(_) => ActKind::Q8_1,
            RowDot::Q8K(_) => ActKind::Q8K,
            RowDot::F32(_) => ActKind::F32,
        }
    }
}

/// One weight row against four activation rows (four tokens of a prefill): the weight
/// blocks are unpacked once for all four, which is most of the work for small blocks.
pub type Dot4Q8_0 = fn(w: &[u8], a: [&[BlockQ8_0]; 4]) -> [f32; 4];
pub type Dot4Q8_1 = fn(w: &[u8], a: [&[BlockQ8_1]; 4]) -> [f32; 4];
pub type Dot4Q8K = fn(w: &[u8], a: [&[BlockQ8K]; 4]) -> [f32; 4];

/// A four-token dot product, where an instruction set has one for a type.
#[derive(Clone, Copy)]
pub enum RowDot4 {
    Q8_0(Dot4Q8_0),
    Q8_1(Dot4Q8_1),
    Q8K(Dot4Q8K),
}

/// One weight row against eight activation rows (x86 prefill, the offset types): eight
/// tokens (`single`), or four tokens of a block and its fixed-scale residual each
/// (`paired`, exact precision), whose two integer sums are added before one conversion:
/// the token's value in the pair's first slot, 0 in its second.
pub type Dot8Q8_1 = fn(w: &[u8], a: [&[BlockQ8_1]; 8]) -> [f32; 8];

#[derive(Clone, Copy)]
pub struct RowDot8 {
    pub single: Dot8Q8_1,
    pub paired: Dot8Q8_1,
}

/// The eight-row kernels for `ty` on `isa`, if there are (they read [`BlockQ8_1`], as
/// [`row_dot`]'s kernel for `ty` then does).
pub fn row_dot8(ty: GgmlType, isa: Isa) -> Option<RowDot8> {
    debug_assert!(Isa::available().contains(&isa), "{isa:?} not available");
    legacy::row_dot8(ty, isa)
}

/// The four-token kernel for `ty` on `isa`, if there is one (it must read the same
/// activation blocks as [`row_dot`]'s kernel); `None`: four single dots.
pub fn row_dot4(ty: GgmlType, isa: Isa) -> Option<RowDot4> {
    debug_assert!(Isa::available().contains(&isa), "{isa:?} not available");
    legacy::row_dot4(ty, isa).or_else(|| kquants::row_dot4(ty, isa))
}

/// The dot product for weights of type `ty` on instruction set `isa`, which must be one
/// of [`Isa::available`] (the SIMD functions assume their instructions exist). A type
/// without an integer kernel for `isa` falls back to the float path, so every type the
/// crate can dequantize has a dot product; `None` only for types it cannot read at all.
pub fn row_dot(ty: GgmlType, isa: Isa) -> Option<RowDot> {
    debug_assert!(Isa::available().contains(&isa), "{isa:?} not available");
    legacy::row_dot(ty, isa)
        .or_else(|| kquants::row_dot(ty, isa))
        .or_else(|| float::row_dot(ty, isa))
}

#[cfg(test)]
pub(crate) mod test_util;
