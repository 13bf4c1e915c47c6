//! The kernels for 128-bit instruction sets (wasm `simd128`, NEON, NEON + dotprod), written
//! once against a small vocabulary that each instruction set defines in the module that
//! invokes [`legacy_128`] (the vocabulary of `kquants::v128`, plus a float accumulator):
//!
//! - `B`: 16 bytes, `I`: four i32, `F`: four f32;
//! - `ld(s, i)`: bytes `s[i..i+16]`; `splat(u8)`; `splat32(u32)`: the u32 in every lane;
//!   `and`, `or`, `sub` (wrapping u8); `eq` (0xff where equal, else 0); `shr4(v)`: each
//!   byte shifted right by 4; `lut(table, idx)`: 16-entry byte table lookup (indices
//!   ≥ 16 give 0);
//! - `zero()`: an `I` of zeros; `dot16(acc, q, y)`: `acc` plus the products of the 16
//!   bytes of `q` and `y` as i8, summed into the four lanes in any grouping;
//! - `fzero()`; `fmac(acc, v, s)`: `acc + f32(v) * s`; `fhsum(v)`: the sum of the lanes.
//!
//! Every weight block is unpacked into two vectors of i8 quants (elements 0..16 and
//! 16..32) multiplied as signed bytes with the activations: unlike the x86 kernels no
//! sign trick, so Q8_0's −128 is fine. The integer sum of a block is exact; the scales
//! meet it in one float multiply-add per block, into one of two accumulators.

