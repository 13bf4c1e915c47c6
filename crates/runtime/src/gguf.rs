//! GGUF reader: header, metadata and tensor table. The data section is never parsed.
//!
//! Works on any byte prefix of a file: given too few bytes it answers
//! [`GgufError::NeedMore`] with the prefix length it needs next, so a browser or a
//! download can fetch just the header. Every count and size is checked against the bytes
//! that could possibly hold it before anything is allocated, so a hostile header cannot
//! ask for a giant allocation, and recursion into nested arrays is bounded.
//!
//! Bytes present are not enough of a bound: a record can be tiny on disk and large in
//! memory (an empty string is 8 bytes in the file and a 24-byte `String` plus its slot;
//! a key/value pair of ~20 bytes costs a few hundred in maps and strings). So the reader
//! also charges an over-estimate of the memory each record will take, before allocating
//! it, against a budget of the file's size plus [`MEMORY_SLACK`] (or [`MAX_HEADER_BYTES`]
//! plus the slack when the length is unknown). Memory-mapping the file costs its size
//! once more, so loading a header never takes more than twice the file plus the slack.
//! Real model files use a small fraction of it (Qwen2.5-0.5B's 151k tokens and merges
//! charge 20.6 MB of a 491 MB file's budget); the tightest real case is a header-only
//! file: llama.cpp's `ggml-vocab-gemma-4.gguf` (15.8 MB, 262k tokens and 514k merges)
//! charges 53.1 MB of its 66.1 MB.

use crate::quant::GgmlType;
use std::collections::HashMap;
use std::fmt;

/// "GGUF" read as a little-endian u32.
const MAGIC: [u8; 4] = *b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays nest at most this deep (real files use one level).
const MAX_ARRAY_DEPTH: u32 = 4;
/// A header (metadata + tensor table) larger than this is refused: the largest real
/// vocabularies (262k tokens with scores and merges) need ~20 MiB.
pub const MAX_HEADER_BYTES: u64 = 512 << 20;
/// Memory a header may take beyond the file's own size (see the module docs).
pub const MEMORY_SLACK: u64 = 48 << 20;

/// Memory charged per string beyond its bytes: allocator overhead and rounding (glibc
/// and dlmalloc keep 8–16 bytes per block and round to 16).
const STRING_COST: u64 = 32;
/// The key and tensor indexes' cost per entry: a hash-map slot (key + index + control
/// byte), of which hashbrown keeps up to 2.3 per entry after `with_capacity`.
const INDEX_SLOT_COST: u64 = 3 * (std::mem::size_of::<(String, usize)>() as u64 + 1);

/// Why a GGUF header could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufError {
    /// The byte prefix ends before the header does: supply at least `needed` bytes.
    NeedMore {
        needed: u64,
    },
    /// The whole file ends before the header does, or a tensor's data lies past its end.
    Truncated {
        what: String,
        needed: u64,
        file_len: u64,
    },
    BadMagic([u8; 4]),
    UnsupportedVersion(u32),
    /// Structurally impossible content: the message names the field.
    Corrupt(String),
    UnknownValueType {
        key: String,
        type_id: u32,
    },
    UnknownTensorType {
        tensor: String,
        type_id: u32,
    },
    DuplicateKey(String),
    DuplicateTensor(String),
    HeaderTooLarge {
        what: String,
        needed: u64,
    },
    /// The header's in-memory form would outgrow its budget (see the module docs).
    MemoryLimit {
        what: String,
        limit: u64,
    },
}

