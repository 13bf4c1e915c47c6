//! The non-matmul kernels of the forward pass and of sampling: RMSNorm, RoPE, KV-cache
//! store, attention (split-K flash decoding + combine), gated activations, adds,
//! soft-capping, argmax and top-k.
//!
//! Every kernel here has the same shape: activations are f32 in `array<f32>` storage
//! buffers, bindings are `@group(0)` numbered 0.. in the order documented on each source
//! function, the last binding (or the one named) is a uniform params struct whose fields
//! are all 4 bytes (the `*Params` types below build its bytes, so layouts live in one
//! place), the entry point is `main`, the workgroup size is fixed (256 unless stated), and
//! a `*_groups` function gives the dispatch size. Dispatches that can exceed 65535
//! workgroups are 2-D ([`linear_groups`]); the kernels rebuild the flat index.
//!
//! f16: the KV cache always stores IEEE halves (2 bytes per element). With `shader-f16`
//! ([`OpsVariant::f16`]) kernels read it as `vec2<f16>`; without, as `u32` words through
//! `pack2x16float` / `unpack2x16float`, which have the same byte layout. So the cache
//! costs the same memory on every device and a cache written by one variant reads the same
//! in the other. All arithmetic is f32: these kernels are bandwidth-bound, and f16
//! accumulation would cost accuracy for no speed.

use crate::preprocess;

const NORM: &str = include_str!("../wgsl/norm.wgsl");
const ROPE: &str = include_str!("../wgsl/rope.wgsl");
const KV: &str = include_str!("../wgsl/kv.wgsl");
const ATTENTION: &str = include_str!("../wgsl/attention.wgsl");
const SPLIT: &str = include_str!("../wgsl/split.wgsl");
const ATTENTION_ROWS_SRC: &str = include_str!("../wgsl/attention_rows.wgsl");
const ATTENTION_SHARED: &str = include_str!("../wgsl/attention_shared.wgsl");
const ELEMENTWISE: &str = include_str!("../wgsl/elementwise.wgsl");
const ARGMAX: &str = include_str!("../wgsl/argmax.wgsl");
const TOPK: &str = include_str!("../wgsl/topk.wgsl");

/// Which device features a kernel may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpsVariant {
    /// `shader-f16` granted: read the KV cache as `f16`.
    pub f16: bool,
    /// CPU-backed device (lavapipe, SwiftShader): the reductions (RMSNorm, argmax) run
    /// 8-invocation workgroups, one SIMD vector of a CPU core, where a barrier of a
    /// 256-invocation workgroup switches 32 coroutines per level. Measured on lavapipe:
    /// see `wgsl/norm.wgsl`.
    pub small_groups: bool,
}

/// Largest workgroup count per dimension under WebGPU default limits.
pub const MAX_GROUPS_PER_DIM: u32 = 65535;

/// `n` workgroups as a dispatch that respects the 65535 per-dimension limit: (n, 1, 1),
/// or (65535, ceil(n / 65535), 1). Kernels compute `wid.x + wid.y * num_workgroups.x`
/// and ignore the excess.
pub fn linear_groups(n: u32) -> (u32, u32, u32) {
    if n <= MAX_GROUPS_PER_DIM {
        (n.max(1), 1, 1)
    } else {
        (MAX_GROUPS_PER_DIM, n.div_ceil(MAX_GROUPS_PER_DIM), 1)
    }
}

fn build(src: &str, v: &OpsVariant, defines: &[&str]) -> String {
    let mut d = defines.to_vec();
    if v.f16 {
        d.push("F16");
        format!("enable f16;\n{}", preprocess(src, &d))
    } else {
        preprocess(src, &d)
    }
}

