//! The `Engine`'s fault paths on the GPU (lavapipe in CI) with SmolLM2: a cancelled
//! generation (during the prefill and during decoding) leaves the engine answering as a
//! fresh one does, and a prompt longer than the context is `WispError::ContextFull`.
//! The model comes from `cargo xtask fetch-models` (`$WISP_MODELS`, default
//! `target/models`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wisp_ffi::{
    greedy_options, Engine, EngineConfig, FinishReason, GenerationOptions, TokenListener, WispError,
};

fn model_path() -> String {
    let dir = std::env::var_os("WISP_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models"));
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask fetch-models` first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

fn engine(context_size: u32) -> Arc<Engine> {
    let config = EngineConfig {
        context_size: Some(context_size),
        ..EngineConfig::default()
    };
    Engine::new(model_path(), config, None, None).expect("load")
}

fn greedy(max_tokens: u32) -> GenerationOptions {
    GenerationOptions {
        max_tokens: Some(max_tokens),
        ..greedy_options()
    }
}

/// Stops (returns false) after `limit` pieces of text.
struct StopAfter {
    limit: usize,
    seen: AtomicUsize,
}

impl TokenListener for StopAfter {
    fn on_text(&self, _text: String) -> bool {
        self.seen.fetch_add(1, Ordering::Relaxed) + 1 < self.limit
    }
}

/// About 290 tokens: two prefill chunks (256 + the rest).
fn long_prompt() -> String {
    "The history of the city begins with a small market on the river. \
     Traders came from the hills with wool and salt, and from the coast with fish. "
        .repeat(9)
}

#[test]
fn a_cancelled_generation_leaves_the_engine_answering_as_a_fresh_one() {
    let e = engine(1024);
    let prompt = long_prompt();
    let reference = e.complete(prompt.clone(), greedy(8), None).unwrap();
    assert_eq!(reference.finish_reason, FinishReason::Length);
    assert!(reference.usage.prompt_tokens > 256, "{:?}", reference.usage);

    // `cancel()` from another thread while the long prompt is being evaluated.
    e.reset();
    let canceller = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            e.cancel();
        })
    };
    let c = e.complete(prompt.clone(), greedy(8), None).unwrap();
    canceller.join().unwrap();
    assert_eq!(c.finish_reason, FinishReason::Cancelled);
    assert_eq!(
        (c.text.as_str(), c.usage.completion_tokens),
        ("", 0),
        "cancelled during the prefill"
    );
    // The next call reuses what was evaluated and answers as before.
    let again = e.complete(prompt.clone(), greedy(8), None).unwrap();
    assert_eq!(again.usage.cached_prompt_tokens, 256, "{:?}", again.usage);
    assert_eq!(again.text, reference.text);

    // Cancelled by the listener during decoding: the text so far is returned.
    let stop = Arc::new(StopAfter {
        limit: 3,
        seen: AtomicUsize::new(0),
    });
    let c = e
        .complete(prompt.clone(), greedy(8), Some(stop.clone()))
        .unwrap();
    assert_eq!(c.finish_reason, FinishReason::Cancelled);
    assert!(!c.text.is_empty() && reference.text.starts_with(&c.text));
    let again = e.complete(prompt, greedy(8), None).unwrap();
    assert_eq!(again.text, reference.text);
}

#[test]
fn a_prompt_longer_than_the_context_is_context_full() {
    let e = engine(32);
    let err = e.complete(long_prompt(), greedy(8), None).unwrap_err();
    match &err {
        WispError::ContextFull {
            needed,
            context_size,
            detail,
        } => {
            assert!(*needed > 32, "{err}");
            assert_eq!(*context_size, 32);
            assert!(detail.contains("32"), "{detail}");
        }
        other => panic!("expected ContextFull, got {other:?}"),
    }
    // The engine still works, and an answer that fills the context ends with `Length`
    // (counting never reaches end-of-generation this soon).
    let c = e
        .complete("Counting: 1, 2, 3, 4, 5,".into(), greedy(200), None)
        .unwrap();
    assert_eq!(c.finish_reason, FinishReason::Length, "{c:?}");
    assert!(c.text.starts_with(" 6"), "{:?}", c.text);
    assert_eq!(c.usage.prompt_tokens + c.usage.completion_tokens, 33);
}
