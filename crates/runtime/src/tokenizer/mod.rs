//! Tokenizers built from GGUF metadata: SentencePiece (`llama`) and byte-level BPE
//! (`gpt2`, plus Gemma 4's `gemma4` BPE), bit-exact with llama.cpp.
//!
//! llama.cpp is the reference, quirks included: its special-token partition, its
//! pre-tokenizer regex semantics (`pretokenize`), SentencePiece's space prefix after
//! every special token, its detokenizer's space clean-up. Where it is odd the module that
//! follows it says so.
//!
//! Submodules, one concern each: `vocab` (metadata → vocabulary, special ids, EOG),
//! `spm` and `bpe` (the two merge algorithms), `pretokenize` (BPE word splitting),
//! `decode` (pieces, detokenization, streaming).

mod bpe;
mod decode;
mod pretokenize;
mod spm;
mod texts;
mod unicode_table;
mod vocab;

pub use decode::StreamDecoder;

use crate::gguf::GgufHeader;
use crate::Error;
use bpe::{ByteFallback, Merges};
use decode::{PieceStyle, Pieces};
use pretokenize::{PreTokenizer, StepSpec};
use vocab::{attr, Defaults, Vocab};

#[derive(Debug)]
enum Model {
    Spm,
    Bpe {
        merges: Merges,
        pre: PreTokenizer,
        /// GPT-2 byte-to-unicode encoding of words before merging (false: raw UTF-8).
        byte_encode: bool,
        ignore_merges: bool,
        /// Spaces become U+2581 before splitting (Gemma 4).
        escape_spaces: bool,
        /// Gemma 4: a word of only newlines that is itself a token skips the merges.
        newline_words: bool,
    },
}

/// A tokenizer for one model's vocabulary.
#[derive(Debug)]
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    pieces: Pieces,
    clean_spaces: bool,
    specials: SpecialMatcher,
    byte_chars: [char; 256],
}

/// One pre-tokenizer of llama.cpp: its names and what they imply.
struct PreSpec {
    names: &'static [&'static str],
    steps: &'static [StepSpec],
    clean_spaces: bool,
    ignore_merges: bool,
    add_bos: bool,
    no_bos: bool,
}

const fn pre(names: &'static [&'static str], steps: &'static [StepSpec]) -> PreSpec {
    PreSpec {
        names,
        steps,
        clean_spaces: true,
        ignore_merges: false,
        add_bos: false,
        no_bos: false,
    }
}

impl PreSpec {
    const fn no_clean(mut self) -> Self {
        self.clean_spaces = false;
        self
    }
    const fn llama3(mut self) -> Self {
        self.ignore_merges = true;
        self.add_bos = true;
        self
    }
    const fn glm(mut self, ignore_merges: bool) -> Self {
        self.no_bos = true;
        self.ignore_merges = ignore_merges;
        self
    }
}

use StepSpec::{Gpt2, Llama3, Qwen2, Qwen35, Re};

const CJK_DEEPSEEK: &str = "[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+";
const DEEPSEEK_V3_MAIN: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;
const DEEPSEEK_LLM_LETTERS: &str = "\\s?[A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+";
const PORO: &str = " ?[^(\\s|.,!?\u{2026}\u{3002}\u{FF0C}\u{3001}\u{964}\u{6D4}\u{60C})]+";

// Non-ASCII characters are escaped: some of these ranges are not in NFC, and an editor
// normalizing them would silently change the classes.

