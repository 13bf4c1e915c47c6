//! Random-weight GGUFs with the real shapes and metadata of the 2B–4B families
//! (`cargo xtask synth`). Shared by xtask and the end-to-end tests
//! (`#[path]`-included there), so it depends on nothing but `std` and `sha2`.
//!
//! Each file is a pure function of (family, mix, depth, seed): full width, real vocabulary
//! size (a synthetic SentencePiece-style vocabulary `<unk> <s> </s> <0x00>… ▁t…`), the
//! family's metadata keys, and weights whose quantized blocks hold uniformly random codes
//! with bounded scales (the block's f16 scale(s) set so each matrix has a chosen standard
//! deviation). `tests/reference/check_synth.py` dequantizes every tensor with
//! `gguf.quants.dequantize` and checks those deviations.
//!
//! Scales (why these numbers): every matrix gets σ = gain / √cols, so a unit-RMS input
//! gives unit-RMS outputs and every block adds O(1) to the residual stream; attention
//! scores then have spread ≈ 1 (softmax neither flat nor one-hot). The output head (tied
//! embedding or `output.weight`) gets σ = LOGIT_STD / √n_embd, so logits have standard
//! deviation ≈ LOGIT_STD = 3: with 32k–262k candidates the top-2 gap is ≥ 0.3 at about
//! 60% of the positions (the tests count them). Larger spreads gate more positions but
//! scale llama.cpp's CPU-backend noise (8-bit activations) with them: at LOGIT_STD = 4
//! it reached |Δ| 0.36 (median 0.07) against our f32 oracle on Llama-3.2 shapes, over
//! the 0.35 bar, and flipped a top-1 whose gap was 0.304.
//! Gemma 2 gets a Q gain of 2.5 so its attention soft-cap (50) bends the largest scores
//! a little; Gemma's post-norms are ~16 (see below).

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const SEED: u64 = 0x5749_5350_2026; // "WISP" 2026
/// Standard deviation of the logits the generated models produce (≈).
pub const LOGIT_STD: f32 = 3.0;

/// The logit spread a family's model is built for: LOGIT_STD, or 2 for Gemma, whose
/// sandwich-normed layers make llama.cpp's 8-bit activation noise larger (measured at
/// spread 3: max |Δ| 0.40 on Gemma 2, 0.30 on Gemma 3, ≤ 0.23 on the others).
pub fn logit_std(f: &Family) -> f32 {
    if f.arch.starts_with("gemma") {
        2.0
    } else {
        LOGIT_STD
    }
}

/// One family's real shape and metadata.
#[derive(Debug, Clone)]
pub struct Family {
    pub key: &'static str,
    pub arch: &'static str,
    pub n_embd: usize,
    /// Depth of the real model.
    pub n_layer_full: usize,
    /// Depth of the small test model.
    pub n_layer_test: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub ctx: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub tied: bool,
}

