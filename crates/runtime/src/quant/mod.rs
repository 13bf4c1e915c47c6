//! Quantized tensor formats: the ggml type table and CPU dequantization.

mod dequant;
mod types;

pub use types::{GgmlType, TypeInfo, TYPE_TABLE};
