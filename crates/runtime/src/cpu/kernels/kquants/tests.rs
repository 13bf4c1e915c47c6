use super::super::act::quantize_q8_k;
use super::super::test_util::{random_blocks, Rng};
use super::super::{BlockQ8K, Isa, RowDot};
use super::scalar;
use crate::quant::{dequantize, GgmlType};

const TYPES: [GgmlType; 6] = [
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_XS,
];

/// Row lengths in super-blocks: odd and even, below and above a SIMD unroll.
const LENGTHS: [usize; 6] = [1, 2, 3, 7, 8, 9];

fn acts(rng: &mut Rng, n: usize) -> Vec<BlockQ8K> {
    let x = rng.activations(256 * n);
    let mut a = vec![
        BlockQ8K {
            d: 0.0,
            qs: [0; 256],
            bsums: [0; 16]
        };
        n
    ];
    quantize_q8_k(&x, &mut a);
    a
}

/// The exact dot in f64 over the crate's dequantized weights and `d * qs`, and
/// `Σ |w·x|`, the scale every tolerance is relative to.
fn reference(ty: GgmlType, w: &[u8], a: &[BlockQ8K]) -> (f64, f64) {
    let mut wf = vec![0f32; 256 * a.len()];
    dequantize(ty, w, &mut wf).unwrap();
    let (mut dot, mut mag) = (0f64, 0f64);
    for (ws, a) in wf.chunks_exact(256).zip(a) {
        for (&w, &q) in ws.iter().zip(&a.qs) {
            let p = w as f64 * a.d as f64 * q as f64;
            dot += p;
            mag += p.abs();
        }
    }
    (dot, mag)
}

fn q8k_fn(ty: GgmlType, isa: Isa) -> fn(&[u8], &[BlockQ8K]) -> f32 {
    match super::row_dot(ty, isa) {
        Some(RowDot::Q8K(f)) => f,
        _ => panic!("{ty} has no Q8_K dot on {isa:?}"),
    }
}

/// Weight rows for one case: random bytes, or every quant bit set (the largest products,
/// which is where a SIMD kernel's 16-bit intermediate sums would saturate).
fn weights(rng: &mut Rng, ty: GgmlType, n: usize, case: usize) -> Vec<u8> {
    let mut w = random_blocks(rng, ty, n, 0.01);
    if case == 1 {
        let size = ty.type_size() as usize;
        let keep = match ty {
            GgmlType::Q2_K => 80..84,
            GgmlType::Q3_K => 96..110,
            GgmlType::Q4_K | GgmlType::Q5_K => 0..16,
            GgmlType::Q6_K => 192..210,
            _ => 0..8,
        };
        for b in w.chunks_exact_mut(size) {
            for (i, v) in b.iter_mut().enumerate() {
                if !keep.contains(&i) {
                    *v = if ty == GgmlType::IQ4_XS { 0 } else { 0xff };
                }
            }
        }
    }
    w
}

/// Activations for one case: random, or all ±127 (same sign in case 1, to push sums to
/// their extremes).
fn activations(rng: &mut Rng, n: usize, case: usize) -> Vec<BlockQ8K> {
    let mut a = acts(rng, n);
    if case == 1 {
        for b in &mut a {
            let s = if rng.next_u64() & 1 == 0 { 127 } else { -127 };
            b.qs = [s; 256];
            b.bsums = [16 * s as i16; 16];
        }
    }
    a
}

#[test]
fn scalar_matches_dequantized_f64() {
    for ty in TYPES {
        let f = scalar::get(ty).unwrap();
        for seed in 1..=4u64 {
            for case in 0..2 {
                for n in LENGTHS {
                    let mut rng = Rng::new(seed * 100 + n as u64);
                    let w = weights(&mut rng, ty, n, case);
                    let a = activations(&mut rng, n, case);
                    let (want, mag) = reference(ty, &w, &a);
                    let got = f(&w, &a) as f64;
                    assert!(mag > 0.0);
                    // f32 roundings only: a few ulps of the largest partial sums.
                    assert!(
                        (got - want).abs() <= 1e-5 * mag,
                        "{ty} seed {seed} case {case} n {n}: {got} vs {want} (Σ|wx| {mag})"
                    );
                }
            }
        }
    }
}

#[test]
fn simd_matches_scalar() {
    let isas = Isa::available();
    // Every target with kernels here has at least one SIMD set (x86-64 CI machines
    // have AVX2), so a lost dispatch fails rather than testing nothing.
    if cfg!(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )) {
        assert!(isas.len() > 1, "no SIMD instruction set: {isas:?}");
    }
    for &isa in &isas[1..] {
        for ty in TYPES {
            let f = q8k_fn(ty, isa);
            let s = scalar::get(ty).unwrap();
            for seed in 1..=5u64 {
                for case in 0..2 {
                    for n in LENGTHS {
                        let mut rng = Rng::new(seed * 1000 + n as u64);
                        let w = weights(&mut rng, ty, n, case);
                        let a = activations(&mut rng, n, case);
                        let (_, mag) = reference(ty, &w, &a);
                        let (got, want) = (f(&w, &a) as f64, s(&w, &a) as f64);
                        // The integer sums are exact in both; only the order of the f32
                        // additions (and i32→f32 roundings of partial sums) differs.
                        assert!(
                            (got - want).abs() <= 2e-6 * mag,
                            "{ty} {isa:?} seed {seed} case {case} n {n}: {got} vs {want} (Σ|wx| {mag})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn dispatch() {
    for isa in Isa::available() {
        for ty in TYPES {
            assert!(matches!(super::row_dot(ty, isa), Some(RowDot::Q8K(_))));
        }
        assert!(super::row_dot(GgmlType::Q4_0, isa).is_none());
        assert!(super::row_dot(GgmlType::F32, isa).is_none());
    }
}

/// The four-row kernels give each row what the single-row kernel of the same
/// instruction set gives it, for every type that has one (Q4_K, Q5_K, Q6_K on x86).
#[test]
fn four_row_kernels_match_four_single_dots() {
    let mut rng = Rng::new(4);
    let mut checked = 0;
    for ty in TYPES {
        for &isa in &Isa::available() {
            let Some(super::super::RowDot4::Q8K(dot4)) = super::row_dot4(ty, isa) else {
                continue;
            };
            checked += 1;
            for n in LENGTHS {
                for case in 0..2 {
                    let w = weights(&mut rng, ty, n, case);
                    let a: Vec<Vec<BlockQ8K>> = (0..4).map(|_| acts(&mut rng, n)).collect();
                    let got = dot4(&w, [&a[0], &a[1], &a[2], &a[3]]);
                    for t in 0..4 {
                        let want = q8k_fn(ty, isa)(&w, &a[t]);
                        let (_, mag) = reference(ty, &w, &a[t]);
                        assert!(
                            ((got[t] - want) as f64).abs() <= 1e-5 * mag.max(1e-30),
                            "{ty} {isa:?} n={n} case {case} row {t}: {} vs {want}",
                            got[t]
                        );
                    }
                }
            }
        }
    }
    if cfg!(target_arch = "x86_64") && Isa::available().contains(&Isa::Avx2) {
        assert!(checked >= 3, "four-row kernels missing: {checked}");
    }
}
