//! The sampler on arbitrary parameters, logits (NaN and infinities included) and
//! histories: `validate` refuses or the chosen id is inside the vocabulary; no logits at
//! all is a typed error.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use wisp::sampling::{argmax, top_k, Sampler, SamplingParams};

#[derive(Arbitrary, Debug)]
struct Input {
    temperature: f32,
    top_k: u16,
    top_p: f32,
    min_p: f32,
    repeat_penalty: f32,
    repeat_last_n: u16,
    presence_penalty: f32,
    frequency_penalty: f32,
    seed: u64,
    first_logit: f32,
    logits: Vec<f32>,
    history: Vec<u32>,
    candidates: u8,
}

fuzz_target!(|input: Input| {
    let params = SamplingParams {
        temperature: input.temperature,
        top_k: input.top_k as usize,
        top_p: input.top_p,
        min_p: input.min_p,
        repeat_penalty: input.repeat_penalty,
        repeat_last_n: input.repeat_last_n as usize,
        presence_penalty: input.presence_penalty,
        frequency_penalty: input.frequency_penalty,
        seed: input.seed,
    };
    let mut logits = vec![input.first_logit];
    logits.extend(input.logits.iter().take(4096));
    let n = logits.len() as u32;
    assert!(argmax(&logits) < n);
    let k = input.candidates as usize + 1;
    let cand = top_k(&logits, k);
    assert_eq!(cand.len(), k.min(logits.len()));
    let Ok(mut sampler) = Sampler::new(params) else {
        return;
    };
    let history: Vec<u32> = input.history.iter().take(1024).copied().collect();
    assert!(sampler.sample(&[], &history).is_err());
    assert!(sampler.sample_candidates(Vec::new(), &history).is_err());
    for _ in 0..3 {
        let id = sampler.sample(&logits, &history).expect("logits");
        assert!(id < n, "sampled {id} of {n}");
        let id = sampler
            .sample_candidates(cand.clone(), &history)
            .expect("candidates");
        assert!(
            cand.iter().any(|c| c.0 == id),
            "sampled {id}, not a candidate"
        );
    }
    let mut penalised = logits.clone();
    sampler.apply_penalties(&mut penalised, &history);
});
