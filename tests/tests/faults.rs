//! Runtime faults on a real device (lavapipe in CI) with SmolLM2: cancelling during the
//! prefill and during decoding, a full context, a lost device, and sessions sharing one
//! model. The policy these tests hold the engine to is in `wisp::generate`'s module docs.
//!
//! Run with `--nocapture` to see the measured cancel latency.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wisp::engine::{generate_async, GpuModel, GpuSession, Hooks};
use wisp::generate::{
    generate, generate_cancellable, FinishReason, Forward, GenerateOptions, Generation,
    PREFILL_CHUNK,
};
use wisp::gguf::GgufFile;
use wisp::gpu::wait::block_on;
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::model::Logits;
use wisp::sampling::{Sampler, SamplingParams};
use wisp::tokenizer::Tokenizer;
use wisp::Error;

struct Setup {
    file: GgufFile,
    tok: Tokenizer,
}

fn setup() -> Setup {
    let file = GgufFile::open(&wisp_e2e::model_path("smollm2")).expect("open");
    let tok = Tokenizer::from_gguf(&file.header).expect("tokenizer");
    Setup { file, tok }
}

impl Setup {
    /// A new device and the model loaded on it.
    fn load(&self) -> Arc<GpuModel> {
        let ctx = Arc::new(GpuContext::new_blocking(&DeviceOptions::default()).expect("device"));
        self.load_on(ctx).expect("load")
    }

    fn load_on(&self, ctx: Arc<GpuContext>) -> Result<Arc<GpuModel>, Error> {
        wisp_e2e::gpu_model(ctx, &self.file, 1024)
    }
}

fn greedy() -> Sampler {
    Sampler::new(SamplingParams::greedy()).unwrap()
}

fn opts(n: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens: Some(n),
        stop: vec![],
    }
}

fn run(s: &mut GpuSession, tok: &Tokenizer, prompt: &[u32], n: usize) -> Generation {
    generate(s, tok, &mut greedy(), prompt, &opts(n), &mut |_| true).expect("generate")
}

/// What a fresh session generates greedily after `prompt`.
fn fresh(model: &Arc<GpuModel>, tok: &Tokenizer, prompt: &[u32], n: usize) -> Generation {
    let mut s = GpuSession::new(Arc::clone(model), 1024).unwrap();
    run(&mut s, tok, prompt, n)
}

/// A prompt of about 400 tokens: two prefill chunks.
fn long_prompt(tok: &Tokenizer) -> Vec<u32> {
    let text = "The history of the city begins with a small market on the river. \
                Traders came from the hills with wool and salt, and from the coast with fish. "
        .repeat(14);
    let mut ids = tok.encode(&text, false);
    ids.truncate(400);
    assert!(
        ids.len() == 400 && ids.len() > PREFILL_CHUNK,
        "{}",
        ids.len()
    );
    ids
}

