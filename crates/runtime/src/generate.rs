//! The generation loop shared by every front end: prefill (reusing the cached prefix),
//! then sample → stream text → evaluate, until end-of-generation, a stop string, the
//! token limit, a full context, or the caller cancels.
//!
//! # Faults (the policy every front end follows)
//!
//! - **Cancellation** is checked before every step: before each prefill chunk of
//!   [`PREFILL_CHUNK`] tokens and before each generated token, so a long prompt stops
//!   within one chunk. A cancelled generation is not an error: it ends with
//!   [`FinishReason::Cancelled`] and returns the text streamed so far. The session keeps
//!   exactly the tokens that were evaluated (a chunk counts once the GPU has finished
//!   it), so the next request reuses that prefix and computes what a fresh session would.
//! - **A full context**: a prompt longer than the context is [`Error::ContextFull`]
//!   before anything is evaluated (the session is unchanged). A generation that fills the
//!   context stops with [`FinishReason::Length`] and returns everything generated; the
//!   last token is sampled from the last position's logits and is not evaluated. Wisp
//!   never drops old tokens by itself: a caller that wants a sliding window shortens the
//!   conversation (keeping the system prompt) and calls again.
//! - **Errors** (a lost device, [`Error::Gpu`]) end the call; the cache still counts only
//!   evaluated positions. After a device loss every later call fails fast (see
//!   [`crate::gpu::device`]).

use crate::model::Logits;
use crate::sampling::Sampler;
use crate::tokenizer::{StreamDecoder, Tokenizer};
use crate::Error;

/// Prompt tokens evaluated per step while prefilling a long prompt: the GPU session's
/// batch (`engine::plan::MAX_BATCH` is defined as this), so each chunk is one submission,
/// and cancellation is checked between chunks. Defined here because the CPU-only build
/// (no `gpu` feature) has no engine.
pub const PREFILL_CHUNK: usize = 256;

/// Something that evaluates tokens against a KV cache: the CPU oracle or the GPU engine.
pub trait Forward {
    /// Context size the KV cache holds.
    fn n_ctx(&self) -> usize;
    /// Tokens currently in the KV cache.
    fn cached_tokens(&self) -> &[u32];
    /// Forget everything after the first `n` cached tokens.
    fn truncate(&mut self, n: usize);
    /// Evaluate `tokens` after the cached ones (they are appended to the cache).
    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>, Error>;

    /// Evaluate `tokens` into the cache without asking for logits (a chunk of a long
    /// prompt); returns once they count as cached. The default computes and drops the
    /// last position's logits.
    fn prefill(&mut self, tokens: &[u32]) -> Result<(), Error> {
        self.forward(tokens, Logits::Last).map(drop)
    }

    /// Evaluate `tokens` and choose the next token. The default reads the last logits;
    /// the GPU engine overrides it to sample on the device and read back only the token.
    fn forward_sample(
        &mut self,
        tokens: &[u32],
        sampler: &mut Sampler,
        history: &[u32],
    ) -> Result<u32, Error> {
        let logits = self.forward(tokens, Logits::Last)?;
        sampler.sample(&logits, history)
    }

    /// The caller will not evaluate more tokens until its next request. A session that
    /// batches its decode steps with others ([`crate::batch`]) stops holding their
    /// steps for it; for every other session this does nothing.
    fn idle(&mut self) {}
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context is full (the text so far is returned).
    Length,
    /// The caller asked to stop.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    /// Prompt tokens actually evaluated (the rest came from the cache, or were never
    /// reached because the call was cancelled during the prefill).
    pub prefilled_tokens: usize,
    pub finish_reason: FinishReason,
}

/// Options of one generation call.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
}

/// How many cached tokens to keep for `prompt`: their common prefix, leaving at least
/// one prompt token to evaluate (so there are logits to sample from).
pub fn prefix_to_keep(cached: &[u32], prompt: &[u32], n_ctx: usize) -> Result<usize, Error> {
    if prompt.is_empty() {
        return Err(Error::InvalidRequest("empty prompt".into()));
    }
    if prompt.len() > n_ctx {
        return Err(Error::ContextFull {
            needed: prompt.len(),
            n_ctx,
        });
    }
    let common = cached
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count();
    Ok(common.min(prompt.len() - 1))
}

