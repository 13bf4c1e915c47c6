//! Wisp in the browser: the engine compiled to wasm, driven from JavaScript.
//!
//! The JS package (`package/`) owns I/O only: fetching, caches, workers, and shaping
//! OpenAI-style results. Everything about the model — the GGUF header, the memory plan,
//! tokenizing, templates, sampling and the forward pass — happens here, in the same
//! engine the native builds use.
//!
//! Two engines behind one API. The GPU engine (WGSL over the page's WebGPU): only the GGUF
//! header and the small norm vectors enter wasm memory; weight bytes arrive as JS
//! `Uint8Array`s and go straight to `GPUQueue.writeBuffer`. The CPU engine
//! (`wisp::cpu`, for pages without a usable WebGPU adapter): the whole file is copied
//! into wasm memory, once, since its kernels read the quantized blocks from there; a
//! wasm32 memory holds at most 4 GiB and one buffer at most 2 GiB, which
//! [`begin_cpu_load`] checks from the header before any weight byte is read.
//!
//! Two builds: the default one (feature `gpu`: both engines, one thread) and the
//! threaded one (feature `threads`, nightly with wasm atomics: the CPU engine alone, its
//! pool on Web Workers; see `threads.rs`), which the package loads only for the CPU
//! engine on several threads.
#![cfg(target_arch = "wasm32")]
// The engine shares its device and model through `Arc` (native sessions run on several
// threads); in the page everything lives on one thread, where `Arc` is merely an `Rc`.
#![allow(clippy::arc_with_non_send_sync)]

// The GPU engine (the default build). The second build, with wasm threads, has only the
// CPU engine: wgpu's WebGPU backend does not build with atomics.
#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "threads")]
mod threads;

use js_sys::{Function, Promise, Uint8Array};
use serde_json::{json, Value};
use sha2::Digest;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wisp::chat::{chat_prompt_tokens, render_options, ChatMessage, ChatTemplate, RenderOptions};
use wisp::cpu::{CpuEngine, CpuEngineSession, CpuOptions};
use wisp::generate::{
    prefix_to_keep, FinishReason, Forward, GenerateOptions, Generation, Generator,
};
use wisp::gguf::{GgufError, GgufFile, GgufHeader};
use wisp::sampling::{Sampler, SamplingParams};
use wisp::tokenizer::Tokenizer;
use wisp::Error;