/// f32-only kernels: the variant does not change them.
fn build_f32(src: &str, defines: &[&str]) -> String {
    preprocess(src, defines)
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

// ---------------------------------------------------------------------------------------
// RMSNorm

/// RMSNorm of rows: bindings 0 `x` (read), 1 `weight` (read, `n` values), 2 `out`
/// (read_write), 3 params ([`RmsNormParams`]). One workgroup per row.
pub fn rms_norm(v: &OpsVariant) -> String {
    build_f32(NORM, &small(v, &[]))
}

/// `defines` plus SMALL_WG for [`OpsVariant::small_groups`].
fn small<'a>(v: &OpsVariant, defines: &[&'a str]) -> Vec<&'a str> {
    let mut d = defines.to_vec();
    if v.small_groups {
        d.push("SMALL_WG");
    }
    d
}

/// RMSNorm in place (per-head Q/K norms): bindings 0 `x` (read_write), 1 `weight`
/// (read), 2 params ([`RmsNormParams`]; `out_offset` and `out_stride` are ignored).
pub fn rms_norm_inplace(v: &OpsVariant) -> String {
    build_f32(NORM, &small(v, &["INPLACE"]))
}

/// A post-norm and its residual add in one pass: bindings as [`rms_norm`], but `out`
/// (read_write) gains the normalised row: `out_row += norm(x_row) * weight`.
pub fn rms_norm_add(v: &OpsVariant) -> String {
    build_f32(NORM, &small(v, &["ADD"]))
}

/// The per-head norms of Q and K in one dispatch, in place: bindings 0 `q`, 1 Q's weight,
/// 2 `k`, 3 K's weight, 4 params ([`RmsNormParams::bytes_qk`]); Q's rows, then K's
/// (same `n`, offset and stride). Dispatch `rms_norm_groups(q rows + k rows)`.
pub fn rms_norm_inplace_qk(v: &OpsVariant) -> String {
    build_f32(NORM, &small(v, &["INPLACE", "INPLACE_QK"]))
}

pub fn rms_norm_groups(n_rows: u32) -> (u32, u32, u32) {
    linear_groups(n_rows)
}

/// Params of [`rms_norm`] / [`rms_norm_inplace`]. Layout (8 × 4 bytes):
/// `n: u32, n_rows: u32, eps: f32, x_offset: u32, out_offset: u32, x_stride: u32,
/// out_stride: u32, _pad: u32`. Row `r` is `x[x_offset + r * x_stride ..][..n]`
/// (offsets and strides in elements).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsNormParams {
    pub n: u32,
    pub n_rows: u32,
    pub eps: f32,
    pub x_offset: u32,
    pub out_offset: u32,
    pub x_stride: u32,
    pub out_stride: u32,
}

