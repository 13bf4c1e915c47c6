//! The `Engine` object: one loaded model and one KV-cache session behind a mutex.

use crate::download::{normalize_sha, verify_bytes};
use crate::oneshot::{guard, spawn};
use crate::{
    CancelToken, ChatMessage, Completion, Device, EngineConfig, FinishReason, GenerationOptions,
    LoadStage, ModelInfo, ProgressListener, TokenListener, Usage, WispError,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wisp::chat::{chat_prompt_tokens, render_options, ChatTemplate, RenderOptions};
use wisp::cpu::{CpuEngine, CpuEngineSession, CpuOptions};
use wisp::engine::{GpuModel, GpuSession, LoadControl, MemoryPlan, SliceSource};
use wisp::generate::{generate_cancellable, Forward, GenerateOptions};
use wisp::gguf::GgufFile;
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::model::cpu::{CpuModel, CpuSession};
use wisp::model::ModelConfig;
use wisp::sampling::{Sampler, SamplingParams};
use wisp::tokenizer::Tokenizer;

fn runtime_messages(messages: Vec<ChatMessage>) -> Vec<wisp::chat::ChatMessage> {
    messages
        .into_iter()
        .map(|m| wisp::chat::ChatMessage::new(m.role, m.content))
        .collect()
}

type Session = Box<dyn Forward + Send>;

/// A loaded model, ready to chat. Thread-safe: calls from several threads queue on the
/// session (one generation at a time); `cancel` may be called from any thread.
#[derive(uniffi::Object)]
pub struct Engine {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    render: RenderOptions,
    info: ModelInfo,
    session: Mutex<Session>,
    cancel: AtomicBool,
}

/// Load a model file on a background thread (the async twin of `Engine(path, …)`).
#[uniffi::export]
pub async fn load_engine(
    path: String,
    config: EngineConfig,
    progress: Option<Arc<dyn ProgressListener>>,
    cancel: Option<Arc<CancelToken>>,
) -> Result<Arc<Engine>, WispError> {
    spawn("load", move || {
        Engine::open(&path, &config, progress, cancel)
    })
    .await
}

#[uniffi::export]
impl Engine {
    /// Load a GGUF model file (blocking; see `load_engine` for the async form).
    #[uniffi::constructor]
    pub fn new(
        path: String,
        config: EngineConfig,
        progress: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<Engine>, WispError> {
        guard(|| Engine::open(&path, &config, progress, cancel))
    }

    pub fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    /// The prompt `chat` would evaluate for these messages (the model's chat template
    /// with the assistant turn opened).
    pub fn render_chat(&self, messages: Vec<ChatMessage>) -> Result<String, WispError> {
        Ok(self
            .template
            .render(&runtime_messages(messages), &self.render)?)
    }

    /// Answer the conversation, streaming text to `listener` (blocking).
    pub fn chat(
        &self,
        messages: Vec<ChatMessage>,
        options: GenerationOptions,
        listener: Option<Arc<dyn TokenListener>>,
    ) -> Result<Completion, WispError> {
        guard(|| {
            // The same prompt tokens as `wisp chat` and the browser engine.
            let ids = chat_prompt_tokens(
                &self.template,
                &self.tokenizer,
                &runtime_messages(messages),
                &self.render,
            )?;
            self.run(&ids, &options, listener)
        })
    }

    /// Continue `prompt` as raw text (no chat template; control-token text such as
    /// `<|im_start|>` is parsed as the control token, as `wisp run --special` does).
    pub fn complete(
        &self,
        prompt: String,
        options: GenerationOptions,
        listener: Option<Arc<dyn TokenListener>>,
    ) -> Result<Completion, WispError> {
        guard(|| {
            let ids = self.tokenizer.encode_prompt(&prompt, true);
            self.run(&ids, &options, listener)
        })
    }

    /// `chat` on a background thread.
    pub async fn chat_async(
        self: Arc<Self>,
        messages: Vec<ChatMessage>,
        options: GenerationOptions,
        listener: Option<Arc<dyn TokenListener>>,
    ) -> Result<Completion, WispError> {
        spawn("chat", move || self.chat(messages, options, listener)).await
    }

    /// `complete` on a background thread.
    pub async fn complete_async(
        self: Arc<Self>,
        prompt: String,
        options: GenerationOptions,
        listener: Option<Arc<dyn TokenListener>>,
    ) -> Result<Completion, WispError> {
        spawn("complete", move || self.complete(prompt, options, listener)).await
    }

    /// Stop the generation running now, also during a long prompt's prefill (it returns
    /// with `FinishReason.Cancelled` and the text so far; the conversation cache keeps
    /// what was evaluated, so the next call reuses it).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Forget the cached conversation (the next call evaluates its whole prompt).
    pub fn reset(&self) {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .truncate(0);
    }
}

fn sampler(o: &GenerationOptions) -> Result<Sampler, WispError> {
    let seed = o.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    Ok(Sampler::new(SamplingParams {
        temperature: o.temperature,
        top_k: o.top_k as usize,
        top_p: o.top_p,
        min_p: o.min_p,
        repeat_penalty: o.repeat_penalty,
        presence_penalty: o.presence_penalty,
        frequency_penalty: o.frequency_penalty,
        seed,
        ..SamplingParams::default()
    })?)
}

impl Engine {
    fn open(
        path: &str,
        config: &EngineConfig,
        progress: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<Engine>, WispError> {
        let path = Path::new(path);
        if !path.is_file() {
            return Err(WispError::NotFound {
                detail: format!("no model file at {}", path.display()),
            });
        }
        let cancelled = || cancel.as_ref().is_some_and(|c| c.is_cancelled());
        let expected = config.sha256.as_deref().map(normalize_sha).transpose()?;
        let file = match GgufFile::open(path) {
            Ok(file) => file,
            Err(e) => {
                // A file that does not parse but has the wrong hash is reported as the
                // mismatch it is.
                if let Some(expected) = &expected {
                    if let Ok(bytes) = std::fs::read(path) {
                        verify_bytes(&bytes, expected, progress.as_ref(), &cancelled)?;
                    }
                }
                return Err(match e {
                    wisp::Error::Io(detail) => WispError::Io { detail },
                    other => WispError::InvalidModel {
                        detail: format!("{}: {other}", path.display()),
                    },
                });
            }
        };
        // Hash the mapped bytes the model is read from: no window to swap the file
        // between the check and the load.
        if let Some(expected) = &expected {
            verify_bytes(file.bytes(), expected, progress.as_ref(), &cancelled)?;
        }
        let file = Arc::new(file);
        let tokenizer = Tokenizer::from_gguf(&file.header)?;
        let model_config = ModelConfig::from_gguf(&file.header)?;
        let template = ChatTemplate::from_gguf(&file.header)?;
        let n_ctx = match config.context_size {
            Some(0) => {
                return Err(WispError::InvalidRequest {
                    detail: "context_size must be at least 1".into(),
                })
            }
            Some(n) => n as usize,
            None => model_config.default_n_ctx(),
        };
        if cancelled() {
            return Err(WispError::Cancelled);
        }
        let report = |done: u64, total: u64| {
            if let Some(p) = &progress {
                p.on_progress(LoadStage::Loading, done, total);
            }
        };
        let threads = config.threads.unwrap_or(0) as usize;
        let choice = config.device.unwrap_or_default();
        let cpu_engine = |reason: String| -> Result<(Session, String, String, String), WispError> {
            report(0, 1);
            let options = CpuOptions {
                threads,
                ..Default::default()
            };
            let model = Arc::new(CpuEngine::load(Arc::clone(&file), &options)?);
            report(1, 1);
            let reason = format!(
                "{reason} ({} kernels, {} threads)",
                model.isa().name(),
                model.threads()
            );
            let session = CpuEngineSession::new(model, n_ctx)?;
            Ok((Box::new(session), "cpu".into(), "cpu".into(), reason))
        };
        // Auto: a hardware adapter whose limits and budget hold the plan, else the CPU.
        let gpu = match choice {
            Device::Gpu => Some((
                Arc::new(GpuContext::new_blocking(&DeviceOptions::default())?),
                "requested".to_string(),
            )),
            Device::Auto => match GpuContext::new_blocking(&DeviceOptions::default()) {
                Err(_) => None,
                Ok(ctx) if ctx.caps.software => None,
                Ok(ctx) => Some((Arc::new(ctx), "auto: hardware adapter".to_string())),
            },
            Device::Cpu | Device::Oracle => None,
        };
        let auto_reason = |why: String| format!("auto: {why}");
        let gpu = match (gpu, choice) {
            (Some((ctx, reason)), Device::Auto) => {
                let limits = &ctx.caps.limits;
                let max_binding = limits.max_storage_buffer_binding_size;
                let fits = MemoryPlan::new(
                    &file.header,
                    &model_config,
                    n_ctx,
                    ctx.caps.f16,
                    max_binding,
                )
                .and_then(|p| {
                    p.check(
                        max_binding,
                        limits.max_buffer_size,
                        config.gpu_memory_budget_bytes,
                    )
                });
                match fits {
                    Ok(()) => Ok((ctx, reason)),
                    Err(e) => Err(auto_reason(format!(
                        "the GPU memory plan does not fit {} ({e})",
                        ctx.caps.adapter_name
                    ))),
                }
            }
            (Some(g), _) => Ok(g),
            (None, Device::Auto) => Err(auto_reason(
                "no hardware GPU adapter (none, or a software one)".into(),
            )),
            (None, _) => Err("requested".into()),
        };
        let (session, device, engine, engine_reason): (Session, String, String, String) =
            match (choice, gpu) {
                (Device::Oracle, _) => {
                    report(0, 1);
                    let model = Arc::new(CpuModel::load(Arc::clone(&file))?);
                    report(1, 1);
                    (
                        Box::new(CpuSession::new(model, n_ctx)),
                        "oracle".into(),
                        "oracle".into(),
                        "requested".into(),
                    )
                }
                (_, Err(reason)) => cpu_engine(reason)?,
                (_, Ok((ctx, reason))) => {
                    let device = ctx.caps.adapter_name.clone();
                    let on_progress = progress.clone().map(|p| {
                        Arc::new(move |done, total| p.on_progress(LoadStage::Loading, done, total))
                            as Arc<dyn Fn(u64, u64) + Send + Sync>
                    });
                    let control = LoadControl {
                        on_progress,
                        cancel: cancel.as_ref().map(|c| Arc::clone(&c.flag)),
                    };
                    let mut source = SliceSource(file.bytes());
                    let model = GpuModel::load(
                        ctx,
                        &file.header,
                        &mut source,
                        &control,
                        n_ctx,
                        config.gpu_memory_budget_bytes,
                    )?;
                    let session = GpuSession::new(Arc::new(model), n_ctx)?;
                    (Box::new(session), device, "gpu".into(), reason)
                }
            };
        let render = render_options(&tokenizer);
        let header = &file.header;
        let info = ModelInfo {
            architecture: header.architecture().unwrap_or("unknown").to_string(),
            name: header.get_str("general.name").map(str::to_string),
            context_size: n_ctx as u32,
            trained_context_size: model_config.n_ctx_train as u32,
            layers: model_config.n_layer as u32,
            embedding_size: model_config.n_embd as u32,
            vocab_size: tokenizer.vocab_size() as u32,
            file_size_bytes: file.bytes().len() as u64,
            device,
            engine,
            engine_reason,
            builtin_chat_template: template.is_builtin(),
        };
        Ok(Arc::new(Engine {
            tokenizer,
            template,
            render,
            info,
            session: Mutex::new(session),
            cancel: AtomicBool::new(false),
        }))
    }

    fn run(
        &self,
        ids: &[u32],
        options: &GenerationOptions,
        listener: Option<Arc<dyn TokenListener>>,
    ) -> Result<Completion, WispError> {
        let mut sampler = sampler(options)?;
        let opts = GenerateOptions {
            max_tokens: options.max_tokens.map(|n| n as usize),
            stop: options.stop.clone(),
        };
        // A poisoned lock only means an earlier call panicked mid-generation; the cache
        // is then simply recomputed from the prompt (generate() reuses only a true prefix).
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        // Cancellation applies to the generation running when it is asked for.
        self.cancel.store(false, Ordering::Relaxed);
        let start = Instant::now();
        let mut first: Option<Instant> = None;
        let mut on_text = |text: &str| {
            first.get_or_insert_with(Instant::now);
            if self.cancel.load(Ordering::Relaxed) {
                return false;
            }
            match &listener {
                Some(l) => l.on_text(text.to_string()) && !self.cancel.load(Ordering::Relaxed),
                None => true,
            }
        };
        let result = generate_cancellable(
            session.as_mut(),
            &self.tokenizer,
            &mut sampler,
            ids,
            &opts,
            &mut on_text,
            &|| self.cancel.load(Ordering::Relaxed),
        );
        let end = Instant::now();
        let g = match result {
            Ok(g) => g,
            Err(e) => {
                // The cache counts only evaluated positions, so a refused request (context
                // full, bad token) keeps the conversation; after a GPU failure start clean.
                if matches!(e, wisp::Error::Gpu(_)) {
                    session.truncate(0);
                }
                return Err(e.into());
            }
        };
        // Time to first token: the first text callback, or the end when nothing was
        // streamed (the first token was end-of-generation or an incomplete character).
        let first = first.unwrap_or(end);
        let ttft = first.duration_since(start).as_secs_f64();
        let decode = end.duration_since(first).as_secs_f64();
        let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        Ok(Completion {
            text: g.text,
            finish_reason: match g.finish_reason {
                wisp::generate::FinishReason::Stop => FinishReason::Stop,
                wisp::generate::FinishReason::Length => FinishReason::Length,
                wisp::generate::FinishReason::Cancelled => FinishReason::Cancelled,
            },
            usage: Usage {
                prompt_tokens: g.prompt_tokens as u32,
                cached_prompt_tokens: (g.prompt_tokens - g.prefilled_tokens) as u32,
                completion_tokens: g.tokens.len() as u32,
                time_to_first_token_ms: ttft * 1e3,
                prefill_tokens_per_second: rate(g.prefilled_tokens, ttft),
                decode_tokens_per_second: rate(g.tokens.len().saturating_sub(1), decode),
                total_ms: end.duration_since(start).as_secs_f64() * 1e3,
            },
        })
    }
}