pub const FAMILIES: &[Family] = &[
    Family {
        key: "llama32-3b",
        arch: "llama",
        n_embd: 3072,
        n_layer_full: 28,
        n_layer_test: 2,
        n_head: 24,
        n_head_kv: 8,
        head_dim: 128,
        n_ff: 8192,
        n_vocab: 128256,
        ctx: 131072,
        rope_base: 500000.0,
        rms_eps: 1e-5,
        tied: true,
    },
    Family {
        key: "qwen25-3b",
        arch: "qwen2",
        n_embd: 2048,
        n_layer_full: 36,
        n_layer_test: 2,
        n_head: 16,
        n_head_kv: 2,
        head_dim: 128,
        n_ff: 11008,
        n_vocab: 151936,
        ctx: 32768,
        rope_base: 1e6,
        rms_eps: 1e-6,
        tied: true,
    },
    Family {
        key: "qwen3-4b",
        arch: "qwen3",
        n_embd: 2560,
        n_layer_full: 36,
        n_layer_test: 2,
        n_head: 32,
        n_head_kv: 8,
        head_dim: 128,
        n_ff: 9728,
        n_vocab: 151936,
        ctx: 40960,
        rope_base: 1e6,
        rms_eps: 1e-6,
        tied: true,
    },
    Family {
        key: "gemma2-2b",
        arch: "gemma2",
        n_embd: 2304,
        n_layer_full: 26,
        n_layer_test: 2,
        n_head: 8,
        n_head_kv: 4,
        head_dim: 256,
        n_ff: 9216,
        n_vocab: 256000,
        ctx: 8192,
        rope_base: 10000.0,
        rms_eps: 1e-6,
        tied: true,
    },
    // Six layers: Gemma 3's pattern makes layer 5 the first global (full-attention,
    // linearly scaled RoPE) layer; fewer would test local layers only.
    Family {
        key: "gemma3-4b",
        arch: "gemma3",
        n_embd: 2560,
        n_layer_full: 34,
        n_layer_test: 6,
        n_head: 8,
        n_head_kv: 4,
        head_dim: 256,
        n_ff: 10240,
        n_vocab: 262144,
        ctx: 131072,
        rope_base: 1e6,
        rms_eps: 1e-6,
        tied: true,
    },
    Family {
        key: "phi35-mini",
        arch: "phi3",
        n_embd: 3072,
        n_layer_full: 32,
        n_layer_test: 2,
        n_head: 32,
        n_head_kv: 32,
        head_dim: 96,
        n_ff: 8192,
        n_vocab: 32064,
        ctx: 131072,
        rope_base: 10000.0,
        rms_eps: 1e-5,
        tied: false,
    },
    // Four layers: layer 3 is SmolLM3's first layer without RoPE.
    Family {
        key: "smollm3-3b",
        arch: "smollm3",
        n_embd: 2048,
        n_layer_full: 36,
        n_layer_test: 4,
        n_head: 16,
        n_head_kv: 4,
        head_dim: 128,
        n_ff: 11008,
        n_vocab: 128256,
        ctx: 65536,
        rope_base: 5e6,
        rms_eps: 1e-6,
        tied: true,
    },
];

/// Which ggml type each kind of tensor gets.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub key: &'static str,
    pub embd: Ty,
    pub output: Ty,
    pub q: Ty,
    pub k: Ty,
    pub v: Ty,
    pub o: Ty,
    pub gate: Ty,
    pub up: Ty,
    pub down: Ty,
}

/// `q4km`: llama.cpp's Q4_K_M recipe (Q6_K for V, down and the head). `legacy`: every
/// pre-K block format plus Q2_K/Q3_K/Q5_K. `float`: F16, BF16, IQ4_NL, IQ4_XS with Q8_0,
/// Q6_K, Q4_K. Over the three, every type the GPU kernels handle appears.
pub const MIXES: &[Mix] = &[
    Mix {
        key: "q4km",
        embd: Ty::Q6K,
        output: Ty::Q6K,
        q: Ty::Q4K,
        k: Ty::Q4K,
        v: Ty::Q6K,
        o: Ty::Q4K,
        gate: Ty::Q4K,
        up: Ty::Q4K,
        down: Ty::Q6K,
    },
    Mix {
        key: "legacy",
        embd: Ty::Q8_0,
        output: Ty::Q5_1,
        q: Ty::Q4_0,
        k: Ty::Q4_1,
        v: Ty::Q5_0,
        o: Ty::Q5_1,
        gate: Ty::Q2K,
        up: Ty::Q3K,
        down: Ty::Q5K,
    },
    Mix {
        key: "float",
        embd: Ty::Q4K,
        output: Ty::IQ4XS,
        q: Ty::F16,
        k: Ty::BF16,
        v: Ty::IQ4NL,
        o: Ty::IQ4XS,
        gate: Ty::Q8_0,
        up: Ty::Q6K,
        down: Ty::Q4_0,
    },
];

/// The (family, mix) pairs the tests use: `q4km` for every family, and one of the other
/// two, alternating, so each type runs under several architectures.
pub fn test_pairs() -> Vec<(&'static Family, &'static Mix)> {
    let mut v = Vec::new();
    for (i, f) in FAMILIES.iter().enumerate() {
        v.push((f, &MIXES[0]));
        v.push((f, &MIXES[1 + i % 2]));
    }
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    IQ4NL,
    IQ4XS,
}

