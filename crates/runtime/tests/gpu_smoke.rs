//! The GPU layer on the machine's real device (lavapipe in CI): a device comes up, a
//! kernel compiles and runs, a broken kernel is a typed error.

use wisp::gpu::kernel::{f32_bytes, u32_bytes};
use wisp::gpu::{DeviceOptions, GpuContext};

const ADD: &str = "
struct Params { n: u32, add: f32 }
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < params.n) { data[id.x] = data[id.x] + params.add; }
}";

#[test]
fn kernel_runs_and_errors_are_typed() {
    for opts in [
        DeviceOptions::default(),
        DeviceOptions {
            webgpu_default_limits: true,
            no_f16: true,
            ..Default::default()
        },
    ] {
        let ctx = GpuContext::new_blocking(&opts).expect("a device (install mesa-vulkan-drivers)");
        eprintln!("{:?}", ctx.caps);
        if opts.webgpu_default_limits {
            assert_eq!(ctx.caps.limits.max_storage_buffer_binding_size, 128 << 20);
            assert!(!ctx.caps.f16);
        }
        let k = ctx.compile("add", ADD).unwrap();
        let data: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let buf = ctx.storage_init("data", &f32_bytes(&data));
        let mut p = u32_bytes(&[100]);
        p.extend(2.5f32.to_le_bytes());
        let params = ctx.uniform_init("params", &p);
        ctx.run_once(&k, &[&buf, &params], (2, 1, 1)).unwrap();
        let out = ctx.read_f32(&buf).unwrap();
        assert_eq!(out[99], 101.5);
        assert_eq!(out[0], 2.5);
        let err = ctx
            .compile("broken", "fn main( {")
            .err()
            .expect("must fail");
        assert!(err.to_string().contains("broken"), "{err}");
        ctx.check()
            .expect("compile errors are captured, not left as device faults");
    }
}