/// A name or key quoted for an error message, clipped: a hostile file's names can be
/// megabytes long, and `{:?}` escapes each control byte into up to 10 bytes.
pub fn shown(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &s[..end], s.len())
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgufError::NeedMore { needed } => {
                write!(f, "GGUF header incomplete: need at least {needed} bytes")
            }
            GgufError::Truncated { what, needed, file_len } => write!(
                f,
                "GGUF file is truncated: {} needs {needed} bytes but the file has {file_len}",
                clip(what)
            ),
            GgufError::BadMagic(m) => write!(
                f,
                "not a GGUF file (magic bytes {:02x} {:02x} {:02x} {:02x}, expected \"GGUF\")",
                m[0], m[1], m[2], m[3]
            ),
            GgufError::UnsupportedVersion(v) => {
                if v.swap_bytes() == 2 || v.swap_bytes() == 3 {
                    write!(f, "big-endian GGUF files are not supported")
                } else {
                    write!(f, "unsupported GGUF version {v} (Wisp reads versions 2 and 3)")
                }
            }
            GgufError::Corrupt(msg) => write!(f, "corrupt GGUF file: {msg}"),
            GgufError::UnknownValueType { key, type_id } => write!(
                f,
                "corrupt GGUF file: metadata key {} has unknown value type {type_id}",
                shown(key)
            ),
            GgufError::UnknownTensorType { tensor, type_id } => write!(
                f,
                "tensor {} has unknown ggml type id {type_id} (not a type this version of Wisp knows)",
                shown(tensor)
            ),
            GgufError::DuplicateKey(k) => {
                write!(f, "corrupt GGUF file: duplicate metadata key {}", shown(k))
            }
            GgufError::DuplicateTensor(t) => {
                write!(f, "corrupt GGUF file: duplicate tensor name {}", shown(t))
            }
            GgufError::HeaderTooLarge { what, needed } => write!(
                f,
                "GGUF header would be {needed} bytes (at {}), over the {MAX_HEADER_BYTES}-byte limit: refusing the file",
                clip(what)
            ),
            GgufError::MemoryLimit { what, limit } => write!(
                f,
                "GGUF header needs too much memory: {} takes it over its budget of {limit} bytes: refusing the file",
                clip(what)
            ),
        }
    }
}

/// Unquoted text (a field description, or a key) clipped like [`shown`].
fn clip(s: &str) -> String {
    if s.len() <= 80 {
        s.to_string()
    } else {
        shown(s)
    }
}

impl std::error::Error for GgufError {}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array of strings in one buffer: the text of every element back to back and where
/// each one ends. Vocabularies are the big string arrays (Gemma's 262,144 tokens): as
/// separate `String`s they cost ~56 bytes of heap each (header + allocation) for ~7 bytes
/// of text. Clones share the buffer (the tokenizer keeps the header's token texts without
/// copying them); `push` copies first if the buffer is shared.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Strings {
    inner: std::sync::Arc<StringsInner>,
}

#[derive(Clone, Default, PartialEq, Eq)]
struct StringsInner {
    text: String,
    ends: Vec<u32>,
}

impl Strings {
    /// Room for `n` strings of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Strings {
        Strings {
            inner: std::sync::Arc::new(StringsInner {
                text: String::with_capacity(bytes),
                ends: Vec::with_capacity(n),
            }),
        }
    }

    /// Append `s`; refused (false) once the buffer would pass 4 GiB.
    pub fn push(&mut self, s: &str) -> bool {
        let Ok(end) = u32::try_from(self.inner.text.len() + s.len()) else {
            return false;
        };
        let inner = std::sync::Arc::make_mut(&mut self.inner);
        inner.text.push_str(s);
        inner.ends.push(end);
        true
    }

    /// Give back spare capacity (after the last `push`).
    pub fn shrink_to_fit(&mut self) {
        let inner = std::sync::Arc::make_mut(&mut self.inner);
        inner.text.shrink_to_fit();
        inner.ends.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.inner.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.ends.is_empty()
    }

    /// Element `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&str> {
        let ends = &self.inner.ends;
        let end = *ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        Some(&self.inner.text[start..end])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| &self[i])
    }
}

impl std::ops::Index<usize> for Strings {
    type Output = str;

    fn index(&self, i: usize) -> &str {
        match self.get(i) {
            Some(s) => s,
            None => panic!("string {i} of {}", self.len()),
        }
    }
}

impl std::fmt::Debug for Strings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Strings {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Strings {
        let mut out = Strings::default();
        for s in iter {
            assert!(out.push(s.as_ref()), "string array over 4 GiB");
        }
        out
    }
}

