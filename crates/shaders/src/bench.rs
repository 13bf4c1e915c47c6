//! The roofline probes (`wgsl/stream.wgsl`): a streaming read that measures the device's
//! achievable read bandwidth, and an FMA loop that measures its f32 arithmetic rate. The
//! engine never runs them; `wisp bench --kernels` compares its kernels against them.
//!
//! Bindings. Stream: 0 `src` `array<vec4<u32>>` (read), 1 `out` `array<u32>` (64 words,
//! read_write), 2 uniform [`ProbeParams`]. Flops: 0 `out` `array<f32>` (64 words),
//! 1 uniform [`ProbeParams`]. Dispatch with [`stream_groups`] / [`flops_groups`].

use crate::preprocess;

const STREAM: &str = include_str!("../wgsl/stream.wgsl");

/// Invocations per workgroup of both probes.
pub const PROBE_WORKGROUP: u32 = 256;
/// f32 operations per loop iteration of one flops-probe invocation (8 vec4 FMAs).
pub const FLOPS_PER_ITER: u64 = 64;
/// Words each probe may write (the size of its `out` binding).
pub const PROBE_OUT_WORDS: u32 = 64;
/// vec4 words each stream invocation reads, about (more invocations than this would
/// only add scheduling; fewer would starve a wide GPU).
const STREAM_PER_INVOCATION: u32 = 16;

/// The streaming-read probe.
pub fn stream() -> String {
    preprocess(STREAM, &["STREAM"])
}

/// The FMA-rate probe.
pub fn flops() -> String {
    preprocess(STREAM, &["FLOPS"])
}

/// Params of both probes (16 bytes): `n` vec4 words to read (stream), `iters` loop trips
/// (flops), `magic` a value the result is compared with so the work stays live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeParams {
    pub n: u32,
    pub iters: u32,
    pub magic: u32,
}

impl ProbeParams {
    pub fn bytes(&self) -> Vec<u8> {
        [self.n, self.iters, self.magic, 0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect()
    }
}

/// Workgroups for streaming `n_vec4` words: about 16 per invocation, 1-D (≤ 65535; the
/// kernel strides over the rest).
pub fn stream_groups(n_vec4: u32) -> (u32, u32, u32) {
    let g = n_vec4
        .div_ceil(PROBE_WORKGROUP * STREAM_PER_INVOCATION)
        .clamp(1, 65535);
    (g, 1, 1)
}

/// Workgroups for the flops probe: `groups` along x.
pub fn flops_groups(groups: u32) -> (u32, u32, u32) {
    (groups.clamp(1, 65535), 1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_build() {
        for (src, other) in [(stream(), "fma("), (flops(), "vec4<u32>>")] {
            assert!(src.contains("fn main"));
            assert!(!src.contains(other), "both variants in one shader");
            assert!(!src.lines().any(|l| l.trim_start().starts_with('#')));
        }
        assert_eq!(
            ProbeParams {
                n: 1,
                iters: 2,
                magic: 3
            }
            .bytes()
            .len(),
            16
        );
        assert_eq!(stream_groups(0), (1, 1, 1));
        assert_eq!(stream_groups(1 << 30).0, 65535);
    }
}
