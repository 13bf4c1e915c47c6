//! The WGSL engine: a model's weights on the GPU ([`GpuModel`], shared by any number of
//! sessions) and sessions that evaluate tokens with recorded graphs ([`GpuSession`]).
//!
//! Loading takes any [`ByteSource`] (mmap natively, fetch or Blob streams in the browser,
//! a download on a phone), checks the [`MemoryPlan`] against the device before
//! allocating, and uploads each tensor once, chunk by chunk.

pub mod generate;
pub mod graph;
pub mod kernels;
pub mod model;
pub mod plan;
pub mod profile;
pub mod session;
pub mod source;

pub use generate::{generate_async, Hooks, Timings};
pub use model::{AttnInput, FfnInput, GpuModel, ModelUpload, UploadBytes};
pub use plan::MemoryPlan;
pub use session::{Counters, GpuSession};
pub use source::{ByteSource, LoadControl, SliceSource};
