//! The generation loop shared by every front end: prefill (reusing the cached prefix),
//! then sample → stream text → evaluate, until end-of-generation, a stop string, the
//! token limit, a full context, or the caller cancels.

use crate::model::Logits;
use crate::sampling::Sampler;
use crate::tokenizer::{StreamDecoder, Tokenizer};
use crate::Error;

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

    /// Evaluate `tokens` and choose the next token. The default reads the last logits;
    /// the GPU engine overrides it to sample on the device and read back only the token.
    fn forward_sample(
        &mut self,
        tokens: &[u32],
        sampler: &mut Sampler,
        history: &[u32],
    ) -> Result<u32, Error> {
        let logits = self.forward(tokens, Logits::Last)?;
        Ok(sampler.sample(&logits, history))
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context is full.
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
    /// Prompt tokens actually evaluated (the rest came from the cache).
    pub prefilled_tokens: usize,
    pub finish_reason: FinishReason,
}

/// Options of one generation call.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
}

/// Keep the cache's common prefix with `prompt`; returns the tokens still to evaluate
/// (at least one, so there are logits to sample from).
pub fn reuse_prefix<'p>(model: &mut dyn Forward, prompt: &'p [u32]) -> Result<&'p [u32], Error> {
    if prompt.is_empty() {
        return Err(Error::InvalidRequest("empty prompt".into()));
    }
    if prompt.len() > model.n_ctx() {
        return Err(Error::InvalidRequest(format!(
            "the prompt has {} tokens but the context holds {}; shorten it or raise the context size",
            prompt.len(),
            model.n_ctx()
        )));
    }
    let common = model
        .cached_tokens()
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count();
    // At least one token must be evaluated to get logits.
    let keep = common.min(prompt.len() - 1);
    model.truncate(keep);
    Ok(&prompt[keep..])
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
    let mut pending: Vec<u32> = reuse_prefix(model, prompt)?.to_vec();
    let prefilled_tokens = pending.len();
    let mut history: Vec<u32> = prompt.to_vec();
    let mut decoder = StreamDecoder::new(tokenizer, false);
    let mut stops = StopMatcher::new(&opts.stop);
    let mut tokens = Vec::new();
    let max = opts.max_tokens.unwrap_or(usize::MAX);
    let finish = loop {
        if tokens.len() >= max {
            break FinishReason::Length;
        }
        let token = model.forward_sample(&pending, sampler, &history)?;
        if tokenizer.is_eog(token) {
            break FinishReason::Stop;
        }
        tokens.push(token);
        history.push(token);
        let (ready, hit) = stops.push(&decoder.push(token));
        if !ready.is_empty() && !on_text(&ready) {
            break FinishReason::Cancelled;
        }
        if hit {
            break FinishReason::Stop;
        }
        if tokens.len() >= max {
            break FinishReason::Length;
        }
        if model.cached_tokens().len() >= model.n_ctx() {
            break FinishReason::Length;
        }
        pending = vec![token];
    };
    if finish != FinishReason::Stop || !stops.hit {
        let rest = stops.finish(&decoder.finish());
        if !rest.is_empty() && finish != FinishReason::Cancelled {
            on_text(&rest);
        }
    }
    Ok(Generation {
        text: stops.emitted,
        tokens,
        prompt_tokens: prompt.len(),
        prefilled_tokens,
        finish_reason: finish,
    })
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