/// The pre-tokenizers Wisp supports (llama.cpp's table, restricted to the ones that are
/// a regex list Wisp reproduces exactly). Any other name is refused by name.
static PRE_TOKENIZERS: &[PreSpec] = &[
    pre(
        &["default", ""],
        &[
            Re(r"[\p{P}\$\+<=>\^~\|]+"),
            Gpt2,
            Re(r"\p{N}+"),
            Re("[0-9][0-9][0-9]"),
        ],
    ),
    pre(
        &[
            "llama3",
            "llama-v3",
            "llama-bpe",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
            "jina-v5-nano",
        ],
        &[Llama3],
    )
    .llama3(),
    pre(&["dbrx", "smaug-bpe"], &[Llama3]),
    pre(&["chatglm-bpe"], &[Llama3]).glm(false),
    pre(&["glm4", "glm5"], &[Llama3]).glm(true),
    pre(
        &["deepseek-llm"],
        &[
            Re("[\r\n]"),
            Re(DEEPSEEK_LLM_LETTERS),
            Re("\\s?[!-/:-~\u{FF01}-\u{FF0F}\u{FF1A}-\u{FF5E}\u{2018}-\u{201F}\u{3000}-\u{3002}]+"),
            Re("\\s+$"),
            Re(CJK_DEEPSEEK),
            Re(r"\p{N}+"),
        ],
    )
    .no_clean(),
    pre(
        &["deepseek-coder"],
        &[
            Re("[\r\n]"),
            Re(r"\s?\p{L}+"),
            Re(r"\s?\p{P}+"),
            Re(CJK_DEEPSEEK),
            Re(r"\p{N}"),
        ],
    )
    .no_clean(),
    pre(
        &["deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"],
        &[
            Re(r"\p{N}{1,3}"),
            Re("[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+"),
            Re(DEEPSEEK_V3_MAIN),
        ],
    )
    .no_clean(),
    pre(
        &["falcon"],
        &[Re(r"[\p{P}\$\+<=>\^~\|`]+"), Gpt2, Re("[0-9][0-9][0-9]")],
    ),
    pre(
        &[
            "starcoder",
            "refact",
            "codeshell",
            "exaone",
            "minerva-7b",
            "mellum2",
        ],
        &[Re(r"\p{N}"), Gpt2],
    ),
    pre(&["command-r", "smollm"], &[Re(r"\p{N}"), Gpt2]).no_clean(),
    pre(
        &[
            "gpt-2",
            "phi-2",
            "jina-es",
            "jina-de",
            "gigachat",
            "jina-v2-es",
            "jina-v2-de",
            "a.x-4.0",
            "mellum",
            "modern-bert",
            "jina-v1-en",
            "jina-v2-code",
            "roberta-bpe",
            "mpt",
            "olmo",
            "jais",
            "exaone4",
        ],
        &[Gpt2],
    ),
    pre(&["trillion", "granite-docling"], &[Gpt2]).no_clean(),
    pre(&["stablelm2", "megrez"], &[Qwen2]),
    pre(
        &[
            "qwen2",
            "deepseek-r1-qwen",
            "kormo",
            "f2llmv2",
            "hunyuan",
            "solar-open",
            "grok-2",
        ],
        &[Qwen2],
    )
    .no_clean(),
    pre(&["qwen35"], &[Qwen35]).no_clean(),
    pre(&["poro-chat"], &[Re(PORO)]).no_clean(),
    pre(&["bloom", "gpt3-finnish"], &[Re(PORO)]),
    pre(&["viking"], &[Re(PORO), Re(r"\p{N}")]).no_clean(),
];

