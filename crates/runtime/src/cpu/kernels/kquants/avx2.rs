//! x86-64 AVX2 (+FMA, F16C).
use super::super::DotQ8K;
use crate::quant::GgmlType;
pub(super) fn get(_ty: GgmlType) -> Option<DotQ8K> {
    None
}
