//! The CPU oracle against llama.cpp (Vulkan backend) and our float64 reference, on every
//! committed prompt of the three real models.

use std::sync::Arc;
use wisp::gguf::GgufFile;
use wisp::model::cpu::{CpuModel, CpuSession};
use wisp::model::Logits;
use wisp_e2e::logits::{self, Agreement};

/// Bound on |Δ| / max|logit| against the float64 reference: f32 arithmetic over the same
/// dequantized weights. Measured worst case is printed by each run (see tests/README.md).
const F64_REL_TOLERANCE: f32 = 1e-4;

fn check(key: &str) {
    let fixture = logits::load(key);
    let path = wisp_e2e::model_path(key);
    assert!(
        path.ends_with(&fixture.model),
        "fixture is for {}",
        fixture.model
    );
    let file = Arc::new(GgufFile::open(&path).expect("open model"));
    let model = Arc::new(CpuModel::load(file).expect("load"));
    let n_vocab = model.config.n_vocab;
    let mut agreement = Agreement::default();
    let started = std::time::Instant::now();
    for case in &fixture.cases {
        let mut session = CpuSession::new(Arc::clone(&model), case.tokens.len());
        let logits = session.forward(&case.tokens, Logits::All).expect("forward");
        agreement.add(case, &logits, n_vocab);
    }
    eprintln!(
        "{key}: {} cases, {} positions ({} gated by the 0.3 gap, llama.cpp's own top-1 off float64 at {}) in {:.1} s; max |Δ| vs llama.cpp top-5 at first generated position {:.4}; vs float64 max |Δ| {:.5}, max relative {:.2e}",
        fixture.cases.len(),
        agreement.positions,
        agreement.gated,
        agreement.llama_vs_f64_flips,
        started.elapsed().as_secs_f64(),
        agreement.max_llama_delta,
        agreement.max_f64_delta,
        agreement.max_f64_rel
    );
    assert!(fixture.cases.len() >= 10, "at least 10 prompts");
    agreement.assert_meets_bars();
    assert!(
        agreement.max_f64_rel <= F64_REL_TOLERANCE,
        "relative error vs float64 {:.2e} above {F64_REL_TOLERANCE:.0e}",
        agreement.max_f64_rel
    );
}

#[test]
fn smollm2_logits_match_references() {
    check("smollm2");
}

#[test]
fn gemma3_logits_match_references() {
    check("gemma3");
}

#[test]
fn qwen2_logits_match_references() {
    check("qwen2");
}