impl Tokenizer {
    /// Build the tokenizer described by a GGUF header's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(header: &GgufHeader) -> Result<Tokenizer, Error> {
        let model_name = match header.get("tokenizer.ggml.model") {
            Some(v) => v.as_str().ok_or_else(|| {
                vocab::err(format!(
                    "tokenizer.ggml.model must be a string, found {}",
                    v.type_name()
                ))
            })?,
            None => return Err(vocab::err("the file has no tokenizer.ggml.model")),
        };
        let pre_name = header.get_str("tokenizer.ggml.pre").unwrap_or("");
        let (model, defaults, clean_spaces, style) = match model_name {
            "llama" => (
                Model::Spm,
                Defaults {
                    bos: Some(1),
                    eos: Some(2),
                    unk: Some(0),
                    add_bos: true,
                    add_eos: false,
                    add_space_prefix: true,
                    force_add_bos: false,
                },
                false,
                PieceStyle::Spm,
            ),
            "gpt2" => {
                let spec = PRE_TOKENIZERS
                    .iter()
                    .find(|p| p.names.contains(&pre_name))
                    .ok_or_else(|| {
                        Error::Unsupported(format!(
                            "BPE pre-tokenizer '{pre_name}' (tokenizer.ggml.pre) is not supported by Wisp"
                        ))
                    })?;
                let pre = PreTokenizer::new(spec.steps)
                    .map_err(|e| Error::Unsupported(format!("pre-tokenizer '{pre_name}': {e}")))?;
                (
                    Model::Bpe {
                        merges: Merges::load(header)?,
                        pre,
                        byte_encode: true,
                        ignore_merges: spec.ignore_merges,
                        escape_spaces: false,
                        newline_words: false,
                    },
                    Defaults {
                        // llama.cpp's (Falcon-era) defaults, used when metadata has none.
                        bos: (!spec.no_bos).then_some(11),
                        eos: Some(11),
                        unk: None,
                        add_bos: spec.add_bos,
                        add_eos: false,
                        add_space_prefix: false,
                        force_add_bos: false,
                    },
                    spec.clean_spaces,
                    PieceStyle::ByteLevel,
                )
            }
            "gemma4" => (
                // SentencePiece-like BPE: spaces escaped, split only at newlines, merges on
                // raw UTF-8, `<0xXX>` byte fallback.
                Model::Bpe {
                    merges: Merges::load(header)?,
                    pre: PreTokenizer::new(&[StepSpec::Newlines]).map_err(vocab::err)?,
                    byte_encode: false,
                    ignore_merges: false,
                    escape_spaces: true,
                    newline_words: true,
                },
                Defaults {
                    bos: None,
                    eos: None,
                    unk: None,
                    add_bos: false,
                    add_eos: false,
                    add_space_prefix: false,
                    force_add_bos: true,
                },
                true,
                PieceStyle::BpeEscaped,
            ),
            "bert" | "t5" | "rwkv" | "plamo2" | "hybriddna" | "whitespace" | "no_vocab"
            | "none" | "test" => {
                let what = match model_name {
                    "bert" => " (WordPiece)",
                    "t5" => " (Unigram)",
                    _ => "",
                };
                return Err(Error::Unsupported(format!(
                    "tokenizer model '{model_name}'{what} is not supported by Wisp (it supports 'llama' SentencePiece and 'gpt2' BPE)"
                )));
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "unknown tokenizer model '{other}' (tokenizer.ggml.model)"
                )))
            }
        };
        let vocab = Vocab::load(header, defaults)?;
        let pieces = Pieces::build(&vocab, style);
        let specials = SpecialMatcher::new(&vocab);
        Ok(Tokenizer {
            vocab,
            model,
            pieces,
            clean_spaces,
            specials,
            byte_chars: pretokenize::byte_to_char_table(),
        })
    }

    /// Raw text to ids, nothing added. With `parse_special`, control-token texts in
    /// `text` become those tokens (template output); without it they are plain text
    /// (user input). User-defined tokens are matched either way, as in llama.cpp.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_into(text, &|_, _| parse_special, &mut out);
        out
    }

    /// `encode(text, true)`, except that an occurrence of a control (or unknown) token's
    /// text becomes that token only where `allow(id, byte_range)` says so; elsewhere it
    /// stays text, as without `parse_special`. For prompts that mix template markup with
    /// untrusted content: text fragments are the same as `encode(text, true)` would
    /// tokenize whenever every occurrence is allowed, so merges across the markup/content
    /// boundary do not change.
    pub fn encode_special_where(
        &self,
        text: &str,
        allow: &dyn Fn(u32, std::ops::Range<usize>) -> bool,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_into(text, allow, &mut out);
        out
    }

    /// As llama.cpp's `llama_tokenize(add_special = true)`: BOS first when
    /// `tokenizer.ggml.add_bos_token` says so, EOS last when `add_eos_token` does.
    pub fn encode_prompt(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if self.vocab.add_bos {
            out.extend(self.vocab.bos);
        }
        self.encode_into(text, &|_, _| parse_special, &mut out);
        if self.vocab.add_eos {
            out.extend(self.vocab.eos);
        }
        out
    }

    fn encode_into(&self, text: &str, allow: &AllowSpecial, out: &mut Vec<u32>) {
        let frags = self.specials.partition(&self.vocab, text, allow);
        // SentencePiece: a space goes before the first text and before every text that
        // follows a special token (llama.cpp does this even mid-prompt, on purpose).
        let mut prev_special = true;
        for frag in frags {
            match frag {
                Frag::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Frag::Text(s, e) => {
                    let part = &text[s..e];
                    match &self.model {
                        Model::Spm => {
                            let mut t = String::with_capacity(part.len() + 4);
                            if self.vocab.add_space_prefix && prev_special {
                                t.push(' ');
                            }
                            t.push_str(part);
                            spm::tokenize(&self.vocab, &t.replace(' ', "\u{2581}"), out);
                        }
                        Model::Bpe { .. } => self.encode_bpe(part, out),
                    }
                    prev_special = false;
                }
            }
        }
    }

    fn encode_bpe(&self, text: &str, out: &mut Vec<u32>) {
        let Model::Bpe {
            merges,
            pre,
            byte_encode,
            ignore_merges,
            escape_spaces,
            newline_words,
        } = &self.model
        else {
            return;
        };
        let escaped;
        let text = if *escape_spaces {
            escaped = text.replace(' ', "\u{2581}");
            &escaped
        } else {
            text
        };
        let cps: Vec<char> = text.chars().collect();
        let fallback = if *byte_encode {
            ByteFallback::Raw
        } else {
            ByteFallback::Hex
        };
        let mut word = String::new();
        for r in pre.split(&cps) {
            word.clear();
            if *byte_encode {
                let mut buf = [0u8; 4];
                for &c in &cps[r] {
                    for &b in c.encode_utf8(&mut buf).as_bytes() {
                        word.push(self.byte_chars[b as usize]);
                    }
                }
            } else {
                word.extend(&cps[r]);
            }
            if *newline_words && word.bytes().all(|b| b == b'\n') {
                if let Some(id) = self.vocab.get(&word) {
                    out.push(id);
                    continue;
                }
            }
            bpe::tokenize_word(&self.vocab, merges, &word, *ignore_merges, fallback, out);
        }
    }

    /// Ids to text as llama.cpp's `llama_detokenize` (special tokens rendered when
    /// `render_special`): SentencePiece drops the leading space its encoder added, and
    /// some BPE vocabularies clean spaces before punctuation. Lossy only where the bytes
    /// are not UTF-8; ids outside the vocabulary render as nothing.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> String {
        match String::from_utf8(decode::detokenize(self, ids, render_special)) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// The bytes of one token as `llama_token_to_piece` gives them (control and
    /// unknown tokens are empty unless `render_special`).
    pub fn token_bytes(&self, id: u32, render_special: bool) -> Vec<u8> {
        decode::piece(self, id, render_special).to_vec()
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.n_tokens()
    }

    pub fn bos(&self) -> Option<u32> {
        self.vocab.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.vocab.eos
    }

    /// Whether prompts start with BOS (`tokenizer.ggml.add_bos_token`, else the
    /// tokenizer's default).
    pub fn add_bos(&self) -> bool {
        self.vocab.add_bos && self.vocab.bos.is_some()
    }

    /// End of generation: EOS, EOT, EOM, the FIM pad/repo/separator tokens and the
    /// tokens llama.cpp recognizes by text (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`,
    /// `<|endoftext|>`, …).
    pub fn is_eog(&self, id: u32) -> bool {
        self.vocab.eog.contains(&id)
    }

    /// The raw vocabulary entry.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.texts.get(id)
    }

    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.attr(id) & attr::CONTROL != 0
    }
}

