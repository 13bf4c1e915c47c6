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

/// A token's blocks and their residual at the fixed scale (what exact precision feeds the
/// paired kernels).
fn with_residual(x: &[f32]) -> (Vec<BlockQ8_1>, Vec<BlockQ8_1>) {
    let hi = quantize(GgmlType::Q4_1, x).q8_1;
    let r: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v - hi[i / 32].d * hi[i / 32].qs[i % 32] as f32)
        .collect();
    let mut lo = hi.clone();
    super::super::act::quantize_q8_1_residual(&r, &hi, &mut lo);
    (hi, lo)
}

#[test]
fn eight_row_kernels_match_single_dots() {
    let mut rng = Rng::new(4);
    let mut tested = 0;
    for ty in TYPES {
        for &isa in &Isa::available() {
            let Some(dot8) = super::row_dot8(ty, isa) else {
                continue;
            };
            tested += 1;
            for n in LENGTHS {
                for case in 0..2 {
                    let w = weights(&mut rng, ty, n, case);
                    let single = |a: &[BlockQ8_1]| match super::row_dot(ty, isa) {
                        Some(RowDot::Q8_1(f)) => f(&w, a),
                        _ => panic!("{ty} {isa:?}: the eight-row kernel reads other blocks"),
                    };
                    let mag = |a: &[BlockQ8_1]| {
                        let acts = Acts {
                            q8_0: Vec::new(),
                            q8_1: a.to_vec(),
                        };
                        reference_q8_1(ty, &w, &acts)
                    };
                    // Eight tokens.
                    let acts: Vec<Vec<BlockQ8_1>> = (0..8)
                        .map(|_| quantize(ty, &activations(&mut rng, n, case)).q8_1)
                        .collect();
                    let got = (dot8.single)(&w, std::array::from_fn(|t| &acts[t][..]));
                    for (t, a) in acts.iter().enumerate() {
                        let want = single(a);
                        assert!(
                            ((got[t] - want) as f64).abs() <= 1e-5 * mag(a).max(1e-30),
                            "{ty} {isa:?} n={n} case {case} row {t}: {} vs {want}",
                            got[t]
                        );
                    }
                    // Four tokens of two parts; case 1 also puts every residual quant at
                    // ±127, the largest combined integer sum.
                    let mut pairs: Vec<Vec<BlockQ8_1>> = Vec::new();
                    for k in 0..4 {
                        let (hi, mut lo) = with_residual(&rng.activations(32 * n));
                        if case == 1 {
                            for (h, l) in hi.iter().zip(&mut lo) {
                                let sign: i32 = if k % 2 == 0 { 1 } else { -1 };
                                l.qs = [(127 * sign) as i8; 32];
                                l.d = h.d / 256.0;
                                l.s = l.d * (32 * 127 * sign) as f32;
                            }
                        }
                        pairs.push(hi);
                        pairs.push(lo);
                    }
                    let got = (dot8.paired)(&w, std::array::from_fn(|i| &pairs[i][..]));
                    for k in 0..4 {
                        let (hi, lo) = (&pairs[2 * k], &pairs[2 * k + 1]);
                        let want = single(hi) + single(lo);
                        let tol = 1e-5 * (mag(hi) + mag(lo)).max(1e-30);
                        assert!(
                            ((got[2 * k] - want) as f64).abs() <= tol,
                            "{ty} {isa:?} n={n} case {case} pair {k}: {} vs {want}",
                            got[2 * k]
                        );
                        assert_eq!(got[2 * k + 1], 0.0, "{ty} {isa:?}: second slot of pair {k}");
                    }
                }
            }
        }
    }
    if cfg!(target_arch = "x86_64") {
        // Q4_0, Q5_0, Q4_1, Q5_1 on AVX2 at least.
        assert!(tested >= 4, "only {tested} eight-row kernels found");
    }
}

/// `Σ |w·x|` over the values Q8_1 blocks hold.
fn reference_q8_1(ty: GgmlType, w: &[u8], a: &Acts) -> f64 {
    let n = w.len() / ty.type_size() as usize;
    let mut wf = vec![0f32; 32 * n];
    dequantize(ty, w, &mut wf).unwrap();
    let xs = a
        .q8_1
        .iter()
        .flat_map(|b| b.qs.map(|q| b.d as f64 * q as f64));
    wf.iter().zip(xs).map(|(&w, x)| (w as f64 * x).abs()).sum()
}
