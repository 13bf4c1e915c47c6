//! Wisp: run small quantized language models (GGUF) on the user's own GPU.
//!
//! One module per concern: [`gguf`] reads files, [`quant`] knows the tensor formats,
//! [`tokenizer`] and [`chat`] turn text into token ids, [`model`] holds the architecture
//! configs and the plain-Rust CPU forward pass (the oracle the GPU engine is tested
//! against), [`sampling`] picks the next token. The GPU engine (`gpu`, `engine`) is
//! behind the `gpu` feature (enabled by `native` and `webgpu`): with
//! `default-features = false` the crate is CPU-only and builds without wgpu.

#[cfg(feature = "native")]
pub mod batch;
pub mod chat;
pub mod cpu;
#[cfg(feature = "gpu")]
pub mod engine;
pub mod error;
pub mod generate;
pub mod gguf;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod model;
pub mod quant;
pub mod sampling;
pub mod tokenizer;

pub use error::Error;
