//! Pre-tokenizers for byte-level BPE: split text into words before merges run.
//!
//! llama.cpp picks a list of regexes per `tokenizer.ggml.pre` and applies them in turn:
//! each regex splits every current chunk into its matches *and* the gaps between them.
//! It then runs each regex in one of three ways, and Wisp reproduces all three, because
//! they disagree with a real Unicode regex engine at the edges:
//!
//! * four common regexes (GPT-2, Llama 3, Qwen 2, Qwen 3.5) and the newline splitter are
//!   hand-written state machines in llama.cpp, with quirks of their own (e.g. `\s+(?!\S)`
//!   is "all but the last whitespace unless the run ends the chunk");
//! * a regex that uses `\p{..}` classes runs on a *collapsed* text where every non-ASCII
//!   code point is replaced by one placeholder per category (and `\p{L}` becomes
//!   "placeholder or A-Za-z"), so e.g. `\p{Lu}` means any letter;
//! * any other regex runs over code points, with non-ASCII whitespace replaced by `\v`
//!   (std::wregex's `\s` is ASCII-only).
//!
//! The category data come from `unicode_table.rs`, generated from the same Unicode
//! version llama.cpp uses (identical tables, checked when generated).

use super::unicode_table as ut;
use fancy_regex::Regex;
use std::ops::Range;

/// Coarse category of a code point, llama.cpp style: one class plus a whitespace bit.
/// `OUT` (position outside the chunk) has no class at all.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Cat {
    class: u8,
    ws: bool,
}

const OUT: Cat = Cat {
    class: 0xFF,
    ws: false,
};

impl Cat {
    fn letter(self) -> bool {
        self.class == ut::LETTER
    }
    fn number(self) -> bool {
        self.class == ut::NUMBER
    }
    fn mark(self) -> bool {
        self.class == ut::MARK
    }
    /// Inside the chunk (llama.cpp's `flags.as_uint() != 0`).
    fn any(self) -> bool {
        self.class != 0xFF
    }
}