impl RmsNormParams {
    /// Packed rows of `n` starting at element 0 of both buffers.
    pub fn rows(n: u32, n_rows: u32, eps: f32) -> Self {
        RmsNormParams {
            n,
            n_rows,
            eps,
            x_offset: 0,
            out_offset: 0,
            x_stride: n,
            out_stride: n,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        words(&[
            self.n,
            self.n_rows,
            self.eps.to_bits(),
            self.x_offset,
            self.out_offset,
            self.x_stride,
            self.out_stride,
            0,
        ])
    }

    /// Params of [`rms_norm_inplace_qk`]: these rows of Q, then `rows_k` rows of K.
    pub fn bytes_qk(&self, rows_k: u32) -> Vec<u8> {
        let mut b = self.bytes();
        b[28..32].copy_from_slice(&rows_k.to_le_bytes());
        b
    }
}

// ---------------------------------------------------------------------------------------
// RoPE

/// Rotary embedding in place: bindings 0 `data` (read_write, `[token][head][head_dim]`),
/// 1 params ([`RopeParams`]). One invocation per rotated pair.
pub fn rope(_v: &OpsVariant) -> String {
    build_f32(ROPE, &[])
}

/// RoPE with per-pair frequency divisors: bindings 0 `data`, 1 params ([`RopeParams`]),
/// 2 `factors` (read, f32, `n_rot / 2`). Pair i turns `factors[i]` times slower.
pub fn rope_factors(_v: &OpsVariant) -> String {
    build_f32(ROPE, &["FACTORS"])
}

/// RoPE of Q and K in one dispatch: bindings 0 `q`, 1 `k` (both read_write), 2 params
/// ([`RopeParams::bytes_qk`]), (FACTORS: 3 `factors`).
pub fn rope_qk(_v: &OpsVariant, factors: bool) -> String {
    build_f32(ROPE, if factors { &["QK", "FACTORS"] } else { &["QK"] })
}

pub fn rope_groups(n_heads: u32, n_tokens: u32, n_rot: u32) -> (u32, u32, u32) {
    linear_groups((n_rot / 2 * n_heads * n_tokens).div_ceil(256))
}

/// Params of [`rope`]. Layout (12 × 4 bytes): `head_dim: u32, n_heads: u32,
/// n_tokens: u32, n_rot: u32, pos0: u32, base: f32, freq_scale: f32, neox: u32,
/// offset: u32, token_stride: u32, _pad: u32, _pad: u32`. Token `t` (at position
/// `pos0 + t`) starts at element `offset + t * token_stride`; head `h` at
/// `+ h * head_dim`. `neox` 0: pairs (2i, 2i+1); 1: pairs (i, i + n_rot/2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeParams {
    pub head_dim: u32,
    pub n_heads: u32,
    pub n_tokens: u32,
    pub n_rot: u32,
    pub pos0: u32,
    pub base: f32,
    pub freq_scale: f32,
    pub neox: bool,
    pub offset: u32,
    pub token_stride: u32,
}

impl RopeParams {
    pub fn bytes(&self) -> Vec<u8> {
        words(&[
            self.head_dim,
            self.n_heads,
            self.n_tokens,
            self.n_rot,
            self.pos0,
            self.base.to_bits(),
            self.freq_scale.to_bits(),
            self.neox as u32,
            self.offset,
            self.token_stride,
            0,
            0,
        ])
    }

    /// Params of [`rope_qk`]: these Q heads, then `k_heads` heads of K (packed, from
    /// element 0). Dispatch `rope_groups(n_heads + k_heads, ..)`.
    pub fn bytes_qk(&self, k_heads: u32) -> Vec<u8> {
        let mut b = self.bytes();
        b[40..44].copy_from_slice(&k_heads.to_le_bytes());
        b
    }
}

// ---------------------------------------------------------------------------------------
// KV cache

/// Store rows into the KV cache: bindings 0 `src` (read, f32), 1 `cache` (read_write,
/// 2-byte halves, `[pos][dim]`), 2 params ([`KvStoreParams`]). `dim` must be even.
pub fn kv_store(v: &OpsVariant) -> String {
    build(KV, v, &[])
}

/// K and V rows into their caches in one dispatch: bindings 0 `k`, 1 `v` (read, packed
/// `[token][dim]`), 2 K cache, 3 V cache, 4 params ([`KvStoreParams::bytes_kv`]).
pub fn kv_store_kv(v: &OpsVariant) -> String {
    build(KV, v, &["KV2"])
}

pub fn kv_store_kv_groups(dim_k: u32, dim_v: u32, n_tokens: u32) -> (u32, u32, u32) {
    linear_groups(((dim_k + dim_v) / 2 * n_tokens).div_ceil(256))
}

pub fn kv_store_groups(dim: u32, n_tokens: u32) -> (u32, u32, u32) {
    linear_groups((dim / 2 * n_tokens).div_ceil(256))
}

/// Bytes of a KV cache of `n_ctx` rows of `dim` elements (one of K or V, one layer).
pub fn kv_cache_bytes(n_ctx: u32, dim: u32) -> u64 {
    n_ctx as u64 * dim as u64 * 2
}

