//! The CPU engine against llama.cpp and the float64 reference (the bars every backend
//! meets), and against the f32 oracle, on every committed prompt of the three real
//! models: with the best instruction set this CPU has, and with the scalar kernels.

use std::sync::Arc;
use wisp::cpu::{CpuEngine, CpuEngineSession, CpuOptions, Isa};
use wisp::generate::Forward;
use wisp::gguf::GgufFile;
use wisp::model::cpu::{CpuModel, CpuSession};
use wisp::model::Logits;
use wisp::sampling::{Sampler, SamplingParams};
use wisp_e2e::logits::{self, Agreement};

/// Largest |engine − oracle| over each position's float64 top-10, relative to the
/// position's largest |logit|. The engine quantizes activations to 8 bits per block of
/// 32 or 256 (as llama.cpp's CPU backend does) and caches K/V in f16; the measured worst
/// case is printed by each run (tests/README.md has the numbers).
const ORACLE_REL_TOLERANCE: f32 = 2e-2;

fn check(key: &str, isa: Option<Isa>, n_cases: usize) {
    let fixture = logits::load(key);
    let path = wisp_e2e::model_path(key);
    let file = Arc::new(GgufFile::open(&path).expect("open model"));
    let options = CpuOptions { threads: 0, isa };
    let engine = Arc::new(CpuEngine::load(Arc::clone(&file), &options).expect("load"));
    let oracle = Arc::new(CpuModel::load(file).expect("oracle"));
    let n_vocab = engine.config.n_vocab;
    let mut agreement = Agreement::default();
    let mut max_rel = 0f32;
    let started = std::time::Instant::now();
    for case in fixture.cases.iter().take(n_cases) {
        let mut session = CpuEngineSession::new(Arc::clone(&engine), case.tokens.len()).unwrap();
        let ours = session.forward(&case.tokens, Logits::All).expect("forward");
        agreement.add(case, &ours, n_vocab);
        let reference = CpuSession::new(Arc::clone(&oracle), case.tokens.len())
            .forward(&case.tokens, Logits::All)
            .expect("oracle forward");
        for (i, (a, b)) in ours
            .chunks(n_vocab)
            .zip(reference.chunks(n_vocab))
            .enumerate()
        {
            let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
            for &(id, _) in case.f64[i].iter().take(10) {
                max_rel = max_rel.max((a[id as usize] - b[id as usize]).abs() / scale);
            }
        }
    }
    eprintln!(
        "{key} cpu engine ({}): {} positions ({} gated) in {:.1} s; vs llama.cpp first position max |Δ| {:.4}; vs float64 max |Δ| {:.4} (rel {:.2e}); vs oracle max rel {:.2e}",
        engine.isa().name(),
        agreement.positions,
        agreement.gated,
        started.elapsed().as_secs_f64(),
        agreement.max_llama_delta,
        agreement.max_f64_delta,
        agreement.max_f64_rel,
        max_rel
    );
    agreement.assert_meets_bars();
    assert!(
        max_rel <= ORACLE_REL_TOLERANCE,
        "{key}: engine vs oracle relative error {max_rel:.2e} above {ORACLE_REL_TOLERANCE:.0e}"
    );
}

#[test]
fn smollm2_cpu_engine_logits() {
    check("smollm2", None, usize::MAX);
    // The scalar kernels (what a CPU without SIMD runs) on a few prompts.
    check("smollm2", Some(Isa::Scalar), 4);
}

#[test]
fn gemma3_cpu_engine_logits() {
    check("gemma3", None, usize::MAX);
}

#[test]
fn qwen2_cpu_engine_logits() {
    check("qwen2", None, usize::MAX);
    check("qwen2", Some(Isa::Scalar), 2);
}

/// Greedy decode token by token equals the oracle's up to the first near-tie, and a
/// session reused after `truncate` gives the same tokens again.
#[test]
fn greedy_decode_matches_the_oracle() {
    let fixture = logits::load("qwen2");
    let case = &fixture.cases[0];
    let file = Arc::new(GgufFile::open(&wisp_e2e::model_path("qwen2")).unwrap());
    let engine = Arc::new(CpuEngine::load(Arc::clone(&file), &CpuOptions::default()).unwrap());
    let oracle = Arc::new(CpuModel::load(file).unwrap());
    let prompt = &case.tokens[..case.n_prompt];
    let near_tie = case.f64[case.n_prompt - 1..]
        .iter()
        .position(|top| top[0].1 - top[1].1 < logits::NEAR_TIE)
        .unwrap_or(usize::MAX);
    let mut sampler = Sampler::new(SamplingParams::greedy()).unwrap();
    let mut session = CpuEngineSession::new(engine, 128).unwrap();
    let mut reference = CpuSession::new(oracle, 128);
    let run = |f: &mut dyn Forward, sampler: &mut Sampler| {
        let mut tok = f.forward_sample(prompt, sampler, prompt).unwrap();
        let mut out = vec![tok];
        for _ in 0..12 {
            tok = f.forward_sample(&[tok], sampler, &[]).unwrap();
            out.push(tok);
        }
        out
    };
    let ours = run(&mut session, &mut sampler);
    let theirs = run(&mut reference, &mut sampler);
    let agree = near_tie.min(ours.len());
    assert_eq!(
        ours[..agree],
        theirs[..agree],
        "greedy tokens before the first near-tie"
    );
    session.truncate(0);
    assert_eq!(
        run(&mut session, &mut sampler),
        ours,
        "same tokens after truncate"
    );
}