impl Ty {
    /// ggml type id.
    fn id(self) -> u32 {
        match self {
            Ty::F32 => 0,
            Ty::F16 => 1,
            Ty::Q4_0 => 2,
            Ty::Q4_1 => 3,
            Ty::Q5_0 => 6,
            Ty::Q5_1 => 7,
            Ty::Q8_0 => 8,
            Ty::Q2K => 10,
            Ty::Q3K => 11,
            Ty::Q4K => 12,
            Ty::Q5K => 13,
            Ty::Q6K => 14,
            Ty::IQ4NL => 20,
            Ty::IQ4XS => 23,
            Ty::BF16 => 30,
        }
    }

    /// (elements, bytes) per block.
    fn block(self) -> (usize, usize) {
        match self {
            Ty::F32 => (1, 4),
            Ty::F16 | Ty::BF16 => (1, 2),
            Ty::Q4_0 | Ty::IQ4NL => (32, 18),
            Ty::Q4_1 => (32, 20),
            Ty::Q5_0 => (32, 22),
            Ty::Q5_1 => (32, 24),
            Ty::Q8_0 => (32, 34),
            Ty::Q2K => (256, 84),
            Ty::Q3K => (256, 110),
            Ty::Q4K => (256, 144),
            Ty::Q5K => (256, 176),
            Ty::Q6K => (256, 210),
            Ty::IQ4XS => (256, 136),
        }
    }

    /// Standard deviation of the dequantized values of random codes with the block scale
    /// `d = 1` (and the `dmin` chosen below), measured over 2^20 elements with
    /// `check_synth.py --measure`; the generator divides by it.
    fn unit_std(self) -> f32 {
        match self {
            Ty::F32 | Ty::F16 | Ty::BF16 => 1.0,
            Ty::Q4_0 | Ty::Q4_1 => 4.61,
            Ty::Q5_0 | Ty::Q5_1 => 9.23,
            Ty::Q8_0 => 73.9,
            Ty::IQ4NL => 67.4,
            Ty::Q2K => 13.9,
            Ty::Q3K => 43.3,
            Ty::Q4K => 258.0,
            Ty::Q5K => 527.0,
            Ty::Q6K => 335.0,
            Ty::IQ4XS => 1246.0,
        }
    }
}

/// splitmix64: tiny, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, name: &str) -> Rng {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01B3);
        }
        Rng(h)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

