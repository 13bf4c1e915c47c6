//! Quantized tensor formats: the ggml type table and CPU dequantization.

mod dequant;
mod types;

pub use dequant::{bf16_to_f32, dequantize, f16_to_f32, f32_to_f16, DequantFn};
pub use types::{GgmlType, TypeInfo, TYPE_TABLE};
