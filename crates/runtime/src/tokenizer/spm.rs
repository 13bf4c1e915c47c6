//! SentencePiece-style tokenization as llama.cpp does it for `tokenizer.ggml.model =
//! llama`: start from single characters and repeatedly merge the adjacent pair whose
//! concatenation is the highest-scoring vocabulary entry (ties: leftmost first). Pieces
//! that end up outside the vocabulary fall back to `<0xXX>` byte tokens.
//!
//! Spaces must already be escaped to U+2581 by the caller.

use super::vocab::Vocab;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge; the heap pops the highest score, then the lowest left index.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then(Reverse(self.left).cmp(&Reverse(o.left)))
    }
}

/// The byte-fallback token for `b`: `<0xXX>`, else the byte itself as a one-character
/// token. llama.cpp throws when neither exists; Wisp drops the byte.
pub(crate) fn byte_token(vocab: &Vocab, b: u8) -> Option<u32> {
    vocab.get(&format!("<0x{b:02X}>")).or_else(|| {
        if b.is_ascii() {
            vocab.get(std::str::from_utf8(&[b]).unwrap_or(""))
        } else {
            None
        }
    })
}

pub(crate) fn tokenize(vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    for (start, ch) in text.char_indices() {
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

    let mut heap = BinaryHeap::new();
    let try_add =
        |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (a, b) = (syms[l], syms[r]);
            let piece = &text[a.start..a.start + a.len + b.len];
            if let Some(id) = vocab.get(piece) {
                heap.push(Bigram {
                    score: vocab.scores[id as usize],
                    left: l,
                    right: r,
                    size: piece.len(),
                });
            }
        };
    for i in 1..syms.len() {
        try_add(&mut heap, &syms, Some(i - 1), Some(i));
    }
    while let Some(bg) = heap.pop() {
        let (l, r) = (syms[bg.left], syms[bg.right]);
        // Stale: one side was merged away or grew since this pair was queued.
        if l.len == 0 || r.len == 0 || l.len + r.len != bg.size {
            continue;
        }
        syms[bg.left].len += r.len;
        syms[bg.right].len = 0;
        syms[bg.left].next = r.next;
        if let Some(nx) = r.next {
            syms[nx].prev = Some(bg.left);
        }
        let prev = syms[bg.left].prev;
        let next = syms[bg.left].next;
        try_add(&mut heap, &syms, prev, Some(bg.left));
        try_add(&mut heap, &syms, Some(bg.left), next);
    }

    let mut i = Some(0);
    while let Some(k) = i {
        let s = syms[k];
        let piece = &text[s.start..s.start + s.len];
        match vocab.get(piece) {
            Some(id) => out.push(id),
            // Every merged piece is in the vocabulary, so only single characters land
            // here (llama.cpp's reverse-merge lookup never fires for them either).
            None => out.extend(piece.bytes().filter_map(|b| byte_token(vocab, b))),
        }
        i = s.next;
    }
}
