//! Unit tests on small synthetic vocabularies (the real models are tested against
//! llama.cpp in `tests/tests/tokenizer_*.rs`).

use super::*;

/// A metadata value for the in-memory GGUF builder.
enum V<'a> {
    Str(&'a str),
    U32(u32),
    I64(i64),
    Bool(bool),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn gguf(kvs: &[(&str, V)]) -> GgufHeader {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    let s = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    for (k, v) in kvs {
        s(&mut b, k);
        match v {
            V::Str(x) => {
                b.extend_from_slice(&8u32.to_le_bytes());
                s(&mut b, x);
            }
            V::U32(x) => {
                b.extend_from_slice(&4u32.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            V::I64(x) => {
                b.extend_from_slice(&11u32.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            V::Bool(x) => {
                b.extend_from_slice(&7u32.to_le_bytes());
                b.push(*x as u8);
            }
            V::Strs(xs) => {
                b.extend_from_slice(&9u32.to_le_bytes());
                b.extend_from_slice(&8u32.to_le_bytes());
                b.extend_from_slice(&(xs.len() as u64).to_le_bytes());
                for x in xs {
                    s(&mut b, x);
                }
            }
            V::F32s(xs) => {
                b.extend_from_slice(&9u32.to_le_bytes());
                b.extend_from_slice(&6u32.to_le_bytes());
                b.extend_from_slice(&(xs.len() as u64).to_le_bytes());
                for x in xs {
                    b.extend_from_slice(&x.to_le_bytes());
                }
            }
            V::I32s(xs) => {
                b.extend_from_slice(&9u32.to_le_bytes());
                b.extend_from_slice(&5u32.to_le_bytes());
                b.extend_from_slice(&(xs.len() as u64).to_le_bytes());
                for x in xs {
                    b.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    GgufHeader::parse(&b, Some(b.len() as u64)).unwrap()
}

/// A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then `words`.
fn spm_vocab(words: &[(&str, f32)], extra: Vec<(&str, V)>) -> GgufHeader {
    let mut toks = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut scores = vec![0.0, 0.0, 0.0];
    let mut types = vec![2, 3, 3];
    for b in 0..256 {
        toks.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    for (w, sc) in words {
        toks.push(w.to_string());
        scores.push(*sc);
        types.push(1);
    }
    let mut kvs = vec![
        ("tokenizer.ggml.model", V::Str("llama")),
        ("tokenizer.ggml.tokens", V::Strs(toks)),
        ("tokenizer.ggml.scores", V::F32s(scores)),
        ("tokenizer.ggml.token_type", V::I32s(types)),
    ];
    kvs.extend(extra);
    gguf(&kvs)
}

fn spm() -> Tokenizer {
    Tokenizer::from_gguf(&spm_vocab(
        &[
            ("▁", -1.0),
            ("h", -2.0),
            ("i", -2.0),
            ("hi", -1.5),
            ("▁hi", -0.5),
            ("é", -3.0),
        ],
        vec![],
    ))
    .unwrap()
}

#[test]
fn spm_merges_and_space_prefix() {
    let t = spm();
    let hi = t.vocab.get("▁hi").unwrap();
    assert_eq!(t.encode("hi", false), vec![hi]);
    assert_eq!(t.encode_prompt("hi", false), vec![1, hi]);
    assert_eq!(t.decode(&[hi], false), "hi");
    assert_eq!(t.decode(&[1, hi], true), "<s> hi");
    assert_eq!(t.decode(&[1, hi], false), " hi");
}

#[test]
fn spm_byte_fallback() {
    let t = spm();
    // "日" is not in the vocabulary: its three UTF-8 bytes become <0xE6><0x97><0xA5>.
    let ids = t.encode("日", false);
    let sp = t.vocab.get("▁").unwrap();
    assert_eq!(ids, vec![sp, 3 + 0xE6, 3 + 0x97, 3 + 0xA5]);
    assert_eq!(t.decode(&ids, false), "日");
}

#[test]
fn spm_special_tokens_only_when_asked() {
    let t = spm();
    assert_eq!(t.encode("<s>", true), vec![1]);
    assert_ne!(t.encode("<s>", false), vec![1]);
    assert!(t.is_eog(2));
    assert!(t.is_control(1));
    assert_eq!(t.bos(), Some(1));
    assert_eq!(t.eos(), Some(2));
    assert!(t.add_bos());
}

#[test]
fn stream_decoder_never_splits_a_char() {
    let t = spm();
    // "é日" as byte tokens: C3 A9 E6 97 A5.
    let ids: Vec<u32> = [0xC3u32, 0xA9, 0xE6, 0x97, 0xA5]
        .iter()
        .map(|b| 3 + b)
        .collect();
    let mut d = StreamDecoder::new(&t, false);
    let outs: Vec<String> = ids.iter().map(|&i| d.push(i)).collect();
    assert_eq!(outs, ["", "é", "", "", "日"]);
    assert_eq!(d.finish(), "");

    // An invalid byte is replaced at once; a dangling lead byte only at finish().
    let mut d = StreamDecoder::new(&t, false);
    assert_eq!(d.push(3 + 0xFF), "\u{FFFD}");
    assert_eq!(d.push(3 + 0xE6), "");
    assert_eq!(d.push(t.vocab.get("hi").unwrap()), "\u{FFFD}hi");
    assert_eq!(d.push(3 + 0xE6), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    // Control tokens render only when asked.
    let mut d = StreamDecoder::new(&t, true);
    assert_eq!(d.push(2), "</s>");
}

fn bpe_vocab(pre: &str, extra: Vec<(&str, V)>) -> GgufHeader {
    let table = pretokenize::byte_to_char_table();
    let mut toks: Vec<String> = table.iter().map(|c| c.to_string()).collect();
    for t in ["Ġh", "Ġhi", "hi", "<|im_end|>", "<tool>"] {
        toks.push(t.to_string());
    }
    let n = toks.len();
    let mut types = vec![1; n];
    types[n - 2] = 3;
    types[n - 1] = 4;
    let merges = vec!["Ġ h".to_string(), "Ġh i".into(), "h i".into()];
    let mut kvs = vec![
        ("tokenizer.ggml.model", V::Str("gpt2")),
        ("tokenizer.ggml.pre", V::Str(pre)),
        ("tokenizer.ggml.tokens", V::Strs(toks)),
        ("tokenizer.ggml.token_type", V::I32s(types)),
        ("tokenizer.ggml.merges", V::Strs(merges)),
        ("tokenizer.ggml.eos_token_id", V::U32(n as u32 - 2)),
    ];
    kvs.extend(extra);
    gguf(&kvs)
}

#[test]
fn bpe_roundtrip_and_specials() {
    let t = Tokenizer::from_gguf(&bpe_vocab("qwen2", vec![])).unwrap();
    let im_end = t.vocab.get("<|im_end|>").unwrap();
    let tool = t.vocab.get("<tool>").unwrap();
    let ghi = t.vocab.get("Ġhi").unwrap();
    assert_eq!(t.encode(" hi", false), vec![ghi]);
    assert_eq!(t.encode("<|im_end|>", true), vec![im_end]);
    assert!(t.encode("<|im_end|>", false).len() > 1);
    // User-defined tokens are matched even for plain text.
    assert_eq!(t.encode("<tool>", false), vec![tool]);
    assert!(t.is_eog(im_end));
    for s in ["héllo wörld 日本 🦙", "a\r\n\tb  ", "", "<|im_end|> x"] {
        assert_eq!(t.decode(&t.encode(s, false), false), s);
    }
    assert_eq!(t.decode(&[im_end], false), "");
    assert_eq!(t.decode(&[im_end], true), "<|im_end|>");
    // Out-of-range ids decode to nothing instead of panicking.
    assert_eq!(t.decode(&[u32::MAX], true), "");
    assert_eq!(t.token_bytes(u32::MAX, true), b"");
}

#[test]
fn unsupported_and_invalid_metadata() {
    let e = Tokenizer::from_gguf(&bpe_vocab("no-such-pre", vec![])).unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("no-such-pre")),
        "{e}"
    );
    let e = Tokenizer::from_gguf(&gguf(&[("tokenizer.ggml.model", V::Str("bert"))])).unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("bert")),
        "{e}"
    );
    let e = Tokenizer::from_gguf(&gguf(&[])).unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e}");
    // Out-of-range BOS.
    let e = Tokenizer::from_gguf(&spm_vocab(
        &[],
        vec![("tokenizer.ggml.bos_token_id", V::I64(1 << 40))],
    ))
    .unwrap_err();
    assert!(
        matches!(&e, Error::Tokenizer(m) if m.contains("bos")),
        "{e}"
    );
    // Short scores array.
    let e = Tokenizer::from_gguf(&gguf(&[
        ("tokenizer.ggml.model", V::Str("llama")),
        (
            "tokenizer.ggml.tokens",
            V::Strs(vec!["a".into(), "b".into()]),
        ),
        ("tokenizer.ggml.scores", V::F32s(vec![0.0])),
    ]))
    .unwrap_err();
    assert!(
        matches!(&e, Error::Tokenizer(m) if m.contains("scores")),
        "{e}"
    );
    // Wrong type for the token list.
    let e = Tokenizer::from_gguf(&gguf(&[
        ("tokenizer.ggml.model", V::Str("llama")),
        ("tokenizer.ggml.tokens", V::F32s(vec![0.0])),
    ]))
    .unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e}");
    // Missing merges for BPE.
    let e = Tokenizer::from_gguf(&gguf(&[
        ("tokenizer.ggml.model", V::Str("gpt2")),
        ("tokenizer.ggml.pre", V::Str("gpt-2")),
        ("tokenizer.ggml.tokens", V::Strs(vec!["a".into()])),
    ]))
    .unwrap_err();
    assert!(
        matches!(&e, Error::Tokenizer(m) if m.contains("merges")),
        "{e}"
    );
    // Bad bool type.
    let e = Tokenizer::from_gguf(&spm_vocab(
        &[],
        vec![("tokenizer.ggml.add_bos_token", V::U32(1))],
    ))
    .unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e}");
    let ok = Tokenizer::from_gguf(&spm_vocab(
        &[],
        vec![("tokenizer.ggml.add_bos_token", V::Bool(false))],
    ))
    .unwrap();
    assert!(!ok.add_bos());
}

#[test]
fn every_supported_pre_tokenizer_builds() {
    for spec in PRE_TOKENIZERS {
        PreTokenizer::new(spec.steps).unwrap_or_else(|e| panic!("{:?}: {e}", spec.names));
    }
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
}
