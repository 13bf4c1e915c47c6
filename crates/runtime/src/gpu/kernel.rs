//! Compiled kernels and the buffer plumbing every kernel needs: creating storage and
//! uniform buffers, uploading, reading back, and one-off dispatches for tests.

use super::device::GpuContext;
use crate::Error;
use std::collections::HashMap;
use std::sync::Mutex;

/// Bytes per row of a weights texture.
pub const TEXTURE_ROW_BYTES: u64 = wisp_shaders::quant::TEXTURE_WIDTH as u64 * 16;

/// `len` weight bytes rounded up to whole texture rows: the staging size of a texture
/// upload.
pub fn padded_weights_len(len: u64) -> u64 {
    len.div_ceil(TEXTURE_ROW_BYTES).max(1) * TEXTURE_ROW_BYTES
}

/// A compute pipeline and the layout of its group-0 bindings.
pub struct Kernel {
    pub name: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Pipelines built once per (kernel name, specialisation) and reused.
#[derive(Default)]
pub struct PipelineCache {
    kernels: Mutex<HashMap<String, std::sync::Arc<Kernel>>>,
}

impl PipelineCache {
    /// The kernel for `key`, compiling `wgsl` (entry `main`) the first time.
    pub fn get_or_compile(
        &self,
        ctx: &GpuContext,
        key: &str,
        wgsl: impl FnOnce() -> String,
    ) -> Result<std::sync::Arc<Kernel>, Error> {
        let mut map = self.kernels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = map.get(key) {
            return Ok(std::sync::Arc::clone(k));
        }
        let k = std::sync::Arc::new(ctx.compile(key, &wgsl())?);
        map.insert(key.to_string(), std::sync::Arc::clone(&k));
        Ok(k)
    }

    pub fn len(&self) -> usize {
        self.kernels.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl GpuContext {
    /// Compile a WGSL compute shader whose entry point is `main`; a shader the device
    /// rejects gives `Error::Gpu` with the compiler's message.
    pub fn compile(&self, name: &str, wgsl: &str) -> Result<Kernel, Error> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster_or_ready(scope.pop()) {
            return Err(Error::Gpu(format!("kernel {name} does not compile: {e}")));
        }
        let layout = pipeline.get_bind_group_layout(0);
        Ok(Kernel {
            name: name.to_string(),
            pipeline,
            layout,
        })
    }

    /// A storage buffer initialised with `data` (padded to 4 bytes).
    pub fn storage_init(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        let mut padded;
        let bytes = if data.len().is_multiple_of(4) && !data.is_empty() {
            data
        } else {
            padded = data.to_vec();
            padded.resize(data.len().div_ceil(4).max(1) * 4, 0);
            &padded
        };
        self.buffer_init(
            label,
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// A buffer holding `bytes` (a multiple of 4 long), written through the queue rather
    /// than mapped at creation: wgpu panics when mapping a buffer of a lost device, while
    /// a write to one is only a reported error (see `device.rs` on device loss).
    fn buffer_init(&self, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.len() as u64,
            usage,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, bytes);
        buffer
    }

    /// A zeroed storage buffer of `size` bytes (rounded up to 4).
    pub fn storage(&self, label: &str, size: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.div_ceil(4).max(1) * 4,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding `data` (padded to 16 bytes).
    pub fn uniform_init(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        let mut padded = data.to_vec();
        padded.resize(data.len().div_ceil(16).max(1) * 16, 0);
        self.buffer_init(
            label,
            &padded,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// Bind `buffers` to bindings 0, 1, 2, … of `kernel`'s group 0.
    pub fn bind(&self, kernel: &Kernel, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        self.bind_resources(
            kernel,
            buffers.iter().map(|b| b.as_entire_binding()).collect(),
        )
    }

    /// A bind group of `resources` at bindings 0, 1, … (weights may be a texture).
    pub fn bind_resources(
        &self,
        kernel: &Kernel,
        resources: Vec<wgpu::BindingResource<'_>>,
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.name),
            layout: &kernel.layout,
            entries: &entries,
        })
    }

    /// Weights of `len` bytes as the row kernels read them from a texture
    /// (`wisp_shaders::quant::TEXTURE_WIDTH` texels of 16 bytes per row), empty; fill it
    /// with [`GpuContext::copy_to_weights`].
    pub fn weights_texture(&self, label: &str, len: u64) -> wgpu::Texture {
        let row = TEXTURE_ROW_BYTES;
        self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width: wisp_shaders::quant::TEXTURE_WIDTH,
                height: len.div_ceil(row).max(1) as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Uint,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        })
    }

