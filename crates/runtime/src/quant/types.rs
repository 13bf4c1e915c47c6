//! The ggml tensor type table: one row per type llama.cpp defines, the only place that
//! knows a type's id, name, block size and bytes per block.
//!
//! Ids 4, 5 (Q4_2, Q4_3), 31–33 (Q4_0_4_4 …) and 36–38 (IQ4_NL_4_4 …) were removed from
//! ggml; files that use them are rejected as unknown types.

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
}

macro_rules! ggml_types {
    ($( $konst:ident = $id:literal, $name:literal, $block:literal, $size:literal; )*) => {
        impl GgmlType {
            $( pub const $konst: GgmlType = GgmlType($id); )*
        }
        /// Every known type, ordered by id.
        pub const TYPE_TABLE: &[TypeInfo] = &[
            $( TypeInfo { id: $id, name: $name, block_size: $block, type_size: $size }, )*
        ];
    };
}

ggml_types! {
    F32 = 0, "F32", 1, 4;
    F16 = 1, "F16", 1, 2;
    Q4_0 = 2, "Q4_0", 32, 18;
    Q4_1 = 3, "Q4_1", 32, 20;
    Q5_0 = 6, "Q5_0", 32, 22;
    Q5_1 = 7, "Q5_1", 32, 24;
    Q8_0 = 8, "Q8_0", 32, 34;
    Q8_1 = 9, "Q8_1", 32, 40;
    Q2_K = 10, "Q2_K", 256, 84;
    Q3_K = 11, "Q3_K", 256, 110;
    Q4_K = 12, "Q4_K", 256, 144;
    Q5_K = 13, "Q5_K", 256, 176;
    Q6_K = 14, "Q6_K", 256, 210;
    Q8_K = 15, "Q8_K", 256, 292;
    IQ2_XXS = 16, "IQ2_XXS", 256, 66;
    IQ2_XS = 17, "IQ2_XS", 256, 74;
    IQ3_XXS = 18, "IQ3_XXS", 256, 98;
    IQ1_S = 19, "IQ1_S", 256, 50;
    IQ4_NL = 20, "IQ4_NL", 32, 18;
    IQ3_S = 21, "IQ3_S", 256, 110;
    IQ2_S = 22, "IQ2_S", 256, 82;
    IQ4_XS = 23, "IQ4_XS", 256, 136;
    I8 = 24, "I8", 1, 1;
    I16 = 25, "I16", 1, 2;
    I32 = 26, "I32", 1, 4;
    I64 = 27, "I64", 1, 8;
    F64 = 28, "F64", 1, 8;
    IQ1_M = 29, "IQ1_M", 256, 56;
    BF16 = 30, "BF16", 1, 2;
    TQ1_0 = 34, "TQ1_0", 256, 54;
    TQ2_0 = 35, "TQ2_0", 256, 66;
    MXFP4 = 39, "MXFP4", 32, 17;
    NVFP4 = 40, "NVFP4", 64, 36;
    Q1_0 = 41, "Q1_0", 128, 18;
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
