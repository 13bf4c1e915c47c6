//! Sessions over one loaded model: a conversation continues without re-evaluating the
//! shared prefix, cancellation stops generation and leaves the session usable, two
//! sessions interleave without disturbing each other, and a full context is an error.

use std::sync::Arc;
use wisp::engine::{GpuModel, GpuSession, LoadControl, SliceSource};
use wisp::generate::{generate, FinishReason, Forward, GenerateOptions};
use wisp::gguf::GgufFile;
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::model::Logits;
use wisp::sampling::{Sampler, SamplingParams};
use wisp::tokenizer::Tokenizer;

fn setup() -> (Tokenizer, Arc<GpuModel>) {
    let file = GgufFile::open(&wisp_e2e::model_path("smollm2")).expect("open");
    let tok = Tokenizer::from_gguf(&file.header).expect("tokenizer");
    let ctx = Arc::new(GpuContext::new_blocking(&DeviceOptions::default()).expect("device"));
    (tok, wisp_e2e::gpu_model(ctx, &file, 256).expect("load"))
}

fn greedy() -> Sampler {
    Sampler::new(SamplingParams::greedy()).unwrap()
}

fn run(
    session: &mut GpuSession,
    tok: &Tokenizer,
    prompt: &[u32],
    n: usize,
) -> wisp::generate::Generation {
    let opts = GenerateOptions {
        max_tokens: Some(n),
        stop: vec![],
    };
    generate(session, tok, &mut greedy(), prompt, &opts, &mut |_| true).expect("generate")
}

#[test]
fn sessions_share_a_model_reuse_prefixes_and_recover_from_cancel() {
    let (tok, model) = setup();
    let first = tok.encode("The capital of France is", false);
    let mut a = GpuSession::new(Arc::clone(&model), 256).unwrap();
    let g1 = run(&mut a, &tok, &first, 6);
    assert_eq!(g1.prefilled_tokens, first.len());

    // Continue the conversation: only the new tokens are evaluated.
    let mut second = first.clone();
    second.extend(&g1.tokens);
    second.extend(tok.encode(" And the capital of Italy is", false));
    let g2 = run(&mut a, &tok, &second, 6);
    assert!(
        g2.prefilled_tokens < second.len() - first.len() + 2,
        "prefix reused: {}",
        g2.prefilled_tokens
    );

    // A fresh session computes the same continuation from scratch.
    let mut fresh = GpuSession::new(Arc::clone(&model), 256).unwrap();
    let g2_fresh = run(&mut fresh, &tok, &second, 6);
    assert_eq!(g2.tokens, g2_fresh.tokens);

    // Interleaving a second session does not disturb the first.
    let mut b = GpuSession::new(Arc::clone(&model), 256).unwrap();
    let other = tok.encode("def fibonacci(n):", false);
    let gb = run(&mut b, &tok, &other, 4);
    let g2_again = run(&mut a, &tok, &second, 6);
    assert_eq!(g2_again.tokens, g2.tokens);
    let mut b2 = GpuSession::new(Arc::clone(&model), 256).unwrap();
    assert_eq!(run(&mut b2, &tok, &other, 4).tokens, gb.tokens);

    // Cancel after the first piece of text; the session still works afterwards.
    let opts = GenerateOptions {
        max_tokens: Some(10),
        stop: vec![],
    };
    let cancelled = generate(&mut a, &tok, &mut greedy(), &first, &opts, &mut |_| false).unwrap();
    assert_eq!(cancelled.finish_reason, FinishReason::Cancelled);
    assert!(cancelled.tokens.len() <= 2);
    assert_eq!(run(&mut a, &tok, &first, 6).tokens, g1.tokens);
}

#[test]
fn a_full_context_is_a_typed_error() {
    let (tok, model) = setup();
    let mut s = GpuSession::new(model, 8).unwrap();
    let ids = tok.encode("one two three four five six seven eight nine ten", false);
    assert!(ids.len() > 8);
    let err = s.forward(&ids, Logits::Last).unwrap_err();
    assert!(err.to_string().contains("context"), "{err}");
    // Generation stops with finish reason `length` when the context fills up.
    let g = run(&mut s, &tok, &ids[..6], 50);
    assert_eq!(g.finish_reason, FinishReason::Length);
    assert!(g.tokens.len() <= 3);
}

/// A source that hands out bytes in awkward piece sizes (1, 3, 5 bytes and odd
/// megabytes), so piece boundaries fall inside 4-byte words and across row chunks.
struct RaggedSource<'a>(&'a [u8]);

impl wisp::engine::ByteSource for RaggedSource<'_> {
    fn total_len(&self) -> Option<u64> {
        Some(self.0.len() as u64)
    }

    fn read_range(
        &mut self,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), wisp::Error>,
    ) -> Result<(), wisp::Error> {
        const SIZES: [usize; 5] = [1, 1_048_573, 3, 524_287, 5];
        let mut at = start as usize;
        let mut i = 0;
        while at < end as usize {
            let n = SIZES[i % SIZES.len()].min(end as usize - at);
            sink(&self.0[at..at + n])?;
            at += n;
            i += 1;
        }
        Ok(())
    }
}

#[test]
fn an_upload_in_unaligned_pieces_computes_the_same_logits() {
    let file = GgufFile::open(&wisp_e2e::model_path("smollm2")).expect("open");
    let tok = Tokenizer::from_gguf(&file.header).expect("tokenizer");
    let ctx = Arc::new(GpuContext::new_blocking(&DeviceOptions::default()).expect("device"));
    let load = |source: &mut dyn wisp::engine::ByteSource| {
        let model = GpuModel::load(
            Arc::clone(&ctx),
            &file.header,
            source,
            &LoadControl::default(),
            64,
            None,
        )
        .expect("load");
        let mut s = GpuSession::new(Arc::new(model), 64).unwrap();
        s.forward(&tok.encode("Pieces of any size", false), Logits::All)
            .unwrap()
    };
    let whole = load(&mut SliceSource(file.bytes()));
    let ragged = load(&mut RaggedSource(file.bytes()));
    assert_eq!(whole, ragged, "the same bytes must reach the GPU");
}
