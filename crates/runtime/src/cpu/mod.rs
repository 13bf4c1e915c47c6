//! The CPU engine: quantized weights, integer SIMD dot products, threads.
//!
//! It sits beside the WGSL engine (`engine`) behind the same [`crate::generate::Forward`]
//! interface and takes over where WebGPU is missing or is only a software adapter. The
//! f32 oracle (`model::cpu`) stays the plain reference both engines are tested against.

#[cfg(feature = "native")]
pub mod bench;
pub mod half;
pub mod kernels;
pub mod matrix;
pub mod model;
pub mod pool;
pub mod session;

pub use kernels::Isa;
pub use matrix::Precision;
pub use model::{CpuEngine, CpuOptions};
pub use session::CpuEngineSession;