#[test]
fn cancel_during_prefill_stops_between_chunks_and_the_session_stays_usable() {
    let t = setup();
    let model = t.load();
    let prompt = long_prompt(&t.tok);

    // The reference, and how long the uncancelled request takes.
    let started = Instant::now();
    let reference = fresh(&model, &t.tok, &prompt, 8);
    let full_s = started.elapsed().as_secs_f64();
    assert_eq!(reference.prefilled_tokens, prompt.len());

    // The async driver (the browser's): cancelled when asked the second time, i.e. after
    // the first chunk. Exactly that chunk is cached, nothing half-written.
    let mut s = GpuSession::new(Arc::clone(&model), 1024).unwrap();
    let asked = AtomicUsize::new(0);
    let (g, _) = block_on(generate_async(
        &mut s,
        &t.tok,
        &mut greedy(),
        &prompt,
        &opts(8),
        Hooks {
            on_text: &mut |_| true,
            cancelled: &|| asked.fetch_add(1, Ordering::Relaxed) >= 1,
            now: &|| 0.0,
        },
    ))
    .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert!(g.tokens.is_empty() && g.text.is_empty());
    assert_eq!(g.prefilled_tokens, PREFILL_CHUNK);
    assert_eq!(s.cached_tokens(), &prompt[..PREFILL_CHUNK]);
    // The next request reuses that chunk and computes what a fresh session computes.
    let again = run(&mut s, &t.tok, &prompt, 8);
    assert_eq!(again.prefilled_tokens, prompt.len() - PREFILL_CHUNK);
    assert_eq!(again.tokens, reference.tokens);
    assert_eq!(again.text, reference.text);

    // The blocking driver, cancelled from another thread as soon as the prefill has
    // started (so during the first chunk): the measured latency is the worst case, one
    // chunk's evaluation.
    s.truncate(0);
    let started = AtomicBool::new(false);
    let flag = AtomicBool::new(false);
    let (g, latency) = std::thread::scope(|scope| {
        let canceller = scope.spawn(|| {
            while !started.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            flag.store(true, Ordering::Release);
            Instant::now()
        });
        let g = generate_cancellable(
            &mut s,
            &t.tok,
            &mut greedy(),
            &prompt,
            &opts(8),
            &mut |_| true,
            &|| {
                started.store(true, Ordering::Release);
                flag.load(Ordering::Acquire)
            },
        )
        .unwrap();
        let returned = Instant::now();
        (g, returned.duration_since(canceller.join().unwrap()))
    });
    eprintln!(
        "cancel on a {}-token prompt took effect {:.0} ms after the flag was set \
         (the uncancelled request: {:.0} ms; chunk = {PREFILL_CHUNK} tokens, {} cached)",
        prompt.len(),
        latency.as_secs_f64() * 1e3,
        full_s * 1e3,
        s.cached_tokens().len()
    );
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert!(g.tokens.is_empty(), "cancelled before the first token");
    assert_eq!(
        s.cached_tokens(),
        &prompt[..PREFILL_CHUNK],
        "the second chunk must not start after the cancel"
    );
    assert!(latency.as_secs_f64() < full_s, "{latency:?} vs {full_s} s");
    assert_eq!(run(&mut s, &t.tok, &prompt, 8).tokens, reference.tokens);
}

#[test]
fn cancel_during_decode_keeps_exactly_the_evaluated_tokens() {
    let t = setup();
    let model = t.load();
    let prompt = t
        .tok
        .encode("Once upon a time, in a land far away, there lived", false);
    let reference = fresh(&model, &t.tok, &prompt, 12);
    assert_eq!(reference.tokens.len(), 12);

    for driver in ["blocking", "async"] {
        let mut s = GpuSession::new(Arc::clone(&model), 1024).unwrap();
        // Cancelled (by the flag) once three pieces of text were streamed.
        let pieces = AtomicUsize::new(0);
        let mut on_text = |_: &str| {
            pieces.fetch_add(1, Ordering::Relaxed);
            true
        };
        let cancelled = || pieces.load(Ordering::Relaxed) >= 3;
        let g = if driver == "blocking" {
            generate_cancellable(
                &mut s,
                &t.tok,
                &mut greedy(),
                &prompt,
                &opts(12),
                &mut on_text,
                &cancelled,
            )
            .unwrap()
        } else {
            block_on(generate_async(
                &mut s,
                &t.tok,
                &mut greedy(),
                &prompt,
                &opts(12),
                Hooks {
                    on_text: &mut on_text,
                    cancelled: &cancelled,
                    now: &|| 0.0,
                },
            ))
            .unwrap()
            .0
        };
        assert_eq!(g.finish_reason, FinishReason::Cancelled, "{driver}");
        let n = g.tokens.len();
        assert!((3..12).contains(&n), "{driver}: {n} tokens");
        assert_eq!(g.tokens, reference.tokens[..n], "{driver}");
        // The last sampled token was never evaluated: the cache holds the prompt and
        // the tokens before it, nothing more.
        let mut evaluated = prompt.clone();
        evaluated.extend(&g.tokens[..n - 1]);
        assert_eq!(s.cached_tokens(), &evaluated[..], "{driver}");

        // The same request again gives the uncancelled answer…
        assert_eq!(run(&mut s, &t.tok, &prompt, 12).tokens, reference.tokens);
        // …and a continuation computes what a fresh session computes.
        let mut next = prompt.clone();
        next.extend(&g.tokens);
        next.extend(t.tok.encode(" The end. Another story:", false));
        let cont = run(&mut s, &t.tok, &next, 8);
        assert!(cont.prefilled_tokens < next.len(), "the prefix is reused");
        assert_eq!(
            cont.tokens,
            fresh(&model, &t.tok, &next, 8).tokens,
            "{driver}"
        );
    }
}

