//! x86-64 kernels. One body, two instruction sets: [`avx2`] sums u8 × i8 products with
//! `vpmaddubsw` + `vpmaddwd` (no pair of products exceeds i16: 2 · 127 · 127 < 32768 for
//! the sign trick's magnitudes, 2 · 31 · 127 for unsigned 5-bit quants); [`vnni`] does
//! both in one `vpdpbusd`. Signed weights (Q4_0, Q5_0, Q8_0, IQ4_NL) go through the sign
//! trick: `|w| · (a · sign w)`; unsigned ones (Q4_1, Q5_1) multiply directly.

/// The kernels for one instruction set; `$feat` is its `target_feature` list and
/// `$dot(u, s)` gives the i32x8 sums of the u8 × i8 products of four adjacent lanes, and
/// `$dot_add(acc, u, s)` adds them to `acc`.
macro_rules! kernels {
    ($feat:literal, $dot:path, $dot_add:path) => {
        use super::super::super::{BlockQ8_0, BlockQ8_1};
        use super::super::{Table, Table4, IQ4_NL_LEVELS};
        use super::super::{IQ4_NL, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};
        use core::arch::x86_64::*;

        pub(in super::super) static TABLE: Table = Table {
            q4_0: dot_q4_0,
            q5_0: dot_q5_0,
            q8_0: dot_q8_0,
            iq4_nl: dot_iq4_nl,
            q4_1: dot_q4_1,
            q5_1: dot_q5_1,
        };

        pub(in super::super) static TABLE4: Table4 = Table4 {
            q4_0: dot4_q4_0,
            q5_0: dot4_q5_0,
            q8_0: dot4_q8_0,
            iq4_nl: dot4_iq4_nl,
            q4_1: dot4_q4_1,
            q5_1: dot4_q5_1,
        };

        macro_rules! safe4 {
            ($name:ident, $inner:ident, $act:ty, $size:expr) => {
                fn $name(w: &[u8], a: [&[$act]; 4]) -> [f32; 4] {
                    for a in a {
                        assert_eq!(w.len(), a.len() * $size, "weight row size");
                    }
                    // SAFETY: sizes checked above; the CPU features by the dispatch.
                    unsafe { $inner(w, a) }
                }
            };
        }
        safe4!(dot4_q4_0, q4_0_x4, BlockQ8_0, Q4_0);
        safe4!(dot4_q5_0, q5_0_x4, BlockQ8_0, Q5_0);
        safe4!(dot4_q8_0, q8_0_x4, BlockQ8_0, Q8_0);
        safe4!(dot4_iq4_nl, iq4_nl_x4, BlockQ8_0, IQ4_NL);
        safe4!(dot4_q4_1, q4_1_x4, BlockQ8_1, Q4_1);
        safe4!(dot4_q5_1, q5_1_x4, BlockQ8_1, Q5_1);

        /// Safe entry points: checked sizes (the kernels read through raw pointers), and
        /// the table is only reached through `row_dot` for an instruction set that
        /// `Isa::available` found on this CPU.
        macro_rules! safe {
            ($name:ident, $inner:ident, $act:ty, $size:expr) => {
                fn $name(w: &[u8], a: &[$act]) -> f32 {
                    assert_eq!(w.len(), a.len() * $size, "weight row size");
                    // SAFETY: sizes checked above; the CPU features by the dispatch.
                    unsafe { $inner(w, a) }
                }
            };
        }
        safe!(dot_q4_0, q4_0, BlockQ8_0, Q4_0);
        safe!(dot_q5_0, q5_0, BlockQ8_0, Q5_0);
        safe!(dot_q8_0, q8_0, BlockQ8_0, Q8_0);
        safe!(dot_iq4_nl, iq4_nl, BlockQ8_0, IQ4_NL);
        safe!(dot_q4_1, q4_1, BlockQ8_1, Q4_1);
        safe!(dot_q5_1, q5_1, BlockQ8_1, Q5_1);

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
        }

        /// The f16 at `p` (and the one after it in lane 1: Q4_1's and Q5_1's `m`). A
        /// 4-byte `vmovd` load, not a 2-byte insert: the insert would merge into whatever
        /// register the compiler picks, often an accumulator, and chain every block's
        /// scale behind the previous block's multiply-add (measured: 2× slower).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn halves(p: *const u8) -> __m128 {
            _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn half(p: *const u8) -> f32 {
            _mm_cvtss_f32(halves(p))
        }

        /// 16 bytes of nibbles as 32 u8 lanes: low nibbles (elements 0..16), then high.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn nibbles(p: *const u8) -> __m256i {
            let x = _mm_loadu_si128(p as *const __m128i);
            let m = _mm_set1_epi8(0x0f);
            let lo = _mm_and_si128(x, m);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(x), m);
            _mm256_set_m128i(hi, lo)
        }

        /// The fifth bits of `qh` as 0x10 in the lanes whose bit is set.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn fifth_bits(p: *const u8) -> __m256i {
            let qh = (p as *const u32).read_unaligned() as i32;
            let spread = _mm256_shuffle_epi8(
                _mm256_set1_epi32(qh),
                _mm256_set_epi64x(
                    0x0303_0303_0303_0303,
                    0x0202_0202_0202_0202,
                    0x0101_0101_0101_0101,
                    0,
                ),
            );
            let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits), bits);
            _mm256_and_si256(set, _mm256_set1_epi8(0x10))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn acts(qs: &[i8; 32]) -> __m256i {
            _mm256_loadu_si256(qs.as_ptr() as *const __m256i)
        }

        /// Σ w·a for signed i8 weights: |w| · (a · sign w).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn signed_dot(w: __m256i, a: __m256i) -> __m256 {
            _mm256_cvtepi32_ps($dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)))
        }

        /// The loop every signed-weight type shares: `weights(block)` gives its 32 i8.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn signed_row(
            w: &[u8],
            a: &[BlockQ8_0],
            size: usize,
            weights: impl Fn(*const u8) -> __m256i,
        ) -> f32 {
            // Two blocks per step into two accumulators: the multiply-add chains, not the
            // integer work, bound one accumulator.
            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let pairs = a.len() / 2;
            for i in 0..pairs {
                let (b0, b1) = (
                    w.as_ptr().add(2 * i * size),
                    w.as_ptr().add((2 * i + 1) * size),
                );
                let (a0, a1) = (&a[2 * i], &a[2 * i + 1]);
                let p0 = _mm256_mul_ps(signed_dot(weights(b0), acts(&a0.qs)), _mm256_set1_ps(a0.d));
                let p1 = _mm256_mul_ps(signed_dot(weights(b1), acts(&a1.qs)), _mm256_set1_ps(a1.d));
                acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(halves(b0)), p0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(halves(b1)), p1, acc1);
            }
            if a.len() % 2 == 1 {
                let (b, a) = (w.as_ptr().add((a.len() - 1) * size), &a[a.len() - 1]);
                let p = signed_dot(weights(b), acts(&a.qs));
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * a.d), p, acc0);
            }
            hsum(_mm256_add_ps(acc0, acc1))
        }

        #[target_feature(enable = $feat)]
        unsafe fn q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
            signed_row(w, a, Q8_0, |b| unsafe {
                _mm256_loadu_si256(b.add(2) as *const __m256i)
            })
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
            signed_row(w, a, Q4_0, |b| unsafe {
                _mm256_sub_epi8(nibbles(b.add(2)), _mm256_set1_epi8(8))
            })
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
            signed_row(w, a, Q5_0, |b| unsafe {
                let q = _mm256_or_si256(nibbles(b.add(6)), fifth_bits(b.add(2)));
                _mm256_sub_epi8(q, _mm256_set1_epi8(16))
            })
        }

        #[target_feature(enable = $feat)]
        unsafe fn iq4_nl(w: &[u8], a: &[BlockQ8_0]) -> f32 {
            let levels = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                IQ4_NL_LEVELS.as_ptr() as *const __m128i
            ));
            signed_row(w, a, IQ4_NL, |b| unsafe {
                _mm256_shuffle_epi8(levels, nibbles(b.add(2)))
            })
        }

        /// The loop of the offset types: `quants(block)` gives its 32 unsigned quants;
        /// `Σ w·x = dw·da·Σ q·qa + m·s`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn offset_row(
            w: &[u8],
            a: &[BlockQ8_1],
            size: usize,
            quants: impl Fn(*const u8) -> __m256i,
            offset: impl Fn(__m128) -> f32,
        ) -> f32 {
            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (mut off0, mut off1) = (0f32, 0f32);
            let pairs = a.len() / 2;
            for i in 0..pairs {
                let (b0, b1) = (
                    w.as_ptr().add(2 * i * size),
                    w.as_ptr().add((2 * i + 1) * size),
                );
                let (a0, a1) = (&a[2 * i], &a[2 * i + 1]);
                let p0 = _mm256_cvtepi32_ps($dot(quants(b0), acts(&a0.qs)));
                let p1 = _mm256_cvtepi32_ps($dot(quants(b1), acts(&a1.qs)));
                let p0 = _mm256_mul_ps(p0, _mm256_set1_ps(a0.d));
                let p1 = _mm256_mul_ps(p1, _mm256_set1_ps(a1.d));
                let (h0, h1) = (halves(b0), halves(b1));
                acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(h0), p0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(h1), p1, acc1);
                off0 += offset(h0) * a0.s;
                off1 += offset(h1) * a1.s;
            }
            if a.len() % 2 == 1 {
                let (b, a) = (w.as_ptr().add((a.len() - 1) * size), &a[a.len() - 1]);
                let p = _mm256_cvtepi32_ps($dot(quants(b), acts(&a.qs)));
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(half(b) * a.d), p, acc0);
                off0 += offset(halves(b)) * a.s;
            }
            hsum(_mm256_add_ps(acc0, acc1)) + (off0 + off1)
        }

        /// Four tokens of a signed-weight type: each weight block unpacked once. Per
        /// token and block: one integer dot, a convert, a multiply by the activation
        /// scale (broadcast straight from memory) and a multiply-add by the weight scale
        /// (broadcast once for all four), with no scalar work between blocks.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn signed_row4(
            w: &[u8],
            a: [&[BlockQ8_0]; 4],
            size: usize,
            weights: impl Fn(*const u8) -> __m256i,
        ) -> [f32; 4] {
            let mut acc = [_mm256_setzero_ps(); 4];
            let ap = a.map(|a| a.as_ptr());
            for i in 0..a[0].len() {
                let b = w.as_ptr().add(i * size);
                let q = weights(b);
                let u = _mm256_sign_epi8(q, q);
                let dw = _mm256_broadcastss_ps(halves(b));
                for t in 0..4 {
                    // SAFETY: every activation row has a[0].len() blocks (checked).
                    let at = &*ap[t].add(i);
                    let p = _mm256_cvtepi32_ps($dot(u, _mm256_sign_epi8(acts(&at.qs), q)));
                    let p = _mm256_mul_ps(p, _mm256_set1_ps(at.d));
                    acc[t] = _mm256_fmadd_ps(dw, p, acc[t]);
                }
            }
            [hsum(acc[0]), hsum(acc[1]), hsum(acc[2]), hsum(acc[3])]
        }

        /// `N` activation rows of an offset type (four tokens; eight rows on the
        /// eight-row path), each weight block unpacked once for all of them. With
        /// `PAIRED`, rows 2k and 2k+1 are one token's blocks and their
        /// residual at exactly 1/256 of the blocks' scale
        /// ([`act::quantize_q8_1_residual`](super::super::super::act::quantize_q8_1_residual)),
        /// so the two integer sums combine as `256·Σ q·a + Σ q·a'` (< 2^25: no overflow)
        /// and share one conversion, scale multiply and multiply-add; the token's value
        /// lands in slot 2k and slot 2k+1 is 0.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn offset_rows<const N: usize, const PAIRED: bool>(
            w: &[u8],
            a: [&[BlockQ8_1]; N],
            size: usize,
            quants: impl Fn(*const u8) -> __m256i,
            offset: impl Fn(__m128) -> f32,
        ) -> [f32; N] {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut off = [0f32; N];
            let ap = a.map(|a| a.as_ptr());
            for i in 0..a[0].len() {
                let b = w.as_ptr().add(i * size);
                let q = quants(b);
                let h = halves(b);
                let dw = _mm256_broadcastss_ps(h);
                let m = offset(h);
                if PAIRED {
                    for k in 0..N / 2 {
                        // SAFETY: every activation row has a[0].len() blocks (checked).
                        let (hi, lo) = (&*ap[2 * k].add(i), &*ap[2 * k + 1].add(i));
                        let s = _mm256_slli_epi32::<8>($dot(q, acts(&hi.qs)));
                        let s = $dot_add(s, q, acts(&lo.qs));
                        let p = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(lo.d));
                        acc[k] = _mm256_fmadd_ps(dw, p, acc[k]);
                        off[k] += m * (hi.s + lo.s);
                    }
                } else {
                    for t in 0..N {
                        // SAFETY: as above.
                        let at = &*ap[t].add(i);
                        let p = _mm256_cvtepi32_ps($dot(q, acts(&at.qs)));
                        let p = _mm256_mul_ps(p, _mm256_set1_ps(at.d));
                        acc[t] = _mm256_fmadd_ps(dw, p, acc[t]);
                        off[t] += m * at.s;
                    }
                }
            }
            let mut out = [0f32; N];
            if PAIRED {
                for k in 0..N / 2 {
                    out[2 * k] = hsum(acc[k]) + off[k];
                }
            } else {
                for t in 0..N {
                    out[t] = hsum(acc[t]) + off[t];
                }
            }
            out
        }

        /// The eight-row kernels of the offset types (Q4_0 and Q5_0 as unsigned quants).
        pub(in super::super) fn eight(
            ty: crate::quant::GgmlType,
        ) -> Option<super::super::super::RowDot8> {
            use super::super::super::RowDot8;
            use crate::quant::GgmlType;
            Some(match ty {
                GgmlType::Q4_0 => RowDot8 {
                    single: dot8_q4_0u::<false>,
                    paired: dot8_q4_0u::<true>,
                },
                GgmlType::Q5_0 => RowDot8 {
                    single: dot8_q5_0u::<false>,
                    paired: dot8_q5_0u::<true>,
                },
                GgmlType::Q4_1 => RowDot8 {
                    single: dot8_q4_1::<false>,
                    paired: dot8_q4_1::<true>,
                },
                GgmlType::Q5_1 => RowDot8 {
                    single: dot8_q5_1::<false>,
                    paired: dot8_q5_1::<true>,
                },
                _ => return None,
            })
        }

        macro_rules! safe8 {
            ($name:ident, $size:expr, $quants:expr, $offset:expr) => {
                fn $name<const PAIRED: bool>(w: &[u8], a: [&[BlockQ8_1]; 8]) -> [f32; 8] {
                    for a in a {
                        assert_eq!(w.len(), a.len() * $size, "weight row size");
                    }
                    #[target_feature(enable = $feat)]
                    unsafe fn inner<const PAIRED: bool>(
                        w: &[u8],
                        a: [&[BlockQ8_1]; 8],
                    ) -> [f32; 8] {
                        offset_rows::<8, PAIRED>(w, a, $size, $quants, $offset)
                    }
                    // SAFETY: sizes checked above; the CPU features by the dispatch.
                    unsafe { inner::<PAIRED>(w, a) }
                }
            };
        }
        safe8!(dot8_q4_0u, Q4_0, |b| unsafe { nibbles(b.add(2)) }, minus8);
        safe8!(
            dot8_q5_0u,
            Q5_0,
            |b| unsafe { _mm256_or_si256(nibbles(b.add(6)), fifth_bits(b.add(2))) },
            minus16
        );
        safe8!(
            dot8_q4_1,
            Q4_1,
            |b| unsafe { nibbles(b.add(4)) },
            stored_min
        );
        safe8!(
            dot8_q5_1,
            Q5_1,
            |b| unsafe { _mm256_or_si256(nibbles(b.add(8)), fifth_bits(b.add(4))) },
            stored_min
        );

        #[target_feature(enable = $feat)]
        unsafe fn q8_0_x4(w: &[u8], a: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            signed_row4(w, a, Q8_0, |b| unsafe {
                _mm256_loadu_si256(b.add(2) as *const __m256i)
            })
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_0_x4(w: &[u8], a: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            signed_row4(w, a, Q4_0, |b| unsafe {
                _mm256_sub_epi8(nibbles(b.add(2)), _mm256_set1_epi8(8))
            })
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_0_x4(w: &[u8], a: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            signed_row4(w, a, Q5_0, |b| unsafe {
                let q = _mm256_or_si256(nibbles(b.add(6)), fifth_bits(b.add(2)));
                _mm256_sub_epi8(q, _mm256_set1_epi8(16))
            })
        }

        #[target_feature(enable = $feat)]
        unsafe fn iq4_nl_x4(w: &[u8], a: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            let levels = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                IQ4_NL_LEVELS.as_ptr() as *const __m128i
            ));
            signed_row4(w, a, IQ4_NL, |b| unsafe {
                _mm256_shuffle_epi8(levels, nibbles(b.add(2)))
            })
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_1_x4(w: &[u8], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
            offset_rows::<4, false>(w, a, Q4_1, |b| unsafe { nibbles(b.add(4)) }, stored_min)
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_1_x4(w: &[u8], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
            offset_rows::<4, false>(
                w,
                a,
                Q5_1,
                |b| unsafe { _mm256_or_si256(nibbles(b.add(8)), fifth_bits(b.add(4))) },
                stored_min,
            )
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
            offset_row(w, a, Q4_1, |b| unsafe { nibbles(b.add(4)) }, stored_min)
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
            offset_row(
                w,
                a,
                Q5_1,
                |b| unsafe { _mm256_or_si256(nibbles(b.add(8)), fifth_bits(b.add(4))) },
                stored_min,
            )
        }

        /// Q4_1's and Q5_1's offset: the block's second f16 (`m`).
        #[inline(always)]
        fn stored_min(h: __m128) -> f32 {
            // SAFETY: SSE3 is part of every instruction set these kernels run on.
            unsafe { _mm_cvtss_f32(_mm_movehdup_ps(h)) }
        }

        /// Q4_0 and Q5_0 as offset types: `w = d·(q − 8)` is `d·q + m` with `m = −8d`
        /// (−16d for Q5_0), so the unsigned quants meet the activations directly and the
        /// offset goes through [`BlockQ8_1`]'s `s`. No sign trick: two fewer operations per
        /// block and token than [`signed_row4`] (measured: Q5_0 mat-mul x GOP/s).
        pub(in super::super) fn unsigned(
            ty: crate::quant::GgmlType,
        ) -> Option<(super::super::super::DotQ8_1, super::super::super::Dot4Q8_1)> {
            use crate::quant::GgmlType;
            Some(match ty {
                GgmlType::Q4_0 => (dot_q4_0u, dot4_q4_0u),
                GgmlType::Q5_0 => (dot_q5_0u, dot4_q5_0u),
                _ => return None,
            })
        }
        safe!(dot_q4_0u, q4_0u, BlockQ8_1, Q4_0);
        safe!(dot_q5_0u, q5_0u, BlockQ8_1, Q5_0);
        safe4!(dot4_q4_0u, q4_0u_x4, BlockQ8_1, Q4_0);
        safe4!(dot4_q5_0u, q5_0u_x4, BlockQ8_1, Q5_0);

        #[inline(always)]
        fn minus8(h: __m128) -> f32 {
            // SAFETY: as in `stored_min`.
            -8.0 * unsafe { _mm_cvtss_f32(h) }
        }

        #[inline(always)]
        fn minus16(h: __m128) -> f32 {
            // SAFETY: as in `stored_min`.
            -16.0 * unsafe { _mm_cvtss_f32(h) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_0u(w: &[u8], a: &[BlockQ8_1]) -> f32 {
            offset_row(w, a, Q4_0, |b| unsafe { nibbles(b.add(2)) }, minus8)
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_0u(w: &[u8], a: &[BlockQ8_1]) -> f32 {
            offset_row(
                w,
                a,
                Q5_0,
                |b| unsafe { _mm256_or_si256(nibbles(b.add(6)), fifth_bits(b.add(2))) },
                minus16,
            )
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_0u_x4(w: &[u8], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
            offset_rows::<4, false>(w, a, Q4_0, |b| unsafe { nibbles(b.add(2)) }, minus8)
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_0u_x4(w: &[u8], a: [&[BlockQ8_1]; 4]) -> [f32; 4] {
            offset_rows::<4, false>(
                w,
                a,
                Q5_0,
                |b| unsafe { _mm256_or_si256(nibbles(b.add(6)), fifth_bits(b.add(2))) },
                minus16,
            )
        }
    };
}

/// AVX2 + FMA + F16C.
pub(super) mod avx2 {
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_set1_epi16,
    };

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_add(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_add_epi32(acc, dot(u, s))
    }

    kernels!("avx2,fma,f16c", dot, dot_add);
}

/// AVX-512 VNNI (256-bit `vpdpbusd` through AVX-512 VL), on top of AVX2.
// The AVX-512 intrinsics are stable since Rust 1.89, past the workspace's declared MSRV.
#[allow(clippy::incompatible_msrv)]
pub(super) mod vnni {
    use core::arch::x86_64::{__m256i, _mm256_dpbusd_epi32, _mm256_setzero_si256};

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn dot_add(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, u, s)
    }

    kernels!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
        dot,
        dot_add
    );
}
