//! Adapter and device creation, and the record of what the device granted.
//!
//! Wisp asks for the adapter's real limits (larger buffers, more storage bindings) unless
//! told to behave like the WebGPU spec floor (`webgpu_default_limits`), and for the
//! optional features it can use: `shader-f16`, `subgroups`, and (only when a benchmark
//! asks, `DeviceOptions::timestamps`) `timestamp-query`. Every kernel has a path without
//! each optional feature.
//!
//! **Device loss.** A device can be lost at any time: the driver resets, the GPU is
//! removed, the OS reclaims it from a backgrounded app, or someone calls
//! `Device::destroy`. Wisp's policy: a loss is never a panic, hang or abort; the device's
//! lost callback marks the context lost, and from then on every wait on it
//! ([`GpuContext::map_read`], [`GpuContext::wait_submitted`]) fails at once with
//! [`Error::Gpu`] naming the loss, without touching the device. Nothing is recovered in
//! place: the caller builds a new context (new adapter and device) and loads the model
//! again, which works in the same process.

use crate::Error;
use std::sync::{Arc, Mutex};

/// How to choose and configure the device.
#[derive(Debug, Clone, Default)]
pub struct DeviceOptions {
    /// Request exactly the WebGPU spec default limits (what Android Chrome gives).
    pub webgpu_default_limits: bool,
    /// Behave as if the adapter lacked `shader-f16`.
    pub no_f16: bool,
    /// Behave as if the adapter lacked subgroups.
    pub no_subgroups: bool,
    /// Request `timestamp-query` where the adapter has it (benchmarks only: it is opt-in
    /// so ordinary devices are created with no more than they use).
    pub timestamps: bool,
    /// Keep weights in storage buffers even where textures read faster (tests: the
    /// browser's path).
    pub no_texture_weights: bool,
}

/// What the device granted.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub adapter_name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub f16: bool,
    pub subgroups: bool,
    /// The smallest subgroup the device may run (0 without subgroups).
    pub subgroup_min_size: u32,
    pub timestamps: bool,
    pub limits: wgpu::Limits,
    /// How the mat-vec and prefill kernels share out a matrix (see [`MatLayout`]).
    pub mat_layout: MatLayout,
    /// Weight matrices may live in rgba32uint textures rather than storage buffers:
    /// native CPU-backed devices, where a texel fetch costs far fewer instructions than a
    /// storage load (`wisp_shaders` `wgsl/weights.wgsl`). Not in the browser, whose CPU
    /// fallback was not measured. See [`Capabilities::weights_in_textures`].
    pub texture_weights: bool,
    /// The adapter is a software rasterizer on the CPU (lavapipe, SwiftShader, any
    /// `DeviceType::Cpu`): the CPU engine runs the same model faster there.
    pub software: bool,
}

impl Capabilities {
    /// Whether weight matrices are uploaded as textures: only the row-per-invocation
    /// kernels read them there (a test may force the other layout).
    pub fn weights_in_textures(&self) -> bool {
        self.texture_weights && self.mat_layout == MatLayout::RowPerInvocation
    }
}

/// Which family of matrix kernels suits the device.
///
/// GPUs run [`MatLayout::Coalesced`]: the lanes of a workgroup share a row and read it
/// together. CPU-backed WebGPU devices (Mesa's lavapipe, SwiftShader) run
/// [`MatLayout::RowPerInvocation`]: their "lanes" are SIMD slots of one CPU core, where a
/// storage load is a per-lane loop and barriers switch coroutines, so one row per
/// invocation (no reduction, activations indexed by uniform values) costs far less.
/// Measured on lavapipe with SmolLM2: 2.5x less CPU time per decode token and 4.6x per
/// prefill token (see `wisp_shaders::quant`). Tests may override the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatLayout {
    Coalesced,
    RowPerInvocation,
}

impl MatLayout {
    /// The layout for an adapter: CPU-backed adapters get one row per invocation.
    pub fn for_adapter(device_type: wgpu::DeviceType, name: &str, driver: &str) -> MatLayout {
        if is_software_adapter(device_type, name, driver) {
            MatLayout::RowPerInvocation
        } else {
            MatLayout::Coalesced
        }
    }
}

/// Whether an adapter is a software rasterizer running on the CPU.
pub fn is_software_adapter(device_type: wgpu::DeviceType, name: &str, driver: &str) -> bool {
    let text = format!("{name} {driver}").to_ascii_lowercase();
    device_type == wgpu::DeviceType::Cpu
        || text.contains("swiftshader")
        || text.contains("llvmpipe")
        || text.contains("lavapipe")
}

/// A device, its queue, and the errors it reported asynchronously.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub caps: Capabilities,
    /// First uncaptured error, surfaced by [`GpuContext::check`].
    fault: Arc<Mutex<Option<String>>>,
    /// Why the device was lost, once it is.
    lost: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("caps", &self.caps)
            .finish()
    }
}

/// The adapters this machine offers (native only).
#[cfg(feature = "native")]
pub fn list_adapters() -> Vec<wgpu::Adapter> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU (software)",
        wgpu::DeviceType::Other => "other",
    }
}

