//! Hostile GGUF files: a writer that can break every rule of the format, a tiny valid
//! model to break, the catalogue of broken files with what the error must say, and the
//! load path a child process runs on each (`gguf-load-check`).
//!
//! The writer keeps the file as named sections (magic, version, counts, each key, type
//! and value, each tensor record, padding, data) so a test can cut the file at every
//! section boundary and know which part it cut.

use std::path::Path;

/// GGUF value type ids.
pub mod ty {
    pub const U8: u32 = 0;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
}

/// ggml tensor type ids used here.
pub mod ggml {
    pub const F32: u32 = 0;
    pub const Q4_0: u32 = 2;
}

/// A metadata value, encoded exactly as given (lengths and counts may lie).
#[derive(Clone, Debug)]
pub enum V {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    ArrStr(Vec<String>),
    ArrF32(Vec<f32>),
    ArrI32(Vec<i32>),
    /// A type id and the value's raw bytes.
    Raw(u32, Vec<u8>),
}

impl V {
    pub fn type_id(&self) -> u32 {
        match self {
            V::U32(_) => ty::U32,
            V::F32(_) => ty::F32,
            V::Bool(_) => ty::BOOL,
            V::Str(_) => ty::STRING,
            V::ArrStr(_) | V::ArrF32(_) | V::ArrI32(_) => ty::ARRAY,
            V::Raw(t, _) => *t,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            V::U32(x) => b.extend(x.to_le_bytes()),
            V::F32(x) => b.extend(x.to_le_bytes()),
            V::Bool(x) => b.push(*x as u8),
            V::Str(s) => put_str(&mut b, s),
            V::ArrStr(v) => {
                b.extend(ty::STRING.to_le_bytes());
                b.extend((v.len() as u64).to_le_bytes());
                for s in v {
                    put_str(&mut b, s);
                }
            }
            V::ArrF32(v) => {
                b.extend(ty::F32.to_le_bytes());
                b.extend((v.len() as u64).to_le_bytes());
                v.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
            V::ArrI32(v) => {
                b.extend(ty::I32.to_le_bytes());
                b.extend((v.len() as u64).to_le_bytes());
                v.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
            V::Raw(_, raw) => b.extend(raw),
        }
        b
    }
}

pub fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

/// One tensor record of the table.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub type_id: u32,
    /// Relative to the data section.
    pub offset: u64,
}

impl Tensor {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_str(&mut b, &self.name);
        b.extend((self.dims.len() as u32).to_le_bytes());
        self.dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(self.type_id.to_le_bytes());
        b.extend(self.offset.to_le_bytes());
        b
    }
}

/// A GGUF file to write, valid or not.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub magic: [u8; 4],
    pub version: u32,
    /// Counts written instead of the real ones.
    pub tensor_count: Option<u64>,
    pub kv_count: Option<u64>,
    pub kvs: Vec<(String, V)>,
    pub tensors: Vec<Tensor>,
    pub alignment: u64,
    pub data: Vec<u8>,
}

impl Gguf {
    /// The file as named sections, in order.
    pub fn sections(&self) -> Vec<(String, Vec<u8>)> {
        let mut s: Vec<(String, Vec<u8>)> = vec![
            ("magic".into(), self.magic.to_vec()),
            ("version".into(), self.version.to_le_bytes().to_vec()),
            (
                "tensor count".into(),
                self.tensor_count
                    .unwrap_or(self.tensors.len() as u64)
                    .to_le_bytes()
                    .to_vec(),
            ),
            (
                "metadata count".into(),
                self.kv_count
                    .unwrap_or(self.kvs.len() as u64)
                    .to_le_bytes()
                    .to_vec(),
            ),
        ];
        for (k, v) in &self.kvs {
            let mut key = Vec::new();
            put_str(&mut key, k);
            s.push((format!("key {k}"), key));
            s.push((format!("type of {k}"), v.type_id().to_le_bytes().to_vec()));
            s.push((format!("value of {k}"), v.encode()));
        }
        for t in &self.tensors {
            s.push((format!("tensor record {}", t.name), t.encode()));
        }
        let header_len: usize = s.iter().map(|(_, b)| b.len()).sum();
        let pad = (header_len as u64).next_multiple_of(self.alignment) - header_len as u64;
        s.push(("padding".into(), vec![0; pad as usize]));
        s.push(("data".into(), self.data.clone()));
        s
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.sections().into_iter().flat_map(|(_, b)| b).collect()
    }

