//! The f16 KV cache's three loops: store a row, dot a query with a key, add a weighted
//! value. F16C converts eight halves per instruction on x86-64; elsewhere the crate's
//! exact conversions are used (the results are the same: both round to nearest even).

use crate::quant::{f16_to_f32, f32_to_f16};

/// The functions for this CPU, chosen once.
#[derive(Clone, Copy)]
pub struct HalfOps {
    /// `dst[i] = f16(src[i])`.
    pub store: fn(&[f32], &mut [u16]),
    /// `Σ q[i] · f32(k[i])`.
    pub dot: fn(&[f32], &[u16]) -> f32,
    /// `out[i] += s · f32(v[i])`.
    pub axpy: fn(&mut [f32], f32, &[u16]),
}

impl HalfOps {
    pub fn best() -> HalfOps {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return HalfOps {
                store: x86::store,
                dot: x86::dot,
                axpy: x86::axpy,
            };
        }
        HalfOps::scalar()
    }

    pub fn scalar() -> HalfOps {
        HalfOps {
            store: store_scalar,
            dot: dot_scalar,
            axpy: axpy_scalar,
        }
    }
}

fn store_scalar(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32_to_f16(s);
    }
}

fn dot_scalar(q: &[f32], k: &[u16]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = q.chunks_exact(8).zip(k.chunks_exact(8));
    for (qc, kc) in &mut chunks {
        for j in 0..8 {
            acc[j] += qc[j] * f16_to_f32(kc[j]);
        }
    }
    let done = q.len() / 8 * 8;
    let tail: f32 = q[done..]
        .iter()
        .zip(&k[done..])
        .map(|(&a, &b)| a * f16_to_f32(b))
        .sum();
    acc.iter().sum::<f32>() + tail
}

fn axpy_scalar(out: &mut [f32], s: f32, v: &[u16]) {
    for (o, &h) in out.iter_mut().zip(v) {
        *o += s * f16_to_f32(h);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    // The safe wrappers are only handed out by `HalfOps::best` after detecting
    // AVX2, FMA and F16C.
    pub fn store(src: &[f32], dst: &mut [u16]) {
        unsafe { store_impl(src, dst) }
    }
    pub fn dot(q: &[f32], k: &[u16]) -> f32 {
        unsafe { dot_impl(q, k) }
    }
    pub fn axpy(out: &mut [f32], s: f32, v: &[u16]) {
        unsafe { axpy_impl(out, s, v) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn store_impl(src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_loadu_ps(src.as_ptr().add(i));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            i += 8;
        }
        super::store_scalar(&src[i..n], &mut dst[i..n]);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_impl(q: &[f32], k: &[u16]) -> f32 {
        let n = q.len().min(k.len());
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            let k0 = _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(i) as *const __m128i));
            let k1 = _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(i + 8) as *const __m128i));
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), k0, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i + 8)), k1, a1);
            i += 16;
        }
        while i + 8 <= n {
            let k0 = _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(i) as *const __m128i));
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), k0, a0);
            i += 8;
        }
        let s = _mm256_add_ps(a0, a1);
        let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        _mm_cvtss_f32(h) + super::dot_scalar(&q[i..n], &k[i..n])
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn axpy_impl(out: &mut [f32], s: f32, v: &[u16]) {
        let n = out.len().min(v.len());
        let sv = _mm256_set1_ps(s);
        let mut i = 0;
        while i + 8 <= n {
            let vv = _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(i) as *const __m128i));
            let o = _mm256_loadu_ps(out.as_ptr().add(i));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_fmadd_ps(sv, vv, o));
            i += 8;
        }
        super::axpy_scalar(&mut out[i..n], s, &v[i..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::test_util::Rng;

    #[test]
    fn simd_matches_scalar() {
        let (best, scalar) = (HalfOps::best(), HalfOps::scalar());
        let mut rng = Rng::new(7);
        for n in [1, 7, 8, 15, 16, 17, 64, 100, 256] {
            let x: Vec<f32> = (0..n).map(|_| rng.f32() * 3.0).collect();
            let q: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let (mut h1, mut h2) = (vec![0u16; n], vec![0u16; n]);
            (best.store)(&x, &mut h1);
            (scalar.store)(&x, &mut h2);
            assert_eq!(h1, h2, "store n={n}");
            let (d1, d2) = ((best.dot)(&q, &h1), (scalar.dot)(&q, &h1));
            assert!(
                (d1 - d2).abs() <= 1e-5 * (1.0 + d2.abs()),
                "dot n={n}: {d1} {d2}"
            );
            let (mut o1, mut o2) = (q.clone(), q.clone());
            (best.axpy)(&mut o1, 0.37, &h1);
            (scalar.axpy)(&mut o2, 0.37, &h1);
            for (a, b) in o1.iter().zip(&o2) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "axpy n={n}");
            }
        }
    }
}
