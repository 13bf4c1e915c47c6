//! The GGUF header reader against hand-built files: every value type, prefixes and
//! truncation, and each kind of corrupt or hostile header mapped to its `GgufError`.

use wisp::gguf::{Array, GgufError, GgufHeader, Value};
use wisp::quant::GgmlType;

// ---------------------------------------------------------------------------------------
// A tiny GGUF writer.

/// A metadata entry: a typed value, or raw bytes after a chosen type id (for corruption).
enum Kv {
    Typed(String, Value),
    Raw(String, u32, Vec<u8>),
}

struct Tensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    /// Offset relative to the data section; `None` packs tensors one after another.
    offset: Option<u64>,
}

struct Gguf {
    magic: [u8; 4],
    version: u32,
    kv: Vec<Kv>,
    tensors: Vec<Tensor>,
    n_kv: Option<u64>,
    n_tensors: Option<u64>,
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn array_type(a: &Array) -> u32 {
    match a {
        Array::U8(_) => 0,
        Array::I8(_) => 1,
        Array::U16(_) => 2,
        Array::I16(_) => 3,
        Array::U32(_) => 4,
        Array::I32(_) => 5,
        Array::F32(_) => 6,
        Array::Bool(_) => 7,
        Array::String(_) => 8,
        Array::Array(_) => 9,
        Array::U64(_) => 10,
        Array::I64(_) => 11,
        Array::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::Array(a) => put_array(out, a),
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend(array_type(a).to_le_bytes());
    out.extend((a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr, $variant:ident) => {
            for x in $v {
                put_value(out, &Value::$variant(x.clone()));
            }
        };
    }
    match a {
        Array::U8(v) => each!(v, U8),
        Array::I8(v) => each!(v, I8),
        Array::U16(v) => each!(v, U16),
        Array::I16(v) => each!(v, I16),
        Array::U32(v) => each!(v, U32),
        Array::I32(v) => each!(v, I32),
        Array::F32(v) => each!(v, F32),
        Array::Bool(v) => each!(v, Bool),
        Array::String(v) => {
            for x in v.iter() {
                put_value(out, &Value::String(x.to_string()));
            }
        }
        Array::Array(v) => each!(v, Array),
        Array::U64(v) => each!(v, U64),
        Array::I64(v) => each!(v, I64),
        Array::F64(v) => each!(v, F64),
    }
}

fn tensor_bytes(dims: &[u64], type_id: u32) -> u64 {
    let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    GgmlType::from_id(type_id)
        .zip(n)
        .and_then(|(t, n)| t.bytes_for(n))
        .unwrap_or(0)
}

impl Gguf {
    fn new(version: u32) -> Gguf {
        Gguf {
            magic: *b"GGUF",
            version,
            kv: Vec::new(),
            tensors: Vec::new(),
            n_kv: None,
            n_tensors: None,
        }
    }

    fn kv(mut self, key: &str, v: Value) -> Gguf {
        self.kv.push(Kv::Typed(key.into(), v));
        self
    }

    fn raw_kv(mut self, key: &str, type_id: u32, bytes: Vec<u8>) -> Gguf {
        self.kv.push(Kv::Raw(key.into(), type_id, bytes));
        self
    }

    fn tensor(mut self, name: &str, dims: &[u64], ty: GgmlType) -> Gguf {
        self.tensors.push(Tensor {
            name: name.into(),
            dims: dims.to_vec(),
            type_id: ty.id(),
            offset: None,
        });
        self
    }

    fn tensor_at(mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Gguf {
        self.tensors.push(Tensor {
            name: name.into(),
            dims: dims.to_vec(),
            type_id,
            offset: Some(offset),
        });
        self
    }

    fn alignment(&self) -> u64 {
        self.kv
            .iter()
            .find_map(|kv| match kv {
                Kv::Typed(k, Value::U32(a)) if k == "general.alignment" && *a > 0 => {
                    Some(*a as u64)
                }
                _ => None,
            })
            .unwrap_or(32)
    }

    /// The file bytes: header, padding, and a zero-filled data section covering every
    /// tensor.
    fn build(&self) -> Vec<u8> {
        let align = self.alignment();
        let mut out = Vec::new();
        out.extend(self.magic);
        out.extend(self.version.to_le_bytes());
        out.extend(
            self.n_tensors
                .unwrap_or(self.tensors.len() as u64)
                .to_le_bytes(),
        );
        out.extend(self.n_kv.unwrap_or(self.kv.len() as u64).to_le_bytes());
        for kv in &self.kv {
            match kv {
                Kv::Typed(k, v) => {
                    put_str(&mut out, k);
                    out.extend(value_type(v).to_le_bytes());
                    put_value(&mut out, v);
                }
                Kv::Raw(k, ty, bytes) => {
                    put_str(&mut out, k);
                    out.extend(ty.to_le_bytes());
                    out.extend(bytes);
                }
            }
        }
        let mut next = 0u64;
        let mut data_end = 0u64;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            let off = t.offset.unwrap_or(next);
            out.extend(off.to_le_bytes());
            let n = tensor_bytes(&t.dims, t.type_id);
            let end = off.saturating_add(n);
            next = end.div_ceil(align).saturating_mul(align);
            data_end = data_end.max(end.min(1 << 20));
        }
        let data_offset = (out.len() as u64).div_ceil(align) * align;
        out.resize((data_offset + data_end) as usize, 0);
        out
    }
}

/// Magic, version 3 and the two counts, for hand-appending raw records.
fn bare_header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(n_tensors.to_le_bytes());
    out.extend(n_kv.to_le_bytes());
    out
}

fn parse(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
    GgufHeader::parse(bytes, Some(bytes.len() as u64))
}

fn parse_err(g: &Gguf) -> GgufError {
    let bytes = g.build();
    parse(&bytes).expect_err("file should be refused")
}

fn corrupt_mentions(e: &GgufError, word: &str) {
    match e {
        GgufError::Corrupt(m) => assert!(m.contains(word), "{m:?} should mention {word:?}"),
        other => panic!("expected Corrupt(..{word}..), got {other:?}"),
    }
}

/// Every value type, nested arrays and a few tensors.
fn rich(version: u32) -> (Gguf, Vec<(String, Value)>) {
    let meta: Vec<(String, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-100)),
        ("t.u16", Value::U16(60000)),
        ("t.i16", Value::I16(-30000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.f32", Value::F32(-1.5e-3)),
        ("t.bool", Value::Bool(true)),
        ("t.false", Value::Bool(false)),
        ("t.string", Value::String("héllo ✓".into())),
        ("t.empty_string", Value::String(String::new())),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f64", Value::F64(std::f64::consts::PI)),
        ("a.u8", Value::Array(Array::U8(vec![1, 2, 255]))),
        ("a.i8", Value::Array(Array::I8(vec![-128, 127]))),
        ("a.u16", Value::Array(Array::U16(vec![0, 65535]))),
        ("a.i16", Value::Array(Array::I16(vec![-1, 2]))),
        ("a.u32", Value::Array(Array::U32(vec![7; 5]))),
        ("a.i32", Value::Array(Array::I32(vec![-7, 7]))),
        ("a.f32", Value::Array(Array::F32(vec![0.5, -0.25, 1e30]))),
        ("a.bool", Value::Array(Array::Bool(vec![true, false, true]))),
        (
            "a.string",
            Value::Array(Array::String(["a", "", "ccc"].into_iter().collect())),
        ),
        ("a.u64", Value::Array(Array::U64(vec![u64::MAX, 0]))),
        ("a.i64", Value::Array(Array::I64(vec![i64::MIN, 1]))),
        ("a.f64", Value::Array(Array::F64(vec![-2.5]))),
        ("a.empty", Value::Array(Array::F32(vec![]))),
        (
            "a.nested",
            Value::Array(Array::Array(vec![
                Array::U8(vec![1]),
                Array::String(["x"].into_iter().collect()),
                Array::Array(vec![Array::I32(vec![-3, 3]), Array::Array(vec![])]),
                Array::Bool(vec![]),
            ])),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut g = Gguf::new(version);
    for (k, v) in &meta {
        g = g.kv(k, v.clone());
    }
    let g = g
        .tensor("token_embd.weight", &[64, 3], GgmlType::Q8_0)
        .tensor("norm.weight", &[7], GgmlType::F32)
        .tensor("blk.0.w", &[256, 2, 1, 2], GgmlType::Q4_K)
        .tensor("bf", &[3], GgmlType::BF16);
    (g, meta)
}

// ---------------------------------------------------------------------------------------
// Valid files.

#[test]
fn v2_and_v3_with_every_value_type_parse() {
    for version in [2, 3] {
        let (g, meta) = rich(version);
        let bytes = g.build();
        let h = parse(&bytes).unwrap();
        assert_eq!(h.version, version);
        assert_eq!(h.metadata, meta);
        assert_eq!(h.alignment, 32);
        assert_eq!(h.data_offset % 32, 0);
        assert!(h.data_offset >= h.header_len && h.data_offset < h.header_len + 32);
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.get("t.u64"), Some(&Value::U64(u64::MAX)));
        assert_eq!(h.get_array("a.u32").map(|a| a.len()), Some(5));
        assert!(h.get("missing").is_none());

        let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["token_embd.weight", "norm.weight", "blk.0.w", "bf"]);
        let t = h.tensor("token_embd.weight").unwrap();
        assert_eq!(
            (t.dims.clone(), t.ggml_type, t.n_elements, t.n_bytes),
            (vec![64, 3], GgmlType::Q8_0, 192, 6 * 34)
        );
        assert_eq!(t.offset, h.data_offset);
        let n = h.tensor("norm.weight").unwrap();
        assert_eq!(n.offset, h.data_offset + 224); // 204 rounded up to 32
        assert_eq!(n.n_bytes, 28);
        let k = h.tensor("blk.0.w").unwrap();
        assert_eq!(
            (k.n_elements, k.n_bytes, k.row_len(), k.n_rows()),
            (1024, 576, 256, 4)
        );
        assert_eq!(k.offset, h.data_offset + 256);
        assert_eq!(h.data_end(), bytes.len() as u64);

        // The header alone (no file length) parses to the same thing.
        let prefix = GgufHeader::parse(&bytes[..h.header_len as usize], None).unwrap();
        assert_eq!(prefix.metadata, h.metadata);
        assert_eq!(prefix.tensors, h.tensors);
    }
}

#[test]
fn general_alignment_is_respected() {
    for align in [1u32, 8, 64, 256, 4096] {
        let g = Gguf::new(3)
            .kv("general.alignment", Value::U32(align))
            .kv("pad", Value::String("x".repeat(5)))
            .tensor("a", &[3], GgmlType::F32)
            .tensor("b", &[5], GgmlType::F16);
        let bytes = g.build();
        let h = parse(&bytes).unwrap();
        let align = align as u64;
        assert_eq!(h.alignment, align);
        assert_eq!(h.data_offset, h.header_len.div_ceil(align) * align);
        assert_eq!(
            h.tensors[1].offset,
            h.data_offset + 12u64.div_ceil(align) * align
        );
    }
    // Without the key: 32.
    let h = parse(&Gguf::new(3).tensor("a", &[3], GgmlType::F32).build()).unwrap();
    assert_eq!(h.alignment, 32);
}

#[test]
fn empty_file_parses() {
    let h = parse(&Gguf::new(3).build()).unwrap();
    assert!(h.metadata.is_empty() && h.tensors.is_empty());
    assert_eq!(h.header_len, 24);
    assert_eq!(h.data_end(), h.data_offset);
}

// ---------------------------------------------------------------------------------------
// Prefixes and truncation.

#[test]
fn prefix_need_more_progresses_until_parsed() {
    let (g, _) = rich(3);
    let bytes = g.build();
    let full = parse(&bytes).unwrap();
    for file_len in [None, Some(bytes.len() as u64)] {
        let mut len = 0usize;
        let mut rounds = 0;
        let h = loop {
            rounds += 1;
            assert!(rounds < 1000, "no progress");
            match GgufHeader::parse(&bytes[..len], file_len) {
                Ok(h) => break h,
                Err(GgufError::NeedMore { needed }) => {
                    assert!(needed as usize > len, "needed {needed} at {len}");
                    assert!(needed <= full.header_len, "asked past the header: {needed}");
                    len = needed as usize;
                }
                Err(e) => panic!("prefix of {len} bytes: {e:?}"),
            }
        };
        assert_eq!(len as u64, full.header_len);
        assert_eq!(h.metadata, full.metadata);
        assert_eq!(h.tensors, full.tensors);
    }
}

#[test]
fn truncated_at_every_byte() {
    let (g, _) = rich(3);
    let bytes = g.build();
    let header_len = parse(&bytes).unwrap().header_len as usize;
    for k in 0..bytes.len() {
        let prefix = &bytes[..k];
        match GgufHeader::parse(prefix, None) {
            Err(GgufError::NeedMore { needed }) if k < header_len => {
                assert!(
                    needed as usize > k && needed as usize <= header_len,
                    "{k}: {needed}"
                )
            }
            Ok(_) if k >= header_len => {}
            other => panic!("prefix {k}, no file length: {other:?}"),
        }
        // The same bytes as a whole (truncated) file.
        match GgufHeader::parse(prefix, Some(k as u64)) {
            Err(GgufError::Truncated {
                needed, file_len, ..
            }) => assert!(file_len == k as u64 && needed > file_len, "{k}: {needed}"),
            other => panic!("file truncated to {k}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The fixed header.

#[test]
fn bad_magic() {
    let mut g = Gguf::new(3);
    g.magic = *b"GGML";
    assert_eq!(parse_err(&g), GgufError::BadMagic(*b"GGML"));
    assert_eq!(
        parse(b"\0\0\0\0\0\0\0\0").unwrap_err(),
        GgufError::BadMagic([0; 4])
    );
}

#[test]
fn unsupported_versions() {
    for v in [0, 1, 4, 0x0300_0000, 0x0200_0000, u32::MAX] {
        assert_eq!(parse_err(&Gguf::new(v)), GgufError::UnsupportedVersion(v));
    }
    let swapped = GgufError::UnsupportedVersion(0x0300_0000).to_string();
    assert!(swapped.contains("big-endian"), "{swapped}");
}

#[test]
fn huge_counts_are_refused_without_allocating() {
    for n in [u64::MAX, u64::MAX / 13 + 1, 1 << 62] {
        let mut g = Gguf::new(3);
        g.n_kv = Some(n);
        corrupt_mentions(&parse_err(&g), "metadata count");
        let mut g = Gguf::new(3);
        g.n_tensors = Some(n);
        corrupt_mentions(&parse_err(&g), "tensor count");
    }
    // Representable, but more than any real header: refused, whether or not the file
    // length is known.
    let mut g = Gguf::new(3);
    g.n_kv = Some(1 << 40);
    let bytes = g.build();
    for file_len in [None, Some(bytes.len() as u64)] {
        assert!(matches!(
            GgufHeader::parse(&bytes, file_len),
            Err(GgufError::HeaderTooLarge { needed, .. }) if needed > 1 << 40
        ));
    }
    // Small enough to be plausible: the file is simply too short.
    let mut g = Gguf::new(3);
    g.n_kv = Some(1000);
    assert!(matches!(parse_err(&g), GgufError::Truncated { needed, .. } if needed >= 13_000));
    let bytes = g.build();
    assert!(matches!(
        GgufHeader::parse(&bytes, None),
        Err(GgufError::NeedMore { needed }) if needed >= 13_000
    ));
}

#[test]
fn huge_string_and_array_lengths_are_refused() {
    // A key whose length is near 2^64.
    for len in [u64::MAX, u64::MAX - 23] {
        let mut bytes = bare_header(0, 1);
        bytes.extend(len.to_le_bytes());
        bytes.extend([0u8; 16]);
        corrupt_mentions(&parse(&bytes).unwrap_err(), "metadata key");
    }
    let len = 1u64 << 40;
    let mut bytes = bare_header(0, 1);
    bytes.extend(len.to_le_bytes());
    bytes.extend([0u8; 16]);
    assert!(matches!(
        parse(&bytes),
        Err(GgufError::HeaderTooLarge { .. })
    ));

    // A string value and arrays whose lengths are near 2^64.
    let huge = |elem_type: u32, count: u64| {
        let mut raw = elem_type.to_le_bytes().to_vec();
        raw.extend(count.to_le_bytes());
        raw.extend([0u8; 8]);
        Gguf::new(3).raw_kv("k", 9, raw)
    };
    let mut s = u64::MAX.to_le_bytes().to_vec();
    s.extend(b"abc");
    corrupt_mentions(&parse_err(&Gguf::new(3).raw_kv("k", 8, s)), "k");
    for elem_type in [0, 4, 8, 9, 12] {
        corrupt_mentions(&parse_err(&huge(elem_type, u64::MAX)), "k");
        assert!(
            matches!(
                parse_err(&huge(elem_type, 1 << 60)),
                GgufError::HeaderTooLarge { .. } | GgufError::Corrupt(_)
            ),
            "{elem_type}"
        );
        assert!(
            matches!(
                parse_err(&huge(elem_type, 1 << 20)),
                GgufError::Truncated { .. }
            ),
            "{elem_type}"
        );
    }
    // A tensor name near 2^64.
    let mut bytes = bare_header(1, 0);
    bytes.extend(u64::MAX.to_le_bytes());
    bytes.extend([0u8; 40]);
    corrupt_mentions(&parse(&bytes).unwrap_err(), "tensor name");
}

// ---------------------------------------------------------------------------------------
// Metadata.

fn nested(depth: usize) -> Array {
    let mut a = Array::U8(vec![1]);
    for _ in 1..depth {
        a = Array::Array(vec![a]);
    }
    a
}

#[test]
fn nesting_depth_is_bounded() {
    for depth in 1..=4 {
        let g = Gguf::new(3).kv("k", Value::Array(nested(depth)));
        assert!(parse(&g.build()).is_ok(), "depth {depth}");
    }
    for depth in [5, 6, 100] {
        let g = Gguf::new(3).kv("k", Value::Array(nested(depth)));
        corrupt_mentions(&parse_err(&g), "deeper");
    }
    // Very deep nesting given as raw bytes (no recursion blow-up).
    let mut raw = Vec::new();
    for _ in 0..100_000 {
        raw.extend(9u32.to_le_bytes());
        raw.extend(1u64.to_le_bytes());
    }
    corrupt_mentions(&parse_err(&Gguf::new(3).raw_kv("k", 9, raw)), "deeper");
}

#[test]
fn unknown_value_types() {
    assert_eq!(
        parse_err(&Gguf::new(3).raw_kv("k", 13, vec![0; 8])),
        GgufError::UnknownValueType {
            key: "k".into(),
            type_id: 13
        }
    );
    let mut raw = 99u32.to_le_bytes().to_vec();
    raw.extend(1u64.to_le_bytes());
    assert_eq!(
        parse_err(&Gguf::new(3).raw_kv("arr", 9, raw)),
        GgufError::UnknownValueType {
            key: "arr".into(),
            type_id: 99
        }
    );
}

#[test]
fn bad_bool_bytes() {
    corrupt_mentions(&parse_err(&Gguf::new(3).raw_kv("b", 7, vec![2])), "bool");
    let mut raw = 7u32.to_le_bytes().to_vec();
    raw.extend(3u64.to_le_bytes());
    raw.extend([1, 0, 0xff]);
    corrupt_mentions(&parse_err(&Gguf::new(3).raw_kv("b", 9, raw)), "bool");
}

#[test]
fn duplicate_keys() {
    let g = Gguf::new(3)
        .kv("a", Value::U8(1))
        .kv("b", Value::U8(2))
        .kv("a", Value::String("again".into()));
    assert_eq!(parse_err(&g), GgufError::DuplicateKey("a".into()));
}

#[test]
fn bad_alignment() {
    for v in [0u32, 3, 48, 1000] {
        let g = Gguf::new(3).kv("general.alignment", Value::U32(v));
        corrupt_mentions(&parse_err(&g), "general.alignment");
    }
    // The wrong value type, even with a good value.
    for v in [Value::U64(32), Value::I32(32), Value::String("32".into())] {
        let g = Gguf::new(3).kv("general.alignment", v);
        corrupt_mentions(&parse_err(&g), "general.alignment");
    }
}

// ---------------------------------------------------------------------------------------
// Tensors.

#[test]
fn dims_whose_product_overflows() {
    for dims in [
        vec![1u64 << 32, 1 << 32],
        vec![u64::MAX, 2],
        vec![1 << 31, 1 << 31],
        vec![1 << 20, 1 << 20, 1 << 20, 1 << 20],
    ] {
        let g = Gguf::new(3).tensor_at("t", &dims, 0, 0);
        let bytes = g.build();
        for file_len in [None, Some(bytes.len() as u64)] {
            match GgufHeader::parse(&bytes, file_len) {
                Err(GgufError::Corrupt(m)) => assert!(m.contains("overflow"), "{m}"),
                other => panic!("{dims:?}: {other:?}"),
            }
        }
    }
    // Element count fits but the byte size is past any file: out of the file.
    let g = Gguf::new(3).tensor_at("t", &[1 << 30, 1 << 20], 0, 0);
    assert!(matches!(parse_err(&g), GgufError::Truncated { what, .. } if what.contains("\"t\"")));
}

#[test]
fn zero_and_too_many_dims() {
    for dims in [vec![0u64], vec![4, 0], vec![0, 1 << 40]] {
        let g = Gguf::new(3).tensor_at("t", &dims, 0, 0);
        corrupt_mentions(&parse_err(&g), "zero dimension");
    }
    for n in [0usize, 5, 8] {
        let g = Gguf::new(3).tensor_at("t", &vec![1; n], 0, 0);
        corrupt_mentions(&parse_err(&g), "dimensions");
    }
    // n_dims near 2^32: refused before reading any dimension.
    let mut bytes = bare_header(1, 0);
    bytes.extend(1u64.to_le_bytes());
    bytes.push(b't');
    bytes.extend(u32::MAX.to_le_bytes());
    bytes.extend([0u8; 64]);
    corrupt_mentions(&parse(&bytes).unwrap_err(), "dimensions");
}

#[test]
fn unknown_tensor_types() {
    for id in [4u32, 5, 31, 33, 36, 38, 42, 1000, u32::MAX] {
        let g = Gguf::new(3)
            .tensor("ok", &[32], GgmlType::F32)
            .tensor_at("bad", &[32], id, 128);
        assert_eq!(
            parse_err(&g),
            GgufError::UnknownTensorType {
                tensor: "bad".into(),
                type_id: id
            }
        );
    }
}

#[test]
fn row_length_not_a_whole_number_of_blocks() {
    let g = Gguf::new(3).tensor("t", &[48, 2], GgmlType::Q4_K);
    corrupt_mentions(&parse_err(&g), "block size");
}

#[test]
fn misaligned_overlapping_and_out_of_file_offsets() {
    // Misaligned (default alignment 32, and an explicit 64).
    let g = Gguf::new(3).tensor_at("t", &[8], 0, 16);
    corrupt_mentions(&parse_err(&g), "alignment");
    let g = Gguf::new(3)
        .kv("general.alignment", Value::U32(64))
        .tensor_at("t", &[8], 0, 32);
    corrupt_mentions(&parse_err(&g), "alignment");

    // Overlapping, in either table order.
    let g = Gguf::new(3)
        .tensor_at("a", &[64], 0, 0)
        .tensor_at("b", &[8], 0, 224);
    corrupt_mentions(&parse_err(&g), "overlap");
    let g = Gguf::new(3)
        .tensor_at("b", &[8], 0, 224)
        .tensor_at("a", &[64], 0, 0);
    corrupt_mentions(&parse_err(&g), "overlap");
    // Touching is fine.
    let g = Gguf::new(3)
        .tensor_at("a", &[64], 0, 0)
        .tensor_at("b", &[8], 0, 256);
    assert!(parse(&g.build()).is_ok());

    // Past the end of the file: Truncated naming the tensor; fine without a file length.
    let g = Gguf::new(3)
        .tensor("a", &[8], GgmlType::F32)
        .tensor("b", &[8], GgmlType::F32);
    let bytes = g.build();
    let short = &bytes[..bytes.len() - 1];
    match parse(short) {
        Err(GgufError::Truncated {
            what,
            needed,
            file_len,
        }) => {
            assert!(what.contains("\"b\""), "{what}");
            assert_eq!((needed, file_len), (bytes.len() as u64, short.len() as u64));
        }
        other => panic!("{other:?}"),
    }
    assert!(GgufHeader::parse(short, None).is_ok());

    // An offset so large that offset + size overflows u64.
    let g = Gguf::new(3).tensor_at("t", &[8], 0, u64::MAX - 31);
    let bytes = g.build();
    for file_len in [None, Some(bytes.len() as u64)] {
        assert!(
            matches!(
                GgufHeader::parse(&bytes, file_len),
                Err(GgufError::Corrupt(m)) if m.contains("overflows")
            ),
            "{file_len:?}"
        );
    }
}

#[test]
fn duplicate_tensor_names() {
    let g = Gguf::new(3)
        .tensor("w", &[8], GgmlType::F32)
        .tensor("v", &[8], GgmlType::F32)
        .tensor("w", &[8], GgmlType::F32);
    assert_eq!(parse_err(&g), GgufError::DuplicateTensor("w".into()));
}

#[test]
fn errors_display_their_cause() {
    let e = parse_err(&Gguf::new(3).tensor_at("bad", &[32], 1000, 0));
    let msg = e.to_string();
    assert!(msg.contains("bad") && msg.contains("1000"), "{msg}");
    let e = wisp::Error::from(e);
    assert!(e.to_string().contains("1000"));
}