/// Params of [`kv_store`]. Layout (8 × 4 bytes): `dim: u32, n_tokens: u32, pos0: u32,
/// src_offset: u32, src_stride: u32, _pad × 3`. Token `t` is read from
/// `src[src_offset + t * src_stride ..][..dim]` and written to cache row `pos0 + t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvStoreParams {
    pub dim: u32,
    pub n_tokens: u32,
    pub pos0: u32,
    pub src_offset: u32,
    pub src_stride: u32,
}

impl KvStoreParams {
    pub fn bytes(&self) -> Vec<u8> {
        words(&[
            self.dim,
            self.n_tokens,
            self.pos0,
            self.src_offset,
            self.src_stride,
            0,
            0,
            0,
        ])
    }

    /// Params of [`kv_store_kv`]: `dim` is K's row, `dim_v` V's (both packed).
    pub fn bytes_kv(&self, dim_v: u32) -> Vec<u8> {
        let mut b = self.bytes();
        b[20..24].copy_from_slice(&dim_v.to_le_bytes());
        b
    }
}

// ---------------------------------------------------------------------------------------
// Attention

/// Query rows per attention workgroup (matches `RMAX` in attention.wgsl).
pub const ATTENTION_ROWS: u32 = 8;
/// Largest head dimension the attention kernels take (workgroup-memory Q tile).
pub const ATTENTION_MAX_HEAD_DIM: u32 = 256;

/// Attention (first pass): bindings 0 `q` (read, f32 `[n_tokens][n_head][head_dim_k]`),
/// 1 `k_cache` (read, halves `[pos][n_head_kv][head_dim_k]`), 2 `v_cache` (read, halves
/// `[pos][n_head_kv][head_dim_v]`), 3 `out` (read_write, f32
/// `[n_tokens][n_head][head_dim_v]`), 4 params ([`AttentionParams`]), 5 `scratch`
/// (read_write f32, [`AttentionPlan::scratch_f32s`]; any small buffer when `n_splits` is
/// 1). With `n_splits > 1` the output goes to `scratch` and [`attention_combine`] must
/// follow.
pub fn attention(v: &OpsVariant) -> String {
    build(&format!("{ATTENTION_SHARED}{ATTENTION}"), v, &[])
}

/// Attention (second pass, only when `n_splits > 1`): bindings 0 `scratch` (read),
/// 1 `out` (read_write), 2 params (the same [`AttentionParams`] bytes). Workgroup 128.
pub fn attention_combine(_v: &OpsVariant) -> String {
    build_f32(&format!("{ATTENTION_SHARED}{ATTENTION}"), &["COMBINE"])
}

/// [`attention`] for CPU-backed devices with subgroups of at least 8 lanes (native only):
/// one 8-lane workgroup per (split, query row), no workgroup memory or barriers. Same
/// bindings, params and split scratch (so [`attention_combine`] follows it the same way);
/// dispatch [`attention_rows_groups`]. Only for head dims that are multiples of 64
/// ([`attention_rows_supported`]).
pub fn attention_rows(head_dim_k: u32, head_dim_v: u32) -> String {
    format!(
        "const DK: u32 = {head_dim_k}u;\nconst DV: u32 = {head_dim_v}u;\n{}",
        build_f32(&format!("{ATTENTION_SHARED}{ATTENTION_ROWS_SRC}"), &[])
    )
}

/// Whether [`attention_rows`] handles these head dims.
pub fn attention_rows_supported(head_dim_k: u32, head_dim_v: u32) -> bool {
    head_dim_k.is_multiple_of(64)
        && head_dim_v.is_multiple_of(64)
        && head_dim_k <= ATTENTION_MAX_HEAD_DIM
        && head_dim_v <= ATTENTION_MAX_HEAD_DIM
}

/// Dispatch of [`attention_rows`] for a call planned by [`attention_plan`]:
/// (splits, query rows over y/z).
pub fn attention_rows_groups(plan: &AttentionPlan, n_head: u32, n_tokens: u32) -> (u32, u32, u32) {
    let rows = (n_head * n_tokens).max(1);
    let y = rows.min(MAX_GROUPS_PER_DIM);
    (plan.n_splits, y, rows.div_ceil(y))
}