/// A typed metadata array (arrays of arrays are allowed).
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Strings),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element type name, for display.
    pub fn type_name(&self) -> &'static str {
        match self {
            Array::U8(_) => "u8",
            Array::I8(_) => "i8",
            Array::U16(_) => "u16",
            Array::I16(_) => "i16",
            Array::U32(_) => "u32",
            Array::I32(_) => "i32",
            Array::F32(_) => "f32",
            Array::Bool(_) => "bool",
            Array::String(_) => "string",
            Array::Array(_) => "array",
            Array::U64(_) => "u64",
            Array::I64(_) => "i64",
            Array::F64(_) => "f64",
        }
    }

    /// Integer elements widened to i64 (None for non-integer arrays).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self {
            Array::U8(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I8(v) => v.iter().map(|&x| x as i64).collect(),
            Array::U16(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I16(v) => v.iter().map(|&x| x as i64).collect(),
            Array::U32(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I32(v) => v.iter().map(|&x| x as i64).collect(),
            Array::U64(v) => v.iter().map(|&x| x as i64).collect(),
            Array::I64(v) => v.clone(),
            _ => return None,
        })
    }

    /// Numeric elements as f32 (None for non-numeric arrays).
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        match self {
            Array::F32(v) => Some(v.clone()),
            Array::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            other => other
                .to_i64_vec()
                .map(|v| v.into_iter().map(|x| x as f32).collect()),
        }
    }
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer value widened to i128 (no silent truncation of u64).
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(x) => x as i128,
            Value::I8(x) => x as i128,
            Value::U16(x) => x as i128,
            Value::I16(x) => x as i128,
            Value::U32(x) => x as i128,
            Value::I32(x) => x as i128,
            Value::U64(x) => x as i128,
            Value::I64(x) => x as i128,
            _ => return None,
        })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(x) => Some(x as f64),
            Value::F64(x) => Some(x),
            _ => self.as_int().map(|x| x as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description for error messages: scalars as they are, strings clipped,
    /// arrays by length and element type (never the elements: an error message must
    /// not be megabytes of a hostile file).
    pub fn describe(&self) -> String {
        match self {
            Value::String(s) => format!("the string {}", shown(s)),
            Value::Array(a) => format!("an array of {} {}", a.len(), a.type_name()),
            other => format!("{other:?}"),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::F32(_) => "f32",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F64(_) => "f64",
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Absolute byte offset of the tensor's data in the file.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of the other dimensions).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Bytes of the header (metadata + tensor table), before alignment padding.
    pub header_len: u64,
    key_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

impl GgufHeader {
    /// Parse the header from `bytes`, a prefix of the file (or the whole file).
    ///
    /// `file_len` is the full file size when known: with it, running out of bytes is a
    /// truncation error and every tensor is checked to lie inside the file; without it,
    /// running out of bytes is [`GgufError::NeedMore`].
    pub fn parse(bytes: &[u8], file_len: Option<u64>) -> Result<GgufHeader, GgufError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            file_len,
            mem_used: 0,
            mem_limit: file_len
                .unwrap_or(MAX_HEADER_BYTES)
                .saturating_add(MEMORY_SLACK),
        };
        let magic: [u8; 4] = r.take(4, "magic")?.try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = r.u32("version")?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // Each key/value pair needs at least 8 (key length) + 4 (type) + 1 bytes; each
        // tensor record at least 8 + 4 + 8 + 4 + 8.
        r.check_count(n_kv, 13, "metadata count")?;
        r.check_count(n_tensors, 32, "tensor count")?;

        r.charge(
            n_kv,
            std::mem::size_of::<(String, Value)>() as u64 + INDEX_SLOT_COST,
            "the metadata count",
        )?;
        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut key_index = HashMap::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key = r.string("metadata key")?;
            let type_id = r.u32("metadata value type")?;
            let value = r.value(&key, type_id, 0)?;
            // The index holds a second copy of the key.
            r.charge(1, STRING_COST + key.len() as u64, "metadata keys")?;
            if key_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey(key));
            }
            metadata.push((key, value));
        }

        let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if a.is_power_of_two() => *a as u64,
            Some(v) => {
                return Err(GgufError::Corrupt(format!(
                    "general.alignment must be a power-of-two u32, got {}",
                    v.describe()
                )))
            }
        };

        struct RawTensor {
            name: String,
            dims: Vec<u64>,
            ggml_type: GgmlType,
            rel_offset: u64,
        }
        // Each tensor: its raw record and its final one, a pointer in the overlap check,
        // an index slot.
        r.charge(
            n_tensors,
            (std::mem::size_of::<RawTensor>()
                + std::mem::size_of::<TensorInfo>()
                + std::mem::size_of::<usize>()) as u64
                + INDEX_SLOT_COST,
            "the tensor count",
        )?;
        let mut raw = Vec::with_capacity(n_tensors as usize);
        let mut tensor_index = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = r.string("tensor name")?;
            // The index's copy of the name, and the dimensions.
            r.charge(
                1,
                2 * STRING_COST + name.len() as u64 + 8 * MAX_DIMS as u64,
                "the tensor table",
            )?;
            let n_dims = r.u32("tensor dimension count")?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::Corrupt(format!(
                    "tensor {} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)",
                    shown(&name)
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64("tensor dimension")?);
            }
            let type_id = r.u32("tensor type")?;
            let ggml_type =
                GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
                    tensor: name.clone(),
                    type_id,
                })?;
            let rel_offset = r.u64("tensor offset")?;
            if tensor_index.insert(name.clone(), i as usize).is_some() {
                return Err(GgufError::DuplicateTensor(name));
            }
            raw.push(RawTensor {
                name,
                dims,
                ggml_type,
                rel_offset,
            });
        }
        let header_len = r.pos as u64;
        let data_offset = header_len.div_ceil(alignment) * alignment;

        let mut tensors = Vec::with_capacity(raw.len());
        for t in raw {
            let n_elements = t
                .dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n < (1u64 << 62))
                .ok_or_else(|| {
                    GgufError::Corrupt(format!(
                        "tensor {} has dimensions {:?} whose product overflows",
                        shown(&t.name),
                        t.dims
                    ))
                })?;
            if t.dims.contains(&0) {
                return Err(GgufError::Corrupt(format!(
                    "tensor {} has a zero dimension {:?}",
                    shown(&t.name),
                    t.dims
                )));
            }
            if t.dims[0] % t.ggml_type.block_size() != 0 {
                return Err(GgufError::Corrupt(format!(
                    "tensor {} row length {} is not a multiple of the {} block size {}",
                    shown(&t.name),
                    t.dims[0],
                    t.ggml_type,
                    t.ggml_type.block_size()
                )));
            }
            let n_bytes = t.ggml_type.bytes_for(n_elements).ok_or_else(|| {
                GgufError::Corrupt(format!("tensor {} byte size overflows", shown(&t.name)))
            })?;
            if t.rel_offset % alignment != 0 {
                return Err(GgufError::Corrupt(format!(
                    "tensor {} offset {} is not a multiple of the alignment {alignment}",
                    shown(&t.name),
                    t.rel_offset
                )));
            }
            let offset = data_offset.checked_add(t.rel_offset).ok_or_else(|| {
                GgufError::Corrupt(format!("tensor {} offset overflows", shown(&t.name)))
            })?;
            let end = offset.checked_add(n_bytes).ok_or_else(|| {
                GgufError::Corrupt(format!("tensor {} extent overflows", shown(&t.name)))
            })?;
            if let Some(file_len) = file_len {
                if end > file_len {
                    return Err(GgufError::Truncated {
                        what: format!("tensor {}", shown(&t.name)),
                        needed: end,
                        file_len,
                    });
                }
            }
            tensors.push(TensorInfo {
                name: t.name,
                dims: t.dims,
                ggml_type: t.ggml_type,
                offset,
                n_elements,
                n_bytes,
            });
        }

        // Tensor data must not overlap.
        let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
        by_offset.sort_by_key(|t| t.offset);
        for pair in by_offset.windows(2) {
            if pair[0].offset + pair[0].n_bytes > pair[1].offset {
                return Err(GgufError::Corrupt(format!(
                    "tensors {} and {} overlap",
                    shown(&pair[0].name),
                    shown(&pair[1].name)
                )));
            }
        }

        Ok(GgufHeader {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            header_len,
            key_index,
            tensor_index,
        })
    }

    /// Bytes the data section spans (end of the last tensor).
    pub fn data_end(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.offset + t.n_bytes)
            .max()
            .unwrap_or(self.data_offset)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn get_array(&self, key: &str) -> Option<&Array> {
        self.get(key).and_then(Value::as_array)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    file_len: Option<u64>,
    /// Memory charged so far for what the parse keeps, and the budget.
    mem_used: u64,
    mem_limit: u64,
}