    /// Record the copy of `src` (at least as many bytes as `dst` has texels × 16) into a
    /// weights texture.
    pub fn copy_to_weights(
        &self,
        enc: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        dst: &wgpu::Texture,
    ) {
        enc.copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer: src,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(TEXTURE_ROW_BYTES as u32),
                    rows_per_image: None,
                },
            },
            dst.as_image_copy(),
            dst.size(),
        );
    }

    /// Weights bytes into a new weights texture (tests and benchmarks; the model upload
    /// streams through [`GpuContext::copy_to_weights`]).
    pub fn weights_texture_init(&self, label: &str, bytes: &[u8]) -> wgpu::Texture {
        let texture = self.weights_texture(label, bytes.len() as u64);
        let mut padded = bytes.to_vec();
        padded.resize(padded_weights_len(bytes.len() as u64) as usize, 0);
        let staging = self.buffer_init(
            label,
            &padded,
            wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        );
        let mut enc = self.device.create_command_encoder(&Default::default());
        self.copy_to_weights(&mut enc, &staging, &texture);
        self.queue.submit([enc.finish()]);
        texture
    }

    /// Run one dispatch of `kernel` now and wait for it (tests and one-off work only:
    /// the engine records many dispatches into one submission).
    #[cfg(feature = "native")]
    pub fn run_once(
        &self,
        kernel: &Kernel,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
    ) -> Result<(), Error> {
        self.run_once_with(
            kernel,
            buffers.iter().map(|b| b.as_entire_binding()).collect(),
            groups,
        )
    }

    /// [`GpuContext::run_once`] with any resources (weights may be a texture).
    #[cfg(feature = "native")]
    pub fn run_once_with(
        &self,
        kernel: &Kernel,
        resources: Vec<wgpu::BindingResource<'_>>,
        groups: (u32, u32, u32),
    ) -> Result<(), Error> {
        let bind = self.bind_resources(kernel, resources);
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
        self.queue.submit([enc.finish()]);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        self.check()
    }

    /// Copy `buffer` back to the CPU and wait (native only).
    #[cfg(feature = "native")]
    pub fn read_back(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, Error> {
        self.read_back_range(buffer, buffer.size())
    }

    /// Copy the first `size` bytes of `buffer` back to the CPU and wait (native only).
    #[cfg(feature = "native")]
    pub fn read_back_range(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, Error> {
        super::wait::block_on(self.read_back_range_async(buffer, size))
    }

    /// Copy the first `size` bytes of `buffer` back to the CPU.
    pub async fn read_back_range_async(
        &self,
        buffer: &wgpu::Buffer,
        size: u64,
    ) -> Result<Vec<u8>, Error> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        self.map_read(staging.slice(..)).await?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("readback map failed: {e:?}")))?
            .to_vec();
        staging.unmap();
        self.check()?;
        Ok(data)
    }

    /// Read an f32 buffer back.
    #[cfg(feature = "native")]
    pub fn read_f32(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>, Error> {
        Ok(self
            .read_back(buffer)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
}

/// Resolve an error-scope future. On native wgpu it is ready at once; on the web it is
/// not, and callers there must await it instead.
fn pollster_or_ready<F: std::future::Future<Output = Option<wgpu::Error>>>(
    f: F,
) -> Option<wgpu::Error> {
    #[cfg(feature = "native")]
    {
        pollster::block_on(f)
    }
    #[cfg(not(feature = "native"))]
    {
        // Compile errors still reach the device's uncaptured-error handler.
        drop(f);
        None
    }
}

/// Little-endian bytes of f32 values (for uploads).
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of u32 values (for uniforms).
pub fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
