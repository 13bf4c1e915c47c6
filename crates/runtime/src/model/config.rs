//! Architecture configuration: the hyper-parameters read from GGUF metadata, with the
//! defaults llama.cpp applies when a key is absent.

use crate::gguf::{shown, Array, GgufHeader, Value};
use crate::Error;

/// The architectures Wisp runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma2,
    Gemma3,
    Phi3,
    SmolLM3,
}

impl Arch {
    pub const SUPPORTED: &'static [&'static str] = &[
        "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "smollm3",
    ];

    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            "gemma2" => Some(Arch::Gemma2),
            "gemma3" => Some(Arch::Gemma3),
            "phi3" => Some(Arch::Phi3),
            "smollm3" => Some(Arch::SmolLM3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
            Arch::Phi3 => "phi3",
            Arch::SmolLM3 => "smollm3",
        }
    }

    /// Gemma's feed-forward gate is GELU (tanh approximation); the others use SiLU.
    pub fn gelu_ffn(self) -> bool {
        matches!(self, Arch::Gemma2 | Arch::Gemma3)
    }
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1): llama (the converter permutes Q/K to match).
    Normal,
    /// Halves (i, i + n/2): qwen2, gemma3.
    Neox,
}

/// Everything the forward pass needs to know about a model's shape and math.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head dimension of queries and keys.
    pub head_dim_k: usize,
    /// Per-head dimension of values.
    pub head_dim_v: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    /// Context length the model was trained for.
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_style: RopeStyle,
    /// Dimensions of each head that RoPE rotates (the rest pass through).
    pub rope_dims: usize,
    pub rope_base: f32,
    /// Position multiplier (1 / linear scaling factor).
    pub rope_freq_scale: f32,
    /// RoPE base of sliding-window layers (Gemma 3: 10000).
    pub rope_base_swa: f32,
    /// Sliding window size for layers marked in `swa_layers` (0: none).
    pub sliding_window: usize,
    /// Per layer: does it use the sliding window (and `rope_base_swa`)?
    pub swa_layers: Vec<bool>,
    /// Multiplier applied to the query before attention.
    pub attn_scale: f32,
    /// Multiplier applied to token embeddings (Gemma: sqrt(n_embd)).
    pub embd_scale: f32,
    /// Final logit soft-capping (0: none).
    pub final_logit_softcap: f32,
    /// Attention score soft-capping, applied to the scaled scores (0: none; Gemma 2: 50).
    pub attn_softcap: f32,
    /// RoPE position multiplier of sliding-window layers (Gemma 3: 1, not the global one).
    pub rope_freq_scale_swa: f32,
    /// Per layer: does it apply RoPE? (SmolLM3 skips every 4th layer.)
    pub rope_layers: Vec<bool>,
    /// Context length the RoPE factors were trained for (Phi-3 LongRoPE picks the long
    /// factors when a session's context exceeds it).
    pub n_ctx_orig: usize,
}

fn arch_key(arch: Arch, suffix: &str) -> String {
    format!("{}.{suffix}", arch.name())
}

fn get_usize(h: &GgufHeader, key: &str) -> Result<Option<usize>, Error> {
    match h.get(key) {
        None => Ok(None),
        // At most u32::MAX, converted without `as`: usize is 32 bits on wasm32, where a
        // cast would wrap 2^32 to 0.
        Some(v) => v
            .as_int()
            .and_then(|x| u32::try_from(x).ok())
            .and_then(|x| usize::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| {
                Error::InvalidModel(format!(
                    "{key} must be a small non-negative integer, got {}",
                    v.describe()
                ))
            }),
    }
}

fn require_usize(h: &GgufHeader, key: &str) -> Result<usize, Error> {
    get_usize(h, key)?.ok_or_else(|| Error::InvalidModel(format!("missing metadata {key}")))
}

fn get_f32(h: &GgufHeader, key: &str) -> Result<Option<f32>, Error> {
    match h.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .map(|x| Some(x as f32))
            .ok_or_else(|| {
                Error::InvalidModel(format!(
                    "{key} must be a finite number, got {}",
                    v.describe()
                ))
            }),
    }
}

/// A per-layer count may be stored as one integer or as an array (one per layer).
fn get_per_layer_uniform(h: &GgufHeader, key: &str) -> Result<Option<usize>, Error> {
    match h.get(key) {
        Some(Value::Array(a)) => {
            let v = a
                .to_i64_vec()
                .ok_or_else(|| Error::InvalidModel(format!("{key} must hold integers")))?;
            match v.first() {
                Some(&first) if v.iter().all(|&x| x == first) => {
                    match u32::try_from(first)
                        .ok()
                        .and_then(|x| usize::try_from(x).ok())
                    {
                        Some(n) if n > 0 => Ok(Some(n)),
                        _ => Err(Error::InvalidModel(format!(
                            "{key} must be a small positive integer, got {first}"
                        ))),
                    }
                }
                Some(_) => Err(Error::Unsupported(format!(
                    "{key} varies per layer ({:?}{}); Wisp needs one value for all layers",
                    &v[..v.len().min(8)],
                    if v.len() > 8 { ", …" } else { "" }
                ))),
                None => Err(Error::InvalidModel(format!("{key} is an empty array"))),
            }
        }
        _ => get_usize(h, key),
    }
}