impl<'a> Reader<'a> {
    fn short(&self, needed: u64, what: &str) -> GgufError {
        if needed > MAX_HEADER_BYTES {
            return GgufError::HeaderTooLarge {
                what: what.to_string(),
                needed,
            };
        }
        match self.file_len {
            // Compare as u64: `file_len as usize` would wrap for files over 4 GiB on wasm32.
            Some(file_len) if needed > file_len || file_len <= self.bytes.len() as u64 => {
                GgufError::Truncated {
                    what: what.to_string(),
                    needed,
                    file_len,
                }
            }
            _ => GgufError::NeedMore { needed },
        }
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        let end = (self.pos as u64).saturating_add(n);
        if end > self.bytes.len() as u64 {
            return Err(self.short(end, what));
        }
        let s = &self.bytes[self.pos..end as usize];
        self.pos = end as usize;
        Ok(s)
    }

    /// Refuse a count whose minimal encoding could not fit in the header limit or the file.
    fn check_count(&self, count: u64, min_bytes_each: u64, what: &str) -> Result<(), GgufError> {
        let needed = count
            .checked_mul(min_bytes_each)
            .and_then(|n| n.checked_add(self.pos as u64));
        match needed {
            // The bytes must be present before anything is allocated for them.
            Some(n) if n > self.bytes.len() as u64 => Err(self.short(n, what)),
            Some(_) => Ok(()),
            None => Err(GgufError::Corrupt(format!(
                "{what} {count} is impossibly large"
            ))),
        }
    }

