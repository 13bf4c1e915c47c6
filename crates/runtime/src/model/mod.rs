//! Architecture configs, the tensors each architecture needs, the reference math, and the
//! plain-Rust CPU forward pass (the oracle the GPU engine is tested against).

pub mod config;
#[cfg(feature = "native")]
pub mod cpu;
pub mod math;
pub mod weights;

pub use config::{Arch, ModelConfig, RopeStyle};
pub use weights::{LayerTensors, ModelTensors};

/// Which positions' logits a forward call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position's.
    Last,
    /// Every position's, in order.
    All,
}