/// The largest default context: a model's trained context can be 128k tokens, whose KV
/// cache would not fit a phone; callers ask for more explicitly.
pub const DEFAULT_MAX_CTX: usize = 4096;

impl ModelConfig {
    /// The context size when the caller gives none: the model's, capped at
    /// [`DEFAULT_MAX_CTX`]. Every front end uses it, so they answer alike.
    pub fn default_n_ctx(&self) -> usize {
        self.n_ctx_train.min(DEFAULT_MAX_CTX)
    }

    pub fn from_gguf(h: &GgufHeader) -> Result<ModelConfig, Error> {
        let arch_name = h
            .architecture()
            .ok_or_else(|| Error::InvalidModel("missing metadata general.architecture".into()))?;
        let arch = Arch::from_name(arch_name).ok_or_else(|| {
            Error::Unsupported(format!(
                "architecture {} (Wisp runs: {})",
                shown(arch_name),
                Arch::SUPPORTED.join(", ")
            ))
        })?;
        let k = |s: &str| arch_key(arch, s);

        let n_embd = require_usize(h, &k("embedding_length"))?;
        let n_layer = require_usize(h, &k("block_count"))?;
        let n_head = get_per_layer_uniform(h, &k("attention.head_count"))?.ok_or_else(|| {
            Error::InvalidModel(format!("missing metadata {}", k("attention.head_count")))
        })?;
        let n_head_kv = get_per_layer_uniform(h, &k("attention.head_count_kv"))?.unwrap_or(n_head);
        let n_ff = get_per_layer_uniform(h, &k("feed_forward_length"))?.ok_or_else(|| {
            Error::InvalidModel(format!("missing metadata {}", k("feed_forward_length")))
        })?;
        if n_embd == 0 || n_layer == 0 || n_head == 0 || n_head_kv == 0 || n_ff == 0 {
            return Err(Error::InvalidModel(
                "zero-sized model dimension in metadata".into(),
            ));
        }
        if n_layer > 1024 || n_embd > 1 << 16 || n_ff > 1 << 18 || n_head > 1024 {
            return Err(Error::InvalidModel(format!(
                "implausible dimensions (layers {n_layer}, embedding {n_embd}, ffn {n_ff}, heads {n_head})"
            )));
        }
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(Error::InvalidModel(format!(
                "{n_head} attention heads are not a multiple of {n_head_kv} KV heads"
            )));
        }
        let head_dim_k = get_usize(h, &k("attention.key_length"))?.unwrap_or(n_embd / n_head);
        let head_dim_v = get_usize(h, &k("attention.value_length"))?.unwrap_or(n_embd / n_head);
        if head_dim_k == 0 || head_dim_v == 0 || head_dim_k > 1024 || head_dim_v > 1024 {
            return Err(Error::InvalidModel(format!(
                "implausible head dimensions {head_dim_k}/{head_dim_v}"
            )));
        }
        let rope_dims = get_usize(h, &k("rope.dimension_count"))?.unwrap_or(head_dim_k);
        if rope_dims > head_dim_k || !rope_dims.is_multiple_of(2) {
            return Err(Error::InvalidModel(format!(
                "rope dimension count {rope_dims} does not fit head dimension {head_dim_k}"
            )));
        }
        let n_vocab = match get_usize(h, &k("vocab_size"))? {
            Some(n) => n,
            None => h
                .get_array("tokenizer.ggml.tokens")
                .map(Array::len)
                .ok_or_else(|| Error::InvalidModel("no vocabulary size in metadata".into()))?,
        };
        let n_ctx_train = get_usize(h, &k("context_length"))?.unwrap_or(2048).max(1);
        let rms_eps = get_f32(h, &k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);

        let rope_base = get_f32(h, &k("rope.freq_base"))?.unwrap_or(10000.0);
        let rope_freq_scale = match h.get_str(&k("rope.scaling.type")) {
            None | Some("none") => 1.0,
            Some("linear") => {
                let factor = get_f32(h, &k("rope.scaling.factor"))?.unwrap_or(1.0);
                if factor > 0.0 {
                    1.0 / factor
                } else {
                    1.0
                }
            }
            Some(other) => {
                return Err(Error::Unsupported(format!(
                    "RoPE scaling type {}",
                    shown(other)
                )))
            }
        };
        // RoPE's attention factor scales cos and sin, so q·k by its square (Phi-3 LongRoPE).
        let rope_attn_factor = get_f32(h, &k("rope.scaling.attn_factor"))?.unwrap_or(1.0);
        if rope_attn_factor != 1.0 && rope_dims != head_dim_k {
            return Err(Error::Unsupported(
                "a RoPE attention factor with partial rotary dimensions".into(),
            ));
        }
        let n_ctx_orig = get_usize(h, &k("rope.scaling.original_context_length"))?
            .unwrap_or(n_ctx_train)
            .max(1);

