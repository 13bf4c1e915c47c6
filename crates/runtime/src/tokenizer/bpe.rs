//! Byte-level BPE with ranked merges, as llama.cpp runs it per pre-tokenized word: merge
//! the adjacent pair with the lowest merge rank (ties: leftmost) until none applies; a
//! final piece outside the vocabulary becomes its single-byte tokens (or is dropped, as
//! in llama.cpp, when those do not exist either).

use super::vocab::{err, Vocab};
use crate::gguf::{Array, GgufHeader};
use crate::Error;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

#[derive(Debug)]
pub(crate) struct Merges {
    /// Interned merge halves: text -> small id.
    parts: HashMap<String, u32>,
    /// (left part, right part) -> rank; the first occurrence of a pair wins.
    ranks: HashMap<(u32, u32), u32>,
}

impl Merges {
    pub(crate) fn load(h: &GgufHeader) -> Result<Merges, Error> {
        let list = match h.get_array("tokenizer.ggml.merges") {
            Some(Array::String(v)) => v,
            Some(a) => {
                return Err(err(format!(
                    "tokenizer.ggml.merges must be an array of strings, found {}",
                    a.type_name()
                )))
            }
            None => return Err(err("BPE vocabulary without tokenizer.ggml.merges")),
        };
        let mut parts = HashMap::new();
        let mut ranks = HashMap::with_capacity(list.len());
        for (rank, m) in list.iter().enumerate() {
            // Split at the first space after the first byte (a merge may start with a
            // space-like char in non-byte-encoded vocabularies). A line without one is
            // an empty pair in llama.cpp, which can never match: skip it.
            let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (a, b) = (&m[..pos], &m[pos + 1..]);
            let mut intern = |s: &str| {
                let next = parts.len() as u32;
                *parts.entry(s.to_string()).or_insert(next)
            };
            let key = (intern(a), intern(b));
            ranks.entry(key).or_insert(rank as u32);
        }
        Ok(Merges { parts, ranks })
    }

    fn rank(&self, a: &str, b: &str) -> Option<u32> {
        let a = *self.parts.get(a)?;
        let b = *self.parts.get(b)?;
        self.ranks.get(&(a, b)).copied()
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// How unknown final pieces fall back to bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ByteFallback {
    /// GPT-2 byte-level text: each (ASCII) byte of the piece looked up as a token.
    Raw,
    /// SentencePiece-style `<0xXX>` tokens (Gemma 4).
    Hex,
}

/// Tokenize one pre-tokenized (and, for byte-level BPE, byte-encoded) word.
pub(crate) fn tokenize_word(
    vocab: &Vocab,
    merges: &Merges,
    word: &str,
    ignore_merges: bool,
    fallback: ByteFallback,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges {
        if let Some(id) = vocab.get(word) {
            out.push(id);
            return;
        }
    }
    let mut syms: Vec<Sym> = Vec::with_capacity(word.len());
    for (start, ch) in word.char_indices() {
        let i = syms.len();
        syms.push(Sym {
            start,
            len: ch.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
        if i > 0 {
            syms[i - 1].next = Some(i);
        }
    }
    // (rank, left) ascending; right and the pair's byte size ride along.
    let mut heap: BinaryHeap<Reverse<(u32, usize, usize, usize)>> = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<_>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let (a, b): (Sym, Sym) = (syms[l], syms[r]);
        let ta = &word[a.start..a.start + a.len];
        let tb = &word[b.start..b.start + b.len];
        if let Some(rank) = merges.rank(ta, tb) {
            heap.push(Reverse((rank, l, r, a.len + b.len)));
        }
    };
    for i in 1..syms.len() {
        try_add(&mut heap, &syms, Some(i - 1), Some(i));
    }
    while let Some(Reverse((_, li, ri, size))) = heap.pop() {
        let (l, r) = (syms[li], syms[ri]);
        // Symbols only grow rightwards, so "same text as when queued" is "same sizes".
        if l.len == 0 || r.len == 0 || l.len + r.len != size {
            continue;
        }
        syms[li].len += r.len;
        syms[ri].len = 0;
        syms[li].next = r.next;
        if let Some(nx) = r.next {
            syms[nx].prev = Some(li);
        }
        let (prev, next) = (syms[li].prev, syms[li].next);
        try_add(&mut heap, &syms, prev, Some(li));
        try_add(&mut heap, &syms, Some(li), next);
    }
    let mut i = Some(0);
    while let Some(k) = i {
        let s = syms[k];
        let piece = &word[s.start..s.start + s.len];
        match vocab.get(piece) {
            Some(id) => out.push(id),
            None => {
                for b in piece.bytes() {
                    let id = match fallback {
                        // A lone byte >= 0x80 is not a string any token could have.
                        ByteFallback::Raw if b.is_ascii() => {
                            vocab.get(std::str::from_utf8(&[b]).unwrap_or(""))
                        }
                        ByteFallback::Raw => None,
                        ByteFallback::Hex => vocab.get(&format!("<0x{b:02X}>")),
                    };
                    out.extend(id);
                }
            }
        }
        i = s.next;
    }
}
