//! Response bodies in OpenAI's shapes: `chat.completion` / `chat.completion.chunk` and
//! `text_completion` (whole and streamed).

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use wisp::generate::{FinishReason, Generation};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// What every body of one response carries.
pub struct Reply {
    pub kind: Kind,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub fingerprint: String,
    /// `/v1/completions` with `echo`: the prompt text comes first.
    pub echo: Option<String>,
    pub include_usage: bool,
}

/// A fresh id, e.g. `chatcmpl-3f…`: unique within the process, unpredictable across runs.
pub fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut rng = wisp::sampling::Rng::new(crate::prompt::random_seed() ^ n.rotate_left(32));
    format!("{prefix}-{:016x}{:08x}", rng.next_u64(), n)
}

pub fn finish_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        // A cancelled generation only reaches a client at shutdown.
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

impl Reply {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        })
    }

    /// The whole (non-streamed) response.
    pub fn full(&self, g: &Generation) -> Value {
        let text = match &self.echo {
            Some(p) => format!("{p}{}", g.text),
            None => g.text.clone(),
        };
        let finish = finish_str(g.finish_reason);
        let choice = match self.kind {
            Kind::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish,
            }),
            Kind::Completion => json!({
                "index": 0, "text": text, "logprobs": null, "finish_reason": finish,
            }),
        };
        let mut v = self.envelope(false, json!([choice]));
        v["usage"] = usage(g.prompt_tokens, g.tokens.len());
        v
    }

    fn chunk(&self, delta_or_text: Value, finish: Option<&str>) -> Value {
        let choice = match self.kind {
            Kind::Chat => json!({
                "index": 0, "delta": delta_or_text, "logprobs": null, "finish_reason": finish,
            }),
            Kind::Completion => json!({
                "index": 0, "text": delta_or_text, "logprobs": null, "finish_reason": finish,
            }),
        };
        let mut v = self.envelope(true, json!([choice]));
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// What a stream starts with: the assistant role (chat), the echoed prompt.
    pub fn first_chunk(&self) -> Option<Value> {
        match self.kind {
            Kind::Chat => Some(self.chunk(
                json!({"role": "assistant", "content": self.echo.clone().unwrap_or_default()}),
                None,
            )),
            Kind::Completion => self.echo.as_ref().map(|p| self.chunk(json!(p), None)),
        }
    }

    pub fn text_chunk(&self, text: &str) -> Value {
        match self.kind {
            Kind::Chat => self.chunk(json!({"content": text}), None),
            Kind::Completion => self.chunk(json!(text), None),
        }
    }

    pub fn finish_chunk(&self, finish: FinishReason) -> Value {
        let empty = match self.kind {
            Kind::Chat => json!({}),
            Kind::Completion => json!(""),
        };
        self.chunk(empty, Some(finish_str(finish)))
    }

    /// `stream_options.include_usage`: the last chunk, with no choices.
    pub fn usage_chunk(&self, g: &Generation) -> Value {
        let mut v = self.envelope(true, json!([]));
        v["usage"] = usage(g.prompt_tokens, g.tokens.len());
        v
    }
}
