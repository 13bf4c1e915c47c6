//! The ggml tensor type table: one row per type llama.cpp defines, the only place that
//! knows a type's id, name, block size and bytes per block.
//!
//! Ids 4, 5 (Q4_2, Q4_3), 31–33 (Q4_0_4_4 …) and 36–38 (IQ4_NL_4_4 …) were removed from
//! ggml; files that use them are rejected as unknown types.

use super::dequant::{self as dq, DequantFn};
use std::fmt;

/// A ggml tensor element type, as stored in a GGUF tensor-info record.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(u32);

/// Facts about one ggml type.
#[derive(Debug, Clone, Copy)]
pub struct TypeInfo {
    pub id: u32,
    pub name: &'static str,
    /// Elements per block (1 for plain scalar types).
    pub block_size: u64,
    /// Bytes per block.
    pub type_size: u64,
    /// CPU dequantizer for whole blocks, if Wisp has one (see [`super::dequantize`]).
    pub dequant: Option<DequantFn>,
}

macro_rules! ggml_types {
    ($( $konst:ident = $id:literal, $name:literal, $block:literal, $size:literal, $deq:expr; )*) => {
        impl GgmlType {
            $( pub const $konst: GgmlType = GgmlType($id); )*
        }
        /// Every known type, ordered by id.
        pub const TYPE_TABLE: &[TypeInfo] = &[
            $( TypeInfo { id: $id, name: $name, block_size: $block, type_size: $size, dequant: $deq }, )*
        ];
    };
}

ggml_types! {
    F32 = 0, "F32", 1, 4, Some(dq::f32);
    F16 = 1, "F16", 1, 2, Some(dq::f16);
    Q4_0 = 2, "Q4_0", 32, 18, Some(dq::q4_0);
    Q4_1 = 3, "Q4_1", 32, 20, Some(dq::q4_1);
    Q5_0 = 6, "Q5_0", 32, 22, Some(dq::q5_0);
    Q5_1 = 7, "Q5_1", 32, 24, Some(dq::q5_1);
    Q8_0 = 8, "Q8_0", 32, 34, Some(dq::q8_0);
    Q8_1 = 9, "Q8_1", 32, 40, None;
    Q2_K = 10, "Q2_K", 256, 84, Some(dq::q2_k);
    Q3_K = 11, "Q3_K", 256, 110, Some(dq::q3_k);
    Q4_K = 12, "Q4_K", 256, 144, Some(dq::q4_k);
    Q5_K = 13, "Q5_K", 256, 176, Some(dq::q5_k);
    Q6_K = 14, "Q6_K", 256, 210, Some(dq::q6_k);
    Q8_K = 15, "Q8_K", 256, 292, Some(dq::q8_k);
    IQ2_XXS = 16, "IQ2_XXS", 256, 66, None;
    IQ2_XS = 17, "IQ2_XS", 256, 74, None;
    IQ3_XXS = 18, "IQ3_XXS", 256, 98, None;
    IQ1_S = 19, "IQ1_S", 256, 50, None;
    IQ4_NL = 20, "IQ4_NL", 32, 18, Some(dq::iq4_nl);
    IQ3_S = 21, "IQ3_S", 256, 110, None;
    IQ2_S = 22, "IQ2_S", 256, 82, None;
    IQ4_XS = 23, "IQ4_XS", 256, 136, Some(dq::iq4_xs);
    I8 = 24, "I8", 1, 1, Some(dq::i8);
    I16 = 25, "I16", 1, 2, Some(dq::i16);
    I32 = 26, "I32", 1, 4, Some(dq::i32);
    I64 = 27, "I64", 1, 8, None;
    F64 = 28, "F64", 1, 8, Some(dq::f64);
    IQ1_M = 29, "IQ1_M", 256, 56, None;
    BF16 = 30, "BF16", 1, 2, Some(dq::bf16);
    TQ1_0 = 34, "TQ1_0", 256, 54, Some(dq::tq1_0);
    TQ2_0 = 35, "TQ2_0", 256, 66, Some(dq::tq2_0);
    MXFP4 = 39, "MXFP4", 32, 17, Some(dq::mxfp4);
    NVFP4 = 40, "NVFP4", 64, 36, None;
    Q1_0 = 41, "Q1_0", 128, 18, None;
}

impl GgmlType {
    /// The type with this id, if ggml defines it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPE_TABLE
            .iter()
            .any(|t| t.id == id)
            .then_some(GgmlType(id))
    }

    /// The type with this name (as llama.cpp spells it, case-insensitive).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TYPE_TABLE
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .map(|t| GgmlType(t.id))
    }

    pub fn id(self) -> u32 {
        self.0
    }

    pub fn info(self) -> &'static TypeInfo {
        // Construction only goes through `from_id` or the constants, so the row exists.
        TYPE_TABLE
            .iter()
            .find(|t| t.id == self.0)
            .expect("GgmlType always names a row of TYPE_TABLE")
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn block_size(self) -> u64 {
        self.info().block_size
    }

    pub fn type_size(self) -> u64 {
        self.info().type_size
    }

    /// Whether [`super::dequantize`] handles this type on the CPU.
    pub fn can_dequantize(self) -> bool {
        self.info().dequant.is_some()
    }

    /// Bytes taken by `n_elements` elements, or `None` when `n_elements` is not a whole
    /// number of blocks or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let info = self.info();
        if !n_elements.is_multiple_of(info.block_size) {
            return None;
        }
        (n_elements / info.block_size).checked_mul(info.type_size)
    }
}

impl fmt::Debug for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sorted() {
        for pair in TYPE_TABLE.windows(2) {
            assert!(pair[0].id < pair[1].id);
        }
    }

    #[test]
    fn removed_ids_are_unknown() {
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 42, u32::MAX] {
            assert!(GgmlType::from_id(id).is_none(), "{id}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(GgmlType::Q4_K.bytes_for(512), Some(288));
        assert_eq!(GgmlType::Q4_K.bytes_for(100), None);
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
        assert_eq!(GgmlType::from_name("q6_k"), Some(GgmlType::Q6_K));
    }
}