        let head_scale = rope_attn_factor * rope_attn_factor / (head_dim_k as f32).sqrt();
        let mut cfg = ModelConfig {
            arch,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_ff,
            n_vocab,
            n_ctx_train,
            rms_eps,
            rope_style: RopeStyle::Normal,
            rope_dims,
            rope_base,
            rope_freq_scale,
            rope_base_swa: rope_base,
            sliding_window: 0,
            swa_layers: vec![false; n_layer],
            attn_scale: head_scale,
            embd_scale: 1.0,
            final_logit_softcap: get_f32(h, &k("final_logit_softcapping"))?.unwrap_or(0.0),
            attn_softcap: 0.0,
            rope_freq_scale_swa: rope_freq_scale,
            rope_layers: vec![true; n_layer],
            n_ctx_orig,
        };
        match arch {
            Arch::Llama => {}
            // llama.cpp hard-codes SmolLM3's period: layers 3, 7, 11, … skip RoPE.
            Arch::SmolLM3 => cfg.rope_layers = (0..n_layer).map(|il| (il + 1) % 4 != 0).collect(),
            Arch::Qwen2 | Arch::Qwen3 | Arch::Phi3 => cfg.rope_style = RopeStyle::Neox,
            Arch::Gemma2 => {
                cfg.rope_style = RopeStyle::Neox;
                cfg.embd_scale = (n_embd as f32).sqrt();
                if n_layer == 46 {
                    cfg.attn_scale = 1.0 / ((n_embd / n_head) as f32).sqrt();
                }
                cfg.attn_softcap = get_f32(h, &k("attn_logit_softcapping"))?.unwrap_or(0.0);
                // Gemma 2 always slides (default window 4096), every other layer from 0.
                cfg.sliding_window = get_usize(h, &k("attention.sliding_window"))?.unwrap_or(4096);
                cfg.rope_base_swa = get_f32(h, &k("rope.freq_base_swa"))?.unwrap_or(rope_base);
                cfg.swa_layers =
                    swa_pattern(h, &k("attention.sliding_window_pattern"), n_layer, 2)?;
            }
            Arch::Gemma3 => {
                cfg.rope_style = RopeStyle::Neox;
                cfg.embd_scale = (n_embd as f32).sqrt();
                // Gemma 3 27B scales by the model width per head, the others by head_dim.
                if n_layer == 62 {
                    cfg.attn_scale = 1.0 / ((n_embd / n_head) as f32).sqrt();
                }
                cfg.sliding_window = get_usize(h, &k("attention.sliding_window"))?.unwrap_or(0);
                if cfg.sliding_window > 0 {
                    cfg.rope_base_swa = get_f32(h, &k("rope.freq_base_swa"))?.unwrap_or(10000.0);
                    // llama.cpp leaves local layers unscaled (Gemma 3 4B scales global ×1/8).
                    cfg.rope_freq_scale_swa = 1.0;
                    cfg.swa_layers =
                        swa_pattern(h, &k("attention.sliding_window_pattern"), n_layer, 6)?;
                }
            }
        }
        Ok(cfg)
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim_k
    }

    pub fn k_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_k
    }

    pub fn v_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }

    /// RoPE base of layer `il`.
    pub fn layer_rope_base(&self, il: usize) -> f32 {
        if self.swa_layers[il] {
            self.rope_base_swa
        } else {
            self.rope_base
        }
    }

    /// RoPE position multiplier of layer `il`.
    pub fn layer_rope_freq_scale(&self, il: usize) -> f32 {
        if self.swa_layers[il] {
            self.rope_freq_scale_swa
        } else {
            self.rope_freq_scale
        }
    }

    /// Sliding window of layer `il` (None: full causal attention).
    pub fn layer_window(&self, il: usize) -> Option<usize> {
        (self.swa_layers[il] && self.sliding_window > 0).then_some(self.sliding_window)
    }
}

/// Which layers use the sliding window: an explicit per-layer bool array, or a period
/// `n` where every n-th layer (the last of each group) is global.
fn swa_pattern(
    h: &GgufHeader,
    key: &str,
    n_layer: usize,
    default_period: usize,
) -> Result<Vec<bool>, Error> {
    if let Some(Value::Array(Array::Bool(flags))) = h.get(key) {
        if flags.len() != n_layer {
            return Err(Error::InvalidModel(format!(
                "{key} has {} entries for {n_layer} layers",
                flags.len()
            )));
        }
        return Ok(flags.clone());
    }
    let period = get_usize(h, key)?.unwrap_or(default_period);
    Ok((0..n_layer)
        .map(|il| period == 0 || il % period < period - 1)
        .collect())
}