/// Keep the cache's common prefix with `prompt`; returns the tokens still to evaluate
/// (at least one, so there are logits to sample from).
pub fn reuse_prefix<'p>(model: &mut dyn Forward, prompt: &'p [u32]) -> Result<&'p [u32], Error> {
    let keep = prefix_to_keep(model.cached_tokens(), prompt, model.n_ctx())?;
    model.truncate(keep);
    Ok(&prompt[keep..])
}

/// The bookkeeping of one generation, apart from evaluating tokens: what to evaluate
/// next, detokenizing, stop strings, limits. Blocking and async drivers share it.
pub struct Generator<'a> {
    tokenizer: &'a Tokenizer,
    decoder: StreamDecoder<'a>,
    stops: StopMatcher<'a>,
    pending: Vec<u32>,
    history: Vec<u32>,
    tokens: Vec<u32>,
    max: usize,
    prompt_tokens: usize,
    prefilled_tokens: usize,
    /// `pending` still holds (the rest of) the prompt.
    in_prompt: bool,
}

impl<'a> Generator<'a> {
    /// Start after `prompt`, of which the first `kept` tokens are already in the cache.
    pub fn new(
        tokenizer: &'a Tokenizer,
        prompt: &[u32],
        kept: usize,
        opts: &'a GenerateOptions,
    ) -> Generator<'a> {
        Generator {
            tokenizer,
            decoder: StreamDecoder::new(tokenizer, false),
            stops: StopMatcher::new(&opts.stop),
            pending: prompt[kept..].to_vec(),
            history: prompt.to_vec(),
            tokens: Vec::new(),
            max: opts.max_tokens.unwrap_or(usize::MAX),
            prompt_tokens: prompt.len(),
            prefilled_tokens: 0,
            in_prompt: true,
        }
    }

    /// `Some(Length)` when the token limit allows no (more) tokens.
    pub fn limit_reached(&self) -> Option<FinishReason> {
        (self.tokens.len() >= self.max).then_some(FinishReason::Length)
    }

    /// The tokens to evaluate next, sampling after them.
    pub fn input(&self) -> &[u32] {
        &self.pending
    }

    /// While more than one [`PREFILL_CHUNK`] of the prompt is left: the next chunk, to
    /// evaluate without sampling (then call [`Generator::prefilled`]).
    pub fn prefill_chunk(&self) -> Option<&[u32]> {
        (self.pending.len() > PREFILL_CHUNK).then(|| &self.pending[..PREFILL_CHUNK])
    }

    /// The first `n` pending prompt tokens are now in the cache.
    pub fn prefilled(&mut self, n: usize) {
        self.pending.drain(..n);
        self.prefilled_tokens += n;
    }

    /// The prompt and the tokens generated so far (for repetition penalties).
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> usize {
        self.tokens.len()
    }

    /// Take the sampled `token` (the input is now in the cache, which holds `cached` of
    /// `n_ctx` tokens); returns why generation ends, if it does.
    pub fn accept(
        &mut self,
        token: u32,
        cached: usize,
        n_ctx: usize,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Option<FinishReason> {
        if std::mem::take(&mut self.in_prompt) {
            self.prefilled_tokens += self.pending.len();
        }
        if self.tokenizer.is_eog(token) {
            return Some(FinishReason::Stop);
        }
        self.tokens.push(token);
        self.history.push(token);
        let (ready, hit) = self.stops.push(&self.decoder.push(token));
        if !ready.is_empty() && !on_text(&ready) {
            return Some(FinishReason::Cancelled);
        }
        if hit {
            return Some(FinishReason::Stop);
        }
        if self.tokens.len() >= self.max || cached >= n_ctx {
            return Some(FinishReason::Length);
        }
        self.pending = vec![token];
        None
    }

    /// Flush held-back text and describe the result.
    pub fn finish(
        mut self,
        finish: FinishReason,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Generation {
        if finish != FinishReason::Stop || !self.stops.hit {
            let rest = self.stops.finish(&self.decoder.finish());
            if !rest.is_empty() && finish != FinishReason::Cancelled {
                on_text(&rest);
            }
        }
        Generation {
            text: self.stops.emitted,
            tokens: self.tokens,
            prompt_tokens: self.prompt_tokens,
            prefilled_tokens: self.prefilled_tokens,
            finish_reason: finish,
        }
    }
}

/// Generate after `prompt`, calling `on_text` with each piece of text as soon as it is
/// final (whole UTF-8 characters, never part of a stop string); `on_text` returns false
/// to cancel.
pub fn generate(
    model: &mut dyn Forward,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation, Error> {
    generate_cancellable(model, tokenizer, sampler, prompt, opts, on_text, &|| false)
}

/// [`generate`], also stopping (with [`FinishReason::Cancelled`]) as soon as
/// `cancelled()` returns true: it is asked before each prefill chunk and each token, so
/// another thread can stop a long prompt's prefill.
pub fn generate_cancellable(
    model: &mut dyn Forward,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
    cancelled: &dyn Fn() -> bool,
) -> Result<Generation, Error> {
    let result = generate_steps(model, tokenizer, sampler, prompt, opts, on_text, cancelled);
    model.idle();
    result
}

fn generate_steps(
    model: &mut dyn Forward,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
    cancelled: &dyn Fn() -> bool,
) -> Result<Generation, Error> {
    let kept = prefix_to_keep(model.cached_tokens(), prompt, model.n_ctx())?;
    model.truncate(kept);
    let mut g = Generator::new(tokenizer, prompt, kept, opts);
    let finish = loop {
        if let Some(done) = g.limit_reached() {
            break done;
        }
        if cancelled() {
            break FinishReason::Cancelled;
        }
        if let Some(chunk) = g.prefill_chunk() {
            let n = chunk.len();
            model.prefill(chunk)?;
            g.prefilled(n);
            continue;
        }
        let token = model.forward_sample(g.input(), sampler, g.history())?;
        if let Some(done) = g.accept(token, model.cached_tokens().len(), model.n_ctx(), on_text) {
            break done;
        }
    };
    Ok(g.finish(finish, on_text))
}

/// Holds back text that could still turn into a stop string.
struct StopMatcher<'a> {
    stops: &'a [String],
    pending: String,
    emitted: String,
    hit: bool,
}

impl<'a> StopMatcher<'a> {
    fn new(stops: &'a [String]) -> Self {
        StopMatcher {
            stops,
            pending: String::new(),
            emitted: String::new(),
            hit: false,
        }
    }

    /// Add text; returns what may be emitted now and whether a stop string was found.
    fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        let stops = self.stops.iter().filter(|s| !s.is_empty());
        if let Some(at) = stops
            .clone()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            self.hit = true;
            let out = self.pending[..at].to_string();
            self.pending.clear();
            self.emitted.push_str(&out);
            return (out, true);
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let mut hold = 0;
        for s in stops {
            for (i, _) in self.pending.char_indices() {
                let suffix = &self.pending[i..];
                if s.starts_with(suffix) {
                    hold = hold.max(suffix.len());
                    break;
                }
            }
        }
        let cut = self.pending.len() - hold;
        let out: String = self.pending.drain(..cut).collect();
        self.emitted.push_str(&out);
        (out, false)
    }

    fn finish(&mut self, tail: &str) -> String {
        self.pending.push_str(tail);
        let out = std::mem::take(&mut self.pending);
        self.emitted.push_str(&out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    #[test]
    fn stop_strings_split_across_pieces() {
        let stops = vec!["\nUser:".to_string(), "###".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("Hello"), ("Hello".into(), false));
        assert_eq!(m.push(" world\nUs"), (" world".into(), false));
        assert_eq!(m.push("er: hi"), ("".into(), true));
        assert_eq!(m.emitted, "Hello world");
    }

    #[test]
    fn held_text_is_released_when_it_diverges() {
        let stops = vec!["###".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("a#"), ("a".into(), false));
        assert_eq!(m.push("#b"), ("##b".into(), false));
        assert_eq!(m.finish("#"), "#");
        assert_eq!(m.emitted, "a##b#");
    }
}
