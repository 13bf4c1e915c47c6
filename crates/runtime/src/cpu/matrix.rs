//! Quantized weight matrices and the products of them with a batch of activation rows.
//!
//! A [`Matrix`] is a view of one 2-D tensor of the file: the rows stay in their GGUF
//! blocks and are read in place. The input rows are quantized once per call into the
//! block format the matrix's kernel reads ([`Input`]), shared by every matrix that reads
//! the same input (Q, K and V; gate and up), and the matrices' rows are split over the
//! threads in one parallel region.
//!
//! Activation precision ([`Precision`]). One 8-bit block per 32 values (llama.cpp's CPU
//! scheme) moves logits far from float math: on the fixture prompts up to 1.23 from the
//! float64 reference on SmolLM2 (llama.cpp's CPU backend: 1.41), 0.56 from llama.cpp's
//! float Vulkan logits at the first generated token, past the 0.35 bar every engine is
//! held to; with one block per 256 (the K-quants' Q8_K) Gemma 3 moves 2.26 and top-1
//! tokens flip. No single matrix is to blame: making attention or FFN matrices exact
//! alone still leaves 0.73 / 1.12. So by default each activation block is followed by an
//! 8-bit block of its residual `x − d·q` (|residual| ≤ d/2; for 32-blocks at exactly
//! `d/256`, so x86's eight-row kernels add `256·Σ w·q + Σ w·q'` in integers and convert
//! once), and every product is the sum of the two integer dots: the same kernels, twice
//! the integer work, the weights read once (the four- and eight-row kernels take tokens ×
//! two parts). Logits then sit within 0.017 / 0.020 / 0.070 of float64 (SmolLM2 / Gemma 3 /
//! Qwen2.5), as the f32 oracle does. Cost on 2 threads: SmolLM2 pp128 478 → 258 tok/s,
//! tg 171 → 116; Qwen2.5-0.5B 155 → 76, 58 → 36. [`Precision::Fast`] keeps the single
//! block for those who want llama.cpp's trade.

use super::kernels::{
    act, row_dot, row_dot4, row_dot8, ActKind, BlockQ8K, BlockQ8_0, BlockQ8_1, Isa, RowDot,
    RowDot4, RowDot8,
};
use super::pool::{Pool, SharedOut};
use crate::gguf::TensorInfo;
use crate::quant::GgmlType;
use crate::Error;

/// One weight matrix: `rows` rows of `cols` elements, `row_bytes` each, in the file.
#[derive(Clone)]
pub struct Matrix {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    offset: usize,
    row_bytes: usize,
    dot: RowDot,
    /// Four tokens at once, where the instruction set has it (prefill).
    dot4: Option<RowDot4>,
    /// Eight activation rows at once, where there is such a kernel (x86, offset types).
    dot8: Option<RowDot8>,
}

impl Matrix {
    /// The matrix of tensor `t` with the best kernel for `isa`; an error names a type
    /// the engine cannot read or a row that is not a whole number of blocks.
    pub fn new(t: &TensorInfo, isa: Isa) -> Result<Matrix, Error> {
        let ty = t.ggml_type;
        let dot = row_dot(ty, isa).ok_or_else(|| {
            Error::Unsupported(format!(
                "tensor {} has type {ty}, which the CPU engine cannot read",
                t.name
            ))
        })?;
        let cols = t.row_len() as usize;
        let rows = t.n_rows() as usize;
        let row_bytes = ty.bytes_for(cols as u64).ok_or_else(|| {
            Error::InvalidModel(format!(
                "tensor {}: rows of {cols} are not whole {ty} blocks",
                t.name
            ))
        })? as usize;
        if !cols.is_multiple_of(act_block(dot.act_kind())) || row_bytes * rows != t.n_bytes as usize
        {
            return Err(Error::InvalidModel(format!(
                "tensor {}: {rows} rows of {cols} {ty} do not take {} bytes",
                t.name, t.n_bytes
            )));
        }
        Ok(Matrix {
            name: t.name.clone(),
            ty,
            rows,
            cols,
            offset: t.offset as usize,
            row_bytes,
            dot,
            dot4: row_dot4(ty, isa),
            dot8: row_dot8(ty, isa),
        })
    }