/// How one attention call is spread over workgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionPlan {
    /// Keys per split.
    pub split_len: u32,
    /// Splits of the key range (1: single pass, no combine).
    pub n_splits: u32,
    /// Dispatch of [`attention`]: (n_splits, n_head_kv, query-row blocks).
    pub groups: (u32, u32, u32),
    /// Dispatch of [`attention_combine`], if needed.
    pub combine_groups: Option<(u32, u32, u32)>,
    /// f32 elements of scratch this call writes (0 if `n_splits` is 1).
    pub scratch_f32s: u64,
}

/// Aim for about this many workgroups before splitting keys further.
const ATTENTION_TARGET_GROUPS: u32 = 128;
const ATTENTION_MAX_SPLITS: u32 = 64;
/// Fewest keys worth a split of their own.
const ATTENTION_MIN_SPLIT: u32 = 64;

/// Plan an attention call of `n_tokens` queries at positions `pos0..` (keys
/// `0..pos0 + n_tokens`). Keys are split only while there are fewer than ~128
/// workgroups, so decode splits long contexts and big prefills run in one pass.
pub fn attention_plan(
    n_head: u32,
    n_head_kv: u32,
    head_dim_v: u32,
    n_tokens: u32,
    pos0: u32,
) -> AttentionPlan {
    assert!(
        n_head_kv > 0 && n_head / n_head_kv * n_head_kv == n_head,
        "n_head must be a multiple of n_head_kv"
    );
    let g = n_head / n_head_kv;
    let blocks = (n_tokens * g).div_ceil(ATTENTION_ROWS);
    let kv_len = pos0 + n_tokens;
    let base = n_head_kv * blocks;
    let mut n_splits = if base >= ATTENTION_TARGET_GROUPS {
        1
    } else {
        ATTENTION_TARGET_GROUPS
            .div_ceil(base)
            .min(ATTENTION_MAX_SPLITS)
            .min(kv_len.div_ceil(ATTENTION_MIN_SPLIT))
            .max(1)
    };
    let split_len = kv_len.div_ceil(n_splits);
    n_splits = kv_len.div_ceil(split_len);
    let scratch_f32s = if n_splits > 1 {
        n_tokens as u64 * n_head as u64 * n_splits as u64 * (head_dim_v as u64 + 2)
    } else {
        0
    };
    AttentionPlan {
        split_len,
        n_splits,
        groups: (n_splits, n_head_kv, blocks),
        combine_groups: (n_splits > 1).then(|| linear_groups(n_tokens * n_head)),
        scratch_f32s,
    }
}

/// Dispatch of [`attention`] (see [`attention_plan`], which also gives the params).
pub fn attention_groups(
    n_head: u32,
    n_head_kv: u32,
    head_dim_v: u32,
    n_tokens: u32,
    pos0: u32,
) -> (u32, u32, u32) {
    attention_plan(n_head, n_head_kv, head_dim_v, n_tokens, pos0).groups
}

/// Upper bound of [`AttentionPlan::scratch_f32s`] over every call (splitting happens only
/// with fewer than 128 workgroups, which bounds rows × splits by 2048): size the scratch
/// buffer once with this.
pub fn attention_scratch_max_f32s(head_dim_v: u32) -> u64 {
    2 * ATTENTION_TARGET_GROUPS as u64 * ATTENTION_ROWS as u64 * (head_dim_v as u64 + 2)
}