/// A JS `Error` whose `code` names the kind of failure, so callers can branch on it.
pub(crate) fn js_error(code: &str, message: impl std::fmt::Display) -> JsValue {
    let err = js_sys::Error::new(&message.to_string());
    err.set_name("WispError");
    let _ = js_sys::Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

pub(crate) fn wisp_error(e: Error) -> JsValue {
    let code = match &e {
        Error::Io(_) => "io",
        Error::Gguf(_) | Error::InvalidModel(_) => "invalid_model",
        Error::Unsupported(_) => "unsupported",
        Error::Tokenizer(_) => "tokenizer",
        Error::Template(_) => "template",
        Error::InvalidRequest(_) => "invalid_request",
        Error::ContextFull { .. } => "context_full",
        Error::Cancelled => "aborted",
        #[allow(unreachable_patterns)]
        _ => "gpu",
    };
    js_error(code, e)
}

/// How many bytes from the start of the file the header needs: 0 when `prefix` already
/// holds it all, else a larger prefix length to fetch. Fails on a file that is not GGUF.
#[wasm_bindgen(js_name = headerBytesNeeded)]
pub fn header_bytes_needed(prefix: &[u8], file_len: Option<f64>) -> Result<f64, JsValue> {
    match GgufHeader::parse(prefix, file_len.map(|n| n as u64)) {
        Ok(_) => Ok(0.0),
        Err(GgufError::NeedMore { needed }) => Ok(needed as f64),
        Err(e) => Err(wisp_error(e.into())),
    }
}

/// Bytes of this module's linear memory (it only grows): what the tests bound.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

/// Incremental SHA-256 for integrity checks of streamed files.
#[wasm_bindgen]
pub struct Sha256(sha2::Sha256);

#[wasm_bindgen]
impl Sha256 {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Sha256 {
        Sha256(sha2::Sha256::new())
    }

    /// Hash `data` in small pieces so wasm memory stays small whatever its size.
    pub fn update(&mut self, data: &Uint8Array) {
        const PIECE: u32 = 1 << 20;
        let mut buf = vec![0u8; PIECE as usize];
        let len = data.length();
        let mut at = 0;
        while at < len {
            let n = PIECE.min(len - at);
            data.subarray(at, at + n).copy_to(&mut buf[..n as usize]);
            self.0.update(&buf[..n as usize]);
            at += n;
        }
    }

    /// The digest as lowercase hex (the hasher is reset).
    pub fn hex(&mut self) -> String {
        let digest = std::mem::take(&mut self.0).finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::new()
    }
}

/// Options of a load, as the JS package passes them.
struct LoadOptions {
    n_ctx: Option<usize>,
    budget: Option<u64>,
    /// CPU engine threads (what the worker pool was started with; 1 without one).
    threads: usize,
    /// Everything, for the engine-specific options (the GPU's device options).
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    raw: Value,
}

impl LoadOptions {
    fn parse(json_text: &str) -> Result<LoadOptions, JsValue> {
        let v: Value = serde_json::from_str(json_text)
            .map_err(|e| js_error("invalid_request", format!("load options: {e}")))?;
        Ok(LoadOptions {
            n_ctx: v["contextLength"].as_u64().map(|n| n as usize),
            budget: v["memoryBudget"].as_u64(),
            threads: v["threads"].as_u64().unwrap_or(1).max(1) as usize,
            raw: v,
        })
    }
}

/// The most bytes one wasm32 memory holds (65536 pages of 64 KiB).
const WASM_MEMORY_MAX: u64 = 4 << 30;
/// The largest single allocation on wasm32 (`isize::MAX`): the file is one buffer.
const WASM_BUFFER_MAX: u64 = isize::MAX as u64;
/// Room kept for everything else the CPU engine allocates beside the file and the KV
/// cache (activations, the vocabulary, the dequantized norm vectors, the allocator).
const CPU_HEAP_SLACK: u64 = 64 << 20;

fn mib(n: u64) -> String {
    format!("{:.0} MiB", n as f64 / 1048576.0)
}

/// A model being read into wasm memory for the CPU engine: JS pushes the file's bytes
/// `[0, total)` in order, then calls [`finishCpuLoad`].
#[wasm_bindgen]
pub struct CpuLoader {
    bytes: Vec<u8>,
    total: usize,
    n_ctx: usize,
    threads: usize,
    info: Value,
}

/// Parse the header in `prefix`, check that the whole file, the KV cache and the engine
/// fit in one wasm memory (and `memoryBudget`), and reserve the buffer the file goes into.
/// Every refusal happens here, before any weight byte is read.
#[wasm_bindgen(js_name = beginCpuLoad)]
pub fn begin_cpu_load(
    prefix: Vec<u8>,
    file_len: Option<f64>,
    options: String,
) -> Result<CpuLoader, JsValue> {
    let opts = LoadOptions::parse(&options)?;
    let header =
        GgufHeader::parse(&prefix, file_len.map(|n| n as u64)).map_err(|e| wisp_error(e.into()))?;
    drop(prefix);
    let config = wisp::model::ModelConfig::from_gguf(&header).map_err(wisp_error)?;
    let n_ctx = opts.n_ctx.unwrap_or_else(|| config.default_n_ctx()).max(1);
    // The engine reads the file up to the end of its last tensor.
    let total = header.data_end();
    if let Some(len) = file_len {
        if (len as u64) < total {
            return Err(js_error(
                "invalid_model",
                format!(
                    "the file is {len} bytes but its tensors end at byte {total}: it is truncated"
                ),
            ));
        }
    }
    let c = &config;
    let kv = n_ctx as u64 * c.n_layer as u64 * (c.k_dim() + c.v_dim()) as u64 * 2;
    let used = wasm_memory_bytes() as u64;
    let need = total + kv + CPU_HEAP_SLACK;
    let too_large = |why: String| {
        js_error(
            "model_too_large",
            format!(
                "{why}. The CPU engine holds the whole model in wasm memory; use a smaller \
                 model or quantization, a smaller contextLength, or a device with WebGPU \
                 (device: 'gpu')"
            ),
        )
    };
    if total > WASM_BUFFER_MAX {
        return Err(too_large(format!(
            "the model is {} but wasm32 limits one buffer to 2 GiB (and a wasm memory to 4 GiB)",
            mib(total)
        )));
    }
    if used + need > WASM_MEMORY_MAX {
        return Err(too_large(format!(
            "the model ({}) plus a {n_ctx}-token KV cache ({}) and working memory need {}, more \
             than the 4 GiB a wasm32 memory can hold ({} already in use)",
            mib(total),
            mib(kv),
            mib(need),
            mib(used)
        )));
    }
    if let Some(budget) = opts.budget {
        if total + kv > budget {
            return Err(too_large(format!(
                "the model needs {} of wasm memory (weights {} + KV cache {}), more than the \
                 memory budget of {}; lower contextLength",
                mib(total + kv),
                mib(total),
                mib(kv),
                mib(budget)
            )));
        }
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(total as usize).map_err(|_| {
        too_large(format!(
            "the browser refused to grow wasm memory by {} for the model",
            mib(total)
        ))
    })?;
    let info = json!({
        "name": header.get_str("general.name").unwrap_or(""),
        "architecture": header.get_str("general.architecture").unwrap_or(""),
        "contextLength": n_ctx,
        "trainedContextLength": config.n_ctx_train,
        "vocabSize": config.n_vocab,
        "layers": config.n_layer,
        "embeddingSize": config.n_embd,
        "engine": "cpu",
        "gpuBytes": 0,
        "wasmModelBytes": total,
        "kvBytes": kv,
        "adapter": null,
        "shaderF16": false,
        "hasChatTemplate": header.get_str("tokenizer.chat_template").is_some(),
    });
    Ok(CpuLoader {
        bytes,
        total: total as usize,
        n_ctx,
        threads: opts.threads,
        info,
    })
}

#[wasm_bindgen]
impl CpuLoader {
    /// The next bytes of the file, in order (anything past the last tensor is dropped).
    pub fn push(&mut self, chunk: &Uint8Array) {
        let at = self.bytes.len();
        let n = (chunk.length() as usize).min(self.total - at);
        self.bytes.resize(at + n, 0);
        chunk.subarray(0, n as u32).copy_to(&mut self.bytes[at..]);
    }

    /// Bytes received so far.
    pub fn loaded(&self) -> f64 {
        self.bytes.len() as f64
    }

    /// Bytes to receive in all.
    pub fn total(&self) -> f64 {
        self.total as f64
    }
}

/// Build the CPU engine over the pushed file and open a session.
#[wasm_bindgen(js_name = finishCpuLoad)]
pub fn finish_cpu_load(loader: CpuLoader) -> Result<Engine, JsValue> {
    let CpuLoader {
        bytes,
        total,
        n_ctx,
        threads,
        mut info,
    } = loader;
    if bytes.len() < total {
        return Err(js_error(
            "io",
            format!(
                "the model data ended early at byte {} (expected {total})",
                bytes.len()
            ),
        ));
    }
    let file = Arc::new(GgufFile::from_bytes(bytes).map_err(wisp_error)?);
    let tokenizer = Tokenizer::from_gguf(&file.header).map_err(wisp_error)?;
    let template = ChatTemplate::from_gguf(&file.header);
    let engine = CpuEngine::load(
        file,
        &CpuOptions {
            threads,
            ..Default::default()
        },
    )
    .map_err(wisp_error)?;
    info["isa"] = engine.isa().name().into();
    info["threads"] = engine.threads().into();
    let session = CpuEngineSession::new(Arc::new(engine), n_ctx).map_err(wisp_error)?;
    let render = render_options(&tokenizer);
    Ok(Engine {
        text: Rc::new(Text {
            tokenizer,
            template,
            render,
        }),
        session: Rc::new(RefCell::new(Some(Session::Cpu(session)))),
        info: info.to_string(),
    })
}

/// What turns messages into tokens and back (usable while a request runs).
struct Text {
    tokenizer: Tokenizer,
    template: Result<ChatTemplate, Error>,
    render: RenderOptions,
}

/// A loaded model with one conversation's KV cache.
#[wasm_bindgen]
pub struct Engine {
    text: Rc<Text>,
    /// Taken out while a request runs: a second request meanwhile is refused as busy.
    session: Rc<RefCell<Option<Session>>>,
    info: String,
}

/// One conversation on either engine (the GPU session keeps its model alive).
enum Session {
    #[cfg(feature = "gpu")]
    Gpu(Box<wisp::engine::GpuSession>),
    Cpu(CpuEngineSession),
}

/// Sampling and limits of one request (OpenAI's field names).
fn request_options(req: &Value) -> Result<(SamplingParams, GenerateOptions), JsValue> {
    let mut p = SamplingParams::default();
    let f = |k: &str| req[k].as_f64().map(|x| x as f32);
    if let Some(t) = f("temperature") {
        p.temperature = t;
    }
    if let Some(v) = f("top_p") {
        p.top_p = v;
    }
    if let Some(v) = req["top_k"].as_u64() {
        p.top_k = v as usize;
    }
    if let Some(v) = f("min_p") {
        p.min_p = v;
    }
    if let Some(v) = f("repetition_penalty") {
        p.repeat_penalty = v;
    }
    if let Some(v) = f("presence_penalty") {
        p.presence_penalty = v;
    }
    if let Some(v) = f("frequency_penalty") {
        p.frequency_penalty = v;
    }
    if let Some(v) = req["seed"].as_u64() {
        p.seed = v;
    }
    let bad = |what: &str| js_error("invalid_request", what);
    let stop = match &req["stop"] {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("stop must be a string or an array of strings"))?,
        _ => return Err(bad("stop must be a string or an array of strings")),
    };
    let max_tokens = match &req["max_tokens"] {
        Value::Null => None,
        v => Some(
            v.as_u64()
                .ok_or_else(|| bad("max_tokens must be a whole number"))? as usize,
        ),
    };
    Ok((p, GenerateOptions { max_tokens, stop }))
}

fn messages(req: &Value) -> Result<Vec<ChatMessage>, JsValue> {
    let list = req["messages"]
        .as_array()
        .ok_or_else(|| js_error("invalid_request", "messages must be an array"))?;
    list.iter()
        .map(|m| {
            let role = m["role"].as_str();
            let content = match &m["content"] {
                Value::String(s) => Some(s.clone()),
                // OpenAI's content parts: keep the text ones.
                Value::Array(parts) => Some(
                    parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join(""),
                ),
                Value::Null => Some(String::new()),
                _ => None,
            };
            match (role, content) {
                (Some(r), Some(c)) => Ok(ChatMessage::new(r, c)),
                _ => Err(js_error(
                    "invalid_request",
                    "each message needs a string role and string content",
                )),
            }
        })
        .collect()
}

pub(crate) fn now_s() -> f64 {
    js_sys::Date::now() / 1000.0
}

#[wasm_bindgen]
impl Engine {
    /// Facts about the model and device, as JSON.
    pub fn info(&self) -> String {
        self.info.clone()
    }

    /// Token ids of `text` (control-token text parsed as such when `special`).
    pub fn tokenize(&self, text: &str, special: bool) -> Vec<u32> {
        self.text.tokenizer.encode(text, special)
    }

    /// The text of token ids.
    pub fn detokenize(&self, ids: Vec<u32>) -> String {
        self.text.tokenizer.decode(&ids, false)
    }

    /// The chat template's text for `request.messages`, as the model will read it.
    #[wasm_bindgen(js_name = renderChat)]
    pub fn render_chat(&self, request: &str) -> Result<String, JsValue> {
        let req = parse_request(request)?;
        let t = &self.text;
        let template = t.template.as_ref().map_err(|e| wisp_error(e.clone()))?;
        template
            .render(&messages(&req)?, &t.render)
            .map_err(wisp_error)
    }

    /// Chat completion of `request` (JSON, OpenAI fields). `on_text(piece)` receives the
    /// text as it is generated; `cancelled()` is asked before every token; `pause()`
    /// returns a Promise that resolves on a later task, awaited before every step of the
    /// CPU engine (whose forward pass is synchronous) so messages get through. Resolves
    /// to a JSON summary: text, finish reason, token counts and timings.
    pub fn chat(
        &self,
        request: String,
        on_text: Function,
        cancelled: Function,
        pause: Function,
    ) -> Promise {
        let (text, session) = (Rc::clone(&self.text), Rc::clone(&self.session));
        wasm_bindgen_futures::future_to_promise(async move {
            let req = parse_request(&request)?;
            let msgs = messages(&req)?;
            let template = text.template.as_ref().map_err(|e| wisp_error(e.clone()))?;
            let prompt = chat_prompt_tokens(template, &text.tokenizer, &msgs, &text.render)
                .map_err(wisp_error)?;
            run(
                &session,
                &text.tokenizer,
                &req,
                &prompt,
                &on_text,
                &cancelled,
                &pause,
            )
            .await
        })
    }

    /// Raw text completion of `request.prompt` (no chat template); `request.special`
    /// parses control-token text in the prompt. The hooks are [`Engine::chat`]'s.
    pub fn complete(
        &self,
        request: String,
        on_text: Function,
        cancelled: Function,
        pause: Function,
    ) -> Promise {
        let (text, session) = (Rc::clone(&self.text), Rc::clone(&self.session));
        wasm_bindgen_futures::future_to_promise(async move {
            let req = parse_request(&request)?;
            let prompt_text = req["prompt"]
                .as_str()
                .ok_or_else(|| js_error("invalid_request", "prompt must be a string"))?;
            let special = req["special"].as_bool().unwrap_or(false);
            let prompt = text.tokenizer.encode_prompt(prompt_text, special);
            run(
                &session,
                &text.tokenizer,
                &req,
                &prompt,
                &on_text,
                &cancelled,
                &pause,
            )
            .await
        })
    }
}

fn parse_request(text: &str) -> Result<Value, JsValue> {
    serde_json::from_str(text).map_err(|e| js_error("invalid_request", format!("request: {e}")))
}

fn busy() -> JsValue {
    js_error(
        "busy",
        "the engine is already generating; await the previous request first",
    )
}

/// Generate after `prompt` and summarise the result as JSON. The session is taken out of
/// its cell for the duration (a concurrent request gets `busy`) and put back after.
#[allow(clippy::too_many_arguments)]
async fn run(
    cell: &RefCell<Option<Session>>,
    tokenizer: &Tokenizer,
    req: &Value,
    prompt: &[u32],
    on_text: &Function,
    cancelled: &Function,
    pause: &Function,
) -> Result<JsValue, JsValue> {
    let (params, opts) = request_options(req)?;
    let mut sampler = Sampler::new(params).map_err(wisp_error)?;
    let mut emit = |piece: &str| {
        on_text
            .call1(&JsValue::NULL, &JsValue::from_str(piece))
            .map(|r| r.as_bool() != Some(false))
            .unwrap_or(false)
    };
    let is_cancelled = || {
        cancelled
            .call0(&JsValue::NULL)
            .map(|r| r.as_bool() == Some(true))
            .unwrap_or(true)
    };
    let mut session = cell.borrow_mut().take().ok_or_else(busy)?;
    let hooks = Hooks {
        on_text: &mut emit,
        cancelled: &is_cancelled,
    };
    let result = match &mut session {
        #[cfg(feature = "gpu")]
        Session::Gpu(s) => gpu::generate(s, tokenizer, &mut sampler, prompt, &opts, hooks).await,
        Session::Cpu(s) => {
            generate_cpu(s, tokenizer, &mut sampler, prompt, &opts, hooks, pause).await
        }
    };
    *cell.borrow_mut() = Some(session);
    let (gen, timings) = result.map_err(wisp_error)?;
    let finish = match gen.finish_reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "abort",
    };
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let decoded = gen.tokens.len().saturating_sub(1);
    Ok(JsValue::from_str(
        &json!({
            "text": gen.text,
            "finishReason": finish,
            "promptTokens": gen.prompt_tokens,
            "prefillTokens": gen.prefilled_tokens,
            "completionTokens": gen.tokens.len(),
            "timeToFirstTokenS": timings.first_token_s,
            "prefillTokensPerS": rate(gen.prefilled_tokens, timings.first_token_s),
            "decodeTokensPerS": rate(decoded, timings.decode_s),
            "tokens": gen.tokens,
        })
        .to_string(),
    ))
}

