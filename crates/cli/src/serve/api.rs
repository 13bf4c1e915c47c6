//! The request bodies of the OpenAI API as far as Wisp serves them, and their checks.
//!
//! Bodies are parsed with `serde_path_to_error`, so a field of the wrong type is a 400
//! naming it (`messages[1].content`). Unknown fields are ignored, as OpenAI-compatible
//! servers do; known ones Wisp cannot honour yet (`tools`, `response_format` beyond
//! text, `logprobs`, `n` > 1, …) are a 400 that says so rather than silently dropped.
//!
//! Sampling fields left out take `wisp run`'s defaults (llama.cpp's: temperature 0.8,
//! top-k 40, top-p 0.95, min-p 0.05); `top_k`, `min_p` and `repeat_penalty` are
//! accepted besides OpenAI's fields, as llama-server does.

use super::errors::ApiError;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use wisp::chat::ChatMessage;
use wisp::generate::GenerateOptions;
use wisp::sampling::SamplingParams;

/// The body as a JSON object (its fields are checked by [`fields`]).
pub fn json(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::invalid("the body must be a JSON object"));
    }
    Ok(v)
}

/// Read `T`'s fields out of the body, naming the path of a field that does not fit.
pub fn fields<T: for<'de> Deserialize<'de>>(body: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            let missing = inner
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
                .map(str::to_string);
            let err = ApiError::invalid(format!("invalid request body: {inner}"));
            return match missing {
                Some(field) => err.with_param(&field),
                None => err,
            };
        }
        // Fields that take several shapes: say which, not serde's "untagged enum".
        let last = path.rsplit('.').next().unwrap_or(&path);
        let last = last.split('[').next().unwrap_or(last);
        let message = match last {
            "stop" => "must be a string or an array of strings".to_string(),
            "content" => "must be a string or an array of content parts".to_string(),
            "prompt" => {
                "must be a string, an array of one string, or an array of token ids".to_string()
            }
            _ => inner,
        };
        ApiError::param(&path, format!("invalid value for {path}: {message}"))
    })
}

/// `"stop"`: one string or a list.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Debug, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Fields `/v1/chat/completions` and `/v1/completions` share (read from the same body
/// as the endpoint's own fields, not through `serde(flatten)`, which loses field paths).
#[derive(Deserialize, Debug, Default)]
pub struct Common {
    pub model: Option<String>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u64>,
    pub min_p: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub seed: Option<serde_json::Number>,
    pub stop: Option<Stop>,
    pub n: Option<u64>,
    pub logit_bias: Option<BTreeMap<String, f32>>,
    /// Not supported yet: any value other than false/null/0 is refused.
    pub logprobs: Option<Value>,
    pub top_logprobs: Option<Value>,
}

/// A chat message's `content`: a string, or a list of parts of which Wisp takes text.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize, Debug)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct Message {
    pub role: String,
    pub content: Option<Content>,
    pub tool_calls: Option<Value>,
}

#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub response_format: Option<Value>,
}

/// `"prompt"` of `/v1/completions`: text, one text in a list, or token ids.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    Batches(Vec<Vec<u32>>),
}

#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    pub echo: Option<bool>,
    pub suffix: Option<String>,
    pub best_of: Option<u64>,
}

/// What a checked request asks the generator for.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sampling: SamplingParams,
    pub options: GenerateOptions,
    /// Added to these tokens' logits before sampling.
    pub logit_bias: Vec<(u32, f32)>,
    pub stream: bool,
    pub include_usage: bool,
}

fn is_off(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => true,
        Some(Value::Number(n)) => n.as_u64() == Some(0),
        _ => false,
    }
}

impl Common {
    /// The request's model name must be the served one (or absent).
    pub fn check_model(&self, served: &str) -> Result<(), ApiError> {
        match &self.model {
            Some(m) if m != served => Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("the model {m:?} does not exist; this server serves {served:?}"),
            )
            .with_param("model")
            .with_code("model_not_found")),
            _ => Ok(()),
        }
    }

    pub fn settings(&self, n_vocab: usize) -> Result<Settings, ApiError> {
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::param(
                    "n",
                    format!("n must be 1 (got {n}): wisp serve generates one choice per request"),
                ));
            }
        }
        if !is_off(&self.logprobs) || !is_off(&self.top_logprobs) {
            return Err(ApiError::unsupported("logprobs", "logprobs"));
        }
        let max_tokens = match (self.max_completion_tokens, self.max_tokens) {
            (Some(n), _) => Some(("max_completion_tokens", n)),
            (None, Some(n)) => Some(("max_tokens", n)),
            (None, None) => None,
        };
        if let Some((name, 0)) = max_tokens {
            return Err(ApiError::param(name, format!("{name} must be at least 1")));
        }
        let stop = match &self.stop {
            None => vec![],
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 16 {
            return Err(ApiError::param("stop", "at most 16 stop strings"));
        }
        let d = SamplingParams::default();
        let temperature = self.temperature.unwrap_or(d.temperature);
        if temperature.is_nan() || temperature < 0.0 {
            return Err(ApiError::param(
                "temperature",
                format!("temperature must be at least 0, got {temperature}"),
            ));
        }
        let seed = match &self.seed {
            None => crate::prompt::random_seed(),
            Some(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u,
                (None, Some(i)) => i as u64,
                _ => {
                    return Err(ApiError::param(
                        "seed",
                        format!("seed must be an integer, got {n}"),
                    ))
                }
            },
        };
        let sampling = SamplingParams {
            temperature,
            top_k: self
                .top_k
                .map_or(d.top_k, |k| k.min(n_vocab as u64) as usize),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            seed,
            ..d
        };
        sampling.validate().map_err(|e| {
            let msg = e.to_string();
            let param = [
                "temperature",
                "top_p",
                "min_p",
                "repeat_penalty",
                "presence",
                "frequency",
            ]
            .into_iter()
            .find(|p| msg.starts_with(p))
            .map(|p| match p {
                "presence" => "presence_penalty",
                "frequency" => "frequency_penalty",
                other => other,
            });
            let err = ApiError::invalid(msg);
            match param {
                Some(p) => err.with_param(p),
                None => err,
            }
        })?;
        let mut logit_bias = Vec::new();
        for (id, bias) in self.logit_bias.iter().flatten() {
            let token = id
                .parse::<u32>()
                .ok()
                .filter(|&t| (t as usize) < n_vocab)
                .ok_or_else(|| {
                    ApiError::param(
                        "logit_bias",
                        format!("logit_bias key {id:?} is not a token id below {n_vocab}"),
                    )
                })?;
            if !bias.is_finite() {
                return Err(ApiError::param(
                    "logit_bias",
                    "logit_bias values must be finite",
                ));
            }
            logit_bias.push((token, bias.clamp(-100.0, 100.0)));
        }
        let stream = self.stream.unwrap_or(false);
        let include_usage = self
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        if self.stream_options.is_some() && !stream {
            return Err(ApiError::param(
                "stream_options",
                "stream_options is only allowed with stream: true",
            ));
        }
        Ok(Settings {
            sampling,
            options: GenerateOptions {
                max_tokens: max_tokens.map(|(_, n)| n.min(usize::MAX as u64) as usize),
                stop,
            },
            logit_bias,
            stream,
            include_usage,
        })
    }
}

