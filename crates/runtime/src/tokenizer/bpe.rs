//! Byte-level BPE with ranked merges, as llama.cpp runs it per pre-tokenized word: merge
//! the adjacent pair with the lowest merge rank (ties: leftmost) until none applies; a
//! final piece outside the vocabulary becomes its single-byte tokens (or is dropped, as
//! in llama.cpp, when those do not exist either).

use super::vocab::{err, Vocab};
use crate::gguf::{Array, GgufHeader, Strings};
use crate::Error;
use hashbrown::hash_table::{Entry, HashTable};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// The ranked merges: the header's merge lines themselves (shared, not copied) and a
/// table of ranks hashed by the pair's two halves, so a lookup hashes the halves as they
/// are and no merge text is stored twice (SmolLM2's 48,900 merges: ~0.3 MB of table where
/// interned halves plus a pair map took ~1.3 MB).
pub(crate) struct Merges {
    /// `tokenizer.ggml.merges`: line `rank` is "left right".
    lines: Strings,
    /// Ranks of the usable lines; the first occurrence of a pair wins.
    ranks: HashTable<u32>,
    hasher: RandomState,
}

impl std::fmt::Debug for Merges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Merges({} ranked)", self.ranks.len())
    }
}

/// A merge line's two halves: split at the first space after the first byte (a merge may
/// start with a space-like char in non-byte-encoded vocabularies). A line without one is
/// an empty pair in llama.cpp, which can never match.
fn halves(line: &str) -> Option<(&str, &str)> {
    let pos = line.bytes().skip(1).position(|b| b == b' ')? + 1;
    Some((&line[..pos], &line[pos + 1..]))
}

fn pair_hash(hasher: &RandomState, a: &str, b: &str) -> u64 {
    let mut h = hasher.build_hasher();
    // Length-prefixed, so ("ab", "c") and ("a", "bc") hash apart.
    h.write_usize(a.len());
    h.write(a.as_bytes());
    h.write(b.as_bytes());
    h.finish()
}

impl Merges {
    pub(crate) fn load(h: &GgufHeader) -> Result<Merges, Error> {
        let lines = match h.get_array("tokenizer.ggml.merges") {
            Some(Array::String(v)) => v.clone(),
            Some(a) => {
                return Err(err(format!(
                    "tokenizer.ggml.merges must be an array of strings, found {}",
                    a.type_name()
                )))
            }
            None => return Err(err("BPE vocabulary without tokenizer.ggml.merges")),
        };
        if lines.len() > u32::MAX as usize {
            return Err(err("too many merges"));
        }
        let hasher = RandomState::new();
        let mut ranks = HashTable::with_capacity(lines.len());
        for (rank, line) in lines.iter().enumerate() {
            let Some((a, b)) = halves(line) else { continue };
            let entry = ranks.entry(
                pair_hash(&hasher, a, b),
                |&r: &u32| halves(&lines[r as usize]) == Some((a, b)),
                |&r: &u32| {
                    let (a, b) = halves(&lines[r as usize]).expect("ranked lines split");
                    pair_hash(&hasher, a, b)
                },
            );
            if let Entry::Vacant(e) = entry {
                e.insert(rank as u32);
            }
        }
        Ok(Merges {
            lines,
            ranks,
            hasher,
        })
    }

    fn rank(&self, a: &str, b: &str) -> Option<u32> {
        let lines = &self.lines;
        self.ranks
            .find(pair_hash(&self.hasher, a, b), |&r| {
                halves(&lines[r as usize]) == Some((a, b))
            })
            .copied()
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
