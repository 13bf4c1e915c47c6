//! The kernels for 128-bit instruction sets (wasm `simd128`, NEON, NEON + dotprod), written
//! once against a small vocabulary that each instruction set defines in the module that
//! invokes [`kernels_128`]:
//!
//! - `B`: 16 bytes, `I`: four i32;
//! - `ld(s, i)`: bytes `s[i..i+16]`; `splat(u8)`; `and`, `or`, `sub` (wrapping u8);
//!   `shr(v, n)`, `shl(v, n)` per byte; `lut(table, idx)`: 16-entry byte table lookup;
//! - `zero()`: an `I` of zeros; `dot16(acc, q, y)`: `acc` plus the products of the 16
//!   bytes of `q` and `y` as i8, summed into the four lanes in any grouping;
//!   `mac(acc, v, s)`: `acc + v * s`; `hsum(v)`: the sum of the four lanes.
//!
//! Unlike the x86 kernels these widen both sides to signed products, so they follow the
//! scalar reference closely: Q3_K's and Q6_K's offsets are subtracted from the quants in
//! i8, only the K-quant minimums go through `bsums`.

macro_rules! kernels_128 {
    ($feat:literal) => {
        use crate::cpu::kernels::kquants::{
            f16_at, iq4xs_scales, q3k_scales, q4k_scales, q8_bytes,
        };
        use crate::cpu::kernels::kquants::{IQ4XS, IQ4_LEVELS, Q2K, Q3K, Q4K, Q5K, Q6K};
        use crate::cpu::kernels::{BlockQ8K, DotQ8K};
        use crate::quant::GgmlType;

        pub(crate) fn get(ty: GgmlType) -> Option<DotQ8K> {
            Some(match ty {
                GgmlType::Q2_K => dot_q2_k,
                GgmlType::Q3_K => dot_q3_k,
                GgmlType::Q4_K => dot_q4_k,
                GgmlType::Q5_K => dot_q5_k,
                GgmlType::Q6_K => dot_q6_k,
                GgmlType::IQ4_XS => dot_iq4_xs,
                _ => return None,
            })
        }

        macro_rules! safe {
            ($name:ident, $inner:ident) => {
                fn $name(w: &[u8], a: &[BlockQ8K]) -> f32 {
                    // SAFETY: `get` is only reached through `row_dot` for an instruction
                    // set that `Isa::available` found (or, on wasm, that was compiled in);
                    // every load is bounds-checked by `ld`.
                    unsafe { $inner(w, a) }
                }
            };
        }
        safe!(dot_q2_k, q2_k);
        safe!(dot_q3_k, q3_k);
        safe!(dot_q4_k, q4_k);
        safe!(dot_q5_k, q5_k);
        safe!(dot_q6_k, q6_k);
        safe!(dot_iq4_xs, iq4_xs);

        /// Q2_K: in each half `h`, 2-bit group `g` of the 32 bytes at `16 + 32h` holds
        /// quants `128h + 32g ..`; sub-block (of 16) `8h + 2g + t` is bytes `16t..`.
        #[target_feature(enable = $feat)]
        unsafe fn q2_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            let m3 = splat(3);
            let mut sum = 0f32;
            for (b, a) in w.chunks_exact(Q2K).zip(a) {
                let y = q8_bytes(a);
                let mut acc = zero();
                for h in 0..2 {
                    let q = [ld(b, 16 + 32 * h), ld(b, 32 + 32 * h)];
                    for g in 0..4 {
                        for t in 0..2 {
                            let k = 8 * h + 2 * g + t;
                            let u = and(shr(q[t], 2 * g as u32), m3);
                            let s = dot16(zero(), u, ld(y, 16 * k));
                            acc = mac(acc, s, (b[k] & 0xf) as i32);
                        }
                    }
                }
                let msum: i32 = (0..16)
                    .map(|k| (b[k] >> 4) as i32 * a.bsums[k] as i32)
                    .sum();
                sum += a.d * f16_at(b, 80) * hsum(acc) as f32;
                sum -= a.d * f16_at(b, 82) * msum as f32;
            }
            sum
        }

        /// Q3_K: Q2_K's planes at offset 32, high bit `4h + g` of the 32 bytes at 0.
        #[target_feature(enable = $feat)]
        unsafe fn q3_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            let (m3, one, four) = (splat(3), splat(1), splat(4));
            let mut sum = 0f32;
            for (b, a) in w.chunks_exact(Q3K).zip(a) {
                let y = q8_bytes(a);
                let sc = q3k_scales(&b[96..108]);
                let hm = [ld(b, 0), ld(b, 16)];
                let mut acc = zero();
                for h in 0..2 {
                    let q = [ld(b, 32 + 32 * h), ld(b, 48 + 32 * h)];
                    for g in 0..4 {
                        for t in 0..2 {
                            let k = 8 * h + 2 * g + t;
                            let hi = shl(and(shr(hm[t], (4 * h + g) as u32), one), 2);
                            // low | high << 2, minus 4: −4..=3 as i8.
                            let u = sub(or(and(shr(q[t], 2 * g as u32), m3), hi), four);
                            acc = mac(acc, dot16(zero(), u, ld(y, 16 * k)), sc[k] as i32);
                        }
                    }
                }
                sum += a.d * f16_at(b, 108) * hsum(acc) as f32;
            }
            sum
        }

        /// Q4_K / Q5_K: sub-block `j` (of 32) is nibble `j % 2` of the 32 bytes at
        /// `qs_at + 32 (j / 2)`, plus Q5_K's bit `j` of the 32 bytes at 16.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn q45_k<const Q5: bool>(w: &[u8], a: &[BlockQ8K], size: usize) -> f32 {
            let (m4, one) = (splat(0xf), splat(1));
            let qs_at = if Q5 { 48 } else { 16 };
            let mut sum = 0f32;
            for (b, a) in w.chunks_exact(size).zip(a) {
                let y = q8_bytes(a);
                let (sc, mn) = q4k_scales(&b[4..16]);
                let qh = if Q5 {
                    [ld(b, 16), ld(b, 32)]
                } else {
                    [splat(0); 2]
                };
                let mut acc = zero();
                for j in 0..8 {
                    let mut s = zero();
                    for t in 0..2 {
                        let mut u = and(
                            shr(ld(b, qs_at + 32 * (j / 2) + 16 * t), 4 * (j % 2) as u32),
                            m4,
                        );
                        if Q5 {
                            u = or(u, shl(and(shr(qh[t], j as u32), one), 4));
                        }
                        s = dot16(s, u, ld(y, 32 * j + 16 * t));
                    }
                    acc = mac(acc, s, sc[j] as i32);
                }
                let msum: i32 = (0..16).map(|k| mn[k / 2] as i32 * a.bsums[k] as i32).sum();
                sum += a.d * f16_at(b, 0) * hsum(acc) as f32;
                sum -= a.d * f16_at(b, 2) * msum as f32;
            }
            sum
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            q45_k::<false>(w, a, Q4K)
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            q45_k::<true>(w, a, Q5K)
        }

        /// Q6_K: in half `h`, quants `32g + 16t ..` are nibble `g / 2` of the 16 bytes at
        /// `64h + 32 (g % 2) + 16t` with bits `2g` of the 16 bytes at `128 + 32h + 16t`.
        #[target_feature(enable = $feat)]
        unsafe fn q6_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            let (m4, m3, off) = (splat(0xf), splat(3), splat(32));
            let mut sum = 0f32;
            for (b, a) in w.chunks_exact(Q6K).zip(a) {
                let y = q8_bytes(a);
                let mut acc = zero();
                for h in 0..2 {
                    for g in 0..4 {
                        for t in 0..2 {
                            let k = 8 * h + 2 * g + t;
                            let lo = and(
                                shr(ld(b, 64 * h + 32 * (g % 2) + 16 * t), 4 * (g / 2) as u32),
                                m4,
                            );
                            let hi = and(shr(ld(b, 128 + 32 * h + 16 * t), 2 * g as u32), m3);
                            let u = sub(or(lo, shl(hi, 4)), off);
                            acc = mac(
                                acc,
                                dot16(zero(), u, ld(y, 16 * k)),
                                b[192 + k] as i8 as i32,
                            );
                        }
                    }
                }
                sum += a.d * f16_at(b, 208) * hsum(acc) as f32;
            }
            sum
        }

        /// IQ4_XS: sub-block `j` is the 16 bytes at `8 + 16j`, low nibbles first, each
        /// indexing the signed levels.
        #[target_feature(enable = $feat)]
        unsafe fn iq4_xs(w: &[u8], a: &[BlockQ8K]) -> f32 {
            let m4 = splat(0xf);
            let levels = IQ4_LEVELS.map(|l| l as u8);
            let table = ld(&levels, 0);
            let mut sum = 0f32;
            for (b, a) in w.chunks_exact(IQ4XS).zip(a) {
                let y = q8_bytes(a);
                let sc = iq4xs_scales(b);
                let mut acc = zero();
                for j in 0..8 {
                    let x = ld(b, 8 + 16 * j);
                    let s = dot16(zero(), lut(table, and(x, m4)), ld(y, 32 * j));
                    let s = dot16(s, lut(table, shr(x, 4)), ld(y, 32 * j + 16));
                    acc = mac(acc, s, sc[j] as i32);
                }
                sum += a.d * f16_at(b, 0) * hsum(acc) as f32;
            }
            sum
        }
    };
}

pub(super) use kernels_128;