    /// Whether products go through a dequantized row (a quantized type on the float path).
    fn dequantizes(&self) -> bool {
        matches!(self.dot, RowDot::F32(_))
            && !matches!(self.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    pub fn act_kind(&self) -> ActKind {
        self.dot.act_kind()
    }

    /// Bytes of weights (what one mat-vec reads).
    pub fn bytes(&self) -> usize {
        self.rows * self.row_bytes
    }

    /// Row `r`'s bytes in the file.
    #[inline]
    pub fn row<'f>(&self, file: &'f [u8], r: usize) -> &'f [u8] {
        let start = self.offset + r * self.row_bytes;
        &file[start..start + self.row_bytes]
    }

    /// `row r · input row t`: the sum over the input's parts (see [`Input::parts`]).
    #[inline]
    fn dot(&self, file: &[u8], r: usize, input: &Input, t: usize) -> f32 {
        let w = self.row(file, r);
        let c = self.cols;
        let p = input.parts;
        match self.dot {
            RowDot::Q8_0(f) => {
                let b = c / 32;
                (t * p..(t + 1) * p)
                    .map(|q| f(w, &input.q8_0[q * b..(q + 1) * b]))
                    .sum()
            }
            RowDot::Q8_1(f) => {
                let b = c / 32;
                (t * p..(t + 1) * p)
                    .map(|q| f(w, &input.q8_1[q * b..(q + 1) * b]))
                    .sum()
            }
            RowDot::Q8K(f) => {
                let b = c / 256;
                (t * p..(t + 1) * p)
                    .map(|q| f(w, &input.q8k[q * b..(q + 1) * b]))
                    .sum()
            }
            RowDot::F32(f) => f(self.ty, w, &input.x[t * c..(t + 1) * c]),
        }
    }

    /// `row r` · the four quantized input rows from `q` (tokens `q / parts ..`), or `None`
    /// without a four-token kernel.
    #[inline]
    fn dot4(&self, file: &[u8], r: usize, input: &Input, q: usize) -> Option<[f32; 4]> {
        let w = self.row(file, r);
        let b = self.cols / 32;
        let bk = self.cols / 256;
        Some(match self.dot4? {
            RowDot4::Q8_0(f) => {
                let a = |i: usize| &input.q8_0[(q + i) * b..(q + i + 1) * b];
                f(w, [a(0), a(1), a(2), a(3)])
            }
            RowDot4::Q8_1(f) => {
                let a = |i: usize| &input.q8_1[(q + i) * b..(q + i + 1) * b];
                f(w, [a(0), a(1), a(2), a(3)])
            }
            RowDot4::Q8K(f) => {
                let a = |i: usize| &input.q8k[(q + i) * bk..(q + i + 1) * bk];
                f(w, [a(0), a(1), a(2), a(3)])
            }
        })
    }
}

impl Matrix {
    /// `row r` · the eight quantized input rows from `q`, or `None` without an eight-row
    /// kernel: eight tokens, or four of two parts (the paired kernel).
    #[inline]
    fn dot8(&self, file: &[u8], r: usize, input: &Input, q: usize) -> Option<[f32; 8]> {
        let k = self.dot8?;
        let f = if input.parts == 2 { k.paired } else { k.single };
        let b = self.cols / 32;
        let a = |i: usize| &input.q8_1[(q + i) * b..(q + i + 1) * b];
        Some(f(
            self.row(file, r),
            [a(0), a(1), a(2), a(3), a(4), a(5), a(6), a(7)],
        ))
    }
}

fn act_block(kind: ActKind) -> usize {
    match kind {
        ActKind::Q8_0 | ActKind::Q8_1 => 32,
        ActKind::Q8K => 256,
        ActKind::F32 => 1,
    }
}