fn f16_bits(x: f32) -> u16 {
    // Round-to-nearest-even f32 → f16 for normal-range values (all this writer needs).
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let man = b & 0x7f_ffff;
    if exp < 1 {
        // Subnormal: multiples of 2^-24.
        return sign | (x.abs() * 16_777_216.0).round() as u16;
    }
    assert!(exp < 31, "f16 out of range: {x}");
    let mut h = ((exp as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Random codes for `n` elements of type `ty` with standard deviation ≈ `std`.
fn quantized(ty: Ty, n: usize, std: f32, rng: &mut Rng) -> Vec<u8> {
    let (be, bb) = ty.block();
    assert!(
        n.is_multiple_of(be),
        "{n} elements are not whole {ty:?} blocks"
    );
    let nb = n / be;
    let mut out = vec![0u8; nb * bb];
    let d = std / ty.unit_std();
    match ty {
        Ty::F32 => {
            for c in out.chunks_mut(4) {
                c.copy_from_slice(&(rng.normal() * std).to_le_bytes());
            }
            return out;
        }
        Ty::F16 => {
            for c in out.chunks_mut(2) {
                c.copy_from_slice(&f16_bits(rng.normal() * std).to_le_bytes());
            }
            return out;
        }
        Ty::BF16 => {
            for c in out.chunks_mut(2) {
                c.copy_from_slice(&bf16_bits(rng.normal() * std).to_le_bytes());
            }
            return out;
        }
        _ => {}
    }
    rng.fill(&mut out);
    let dh = f16_bits(d).to_le_bytes();
    for blk in out.chunks_mut(bb) {
        let put = |blk: &mut [u8], at: usize, v: [u8; 2]| blk[at..at + 2].copy_from_slice(&v);
        match ty {
            Ty::Q4_0 | Ty::Q5_0 | Ty::Q8_0 | Ty::IQ4NL => put(blk, 0, dh),
            // value = d·q + m with q uniform in [0, 2^b): m = −d·(2^b − 1)/2 centres it.
            Ty::Q4_1 => {
                put(blk, 0, dh);
                put(blk, 2, f16_bits(-7.5 * d).to_le_bytes());
            }
            Ty::Q5_1 => {
                put(blk, 0, dh);
                put(blk, 2, f16_bits(-15.5 * d).to_le_bytes());
            }
            // value = d·sc·q − dmin·m, sc and m random 4/6-bit: dmin = d·E[q] centres the
            // average (individual sub-blocks keep random offsets: still bounded).
            Ty::Q2K => {
                put(blk, 80, dh);
                put(blk, 82, f16_bits(1.5 * d).to_le_bytes());
            }
            Ty::Q3K => put(blk, 108, dh),
            Ty::Q4K => {
                put(blk, 0, dh);
                put(blk, 2, f16_bits(7.5 * d).to_le_bytes());
            }
            Ty::Q5K => {
                put(blk, 0, dh);
                put(blk, 2, f16_bits(15.5 * d).to_le_bytes());
            }
            Ty::Q6K => {
                // int8 sub-block scales bounded to ±32 (a real model's are similar).
                for s in &mut blk[192..208] {
                    *s = ((*s as i8) / 4) as u8;
                }
                put(blk, 208, dh);
            }
            Ty::IQ4XS => put(blk, 0, dh),
            Ty::F32 | Ty::F16 | Ty::BF16 => unreachable!(),
        }
    }
    out
}

enum Val {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArr(Vec<String>),
    F32Arr(Vec<f32>),
    I32Arr(Vec<i32>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_val(out: &mut Vec<u8>, v: &Val) {
    match v {
        Val::U32(x) => {
            out.extend(4u32.to_le_bytes());
            out.extend(x.to_le_bytes());
        }
        Val::F32(x) => {
            out.extend(6u32.to_le_bytes());
            out.extend(x.to_le_bytes());
        }
        Val::Bool(x) => {
            out.extend(7u32.to_le_bytes());
            out.push(*x as u8);
        }
        Val::Str(s) => {
            out.extend(8u32.to_le_bytes());
            put_str(out, s);
        }
        Val::StrArr(a) => {
            out.extend(9u32.to_le_bytes());
            out.extend(8u32.to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            for s in a {
                put_str(out, s);
            }
        }
        Val::F32Arr(a) => {
            out.extend(9u32.to_le_bytes());
            out.extend(6u32.to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            for x in a {
                out.extend(x.to_le_bytes());
            }
        }
        Val::I32Arr(a) => {
            out.extend(9u32.to_le_bytes());
            out.extend(5u32.to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            for x in a {
                out.extend(x.to_le_bytes());
            }
        }
    }
}

struct Tensor {
    name: String,
    /// ggml order (row length first).
    dims: Vec<usize>,
    ty: Ty,
    /// Bytes of data (`data` is empty in a header-only build).
    len: usize,
    data: Vec<u8>,
}

/// Llama 3.1+'s RoPE frequency divisors (factor 32, low 1, high 4, original 8192), as
/// convert_hf_to_gguf computes them.
fn llama3_rope_freqs(head_dim: usize, base: f32) -> Vec<f32> {
    let (factor, low, high, orig) = (32.0f64, 1.0f64, 4.0f64, 8192.0f64);
    let (low_wl, high_wl) = (orig / low, orig / high);
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / (base as f64).powf(2.0 * i as f64 / head_dim as f64);
            let wl = 2.0 * std::f64::consts::PI / freq;
            if wl < high_wl {
                1.0
            } else if wl > low_wl {
                factor as f32
            } else {
                let smooth = (orig / wl - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

/// The whole file for one family at `n_layer` layers in `mix`.
pub fn build(f: &Family, mix: &Mix, n_layer: usize, seed: u64) -> Vec<u8> {
    build_opts(f, mix, n_layer, seed, false)
}

/// Only the header (metadata and tensor table) of [`build`]'s file: enough to plan
/// memory for a full-depth model without writing gigabytes (used by the tests' copy).
#[allow(dead_code)]
pub fn build_header(f: &Family, mix: &Mix, n_layer: usize) -> Vec<u8> {
    build_opts(f, mix, n_layer, SEED, true)
}

fn build_opts(f: &Family, mix: &Mix, n_layer: usize, seed: u64, header_only: bool) -> Vec<u8> {
    let a = f.arch;
    let k = |s: &str| format!("{a}.{s}");
    let mut kv: Vec<(String, Val)> = vec![
        ("general.architecture".into(), Val::Str(a.into())),
        (
            "general.name".into(),
            Val::Str(format!("wisp-synth {} {} {n_layer}L", f.key, mix.key)),
        ),
        (k("context_length"), Val::U32(f.ctx as u32)),
        (k("embedding_length"), Val::U32(f.n_embd as u32)),
        (k("block_count"), Val::U32(n_layer as u32)),
        (k("feed_forward_length"), Val::U32(f.n_ff as u32)),
        (k("attention.head_count"), Val::U32(f.n_head as u32)),
        (k("attention.head_count_kv"), Val::U32(f.n_head_kv as u32)),
        (k("attention.key_length"), Val::U32(f.head_dim as u32)),
        (k("attention.value_length"), Val::U32(f.head_dim as u32)),
        (k("attention.layer_norm_rms_epsilon"), Val::F32(f.rms_eps)),
        (k("rope.freq_base"), Val::F32(f.rope_base)),
        (k("rope.dimension_count"), Val::U32(f.head_dim as u32)),
        (k("vocab_size"), Val::U32(f.n_vocab as u32)),
    ];
    match a {
        "gemma2" => {
            kv.push((k("attention.sliding_window"), Val::U32(4096)));
            kv.push((k("attn_logit_softcapping"), Val::F32(50.0)));
            kv.push((k("final_logit_softcapping"), Val::F32(30.0)));
        }
        "gemma3" => {
            kv.push((k("attention.sliding_window"), Val::U32(1024)));
            kv.push((k("rope.scaling.type"), Val::Str("linear".into())));
            kv.push((k("rope.scaling.factor"), Val::F32(8.0)));
        }
        "phi3" => {
            kv.push((k("attention.sliding_window"), Val::U32(262144)));
            kv.push((k("rope.scaling.original_context_length"), Val::U32(4096)));
            // sqrt(1 + ln(131072 / 4096) / ln(4096)), as the converter writes it.
            kv.push((k("rope.scaling.attn_factor"), Val::F32(1.190_239)));
        }
        _ => {}
    }
    // Synthetic SentencePiece-style vocabulary: llama.cpp and Wisp load it; tests feed ids.
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut types = vec![2i32, 3, 3];
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    while tokens.len() < f.n_vocab {
        if a == "phi3" && tokens.len() == 32000 {
            // llama.cpp looks this one up by name for models named like Phi-3.
            tokens.push("<|endoftext|>".into());
            types.push(3);
            continue;
        }
        tokens.push(format!("\u{2581}t{}", tokens.len()));
        types.push(1);
    }
    let scores: Vec<f32> = (0..f.n_vocab).map(|i| -(i as f32)).collect();
    kv.extend([
        ("tokenizer.ggml.model".into(), Val::Str("llama".into())),
        ("tokenizer.ggml.tokens".into(), Val::StrArr(tokens)),
        ("tokenizer.ggml.scores".into(), Val::F32Arr(scores)),
        ("tokenizer.ggml.token_type".into(), Val::I32Arr(types)),
        ("tokenizer.ggml.unknown_token_id".into(), Val::U32(0)),
        ("tokenizer.ggml.bos_token_id".into(), Val::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Val::U32(2)),
        ("tokenizer.ggml.add_bos_token".into(), Val::Bool(false)),
        ("tokenizer.ggml.add_eos_token".into(), Val::Bool(false)),
    ]);

    let (e, hd, ff) = (f.n_embd, f.head_dim, f.n_ff);
    let (qd, kvd) = (f.n_head * hd, f.n_head_kv * hd);
    let mut tensors: Vec<Tensor> = Vec::new();
    let mut rope_tensors: Vec<Tensor> = Vec::new();
    let mut add = |name: String, dims: Vec<usize>, ty: Ty, std: f32, mean: f32| {
        let mut rng = Rng::new(seed, &name);
        let n: usize = dims.iter().product();
        let (be, bb) = ty.block();
        let len = n / be * bb;
        let data = if header_only {
            Vec::new()
        } else if ty == Ty::F32 {
            (0..n)
                .flat_map(|_| (mean + std * rng.normal()).to_le_bytes())
                .collect()
        } else {
            quantized(ty, n, std, &mut rng)
        };
        tensors.push(Tensor {
            name,
            dims,
            ty,
            len,
            data,
        });
    };
    let head_std = logit_std(f) / (e as f32).sqrt();
    let gemma = a.starts_with("gemma");
    // Tied heads: the embedding is the head. Gemma multiplies embeddings by √n_embd.
    let embd_std = if f.tied { head_std } else { 1.0 };
    add(
        "token_embd.weight".into(),
        vec![e, f.n_vocab],
        mix.embd,
        embd_std,
        0.0,
    );
    if !f.tied {
        add(
            "output.weight".into(),
            vec![e, f.n_vocab],
            mix.output,
            head_std,
            0.0,
        );
    }
    add("output_norm.weight".into(), vec![e], Ty::F32, 0.1, 1.0);
    match a {
        "llama" => {
            let freqs = llama3_rope_freqs(hd, f.rope_base);
            rope_tensors.push(Tensor {
                name: "rope_freqs.weight".into(),
                dims: vec![hd / 2],
                ty: Ty::F32,
                len: hd / 2 * 4,
                data: freqs.iter().flat_map(|x| x.to_le_bytes()).collect(),
            });
        }
        "phi3" => {
            // LongRoPE-like divisors: short near 1, long growing to ~40 with frequency.
            for (name, top) in [("rope_factors_short", 1.5f32), ("rope_factors_long", 40.0)] {
                let v: Vec<f32> = (0..hd / 2)
                    .map(|i| 1.0 + (top - 1.0) * (i as f32 / (hd / 2 - 1) as f32).powi(2))
                    .collect();
                rope_tensors.push(Tensor {
                    name: format!("{name}.weight"),
                    dims: vec![hd / 2],
                    ty: Ty::F32,
                    len: hd / 2 * 4,
                    data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                });
            }
        }
        _ => {}
    }
    let unit = |cols: usize| 1.0 / (cols as f32).sqrt();
    // Gemma 2: scores of spread ≈ 2.5, largest ≈ 10: the soft-cap at 50 bends them by
    // ~1%. A gain of 8 bent them more but made attention so sharp that llama.cpp's 8-bit
    // activation noise moved logits by up to 0.67 (see tests/reference/README.md); the
    // cap itself is checked where it bends hard (gpu_ops attention_score_softcap).
    let q_gain = if a == "gemma2" { 2.5 } else { 1.0 };
    for il in 0..n_layer {
        let n = |s: &str| format!("blk.{il}.{s}");
        add(n("attn_norm.weight"), vec![e], Ty::F32, 0.1, 1.0);
        if a == "phi3" {
            // Fused Q/K/V: one type for the whole matrix.
            add(
                n("attn_qkv.weight"),
                vec![e, qd + 2 * kvd],
                mix.q,
                unit(e),
                0.0,
            );
        } else {
            add(
                n("attn_q.weight"),
                vec![e, qd],
                mix.q,
                q_gain * unit(e),
                0.0,
            );
            add(n("attn_k.weight"), vec![e, kvd], mix.k, unit(e), 0.0);
            add(n("attn_v.weight"), vec![e, kvd], mix.v, unit(e), 0.0);
        }
        if a == "qwen2" {
            add(n("attn_q.bias"), vec![qd], Ty::F32, 0.5, 0.0);
            add(n("attn_k.bias"), vec![kvd], Ty::F32, 0.5, 0.0);
            add(n("attn_v.bias"), vec![kvd], Ty::F32, 0.5, 0.0);
        }
        if a == "qwen3" || a == "gemma3" {
            add(n("attn_q_norm.weight"), vec![hd], Ty::F32, 0.1, 1.0);
            add(n("attn_k_norm.weight"), vec![hd], Ty::F32, 0.1, 1.0);
        }
        add(n("attn_output.weight"), vec![qd, e], mix.o, unit(qd), 0.0);
        if gemma {
            // Large, as in real Gemma checkpoints: with tied embeddings scaled by √n_embd
            // the input token would otherwise dominate the residual stream (and its own
            // logit) no matter what the layers compute.
            add(n("post_attention_norm.weight"), vec![e], Ty::F32, 1.6, 16.0);
            add(n("post_ffw_norm.weight"), vec![e], Ty::F32, 1.6, 16.0);
        }
        add(n("ffn_norm.weight"), vec![e], Ty::F32, 0.1, 1.0);
        if a == "phi3" {
            add(n("ffn_up.weight"), vec![e, 2 * ff], mix.up, unit(e), 0.0);
        } else {
            add(n("ffn_gate.weight"), vec![e, ff], mix.gate, unit(e), 0.0);
            add(n("ffn_up.weight"), vec![e, ff], mix.up, unit(e), 0.0);
        }
        add(n("ffn_down.weight"), vec![ff, e], mix.down, unit(ff), 0.0);
    }

    tensors.extend(rope_tensors);

    // Serialize: header, metadata, tensor infos, aligned data.
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kv.len() as u64 + 1).to_le_bytes());
    put_str(&mut out, "general.alignment");
    put_val(&mut out, &Val::U32(32));
    for (key, v) in &kv {
        put_str(&mut out, key);
        put_val(&mut out, v);
    }
    let mut offset = 0u64;
    for t in &tensors {
        put_str(&mut out, &t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for &d in &t.dims {
            out.extend((d as u64).to_le_bytes());
        }
        out.extend(t.ty.id().to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += (t.len as u64).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    if header_only {
        return out;
    }
    for t in &tensors {
        out.extend(&t.data);
        out.resize(out.len().div_ceil(32) * 32, 0);
    }
    out
}

/// File name of a generated model.
pub fn file_name(f: &Family, mix: &Mix, n_layer: usize) -> String {
    format!("synth-{}-{}-{n_layer}L.gguf", f.key, mix.key)
}

pub fn family(key: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.key == key)
}

pub fn mix(key: &str) -> Option<&'static Mix> {
    MIXES.iter().find(|m| m.key == key)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hash of this generator's source: a file stamped with another was made by other code.
fn source_tag() -> String {
    sha256_hex(include_str!("synth.rs").as_bytes())[..16].to_string()
}

/// Write the file into `dir` unless a file made by this exact generator is already there
/// (its `.sha256` stamp names the generator source and the size matches); returns its
/// path and sha256. A fresh write hashes the bytes it wrote, so a clean checkout (CI)
/// checks the generator's determinism against the fixtures' recorded sha256.
pub fn ensure(
    dir: &Path,
    f: &Family,
    mix: &Mix,
    n_layer: usize,
) -> Result<(PathBuf, String), String> {
    let path = dir.join(file_name(f, mix, n_layer));
    let stamp = path.with_extension("gguf.sha256");
    let tag = source_tag();
    if let (Ok(s), Ok(meta)) = (std::fs::read_to_string(&stamp), std::fs::metadata(&path)) {
        let parts: Vec<&str> = s.split_whitespace().collect();
        if let [digest, t, len] = parts[..] {
            if t == tag && len.parse::<u64>() == Ok(meta.len()) {
                return Ok((path, digest.to_string()));
            }
        }
    }
    let bytes = build(f, mix, n_layer, SEED);
    let digest = sha256_hex(&bytes);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension(format!("gguf.tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| file.write_all(&bytes));
    if let Err(e) = written {
        // A full disk must not leave a partial file behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", tmp.display()));
    }
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&stamp, format!("{digest} {tag} {}\n", bytes.len()))
        .map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok((path, digest))
}
