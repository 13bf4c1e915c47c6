//! Quantized weight matrices and the products of them with a batch of activation rows.
//!
//! A [`Matrix`] is a view of one 2-D tensor of the file: the rows stay in their GGUF
//! blocks and are read in place. The input rows are quantized once per call into the
//! block format the matrix's kernel reads ([`Input`]), shared by every matrix that reads
//! the same input (Q, K and V; gate and up), and the matrices' rows are split over the
//! threads in one parallel region.

use super::kernels::{
    act, row_dot, row_dot4, ActKind, BlockQ8K, BlockQ8_0, BlockQ8_1, Isa, RowDot, RowDot4,
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
        })
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

    /// `row r · input row t`.
    #[inline]
    fn dot(&self, file: &[u8], r: usize, input: &Input, t: usize) -> f32 {
        let w = self.row(file, r);
        let c = self.cols;
        match self.dot {
            RowDot::Q8_0(f) => f(w, &input.q8_0[t * c / 32..(t + 1) * c / 32]),
            RowDot::Q8_1(f) => f(w, &input.q8_1[t * c / 32..(t + 1) * c / 32]),
            RowDot::Q8K(f) => f(w, &input.q8k[t * c / 256..(t + 1) * c / 256]),
            RowDot::F32(f) => f(self.ty, w, &input.x[t * c..(t + 1) * c]),
        }
    }
}

impl Matrix {
    /// `row r · input rows t..t+4`, or `None` without a four-token kernel.
    #[inline]
    fn dot4(&self, file: &[u8], r: usize, input: &Input, t: usize) -> Option<[f32; 4]> {
        let w = self.row(file, r);
        let b = self.cols / 32;
        Some(match self.dot4? {
            RowDot4::Q8_0(f) => {
                let a = |i: usize| &input.q8_0[(t + i) * b..(t + i + 1) * b];
                f(w, [a(0), a(1), a(2), a(3)])
            }
            RowDot4::Q8_1(f) => {
                let a = |i: usize| &input.q8_1[(t + i) * b..(t + i + 1) * b];
                f(w, [a(0), a(1), a(2), a(3)])
            }
        })
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
    q8_0: Vec<BlockQ8_0>,
    q8_1: Vec<BlockQ8_1>,
    q8k: Vec<BlockQ8K>,
}

impl<'a> Input<'a> {
    pub fn new(x: &'a [f32], cols: usize) -> Input<'a> {
        debug_assert_eq!(x.len() % cols, 0);
        Input {
            x,
            n: x.len() / cols,
            cols,
            q8_0: Vec::new(),
            q8_1: Vec::new(),
            q8k: Vec::new(),
        }
    }

    /// Quantize the rows for `kind` unless already done.
    pub fn prepare(&mut self, kind: ActKind) {
        let (x, cols) = (self.x, self.cols);
        match kind {
            ActKind::Q8_0 if self.q8_0.is_empty() => {
                self.q8_0 = vec![ZERO_Q8_0; x.len() / 32];
                for (xr, qr) in x.chunks(cols).zip(self.q8_0.chunks_mut(cols / 32)) {
                    act::quantize_q8_0(xr, qr);
                }
            }
            ActKind::Q8_1 if self.q8_1.is_empty() => {
                self.q8_1 = vec![ZERO_Q8_1; x.len() / 32];
                for (xr, qr) in x.chunks(cols).zip(self.q8_1.chunks_mut(cols / 32)) {
                    act::quantize_q8_1(xr, qr);
                }
            }
            ActKind::Q8K if self.q8k.is_empty() => {
                self.q8k = vec![ZERO_Q8K; x.len() / 256];
                for (xr, qr) in x.chunks(cols).zip(self.q8k.chunks_mut(cols / 256)) {
                    act::quantize_q8_k(xr, qr);
                }
            }
            _ => {}
        }
    }
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

/// Token tile: a tile's quantized activations stay in L2 while a job's rows pass over
/// them.
const TOKEN_TILE: usize = 32;

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
        input.prepare(m.act_kind());
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
        for t0 in (0..n).step_by(TOKEN_TILE) {
            let t1 = (t0 + TOKEN_TILE).min(n);
            for r in r0..r0 + len {
                let mut t = t0;
                while t + 4 <= t1 {
                    let Some(v) = m.dot4(file, r, input, t) else {
                        break;
                    };
                    for (k, v) in v.into_iter().enumerate() {
                        // SAFETY: rows r0..r0+len of matrix i belong to this job alone.
                        unsafe { out.write((t + k) * m.rows + r, v) };
                    }
                    t += 4;
                }
                for t in t..t1 {
                    let v = m.dot(file, r, input, t);
                    // SAFETY: as above.
                    unsafe { out.write(t * m.rows + r, v) };
                }
            }
        }
    });
}
