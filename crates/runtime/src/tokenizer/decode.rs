//! Ids back to bytes and text: token pieces (`llama_token_to_piece`), whole-sequence
//! detokenization (`llama_detokenize`, including its odd space clean-up) and a streaming
//! decoder that never emits half a UTF-8 character.

use super::vocab::{attr, Vocab};
use super::Tokenizer;

/// How normal tokens' text becomes bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PieceStyle {
    /// SentencePiece: U+2581 is a space.
    Spm,
    /// Byte-level BPE: each char stands for one byte (GPT-2's byte map).
    ByteLevel,
    /// BPE over raw UTF-8 with U+2581 for spaces (Gemma 4).
    BpeEscaped,
}

/// Every token's piece as llama.cpp renders it with `special = true`, in one buffer.
#[derive(Debug)]
pub(crate) struct Pieces {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Pieces {
    pub(crate) fn build(vocab: &Vocab, style: PieceStyle) -> Pieces {
        let mut char_to_byte = std::collections::HashMap::new();
        for (b, c) in super::pretokenize::byte_to_char_table().iter().enumerate() {
            char_to_byte.insert(*c, b as u8);
        }
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(vocab.n_tokens());
        for (id, text) in vocab.texts.iter().enumerate() {
            let a = vocab.attrs[id];
            if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                bytes.extend_from_slice(text.as_bytes());
            } else if a & attr::NORMAL != 0 {
                match style {
                    PieceStyle::Spm | PieceStyle::BpeEscaped => {
                        bytes.extend_from_slice(text.replace('\u{2581}', " ").as_bytes())
                    }
                    PieceStyle::ByteLevel => {
                        for c in text.chars() {
                            match char_to_byte.get(&c) {
                                Some(&b) => bytes.push(b),
                                None => {
                                    // llama.cpp's marker for a char outside the byte map
                                    // (it appends the whole token text, oddly).
                                    let mut buf = [0u8; 4];
                                    bytes.extend_from_slice(b"[UNK_BYTE_0x");
                                    for u in c.encode_utf8(&mut buf).bytes() {
                                        bytes.extend_from_slice(format!("{u:02x}").as_bytes());
                                    }
                                    bytes.extend_from_slice(text.as_bytes());
                                    bytes.push(b']');
                                }
                            }
                        }
                    }
                }
            } else if a & attr::BYTE != 0 {
                // "<0xXX>"
                if let Some(b) = text.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    bytes.push(b);
                }
            }
            // Unused and undefined tokens render as nothing.
            ends.push(bytes.len() as u32);
        }
        Pieces { bytes, ends }
    }

    pub(crate) fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        let Some(&end) = self.ends.get(i) else {
            return &[];
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start as usize..end as usize]
    }
}

/// The piece of `id`, empty for control/unknown tokens unless `special`, and for ids
/// outside the vocabulary.
pub(crate) fn piece(tok: &Tokenizer, id: u32, special: bool) -> &[u8] {
    let a = tok.vocab.attr(id);
    if !special && a & (attr::UNKNOWN | attr::CONTROL) != 0 {
        return &[];
    }
    tok.pieces.get(id)
}

/// `llama_detokenize(remove_special = false, unparse_special = special)`.
pub(crate) fn detokenize(tok: &Tokenizer, ids: &[u32], special: bool) -> Vec<u8> {
    let mut out = Vec::new();
    // SentencePiece with add_space_prefix: the first piece loses one leading space
    // (even when that first token is BOS and renders as nothing).
    let mut strip = tok.vocab.add_space_prefix;
    for &id in ids {
        let p = piece(tok, id, special);
        let p = if strip && p.first() == Some(&b' ') {
            &p[1..]
        } else {
            p
        };
        strip = false;
        out.extend_from_slice(p);
    }
    if tok.clean_spaces {
        clean_up_spaces(&mut out);
    }
    out
}

/// llama.cpp's `clean_spaces` pass (the tokenizers library's
/// `clean_up_tokenization_spaces`), three in-place passes over the bytes:
/// drop the space before `? ! . ,`; turn ` ' ` into `'`; drop the space before `'s`,
/// `'m`, `'re`, `'ve`. Reproduced exactly, including its quirk that the byte after a
/// ` ' ` is overwritten with NUL before the next comparison reads it.
fn clean_up_spaces(t: &mut Vec<u8>) {
    // Pass 1.
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
    // Pass 2.
    let n = t.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = t[i];
        if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0;
        }
        t[total] = x;
        total += 1;
        i += 1;
    }
    t.truncate(total);
    // Pass 3.
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            // " 's", " 'm", " 're", " 've" lose the space; " 't", " 'd", " 'll" keep it.
            let x1 = t[i + 1];
            if matches!(x1, b's' | b'm')
                || (matches!(x1, b'r' | b'v') && i + 2 < n && t[i + 2] == b'e')
            {
                total -= 1;
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
}

/// Turns a stream of token ids into text, holding back the bytes of a UTF-8 character
/// until it is complete. Pieces are concatenated as generated: no leading-space strip
/// and no space clean-up (those apply to whole-sequence [`Tokenizer::decode`]).
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    render_special: bool,
    pending: Vec<u8>,
}

impl<'a> StreamDecoder<'a> {
    pub fn new(tok: &'a Tokenizer, render_special: bool) -> StreamDecoder<'a> {
        StreamDecoder {
            tok,
            render_special,
            pending: Vec::new(),
        }
    }

    /// Add one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        self.pending
            .extend_from_slice(piece(self.tok, id, self.render_special));
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix was just validated.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or(""));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Invalid bytes can never complete: replace them now.
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Flush what is left (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::clean_up_spaces;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_up_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_spaces_passes() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(
            clean("it 's I 'm we 're they 've don 't"),
            "it's I'm we're they've don 't"
        );
        assert_eq!(clean(""), "");
    }
}
