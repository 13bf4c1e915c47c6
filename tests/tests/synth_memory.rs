//! The memory plan at 2–4B scale, on the full-depth shapes of every family
//! (`xtask/src/synth.rs`; headers only, no weights written): within 10% of tensor bytes +
//! KV cache, every buffer within WebGPU's default limits, and a model over the budget
//! refused before any allocation. Under `WISP_FULL=1` (`cargo xtask ci --full`) the
//! full-depth Llama-3.2-3B- and Gemma-3-4B-shape Q4_K_M models are written, loaded under
//! WebGPU default limits without f16, and decode, checked against the CPU oracle.

use std::sync::Arc;
use wisp::engine::{GpuModel, GpuSession, LoadControl, MemoryPlan, SliceSource};
use wisp::generate::Forward;
use wisp::gguf::{GgufFile, GgufHeader};
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::model::cpu::{CpuModel, CpuSession};
use wisp::model::{Logits, ModelConfig};
use wisp::Error;
use wisp_e2e::synth;

const DEFAULT_BINDING: u64 = 128 << 20;
const DEFAULT_BUFFER: u64 = 256 << 20;
const N_CTX: usize = 4096;

fn full_header(key: &str) -> (Vec<u8>, GgufHeader) {
    let f = synth::family(key).expect("family");
    let bytes = synth::build_header(f, &synth::MIXES[0], f.n_layer_full);
    let h = GgufHeader::parse(&bytes, None).expect("parse synthetic header");
    (bytes, h)
}

#[test]
fn plan_within_10_percent_of_tensors_plus_kv_at_full_depth() {
    for f in synth::FAMILIES {
        let (_, h) = full_header(f.key);
        let cfg = ModelConfig::from_gguf(&h).expect("config");
        assert_eq!(cfg.n_layer, f.n_layer_full);
        let plan = MemoryPlan::new(&h, &cfg, N_CTX, false, DEFAULT_BINDING).expect("plan");
        plan.check(DEFAULT_BINDING, DEFAULT_BUFFER, None)
            .unwrap_or_else(|e| panic!("{}: {e}", f.key));
        let tensors: u64 = h.tensors.iter().map(|t| t.n_bytes).sum();
        let kv = (cfg.n_layer * N_CTX * (cfg.k_dim() + cfg.v_dim()) * 2) as u64;
        let ratio = plan.total_bytes as f64 / (tensors + kv) as f64;
        eprintln!(
            "{}: {} layers, tensors {} MiB + KV@{N_CTX} {} MiB; plan {} MiB (scratch {} MiB), ratio {ratio:.3}, largest buffer {} MiB",
            f.key,
            cfg.n_layer,
            tensors >> 20,
            kv >> 20,
            plan.total_bytes >> 20,
            plan.scratch_bytes >> 20,
            plan.largest_buffer >> 20
        );
        assert!(
            (1.0..=1.10).contains(&ratio),
            "{}: plan {} vs tensors + KV {}",
            f.key,
            plan.total_bytes,
            tensors + kv
        );
    }
}

/// Over budget: refused from the header alone (the source holds no weights, so any
/// attempt to allocate or upload first would fail differently).
#[test]
fn over_budget_model_is_refused_before_allocation() {
    let (bytes, h) = full_header("gemma3-4b");
    let cfg = ModelConfig::from_gguf(&h).unwrap();
    let plan = MemoryPlan::new(&h, &cfg, N_CTX, false, DEFAULT_BINDING).unwrap();
    let ctx = Arc::new(
        GpuContext::new_blocking(&DeviceOptions {
            webgpu_default_limits: true,
            no_f16: true,
            ..Default::default()
        })
        .expect("a GPU device"),
    );
    let err = GpuModel::load(
        ctx,
        &h,
        &mut SliceSource(&bytes),
        &LoadControl::default(),
        N_CTX,
        Some(plan.total_bytes - 1),
    )
    .err()
    .expect("refused");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(msg.contains("budget") && msg.contains("MiB"), "{msg}");
}

fn full_depth_decode(key: &str) {
    let f = synth::family(key).unwrap();
    let (path, _) = synth::ensure(
        &wisp_e2e::models_dir().join("synth"),
        f,
        &synth::MIXES[0],
        f.n_layer_full,
    )
    .expect("generate");
    let file = Arc::new(GgufFile::open(&path).expect("open"));
    let ctx = Arc::new(
        GpuContext::new_blocking(&DeviceOptions {
            webgpu_default_limits: true,
            no_f16: true,
            ..Default::default()
        })
        .expect("a GPU device"),
    );
    let t = std::time::Instant::now();
    let model = wisp_e2e::gpu_model(ctx, &file, 64).expect("load under WebGPU default limits");
    eprintln!(
        "{key}: loaded {} MiB in {:.1} s",
        model.gpu_bytes >> 20,
        t.elapsed().as_secs_f64()
    );
    let tokens = [300u32, 4000, 12345, 777, 9999, 31000];
    let mut gpu = GpuSession::new(Arc::clone(&model), 64).expect("session");
    let mut cpu = CpuSession::new(Arc::new(CpuModel::load(file).expect("cpu")), 64);
    // Prefill 4, then decode 2 one by one: both graphs at full depth.
    for chunk in [&tokens[..4], &tokens[4..5], &tokens[5..]] {
        let t = std::time::Instant::now();
        let g = gpu.forward(chunk, Logits::Last).expect("gpu");
        let c = cpu.forward(chunk, Logits::Last).expect("cpu");
        let scale = c.iter().fold(1f32, |m, v| m.max(v.abs()));
        let max = g
            .iter()
            .zip(&c)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "{key}: {} tokens, max |GPU − CPU| {max:.4} (max |logit| {scale:.1}) in {:.1} s",
            chunk.len(),
            t.elapsed().as_secs_f64()
        );
        assert!(max / scale < 5e-3, "{key}: GPU and CPU oracle disagree");
        assert_eq!(
            wisp::sampling::argmax(&g),
            wisp::sampling::argmax(&c),
            "{key}: top-1"
        );
    }
}

#[test]
fn full_depth_llama32_3b_and_gemma3_4b_decode_within_default_limits() {
    if std::env::var_os("WISP_FULL").is_none() {
        eprintln!("skipped: full-depth models run under WISP_FULL=1 (cargo xtask ci --full)");
        return;
    }
    full_depth_decode("llama32-3b");
    full_depth_decode("gemma3-4b");
}