    /// Charge `count` items of `each` bytes of memory against the budget, before the
    /// caller allocates them.
    fn charge(&mut self, count: u64, each: u64, what: &str) -> Result<(), GgufError> {
        match count
            .checked_mul(each)
            .and_then(|n| n.checked_add(self.mem_used))
        {
            Some(total) if total <= self.mem_limit => {
                self.mem_used = total;
                Ok(())
            }
            _ => Err(GgufError::MemoryLimit {
                what: what.to_string(),
                limit: self.mem_limit,
            }),
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        self.check_count(len, 1, what)?;
        self.charge(1, STRING_COST.saturating_add(len), what)?;
        let b = self.take(len, what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    /// One element of a string array: its bytes are charged, not a `String` each.
    fn str_in_array(&mut self, what: &str) -> Result<std::borrow::Cow<'a, str>, GgufError> {
        let len = self.u64(what)?;
        self.check_count(len, 1, what)?;
        self.charge(1, len, what)?;
        let b = self.take(len, what)?;
        Ok(String::from_utf8_lossy(b))
    }

    fn value(&mut self, key: &str, type_id: u32, depth: u32) -> Result<Value, GgufError> {
        Ok(match type_id {
            0 => Value::U8(self.take(1, key)?[0]),
            1 => Value::I8(self.take(1, key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(
                self.take(2, key)?.try_into().expect("2"),
            )),
            3 => Value::I16(i16::from_le_bytes(
                self.take(2, key)?.try_into().expect("2"),
            )),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(self.u32(key)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(key)?)),
            7 => Value::Bool(self.bool(key)?),
            8 => Value::String(self.string(key)?),
            9 => Value::Array(self.array(key, depth)?),
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(self.u64(key)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(key)?)),
            _ => {
                return Err(GgufError::UnknownValueType {
                    key: key.to_string(),
                    type_id,
                })
            }
        })
    }

    fn bool(&mut self, key: &str) -> Result<bool, GgufError> {
        match self.take(1, key)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(GgufError::Corrupt(format!(
                "metadata {} has bool byte {b}",
                shown(key)
            ))),
        }
    }

