//! Microbenchmarks of the CPU engine's kernels (`wisp bench --kernels --device cpu`): the
//! machine's streaming-read bandwidth (the roof a decode mat-vec can reach), then every
//! weight type's mat-vec (one token: a 2048 × 2048 layer) and mat-mul (128 tokens) on
//! each instruction set the CPU has, on one thread and on all.
//!
//! Decisions a newcomer may question (the GPU bench makes the same ones):
//! - Weights are random bytes in `0x30..=0x3F`: every f16 scale they form is a normal
//!   number of moderate size and any byte string is a valid block of every type.
//! - The matrix is replicated through a pool of copies (≥ 192 MiB unless `quick`) and
//!   successive repetitions read successive copies, so decode weights come from memory,
//!   as they do in a real token, not from a cache a 2–9 MB matrix fits in.

use super::kernels::{ActKind, Isa};
use super::matrix::{matmul, Input, Matrix, Precision};
use super::pool::Pool;
use crate::gguf::TensorInfo;
use crate::quant::GgmlType;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct KernelBenchOptions {
    pub quick: bool,
    /// Only these types (empty: all).
    pub types: Vec<GgmlType>,
    /// Threads for the all-threads columns (0: one per core).
    pub threads: usize,
}

#[derive(Debug, Clone)]
pub struct KernelResult {
    pub ty: GgmlType,
    pub isa: Isa,
    pub act: ActKind,
    /// One-token mat-vec over a 2048 × 2048 matrix: GB/s of weights, one thread and all.
    pub matvec_gb_s_1: f64,
    pub matvec_gb_s_all: f64,
    /// 128-token mat-mul: GOP/s (2 per multiply-add), one thread and all.
    pub matmul_gop_s_1: f64,
    pub matmul_gop_s_all: f64,
}

#[derive(Debug, Clone)]
pub struct KernelBench {
    pub threads: usize,
    /// Streaming read (sum of u64 words), GB/s, one thread and all.
    pub stream_gb_s_1: f64,
    pub stream_gb_s_all: f64,
    pub kernels: Vec<KernelResult>,
}

/// The weight types the engine has integer kernels for, and F16 (the float path).
pub const BENCH_TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::F16,
];

const N: usize = 2048;

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            0x30 | (x as u8 & 0x0f)
        })
        .collect()
}

/// Seconds per call of `f`, the median of 5 samples of enough calls to last `target_s`.
fn time(target_s: f64, mut f: impl FnMut(usize)) -> f64 {
    f(0);
    let t = Instant::now();
    f(1);
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((target_s / once) as usize).clamp(1, 100_000);
    let mut samples: Vec<f64> = (0..5)
        .map(|s| {
            let t = Instant::now();
            for r in 0..reps {
                f(2 + s * reps + r);
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[2]
}

fn stream(pool: &Pool, words: &[u64]) -> f64 {
    let parts = pool.threads().max(1) * 4;
    let per = words.len().div_ceil(parts);
    let sums: Vec<std::sync::atomic::AtomicU64> = (0..parts).map(|_| Default::default()).collect();
    let s = time(0.2, |_| {
        pool.for_each(parts, |p| {
            let chunk = &words[(p * per).min(words.len())..((p + 1) * per).min(words.len())];
            let sum = chunk.iter().fold(0u64, |a, &w| a.wrapping_add(w));
            sums[p].fetch_add(sum, std::sync::atomic::Ordering::Relaxed);
        })
    });
    (words.len() * 8) as f64 / s / 1e9
}

pub fn kernel_bench(options: &KernelBenchOptions) -> Result<KernelBench, crate::Error> {
    let one = Pool::new(1)?;
    let all = Pool::new(options.threads)?;
    let pool_bytes: usize = if options.quick { 16 << 20 } else { 256 << 20 };
    let words: Vec<u64> = random_bytes(pool_bytes, 7)
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let stream_gb_s_1 = stream(&one, &words);
    let stream_gb_s_all = stream(&all, &words);
    drop(words);
    let types: Vec<GgmlType> = if options.types.is_empty() {
        BENCH_TYPES.to_vec()
    } else {
        options.types.clone()
    };
    let target = if options.quick { 0.02 } else { 0.2 };
    let n_tokens = if options.quick { 16 } else { 128 };
    let mut kernels = Vec::new();
    for &ty in &types {
        let Some(matrix_bytes) = ty.bytes_for((N * N) as u64) else {
            continue;
        };
        let matrix_bytes = matrix_bytes as usize;
        let copies = (if options.quick {
            16usize << 20
        } else {
            192 << 20
        })
        .div_ceil(matrix_bytes)
        .max(1);
        let file = random_bytes(matrix_bytes * copies, ty.id() as u64 + 11);
        let info = |copy: usize| TensorInfo {
            name: format!("bench.{ty}"),
            dims: vec![N as u64, N as u64],
            ggml_type: ty,
            offset: (copy * matrix_bytes) as u64,
            n_elements: (N * N) as u64,
            n_bytes: matrix_bytes as u64,
        };
        let x: Vec<f32> = (0..N * n_tokens)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        for isa in Isa::available() {
            let mats: Vec<Matrix> = (0..copies)
                .map(|c| Matrix::new(&info(c), isa))
                .collect::<Result<_, _>>()?;
            let act = mats[0].act_kind();
            let mut out = vec![0f32; N * n_tokens];
            let mut run = |pool: &Pool, tokens: usize, target: f64| {
                time(target, |i| {
                    let m = &mats[i % copies];
                    let mut input = Input::new(&x[..tokens * N], N, Precision::Fast);
                    matmul(pool, &file, &mut input, &[m], &mut [&mut out[..tokens * N]]);
                })
            };
            let gb = |s: f64| matrix_bytes as f64 / s / 1e9;
            let gop = |s: f64| 2.0 * (N * N * n_tokens) as f64 / s / 1e9;
            kernels.push(KernelResult {
                ty,
                isa,
                act,
                matvec_gb_s_1: gb(run(&one, 1, target)),
                matvec_gb_s_all: gb(run(&all, 1, target)),
                matmul_gop_s_1: gop(run(&one, n_tokens, target)),
                matmul_gop_s_all: gop(run(&all, n_tokens, target)),
            });
        }
    }
    Ok(KernelBench {
        threads: all.threads(),
        stream_gb_s_1,
        stream_gb_s_all,
        kernels,
    })
}