#[cfg(not(target_arch = "wasm32"))]
const NO_ADAPTER_HINT: &str = "install a Vulkan, Metal or DX12 driver \
     (on Linux without a GPU: Mesa's lavapipe, package mesa-vulkan-drivers)";
#[cfg(target_arch = "wasm32")]
const NO_ADAPTER_HINT: &str =
    "the browser offers WebGPU but no adapter: the GPU may be blocklisted or WebGPU disabled";

impl GpuContext {
    /// Pick the best adapter and create a device on it.
    pub async fn new(opts: &DeviceOptions) -> Result<GpuContext, Error> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::Gpu(format!("no GPU adapter available ({e}); {NO_ADAPTER_HINT}"))
            })?;
        Self::from_adapter(adapter, opts).await
    }

    pub async fn from_adapter(
        adapter: wgpu::Adapter,
        opts: &DeviceOptions,
    ) -> Result<GpuContext, Error> {
        let info = adapter.get_info();
        let available = adapter.features();
        let mut features = wgpu::Features::empty();
        if available.contains(wgpu::Features::SHADER_F16) && !opts.no_f16 {
            features |= wgpu::Features::SHADER_F16;
        }
        if available.contains(wgpu::Features::SUBGROUP) && !opts.no_subgroups {
            features |= wgpu::Features::SUBGROUP;
        }
        if available.contains(wgpu::Features::TIMESTAMP_QUERY) && opts.timestamps {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let limits = if opts.webgpu_default_limits {
            wgpu::Limits::default()
        } else {
            adapter.limits()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wisp"),
                required_features: features,
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("cannot create a device on {}: {e}", info.name)))?;
        let fault = Arc::new(Mutex::new(None::<String>));
        let sink = Arc::clone(&fault);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None::<String>));
        let sink = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, msg| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| lost_message(&format!("{reason:?}"), &msg));
        });
        let mat_layout = MatLayout::for_adapter(info.device_type, &info.name, &info.driver);
        let caps = Capabilities {
            software: is_software_adapter(info.device_type, &info.name, &info.driver),
            adapter_name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: device_type_name(info.device_type).to_string(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: if features.contains(wgpu::Features::SUBGROUP) {
                info.subgroup_min_size
            } else {
                0
            },
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            limits: device.limits(),
            mat_layout,
            texture_weights: mat_layout == MatLayout::RowPerInvocation
                && !opts.no_texture_weights
                && !cfg!(target_arch = "wasm32"),
        };
        Ok(GpuContext {
            device,
            queue,
            caps,
            fault,
            lost,
        })
    }

    /// Native convenience: block on [`GpuContext::new`].
    #[cfg(feature = "native")]
    pub fn new_blocking(opts: &DeviceOptions) -> Result<GpuContext, Error> {
        pollster::block_on(Self::new(opts))
    }

    /// The device's loss, else the first asynchronous error it reported (validation, out
    /// of memory).
    pub fn check(&self) -> Result<(), Error> {
        self.check_alive()?;
        let slot = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            None => Ok(()),
            Some(msg) => Err(Error::Gpu(msg.clone())),
        }
    }

    /// `Err` once the device is lost (see the module docs).
    pub fn check_alive(&self) -> Result<(), Error> {
        match self.lost.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            None => Ok(()),
            Some(msg) => Err(Error::Gpu(msg.clone())),
        }
    }

    /// Whether the device is known to be lost.
    pub fn is_lost(&self) -> bool {
        self.check_alive().is_err()
    }

    /// Record a loss noticed other than through the lost callback (a failed wait).
    #[cfg_attr(not(feature = "native"), allow(dead_code))]
    pub(crate) fn mark_lost(&self, reason: &str, detail: &str) {
        let mut slot = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| lost_message(reason, detail));
    }

    /// The error for a wait that failed with `what`: the loss or an earlier fault when
    /// there is one (they explain the failure), else `what` itself.
    pub(crate) fn failure(&self, what: String) -> Error {
        match self.check() {
            Err(e) => e,
            Ok(()) => Error::Gpu(what),
        }
    }

    /// Largest byte range one storage binding may cover.
    pub fn max_binding(&self) -> u64 {
        self.caps
            .limits
            .max_storage_buffer_binding_size
            .min(self.caps.limits.max_buffer_size)
    }

    /// Largest chunk of a weight matrix: one binding, and with texture weights no more
    /// texture rows than the device allows.
    pub fn max_weight_chunk(&self) -> u64 {
        let binding = self.max_binding();
        if self.caps.weights_in_textures() {
            let rows = self.caps.limits.max_texture_dimension_2d as u64;
            binding.min(rows * super::kernel::TEXTURE_ROW_BYTES)
        } else {
            binding
        }
    }
}

fn lost_message(reason: &str, detail: &str) -> String {
    let detail = detail.trim();
    let detail = if detail.is_empty() {
        "no details"
    } else {
        detail
    };
    format!(
        "device lost ({reason}): {detail}; create a new engine (the model must be loaded again)"
    )
}
