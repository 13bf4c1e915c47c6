//! Helpers shared by the fuzz targets: what Wisp does with an untrusted GGUF after the
//! header parses, and the test models' tokenizers (built once per process).

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;
use wisp::gguf::{GgufError, GgufHeader};
use wisp::model::{ModelConfig, ModelTensors};
use wisp::tokenizer::Tokenizer;

/// Everything the CPU load path derives from a parsed header, as `wisp inspect` and a
/// model load do before touching the GPU. Errors are fine; panics are the bugs.
pub fn exercise_header(h: &GgufHeader, file_len: Option<u64>) {
    for t in &h.tensors {
        assert!(
            t.offset >= h.data_offset,
            "tensor {} before the data section",
            t.name
        );
        if let Some(len) = file_len {
            assert!(
                t.offset + t.n_bytes <= len,
                "tensor {} past the end",
                t.name
            );
        }
        assert!(t.dims.len() <= 4 && t.dims.iter().all(|&d| d > 0));
    }
    let _ = h.data_end();
    if let Ok(cfg) = ModelConfig::from_gguf(h) {
        let _ = ModelTensors::find(h, &cfg);
        let _ = cfg.default_n_ctx();
    }
    if let Ok(tok) = Tokenizer::from_gguf(h) {
        let ids = tok.encode_prompt("Hello <s> world\n  ünï", true);
        let _ = tok.decode(&ids, true);
    }
    let _ = wisp::chat::ChatTemplate::from_gguf(h);
}

/// Where the test models are: `$WISP_MODELS`, else the workspace's `target/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("WISP_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/models")))
}

/// The test models whose vocabularies the tokenizer target covers.
pub const MODELS: [&str; 3] = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
];

/// Parse a model's header by reading only the prefix it needs (as the browser does).
pub fn read_header(name: &str) -> GgufHeader {
    let path = models_dir().join(name);
    let mut file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!(
            "cannot open {} (set WISP_MODELS; cargo xtask fetch-models): {e}",
            path.display()
        )
    });
    let file_len = file.metadata().expect("metadata").len();
    let mut prefix = Vec::new();
    let mut want = 1 << 20;
    loop {
        let have = prefix.len() as u64;
        (&mut file)
            .take(want - have)
            .read_to_end(&mut prefix)
            .expect("read model");
        match GgufHeader::parse(&prefix, Some(file_len)) {
            Ok(h) => return h,
            Err(GgufError::NeedMore { needed }) => want = needed.max(want * 2),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

/// The three test models' tokenizers, built on first use.
pub fn tokenizers() -> &'static [Tokenizer] {
    static TOKENIZERS: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    TOKENIZERS.get_or_init(|| {
        MODELS
            .iter()
            .map(|m| Tokenizer::from_gguf(&read_header(m)).expect("test model tokenizer"))
            .collect()
    })
}

/// GPT-2's byte → character map, which byte-level BPE vocabularies spell tokens in.
fn byte_char(b: u8) -> char {
    let printable = matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
    if printable {
        return b as char;
    }
    // The others take 256, 257, … in byte order.
    let rank = (0..b)
        .filter(|&x| !matches!(x, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff))
        .count() as u32;
    char::from_u32(256 + rank).expect("valid char")
}

/// Per test model, the bytes its byte-level vocabulary has no token for (SmolLM2 lacks
/// 21 of the 256): llama.cpp drops such bytes when encoding, and so does Wisp.
pub fn unencodable_bytes() -> &'static [Vec<u8>] {
    static MISSING: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    MISSING.get_or_init(|| {
        tokenizers()
            .iter()
            .map(|tok| {
                let texts: std::collections::HashSet<&str> = (0..tok.vocab_size() as u32)
                    .filter_map(|id| tok.token_text(id))
                    .collect();
                (0..=255u8)
                    .filter(|&b| !texts.contains(byte_char(b).to_string().as_str()))
                    .collect()
            })
            .collect()
    })
}
