//! The 2B–4B families at full width on synthetic weights (`xtask/src/synth.rs`): for each
//! family and two quant mixes, Wisp's CPU oracle and GPU engine (default, and WebGPU
//! default limits without shader-f16) against llama.cpp's teacher-forced logits in
//! `tests/fixtures/synth/*.json` (made by `tests/reference/make_synth_fixtures.sh`).
//!
//! The models are regenerated from the seed when missing (a fresh write is hashed and
//! must match the sha256 the fixture recorded, so the generator's determinism is checked
//! in CI) into `$WISP_MODELS/synth`.
//!
//! Bars (the issue's, extended to every position): at position 0 each of llama.cpp's top-5
//! in our top-10 within 0.35, at every other position each of its top-5 logits within
//! 0.35 of ours (ranks 5–11 are often closer together than the reference's noise, so
//! "in our top-10" would fail on noise there); the same top-1 wherever llama.cpp's top-2
//! gap is ≥ 0.3, over ≥ 16 such positions. The reference is llama.cpp's CPU backend (its Vulkan backend
//! aborts on lavapipe for these shapes), which quantizes activations to 8 bits; on these
//! random models that moves logits by a few hundredths (measured numbers in
//! tests/reference/README.md).

use std::sync::Arc;
use wisp::cpu::{CpuEngine, CpuEngineSession, CpuOptions};
use wisp::engine::GpuSession;
use wisp::generate::Forward;
use wisp::gguf::GgufFile;
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::model::cpu::{CpuModel, CpuSession};
use wisp::model::Logits;
use wisp_e2e::logits::{LLAMA_TOLERANCE, NEAR_TIE};
use wisp_e2e::synth;

struct Fixture {
    sha256: String,
    tokens: Vec<u32>,
    llama: Vec<Vec<(u32, f32)>>,
}

