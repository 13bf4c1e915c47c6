//! One request's generation on a leased session, run on a blocking thread.

use super::api::Settings;
use super::sessions::Lease;
use super::App;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wisp::generate::{generate_cancellable, Forward, Generation};
use wisp::model::Logits;
use wisp::sampling::Sampler;

/// What a generating thread tells a stream.
pub enum Event {
    Text(String),
    Done(Result<Generation, wisp::Error>),
}

/// Set on drop: the request's future or stream went away, so its generation stops.
pub struct CancelOnDrop(Arc<AtomicBool>);

impl CancelOnDrop {
    pub fn new() -> CancelOnDrop {
        CancelOnDrop(Arc::new(AtomicBool::new(false)))
    }

    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A session whose sampled logits get `logit_bias` added first. The GPU engine then
/// reads back the whole logit row instead of sampling on the device: slower, exact.
struct Biased<'a> {
    inner: &'a mut dyn Forward,
    bias: &'a [(u32, f32)],
}

impl Forward for Biased<'_> {
    fn n_ctx(&self) -> usize {
        self.inner.n_ctx()
    }
    fn cached_tokens(&self) -> &[u32] {
        self.inner.cached_tokens()
    }
    fn truncate(&mut self, n: usize) {
        self.inner.truncate(n)
    }
    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>, wisp::Error> {
        self.inner.forward(tokens, logits)
    }
    fn prefill(&mut self, tokens: &[u32]) -> Result<(), wisp::Error> {
        self.inner.prefill(tokens)
    }
    fn forward_sample(
        &mut self,
        tokens: &[u32],
        sampler: &mut Sampler,
        history: &[u32],
    ) -> Result<u32, wisp::Error> {
        let mut logits = self.inner.forward(tokens, Logits::Last)?;
        for &(id, b) in self.bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l += b;
            }
        }
        sampler.sample(&logits, history)
    }
    fn idle(&mut self) {
        self.inner.idle()
    }
}

/// Generate `prompt` on the leased session, stopping early when `cancel` is set or the
/// server's shutdown grace is over. Blocking: call from a blocking thread.
pub fn run(
    app: &App,
    lease: &mut Lease,
    prompt: &[u32],
    settings: &Settings,
    cancel: &AtomicBool,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation, wisp::Error> {
    let mut sampler = Sampler::new(settings.sampling.clone())?;
    let cancelled = || cancel.load(Ordering::Acquire) || app.shutting_down.load(Ordering::Acquire);
    let session = lease.session();
    let mut biased;
    // Only a request with a bias pays for the whole logit row (see `Biased`).
    let model: &mut dyn Forward = if settings.logit_bias.is_empty() {
        session
    } else {
        biased = Biased {
            inner: session,
            bias: &settings.logit_bias,
        };
        &mut biased
    };
    generate_cancellable(
        model,
        &app.loaded.tokenizer,
        &mut sampler,
        prompt,
        &settings.options,
        on_text,
        &cancelled,
    )
}