/// Params of [`attention`] and [`attention_combine`]. Layout (12 × 4 bytes):
/// `n_head: u32, n_head_kv: u32, head_dim_k: u32, head_dim_v: u32, n_tokens: u32,
/// pos0: u32, window: u32, scale: f32, split_len: u32, n_splits: u32, softcap: f32,
/// _pad: u32`. Query `t` is at position `pos0 + t` and sees keys `first..=pos0 + t`,
/// `first = pos + 1 - window` when `window > 0` (and the position exceeds it), else 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim_k: u32,
    pub head_dim_v: u32,
    pub n_tokens: u32,
    pub pos0: u32,
    pub window: u32,
    pub scale: f32,
    pub split_len: u32,
    pub n_splits: u32,
    /// Score soft-capping (0: none), see [`AttentionParams::with_softcap`].
    pub softcap: f32,
}

impl AttentionParams {
    /// Params for `plan` (from [`attention_plan`] with the same shape).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n_head: u32,
        n_head_kv: u32,
        head_dim_k: u32,
        head_dim_v: u32,
        n_tokens: u32,
        pos0: u32,
        window: u32,
        scale: f32,
        plan: &AttentionPlan,
    ) -> Self {
        assert!(head_dim_k <= ATTENTION_MAX_HEAD_DIM && head_dim_v <= ATTENTION_MAX_HEAD_DIM);
        assert!((head_dim_k | head_dim_v) & 1 == 0, "head dims must be even");
        AttentionParams {
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_tokens,
            pos0,
            window,
            scale,
            split_len: plan.split_len,
            n_splits: plan.n_splits,
            softcap: 0.0,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        words(&[
            self.n_head,
            self.n_head_kv,
            self.head_dim_k,
            self.head_dim_v,
            self.n_tokens,
            self.pos0,
            self.window,
            self.scale.to_bits(),
            self.split_len,
            self.n_splits,
            self.softcap.to_bits(),
            0,
        ])
    }

    /// Soft-cap the scaled scores: `cap * tanh(s / cap)` (Gemma 2: 50; 0: off).
    pub fn with_softcap(mut self, cap: f32) -> Self {
        self.softcap = cap;
        self
    }
}

// ---------------------------------------------------------------------------------------
// Element-wise

/// Gated activation: bindings 0 `gate` (read_write; the result is written here), 1 `up`
/// (read), 2 params ([`ElementwiseParams`]: `n`). `act` is `"silu"` or `"gelu"` (tanh
/// approximation).
pub fn glu(_v: &OpsVariant, act: &str) -> String {
    match act {
        "silu" => build_f32(ELEMENTWISE, &["GLU_SILU"]),
        "gelu" => build_f32(ELEMENTWISE, &["GLU_GELU"]),
        other => panic!("unknown activation {other:?} (silu, gelu)"),
    }
}

/// [`glu`] over stacked rows: bindings 0 `x` (read_write, `[token][gate (period) | up
/// (period)]`), 1 params ([`ElementwiseParams::bias`]`(period * n_tokens, period)`); the
/// result replaces each row's gate half. Dispatch `glu_groups(period * n_tokens)`.
pub fn glu_pair(_v: &OpsVariant, act: &str) -> String {
    match act {
        "silu" => build_f32(ELEMENTWISE, &["GLU_SILU", "PAIR", "ONE_BUFFER"]),
        "gelu" => build_f32(ELEMENTWISE, &["GLU_GELU", "PAIR", "ONE_BUFFER"]),
        other => panic!("unknown activation {other:?} (silu, gelu)"),
    }
}

/// A stacked Q/K/V mat-vec's rows `[q | k | v]` into the Q, K and V buffers (and their
/// biases added, `bias`): bindings 0 `src` (read), 1 `q`, 2 `k`, 3 `v` (read_write),
/// (`bias`: 4 `[bq | bk | bv]`), then params ([`SplitParams`]).
pub fn split_qkv(_v: &OpsVariant, bias: bool) -> String {
    build_f32(SPLIT, if bias { &["BIAS"] } else { &[] })
}

pub fn split_qkv_groups(width: u32, n_tokens: u32) -> (u32, u32, u32) {
    elementwise_groups(width * n_tokens)
}

/// Params of [`split_qkv`] (16 bytes: `n`, `width`, `qd`, `kd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitParams {
    pub n_tokens: u32,
    pub qd: u32,
    pub kd: u32,
    pub vd: u32,
}