#[test]
fn a_full_context_is_a_typed_error_or_finish_reason_length() {
    let t = setup();
    let model = t.load();
    let mut s = GpuSession::new(Arc::clone(&model), 64).unwrap();
    let short = t.tok.encode("The capital of France is", false);
    run(&mut s, &t.tok, &short, 2);
    let cached = s.cached_tokens().to_vec();

    // A prompt longer than the context: a typed error naming the sizes, nothing evaluated.
    let long: Vec<u32> = long_prompt(&t.tok)[..80].to_vec();
    let err = generate(&mut s, &t.tok, &mut greedy(), &long, &opts(4), &mut |_| {
        true
    })
    .unwrap_err();
    assert_eq!(
        err,
        Error::ContextFull {
            needed: 80,
            n_ctx: 64
        }
    );
    assert!(err.to_string().contains("64"), "{err}");
    assert_eq!(s.cached_tokens(), &cached[..], "the session is unchanged");
    let err = block_on(generate_async(
        &mut s,
        &t.tok,
        &mut greedy(),
        &long,
        &opts(4),
        Hooks {
            on_text: &mut |_| true,
            cancelled: &|| false,
            now: &|| 0.0,
        },
    ))
    .unwrap_err();
    assert_eq!(
        err,
        Error::ContextFull {
            needed: 80,
            n_ctx: 64
        }
    );
    // Evaluating past the end directly is the same error.
    let err = s.forward(&long[..70], Logits::Last).unwrap_err();
    assert!(
        matches!(err, Error::ContextFull { n_ctx: 64, .. }),
        "{err:?}"
    );

    // A generation that fills the context stops with `length` and loses nothing: its
    // tokens and text are what a large context generates for as many tokens.
    let prompt = &long[..60];
    let mut streamed = String::new();
    let g = generate(
        &mut s,
        &t.tok,
        &mut greedy(),
        prompt,
        &opts(50),
        &mut |piece| {
            streamed.push_str(piece);
            true
        },
    )
    .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Length);
    assert_eq!(
        g.tokens.len(),
        64 - 60 + 1,
        "the last token needs no position"
    );
    assert_eq!(s.cached_tokens().len(), 64);
    let unbounded = fresh(&model, &t.tok, prompt, g.tokens.len());
    assert_eq!(g.tokens, unbounded.tokens);
    assert_eq!(g.text, unbounded.text);
    assert_eq!(streamed, g.text, "all of the text was streamed");

    // A prompt of exactly the context size still gets one token.
    let g = run(&mut s, &t.tok, &long[..64], 10);
    assert_eq!((g.finish_reason, g.tokens.len()), (FinishReason::Length, 1));
}

fn is_device_lost(e: &Error) -> bool {
    matches!(e, Error::Gpu(m) if m.contains("device lost"))
}

