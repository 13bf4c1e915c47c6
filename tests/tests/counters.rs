//! The engine's work counters on real models: a greedy decode token is exactly one
//! submission that reads back at most 16 bytes, and it binds exactly the weight bytes the
//! GGUF's tensor table gives for its matrices (every layer matrix and the output head
//! once, one row of the embedding table). Dispatches per token are printed.

use std::sync::Arc;
use wisp::engine::{Counters, GpuSession};
use wisp::generate::Forward;
use wisp::gguf::{GgufFile, GgufHeader};
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::sampling::{Sampler, SamplingParams};

/// Decode weight bytes from the tensor table alone (independent of the engine's code).
fn expected_per_token(h: &GgufHeader) -> u64 {
    const MATS: &[&str] = &[
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    let layers: u64 = h
        .tensors
        .iter()
        .filter(|t| {
            t.name.starts_with("blk.")
                && MATS
                    .iter()
                    .any(|m| t.name.ends_with(&format!(".{m}.weight")))
        })
        .map(|t| t.n_bytes)
        .sum();
    let find = |n: &str| h.tensors.iter().find(|t| t.name == n);
    let embd = find("token_embd.weight").expect("token_embd");
    let head = find("output.weight").unwrap_or(embd);
    layers + head.n_bytes + embd.n_bytes / embd.n_rows()
}

fn check(key: &str) {
    let file = GgufFile::open(&wisp_e2e::model_path(key)).expect("open");
    let ctx = Arc::new(GpuContext::new_blocking(&DeviceOptions::default()).expect("device"));
    let model = wisp_e2e::gpu_model(ctx, &file, 64).expect("load");
    let mut session = GpuSession::new(model, 64).expect("session");
    let mut sampler = Sampler::new(SamplingParams::greedy()).unwrap();
    let prompt: Vec<u32> = (0..12).map(|i| 1000 + i * 37).collect();
    let mut token = session
        .forward_sample(&prompt, &mut sampler, &prompt)
        .unwrap();
    let expected = expected_per_token(&file.header);
    let all_weights: u64 = file.header.tensors.iter().map(|t| t.n_bytes).sum();
    let mut dispatches = None;
    for step in 0..4 {
        let before: Counters = session.counters;
        token = session.forward_sample(&[token], &mut sampler, &[]).unwrap();
        let c = session.counters;
        let (subs, disp, read, weights) = (
            c.submissions - before.submissions,
            c.dispatches - before.dispatches,
            c.bytes_read_back - before.bytes_read_back,
            c.weight_bytes - before.weight_bytes,
        );
        assert_eq!(subs, 1, "{key} token {step}: submissions");
        assert!(read <= 16, "{key} token {step}: {read} bytes read back");
        assert_eq!(weights, expected, "{key} token {step}: weight bytes");
        // The graph is fixed: every token records the same dispatches.
        assert_eq!(*dispatches.get_or_insert(disp), disp, "{key} token {step}");
    }
    // Within expectations: a decode token reads (almost) the whole file once; only
    // 1-D tensors (norms, biases) and, for an untied head, the embedding table are skipped.
    let untied_embd = file
        .header
        .tensors
        .iter()
        .find(|t| {
            t.name == "token_embd.weight"
                && file
                    .header
                    .tensors
                    .iter()
                    .any(|o| o.name == "output.weight")
        })
        .map_or(0, |t| t.n_bytes);
    assert!(
        expected <= all_weights && expected as f64 >= 0.97 * (all_weights - untied_embd) as f64,
        "{key}: {expected} weight bytes per token of {all_weights} in the file"
    );
    eprintln!(
        "{key}: {} dispatches, 1 submission, {:.1} MB of weights per decode token",
        dispatches.unwrap(),
        expected as f64 / 1e6
    );
}

#[test]
fn smollm2_decode_token_costs() {
    check("smollm2");
}

#[test]
fn gemma3_decode_token_costs() {
    check("gemma3");
}