impl ChatRequest {
    /// Refuse what this version cannot do yet.
    pub fn check_unsupported(&self) -> Result<(), ApiError> {
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::unsupported("tools", "tool calling (tools)"));
        }
        match &self.tool_choice {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "none" || s == "auto" => {}
            Some(_) => return Err(ApiError::unsupported("tool_choice", "tool_choice")),
        }
        if let Some(rf) = &self.response_format {
            match rf.get("type").and_then(Value::as_str) {
                Some("text") => {}
                Some(t @ ("json_object" | "json_schema")) => {
                    return Err(ApiError::unsupported(
                        "response_format",
                        &format!("response_format of type {t}"),
                    ))
                }
                _ => return Err(ApiError::param(
                    "response_format",
                    "response_format must be an object with type text, json_object or json_schema",
                )),
            }
        }
        Ok(())
    }

    /// The conversation as the chat template takes it.
    pub fn messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::param("messages", "messages must not be empty"));
        }
        let mut out = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.iter().enumerate() {
            let at = |field: &str| format!("messages[{i}].{field}");
            let role = match m.role.as_str() {
                "system" | "user" | "assistant" | "tool" => m.role.clone(),
                // OpenAI's newer name for system instructions; templates know `system`.
                "developer" => "system".to_string(),
                other => {
                    return Err(ApiError::param(
                        &at("role"),
                        format!(
                            "unknown role {other:?} (system, developer, user, assistant or tool)"
                        ),
                    ))
                }
            };
            if m.tool_calls.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(ApiError::unsupported(
                    &at("tool_calls"),
                    "tool calling (tool_calls)",
                ));
            }
            let content = match &m.content {
                None => {
                    return Err(ApiError::param(&at("content"), "content is required"));
                }
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => text.push_str(t),
                            ("text", None) => {
                                return Err(ApiError::param(
                                    &format!("messages[{i}].content[{j}].text"),
                                    "a text part needs text",
                                ))
                            }
                            (other, _) => {
                                return Err(ApiError::unsupported(
                                    &format!("messages[{i}].content[{j}].type"),
                                    &format!("content of type {other:?} (only text)"),
                                ))
                            }
                        }
                    }
                    text
                }
            };
            out.push(ChatMessage::new(role, content));
        }
        Ok(out)
    }
}

impl CompletionRequest {
    pub fn check_unsupported(&self) -> Result<(), ApiError> {
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::unsupported(
                "suffix",
                "suffix (fill-in-the-middle)",
            ));
        }
        if self.best_of.is_some_and(|n| n != 1) {
            return Err(ApiError::param("best_of", "best_of must be 1"));
        }
        Ok(())
    }

    /// The prompt: its text (for `echo`) or its token ids as given.
    pub fn prompt(&self, n_vocab: usize) -> Result<PromptInput, ApiError> {
        let one = |what: &str| {
            ApiError::param(
                "prompt",
                format!("one prompt per request (got a list of {what})"),
            )
        };
        let input = match &self.prompt {
            Prompt::Text(t) => PromptInput::Text(t.clone()),
            Prompt::Texts(v) if v.len() == 1 => PromptInput::Text(v[0].clone()),
            Prompt::Texts(v) => return Err(one(&format!("{} texts", v.len()))),
            Prompt::Tokens(ids) => PromptInput::Tokens(ids.clone()),
            Prompt::Batches(v) if v.len() == 1 => PromptInput::Tokens(v[0].clone()),
            Prompt::Batches(v) => return Err(one(&format!("{} token lists", v.len()))),
        };
        match &input {
            PromptInput::Text(t) if t.is_empty() => {
                Err(ApiError::param("prompt", "prompt must not be empty"))
            }
            PromptInput::Tokens(ids) if ids.is_empty() => {
                Err(ApiError::param("prompt", "prompt must not be empty"))
            }
            PromptInput::Tokens(ids) => match ids.iter().find(|&&t| t as usize >= n_vocab) {
                Some(bad) => Err(ApiError::param(
                    "prompt",
                    format!("token id {bad} is not below the vocabulary size {n_vocab}"),
                )),
                None => Ok(input),
            },
            PromptInput::Text(_) => Ok(input),
        }
    }
}

pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}