impl SplitParams {
    pub fn bytes(&self) -> Vec<u8> {
        let width = self.qd + self.kd + self.vd;
        words(&[width * self.n_tokens, width, self.qd, self.kd])
    }
}

/// `x[i] += bias[i % period]`: bindings 0 `x` (read_write), 1 `bias` (read), 2 params
/// ([`ElementwiseParams`]: `n`, `period`).
pub fn add_bias(_v: &OpsVariant) -> String {
    build_f32(ELEMENTWISE, &["ADD_BIAS"])
}

/// `a += b`: bindings 0 `a` (read_write), 1 `b` (read), 2 params ([`ElementwiseParams`]: `n`).
pub fn add(_v: &OpsVariant) -> String {
    build_f32(ELEMENTWISE, &["ADD"])
}

/// `x = cap * tanh(x / cap)`: bindings 0 `x` (read_write), 1 params
/// ([`ElementwiseParams::softcap`]).
pub fn softcap(_v: &OpsVariant) -> String {
    build_f32(ELEMENTWISE, &["SOFTCAP", "ONE_BUFFER"])
}

/// One invocation per element, 256 per workgroup.
pub fn elementwise_groups(n: u32) -> (u32, u32, u32) {
    linear_groups(n.div_ceil(256))
}

pub fn glu_groups(n: u32) -> (u32, u32, u32) {
    elementwise_groups(n)
}

pub fn add_groups(n: u32) -> (u32, u32, u32) {
    elementwise_groups(n)
}

pub fn add_bias_groups(n: u32) -> (u32, u32, u32) {
    elementwise_groups(n)
}

pub fn softcap_groups(n: u32) -> (u32, u32, u32) {
    elementwise_groups(n)
}

/// Params of the element-wise kernels. Layout (4 × 4 bytes): `n: u32, x: u32, _pad,
/// _pad`, where `x` is `period` (u32) for [`add_bias`], `cap` (f32 bits) for
/// [`softcap`], unused otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementwiseParams {
    pub n: u32,
    pub x: u32,
}

impl ElementwiseParams {
    pub fn n(n: u32) -> Self {
        ElementwiseParams { n, x: 0 }
    }

    pub fn bias(n: u32, period: u32) -> Self {
        ElementwiseParams { n, x: period }
    }