    /// Length of the header (metadata and tensor table, before padding).
    pub fn header_len(&self) -> usize {
        let s = self.sections();
        s[..s.len() - 2].iter().map(|(_, b)| b.len()).sum()
    }

    /// Offset of the first tensor record (right after the last value).
    pub fn table_start(&self) -> usize {
        let s = self.sections();
        s[..4 + 3 * self.kvs.len()]
            .iter()
            .map(|(_, b)| b.len())
            .sum()
    }

    pub fn set(&mut self, key: &str, v: V) -> &mut Self {
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = v,
            None => self.kvs.push((key.into(), v)),
        }
        self
    }

    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.kvs.retain(|(k, _)| k != key);
        self
    }

    /// Lay the tensors out one after another again (after a shape change), with data.
    pub fn relayout(&mut self) -> &mut Self {
        let mut offset = 0;
        for t in &mut self.tensors {
            t.offset = offset;
            offset = (offset + tensor_bytes(t.type_id, t.dims.iter().product()))
                .next_multiple_of(self.alignment);
        }
        self.data = (0..offset).map(|i| (i % 61) as u8 & 0x3f).collect();
        self
    }

    pub fn tensor_mut(&mut self, name: &str) -> &mut Tensor {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }
}

/// Bytes of a tensor of `type_id` with `n` elements (only the types used here).
fn tensor_bytes(type_id: u32, n: u64) -> u64 {
    match type_id {
        ggml::F32 => n * 4,
        ggml::Q4_0 => n / 32 * 18,
        _ => panic!("type {type_id}"),
    }
}

pub const N_EMBD: u64 = 32;
pub const N_FF: u64 = 32;

/// The vocabulary of the tiny model: SentencePiece-style pieces.
pub fn tiny_vocab() -> Vec<String> {
    let mut v: Vec<String> = ["<unk>", "<s>", "</s>", "▁"].map(String::from).to_vec();
    v.extend(('a'..='z').map(|c| c.to_string()));
    v.extend(["▁a", "▁t"].map(String::from));
    v
}

