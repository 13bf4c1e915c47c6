//! x86-64 kernels. One body, two instruction sets: [`avx2`] multiplies the i16 products
//! of `vpmaddubsw` by the sub-block scales with `vpmaddwd` and adds; [`vnni`] does both
//! in one `vpdpwssd`. Every kernel multiplies *unsigned* quants by the signed activations
//! (`vpmaddubsw`), so signed offsets (Q3_K's −4, Q6_K's −32) go through `bsums` and
//! IQ4_XS's signed levels through the sign trick.
//!
//! No 16-bit sum saturates: `vpmaddubsw` adds two products of at most 63 · 127 (Q6_K),
//! or 127 · 127 for IQ4_XS's magnitudes.

/// The kernels for one instruction set; `$feat` is its `target_feature` list and
/// `$acc(acc, p, s)` adds `Σ p·s` over pairs of i16 lanes to the i32 lanes of `acc`.
macro_rules! kernels {
    ($feat:literal, $acc:path) => {
        use super::super::super::{BlockQ8K, Dot4Q8K, DotQ8K};
        use super::super::{iq4xs_scales, q3k_scales, q4k_scales, IQ4_LEVELS};
        use super::super::{IQ4XS, Q2K, Q3K, Q4K, Q5K, Q6K};
        use crate::quant::GgmlType;
        use core::arch::x86_64::*;

        pub(in super::super) fn get(ty: GgmlType) -> Option<DotQ8K> {
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

        /// The four-row kernels (prefill, and the two parts of exact activations).
        pub(in super::super) fn get4(ty: GgmlType) -> Option<Dot4Q8K> {
            Some(match ty {
                GgmlType::Q4_K => dot4_q4_k,
                GgmlType::Q5_K => dot4_q5_k,
                GgmlType::Q6_K => dot4_q6_k,
                _ => return None,
            })
        }

        macro_rules! safe4 {
            ($name:ident, $inner:ident, $size:expr) => {
                pub(in super::super) fn $name(w: &[u8], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
                    for a in a {
                        assert_eq!(w.len(), a.len() * $size, "weight row size");
                    }
                    // SAFETY: sizes checked above; the CPU features by the dispatch.
                    unsafe { $inner(w, a) }
                }
            };
        }
        safe4!(dot4_q4_k, q4_k_x4, Q4K);
        safe4!(dot4_q5_k, q5_k_x4, Q5K);
        safe4!(dot4_q6_k, q6_k_x4, Q6K);

        /// Safe entry points: checked sizes (the kernels read through raw pointers), and
        /// `get` is only reached through `row_dot` for an instruction set that
        /// `Isa::available` found on this CPU.
        macro_rules! safe {
            ($name:ident, $inner:ident, $size:expr) => {
                pub(in super::super) fn $name(w: &[u8], a: &[BlockQ8K]) -> f32 {
                    assert_eq!(w.len(), a.len() * $size, "weight row size");
                    // SAFETY: sizes checked above; the CPU features by the dispatch.
                    unsafe { $inner(w, a) }
                }
            };
        }
        safe!(dot_q2_k, q2_k, Q2K);
        safe!(dot_q3_k, q3_k, Q3K);
        safe!(dot_q4_k, q4_k, Q4K);
        safe!(dot_q5_k, q5_k, Q5K);
        safe!(dot_q6_k, q6_k, Q6K);
        safe!(dot_iq4_xs, iq4_xs, IQ4XS);

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn load(p: *const u8) -> __m256i {
            _mm256_loadu_si256(p as *const __m256i)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }

        /// The f16 at `p`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn half(p: *const u8) -> f32 {
            let h = (p as *const u16).read_unaligned();
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
        }

        /// The two f16s at `p` (`d`, `dmin`).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn halves(p: *const u8) -> (f32, f32) {
            let v = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
            (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
        }

        /// A `vpshufb` mask that spreads i16 lane `j` (of each 128-bit half) over its half.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn lane16(j: i32) -> __m256i {
            _mm256_set1_epi16((2 * j | (2 * j + 1) << 8) as i16)
        }

        /// A `vpshufb` mask: i16 lane `2k` over the low half, `2k + 1` over the high half
        /// (for 32 quants that span two 16-element sub-blocks).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn pair16(k: i32) -> __m256i {
            let lo = _mm_set1_epi16((4 * k | (4 * k + 1) << 8) as i16);
            let hi = _mm_set1_epi16((4 * k + 2 | (4 * k + 3) << 8) as i16);
            _mm256_set_m128i(hi, lo)
        }

        /// `q · y` (32 unsigned quants, 32 activations) times per-16 scales `s` (i16),
        /// added to the i32 lanes of `acc`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn mac(acc: __m256i, q: __m256i, y: __m256i, s: __m256i) -> __m256i {
            $acc(acc, _mm256_maddubs_epi16(q, y), s)
        }

        /// Eight sub-block scales as i16, the same eight in both 128-bit halves.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn scales8(s: __m128i) -> __m256i {
            _mm256_broadcastsi128_si256(s)
        }

        /// Q2_K: four 2-bit planes per 32 bytes, a scale and a min (nibbles) per 16.
        #[target_feature(enable = $feat)]
        unsafe fn q2_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            let m3 = _mm256_set1_epi8(3);
            let m4 = _mm_set1_epi8(0xf);
            let mut acc = _mm256_setzero_ps();
            for (b, a) in w.chunks_exact(Q2K).zip(a) {
                let b = b.as_ptr();
                let y = a.qs.as_ptr() as *const u8;
                let (d, dmin) = halves(b.add(80));
                let sm = _mm_loadu_si128(b as *const __m128i);
                let sc = _mm256_cvtepu8_epi16(_mm_and_si128(sm, m4));
                let mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sm), m4));
                let msum = _mm256_madd_epi16(load(a.bsums.as_ptr() as *const u8), mn);
                let (mut i0, mut i1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for h in 0..2 {
                    let s = if h == 0 {
                        _mm256_permute2x128_si256::<0x00>(sc, sc)
                    } else {
                        _mm256_permute2x128_si256::<0x11>(sc, sc)
                    };
                    let mut q = load(b.add(16 + 32 * h));
                    let y = y.add(128 * h);
                    for k in 0..2 {
                        let q0 = _mm256_and_si256(q, m3);
                        let q1 = _mm256_and_si256(_mm256_srli_epi16::<2>(q), m3);
                        q = _mm256_srli_epi16::<4>(q);
                        let s0 = _mm256_shuffle_epi8(s, pair16(2 * k as i32));
                        let s1 = _mm256_shuffle_epi8(s, pair16(2 * k as i32 + 1));
                        i0 = mac(i0, q0, load(y.add(64 * k)), s0);
                        i1 = mac(i1, q1, load(y.add(64 * k + 32)), s1);
                    }
                }
                let isum = _mm256_cvtepi32_ps(_mm256_add_epi32(i0, i1));
                acc = _mm256_fmadd_ps(isum, _mm256_set1_ps(a.d * d), acc);
                acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(a.d * dmin), acc);
            }
            hsum(acc)
        }

        /// Q3_K: Q2_K's planes plus a high bit per quant (clear: −4, through `bsums`).
        #[target_feature(enable = $feat)]
        unsafe fn q3_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            let m3 = _mm256_set1_epi8(3);
            let one = _mm256_set1_epi8(1);
            let mut acc = _mm256_setzero_ps();
            for (bs, a) in w.chunks_exact(Q3K).zip(a) {
                let b = bs.as_ptr();
                let y = a.qs.as_ptr() as *const u8;
                let d = half(b.add(108));
                let sc8 = q3k_scales(&bs[96..108]);
                let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc8.as_ptr() as *const __m128i));
                // Σ q·y = Σ (low | high << 2)·y − 4 Σ y.
                let off = _mm256_madd_epi16(load(a.bsums.as_ptr() as *const u8), sc);
                let mut hm = load(b);
                let (mut i0, mut i1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for h in 0..2 {
                    let s = if h == 0 {
                        _mm256_permute2x128_si256::<0x00>(sc, sc)
                    } else {
                        _mm256_permute2x128_si256::<0x11>(sc, sc)
                    };
                    let mut q = load(b.add(32 + 32 * h));
                    let y = y.add(128 * h);
                    for k in 0..4 {
                        let hi = _mm256_slli_epi16::<2>(_mm256_and_si256(hm, one));
                        let u = _mm256_or_si256(_mm256_and_si256(q, m3), hi);
                        hm = _mm256_srli_epi16::<1>(hm);
                        q = _mm256_srli_epi16::<2>(q);
                        let s = _mm256_shuffle_epi8(s, pair16(k as i32));
                        if k % 2 == 0 {
                            i0 = mac(i0, u, load(y.add(32 * k)), s);
                        } else {
                            i1 = mac(i1, u, load(y.add(32 * k)), s);
                        }
                    }
                }
                let isum = _mm256_sub_epi32(_mm256_add_epi32(i0, i1), _mm256_slli_epi32::<2>(off));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(a.d * d), acc);
            }
            hsum(acc)
        }

        /// Q4_K and Q5_K against `N` activation rows: 32-element sub-blocks, nibbles
        /// (plus Q5_K's fifth bits at `qh`), scales and mins from the 12 packed bytes at
        /// offset 4; each super-block unpacked once for all `N` rows.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn q45_k<const Q5: bool, const N: usize>(
            w: &[u8],
            a: [&[BlockQ8K]; N],
            size: usize,
        ) -> [f32; N] {
            let m4 = _mm256_set1_epi8(0xf);
            let one = _mm256_set1_epi8(1);
            let qs_at = if Q5 { 48 } else { 16 };
            let mut acc = [_mm256_setzero_ps(); N];
            for (i, bs) in w.chunks_exact(size).enumerate() {
                let b = bs.as_ptr();
                let (d, dmin) = halves(b);
                let (sc, mn) = q4k_scales(&bs[4..16]);
                let sc = _mm_cvtepu8_epi16(_mm_loadl_epi64(sc.as_ptr() as *const __m128i));
                let mn = _mm_loadl_epi64(mn.as_ptr() as *const __m128i);
                // Each min covers two 16-sums: double it up to meet `bsums`.
                let mn = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn));
                let s = scales8(sc);
                let mut hb = if Q5 {
                    load(b.add(16))
                } else {
                    _mm256_setzero_si256()
                };
                let mut i0 = [_mm256_setzero_si256(); N];
                let mut i1 = [_mm256_setzero_si256(); N];
                for p in 0..4 {
                    let x = load(b.add(qs_at + 32 * p));
                    let mut lo = _mm256_and_si256(x, m4);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(x), m4);
                    if Q5 {
                        // Bit j of each qh byte is the fifth bit of sub-block j.
                        lo = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(_mm256_and_si256(hb, one)));
                        hb = _mm256_srli_epi16::<1>(hb);
                        hi = _mm256_or_si256(hi, _mm256_slli_epi16::<4>(_mm256_and_si256(hb, one)));
                        hb = _mm256_srli_epi16::<1>(hb);
                    }
                    let s0 = _mm256_shuffle_epi8(s, lane16(2 * p as i32));
                    let s1 = _mm256_shuffle_epi8(s, lane16(2 * p as i32 + 1));
                    for t in 0..N {
                        let y = a[t][i].qs.as_ptr() as *const u8;
                        i0[t] = mac(i0[t], lo, load(y.add(64 * p)), s0);
                        i1[t] = mac(i1[t], hi, load(y.add(64 * p + 32)), s1);
                    }
                }
                for t in 0..N {
                    let at = &a[t][i];
                    let msum = _mm256_madd_epi16(load(at.bsums.as_ptr() as *const u8), mn);
                    let isum = _mm256_cvtepi32_ps(_mm256_add_epi32(i0[t], i1[t]));
                    acc[t] = _mm256_fmadd_ps(isum, _mm256_set1_ps(at.d * d), acc[t]);
                    acc[t] = _mm256_fnmadd_ps(
                        _mm256_cvtepi32_ps(msum),
                        _mm256_set1_ps(at.d * dmin),
                        acc[t],
                    );
                }
            }
            acc.map(|v| hsum(v))
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            q45_k::<false, 1>(w, [a], Q4K)[0]
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            q45_k::<true, 1>(w, [a], Q5K)[0]
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_k_x4(w: &[u8], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
            q45_k::<false, 4>(w, a, Q4K)
        }

        #[target_feature(enable = $feat)]
        unsafe fn q5_k_x4(w: &[u8], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
            q45_k::<true, 4>(w, a, Q5K)
        }

        #[target_feature(enable = $feat)]
        unsafe fn q6_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
            q6_k_rows::<1>(w, [a])[0]
        }

        #[target_feature(enable = $feat)]
        unsafe fn q6_k_x4(w: &[u8], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
            q6_k_rows::<4>(w, a)
        }

        /// Q6_K against `N` activation rows: low nibbles and high 2-bit pairs, 16 i8
        /// scales, −32 through `bsums`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn q6_k_rows<const N: usize>(w: &[u8], a: [&[BlockQ8K]; N]) -> [f32; N] {
            let m4 = _mm256_set1_epi8(0xf);
            let m30 = _mm256_set1_epi8(0x30);
            let mut acc = [_mm256_setzero_ps(); N];
            for (i, b) in w.chunks_exact(Q6K).enumerate() {
                let b = b.as_ptr();
                let d = half(b.add(208));
                let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(192) as *const __m128i));
                let mut i0 = [_mm256_setzero_si256(); N];
                let mut i1 = [_mm256_setzero_si256(); N];
                for h in 0..2 {
                    let s = if h == 0 {
                        _mm256_permute2x128_si256::<0x00>(sc, sc)
                    } else {
                        _mm256_permute2x128_si256::<0x11>(sc, sc)
                    };
                    let l0 = load(b.add(64 * h));
                    let l1 = load(b.add(64 * h + 32));
                    let qh = load(b.add(128 + 32 * h));
                    // Quants 0..32 of this half: low nibbles of l0, bits 0-1 of qh;
                    // 32..64: l1, bits 2-3; 64..96: high nibbles of l0, bits 4-5; 96..128:
                    // l1, bits 6-7. The high pair goes to bits 4-5.
                    let q = [
                        _mm256_or_si256(
                            _mm256_and_si256(l0, m4),
                            _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m30),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(l1, m4),
                            _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m30),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
                            _mm256_and_si256(qh, m30),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
                            _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m30),
                        ),
                    ];
                    for k in 0..2 {
                        let s0 = _mm256_shuffle_epi8(s, pair16(2 * k as i32));
                        let s1 = _mm256_shuffle_epi8(s, pair16(2 * k as i32 + 1));
                        for t in 0..N {
                            let y = (a[t][i].qs.as_ptr() as *const u8).add(128 * h);
                            i0[t] = mac(i0[t], q[2 * k], load(y.add(64 * k)), s0);
                            i1[t] = mac(i1[t], q[2 * k + 1], load(y.add(64 * k + 32)), s1);
                        }
                    }
                }
                for t in 0..N {
                    let at = &a[t][i];
                    let off = _mm256_madd_epi16(load(at.bsums.as_ptr() as *const u8), sc);
                    let isum = _mm256_sub_epi32(
                        _mm256_add_epi32(i0[t], i1[t]),
                        _mm256_slli_epi32::<5>(off),
                    );
                    acc[t] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(at.d * d), acc[t]);
                }
            }
            acc.map(|v| hsum(v))
        }

        /// IQ4_XS: nibbles index the signed level table (`vpshufb`); `vpmaddubsw` needs
        /// an unsigned side, so multiply |level| by the activation with the level's sign.
        #[target_feature(enable = $feat)]
        unsafe fn iq4_xs(w: &[u8], a: &[BlockQ8K]) -> f32 {
            let m4 = _mm256_set1_epi8(0xf);
            let lut =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(IQ4_LEVELS.as_ptr() as *const __m128i));
            let mut acc = _mm256_setzero_ps();
            for (bs, a) in w.chunks_exact(IQ4XS).zip(a) {
                let b = bs.as_ptr();
                let y = a.qs.as_ptr() as *const u8;
                let d = half(b);
                let sc8 = iq4xs_scales(bs);
                let s = scales8(_mm_cvtepi8_epi16(_mm_loadl_epi64(
                    sc8.as_ptr() as *const __m128i
                )));
                let (mut i0, mut i1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for p in 0..4 {
                    // Sub-blocks 2p (low 128 bits) and 2p + 1 (high): low nibbles are
                    // their first 16 quants, high nibbles the next 16.
                    let x = load(b.add(8 + 32 * p));
                    let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, m4));
                    let hi =
                        _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16::<4>(x), m4));
                    let v0 = _mm256_permute2x128_si256::<0x20>(lo, hi);
                    let v1 = _mm256_permute2x128_si256::<0x31>(lo, hi);
                    let y0 = _mm256_sign_epi8(load(y.add(64 * p)), v0);
                    let y1 = _mm256_sign_epi8(load(y.add(64 * p + 32)), v1);
                    let s0 = _mm256_shuffle_epi8(s, lane16(2 * p as i32));
                    let s1 = _mm256_shuffle_epi8(s, lane16(2 * p as i32 + 1));
                    i0 = mac(i0, _mm256_abs_epi8(v0), y0, s0);
                    i1 = mac(i1, _mm256_abs_epi8(v1), y1, s1);
                }
                let isum = _mm256_cvtepi32_ps(_mm256_add_epi32(i0, i1));
                acc = _mm256_fmadd_ps(isum, _mm256_set1_ps(a.d * d), acc);
            }
            hsum(acc)
        }
    };
}

/// AVX2 + FMA + F16C.
pub(super) mod avx2 {
    use core::arch::x86_64::{__m256i, _mm256_add_epi32, _mm256_madd_epi16};

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn acc(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
    }

    kernels!("avx2,fma,f16c", acc);
}

/// AVX-512 VNNI (256-bit `vpdpwssd` through AVX-512 VL), on top of AVX2.
// The AVX-512 intrinsics are stable since Rust 1.89, past the workspace's declared MSRV.
#[allow(clippy::incompatible_msrv)]
pub(super) mod vnni {
    use core::arch::x86_64::{__m256i, _mm256_dpwssd_epi32};

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn acc(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, p, s)
    }

    kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", acc);
}
