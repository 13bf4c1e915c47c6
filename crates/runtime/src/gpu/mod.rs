//! The GPU layer: device creation and capabilities, compiled kernels, buffers.
//!
//! Native builds drive Vulkan, Metal, DX12 (GL as last resort) through wgpu; the
//! `webgpu` feature drives the browser's WebGPU. The same kernels run on both.

pub mod device;
pub mod kernel;
pub mod wait;

pub use device::{Capabilities, DeviceOptions, GpuContext, MatLayout};
pub use kernel::{Kernel, PipelineCache};

/// The wgpu version Wisp is built on, for callers that inspect adapters themselves.
pub use wgpu;
