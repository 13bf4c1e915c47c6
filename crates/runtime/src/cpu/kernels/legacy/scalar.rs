//! The reference kernels: plain integer sums per block, one float multiply-add each.

use super::super::{BlockQ8_0, BlockQ8_1};
use super::{f16_at, Table, IQ4_NL_LEVELS};
use super::{IQ4_NL, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};

pub(in super::super) static TABLE: Table = Table {
    q4_0,
    q5_0,
    q8_0,
    iq4_nl,
    q4_1,
    q5_1,
};

/// Element `l` (0..32) of a nibble block: low nibbles are 0..16, high 16..32.
#[inline(always)]
fn nibble(qs: &[u8], l: usize) -> i32 {
    ((qs[l % 16] >> (4 * (l / 16))) & 0xf) as i32
}

/// The fifth bit of element `l`, from the block's 32-bit `qh`.
#[inline(always)]
fn high_bit(qh: u32, l: usize) -> i32 {
    ((qh >> l) & 1) as i32
}

fn qh_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn sum_with(a: &BlockQ8_0, q: impl Fn(usize) -> i32) -> i32 {
    (0..32).map(|l| q(l) * a.qs[l] as i32).sum()
}

pub(super) fn q4_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    w.chunks_exact(Q4_0)
        .zip(a)
        .map(|(b, a)| f16_at(b, 0) * a.d * sum_with(a, |l| nibble(&b[2..], l) - 8) as f32)
        .sum()
}

pub(super) fn q5_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    w.chunks_exact(Q5_0)
        .zip(a)
        .map(|(b, a)| {
            let qh = qh_at(b, 2);
            let s = sum_with(a, |l| (nibble(&b[6..], l) | high_bit(qh, l) << 4) - 16);
            f16_at(b, 0) * a.d * s as f32
        })
        .sum()
}

pub(super) fn q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    w.chunks_exact(Q8_0)
        .zip(a)
        .map(|(b, a)| f16_at(b, 0) * a.d * sum_with(a, |l| b[2 + l] as i8 as i32) as f32)
        .sum()
}

pub(super) fn iq4_nl(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    w.chunks_exact(IQ4_NL)
        .zip(a)
        .map(|(b, a)| {
            let s = sum_with(a, |l| IQ4_NL_LEVELS[nibble(&b[2..], l) as usize] as i32);
            f16_at(b, 0) * a.d * s as f32
        })
        .sum()
}

fn sum1_with(a: &BlockQ8_1, q: impl Fn(usize) -> i32) -> i32 {
    (0..32).map(|l| q(l) * a.qs[l] as i32).sum()
}

pub(super) fn q4_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    w.chunks_exact(Q4_1)
        .zip(a)
        .map(|(b, a)| {
            let s = sum1_with(a, |l| nibble(&b[4..], l));
            f16_at(b, 0) * a.d * s as f32 + f16_at(b, 2) * a.s
        })
        .sum()
}

pub(super) fn q5_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    w.chunks_exact(Q5_1)
        .zip(a)
        .map(|(b, a)| {
            let qh = qh_at(b, 4);
            let s = sum1_with(a, |l| nibble(&b[8..], l) | high_bit(qh, l) << 4);
            f16_at(b, 0) * a.d * s as f32 + f16_at(b, 2) * a.s
        })
        .sum()
}