macro_rules! legacy_128 {
    ($feat:literal) => {
        use crate::cpu::kernels::legacy::{f16_at, Table, Table4, IQ4_NL_LEVELS};
        use crate::cpu::kernels::legacy::{IQ4_NL, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};
        use crate::cpu::kernels::{BlockQ8_0, BlockQ8_1};

        pub(in crate::cpu::kernels) static TABLE: Table = Table {
            q4_0: dot_q4_0,
            q5_0: dot_q5_0,
            q8_0: dot_q8_0,
            iq4_nl: dot_iq4_nl,
            q4_1: dot_q4_1,
            q5_1: dot_q5_1,
        };

        pub(in crate::cpu::kernels) static TABLE4: Table4 = Table4 {
            q4_0: dot4_q4_0,
            q5_0: dot4_q5_0,
            q8_0: dot4_q8_0,
            iq4_nl: dot4_iq4_nl,
            q4_1: dot4_q4_1,
            q5_1: dot4_q5_1,
        };

        /// Safe entry points: the tables are only reached through `row_dot` / `row_dot4`
        /// for an instruction set that `Isa::available` found (or, on wasm, that was
        /// compiled in); every load is bounds-checked by `ld`.
        macro_rules! safe {
            ($name:ident, $name4:ident, $row:ident, $row4:ident, $act:ty, $size:expr, $unpack:ident) => {
                fn $name(w: &[u8], a: &[$act]) -> f32 {
                    debug_assert_eq!(w.len(), a.len() * $size, "weight row size");
                    // SAFETY: see above.
                    unsafe { $row(w, a, $size, |b| $unpack(b)) }
                }
                fn $name4(w: &[u8], a: [&[$act]; 4]) -> [f32; 4] {
                    for a in a {
                        assert_eq!(w.len(), a.len() * $size, "weight row size");
                    }
                    // SAFETY: see above.
                    unsafe { $row4(w, a, $size, |b| $unpack(b)) }
                }
            };
        }
        safe!(dot_q4_0, dot4_q4_0, row0, row0_x4, BlockQ8_0, Q4_0, unpack_q4_0);
        safe!(dot_q5_0, dot4_q5_0, row0, row0_x4, BlockQ8_0, Q5_0, unpack_q5_0);
        safe!(dot_q8_0, dot4_q8_0, row0, row0_x4, BlockQ8_0, Q8_0, unpack_q8_0);
        safe!(dot_iq4_nl, dot4_iq4_nl, row0, row0_x4, BlockQ8_0, IQ4_NL, unpack_iq4_nl);
        safe!(dot_q4_1, dot4_q4_1, row1, row1_x4, BlockQ8_1, Q4_1, unpack_q4_1);
        safe!(dot_q5_1, dot4_q5_1, row1, row1_x4, BlockQ8_1, Q5_1, unpack_q5_1);

        /// The activation quants as bytes, for byte-vector loads.
        #[inline(always)]
        fn bytes(qs: &[i8; 32]) -> &[u8; 32] {
            // SAFETY: i8 and u8 have the same size and alignment, and every bit pattern
            // is valid.
            unsafe { &*(qs.as_ptr() as *const [u8; 32]) }
        }

        /// Σ q·y over one block: `q` the weight's two halves, `y` the activation quants.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn block_dot(q: [B; 2], y: &[i8; 32]) -> I {
            let y = bytes(y);
            dot16(dot16(zero(), q[0], ld(y, 0)), q[1], ld(y, 16))
        }

        /// 16 bytes of nibbles at `b[i..]`: low nibbles (elements 0..16), then high.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn nibbles(b: &[u8], i: usize) -> [B; 2] {
            let x = ld(b, i);
            [and(x, splat(0xf)), shr4(x)]
        }

        /// The fifth bits of the block's 32-bit `qh` at `b[i..]`, as 0x10 in the lanes
        /// (elements 0..16, then 16..32) whose bit is set.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn fifth_bits(b: &[u8], i: usize) -> [B; 2] {
            const SPREAD: [[u8; 16]; 2] = [
                [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
                [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3],
            ];
            const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
            let qh = splat32(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
            let bits = ld(&BITS, 0);
            let half = |s: &[u8; 16]| and(eq(and(lut(qh, ld(s, 0)), bits), bits), splat(0x10));
            [half(&SPREAD[0]), half(&SPREAD[1])]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn unpack_q4_0(b: &[u8]) -> [B; 2] {
            let q = nibbles(b, 2);
            [sub(q[0], splat(8)), sub(q[1], splat(8))]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn unpack_q5_0(b: &[u8]) -> [B; 2] {
            let (q, h) = (nibbles(b, 6), fifth_bits(b, 2));
            [
                sub(or(q[0], h[0]), splat(16)),
                sub(or(q[1], h[1]), splat(16)),
            ]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn unpack_q8_0(b: &[u8]) -> [B; 2] {
            [ld(b, 2), ld(b, 18)]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn unpack_iq4_nl(b: &[u8]) -> [B; 2] {
            let levels = ld(&IQ4_NL_LEVELS.map(|l| l as u8), 0);
            let q = nibbles(b, 2);
            [lut(levels, q[0]), lut(levels, q[1])]
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn unpack_q4_1(b: &[u8]) -> [B; 2] {
            nibbles(b, 4)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn unpack_q5_1(b: &[u8]) -> [B; 2] {
            let (q, h) = (nibbles(b, 8), fifth_bits(b, 4));
            [or(q[0], h[0]), or(q[1], h[1])]
        }

        /// The loop of the offset-free types (`w = d·q`): two blocks per step into two
        /// accumulators, so the float multiply-add chain does not bound the loop.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn row0(
            w: &[u8],
            a: &[BlockQ8_0],
            size: usize,
            unpack: impl Fn(&[u8]) -> [B; 2],
        ) -> f32 {
            let mut acc = [fzero(), fzero()];
            let mut blocks = w.chunks_exact(size).zip(a);
            while let Some((b0, a0)) = blocks.next() {
                let s0 = block_dot(unpack(b0), &a0.qs);
                acc[0] = fmac(acc[0], s0, f16_at(b0, 0) * a0.d);
                let Some((b1, a1)) = blocks.next() else { break };
                let s1 = block_dot(unpack(b1), &a1.qs);
                acc[1] = fmac(acc[1], s1, f16_at(b1, 0) * a1.d);
            }
            fhsum(acc[0]) + fhsum(acc[1])
        }

        /// The loop of the offset types: `Σ w·x = dw·da·Σ q·qa + m·s`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn row1(
            w: &[u8],
            a: &[BlockQ8_1],
            size: usize,
            unpack: impl Fn(&[u8]) -> [B; 2],
        ) -> f32 {
            let mut acc = [fzero(), fzero()];
            let mut off = [0f32; 2];
            let mut blocks = w.chunks_exact(size).zip(a);
            while let Some((b0, a0)) = blocks.next() {
                let s0 = block_dot(unpack(b0), &a0.qs);
                acc[0] = fmac(acc[0], s0, f16_at(b0, 0) * a0.d);
                off[0] += f16_at(b0, 2) * a0.s;
                let Some((b1, a1)) = blocks.next() else { break };
                let s1 = block_dot(unpack(b1), &a1.qs);
                acc[1] = fmac(acc[1], s1, f16_at(b1, 0) * a1.d);
                off[1] += f16_at(b1, 2) * a1.s;
            }
            fhsum(acc[0]) + fhsum(acc[1]) + (off[0] + off[1])
        }

        /// Four tokens of an offset-free type: each weight block unpacked once.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn row0_x4(
            w: &[u8],
            a: [&[BlockQ8_0]; 4],
            size: usize,
            unpack: impl Fn(&[u8]) -> [B; 2],
        ) -> [f32; 4] {
            let mut acc = [fzero(); 4];
            for (i, b) in w.chunks_exact(size).enumerate() {
                let (q, dw) = (unpack(b), f16_at(b, 0));
                for t in 0..4 {
                    let at = &a[t][i];
                    acc[t] = fmac(acc[t], block_dot(q, &at.qs), dw * at.d);
                }
            }
            [fhsum(acc[0]), fhsum(acc[1]), fhsum(acc[2]), fhsum(acc[3])]
        }

        /// Four tokens of an offset type.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn row1_x4(
            w: &[u8],
            a: [&[BlockQ8_1]; 4],
            size: usize,
            unpack: impl Fn(&[u8]) -> [B; 2],
        ) -> [f32; 4] {
            let mut acc = [fzero(); 4];
            let mut off = [0f32; 4];
            for (i, b) in w.chunks_exact(size).enumerate() {
                let (q, dw, m) = (unpack(b), f16_at(b, 0), f16_at(b, 2));
                for t in 0..4 {
                    let at = &a[t][i];
                    acc[t] = fmac(acc[t], block_dot(q, &at.qs), dw * at.d);
                    off[t] += m * at.s;
                }
            }
            [
                fhsum(acc[0]) + off[0],
                fhsum(acc[1]) + off[1],
                fhsum(acc[2]) + off[2],
                fhsum(acc[3]) + off[3],
            ]
        }
    };
}

pub(super) use legacy_128;
