//! Opening a model as the global flags ask: integrity check, device choice, context size.

use crate::{Device, LoadFlags, ModelArgs};
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Read};
use std::sync::Arc;
use wisp::cpu::{CpuEngine, CpuEngineSession, CpuOptions, Precision};
use wisp::engine::{GpuModel, GpuSession, LoadControl, SliceSource};
use wisp::generate::Forward;
use wisp::gguf::GgufFile;
use wisp::gpu::{DeviceOptions, GpuContext};
use wisp::model::cpu::{CpuModel, CpuSession};
use wisp::model::ModelConfig;
use wisp::tokenizer::Tokenizer;

/// Progress lines go to stderr, and only when it is a terminal.
pub fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K{msg}");
    }
}

pub fn progress_done() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// The `--sha256` the user gave, normalized, if any.
fn expected_sha256(args: &ModelArgs) -> Result<Option<String>, String> {
    let Some(expected) = &args.sha256 else {
        return Ok(None);
    };
    let expected = expected.trim().to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("--sha256 wants 64 hex digits, got {expected:?}"));
    }
    Ok(Some(expected))
}

/// SHA-256 as lowercase hex, with progress on a terminal.
struct Hashing {
    hasher: Sha256,
    done: u64,
    total: u64,
}

impl Hashing {
    fn new(total: u64) -> Hashing {
        Hashing {
            hasher: Sha256::new(),
            done: 0,
            total,
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.done += chunk.len() as u64;
        progress(&format!(
            "verifying sha256: {}%",
            self.done * 100 / self.total.max(1)
        ));
    }

    fn hex(self) -> String {
        progress_done();
        self.hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn refuse_unless(args: &ModelArgs, expected: &str, actual: &str) -> Result<(), String> {
    if actual != expected {
        return Err(format!(
            "{}: sha256 is {actual}, expected {expected}; refusing the file",
            args.model.display()
        ));
    }
    Ok(())
}

/// The file's hash read from disk (for files that do not parse as GGUF).
fn hash_path(args: &ModelArgs) -> Result<String, String> {
    let name = args.model.display();
    let mut f = std::fs::File::open(&args.model).map_err(|e| format!("cannot open {name}: {e}"))?;
    let mut h = Hashing::new(f.metadata().map(|m| m.len()).unwrap_or(0));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        if n == 0 {
            return Ok(h.hex());
        }
        h.update(&buf[..n]);
    }
}

/// The file, with its header parsed and, with `--sha256`, its hash checked.
///
/// The hash is taken over the mapped bytes the model is then read from, not over a
/// separate read of the path, so the file cannot be swapped between check and use. A
/// file that does not parse is hashed from disk, so a wrong file is reported as the
/// hash mismatch it is rather than as a format error.
pub fn open_file(args: &ModelArgs) -> Result<Arc<GgufFile>, String> {
    let expected = expected_sha256(args)?;
    match GgufFile::open(&args.model) {
        Ok(file) => {
            if let Some(expected) = &expected {
                let bytes = file.bytes();
                let mut h = Hashing::new(bytes.len() as u64);
                bytes.chunks(1 << 20).for_each(|c| h.update(c));
                refuse_unless(args, expected, &h.hex())?;
            }
            Ok(Arc::new(file))
        }
        Err(e) => {
            if let Some(expected) = &expected {
                if let Ok(actual) = hash_path(args) {
                    refuse_unless(args, expected, &actual)?;
                }
            }
            Err(match e {
                // I/O errors already name the file.
                wisp::Error::Io(m) => m,
                other => format!("{}: {other}", args.model.display()),
            })
        }
    }
}

pub fn tokenizer(file: &GgufFile) -> Result<Tokenizer, String> {
    Tokenizer::from_gguf(&file.header).map_err(|e| e.to_string())
}

/// The model, on the device the user chose.
pub enum Backend {
    /// The f32 oracle.
    Cpu(Arc<CpuModel>),
    /// The CPU engine.
    Engine(Arc<CpuEngine>),
    Gpu(Arc<GpuModel>),
}

/// A loaded model ready to evaluate.
pub struct Loaded {
    pub file: Arc<GgufFile>,
    pub tokenizer: Tokenizer,
    pub backend: Backend,
    pub config: ModelConfig,
    pub n_ctx: usize,
}

impl Loaded {
    /// A fresh sequence with its own KV cache.
    pub fn session(&self) -> Result<Box<dyn Forward + Send>, String> {
        Ok(match &self.backend {
            Backend::Cpu(m) => Box::new(CpuSession::new(Arc::clone(m), self.n_ctx)),
            Backend::Engine(m) => Box::new(
                CpuEngineSession::new(Arc::clone(m), self.n_ctx).map_err(|e| e.to_string())?,
            ),
            Backend::Gpu(m) => {
                Box::new(GpuSession::new(Arc::clone(m), self.n_ctx).map_err(|e| e.to_string())?)
            }
        })
    }
}

/// The device options the global flags ask for.
pub fn device_options(args: &LoadFlags) -> DeviceOptions {
    DeviceOptions {
        webgpu_default_limits: args.webgpu_default_limits,
        no_f16: args.no_f16,
        timestamps: args.timestamps,
        ..Default::default()
    }
}

pub fn load(args: &ModelArgs) -> Result<Loaded, String> {
    let file = open_file(args)?;
    let tokenizer = tokenizer(&file)?;
    let config = ModelConfig::from_gguf(&file.header)
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let n_ctx = match args.ctx_size {
        Some(0) => return Err("--ctx-size must be at least 1".into()),
        Some(n) => n,
        None => config.default_n_ctx(),
    };
    if args.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    let backend = match args.device {
        Device::Cpu => {
            progress("loading model");
            let options = CpuOptions {
                threads: args.threads.unwrap_or(0),
                precision: match args.cpu_precision {
                    crate::CpuPrecision::Exact => Precision::Exact,
                    crate::CpuPrecision::Fast => Precision::Fast,
                },
                ..Default::default()
            };
            let model = CpuEngine::load(Arc::clone(&file), &options)
                .map_err(|e| format!("{}: {e}", args.model.display()))?;
            progress_done();
            Backend::Engine(Arc::new(model))
        }
        Device::Oracle => {
            // The CPU oracle keeps an f32 KV cache; refuse sizes that cannot be allocated sanely.
            let kv_bytes = (n_ctx as u128)
                * config.n_layer as u128
                * (config.k_dim() + config.v_dim()) as u128
                * 4;
            if kv_bytes > 16 << 30 {
                return Err(format!(
                    "--ctx-size {n_ctx} needs a {} MiB KV cache on the CPU; choose a smaller context",
                    kv_bytes >> 20
                ));
            }
            progress("loading model");
            let model = CpuModel::load(Arc::clone(&file))
                .map_err(|e| format!("{}: {e}", args.model.display()))?;
            progress_done();
            Backend::Cpu(Arc::new(model))
        }
        Device::Gpu => {
            let ctx = Arc::new(
                GpuContext::new_blocking(&device_options(args)).map_err(|e| e.to_string())?,
            );
            let control = LoadControl {
                on_progress: Some(Arc::new(|done, total| {
                    progress(&format!(
                        "uploading weights: {} / {} MiB",
                        done >> 20,
                        total >> 20
                    ))
                })),
                cancel: None,
            };
            let mut source = SliceSource(file.bytes());
            let model = GpuModel::load(
                ctx,
                &file.header,
                &mut source,
                &control,
                n_ctx,
                args.gpu_memory_budget,
            )
            .map_err(|e| format!("{}: {e}", args.model.display()))?;
            progress_done();
            Backend::Gpu(Arc::new(model))
        }
    };
    Ok(Loaded {
        file,
        tokenizer,
        backend,
        config,
        n_ctx,
    })
}