/// Unicode `White_Space` (what llama.cpp's splitters call whitespace; note U+001C..U+001F
/// are not in it, unlike Python's `str.isspace`).
pub(crate) fn is_whitespace(c: u32) -> bool {
    matches!(
        c,
        0x09..=0x0D
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

pub(crate) fn class_of(c: u32) -> u8 {
    let runs = &ut::RUNS;
    // Last run whose start is <= c.
    let i = runs.partition_point(|&(start, _)| start <= c);
    if i == 0 {
        ut::UNASSIGNED
    } else {
        runs[i - 1].1
    }
}

fn cat_of(c: char) -> Cat {
    let c = c as u32;
    Cat {
        class: class_of(c),
        ws: is_whitespace(c),
    }
}

/// One step of a pre-tokenizer.
#[derive(Debug)]
enum Step {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// The Llama 3 / Qwen 2 / Qwen 3.5 family: case-insensitive contractions, an optional
    /// non-letter before a letter run, digits in groups of `digits`, punctuation runs that
    /// swallow trailing newlines, newline-ending whitespace runs.
    Llama3Like {
        digits: usize,
        marks_in_words: bool,
    },
    /// `[^\n]+|[\n]+`
    Newlines,
    Regex {
        re: Box<Regex>,
        collapsed: bool,
    },
}

/// A configured pre-tokenizer: the steps of one `tokenizer.ggml.pre`.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    steps: Vec<Step>,
}

/// How one step is written in the pre-tokenizer table.
#[derive(Clone, Copy)]
pub(crate) enum StepSpec {
    Gpt2,
    Llama3,
    Qwen2,
    Qwen35,
    Newlines,
    Re(&'static str),
}

/// `\p{..}` names llama.cpp's collapsing understands, with the class each stands for.
const UCAT_NAMES: [(&str, u8); 10] = [
    ("\\p{N}", ut::NUMBER),
    ("\\p{L}", ut::LETTER),
    ("\\p{P}", ut::PUNCTUATION),
    ("\\p{M}", ut::MARK),
    ("\\p{S}", ut::SYMBOL),
    ("\\p{Lu}", ut::LETTER),
    ("\\p{Ll}", ut::LETTER),
    ("\\p{Lt}", ut::LETTER),
    ("\\p{Lm}", ut::LETTER),
    ("\\p{Lo}", ut::LETTER),
];

/// The placeholder a non-ASCII code point of class `class` collapses to.
fn placeholder(class: u8) -> char {
    match class {
        ut::NUMBER => '\u{D1}',
        ut::LETTER => '\u{D2}',
        ut::PUNCTUATION => '\u{D3}',
        ut::MARK => '\u{D4}',
        ut::SYMBOL => '\u{D5}',
        _ => '\u{D0}',
    }
}

/// Placeholder plus the ASCII members of `class`, as the inside of a character class.
fn collapsed_class_body(class: u8) -> String {
    let mut s = String::new();
    s.push(placeholder(class));
    for b in 0u8..128 {
        if class_of(b as u32) == class {
            s.push_str(&format!("\\x{{{b:02X}}}"));
        }
    }
    s
}

/// Rewrite a regex over `\p{..}` classes into one over the collapsed text.
fn collapse_regex(expr: &str) -> Result<String, String> {
    if !expr.is_ascii() {
        // llama.cpp refuses these too.
        return Err(format!(
            "regex {expr:?} mixes unicode categories and non-ASCII characters"
        ));
    }
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len() * 2);
    let mut inside = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'[' && (i == 0 || b[i - 1] != b'\\') {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && c == b']' && b[i - 1] != b'\\' {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if c == b'\\' && b.get(i + 1) == Some(&b'p') && b.get(i + 2) == Some(&b'{') {
            let close = expr[i..].find('}').map(|p| p + i);
            let name = close.map(|e| &expr[i..=e]);
            match name.and_then(|n| UCAT_NAMES.iter().find(|(k, _)| *k == n)) {
                Some(&(n, class)) => {
                    if !inside {
                        out.push('[');
                    }
                    out.push_str(&collapsed_class_body(class));
                    if !inside {
                        out.push(']');
                    }
                    i += n.len();
                    continue;
                }
                None => {
                    return Err(format!(
                    "regex {expr:?} uses a unicode class llama.cpp's regex fallback cannot express"
                ))
                }
            }
        }
        out.push(c as char);
        i += 1;
    }
    Ok(out)
}

impl PreTokenizer {
    pub(crate) fn new(specs: &[StepSpec]) -> Result<PreTokenizer, String> {
        let mut steps = Vec::with_capacity(specs.len());
        for spec in specs {
            steps.push(match *spec {
                StepSpec::Gpt2 => Step::Gpt2,
                StepSpec::Llama3 => Step::Llama3Like {
                    digits: 3,
                    marks_in_words: false,
                },
                StepSpec::Qwen2 => Step::Llama3Like {
                    digits: 1,
                    marks_in_words: false,
                },
                StepSpec::Qwen35 => Step::Llama3Like {
                    digits: 1,
                    marks_in_words: true,
                },
                StepSpec::Newlines => Step::Newlines,
                StepSpec::Re(expr) => {
                    let collapsed = UCAT_NAMES.iter().any(|(n, _)| expr.contains(n));
                    let pattern = if collapsed {
                        collapse_regex(expr)?
                    } else {
                        expr.to_string()
                    };
                    let re = Regex::new(&pattern)
                        .map_err(|e| format!("regex {expr:?} does not compile: {e}"))?;
                    Step::Regex {
                        re: Box::new(re),
                        collapsed,
                    }
                }
            });
        }
        Ok(PreTokenizer { steps })
    }

    /// Split `text` into words (char ranges into `cps`).
    pub(crate) fn split(&self, cps: &[char]) -> Vec<Range<usize>> {
        let mut chunks: Vec<Range<usize>> = Vec::new();
        if !cps.is_empty() {
            chunks.push(0..cps.len());
        }
        for step in &self.steps {
            let mut next = Vec::with_capacity(chunks.len() * 2);
            for chunk in chunks {
                match step {
                    Step::Gpt2 => split_gpt2(cps, chunk, &mut next),
                    Step::Llama3Like {
                        digits,
                        marks_in_words,
                    } => split_llama3(cps, chunk, *digits, *marks_in_words, &mut next),
                    Step::Newlines => split_newlines(cps, chunk, &mut next),
                    Step::Regex { re, collapsed } => {
                        split_regex(re, *collapsed, cps, chunk, &mut next)
                    }
                }
            }
            chunks = next;
        }
        chunks
    }
}

/// Accessors for one chunk: positions outside it read as "no character".
struct Chunk<'a> {
    cps: &'a [char],
    range: Range<usize>,
}

impl Chunk<'_> {
    fn cp(&self, pos: usize) -> Option<char> {
        if self.range.contains(&pos) {
            Some(self.cps[pos])
        } else {
            None
        }
    }
    fn cat(&self, pos: usize) -> Cat {
        self.cp(pos).map_or(OUT, cat_of)
    }
}