/// A valid one-layer llama model (32 wide, 32-token SentencePiece vocabulary, Q4_0
/// matrices, F32 norms): ~6 KB that passes the whole CPU load path.
pub fn tiny_llama() -> Gguf {
    let vocab = tiny_vocab();
    let n_vocab = vocab.len() as u64;
    let mut types = vec![1i32; vocab.len()];
    types[0] = 2; // unknown
    types[1] = 3; // control
    types[2] = 3;
    let kvs: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::Str("llama".into())),
        ("general.name".into(), V::Str("tiny".into())),
        ("llama.embedding_length".into(), V::U32(N_EMBD as u32)),
        ("llama.block_count".into(), V::U32(1)),
        ("llama.attention.head_count".into(), V::U32(2)),
        ("llama.attention.head_count_kv".into(), V::U32(2)),
        ("llama.feed_forward_length".into(), V::U32(N_FF as u32)),
        ("llama.context_length".into(), V::U32(128)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            V::F32(1e-5),
        ),
        ("tokenizer.ggml.model".into(), V::Str("llama".into())),
        ("tokenizer.ggml.tokens".into(), V::ArrStr(vocab)),
        (
            "tokenizer.ggml.scores".into(),
            V::ArrF32((0..n_vocab).map(|i| -(i as f32)).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), V::ArrI32(types)),
        ("tokenizer.ggml.bos_token_id".into(), V::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), V::U32(2)),
    ];
    let (e, f, nv) = (N_EMBD, N_FF, n_vocab);
    let shapes: Vec<(&str, Vec<u64>, u32)> = vec![
        ("token_embd.weight", vec![e, nv], ggml::Q4_0),
        ("output_norm.weight", vec![e], ggml::F32),
        ("blk.0.attn_norm.weight", vec![e], ggml::F32),
        ("blk.0.attn_q.weight", vec![e, e], ggml::Q4_0),
        ("blk.0.attn_k.weight", vec![e, e], ggml::Q4_0),
        ("blk.0.attn_v.weight", vec![e, e], ggml::Q4_0),
        ("blk.0.attn_output.weight", vec![e, e], ggml::Q4_0),
        ("blk.0.ffn_norm.weight", vec![e], ggml::F32),
        ("blk.0.ffn_gate.weight", vec![e, f], ggml::Q4_0),
        ("blk.0.ffn_up.weight", vec![e, f], ggml::Q4_0),
        ("blk.0.ffn_down.weight", vec![f, e], ggml::Q4_0),
    ];
    let tensors = shapes
        .into_iter()
        .map(|(name, dims, type_id)| Tensor {
            name: name.into(),
            dims,
            type_id,
            offset: 0,
        })
        .collect();
    let mut g = Gguf {
        magic: *b"GGUF",
        version: 3,
        tensor_count: None,
        kv_count: None,
        kvs,
        tensors,
        alignment: 32,
        data: Vec::new(),
    };
    // Weights: a fixed byte pattern (the values do not matter to the load path; the
    // F32 norms come out as small finite numbers).
    g.relayout();
    g
}

/// One hostile file and what its error must say.
pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Every one of these must appear in the error message (case-insensitive).
    pub expect: Vec<String>,
}

fn case(name: impl Into<String>, bytes: Vec<u8>, expect: &[&str]) -> Case {
    Case {
        name: name.into(),
        bytes,
        expect: expect.iter().map(|s| s.to_string()).collect(),
    }
}

fn with(f: impl FnOnce(&mut Gguf)) -> Vec<u8> {
    let mut g = tiny_llama();
    f(&mut g);
    g.bytes()
}

/// A value of type array with the given element type and count and nothing after.
fn raw_array(elem: u32, count: u64, rest: &[u8]) -> V {
    let mut b = elem.to_le_bytes().to_vec();
    b.extend(count.to_le_bytes());
    b.extend(rest);
    V::Raw(ty::ARRAY, b)
}

/// Truncations of the tiny model: at every section boundary, and at every byte of its
/// header (each names what it cut).
pub fn truncations() -> Vec<Case> {
    let g = tiny_llama();
    let bytes = g.bytes();
    let header_len = g.header_len();
    let mut cuts: Vec<(usize, String)> =
        (0..header_len).map(|n| (n, format!("byte {n}"))).collect();
    let mut at = 0;
    for (name, b) in g.sections() {
        at += b.len();
        if at < bytes.len() {
            cuts.push((at, format!("after {name}")));
        }
    }
    // Inside the data section: every tensor's first and last byte.
    for t in &g.tensors {
        let start = header_len.next_multiple_of(32) + t.offset as usize;
        let n = tensor_bytes(t.type_id, t.dims.iter().product()) as usize;
        cuts.push((start + 1, format!("inside {}", t.name)));
        cuts.push((start + n - 1, format!("before the end of {}", t.name)));
    }
    cuts.into_iter()
        .map(|(n, what)| {
            case(
                format!("truncated {what} ({n} bytes)"),
                bytes[..n].to_vec(),
                &["truncated"],
            )
        })
        .collect()
}

