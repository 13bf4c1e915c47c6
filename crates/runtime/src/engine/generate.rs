//! Generation on the GPU without blocking the thread: the same [`Generator`] bookkeeping
//! as the blocking [`crate::generate::generate`], driven by awaiting each readback, so a
//! browser page keeps running between tokens. Also measures prefill and decode time.

use super::session::GpuSession;
use crate::generate::{prefix_to_keep, FinishReason, GenerateOptions, Generation, Generator};
use crate::sampling::Sampler;
use crate::tokenizer::Tokenizer;
use crate::Error;

/// Where the time went, in seconds of the caller's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// From the call to the first sampled token (prefill of the uncached prompt).
    pub time_to_first_token_s: f64,
    /// From the first sampled token to the end.
    pub decode_s: f64,
}

/// Hooks of one generation: streamed text (return false to stop), a cancellation check
/// run before every step (each prefill chunk and each token; see
/// [`crate::generate`] for the fault policy), and a clock in seconds (`std::time` does
/// not exist on the web).
pub struct Hooks<'a> {
    pub on_text: &'a mut dyn FnMut(&str) -> bool,
    pub cancelled: &'a dyn Fn() -> bool,
    pub now: &'a dyn Fn() -> f64,
}

/// Generate after `prompt`, reusing the cached prefix.
pub async fn generate_async(
    session: &mut GpuSession,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    hooks: Hooks<'_>,
) -> Result<(Generation, Timings), Error> {
    let start = (hooks.now)();
    let kept = prefix_to_keep(session.cached_tokens(), prompt, session.n_ctx())?;
    session.truncate(kept);
    let mut g = Generator::new(tokenizer, prompt, kept, opts);
    let mut first_token_at = None;
    let finish = loop {
        if let Some(done) = g.limit_reached() {
            break done;
        }
        if (hooks.cancelled)() {
            break FinishReason::Cancelled;
        }
        if let Some(chunk) = g.prefill_chunk() {
            let n = chunk.len();
            session.prefill_async(chunk).await?;
            g.prefilled(n);
            continue;
        }
        let token = session
            .forward_sample_async(g.input(), sampler, g.history())
            .await?;
        first_token_at.get_or_insert_with(|| (hooks.now)());
        let cached = session.cached_tokens().len();
        if let Some(done) = g.accept(token, cached, session.n_ctx(), hooks.on_text) {
            break done;
        }
    };
    let end = (hooks.now)();
    let first = first_token_at.unwrap_or(end);
    let timings = Timings {
        time_to_first_token_s: first - start,
        decode_s: end - first,
    };
    Ok((g.finish(finish, hooks.on_text), timings))
}
