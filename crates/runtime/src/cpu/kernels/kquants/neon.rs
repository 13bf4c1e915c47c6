//! stub
use super::super::DotQ8K;
use crate::quant::GgmlType;
pub(super) fn get(_ty: GgmlType, _dot: bool) -> Option<DotQ8K> {
    None
}