/// Emits words [prev_end, end) as the splitter advances.
struct Emit<'a> {
    prev_end: usize,
    out: &'a mut Vec<Range<usize>>,
}

impl Emit<'_> {
    fn to(&mut self, end: usize) -> usize {
        let len = end.saturating_sub(self.prev_end);
        if len > 0 {
            self.out.push(self.prev_end..end);
        }
        self.prev_end = end;
        len
    }
}

fn split_gpt2(cps: &[char], range: Range<usize>, out: &mut Vec<Range<usize>>) {
    let c = Chunk {
        cps,
        range: range.clone(),
    };
    let end = range.end;
    let mut emit = Emit {
        prev_end: range.start,
        out,
    };
    let mut pos = range.start;
    while pos < end {
        let cp = c.cp(pos);
        // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive here)
        if cp == Some('\'') && pos + 1 < end {
            let n1 = c.cp(pos + 1);
            if matches!(n1, Some('s' | 't' | 'm' | 'd')) {
                pos += emit.to(pos + 2);
                continue;
            }
            if pos + 2 < end {
                let n2 = c.cp(pos + 2);
                if matches!(
                    (n1, n2),
                    (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
                ) {
                    pos += emit.to(pos + 3);
                    continue;
                }
            }
        }
        let space = cp == Some(' ');
        let f2 = if space { c.cat(pos + 1) } else { c.cat(pos) };
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let run: Option<fn(Cat) -> bool> = if f2.letter() {
            Some(Cat::letter)
        } else if f2.number() {
            Some(Cat::number)
        } else if !(f2.ws || f2.letter() || f2.number()) && f2.any() {
            Some(|f: Cat| !(f.ws || f.letter() || f.number()) && f.any())
        } else {
            None
        };
        if let Some(pred) = run {
            pos += space as usize;
            while pred(c.cat(pos)) {
                pos += 1;
            }
            emit.to(pos);
            continue;
        }
        let mut n_ws = 0;
        while c.cat(pos + n_ws).ws {
            n_ws += 1;
        }
        // \s+(?!\S): leave the last whitespace to prefix the next word, unless the run
        // ends the chunk.
        if n_ws > 1 && c.cp(pos + n_ws).is_some() {
            pos += n_ws - 1;
            emit.to(pos);
            continue;
        }
        if n_ws > 0 {
            pos += n_ws;
            emit.to(pos);
            continue;
        }
        pos += 1;
        emit.to(pos);
    }
}

fn split_llama3(
    cps: &[char],
    range: Range<usize>,
    digits: usize,
    marks_in_words: bool,
    out: &mut Vec<Range<usize>>,
) {
    let c = Chunk {
        cps,
        range: range.clone(),
    };
    let end = range.end;
    let mut emit = Emit {
        prev_end: range.start,
        out,
    };
    let word = |f: Cat| f.letter() || (marks_in_words && f.mark());
    let lower = |x: Option<char>| x.map(|ch| ch.to_ascii_lowercase());
    let mut pos = range.start;
    while pos < end {
        let cp = c.cp(pos);
        let f = c.cat(pos);
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if cp == Some('\'') && pos + 1 < end {
            let n1 = lower(c.cp(pos + 1));
            if matches!(n1, Some('s' | 't' | 'm' | 'd')) {
                pos += emit.to(pos + 2);
                continue;
            }
            if pos + 2 < end {
                let n2 = lower(c.cp(pos + 2));
                if matches!(
                    (n1, n2),
                    (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
                ) {
                    pos += emit.to(pos + 3);
                    continue;
                }
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+  (Qwen 3.5: [\p{L}\p{M}]+)
        if !(cp == Some('\r') || cp == Some('\n') || f.number())
            && (word(f) || word(c.cat(pos + 1)))
        {
            pos += 1;
            while word(c.cat(pos)) {
                pos += 1;
            }
            emit.to(pos);
            continue;
        }
        // \p{N}{1,3} or \p{N}
        if f.number() {
            let mut ini = pos;
            while c.cat(pos).number() {
                pos += 1;
                if pos - ini >= digits {
                    emit.to(pos);
                    ini = pos;
                }
            }
            emit.to(pos);
            continue;
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`. llama.cpp tests the in-chunk condition on the
        // first character, not the one after the optional space; same here.
        let space = cp == Some(' ');
        let not_word = |g: Cat| !(g.ws || g.letter() || g.number() || (marks_in_words && g.mark()));
        let mut f2 = if space { c.cat(pos + 1) } else { f };
        if not_word(f2) && f.any() {
            pos += space as usize;
            while not_word(f2) && f2.any() {
                pos += 1;
                f2 = c.cat(pos);
            }
            while matches!(c.cp(pos), Some('\r' | '\n')) {
                pos += 1;
            }
            emit.to(pos);
            continue;
        }
        let mut n_ws = 0;
        let mut last_rn_end = 0;
        while c.cat(pos + n_ws).ws {
            if matches!(c.cp(pos + n_ws), Some('\r' | '\n')) {
                last_rn_end = pos + n_ws + 1;
            }
            n_ws += 1;
        }
        // \s*[\r\n]+
        if last_rn_end > 0 {
            pos = last_rn_end;
            emit.to(pos);
            continue;
        }
        // \s+(?!\S)
        if n_ws > 1 && c.cp(pos + n_ws).is_some() {
            pos += n_ws - 1;
            emit.to(pos);
            continue;
        }
        if n_ws > 0 {
            pos += n_ws;
            emit.to(pos);
            continue;
        }
        pos += 1;
        emit.to(pos);
    }
}

fn split_newlines(cps: &[char], range: Range<usize>, out: &mut Vec<Range<usize>>) {
    let mut pos = range.start;
    while pos < range.end {
        let nl = cps[pos] == '\n';
        let start = pos;
        while pos < range.end && (cps[pos] == '\n') == nl {
            pos += 1;
        }
        out.push(start..pos);
    }
}

fn split_regex(
    re: &Regex,
    collapsed: bool,
    cps: &[char],
    range: Range<usize>,
    out: &mut Vec<Range<usize>>,
) {
    // The haystack has one char per code point; remember each char's byte offset so
    // match offsets map back to code point indices.
    let mut hay = String::with_capacity(range.len());
    let mut byte_to_idx = Vec::with_capacity(range.len() + 1);
    for (idx, &ch) in cps[range.clone()].iter().enumerate() {
        let mapped = if (ch as u32) < 128 {
            ch
        } else if is_whitespace(ch as u32) {
            '\u{0B}'
        } else if collapsed {
            placeholder(class_of(ch as u32))
        } else {
            ch
        };
        for _ in 0..mapped.len_utf8() {
            byte_to_idx.push(idx);
        }
        hay.push(mapped);
    }
    let n_chars = range.len();
    byte_to_idx.push(n_chars);
    // byte_to_idx[b] is the char index of the char containing byte b; match bounds are
    // always on char boundaries, so this is exact there.
    let to_idx = |b: usize| {
        if b >= hay.len() {
            n_chars
        } else {
            byte_to_idx[b]
        }
    };
    let base = range.start;
    let mut last = 0;
    for m in re.find_iter(&hay) {
        // A backtracking limit (pathological input) ends the matching; the rest of the
        // chunk stays one word rather than failing the whole encode.
        let Ok(m) = m else { break };
        let (s, e) = (to_idx(m.start()), to_idx(m.end()));
        if e == s {
            continue;
        }
        if s > last {
            out.push(base + last..base + s);
        }
        out.push(base + s..base + e);
        last = e;
    }
    if last < n_chars {
        out.push(base + last..base + n_chars);
    }
}

/// GPT-2's byte-to-unicode map: printable Latin-1 bytes map to themselves, the others to
/// U+0100 and up in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
            c
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(specs: &[StepSpec], text: &str) -> Vec<String> {
        let p = PreTokenizer::new(specs).unwrap();
        let cps: Vec<char> = text.chars().collect();
        p.split(&cps)
            .into_iter()
            .map(|r| cps[r].iter().collect())
            .collect()
    }

    #[test]
    fn gpt2_splits() {
        assert_eq!(
            words(&[StepSpec::Gpt2], "Hello world's  end 123!!"),
            ["Hello", " world", "'s", " ", " end", " 123", "!!"]
        );
    }

    #[test]
    fn llama3_splits() {
        assert_eq!(
            words(&[StepSpec::Llama3], "I'M 12345 ok\n\n  x"),
            ["I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x"]
        );
    }

    #[test]
    fn regex_collapsed() {
        assert_eq!(
            words(&[StepSpec::Re(r"\p{N}")], "a12é3"),
            ["a", "1", "2", "é", "3"]
        );
    }

    #[test]
    fn categories() {
        assert_eq!(class_of('a' as u32), ut::LETTER);
        assert_eq!(class_of('é' as u32), ut::LETTER);
        assert_eq!(class_of('7' as u32), ut::NUMBER);
        assert_eq!(class_of(0x301), ut::MARK);
        assert_eq!(class_of(0x10FFFF), ut::UNASSIGNED);
    }

    #[test]
    fn byte_table() {
        let t = byte_to_char_table();
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
    }
}
