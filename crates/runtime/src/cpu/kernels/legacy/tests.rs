use super::super::act::{quantize_q8_0, quantize_q8_1};
use super::super::test_util::{random_blocks, Rng};
use super::super::{BlockQ8_0, BlockQ8_1, Isa, RowDot};

use crate::quant::{dequantize, GgmlType};

const TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::IQ4_NL,
];

/// Row lengths in blocks: 18 is SmolLM2's 576 columns, 65 an odd count past any unroll.
const LENGTHS: [usize; 7] = [1, 2, 3, 7, 18, 64, 65];

/// Activations of one case, as the f32 values the blocks hold: random, or all ±127 of
/// the scale (one sign), where 16-bit intermediate sums would saturate first.
fn activations(rng: &mut Rng, n: usize, case: usize) -> Vec<f32> {
    match case {
        0 => rng.activations(32 * n),
        _ => vec![1.0; 32 * n],
    }
}

/// Weight rows of one case: random bytes, or every quant bit set (the largest products).
fn weights(rng: &mut Rng, ty: GgmlType, n: usize, case: usize) -> Vec<u8> {
    let mut w = random_blocks(rng, ty, n, 0.01);
    if case == 1 {
        let size = ty.type_size() as usize;
        let scales = if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
            4
        } else {
            2
        };
        for b in w.chunks_exact_mut(size) {
            for v in &mut b[scales..] {
                // Q8_0: 0x81 = -127 (largest magnitude the sign trick sees); nibble types:
                // every quant at its top value (IQ4_NL: level 113).
                *v = if ty == GgmlType::Q8_0 { 0x81 } else { 0xff };
            }
        }
    }
    w
}

/// One activation row in both block forms (the same scales and quants; which one a
/// kernel reads depends on the type and, for Q4_0 and Q5_0, the instruction set).
struct Acts {
    q8_0: Vec<BlockQ8_0>,
    q8_1: Vec<BlockQ8_1>,
}

fn quantize(_ty: GgmlType, x: &[f32]) -> Acts {
    let n = x.len() / 32;
    let mut q8_1 = vec![
        BlockQ8_1 {
            d: 0.0,
            s: 0.0,
            qs: [0; 32]
        };
        n
    ];
    quantize_q8_1(x, &mut q8_1);
    let mut q8_0 = vec![
        BlockQ8_0 {
            d: 0.0,
            qs: [0; 32]
        };
        n
    ];
    quantize_q8_0(x, &mut q8_0);
    Acts { q8_0, q8_1 }
}

/// The kernel's value for these weights and activations on `isa`.
fn run(ty: GgmlType, isa: Isa, w: &[u8], a: &Acts) -> f32 {
    match super::row_dot(ty, isa) {
        Some(RowDot::Q8_0(f)) => f(w, &a.q8_0),
        Some(RowDot::Q8_1(f)) => f(w, &a.q8_1),
        _ => panic!("{ty} on {isa:?}: wrong activation kind"),
    }
}

/// The exact dot in f64 over the crate's dequantized weights and the activations the
/// blocks hold (`d * qs`), and `Σ |w·x|`, the scale tolerances are relative to.
fn reference(ty: GgmlType, w: &[u8], a: &Acts) -> (f64, f64) {
    let n = w.len() / ty.type_size() as usize;
    let mut wf = vec![0f32; 32 * n];
    dequantize(ty, w, &mut wf).unwrap();
    let xs: Vec<f64> = a
        .q8_0
        .iter()
        .flat_map(|b| b.qs.map(|q| b.d as f64 * q as f64))
        .collect();
    let (mut dot, mut mag) = (0f64, 0f64);
    for (&w, x) in wf.iter().zip(xs) {
        dot += w as f64 * x;
        mag += (w as f64 * x).abs();
    }
    (dot, mag)
}

#[test]
fn scalar_matches_f64_over_dequantized_blocks() {
    let mut rng = Rng::new(1);
    for ty in TYPES {
        for n in LENGTHS {
            for case in 0..2 {
                let w = weights(&mut rng, ty, n, case);
                let a = quantize(ty, &activations(&mut rng, n, case));
                let got = run(ty, Isa::Scalar, &w, &a) as f64;
                let (want, mag) = reference(ty, &w, &a);
                // f32 per-block products summed in f32; the offset term (Q4_1, Q5_1) goes
                // through `s`, itself an f32 product.
                assert!(
                    (got - want).abs() <= 1e-5 * mag.max(1e-30),
                    "{ty} n={n} case {case}: {got} vs {want} (Σ|w·x| {mag})"
                );
            }
        }
    }
}

#[test]
fn simd_matches_scalar() {
    let isas = Isa::available();
    // Every target with kernels here has at least one SIMD set (x86-64 CI machines have
    // AVX2; wasm32 tests are built with simd128), so a lost dispatch fails rather than
    // testing nothing.
    if cfg!(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )) {
        assert!(isas.len() > 1, "no SIMD instruction set: {isas:?}");
    }
    let mut rng = Rng::new(2);
    for ty in TYPES {
        for &isa in &isas[1..] {
            for seed in 0..3 {
                for n in LENGTHS {
                    for case in 0..2 {
                        let _ = seed;
                        let w = weights(&mut rng, ty, n, case);
                        let a = quantize(ty, &activations(&mut rng, n, case));
                        let want = run(ty, Isa::Scalar, &w, &a);
                        let got = run(ty, isa, &w, &a);
                        let (_, mag) = reference(ty, &w, &a);
                        // Integer sums are exact; only the order of the f32 additions and
                        // fused multiply-adds differ.
                        assert!(
                            ((got - want) as f64).abs() <= 1e-5 * mag.max(1e-30),
                            "{ty} {isa:?} n={n} case {case}: {got} vs scalar {want}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn four_token_kernels_match_four_single_dots() {
    let mut rng = Rng::new(3);
    for ty in TYPES {
        for &isa in &Isa::available() {
            let Some(dot4) = super::row_dot4(ty, isa) else {
                // Every SIMD set has its four-token kernels; scalar falls back to singles.
                assert_eq!(isa, Isa::Scalar, "{ty}: no four-token kernel on {isa:?}");
                continue;
            };
            for n in LENGTHS {
                let w = weights(&mut rng, ty, n, 0);
                let acts: Vec<Acts> = (0..4)
                    .map(|_| quantize(ty, &activations(&mut rng, n, 0)))
                    .collect();
                let got = match dot4 {
                    super::RowDot4::Q8_0(f) => f(&w, [0, 1, 2, 3].map(|t| &acts[t].q8_0[..])),
                    super::RowDot4::Q8_1(f) => f(&w, [0, 1, 2, 3].map(|t| &acts[t].q8_1[..])),
                    _ => panic!("{ty} {isa:?}: four-token kernel reads other blocks"),
                };
                for (t, a) in acts.iter().enumerate() {
                    let want = run(ty, isa, &w, a);
                    let (_, mag) = reference(ty, &w, a);
                    assert!(
                        ((got[t] - want) as f64).abs() <= 1e-5 * mag.max(1e-30),
                        "{ty} {isa:?} n={n} token {t}: {} vs {want}",
                        got[t]
                    );
                }
            }
        }
    }
}
