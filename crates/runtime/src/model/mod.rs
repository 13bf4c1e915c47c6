//! Architecture configs and the plain-Rust CPU forward pass (the oracle).