#[test]
fn a_lost_device_is_an_error_and_a_new_engine_works() {
    let t = setup();
    let prompt = t.tok.encode("The capital of France is", false);
    let model = t.load();
    let mut s = GpuSession::new(Arc::clone(&model), 256).unwrap();
    let before = run(&mut s, &t.tok, &prompt, 8);
    assert_eq!(before.tokens.len(), 8);

    // Lost in the middle of a generation (after the second piece of text).
    let pieces = AtomicUsize::new(0);
    let ctx = Arc::clone(&model.ctx);
    let mut destroyed_at = None;
    let err = generate(
        &mut s,
        &t.tok,
        &mut greedy(),
        &t.tok.encode("Paris is a city where", false),
        &opts(8),
        &mut |_| {
            if pieces.fetch_add(1, Ordering::Relaxed) == 1 {
                ctx.device.destroy();
                destroyed_at = Some(Instant::now());
            }
            true
        },
    )
    .unwrap_err();
    let noticed = destroyed_at.expect("destroyed").elapsed();
    assert!(is_device_lost(&err), "{err:?}");
    assert!(model.ctx.is_lost());
    eprintln!("lost mid-generation: {err} ({noticed:?} after the destroy)");

    // Every later call fails fast with the same error.
    let started = Instant::now();
    let err = generate(
        &mut s,
        &t.tok,
        &mut greedy(),
        &prompt,
        &opts(4),
        &mut |_| true,
    )
    .unwrap_err();
    assert!(is_device_lost(&err), "{err:?}");
    let err = block_on(generate_async(
        &mut s,
        &t.tok,
        &mut greedy(),
        &prompt,
        &opts(4),
        Hooks {
            on_text: &mut |_| true,
            cancelled: &|| false,
            now: &|| 0.0,
        },
    ))
    .unwrap_err();
    assert!(is_device_lost(&err), "{err:?}");
    s.truncate(0);
    let err = s.forward(&prompt, Logits::All).unwrap_err();
    assert!(is_device_lost(&err), "{err:?}");
    let long = long_prompt(&t.tok);
    s.truncate(0);
    let err = generate(
        &mut s,
        &t.tok,
        &mut greedy(),
        &long[..255],
        &opts(2),
        &mut |_| true,
    )
    .unwrap_err();
    assert!(is_device_lost(&err), "{err:?}");
    let fail_fast = started.elapsed();
    assert!(fail_fast < Duration::from_secs(2), "{fail_fast:?}");
    // New sessions and loads on the lost device are refused too.
    let err = GpuSession::new(Arc::clone(&model), 64)
        .err()
        .expect("refused");
    assert!(is_device_lost(&err), "{err:?}");
    let err = t.load_on(Arc::clone(&model.ctx)).err().expect("refused");
    assert!(is_device_lost(&err), "{err:?}");
    drop((s, model));

    // Lost between calls, on a second device.
    let model = t.load();
    let mut s = GpuSession::new(Arc::clone(&model), 256).unwrap();
    assert_eq!(run(&mut s, &t.tok, &prompt, 8).tokens, before.tokens);
    model.ctx.device.destroy();
    // Before anything waited on the device (so before wgpu reported the loss), a new
    // session is an error too, not a panic (wgpu panics mapping a lost device's buffer).
    let err = GpuSession::new(Arc::clone(&model), 64)
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Gpu(_)), "{err:?}");
    let err = generate(
        &mut s,
        &t.tok,
        &mut greedy(),
        &prompt,
        &opts(4),
        &mut |_| true,
    )
    .unwrap_err();
    assert!(is_device_lost(&err), "{err:?}");
    drop((s, model));

    // A new engine in the same process computes the same greedy tokens as before.
    let model = t.load();
    let mut s = GpuSession::new(Arc::clone(&model), 256).unwrap();
    assert_eq!(run(&mut s, &t.tok, &prompt, 8).tokens, before.tokens);
}

#[test]
fn sessions_sharing_a_model_interleave_token_by_token() {
    let t = setup();
    let model = t.load();
    let prompts = [
        t.tok.encode("The capital of France is", false),
        t.tok.encode("def fibonacci(n):\n", false),
        t.tok
            .encode("Here is a list of colours: red, green,", false),
    ];
    const N: usize = 10;
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let g = fresh(&model, &t.tok, p, N);
            assert_eq!(g.tokens.len(), N, "no early end-of-generation");
            g.tokens
        })
        .collect();

    // One step of each session in turn: prompt by prompt (prefill chunks included), then
    // token by token, exactly as `generate` steps each alone.
    let mut sessions: Vec<GpuSession> = prompts
        .iter()
        .map(|_| GpuSession::new(Arc::clone(&model), 1024).unwrap())
        .collect();
    let mut pending: Vec<Vec<u32>> = prompts.to_vec();
    let mut out = vec![Vec::new(); prompts.len()];
    let mut history: Vec<Vec<u32>> = prompts.to_vec();
    for _ in 0..N {
        for i in 0..sessions.len() {
            while pending[i].len() > PREFILL_CHUNK {
                let chunk: Vec<u32> = pending[i].drain(..PREFILL_CHUNK).collect();
                sessions[i].prefill(&chunk).unwrap();
            }
            let token = sessions[i]
                .forward_sample(&pending[i], &mut greedy(), &history[i])
                .unwrap();
            out[i].push(token);
            history[i].push(token);
            pending[i] = vec![token];
        }
    }
    assert_eq!(out, alone);

    // Concurrently from threads, each generating with its own session.
    let threaded: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| scope.spawn(|| fresh(&model, &t.tok, p, N).tokens))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(threaded, alone);
}
