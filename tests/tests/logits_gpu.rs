//! The WGSL engine on the machine's GPU (lavapipe in CI) against the same references as
//! the CPU oracle, and against the oracle itself, in the default configuration and in
//! the browser/phone floor (WebGPU default limits, no shader-f16).

use std::sync::Arc;
use wisp::engine::{AttnInput, FfnInput, GpuModel, GpuSession};
use wisp::generate::Forward;
use wisp::gguf::GgufFile;
use wisp::gpu::{DeviceOptions, GpuContext, MatLayout};
use wisp::model::cpu::{CpuModel, CpuSession};
use wisp::model::Logits;
use wisp::sampling::{Sampler, SamplingParams};
use wisp_e2e::logits::{self, Agreement};

/// Largest |GPU − CPU oracle| logit difference over each position's float64 top-10,
/// relative to the position's largest |logit|. The GPU keeps the KV cache in f16
/// (relative rounding 2⁻¹¹ ≈ 5e-4 per element), which dominates the difference.
const CPU_REL_TOLERANCE: f32 = 5e-3;

/// `layout`: force a kernel layout (None: the device's own choice; on lavapipe that is
/// one row per invocation, so the GPU layout is forced where the floor limits are tested).
fn load(
    key: &str,
    opts: &DeviceOptions,
    layout: Option<MatLayout>,
) -> (Arc<GgufFile>, Arc<GpuModel>) {
    let file = Arc::new(GgufFile::open(&wisp_e2e::model_path(key)).expect("open model"));
    let mut ctx =
        GpuContext::new_blocking(opts).expect("a GPU device (install mesa-vulkan-drivers)");
    if let Some(layout) = layout {
        ctx.caps.mat_layout = layout;
    }
    let model = wisp_e2e::gpu_model(Arc::new(ctx), &file, 512).expect("load on GPU");
    (file, model)
}

fn check(key: &str, opts: DeviceOptions, layout: Option<MatLayout>) {
    let fixture = logits::load(key);
    let (file, model) = load(key, &opts, layout);
    if opts.webgpu_default_limits {
        // Every binding must fit 128 MiB: Gemma 3's 262144 × 640 Q8_0 table (178 MB) is split.
        for m in [&model.tok_embd, model.output()] {
            for c in &m.chunks {
                assert!(c.store.size() <= 128 << 20, "{} chunk too big", m.name);
            }
        }
        if key == "gemma3" {
            assert!(
                model.tok_embd.chunks.len() >= 2,
                "the embedding table must be split by rows"
            );
        }
    }
    // The three models' gate and up matrices match: every layer runs them stacked.
    assert!(
        model
            .layers
            .iter()
            .all(|l| matches!(l.ffn_in, FfnInput::Stacked(_))),
        "{key}: gate/up not stacked"
    );
    // Q/K/V stack where all three share a type: every layer of SmolLM2; half of Gemma 3's
    // and Qwen2.5's, whose V alternates Q8_0 and Q5_0 (so both paths run in one model).
    let stacked = (model.layers.iter())
        .filter(|l| matches!(l.qkv, AttnInput::Stacked(_)))
        .count();
    let expected = if key == "smollm2" {
        model.layers.len()
    } else {
        model.layers.len() / 2
    };
    assert_eq!(stacked, expected, "{key}: layers with Q/K/V stacked");
    let cpu = Arc::new(CpuModel::load(Arc::clone(&file)).expect("cpu model"));
    let n_vocab = model.config.n_vocab;
    let mut agreement = Agreement::default();
    let mut max_rel_cpu = 0f32;
    let started = std::time::Instant::now();
    // Lavapipe runs these at a software rasterizer's speed: CI checks the first cases,
    // `cargo xtask ci --full` (WISP_FULL=1) all of them.
    let n_cases = if std::env::var_os("WISP_FULL").is_some() {
        fixture.cases.len()
    } else {
        4
    };
    for case in fixture.cases.iter().take(n_cases) {
        let mut session = GpuSession::new(Arc::clone(&model), case.tokens.len()).expect("session");
        let gpu = session
            .forward(&case.tokens, Logits::All)
            .expect("gpu forward");
        agreement.add(case, &gpu, n_vocab);
        let mut oracle = CpuSession::new(Arc::clone(&cpu), case.tokens.len());
        let reference = oracle
            .forward(&case.tokens, Logits::All)
            .expect("cpu forward");
        for (i, (g, c)) in gpu
            .chunks(n_vocab)
            .zip(reference.chunks(n_vocab))
            .enumerate()
        {
            let scale = c.iter().fold(1f32, |m, v| m.max(v.abs()));
            for &(id, _) in case.f64[i].iter().take(10) {
                max_rel_cpu = max_rel_cpu.max((g[id as usize] - c[id as usize]).abs() / scale);
            }
        }
    }
    eprintln!(
        "{key} {opts:?} {:?}: {} positions ({} gated) in {:.1} s; vs llama.cpp first position max |Δ| {:.4}; vs float64 max |Δ| {:.4} (rel {:.2e}); vs CPU oracle max rel {:.2e}",
        model.kernels.layout,
        agreement.positions,
        agreement.gated,
        started.elapsed().as_secs_f64(),
        agreement.max_llama_delta,
        agreement.max_f64_delta,
        agreement.max_f64_rel,
        max_rel_cpu
    );
    agreement.assert_meets_bars();
    assert!(
        max_rel_cpu <= CPU_REL_TOLERANCE,
        "GPU vs CPU oracle relative error {max_rel_cpu:.2e} above {CPU_REL_TOLERANCE:.0e}"
    );
}

