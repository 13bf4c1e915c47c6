//! The engine's view of the kernel library: which specialised kernels a model needs,
//! compiled once through the pipeline cache, and the byte layout of each kernel's
//! parameters (the one place that knows them).

use crate::gpu::kernel::u32_bytes;
use crate::gpu::{GpuContext, Kernel, MatLayout, PipelineCache};
use crate::quant::GgmlType;
use crate::Error;
use std::sync::Arc;
use wisp_shaders::ops::OpsVariant;
use wisp_shaders::quant::MatVariant;

/// Little-endian bytes of a list of 4-byte fields.
pub fn fields(values: &[Field]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| match *v {
            Field::U(x) => x.to_le_bytes(),
            Field::F(x) => x.to_le_bytes(),
        })
        .collect()
}

/// One 4-byte field of a params struct.
#[derive(Clone, Copy)]
pub enum Field {
    U(u32),
    F(f32),
}

/// Params of matvec / matmul (see `wisp_shaders::quant`).
#[allow(clippy::too_many_arguments)]
pub fn mat_params(
    rows: u64,
    cols: u64,
    n_tokens: u32,
    x_offset: u32,
    x_stride: u32,
    y_offset: u32,
    y_stride: u32,
    accumulate: bool,
) -> Vec<u8> {
    u32_bytes(&[
        rows as u32,
        cols as u32,
        n_tokens,
        x_offset,
        x_stride,
        y_offset,
        y_stride,
        accumulate as u32,
    ])
}

/// Workgroup counts of a matrix kernel for (rows, tokens).
pub type MatGroups = fn(u32, u32) -> (u32, u32, u32);

/// Kernels keyed by what they are specialised on.
pub struct Kernels {
    cache: PipelineCache,
    pub f16: bool,
    pub layout: MatLayout,
}

impl Kernels {
    pub fn new(f16: bool, layout: MatLayout) -> Kernels {
        Kernels {
            cache: PipelineCache::default(),
            f16,
            layout,
        }
    }

    /// The kernel computing `y (+)= W x` for weights of type `ty`, and its workgroup
    /// counts: the decode mat-vec for one token, the prefill kernel for a batch, in the
    /// device's layout (the row kernels are specialised on the column count's alignment).
    pub fn for_weights(
        &self,
        ctx: &GpuContext,
        ty: GgmlType,
        cols: u64,
        batched: bool,
    ) -> Result<(Arc<Kernel>, MatGroups), Error> {
        use wisp_shaders::quant as q;
        match (self.layout, batched) {
            (MatLayout::Coalesced, false) => {
                Ok((self.matvec_single(ctx, ty)?, q::matvec_single_groups))
            }
            (MatLayout::Coalesced, true) => Ok((self.matmul(ctx, ty)?, q::matmul_groups)),
            (MatLayout::RowPerInvocation, single) => {
                let single = !single;
                let align = q::rows_align(ty.name(), cols as u32, single);
                // Subgroup variants where the device runs subgroups of 8 or more lanes
                // (`DeviceOptions::no_subgroups` turns them off).
                let tex = ctx.caps.weights_in_textures();
                let sg_src = (ctx.caps.subgroup_min_size >= q::MATVEC_ROWS_SG_MIN)
                    .then(|| q::matvec_rows_sg(ty.name(), single, align, tex))
                    .flatten();
                let sg = sg_src.is_some();
                let src = sg_src
                    .or_else(|| q::matvec_rows(ty.name(), single, align, tex))
                    .ok_or_else(|| Error::Unsupported(format!("no GPU mat-vec kernel for {ty}")))?;
                let kernel = self.cache.get_or_compile(
                    ctx,
                    &format!(
                        "matvec_rows{}{}_{ty}{}{}",
                        if single { "1" } else { "" },
                        if sg { "_sg" } else { "" },
                        if align > 0 {
                            format!("_a{align}")
                        } else {
                            String::new()
                        },
                        if tex { "_tex" } else { "" }
                    ),
                    || src,
                )?;
                let groups: MatGroups = if single {
                    |r, n| q::matvec_rows_groups(r, n, true)
                } else {
                    |r, n| q::matvec_rows_groups(r, n, false)
                };
                Ok((kernel, groups))
            }
        }
    }

    fn ops(&self) -> OpsVariant {
        OpsVariant {
            f16: self.f16,
            small_groups: self.layout == MatLayout::RowPerInvocation,
        }
    }

    fn mat(&self) -> MatVariant {
        MatVariant { f16: self.f16 }
    }

    pub fn matvec(&self, ctx: &GpuContext, ty: GgmlType) -> Result<Arc<Kernel>, Error> {
        let src = wisp_shaders::quant::matvec(ty.name(), &self.mat())
            .ok_or_else(|| Error::Unsupported(format!("no GPU mat-vec kernel for {ty}")))?;
        self.cache
            .get_or_compile(ctx, &format!("matvec_{ty}_{}", self.f16), || src)
    }