fn fixture(stem: &str) -> Fixture {
    let path = wisp_e2e::fixtures_dir().join(format!("synth/{stem}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    Fixture {
        sha256: v["sha256"].as_str().expect("sha256").to_string(),
        tokens: v["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t.as_u64().expect("token") as u32)
            .collect(),
        llama: v["llama"]
            .as_array()
            .expect("llama")
            .iter()
            .map(|pos| {
                pos.as_array()
                    .expect("top")
                    .iter()
                    .map(|e| (e[0].as_u64().unwrap() as u32, e[1].as_f64().unwrap() as f32))
                    .collect()
            })
            .collect(),
    }
}

/// How one backend's logits compare with llama.cpp over a sequence.
#[derive(Debug, Default)]
struct Report {
    positions: usize,
    gated: usize,
    max_delta: f32,
    /// |Δ| of every compared (position, token).
    deltas: Vec<f32>,
    failures: Vec<String>,
}

impl Report {
    fn median_delta(&self) -> f32 {
        let mut d = self.deltas.clone();
        d.sort_by(f32::total_cmp);
        d.get(d.len() / 2).copied().unwrap_or(0.0)
    }
}

fn compare(what: &str, fx: &Fixture, logits: &[f32], n_vocab: usize) -> Report {
    let mut r = Report::default();
    for (i, (row, l)) in logits.chunks(n_vocab).zip(&fx.llama).enumerate() {
        r.positions += 1;
        let ours = wisp::sampling::top_k(row, 10);
        for &(id, want) in l.iter().take(5) {
            // Position 0 holds the bar (in our top-10); elsewhere the logit itself
            // (ranks 5–11 are often within the reference's noise of each other).
            let got = match ours.iter().find(|e| e.0 == id) {
                Some(&(_, got)) => got,
                None if i > 0 => row[id as usize],
                None => {
                    r.failures.push(format!(
                        "{what} pos {i}: llama top-5 token {id} not in our top-10"
                    ));
                    continue;
                }
            };
            let d = (got - want).abs();
            r.max_delta = r.max_delta.max(d);
            r.deltas.push(d);
            if std::env::var_os("WISP_SYNTH_VERBOSE").is_some() {
                eprintln!("{what} pos {i} token {id}: ours {got} llama {want} Δ {d:.4}");
            }
            if d > LLAMA_TOLERANCE {
                r.failures.push(format!(
                    "{what} pos {i}: token {id} ours {got} llama {want}"
                ));
            }
        }
        if l[0].1 - l[1].1 >= NEAR_TIE {
            r.gated += 1;
            if ours[0].0 != l[0].0 {
                r.failures.push(format!(
                    "{what} pos {i}: top-1 ours {} llama {} (gap {})",
                    ours[0].0,
                    l[0].0,
                    l[0].1 - l[1].1
                ));
            }
        }
    }
    assert_eq!(r.positions, fx.tokens.len(), "{what}: one row per token");
    r
}

fn assert_bars(what: &str, r: &Report) {
    assert!(
        r.gated >= 16,
        "{what}: only {} of {} positions have a top-2 gap ≥ {NEAR_TIE}: too flat to test top-1",
        r.gated,
        r.positions
    );
    assert!(r.failures.is_empty(), "{what}: {:#?}", r.failures);
}

fn floor() -> DeviceOptions {
    DeviceOptions {
        webgpu_default_limits: true,
        no_f16: true,
        ..Default::default()
    }
}

/// `gpu_configs`: which of (default device, WebGPU floor) to run on the GPU.
fn check_pair(f: &synth::Family, m: &synth::Mix, gpu_configs: &[DeviceOptions]) {
    let n_layer = f.n_layer_test;
    let stem = synth::file_name(f, m, n_layer)
        .trim_end_matches(".gguf")
        .to_string();
    let fx = fixture(&stem);
    let (path, digest) =
        synth::ensure(&wisp_e2e::models_dir().join("synth"), f, m, n_layer).expect("generate");
    assert_eq!(
        digest, fx.sha256,
        "{stem}: the generator no longer makes the model the fixture was computed on"
    );
    let file = Arc::new(GgufFile::open(&path).expect("open"));
    let n = fx.tokens.len();

    let t = std::time::Instant::now();
    let cpu = Arc::new(CpuModel::load(Arc::clone(&file)).expect("cpu model"));
    let n_vocab = cpu.config.n_vocab;
    let cpu_logits = CpuSession::new(Arc::clone(&cpu), n)
        .forward(&fx.tokens, Logits::All)
        .expect("cpu forward");
    let r = compare(&format!("{stem} cpu"), &fx, &cpu_logits, n_vocab);
    eprintln!(
        "{stem} cpu: {} positions, {} gated, |Δ| vs llama.cpp max {:.4} median {:.4} ({:.1} s)",
        r.positions,
        r.gated,
        r.max_delta,
        r.median_delta(),
        t.elapsed().as_secs_f64()
    );
    assert_bars(&format!("{stem} cpu"), &r);

    let cpu_scale = cpu_logits.iter().fold(1f32, |m, v| m.max(v.abs()));
    let t = std::time::Instant::now();
    let engine = CpuEngine::load(Arc::clone(&file), &CpuOptions::default()).expect("cpu engine");
    let ours = CpuEngineSession::new(Arc::new(engine), n)
        .expect("session")
        .forward(&fx.tokens, Logits::All)
        .expect("cpu engine forward");
    let what = format!("{stem} cpu engine");
    let r = compare(&what, &fx, &ours, n_vocab);
    eprintln!(
        "{what}: {} positions, {} gated, |Δ| vs llama.cpp max {:.4} median {:.4} ({:.1} s)",
        r.positions,
        r.gated,
        r.max_delta,
        r.median_delta(),
        t.elapsed().as_secs_f64()
    );
    assert_bars(&what, &r);
    for opts in gpu_configs.iter().cloned() {
        let t = std::time::Instant::now();
        let ctx = Arc::new(GpuContext::new_blocking(&opts).expect("a GPU device"));
        let model = wisp_e2e::gpu_model(ctx, &file, n).expect("load on GPU");
        let gpu = GpuSession::new(Arc::clone(&model), n)
            .expect("session")
            .forward(&fx.tokens, Logits::All)
            .expect("gpu forward");
        let what = format!(
            "{stem} gpu{}",
            if opts.webgpu_default_limits {
                " floor"
            } else {
                ""
            }
        );
        let r = compare(&what, &fx, &gpu, n_vocab);
        let max_vs_cpu = gpu
            .iter()
            .zip(&cpu_logits)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "{what}: {} positions, {} gated, |Δ| vs llama.cpp max {:.4} median {:.4}, vs CPU oracle (all logits) {:.4} ({:.1} s)",
            r.positions,
            r.gated,
            r.max_delta,
            r.median_delta(),
            max_vs_cpu,
            t.elapsed().as_secs_f64()
        );
        assert_bars(&what, &r);
        // The same bound as logits_gpu.rs: the f16 KV cache dominates the difference.
        assert!(
            max_vs_cpu / cpu_scale <= 5e-3,
            "{what}: GPU vs CPU oracle {max_vs_cpu} on logits up to {cpu_scale}"
        );
    }
}

fn check_family(key: &str) {
    let pairs: Vec<_> = synth::test_pairs()
        .into_iter()
        .filter(|(f, _)| f.key == key)
        .collect();
    assert_eq!(pairs.len(), 2, "two quant mixes per family");
    // Lavapipe needs 40–400 s per GPU run of these heads (up to 262144 × 2560 × 40
    // positions; the low end on an idle machine). CI runs one GPU configuration per family
    // (q4km; the default device for even-numbered families, the WebGPU floor without f16
    // for odd ones) and the other mix on the CPU oracle only; `cargo xtask ci --full`
    // (WISP_FULL=1) runs every mix on both GPU configurations.
    let full = std::env::var_os("WISP_FULL").is_some();
    let family_index = synth::FAMILIES.iter().position(|f| f.key == key).unwrap();
    for (i, (f, m)) in pairs.into_iter().enumerate() {
        let configs = if full {
            vec![DeviceOptions::default(), floor()]
        } else if i > 0 {
            vec![]
        } else if family_index % 2 == 0 {
            vec![DeviceOptions::default()]
        } else {
            vec![floor()]
        };
        check_pair(f, m, &configs);
    }
}

#[test]
fn llama32_3b_shape() {
    check_family("llama32-3b");
}

#[test]
fn qwen25_3b_shape() {
    check_family("qwen25-3b");
}

#[test]
fn qwen3_4b_shape() {
    check_family("qwen3-4b");
}

#[test]
fn gemma2_2b_shape() {
    check_family("gemma2-2b");
}

#[test]
fn gemma3_4b_shape() {
    check_family("gemma3-4b");
}

#[test]
fn phi35_mini_shape() {
    check_family("phi35-mini");
}

#[test]
fn smollm3_3b_shape() {
    check_family("smollm3-3b");
}

/// Phi-3 beyond its original 4096-token context: llama.cpp (at n_ctx 8192) switches to the
/// long LongRoPE factors, and so must the CPU oracle and the GPU session (both chosen by
/// the session's context size). The short-factor logits must differ, or this tests nothing.
#[test]
fn phi35_mini_long_rope_factors() {
    let f = synth::family("phi35-mini").unwrap();
    let m = synth::mix("q4km").unwrap();
    let stem = synth::file_name(f, m, f.n_layer_test)
        .trim_end_matches(".gguf")
        .to_string();
    let fx = fixture(&format!("{stem}.ctx8192"));
    let (path, digest) =
        synth::ensure(&wisp_e2e::models_dir().join("synth"), f, m, f.n_layer_test).unwrap();
    assert_eq!(digest, fx.sha256, "{stem}: model changed since the fixture");
    let file = Arc::new(GgufFile::open(&path).expect("open"));
    let cpu = Arc::new(CpuModel::load(Arc::clone(&file)).expect("cpu model"));
    let n_vocab = cpu.config.n_vocab;
    let n_ctx = 8192;
    assert!(n_ctx > cpu.config.n_ctx_orig);
    let long = CpuSession::new(Arc::clone(&cpu), n_ctx)
        .forward(&fx.tokens, Logits::All)
        .expect("cpu forward");
    let short = CpuSession::new(Arc::clone(&cpu), fx.tokens.len())
        .forward(&fx.tokens, Logits::All)
        .expect("cpu forward");
    let moved = long
        .iter()
        .zip(&short)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        moved > 0.1,
        "long factors barely change the logits ({moved})"
    );
    let r = compare(&format!("{stem} long cpu"), &fx, &long, n_vocab);
    eprintln!(
        "{stem} long cpu: {} gated, |Δ| max {:.4} median {:.4}; short vs long moved logits by up to {moved:.3}",
        r.gated,
        r.max_delta,
        r.median_delta()
    );
    assert_bars(&format!("{stem} long cpu"), &r);

    let engine = CpuEngine::load(Arc::clone(&file), &CpuOptions::default()).expect("engine");
    let ours = CpuEngineSession::new(Arc::new(engine), n_ctx)
        .expect("session")
        .forward(&fx.tokens, Logits::All)
        .expect("cpu engine forward");
    let r = compare(&format!("{stem} long cpu engine"), &fx, &ours, n_vocab);
    assert_bars(&format!("{stem} long cpu engine"), &r);

    let ctx = Arc::new(GpuContext::new_blocking(&DeviceOptions::default()).expect("a GPU"));
    let model = wisp_e2e::gpu_model(ctx, &file, n_ctx).expect("load");
    let gpu = GpuSession::new(model, n_ctx)
        .expect("session")
        .forward(&fx.tokens, Logits::All)
        .expect("gpu forward");
    let r = compare(&format!("{stem} long gpu"), &fx, &gpu, n_vocab);
    eprintln!(
        "{stem} long gpu: {} gated, |Δ| max {:.4} median {:.4}",
        r.gated,
        r.max_delta,
        r.median_delta()
    );
    assert_bars(&format!("{stem} long gpu"), &r);
}