fn floor() -> DeviceOptions {
    DeviceOptions {
        webgpu_default_limits: true,
        no_f16: true,
        ..Default::default()
    }
}

#[test]
fn smollm2_gpu_logits() {
    check("smollm2", DeviceOptions::default(), None);
    check("smollm2", floor(), Some(MatLayout::Coalesced));
    // The row layout without subgroups or textures (what a browser's CPU fallback runs):
    // the portable row kernels over storage buffers and the portable attention, where
    // lavapipe itself picks texture weights and the subgroup kernels.
    let portable = DeviceOptions {
        no_subgroups: true,
        no_texture_weights: true,
        ..Default::default()
    };
    check("smollm2", portable, Some(MatLayout::RowPerInvocation));
}

#[test]
fn gemma3_gpu_logits() {
    check("gemma3", DeviceOptions::default(), None);
    check("gemma3", floor(), Some(MatLayout::Coalesced));
}

#[test]
fn qwen2_gpu_logits() {
    check("qwen2", DeviceOptions::default(), None);
    check("qwen2", floor(), Some(MatLayout::Coalesced));
}

/// Greedy decode: one submission and at most 16 mapped bytes per token, and the same
/// tokens as the CPU oracle up to the first near-tie of the float64 reference.
#[test]
fn greedy_decode_is_one_submission_per_token_and_matches_the_oracle() {
    let fixture = logits::load("smollm2");
    let case = &fixture.cases[0];
    let (file, model) = load("smollm2", &DeviceOptions::default(), None);
    let cpu = Arc::new(CpuModel::load(file).expect("cpu model"));
    let prompt = &case.tokens[..case.n_prompt];
    let mut gpu = GpuSession::new(Arc::clone(&model), 256).expect("session");
    let mut oracle = CpuSession::new(cpu, 256);
    let mut sampler = Sampler::new(SamplingParams::greedy()).unwrap();
    let mut g_tok = gpu.forward_sample(prompt, &mut sampler, prompt).unwrap();
    let mut c_tok = oracle.forward_sample(prompt, &mut sampler, prompt).unwrap();
    let near_tie = case.f64[case.n_prompt - 1..]
        .iter()
        .position(|top| top[0].1 - top[1].1 < logits::NEAR_TIE)
        .unwrap_or(usize::MAX);
    for step in 0..16 {
        if step < near_tie {
            assert_eq!(g_tok, c_tok, "step {step}");
        }
        let before = gpu.counters;
        let next = gpu.forward_sample(&[g_tok], &mut sampler, &[]).unwrap();
        let d = gpu.counters;
        assert_eq!(
            d.submissions - before.submissions,
            1,
            "one submission per decode token"
        );
        assert!(
            d.bytes_read_back - before.bytes_read_back <= 16,
            "≤ 16 bytes mapped per token"
        );
        c_tok = oracle.forward_sample(&[c_tok], &mut sampler, &[]).unwrap();
        g_tok = next;
    }
}