/// Everything else: broken fields, lying counts, bombs, bad tensor tables, and files
/// that parse but do not describe a model.
pub fn broken() -> Vec<Case> {
    const HUGE: u64 = u64::MAX - 7;
    let mut c = vec![
        case(
            "wrong magic",
            with(|g| g.magic = *b"GGML"),
            &["not a GGUF file"],
        ),
        case("empty file", Vec::new(), &["truncated", "magic"]),
        case(
            "version 1",
            with(|g| g.version = 1),
            &["unsupported GGUF version 1"],
        ),
        case(
            "version 4",
            with(|g| g.version = 4),
            &["unsupported GGUF version 4"],
        ),
        case(
            "big-endian version",
            with(|g| g.version = 3u32.swap_bytes()),
            &["big-endian"],
        ),
        case(
            "tensor count near 2^64",
            with(|g| g.tensor_count = Some(HUGE)),
            &["tensor count"],
        ),
        case(
            "tensor count 2^32",
            with(|g| g.tensor_count = Some(1 << 32)),
            &["tensor count"],
        ),
        case(
            "metadata count near 2^64",
            with(|g| g.kv_count = Some(HUGE)),
            &["metadata count"],
        ),
        case(
            "metadata count 2^40",
            with(|g| g.kv_count = Some(1 << 40)),
            &["metadata count"],
        ),
        case(
            "metadata count one too many",
            with(|g| g.kv_count = Some(g.kvs.len() as u64 + 1)),
            // The tensor table is read as the extra key/value: its first record's name
            // length becomes a key length and the type id a huge length.
            &["GGUF header would be", "tensor name"],
        ),
    ];
    // Strings whose length is near 2^64, or longer than the file, in every string slot.
    for (what, len) in [
        ("near 2^64", HUGE),
        ("2^40", 1 << 40),
        ("past the end", 1 << 20),
    ] {
        let mut key_len = tiny_llama().bytes();
        // The first key's length field follows magic, version and the two counts.
        key_len[24..32].copy_from_slice(&len.to_le_bytes());
        c.push(case(
            format!("key length {what}"),
            key_len,
            &["metadata key"],
        ));
        let mut v = len.to_le_bytes().to_vec();
        v.extend(b"llama");
        c.push(case(
            format!("string value length {what}"),
            with(|g| {
                g.set("general.architecture", V::Raw(ty::STRING, v));
            }),
            &["general.architecture"],
        ));
        c.push(case(
            format!("array count {what}"),
            with(|g| {
                g.set("tokenizer.ggml.scores", raw_array(ty::F32, len, &[0; 16]));
            }),
            &["tokenizer.ggml.scores"],
        ));
        c.push(case(
            format!("string array count {what}"),
            with(|g| {
                g.set(
                    "tokenizer.ggml.tokens",
                    raw_array(ty::STRING, len, &[0; 16]),
                );
            }),
            &["tokenizer.ggml.tokens"],
        ));
        let mut name = tiny_llama();
        name.tensors[0].name = String::new();
        let mut bytes = name.bytes();
        let start = name.table_start();
        bytes[start..start + 8].copy_from_slice(&len.to_le_bytes());
        c.push(case(
            format!("tensor name length {what}"),
            bytes,
            &["tensor name"],
        ));
    }
    // Nesting: arrays of arrays deeper than any real file, and wide.
    let mut deep = Vec::new();
    for _ in 0..64 {
        deep.extend(ty::ARRAY.to_le_bytes());
        deep.extend(1u64.to_le_bytes());
    }
    deep.extend(ty::U8.to_le_bytes());
    deep.extend(0u64.to_le_bytes());
    c.push(case(
        "arrays nested 64 deep",
        with(|g| {
            g.set("general.bomb", V::Raw(ty::ARRAY, deep));
        }),
        &["general.bomb", "nests arrays deeper"],
    ));
    // 1000 × 1000 array headers claiming 2^20 elements each: counts checked against the
    // bytes that could hold them at every level.
    let mut wide = ty::ARRAY.to_le_bytes().to_vec();
    wide.extend(1000u64.to_le_bytes());
    for _ in 0..3 {
        wide.extend(ty::ARRAY.to_le_bytes());
        wide.extend((1u64 << 20).to_le_bytes());
    }
    c.push(case(
        "array of arrays claiming 2^60 elements",
        with(|g| {
            g.set("general.bomb", V::Raw(ty::ARRAY, wide));
        }),
        &["general.bomb"],
    ));
    // Unknown type ids.
    c.push(case(
        "unknown metadata value type",
        with(|g| {
            g.set("general.name", V::Raw(13, vec![0; 8]));
        }),
        &["general.name", "unknown value type 13"],
    ));
    c.push(case(
        "unknown metadata value type 2^32-1",
        with(|g| {
            g.set("general.name", V::Raw(u32::MAX, vec![0; 8]));
        }),
        &["general.name", "unknown value type 4294967295"],
    ));
    c.push(case(
        "unknown array element type",
        with(|g| {
            g.set("general.name", raw_array(99, 1, &[0; 8]));
        }),
        &["general.name", "unknown value type 99"],
    ));
    c.push(case(
        "bool byte 2",
        with(|g| {
            g.set("general.flag", V::Raw(ty::BOOL, vec![2]));
        }),
        &["general.flag", "bool byte 2"],
    ));
    c.push(case(
        "unknown tensor type",
        with(|g| g.tensor_mut("blk.0.attn_q.weight").type_id = 1000),
        &["blk.0.attn_q.weight", "unknown ggml type id 1000"],
    ));
    c.push(case(
        "removed tensor type (Q4_2)",
        with(|g| g.tensor_mut("blk.0.attn_q.weight").type_id = 4),
        &["blk.0.attn_q.weight", "ggml type id 4"],
    ));
    // Tensor table.
    c.push(case(
        "misaligned tensor offset",
        with(|g| g.tensor_mut("blk.0.attn_k.weight").offset += 4),
        &["blk.0.attn_k.weight", "alignment"],
    ));
    c.push(case(
        "overlapping tensors",
        with(|g| {
            let q = g.tensor_mut("blk.0.attn_q.weight").offset;
            g.tensor_mut("blk.0.attn_k.weight").offset = q + 32;
        }),
        &["overlap", "blk.0.attn_q.weight", "blk.0.attn_k.weight"],
    ));
    c.push(case(
        "two tensors at the same offset",
        with(|g| {
            let q = g.tensor_mut("blk.0.attn_q.weight").offset;
            g.tensor_mut("blk.0.attn_v.weight").offset = q;
        }),
        &["overlap"],
    ));
    c.push(case(
        "tensor past the end of the file",
        with(|g| g.tensor_mut("blk.0.ffn_down.weight").offset += 1 << 20),
        &["blk.0.ffn_down.weight", "truncated"],
    ));
    c.push(case(
        "tensor offset near 2^64",
        with(|g| g.tensor_mut("blk.0.ffn_down.weight").offset = u64::MAX - 31),
        &["blk.0.ffn_down.weight", "offset"],
    ));
    c.push(case(
        "duplicate tensor name",
        with(|g| g.tensor_mut("blk.0.attn_k.weight").name = "blk.0.attn_q.weight".into()),
        &["duplicate tensor", "blk.0.attn_q.weight"],
    ));
    c.push(case(
        "duplicate metadata key",
        with(|g| g.kvs.push(("general.name".into(), V::Str("again".into())))),
        &["duplicate metadata key", "general.name"],
    ));
    c.push(case(
        "5 dimensions",
        with(|g| g.tensor_mut("output_norm.weight").dims = vec![32, 1, 1, 1, 1]),
        &["output_norm.weight", "5 dimensions"],
    ));
    c.push(case(
        "2^32-1 dimensions",
        with(|g| g.tensor_mut("output_norm.weight").dims = vec![32; 4]),
        // Dims beyond the record run into the next record: whatever they say, an error.
        &["output_norm.weight"],
    ));
    let mut ndims = tiny_llama();
    ndims.tensors.truncate(1);
    let mut b = ndims.bytes();
    let at = ndims.table_start() + 8 + ndims.tensors[0].name.len();
    b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    c.push(case(
        "n_dims 2^32-1",
        b,
        &["token_embd.weight", "4294967295 dimensions"],
    ));
    c.push(case(
        "0 dimensions",
        with(|g| g.tensor_mut("output_norm.weight").dims = vec![]),
        &["output_norm.weight", "0 dimensions"],
    ));
    c.push(case(
        "zero dimension",
        with(|g| g.tensor_mut("blk.0.attn_q.weight").dims = vec![32, 0]),
        &["blk.0.attn_q.weight", "zero dimension"],
    ));
    c.push(case(
        "dimension product overflows u64",
        with(|g| g.tensor_mut("blk.0.attn_q.weight").dims = vec![1 << 32, 1 << 32, 2]),
        &["blk.0.attn_q.weight", "overflows"],
    ));
    c.push(case(
        "dimension product near 2^63",
        with(|g| g.tensor_mut("blk.0.attn_q.weight").dims = vec![1 << 31, 1 << 31, 1 << 1]),
        &["blk.0.attn_q.weight", "overflows"],
    ));
    c.push(case(
        "byte size over 2^64 (F32, 2^62 elements)",
        with(|g| {
            let t = g.tensor_mut("output_norm.weight");
            t.dims = vec![1 << 31, 1 << 30];
        }),
        &["output_norm.weight"],
    ));
    c.push(case(
        "row not a multiple of the block size",
        with(|g| g.tensor_mut("blk.0.attn_q.weight").dims = vec![33, 32]),
        &["blk.0.attn_q.weight", "block size"],
    ));
    c.push(case(
        "alignment not a power of two",
        with(|g| {
            g.set("general.alignment", V::U32(24));
        }),
        &["general.alignment"],
    ));
    c.push(case(
        "alignment zero",
        with(|g| {
            g.set("general.alignment", V::U32(0));
        }),
        &["general.alignment"],
    ));
    // Parses, but is not a model Wisp can run.
    c.push(case(
        "no architecture",
        with(|g| {
            g.remove("general.architecture");
        }),
        &["general.architecture"],
    ));
    c.push(case(
        "unknown architecture",
        with(|g| {
            g.set("general.architecture", V::Str("mamba".into()));
        }),
        &["unsupported", "mamba"],
    ));
    c.push(case(
        "architecture not a string",
        with(|g| {
            g.set("general.architecture", V::U32(7));
        }),
        &["general.architecture"],
    ));
    for key in [
        "llama.embedding_length",
        "llama.block_count",
        "llama.attention.head_count",
        "llama.feed_forward_length",
    ] {
        c.push(case(
            format!("missing {key}"),
            with(|g| {
                g.remove(key);
            }),
            &["missing metadata", key],
        ));
        c.push(case(
            format!("{key} = 2^40"),
            with(|g| {
                g.set(key, V::Raw(ty::U64, (1u64 << 40).to_le_bytes().to_vec()));
            }),
            &[key],
        ));
        // 2^32 wraps to 0 in a 32-bit usize (wasm32).
        c.push(case(
            format!("{key} = 2^32"),
            with(|g| {
                g.set(key, V::Raw(ty::U64, (1u64 << 32).to_le_bytes().to_vec()));
            }),
            &[key, "4294967296"],
        ));
        c.push(case(
            format!("{key} = 0"),
            with(|g| {
                g.set(key, V::U32(0));
            }),
            &["zero-sized"],
        ));
        c.push(case(
            format!("{key} a string"),
            with(|g| {
                g.set(key, V::Str("32".into()));
            }),
            &[key],
        ));
    }
    c.push(case(
        "heads not dividing by KV heads",
        with(|g| {
            g.set("llama.attention.head_count_kv", V::U32(3));
        }),
        &["not a multiple of 3 KV heads"],
    ));
    c.push(case(
        "rms epsilon NaN",
        with(|g| {
            g.set("llama.attention.layer_norm_rms_epsilon", V::F32(f32::NAN));
        }),
        &["llama.attention.layer_norm_rms_epsilon", "finite"],
    ));
    c.push(case(
        "missing tensor",
        with(|g| g.tensors.retain(|t| t.name != "blk.0.ffn_down.weight")),
        &["missing tensor blk.0.ffn_down.weight"],
    ));
    c.push(case(
        "missing token_embd",
        with(|g| g.tensors.retain(|t| t.name != "token_embd.weight")),
        &["missing tensor token_embd.weight"],
    ));
    c.push(case(
        "token_embd not n_embd × n_vocab",
        with(|g| {
            g.tensor_mut("token_embd.weight").dims = vec![N_EMBD, 64];
            g.relayout();
        }),
        &["token_embd.weight", "shape", "[32, 32]"],
    ));
    c.push(case(
        "token_embd transposed",
        with(|g| {
            g.tensor_mut("token_embd.weight").dims = vec![N_EMBD + 32, N_EMBD];
            g.relayout();
        }),
        &["token_embd.weight", "shape"],
    ));
    c.push(case(
        "attn_q 3-D",
        with(|g| g.tensor_mut("blk.0.attn_q.weight").dims = vec![N_EMBD, 16, 2]),
        &["blk.0.attn_q.weight", "shape"],
    ));
    c.push(case(
        "vocab size not the token count",
        with(|g| {
            g.set("llama.vocab_size", V::U32(64));
        }),
        &["token_embd.weight", "shape"],
    ));
    c.push(case(
        "no tokenizer model",
        with(|g| {
            g.remove("tokenizer.ggml.model");
        }),
        &["tokenizer.ggml.model"],
    ));
    c.push(case(
        "tokens not strings",
        with(|g| {
            g.set("tokenizer.ggml.tokens", V::ArrF32(vec![0.0; 32]));
        }),
        &["tokenizer.ggml.tokens"],
    ));
    c.push(case(
        "scores shorter than tokens",
        with(|g| {
            g.set("tokenizer.ggml.scores", V::ArrF32(vec![0.0; 3]));
        }),
        &["tokenizer.ggml.scores"],
    ));
    c.push(case(
        "BOS id out of the vocabulary",
        with(|g| {
            g.set("tokenizer.ggml.bos_token_id", V::U32(1 << 30));
        }),
        &["tokenizer.ggml.bos_token_id"],
    ));
    c
}