    pub fn softcap(n: u32, cap: f32) -> Self {
        ElementwiseParams {
            n,
            x: cap.to_bits(),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        words(&[self.n, self.x, 0, 0])
    }
}

// ---------------------------------------------------------------------------------------
// Sampling

/// Logits per workgroup of [`argmax`] (matches `CHUNK` in argmax.wgsl).
pub const ARGMAX_CHUNK: u32 = 4096;

/// Argmax, first pass: bindings 0 `logits` (read), 1 `out` (read_write `array<u32>`,
/// [`argmax_out_words`]), 2 params ([`SampleParams`]: `n`, `logits_offset`).
pub fn argmax(v: &OpsVariant) -> String {
    build_f32(ARGMAX, &small(v, &[]))
}

/// Argmax, second pass (one workgroup): bindings 0 `out` (read_write), 1 params (the same
/// bytes). Afterwards `out[0]` is the index (relative to `logits_offset`).
pub fn argmax_reduce(v: &OpsVariant) -> String {
    build_f32(ARGMAX, &small(v, &["REDUCE"]))
}

pub fn argmax_groups(n: u32) -> (u32, u32, u32) {
    (n.div_ceil(ARGMAX_CHUNK).max(1), 1, 1)
}

pub fn argmax_reduce_groups() -> (u32, u32, u32) {
    (1, 1, 1)
}

/// Words of the `out` buffer of [`argmax`]: the result and one (index, value) pair per
/// first-pass workgroup.
pub fn argmax_out_words(n: u32) -> u32 {
    1 + 2 * n.div_ceil(ARGMAX_CHUNK).max(1)
}

/// Largest k of [`top_k`].
pub const TOP_K_MAX: u32 = 64;

/// Top-k, first pass: bindings 0 `logits` (read), 1 `out` (read_write `array<u32>`,
/// [`top_k_out_words`]), 2 params ([`SampleParams`]: `n`, `logits_offset`, `k`,
/// `n_groups`).
pub fn top_k(_v: &OpsVariant) -> String {
    build_f32(TOPK, &[])
}

/// Top-k, second pass (one workgroup): bindings 0 `out` (read_write), 1 params (the same
/// bytes). Afterwards `out[2i]` is the i-th id and `out[2i + 1]` its logit's bits,
/// descending, ties to the lower id.
pub fn top_k_merge(_v: &OpsVariant) -> String {
    build_f32(TOPK, &["MERGE"])
}

/// First-pass workgroups of [`top_k`] for `n` logits (about 8192 logits each, at most 32
/// so the merge stays short).
pub fn top_k_n_groups(n: u32) -> u32 {
    n.div_ceil(8192).clamp(1, 32)
}

pub fn top_k_groups(n: u32) -> (u32, u32, u32) {
    (top_k_n_groups(n), 1, 1)
}

pub fn top_k_merge_groups() -> (u32, u32, u32) {
    (1, 1, 1)
}

/// Words of the `out` buffer of [`top_k`]: the result and one k-list per workgroup.
pub fn top_k_out_words(k: u32, n_groups: u32) -> u32 {
    2 * k * (1 + n_groups)
}

/// Params of [`argmax`] and [`top_k`] (and their second passes). Layout (4 × 4 bytes):
/// `n: u32, logits_offset: u32, k: u32, n_groups: u32` (argmax ignores the last two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleParams {
    pub n: u32,
    pub logits_offset: u32,
    pub k: u32,
    pub n_groups: u32,
}

impl SampleParams {
    pub fn argmax(n: u32, logits_offset: u32) -> Self {
        SampleParams {
            n,
            logits_offset,
            k: 0,
            n_groups: 0,
        }
    }

    /// `k` must be in 1..=64 and at most `n`.
    pub fn top_k(n: u32, logits_offset: u32, k: u32) -> Self {
        assert!(
            (1..=TOP_K_MAX).contains(&k) && k <= n,
            "top_k needs 1 <= k <= min(64, n)"
        );
        SampleParams {
            n,
            logits_offset,
            k,
            n_groups: top_k_n_groups(n),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        words(&[self.n, self.logits_offset, self.k, self.n_groups])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_split_decode_not_big_prefill() {
        let d = attention_plan(8, 4, 256, 1, 4095);
        assert!(d.n_splits > 1 && d.split_len * d.n_splits >= 4096);
        assert!(d.scratch_f32s <= attention_scratch_max_f32s(256));
        let p = attention_plan(32, 8, 128, 512, 0);
        assert_eq!(p.n_splits, 1);
        assert!(p.combine_groups.is_none());
        for (h, kv, t, pos) in [
            (14, 2, 37, 0),
            (4, 1, 1, 0),
            (24, 8, 3, 1000),
            (7, 1, 100, 50),
        ] {
            let pl = attention_plan(h, kv, 64, t, pos);
            assert!(pl.scratch_f32s <= attention_scratch_max_f32s(64));
            assert!((pl.n_splits - 1) * pl.split_len < pos + t);
        }
    }

    #[test]
    fn f16_variant_enables_f16() {
        let s = kv_store(&OpsVariant {
            f16: true,
            small_groups: false,
        });
        assert!(s.starts_with("enable f16;") && s.contains("alias CacheWord = vec2<f16>;"));
        let s = kv_store(&OpsVariant {
            f16: false,
            small_groups: false,
        });
        assert!(!s.contains("enable f16") && s.contains("alias CacheWord = u32;"));
    }
}