    /// The mat-vec for exactly one token (decode).
    pub fn matvec_single(&self, ctx: &GpuContext, ty: GgmlType) -> Result<Arc<Kernel>, Error> {
        let src = wisp_shaders::quant::matvec_single(ty.name())
            .ok_or_else(|| Error::Unsupported(format!("no GPU mat-vec kernel for {ty}")))?;
        self.cache
            .get_or_compile(ctx, &format!("matvec1_{ty}"), || src)
    }

    pub fn matmul(&self, ctx: &GpuContext, ty: GgmlType) -> Result<Arc<Kernel>, Error> {
        let src = wisp_shaders::quant::matmul(ty.name(), &self.mat())
            .ok_or_else(|| Error::Unsupported(format!("no GPU mat-mul kernel for {ty}")))?;
        self.cache
            .get_or_compile(ctx, &format!("matmul_{ty}_{}", self.f16), || src)
    }

    pub fn get_rows(&self, ctx: &GpuContext, ty: GgmlType) -> Result<Arc<Kernel>, Error> {
        let tex = ctx.caps.weights_in_textures();
        let src = wisp_shaders::quant::get_rows(ty.name(), tex)
            .ok_or_else(|| Error::Unsupported(format!("no GPU embedding kernel for {ty}")))?;
        let key = format!("get_rows_{ty}{}", if tex { "_tex" } else { "" });
        self.cache.get_or_compile(ctx, &key, || src)
    }

    /// The barrier-free attention for CPU-backed devices with subgroups
    /// (`wisp_shaders::ops::attention_rows`), when this device and these head dims suit
    /// it; None: use the portable `attention` op.
    pub fn attention_rows(
        &self,
        ctx: &GpuContext,
        head_dim_k: u32,
        head_dim_v: u32,
    ) -> Result<Option<Arc<Kernel>>, Error> {
        use wisp_shaders::{ops, quant};
        if self.layout != MatLayout::RowPerInvocation
            || ctx.caps.subgroup_min_size < quant::MATVEC_ROWS_SG_MIN
            || !ops::attention_rows_supported(head_dim_k, head_dim_v)
        {
            return Ok(None);
        }
        let key = format!("attention_rows_{head_dim_k}_{head_dim_v}");
        self.cache
            .get_or_compile(ctx, &key, || ops::attention_rows(head_dim_k, head_dim_v))
            .map(Some)
    }

    /// A kernel of the ops family by name.
    pub fn op(&self, ctx: &GpuContext, name: &str) -> Result<Arc<Kernel>, Error> {
        let v = self.ops();
        let key = format!("{name}_{}", self.f16);
        self.cache.get_or_compile(ctx, &key, || match name {
            "rms_norm" => wisp_shaders::ops::rms_norm(&v),
            "rms_norm_inplace" => wisp_shaders::ops::rms_norm_inplace(&v),
            "rms_norm_add" => wisp_shaders::ops::rms_norm_add(&v),
            "rms_norm_inplace_qk" => wisp_shaders::ops::rms_norm_inplace_qk(&v),
            "rope_qk" => wisp_shaders::ops::rope_qk(&v, false),
            "rope_qk_factors" => wisp_shaders::ops::rope_qk(&v, true),
            "kv_store_kv" => wisp_shaders::ops::kv_store_kv(&v),
            "attention" => wisp_shaders::ops::attention(&v),
            "attention_combine" => wisp_shaders::ops::attention_combine(&v),
            "argmax_reduce" => wisp_shaders::ops::argmax_reduce(&v),
            "top_k_merge" => wisp_shaders::ops::top_k_merge(&v),
            "glu_silu" => wisp_shaders::ops::glu(&v, "silu"),
            "glu_gelu" => wisp_shaders::ops::glu(&v, "gelu"),
            "split_qkv" => wisp_shaders::ops::split_qkv(&v, false),
            "split_qkv_bias" => wisp_shaders::ops::split_qkv(&v, true),
            "glu_pair_silu" => wisp_shaders::ops::glu_pair(&v, "silu"),
            "glu_pair_gelu" => wisp_shaders::ops::glu_pair(&v, "gelu"),
            "add_bias" => wisp_shaders::ops::add_bias(&v),
            "argmax" => wisp_shaders::ops::argmax(&v),
            "top_k" => wisp_shaders::ops::top_k(&v),
            "softcap" => wisp_shaders::ops::softcap(&v),
            other => panic!("unknown op kernel {other}"),
        })
    }

    pub fn compiled(&self) -> usize {
        self.cache.len()
    }
}
