//! Wisp for apps: the engine behind a uniffi interface that Swift and Kotlin call.
//!
//! Only composition lives here (open the file, pick the device, render the template,
//! call `wisp::generate::generate`), as the CLI does in `crates/cli/src/load.rs`; the
//! inference itself is the runtime's. Every blocking call has an `async` twin that runs
//! it on its own thread, so no executor (tokio or other) is needed on either side.

mod download;
mod engine;
mod oneshot;

pub use download::{download_model, download_model_async};
pub use engine::{load_engine, Engine};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

uniffi::setup_scaffolding!();

/// Every failure the bindings report; Kotlin sees `WispException.*`, Swift `WispError.*`.
#[derive(Debug, Clone, PartialEq, uniffi::Error)]
pub enum WispError {
    /// The model file does not exist.
    NotFound { detail: String },
    /// Reading or writing a file failed.
    Io { detail: String },
    /// The file is not a usable GGUF model (corrupt, truncated, missing metadata).
    InvalidModel { detail: String },
    /// A valid model Wisp cannot run (architecture or tensor type).
    Unsupported { detail: String },
    /// No usable GPU, a kernel the device rejected, out of memory, device lost.
    Gpu { detail: String },
    /// A bad argument: sampling values, an empty prompt, …
    InvalidRequest { detail: String },
    /// The prompt needs `needed` tokens but the context holds `context_size`. Nothing was
    /// evaluated and the cached conversation is kept: drop old turns and ask again. (An
    /// answer that fills the context is not an error: it ends with `FinishReason.Length`.)
    ContextFull {
        detail: String,
        needed: u32,
        context_size: u32,
    },
    /// The chat template failed to render.
    Template { detail: String },
    /// The download failed (network, HTTP status).
    Download { detail: String },
    /// The file's SHA-256 is not the expected one (a downloaded file is deleted).
    ChecksumMismatch { expected: String, actual: String },
    /// The caller cancelled (a `CancelToken`, `Engine.cancel()`).
    Cancelled,
    /// A bug in Wisp; please report it.
    Internal { detail: String },
}

impl std::fmt::Display for WispError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WispError::NotFound { detail } => write!(f, "not found: {detail}"),
            WispError::Io { detail } => write!(f, "{detail}"),
            WispError::InvalidModel { detail } => write!(f, "invalid model: {detail}"),
            WispError::Unsupported { detail } => write!(f, "unsupported: {detail}"),
            WispError::Gpu { detail } => write!(f, "GPU: {detail}"),
            WispError::InvalidRequest { detail } => write!(f, "{detail}"),
            WispError::ContextFull { detail, .. } => write!(f, "{detail}"),
            WispError::Template { detail } => write!(f, "chat template: {detail}"),
            WispError::Download { detail } => write!(f, "download: {detail}"),
            WispError::ChecksumMismatch { expected, actual } => {
                write!(f, "sha256 is {actual}, expected {expected}")
            }
            WispError::Cancelled => write!(f, "cancelled"),
            WispError::Internal { detail } => write!(f, "internal error: {detail}"),
        }
    }
}

impl std::error::Error for WispError {}

impl From<wisp::Error> for WispError {
    fn from(e: wisp::Error) -> Self {
        let detail = e.to_string();
        match e {
            wisp::Error::Io(_) => WispError::Io { detail },
            wisp::Error::Gguf(_) | wisp::Error::InvalidModel(_) | wisp::Error::Tokenizer(_) => {
                WispError::InvalidModel { detail }
            }
            wisp::Error::Unsupported(_) => WispError::Unsupported { detail },
            wisp::Error::Template(_) => WispError::Template { detail },
            wisp::Error::InvalidRequest(_) => WispError::InvalidRequest { detail },
            wisp::Error::ContextFull { needed, n_ctx } => WispError::ContextFull {
                detail,
                needed: u32::try_from(needed).unwrap_or(u32::MAX),
                context_size: u32::try_from(n_ctx).unwrap_or(u32::MAX),
            },
            wisp::Error::Cancelled => WispError::Cancelled,
            wisp::Error::Gpu(_) => WispError::Gpu { detail },
        }
    }
}

/// Stops a load or a download from another thread. One token may serve several calls.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(CancelToken::default())
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// What a long operation is doing, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LoadStage {
    /// Fetching the file (`done`/`total` in bytes; `total` is 0 when the server gives none).
    Downloading,
    /// Hashing the file to check its SHA-256.
    Verifying,
    /// Uploading the weights to the GPU (or preparing them on the CPU).
    Loading,
}

/// Receives progress; implemented in Swift or Kotlin. Called from a background thread.
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    fn on_progress(&self, stage: LoadStage, done: u64, total: u64);
}