    fn array(&mut self, key: &str, depth: u32) -> Result<Array, GgufError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::Corrupt(format!(
                "metadata {} nests arrays deeper than {MAX_ARRAY_DEPTH}",
                shown(key)
            )));
        }
        let elem_type = self.u32(key)?;
        let count = self.u64(key)?;
        let min_size = match elem_type {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            9 => 12,
            _ => {
                return Err(GgufError::UnknownValueType {
                    key: key.to_string(),
                    type_id: elem_type,
                })
            }
        };
        self.check_count(count, min_size, key)?;
        // The vector itself (each string's bytes and each inner array are charged as
        // they are read).
        let slot = match elem_type {
            8 => 4,
            9 => std::mem::size_of::<Array>(),
            _ => min_size as usize,
        };
        self.charge(count, slot as u64, key)?;
        let n = count as usize;
        macro_rules! fixed {
            ($variant:ident, $ty:ty, $size:literal) => {{
                let raw = self.take(count * $size, key)?;
                Array::$variant(
                    raw.chunks_exact($size)
                        .map(|c| <$ty>::from_le_bytes(c.try_into().expect("chunk")))
                        .collect(),
                )
            }};
        }
        Ok(match elem_type {
            0 => Array::U8(self.take(count, key)?.to_vec()),
            1 => Array::I8(self.take(count, key)?.iter().map(|&b| b as i8).collect()),
            2 => fixed!(U16, u16, 2),
            3 => fixed!(I16, i16, 2),
            4 => fixed!(U32, u32, 4),
            5 => fixed!(I32, i32, 4),
            6 => fixed!(F32, f32, 4),
            7 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool(key)?);
                }
                Array::Bool(v)
            }
            8 => {
                let mut v = Strings::with_capacity(n, 0);
                for _ in 0..n {
                    let s = self.str_in_array(key)?;
                    if !v.push(&s) {
                        return Err(GgufError::Corrupt(format!(
                            "{key}: string array over 4 GiB"
                        )));
                    }
                }
                v.shrink_to_fit();
                Array::String(v)
            }
            9 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array(key, depth + 1)?);
                }
                Array::Array(v)
            }
            10 => fixed!(U64, u64, 8),
            11 => fixed!(I64, i64, 8),
            12 => fixed!(F64, f64, 8),
            _ => unreachable!("element type checked above"),
        })
    }
}

/// A whole GGUF file: its parsed header and its bytes, memory-mapped from disk
/// (natively) or held in memory (the CPU engine in the browser, where nothing maps).
pub struct GgufFile {
    pub header: GgufHeader,
    bytes: FileBytes,
}

enum FileBytes {
    #[cfg(feature = "native")]
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl GgufFile {
    /// Open and memory-map `path`, then parse its header.
    #[cfg(feature = "native")]
    pub fn open(path: &std::path::Path) -> Result<GgufFile, crate::Error> {
        let file = std::fs::File::open(path)
            .map_err(|e| crate::Error::Io(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: the map is read-only; a file truncated underneath us by another process
        // could fault, which is the accepted contract of every mmap-based model loader.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| crate::Error::Io(format!("cannot map {}: {e}", path.display())))?;
        let header = GgufHeader::parse(&map, Some(map.len() as u64))?;
        Ok(GgufFile {
            header,
            bytes: FileBytes::Mapped(map),
        })
    }

    /// A file already read into memory, whole.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, crate::Error> {
        let header = GgufHeader::parse(&bytes, Some(bytes.len() as u64))?;
        Ok(GgufFile {
            header,
            bytes: FileBytes::Owned(bytes),
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            #[cfg(feature = "native")]
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }

    /// The raw (still quantized) bytes of one tensor.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        // Bounds were checked against the file length when the header was parsed.
        &self.bytes()[t.offset as usize..(t.offset + t.n_bytes) as usize]
    }
}
