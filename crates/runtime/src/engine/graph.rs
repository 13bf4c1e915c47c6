//! A recorded sequence of dispatches with its bind groups built once, and the small
//! parameter buffers that change between calls (token count, position).
//!
//! Parameters are functions of the call ([`StepArgs`]); before a submission each slot's
//! bytes are recomputed and written only when they changed, so a decode step writes a
//! handful of 32-byte uniforms (positions) and nothing else.

use super::model::WeightStore;
use crate::gpu::{GpuContext, Kernel};
use std::sync::Arc;

/// What varies between calls of a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepArgs {
    /// Tokens evaluated in this call.
    pub n_tokens: u32,
    /// Position of the first of them.
    pub pos0: u32,
}

type ParamsFn = Box<dyn Fn(StepArgs) -> Vec<u8> + Send + Sync>;
type GroupsFn = Box<dyn Fn(StepArgs) -> (u32, u32, u32) + Send + Sync>;

struct ParamSlot {
    buffer: wgpu::Buffer,
    make: ParamsFn,
    last: Option<Vec<u8>>,
}

struct Step {
    kernel: Arc<Kernel>,
    bind: wgpu::BindGroup,
    groups: GroupsFn,
}

/// Dispatches in order, ready to be encoded into a compute pass.
#[derive(Default)]
pub struct Graph {
    steps: Vec<Step>,
    slots: Vec<ParamSlot>,
    keys: Vec<String>,
}

/// Where a step's params come from.
pub enum Params {
    /// A slot shared by every step built with the same key (same function of the args).
    Shared(String, ParamsFn),
    /// Fixed bytes.
    Fixed(Vec<u8>),
}

impl Graph {
    /// Add a dispatch whose params are its last binding: `buffers` are bound to 0, 1, ….
    pub fn push(
        &mut self,
        ctx: &GpuContext,
        kernel: &Arc<Kernel>,
        buffers: &[&wgpu::Buffer],
        params: Params,
        groups: impl Fn(StepArgs) -> (u32, u32, u32) + Send + Sync + 'static,
    ) {
        self.push_around(ctx, kernel, buffers, params, &[], groups)
    }

    /// Add a dispatch binding `before`, then the params buffer, then `after`.
    pub fn push_around(
        &mut self,
        ctx: &GpuContext,
        kernel: &Arc<Kernel>,
        before: &[&wgpu::Buffer],
        params: Params,
        after: &[&wgpu::Buffer],
        groups: impl Fn(StepArgs) -> (u32, u32, u32) + Send + Sync + 'static,
    ) {
        let before = before.iter().map(|b| b.as_entire_binding()).collect();
        self.push_resources(ctx, kernel, before, params, after, groups)
    }

    /// [`Graph::push`] for a kernel over a weight chunk: `weights` at binding 0 (a buffer
    /// or a texture), then `buffers`, then the params.
    pub fn push_weights(
        &mut self,
        ctx: &GpuContext,
        kernel: &Arc<Kernel>,
        weights: &WeightStore,
        buffers: &[&wgpu::Buffer],
        params: Params,
        groups: impl Fn(StepArgs) -> (u32, u32, u32) + Send + Sync + 'static,
    ) {
        let mut before = vec![weights.binding()];
        before.extend(buffers.iter().map(|b| b.as_entire_binding()));
        self.push_resources(ctx, kernel, before, params, &[], groups)
    }

    fn push_resources(
        &mut self,
        ctx: &GpuContext,
        kernel: &Arc<Kernel>,
        before: Vec<wgpu::BindingResource<'_>>,
        params: Params,
        after: &[&wgpu::Buffer],
        groups: impl Fn(StepArgs) -> (u32, u32, u32) + Send + Sync + 'static,
    ) {
        let slot = match params {
            Params::Shared(key, make) => match self.keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    self.keys.push(key);
                    self.slots.push(ParamSlot {
                        buffer: ctx.uniform_init("params", &[0; 64]),
                        make,
                        last: None,
                    });
                    self.slots.len() - 1
                }
            },
            Params::Fixed(bytes) => {
                self.keys.push(String::new());
                self.slots.push(ParamSlot {
                    buffer: ctx.uniform_init("params", &bytes),
                    make: Box::new(move |_| bytes.clone()),
                    last: None,
                });
                self.slots.len() - 1
            }
        };
        let mut all = before;
        all.push(self.slots[slot].buffer.as_entire_binding());
        all.extend(after.iter().map(|b| b.as_entire_binding()));
        let bind = ctx.bind_resources(kernel, all);
        self.steps.push(Step {
            kernel: Arc::clone(kernel),
            bind,
            groups: Box::new(groups),
        });
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Write the params that changed (queued before the next submission).
    pub fn write_params(&mut self, queue: &wgpu::Queue, args: StepArgs) {
        for slot in &mut self.slots {
            let bytes = (slot.make)(args);
            if slot.last.as_ref() != Some(&bytes) {
                let mut padded = bytes.clone();
                padded.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
                queue.write_buffer(&slot.buffer, 0, &padded);
                slot.last = Some(bytes);
            }
        }
    }

    /// Record every dispatch in a pass of its own whose start and end are written to
    /// `queries` from index `first` (two per dispatch, at most `max` dispatches); returns
    /// the kernel names in order. For profiling only: a pass per dispatch costs time.
    pub fn encode_timed(
        &self,
        enc: &mut wgpu::CommandEncoder,
        args: StepArgs,
        queries: &wgpu::QuerySet,
        first: u32,
        max: u32,
    ) -> Vec<String> {
        let mut names = Vec::new();
        for step in &self.steps {
            let g = (step.groups)(args);
            if g.0 == 0 || g.1 == 0 || g.2 == 0 || names.len() as u32 >= max {
                continue;
            }
            let at = first + 2 * names.len() as u32;
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&step.kernel.name),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: queries,
                    beginning_of_pass_write_index: Some(at),
                    end_of_pass_write_index: Some(at + 1),
                }),
            });
            pass.set_pipeline(&step.kernel.pipeline);
            pass.set_bind_group(0, &step.bind, &[]);
            pass.dispatch_workgroups(g.0, g.1, g.2);
            names.push(step.kernel.name.clone());
        }
        names
    }

    /// Record every dispatch into `pass`; returns how many were recorded.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, args: StepArgs) -> usize {
        let mut n = 0;
        for step in &self.steps {
            let g = (step.groups)(args);
            if g.0 == 0 || g.1 == 0 || g.2 == 0 {
                continue;
            }
            pass.set_pipeline(&step.kernel.pipeline);
            pass.set_bind_group(0, &step.bind, &[]);
            pass.dispatch_workgroups(g.0, g.1, g.2);
            n += 1;
        }
        n
    }
}