/// What the load path made of one file: `Ok` or the error's kind and message.
pub fn load_check(path: &Path) -> Result<(), (String, String)> {
    use wisp::gguf::GgufFile;
    use wisp::model::{ModelConfig, ModelTensors};
    let kind = |e: &wisp::Error| {
        let k = format!("{e:?}");
        k[..k.find('(').unwrap_or(k.len())].to_string()
    };
    let run = || -> Result<(), wisp::Error> {
        let file = GgufFile::open(path)?;
        let h = &file.header;
        let cfg = ModelConfig::from_gguf(h)?;
        ModelTensors::find(h, &cfg)?;
        let tok = wisp::tokenizer::Tokenizer::from_gguf(h)?;
        wisp::chat::ChatTemplate::from_gguf(h)?;
        tok.encode_prompt("Hello", false);
        Ok(())
    };
    run().map_err(|e| (kind(&e), e.to_string()))
}

/// Peak virtual size of this process (`VmPeak` in /proc/self/status), in bytes.
pub fn vm_peak() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPeak:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A generator of one large hostile file.
pub type Make = fn() -> Vec<u8>;

/// Size of each amplifier file: past the 64 MiB slack once the parser's in-memory form
/// is 2× the file or more.
pub const AMPLIFIER_BYTES: usize = 48 << 20;

