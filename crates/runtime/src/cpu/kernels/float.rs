//! Float weights (F32, F16, BF16) against f32 activations, and the dequantize-then-dot
//! fallback that gives every other readable type a dot product.

use super::{Isa, RowDot};
use crate::model::math::dot;
use crate::quant::{bf16_to_f32, dequantize, f16_to_f32, GgmlType};
use std::cell::RefCell;

pub(super) fn row_dot(ty: GgmlType, _isa: Isa) -> Option<RowDot> {
    match ty {
        GgmlType::F32 => Some(RowDot::F32(dot_f32)),
        GgmlType::F16 => Some(RowDot::F32(dot_f16)),
        GgmlType::BF16 => Some(RowDot::F32(dot_bf16)),
        _ if ty.can_dequantize() => Some(RowDot::F32(dot_dequantized)),
        _ => None,
    }
}

fn dot_f32(_: GgmlType, w: &[u8], a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (c, (wc, ac)) in w.chunks_exact(32).zip(a.chunks_exact(8)).enumerate() {
        let _ = c;
        for j in 0..8 {
            let v = f32::from_le_bytes([wc[4 * j], wc[4 * j + 1], wc[4 * j + 2], wc[4 * j + 3]]);
            acc[j] += v * ac[j];
        }
    }
    let done = a.len() / 8 * 8;
    let mut tail = 0f32;
    for i in done..a.len() {
        tail += f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]) * a[i];
    }
    acc.iter().sum::<f32>() + tail
}

fn dot_half(w: &[u8], a: &[f32], conv: fn(u16) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    for (wc, ac) in w.chunks_exact(16).zip(a.chunks_exact(8)) {
        for j in 0..8 {
            acc[j] += conv(u16::from_le_bytes([wc[2 * j], wc[2 * j + 1]])) * ac[j];
        }
    }
    let done = a.len() / 8 * 8;
    let mut tail = 0f32;
    for i in done..a.len() {
        tail += conv(u16::from_le_bytes([w[2 * i], w[2 * i + 1]])) * a[i];
    }
    acc.iter().sum::<f32>() + tail
}

fn dot_f16(_: GgmlType, w: &[u8], a: &[f32]) -> f32 {
    dot_half(w, a, f16_to_f32)
}

fn dot_bf16(_: GgmlType, w: &[u8], a: &[f32]) -> f32 {
    dot_half(w, a, bf16_to_f32)
}

thread_local! {
    static ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Any type the crate can dequantize: the row into a per-thread buffer, then an f32 dot.
fn dot_dequantized(ty: GgmlType, w: &[u8], a: &[f32]) -> f32 {
    ROW.with(|row| {
        let mut row = row.borrow_mut();
        row.resize(a.len(), 0.0);
        // Sizes were checked when the model was loaded; a mismatch here is a bug.
        dequantize(ty, w, &mut row).expect("row size checked at load");
        dot(&row, a)
    })
}
