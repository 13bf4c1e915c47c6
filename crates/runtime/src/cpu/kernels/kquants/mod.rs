//! The 256-element super-block types: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.

use super::{Isa, RowDot};
use crate::quant::GgmlType;

pub(super) fn row_dot(_ty: GgmlType, _isa: Isa) -> Option<RowDot> {
    None
}