/// `n` activation rows of `cols` values, with the quantized forms the matrices reading
/// them need (made by [`Input::prepare`] before the parallel region).
pub struct Input<'a> {
    x: &'a [f32],
    pub n: usize,
    pub cols: usize,
    /// Quantized rows per token: 1, or 2 where each token is its 8-bit blocks plus the
    /// 8-bit blocks of what they left over (`x ≈ d·q + d'·q'`, see [`Precision`]).
    parts: usize,
    q8_0: Vec<BlockQ8_0>,
    q8_1: Vec<BlockQ8_1>,
    q8k: Vec<BlockQ8K>,
}

impl<'a> Input<'a> {
    pub fn new(x: &'a [f32], cols: usize, precision: Precision) -> Input<'a> {
        debug_assert_eq!(x.len() % cols, 0);
        Input {
            x,
            n: x.len() / cols,
            cols,
            parts: match precision {
                Precision::Fast => 1,
                Precision::Exact => 2,
            },
            q8_0: Vec::new(),
            q8_1: Vec::new(),
            q8k: Vec::new(),
        }
    }

    /// Quantize the rows for `kind` unless already done.
    pub fn prepare(&mut self, kind: ActKind, pool: &Pool) {
        let (x, cols, parts) = (self.x, self.cols, self.parts);
        match kind {
            ActKind::Q8_0 if self.q8_0.is_empty() => {
                let (q, r) = (act::quantize_q8_0, act::quantize_q8_0_residual);
                self.q8_0 = quantize_rows(pool, x, cols, parts, 32, ZERO_Q8_0, q, r);
            }
            ActKind::Q8_1 if self.q8_1.is_empty() => {
                let (q, r) = (act::quantize_q8_1, act::quantize_q8_1_residual);
                self.q8_1 = quantize_rows(pool, x, cols, parts, 32, ZERO_Q8_1, q, r);
            }
            ActKind::Q8K if self.q8k.is_empty() => {
                let r =
                    |r: &[f32], _: &[BlockQ8K], out: &mut [BlockQ8K]| act::quantize_q8_k(r, out);
                self.q8k =
                    quantize_rows(pool, x, cols, parts, 256, ZERO_Q8K, act::quantize_q8_k, r);
            }
            _ => {}
        }
    }
}

/// Each row of `x` quantized by `quantize` into blocks of `block` values; with two
/// parts, each token's blocks are followed by those of its residual `x − dequant(q)`,
/// quantized by `quantize_residual` (which sees the blocks: 32-blocks take a fixed scale
/// from them, see [`act::quantize_q8_1_residual`]). Rows are spread over the threads: on
/// one thread this is a tenth of a two-thread prefill.
#[allow(clippy::too_many_arguments)]
fn quantize_rows<B: Copy + Send + Dequant>(
    pool: &Pool,
    x: &[f32],
    cols: usize,
    parts: usize,
    block: usize,
    zero: B,
    quantize: fn(&[f32], &mut [B]),
    quantize_residual: fn(&[f32], &[B], &mut [B]),
) -> Vec<B> {
    let per_row = cols / block;
    let rows = x.len() / cols;
    let mut out = vec![zero; parts * x.len() / block];
    let shared = SharedOut::new(&mut out);
    // Rows per job: a row takes about a microsecond, a hand-off a few.
    const ROWS: usize = 8;
    pool.for_each(rows.div_ceil(ROWS), |j| {
        let mut residual = vec![0f32; if parts > 1 { cols } else { 0 }];
        for t in j * ROWS..((j + 1) * ROWS).min(rows) {
            let xr = &x[t * cols..(t + 1) * cols];
            // SAFETY: token t's blocks belong to this job alone.
            let qr = unsafe { shared.slice(t * parts * per_row, parts * per_row) };
            let (hi, lo) = qr.split_at_mut(per_row);
            quantize(xr, hi);
            if parts > 1 {
                for (i, (r, &v)) in residual.iter_mut().zip(xr).enumerate() {
                    *r = v - hi[i / block].value(i % block);
                }
                quantize_residual(&residual, hi, lo);
            }
        }
    });
    out
}

/// One value of a quantized activation block.
trait Dequant {
    fn value(&self, i: usize) -> f32;
}

impl Dequant for BlockQ8_0 {
    fn value(&self, i: usize) -> f32 {
        self.d * self.qs[i] as f32
    }
}

impl Dequant for BlockQ8_1 {
    fn value(&self, i: usize) -> f32 {
        self.d * self.qs[i] as f32
    }
}

impl Dequant for BlockQ8K {
    fn value(&self, i: usize) -> f32 {
        self.d * self.qs[i] as f32
    }
}

/// How finely activations are quantized for the integer dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Twice the integer work: each activation block plus its residual, both 8-bit
    /// (about 15 bits per value); logits within the fixtures' float64 bars.
    #[default]
    Exact,
    /// One 8-bit block per activation block, as llama.cpp's CPU backend does.
    Fast,
}