/// Whether a control/unknown token's text at this byte range becomes the token.
type AllowSpecial<'a> = dyn Fn(u32, std::ops::Range<usize>) -> bool + 'a;

/// A piece of the input after special tokens are carved out: a byte range of text, or
/// a token.
#[derive(Debug, PartialEq)]
enum Frag {
    Text(usize, usize),
    Token(u32),
}

/// Finds special tokens in text. llama.cpp's partition is order-dependent (longest token
/// first, each splitting every remaining text fragment at all its occurrences), so Wisp
/// runs that same algorithm, but only over the special tokens that occur in the text at
/// all, found in one pass with a byte trie.
#[derive(Debug)]
struct SpecialMatcher {
    nodes: Vec<TrieNode>,
}

/// A byte-trie node: children sorted by byte, and the special-list position of the
/// token that ends here.
type TrieNode = (Vec<(u8, u32)>, Option<u32>);

impl SpecialMatcher {
    fn new(vocab: &Vocab) -> SpecialMatcher {
        let mut nodes: Vec<TrieNode> = vec![(Vec::new(), None)];
        for (pos, &id) in vocab.specials.iter().enumerate() {
            let mut node = 0usize;
            for &b in vocab.texts[id as usize].as_bytes() {
                node = match nodes[node].0.binary_search_by_key(&b, |&(k, _)| k) {
                    Ok(i) => nodes[node].0[i].1 as usize,
                    Err(i) => {
                        let new = nodes.len();
                        nodes[node].0.insert(i, (b, new as u32));
                        nodes.push((Vec::new(), None));
                        new
                    }
                };
            }
            nodes[node].1 = Some(pos as u32);
        }
        SpecialMatcher { nodes }
    }

