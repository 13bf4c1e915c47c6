//! Random inputs for the kernel tests: activations and weight blocks of any type.

use crate::quant::{f32_to_f16, GgmlType};

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Activations with some spread of magnitudes, as real hidden states have.
    pub fn activations(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| self.f32() * if i % 7 == 0 { 8.0 } else { 1.0 })
            .collect()
    }
}

/// Byte offsets of the f16 scales inside one block of `ty` (the rest of a random block
/// may be any bytes, but random f16 scales would be NaN or huge).
fn f16_scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::IQ4_NL => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::IQ4_XS => &[0],
        _ => &[],
    }
}

/// `n_blocks` random blocks of `ty` with sane f16 scales in [-scale, scale]. Q6_K's
/// per-16 scales are i8 and IQ4_XS's are 6-bit fields, so random bytes are valid there.
pub fn random_blocks(rng: &mut Rng, ty: GgmlType, n_blocks: usize, scale: f32) -> Vec<u8> {
    let size = ty.type_size() as usize;
    let mut out = rng.bytes(size * n_blocks);
    for b in out.chunks_exact_mut(size) {
        for &o in f16_scale_offsets(ty) {
            let h = f32_to_f16(rng.f32() * scale).to_le_bytes();
            b[o] = h[0];
            b[o + 1] = h[1];
        }
    }
    out
}
