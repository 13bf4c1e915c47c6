//! The GPU engine's side of the bindings: streaming a model into GPU buffers and
//! generating with the async GPU loop. Only in the default build (wgpu's WebGPU backend
//! does not build with wasm atomics, so the threaded CPU build leaves it out).

use crate::{js_error, now_s, wisp_error, Engine, Hooks, LoadOptions, Session, Text, Timings};
use js_sys::Uint8Array;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;
use wisp::chat::{render_options, ChatTemplate};
use wisp::engine::{generate_async, GpuSession, ModelUpload, UploadBytes};
use wisp::generate::{GenerateOptions, Generation};
use wisp::gguf::GgufHeader;
use wisp::gpu::wgpu;
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::sampling::Sampler;
use wisp::tokenizer::Tokenizer;
use wisp::Error;

fn device_options(v: &Value) -> DeviceOptions {
    DeviceOptions {
        webgpu_default_limits: v["webgpuDefaultLimits"].as_bool().unwrap_or(false),
        no_f16: v["noF16"].as_bool().unwrap_or(false),
        no_subgroups: true,
        ..Default::default()
    }
}

/// Generate on the GPU session (the runtime's async loop).
pub(crate) async fn generate(
    session: &mut GpuSession,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    hooks: Hooks<'_>,
) -> Result<(Generation, Timings), Error> {
    let (g, t) = generate_async(
        session,
        tokenizer,
        sampler,
        prompt,
        opts,
        wisp::engine::Hooks {
            on_text: hooks.on_text,
            cancelled: hooks.cancelled,
            now: &now_s,
        },
    )
    .await?;
    Ok((
        g,
        Timings {
            first_token_s: t.time_to_first_token_s,
            decode_s: t.decode_s,
        },
    ))
}

/// A JS byte array on its way to the GPU without touching wasm memory.
struct JsBytes<'a>(&'a Uint8Array);

impl UploadBytes for JsBytes<'_> {
    fn len(&self) -> usize {
        self.0.length() as usize
    }

    fn copy_to(&self, start: usize, end: usize, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + end - start, 0);
        self.0
            .subarray(start as u32, end as u32)
            .copy_to(&mut out[at..]);
    }

    fn write_to(
        &self,
        queue: &wgpu::Queue,
        buffer: &wgpu::Buffer,
        offset: u64,
        start: usize,
        end: usize,
    ) {
        let (Some(q), Some(b)) = (queue.as_webgpu(), buffer.as_webgpu()) else {
            // Not the WebGPU backend: go through wgpu (copies into wasm memory).
            let mut tmp = Vec::new();
            self.copy_to(start, end, &mut tmp);
            queue.write_buffer(buffer, offset, &tmp);
            return;
        };
        let piece = self.0.subarray(start as u32, end as u32);
        // Errors surface through the device's error scope, like wgpu's own writes.
        let _ = q.write_buffer_with_f64_and_u8_array(b, offset as f64, &piece);
    }
}

/// A model being loaded: JS reads [`Loader::ranges`] of the file in order and pushes the
/// bytes, then calls [`finishLoad`].
#[wasm_bindgen]
pub struct Loader {
    upload: ModelUpload,
    tokenizer: Tokenizer,
    template: Result<ChatTemplate, Error>,
    n_ctx: usize,
    info: Value,
}

/// Parse the header in `prefix` (see [`crate::header_bytes_needed`]), open the GPU, check the
/// memory plan against its limits and allocate the weight buffers.
#[wasm_bindgen(js_name = beginLoad)]
pub async fn begin_load(
    prefix: Vec<u8>,
    file_len: Option<f64>,
    options: String,
) -> Result<Loader, JsValue> {
    let opts = LoadOptions::parse(&options)?;
    let header =
        GgufHeader::parse(&prefix, file_len.map(|n| n as u64)).map_err(|e| wisp_error(e.into()))?;
    drop(prefix);
    let tokenizer = Tokenizer::from_gguf(&header).map_err(wisp_error)?;
    let template = ChatTemplate::from_gguf(&header);
    let ctx = GpuContext::new(&device_options(&opts.raw)).await.map_err(|e| {
        js_error(
            "webgpu_unavailable",
            format!("{e}. WebGPU needs a recent Chrome, Edge or Safari (or Firefox 141+ on Windows); on Linux Chrome, enable chrome://flags/#enable-unsafe-webgpu"),
        )
    })?;
    let ctx = Arc::new(ctx);
    let config = wisp::model::ModelConfig::from_gguf(&header).map_err(wisp_error)?;
    let n_ctx = opts.n_ctx.unwrap_or_else(|| config.default_n_ctx()).max(1);
    let upload =
        ModelUpload::begin(Arc::clone(&ctx), &header, n_ctx, opts.budget).map_err(|e| match e {
            // The memory plan's refusals: say what to change in this API's terms.
            Error::Unsupported(m) if m.starts_with("the model needs") => {
                js_error("model_too_large", m.replace("--ctx-size", "contextLength"))
            }
            e => wisp_error(e),
        })?;
    if let Some(len) = file_len {
        upload.check_source_len(len as u64).map_err(wisp_error)?;
    }
    let info = json!({
        "name": header.get_str("general.name").unwrap_or(""),
        "architecture": header.get_str("general.architecture").unwrap_or(""),
        "contextLength": n_ctx,
        "trainedContextLength": config.n_ctx_train,
        "vocabSize": config.n_vocab,
        "layers": config.n_layer,
        "embeddingSize": config.n_embd,
        "engine": "gpu",
        "gpuBytes": upload.plan().weights_bytes,
        "adapter": ctx.caps.adapter_name,
        "shaderF16": ctx.caps.f16,
        "hasChatTemplate": header.get_str("tokenizer.chat_template").is_some(),
    });
    Ok(Loader {
        upload,
        tokenizer,
        template,
        n_ctx,
        info,
    })
}

#[wasm_bindgen]
impl Loader {
    /// The byte ranges to read, flattened: `[start0, end0, start1, end1, …]`.
    pub fn ranges(&self) -> Vec<f64> {
        self.upload
            .ranges()
            .into_iter()
            .flat_map(|(s, e)| [s as f64, e as f64])
            .collect()
    }

    /// The next bytes of the ranges, in order.
    pub fn push(&mut self, chunk: &Uint8Array) -> Result<(), JsValue> {
        self.upload.push(&JsBytes(chunk)).map_err(wisp_error)
    }

    /// Bytes received so far.
    pub fn loaded(&self) -> f64 {
        self.upload.done as f64
    }

    /// Bytes to receive in all.
    pub fn total(&self) -> f64 {
        self.upload.total as f64
    }
}

/// Wait for the uploads, compile the kernels and open a session.
#[wasm_bindgen(js_name = finishLoad)]
pub async fn finish_load(loader: Loader) -> Result<Engine, JsValue> {
    let Loader {
        upload,
        tokenizer,
        template,
        n_ctx,
        info,
    } = loader;
    let model = Arc::new(upload.finish().await.map_err(wisp_error)?);
    let session = GpuSession::create(Arc::clone(&model), n_ctx)
        .await
        .map_err(wisp_error)?;
    let render = render_options(&tokenizer);
    Ok(Engine {
        text: Rc::new(Text {
            tokenizer,
            template,
            render,
        }),
        session: Rc::new(RefCell::new(Some(Session::Gpu(Box::new(session))))),
        info: info.to_string(),
    })
}