/// Receives generated text as it is produced; return false to stop generating.
/// Called from the thread that generates.
#[uniffi::export(with_foreign)]
pub trait TokenListener: Send + Sync {
    fn on_text(&self, text: String) -> bool;
}

/// Which engine runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Enum)]
pub enum Device {
    /// The GPU when there is a hardware adapter and the model's memory plan fits it;
    /// else the CPU engine. `ModelInfo.engine_reason` says why.
    #[default]
    Auto,
    /// The GPU engine (WebGPU kernels on Metal / Vulkan); fails without an adapter.
    Gpu,
    /// The CPU engine: quantized SIMD kernels (NEON on phones) on `threads` threads.
    Cpu,
    /// The plain f32 reference forward pass (slow; for checking the others).
    Oracle,
}

/// How to open a model.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct EngineConfig {
    /// Which engine runs the model (default, `None`: `Auto`).
    #[uniffi(default = None)]
    pub device: Option<Device>,
    /// CPU engine threads; default: one per core.
    #[uniffi(default = None)]
    pub threads: Option<u32>,
    /// Context size in tokens; default: the model's, capped at 4096.
    #[uniffi(default = None)]
    pub context_size: Option<u32>,
    /// Refuse to load if the model and its KV cache would need more GPU memory than this.
    #[uniffi(default = None)]
    pub gpu_memory_budget_bytes: Option<u64>,
    /// Refuse the file (`ChecksumMismatch`) unless its SHA-256 is this (64 hex digits).
    /// The hash is taken over the very bytes the model is loaded from.
    #[uniffi(default = None)]
    pub sha256: Option<String>,
}

/// What the loaded model is.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ModelInfo {
    /// `general.architecture`, e.g. "llama".
    pub architecture: String,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    /// The context this engine holds, in tokens.
    pub context_size: u32,
    /// The context the model was trained for.
    pub trained_context_size: u32,
    pub layers: u32,
    pub embedding_size: u32,
    pub vocab_size: u32,
    pub file_size_bytes: u64,
    /// The GPU adapter's name, or "cpu" / "oracle".
    pub device: String,
    /// The engine that runs the model: "gpu", "cpu" or "oracle".
    pub engine: String,
    /// Why that engine: the request, or what `Auto` found.
    pub engine_reason: String,
    /// True when the file has no chat template and a built-in one is used.
    pub builtin_chat_template: bool,
}

/// One chat turn.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

/// Sampling and stopping. The defaults are the CLI's; `temperature = 0` is greedy.
#[derive(Debug, Clone, uniffi::Record)]
pub struct GenerationOptions {
    #[uniffi(default = 0.8)]
    pub temperature: f32,
    /// 0 disables top-k.
    #[uniffi(default = 40)]
    pub top_k: u32,
    #[uniffi(default = 0.95)]
    pub top_p: f32,
    #[uniffi(default = 0.05)]
    pub min_p: f32,
    #[uniffi(default = 1.0)]
    pub repeat_penalty: f32,
    #[uniffi(default = 0.0)]
    pub presence_penalty: f32,
    #[uniffi(default = 0.0)]
    pub frequency_penalty: f32,
    /// Default: a fresh seed per call.
    #[uniffi(default = None)]
    pub seed: Option<u64>,
    /// Default: until end-of-generation or a full context.
    #[uniffi(default = None)]
    pub max_tokens: Option<u32>,
    /// Generation stops before any of these strings; they are not returned.
    #[uniffi(default = [])]
    pub stop: Vec<String>,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        let p = wisp::sampling::SamplingParams::default();
        GenerationOptions {
            temperature: p.temperature,
            top_k: p.top_k as u32,
            top_p: p.top_p,
            min_p: p.min_p,
            repeat_penalty: p.repeat_penalty,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            seed: None,
            max_tokens: None,
            stop: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FinishReason {
    /// End-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached or the context is full.
    Length,
    /// The listener returned false or `Engine.cancel()` was called.
    Cancelled,
}

/// Token counts and speeds of one call.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Usage {
    pub prompt_tokens: u32,
    /// Prompt tokens reused from the KV cache of the previous call (not evaluated again).
    pub cached_prompt_tokens: u32,
    pub completion_tokens: u32,
    /// From the call until the first generated token was known (prefill + one sample).
    pub time_to_first_token_ms: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub total_ms: f64,
}

/// The result of `chat` / `complete`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Completion {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

/// Sampling options for greedy decoding (for tests and reproducible answers).
#[uniffi::export]
pub fn greedy_options() -> GenerationOptions {
    GenerationOptions {
        temperature: 0.0,
        ..GenerationOptions::default()
    }
}

/// The CLI's default sampling options.
#[uniffi::export]
pub fn default_options() -> GenerationOptions {
    GenerationOptions::default()
}

/// The Wisp version these bindings were built from.
#[uniffi::export]
pub fn wisp_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
