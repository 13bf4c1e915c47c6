//! The 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL.

use super::{Isa, RowDot};
use crate::quant::GgmlType;

pub(super) fn row_dot(_ty: GgmlType, _isa: Isa) -> Option<RowDot> {
    None
}