    /// Positions (in the special list) of the special tokens occurring in `text`.
    fn present(&self, text: &[u8]) -> Vec<u32> {
        let mut found = Vec::new();
        for start in 0..text.len() {
            let mut node = 0usize;
            for &b in &text[start..] {
                match self.nodes[node].0.binary_search_by_key(&b, |&(k, _)| k) {
                    Ok(i) => node = self.nodes[node].0[i].1 as usize,
                    Err(_) => break,
                }
                if let Some(p) = self.nodes[node].1 {
                    found.push(p);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    fn partition(&self, vocab: &Vocab, text: &str, allow: &AllowSpecial) -> Vec<Frag> {
        if text.is_empty() {
            return Vec::new();
        }
        let bytes = text.as_bytes();
        let mut frags = vec![Frag::Text(0, text.len())];
        for pos in self.present(bytes) {
            let id = vocab.specials[pos as usize];
            let a = vocab.attr(id);
            // User-defined tokens are carved out everywhere; control and unknown ones
            // only where `allow` says (nowhere without parse_special).
            let gated = a & (attr::CONTROL | attr::UNKNOWN) != 0;
            let tok = vocab.texts[id as usize].as_bytes();
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(mut s, e) = f else {
                    next.push(f);
                    continue;
                };
                let mut from = s;
                while let Some(m) = find(&bytes[from..e], tok).map(|m| m + from) {
                    if gated && !allow(id, m..m + tok.len()) {
                        // Stays text; look for the next occurrence.
                        from = m + 1;
                        continue;
                    }
                    let mut left_end = m;
                    if a & attr::LSTRIP != 0 {
                        while left_end > s && is_c_space(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > s {
                        next.push(Frag::Text(s, left_end));
                    }
                    next.push(Frag::Token(id));
                    s = m + tok.len();
                    if a & attr::RSTRIP != 0 {
                        while s < e && is_c_space(bytes[s]) {
                            s += 1;
                        }
                    }
                    from = s;
                }
                if s < e {
                    next.push(Frag::Text(s, e));
                }
            }
            frags = next;
        }
        // Special texts are whole UTF-8 strings and strips remove ASCII only, so every
        // fragment boundary is a char boundary.
        frags
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