/// A header-only file: `kv_count` (or `tensor_count`) records given as raw bytes.
fn raw_file(n_tensors: u64, n_kv: u64, body: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b.extend(body);
    b
}

/// Files whose records are tiny on disk and large in memory (a `Vec<String>` slot is 24
/// bytes for an 8-byte empty string; a key/value pair or tensor record costs a few
/// hundred bytes of maps and strings for ~20 bytes of file), with what the error names.
pub fn amplifiers() -> Vec<(&'static str, Make, &'static str)> {
    vec![
        (
            "array of 6M empty strings",
            || {
                let n = (AMPLIFIER_BYTES / 8) as u64;
                let mut body = Vec::with_capacity(AMPLIFIER_BYTES + 64);
                put_str(&mut body, "general.bomb");
                body.extend(ty::ARRAY.to_le_bytes());
                body.extend(ty::STRING.to_le_bytes());
                body.extend(n.to_le_bytes());
                body.resize(body.len() + n as usize * 8, 0);
                raw_file(0, 1, &body)
            },
            // String arrays are stored compactly (4 bytes per element besides its
            // text, half of what the file spends), so this no longer outgrows the file:
            // it parses within the child's limit and fails for what it lacks.
            "general.architecture",
        ),
        (
            "array of 4M empty arrays",
            || {
                let n = (AMPLIFIER_BYTES / 12) as u64;
                let mut body = Vec::with_capacity(AMPLIFIER_BYTES + 64);
                put_str(&mut body, "general.bomb");
                body.extend(ty::ARRAY.to_le_bytes());
                body.extend(ty::ARRAY.to_le_bytes());
                body.extend(n.to_le_bytes());
                for _ in 0..n {
                    body.extend(ty::U8.to_le_bytes());
                    body.extend(0u64.to_le_bytes());
                }
                raw_file(0, 1, &body)
            },
            "general.bomb",
        ),
        (
            "2.4M metadata keys",
            || {
                let n = (AMPLIFIER_BYTES / 20) as u64;
                let mut body = Vec::with_capacity(AMPLIFIER_BYTES + 64);
                for i in 0..n {
                    put_str(&mut body, &format!("k{i:06x}"));
                    body.extend(ty::U8.to_le_bytes());
                    body.push(0);
                }
                raw_file(0, n, &body)
            },
            "metadata",
        ),
        (
            "embedding length as a 40M-element array",
            || {
                let mut g = tiny_llama();
                // An error message that printed the value would take 3 bytes per element.
                let n = 40 << 20;
                g.set(
                    "llama.embedding_length",
                    raw_array(ty::U8, n, &vec![0; n as usize]),
                );
                g.bytes()
            },
            "llama.embedding_length",
        ),
        (
            "architecture a 40 MB string of control characters",
            || {
                let mut g = tiny_llama();
                // `{:?}` would write each byte as `\u{1}`: 6 bytes.
                g.set("general.architecture", V::Str("\u{1}".repeat(40 << 20)));
                g.bytes()
            },
            "architecture",
        ),
        (
            "700k tensors",
            || {
                let n = (AMPLIFIER_BYTES / 71) as u64;
                let mut body = Vec::with_capacity(AMPLIFIER_BYTES + 64);
                for i in 0..n {
                    put_str(&mut body, &format!("t{i:06x}"));
                    body.extend(1u32.to_le_bytes());
                    body.extend(1u64.to_le_bytes());
                    body.extend(ggml::F32.to_le_bytes());
                    body.extend((i * 32).to_le_bytes());
                }
                let mut b = raw_file(n, 0, &body);
                b.resize(b.len().next_multiple_of(32) + n as usize * 32, 0);
                b
            },
            "tensor",
        ),
    ]
}
