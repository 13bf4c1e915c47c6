//! The vocabulary as llama.cpp loads it from `tokenizer.ggml.*` metadata: token texts,
//! scores, attributes, special ids, the end-of-generation set and the special-token list.
//!
//! Every array and id is validated: a malformed header gives `Error::Tokenizer`, an
//! unknown tokenizer model or pre-tokenizer `Error::Unsupported`, never a panic.
//! Where llama.cpp silently tolerates something (an out-of-range *optional* special id,
//! a scores array longer than the vocabulary) Wisp tolerates it too, so every file that
//! loads in llama.cpp loads here.

use super::texts::Texts;
use crate::gguf::{Array, GgufHeader, Strings, Value};
use crate::Error;
use std::collections::BTreeSet;

/// Token attributes (llama.cpp's `llama_token_attr` bits).
pub(crate) mod attr {
    pub const UNKNOWN: u16 = 1 << 0;
    pub const UNUSED: u16 = 1 << 1;
    pub const NORMAL: u16 = 1 << 2;
    pub const CONTROL: u16 = 1 << 3;
    pub const USER_DEFINED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
    pub const LSTRIP: u16 = 1 << 7;
    pub const RSTRIP: u16 = 1 << 8;
}

/// GGUF `tokenizer.ggml.token_type` values.
fn attr_from_type(t: i32) -> u16 {
    match t {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => 0, // undefined
    }
}

#[derive(Debug)]
pub(crate) struct Vocab {
    /// Token texts, indexed by text.
    pub texts: Texts,
    pub scores: Vec<f32>,
    pub attrs: Vec<u16>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
    /// Sorted ids of end-of-generation tokens.
    pub eog: BTreeSet<u32>,
    /// Control, user-defined and unknown tokens, longest text first (ties by id):
    /// the order llama.cpp carves them out of raw text.
    pub specials: Vec<u32>,
}

pub(crate) fn err(msg: impl Into<String>) -> Error {
    Error::Tokenizer(msg.into())
}

pub(crate) fn get_bool(h: &GgufHeader, key: &str) -> Result<Option<bool>, Error> {
    match h.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(err(format!(
            "{key} must be a bool, found {}",
            v.type_name()
        ))),
    }
}

fn get_id(h: &GgufHeader, key: &str) -> Result<Option<i128>, Error> {
    match h.get(key) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or_else(|| {
            err(format!(
                "{key} must be an integer token id, found {}",
                v.type_name()
            ))
        }),
    }
}

/// Vocabulary-level defaults that depend on the tokenizer model and pre-tokenizer.
pub(crate) struct Defaults {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
    /// Gemma 4: llama.cpp forces BOS on whatever the metadata says.
    pub force_add_bos: bool,
}