const ZERO_Q8_0: BlockQ8_0 = BlockQ8_0 {
    d: 0.0,
    qs: [0; 32],
};
const ZERO_Q8_1: BlockQ8_1 = BlockQ8_1 {
    d: 0.0,
    s: 0.0,
    qs: [0; 32],
};
const ZERO_Q8K: BlockQ8K = BlockQ8K {
    d: 0.0,
    qs: [0; 256],
    bsums: [0; 16],
};

/// Rows per job: enough work per job to amortise the hand-off, enough jobs to balance.
fn rows_per_job(total_rows: usize, n: usize, threads: usize) -> usize {
    let jobs = (threads * 4).max(1);
    let by_balance = total_rows.div_ceil(jobs);
    // At least ~16k multiply-adds per job; fewer rows when many tokens share each row.
    let min_rows = (64 / n.max(1)).max(4);
    by_balance.max(min_rows).max(1)
}

/// Weight bytes per block of rows in [`matmul`]: a third of a 48 KiB L1, beside the
/// activation rows of one token group.
const WEIGHT_BLOCK_BYTES: usize = 8 << 10;

/// `outs[i][t * rows_i + r] = matrices[i] row r · input row t` for every matrix, all
/// reading the same input, in one parallel region.
pub fn matmul(
    pool: &Pool,
    file: &[u8],
    input: &mut Input,
    matrices: &[&Matrix],
    outs: &mut [&mut [f32]],
) {
    debug_assert_eq!(matrices.len(), outs.len());
    let n = input.n;
    for m in matrices {
        debug_assert_eq!(m.cols, input.cols, "{}", m.name);
        input.prepare(m.act_kind(), pool);
    }
    let input = &*input;
    // Jobs: (matrix, first row, rows) ranges, each writing only its own rows' outputs.
    let total_rows: usize = matrices.iter().map(|m| m.rows).sum();
    let per_job = rows_per_job(total_rows, n, pool.threads());
    let mut jobs = Vec::new();
    for (i, m) in matrices.iter().enumerate() {
        let mut r = 0;
        while r < m.rows {
            let len = per_job.min(m.rows - r);
            jobs.push((i, r, len));
            r += len;
        }
    }
    let shared: Vec<SharedOut> = outs
        .iter_mut()
        .zip(matrices)
        .map(|(o, m)| {
            assert_eq!(o.len(), n * m.rows, "{}", m.name);
            SharedOut::new(o)
        })
        .collect();
    pool.for_each(jobs.len(), |j| {
        let (i, r0, len) = jobs[j];
        let m = matrices[i];
        let out = &shared[i];
        if m.dequantizes() {
            // The float path over a quantized type: each row dequantized once, then
            // dotted with every token.
            let mut row = vec![0f32; m.cols];
            for r in r0..r0 + len {
                crate::quant::dequantize(m.ty, m.row(file, r), &mut row)
                    .expect("row size checked at load");
                for t in 0..n {
                    let v = crate::model::math::dot(&row, &input.x[t * m.cols..(t + 1) * m.cols]);
                    // SAFETY: rows r0..r0+len of matrix i belong to this job alone.
                    unsafe { out.write(t * m.rows + r, v) };
                }
            }
            return;
        }
        let parts = input.parts;
        let write = |t: usize, r: usize, v: f32| {
            // SAFETY: rows r0..r0+len of matrix i belong to this job alone.
            unsafe { out.write(t * m.rows + r, v) }
        };
        // Weight rows in blocks small enough to stay in L1 while every group of tokens
        // passes over them, each group's few activation rows staying there too.
        let block = (WEIGHT_BLOCK_BYTES / m.row_bytes).clamp(1, len);
        for b0 in (r0..r0 + len).step_by(block) {
            let rows = b0..(b0 + block).min(r0 + len);
            let mut t = 0;
            // Eight quantized rows at a time where a kernel takes them, then four:
            // tokens, or half as many of two parts (summed over the parts).
            let per8 = 8 / parts;
            while m.dot8.is_some() && t + per8 <= n {
                for r in rows.clone() {
                    let v = m.dot8(file, r, input, t * parts).expect("checked");
                    for k in 0..per8 {
                        write(t + k, r, v[k * parts..(k + 1) * parts].iter().sum());
                    }
                }
                t += per8;
            }
            let per4 = 4 / parts;
            while m.dot4.is_some() && t + per4 <= n {
                for r in rows.clone() {
                    let v = m.dot4(file, r, input, t * parts).expect("checked");
                    for k in 0..per4 {
                        write(t + k, r, v[k * parts..(k + 1) * parts].iter().sum());
                    }
                }
                t += per4;
            }
            for t in t..n {
                for r in rows.clone() {
                    write(t, r, m.dot(file, r, input, t));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::test_util::{random_blocks, Rng};

    /// `rows × cols` random weights of `ty` and their product with `n` random activation
    /// rows through [`matmul`] at `precision`, and the largest error against float64 over
    /// the dequantized weights, relative to the largest |product|.
    fn relative_error(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        n: usize,
        precision: Precision,
    ) -> f64 {
        let mut rng = Rng::new(ty.type_size() * 31 + n as u64);
        let block = ty.block_size() as usize;
        let w = random_blocks(&mut rng, ty, rows * cols / block, 0.05);
        let t = TensorInfo {
            name: "w".into(),
            dims: vec![cols as u64, rows as u64],
            ggml_type: ty,
            offset: 0,
            n_elements: (rows * cols) as u64,
            n_bytes: w.len() as u64,
        };
        let m = Matrix::new(&t, Isa::best()).unwrap();
        let x = rng.activations(n * cols);
        let mut out = vec![0f32; n * rows];
        let pool = Pool::new(2).unwrap();
        let mut input = Input::new(&x, cols, precision);
        matmul(&pool, &w, &mut input, &[&m], &mut [&mut out]);
        let mut dense = vec![0f32; rows * cols];
        crate::quant::dequantize(ty, &w, &mut dense).unwrap();
        let (mut worst, mut scale) = (0f64, 0f64);
        for t in 0..n {
            for r in 0..rows {
                let exact: f64 = dense[r * cols..(r + 1) * cols]
                    .iter()
                    .zip(&x[t * cols..(t + 1) * cols])
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum();
                worst = worst.max((out[t * rows + r] as f64 - exact).abs());
                scale = scale.max(exact.abs());
            }
        }
        worst / scale
    }

    /// The residual blocks take the 8-bit error of the activations down by two orders of
    /// magnitude, through the four-token kernels (7 tokens: 4-row groups and the rest)
    /// and the single-token ones, for 32- and 256-element types.
    #[test]
    fn exact_precision_is_two_orders_finer_than_fast() {
        for ty in [
            GgmlType::Q4_1,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
        ] {
            for n in [1, 7] {
                let fast = relative_error(ty, 24, 512, n, Precision::Fast);
                let exact = relative_error(ty, 24, 512, n, Precision::Exact);
                assert!(fast < 2e-2, "{ty} n={n}: fast {fast:.2e}");
                assert!(
                    exact < 1e-4 && exact * 50.0 < fast,
                    "{ty} n={n}: exact {exact:.2e}, fast {fast:.2e}"
                );
            }
        }
    }
}
