//! WGSL kernels of the Wisp engine, one file per kernel family, and the table naming each
//! kernel's entry point, bindings and specialisation.
//!
//! The kernels arrive with the WGSL engine; until then this crate only reserves its place
//! in the workspace so the runtime's dependency graph does not change when they land.