impl Vocab {
    pub(crate) fn load(h: &GgufHeader, d: Defaults) -> Result<Vocab, Error> {
        let texts_raw = match h.get_array("tokenizer.ggml.tokens") {
            Some(Array::String(v)) => v,
            Some(a) => {
                return Err(err(format!(
                    "tokenizer.ggml.tokens must be an array of strings, found {}",
                    a.type_name()
                )))
            }
            None => return Err(err("the file has no vocabulary (tokenizer.ggml.tokens)")),
        };
        let n = texts_raw.len();
        if n == 0 {
            return Err(err("tokenizer.ggml.tokens is empty"));
        }
        if n > i32::MAX as usize {
            return Err(err(format!("vocabulary of {n} tokens is too large")));
        }

        // llama.cpp accepts a longer scores/types array and reads the first n entries.
        let scores: Vec<f32> = match h.get("tokenizer.ggml.scores") {
            None => vec![0.0; n],
            Some(Value::Array(Array::F32(v))) if v.len() >= n => v[..n].to_vec(),
            Some(Value::Array(Array::I32(v))) if v.len() >= n => {
                v[..n].iter().map(|&x| x as f32).collect()
            }
            Some(Value::Array(a @ (Array::F32(_) | Array::I32(_)))) => {
                return Err(err(format!(
                    "tokenizer.ggml.scores has {} entries for {n} tokens",
                    a.len()
                )))
            }
            Some(v) => {
                return Err(err(format!(
                    "tokenizer.ggml.scores must be an f32 or i32 array, found {}",
                    describe(v)
                )))
            }
        };
        let mut attrs: Vec<u16> = match h.get("tokenizer.ggml.token_type") {
            None => vec![attr::NORMAL; n],
            Some(Value::Array(Array::I32(v))) if v.len() >= n => {
                v[..n].iter().map(|&t| attr_from_type(t)).collect()
            }
            Some(Value::Array(Array::I32(v))) => {
                return Err(err(format!(
                    "tokenizer.ggml.token_type has {} entries for {n} tokens",
                    v.len()
                )))
            }
            Some(v) => {
                return Err(err(format!(
                    "tokenizer.ggml.token_type must be an i32 array, found {}",
                    describe(v)
                )))
            }
        };

        // llama.cpp renames empty entries so every token has a distinct text.
        let strings = if texts_raw.iter().any(str::is_empty) {
            let mut renamed = Strings::with_capacity(n, 0);
            for (i, t) in texts_raw.iter().enumerate() {
                let ok = if t.is_empty() {
                    renamed.push(&format!("[EMPTY_{i}]"))
                } else {
                    renamed.push(t)
                };
                if !ok {
                    return Err(err("token texts over 4 GiB"));
                }
            }
            renamed
        } else {
            texts_raw.clone()
        };
        // llama.cpp aborts on a repeated text (its id/text maps would disagree).
        let texts = Texts::new(strings).map_err(|(prev, i)| {
            // One of the two may be an empty entry renamed to "[EMPTY_id]".
            let text = match &texts_raw[i as usize] {
                "" => format!("[EMPTY_{i}]"),
                t => t.to_string(),
            };
            err(format!(
                "token text {text:?} appears twice (ids {prev} and {i})"
            ))
        })?;

        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let mut bos = in_range(d.bos);
        let mut eos = in_range(d.eos);
        let _unk = in_range(d.unk);
        let mut eot = None;
        let mut eom = None;
        let mut fim_pad = None;
        let mut fim_rep = None;
        let mut fim_sep = None;
        let mut fim_pre = None;
        let mut fim_suf = None;
        let mut fim_mid = None;

        // Ids that decide prompts and stopping must be right (an error when out of
        // range); the others llama.cpp ignores when out of range, and so does Wisp.
        let read = |key: &str, strict: bool| -> Result<Option<u32>, Error> {
            match get_id(h, key)? {
                Some(id) if id >= 0 && (id as usize) < n => Ok(Some(id as u32)),
                Some(id) if strict => Err(err(format!(
                    "{key} = {id} is outside the vocabulary of {n} tokens"
                ))),
                _ => Ok(None),
            }
        };
        let or = |new: Option<u32>, old: Option<u32>| new.or(old);
        bos = or(read("tokenizer.ggml.bos_token_id", true)?, bos);
        eos = or(read("tokenizer.ggml.eos_token_id", true)?, eos);
        eot = or(read("tokenizer.ggml.eot_token_id", true)?, eot);
        eom = or(read("tokenizer.ggml.eom_token_id", true)?, eom);
        fim_pre = or(read("tokenizer.ggml.fim_pre_token_id", false)?, fim_pre);
        fim_suf = or(read("tokenizer.ggml.fim_suf_token_id", false)?, fim_suf);
        fim_mid = or(read("tokenizer.ggml.fim_mid_token_id", false)?, fim_mid);
        fim_pad = or(read("tokenizer.ggml.fim_pad_token_id", false)?, fim_pad);
        fim_rep = or(read("tokenizer.ggml.fim_rep_token_id", false)?, fim_rep);
        fim_sep = or(read("tokenizer.ggml.fim_sep_token_id", false)?, fim_sep);
        // Deprecated spellings, read after the new ones as llama.cpp does.
        fim_pre = or(read("tokenizer.ggml.prefix_token_id", false)?, fim_pre);
        fim_suf = or(read("tokenizer.ggml.suffix_token_id", false)?, fim_suf);
        fim_mid = or(read("tokenizer.ggml.middle_token_id", false)?, fim_mid);
        // Still validate the optional ids' types.
        for key in [
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.seperator_token_id",
            "tokenizer.ggml.padding_token_id",
            "tokenizer.ggml.mask_token_id",
        ] {
            get_id(h, key)?;
        }

        let mut add_bos = get_bool(h, "tokenizer.ggml.add_bos_token")?.unwrap_or(d.add_bos);
        let add_eos = get_bool(h, "tokenizer.ggml.add_eos_token")?.unwrap_or(d.add_eos);
        if d.force_add_bos {
            add_bos = true;
        }
        let add_space_prefix =
            get_bool(h, "tokenizer.ggml.add_space_prefix")?.unwrap_or(d.add_space_prefix);

        // Auto-detection by text, as llama.cpp does for files whose metadata lacks these
        // ids. llama.cpp walks a hash map, so which of several candidates wins is
        // unspecified there; Wisp takes the lowest id. Found tokens become control.
        let find = |cands: &[&str]| cands.iter().filter_map(|c| texts.id(c)).min();
        let mut detected = Vec::new();
        for (slot, cands) in [
            (
                &mut eot,
                &[
                    "<|eot_id|>",
                    "<|im_end|>",
                    "<|end|>",
                    "<end_of_turn>",
                    "<|endoftext|>",
                    "<|end_of_text|>",
                    "<EOT>",
                    "_<EOT>",
                    "[EOT]",
                    "<｜end▁of▁sentence｜>",
                    "<end_of_utterance>",
                ][..],
            ),
            (&mut eom, &["<|eom_id|>"][..]),
            (
                &mut fim_pre,
                &[
                    "<|fim_prefix|>",
                    "<fim-prefix>",
                    "<fim_prefix>",
                    "<｜fim▁begin｜>",
                    "<PRE>",
                    "▁<PRE>",
                    "<|code_prefix|>",
                    "<|prefix|>",
                ][..],
            ),
            (
                &mut fim_suf,
                &[
                    "<|fim_suffix|>",
                    "<fim-suffix>",
                    "<fim_suffix>",
                    "<｜fim▁hole｜>",
                    "<SUF>",
                    "▁<SUF>",
                    "<|code_suffix|>",
                    "<|suffix|>",
                ][..],
            ),
            (
                &mut fim_mid,
                &[
                    "<|fim_middle|>",
                    "<fim-middle>",
                    "<fim_middle>",
                    "<｜fim▁end｜>",
                    "<MID>",
                    "▁<MID>",
                    "<|code_middle|>",
                    "<|middle|>",
                ][..],
            ),
            (
                &mut fim_pad,
                &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"][..],
            ),
            (
                &mut fim_rep,
                &[
                    "<|fim_repo|>",
                    "<|repo_name|>",
                    "<fim-repo>",
                    "<REPO>",
                    "<reponame>",
                ][..],
            ),
            (&mut fim_sep, &["<|file_sep|>"][..]),
        ] {
            if slot.is_none() {
                if let Some(id) = find(cands) {
                    *slot = Some(id);
                    detected.push(id);
                }
            }
        }
        for id in detected {
            attrs[id as usize] |= attr::CONTROL;
        }

        // Control tokens named "unused" are unused.
        for (i, t) in texts.iter().enumerate() {
            if attrs[i] & attr::CONTROL != 0 && t.contains("unused") {
                attrs[i] |= attr::UNUSED;
            }
        }

        // End of generation: the FIM tokens, a list of known texts, EOS/EOT/EOM.
        let mut eog: BTreeSet<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
        const EOG_TEXTS: [&str; 22] = [
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<|return|>",
            "<|call|>",
            "<|flush|>",
            "<|calls|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "</s>",
            "<|eom_id|>",
            "<EOT>",
            "_<EOT>",
            "[EOT]",
            "[EOS]",
            "<|end_of_text|>",
            "<end_of_utterance>",
            "<eos>",
            "<turn|>",
            "<|tool_response>",
            "<｜end▁of▁sentence｜>",
            "[e~[",
        ];
        for t in EOG_TEXTS {
            if let Some(id) = texts.id(t) {
                eog.insert(id);
                attrs[id as usize] |= attr::CONTROL;
            }
        }
        // gpt-oss: these are always rendered (llama.cpp makes them user-defined).
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = texts.id(t) {
                attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        let text_of = |id: u32| &texts[id as usize];
        // o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
        {
            let has = |t: &str| eog.iter().any(|&i| text_of(i) == t);
            let end_id = eog.iter().copied().find(|&i| text_of(i) == "<|end|>");
            if let Some(end_id) = end_id {
                if (has("<|return|>") && (has("<|call|>") || has("<|calls|>")))
                    || ((has("<|call|>") || has("<|calls|>")) && has("<|flush|>"))
                {
                    eog.remove(&end_id);
                    attrs[end_id as usize] = attr::USER_DEFINED;
                }
            }
        }
        // Gemma 4 and PLaMo 2 have an ordinary "</s>".
        {
            let marker = eog
                .iter()
                .any(|&i| matches!(text_of(i), "<|tool_response>" | "<|plamo:eos|>"));
            let s_id = eog.iter().copied().find(|&i| text_of(i) == "</s>");
            if let (true, Some(s_id)) = (marker, s_id) {
                eog.remove(&s_id);
                attrs[s_id as usize] = attr::NORMAL;
            }
        }

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                attrs[i as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        // llama.cpp's std::sort leaves equal lengths in unspecified order; ids break ties.
        specials.sort_by_key(|&i| std::cmp::Reverse(texts[i as usize].len()));

        // Per-model strip attributes that change how special tokens eat whitespace.
        let name = h.get_str("general.name").unwrap_or("").to_ascii_lowercase();
        let pre = h.get_str("tokenizer.ggml.pre").unwrap_or("");
        let arch = h.get_str("general.architecture").unwrap_or("");
        if ["jina-v2-de", "jina-v2-es", "jina-v2-code", "mmbert"]
            .iter()
            .any(|p| pre.contains(p))
            || ["nomic-bert-moe", "jina-bert-v3"]
                .iter()
                .any(|a| arch.contains(a))
        {
            if let Some(id) = texts.id("<mask>") {
                attrs[id as usize] |= attr::LSTRIP;
            }
        } else if name.contains("phi-3") || name.contains("phi3") {
            for &id in &specials {
                attrs[id as usize] |= attr::RSTRIP;
            }
            if let Some(id) = texts.id("</s>") {
                attrs[id as usize] |= attr::RSTRIP;
            }
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(id) = texts.id(t) {
                    attrs[id as usize] &= !attr::RSTRIP;
                }
            }
        }

        Ok(Vocab {
            texts,
            scores,
            attrs,
            bos,
            eos,
            add_bos,
            add_eos,
            add_space_prefix,
            eog,
            specials,
        })
    }

    pub(crate) fn n_tokens(&self) -> usize {
        self.texts.len()
    }

    pub(crate) fn get(&self, text: &str) -> Option<u32> {
        self.texts.id(text)
    }

    pub(crate) fn attr(&self, id: u32) -> u16 {
        self.attrs.get(id as usize).copied().unwrap_or(0)
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("an array of {}", a.type_name()),
        v => v.type_name().to_string(),
    }
}