/// The hooks of one generation: streamed text (false stops it) and the cancellation check.
struct Hooks<'a> {
    on_text: &'a mut dyn FnMut(&str) -> bool,
    cancelled: &'a dyn Fn() -> bool,
}

/// Where the time of one generation went, in seconds.
struct Timings {
    /// From the call to the first sampled token (the prefill).
    first_token_s: f64,
    /// From the first sampled token to the end.
    decode_s: f64,
}

/// Prompt tokens per CPU prefill step: each step is synchronous, so this bounds how long
/// the worker goes without reading its messages (a cancellation) during a long prompt.
const CPU_PREFILL_CHUNK: usize = 64;

/// `wisp::engine::generate_async` for the CPU engine: the same [`Generator`] bookkeeping, with the
/// synchronous forward pass and a return to the event loop (`pause()`) before every step.
async fn generate_cpu(
    session: &mut CpuEngineSession,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    hooks: Hooks<'_>,
    pause: &Function,
) -> Result<(Generation, Timings), Error> {
    let start = now_s();
    let kept = prefix_to_keep(session.cached_tokens(), prompt, session.n_ctx())?;
    session.truncate(kept);
    let mut g = Generator::new(tokenizer, prompt, kept, opts);
    let mut first_token_at = None;
    let finish = loop {
        if let Some(done) = g.limit_reached() {
            break done;
        }
        if let Ok(p) = pause.call0(&JsValue::NULL) {
            let _ = wasm_bindgen_futures::JsFuture::from(Promise::resolve(&p)).await;
        }
        if (hooks.cancelled)() {
            break FinishReason::Cancelled;
        }
        if g.input().len() > CPU_PREFILL_CHUNK {
            Forward::prefill(session, &g.input()[..CPU_PREFILL_CHUNK])?;
            g.prefilled(CPU_PREFILL_CHUNK);
            continue;
        }
        let token = session.forward_sample(g.input(), sampler, g.history())?;
        first_token_at.get_or_insert_with(now_s);
        let cached = session.cached_tokens().len();
        if let Some(done) = g.accept(token, cached, session.n_ctx(), hooks.on_text) {
            break done;
        }
    };
    let end = now_s();
    let first = first_token_at.unwrap_or(end);
    let timings = Timings {
        first_token_s: first - start,
        decode_s: end - first,
    };
    Ok((g.finish(finish, hooks.on_text), timings))
}
