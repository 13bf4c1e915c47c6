//! Source rewrites that give jinja2 semantics minijinja has no switch for.
//!
//! * `{% for x in EXPR %}` becomes `{% for x in __wisp_iter(EXPR) %}`: jinja2 raises a
//!   `TypeError` when a template iterates `None` (e.g. a tool-use template run without
//!   tools), minijinja iterates it as empty. Templates rely on the error: a prompt with
//!   a silently empty tool list is the wrong prompt.
//! * HF's `{% generation %}…{% endgeneration %}` (marks assistant text for training
//!   masks, renders its body unchanged) becomes `{% if true %}…{% endif %}`, keeping
//!   whitespace-control markers so trimming is unchanged.
//!
//! The scanner follows jinja2's lexer: template data, `{# comments #}`, `{{ … }}` and
//! `{% … %}` with string literals and bracket nesting, and `{% raw %}` bodies, so text
//! that only looks like a tag (inside a string or a raw block) is left alone. Rewrites
//! stay on the tag's line, so error line numbers still point at the template source.

/// The global the rewritten `for` loops call.
pub(crate) const ITER_FN: &str = "__wisp_iter";

pub(crate) fn rewrite(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = String::with_capacity(source.len() + 64);
    let mut copied = 0; // source[..copied] is in `out`
    let mut i = 0;
    while let Some(j) = find_open(b, i) {
        match b[j + 1] {
            b'#' => i = find(b, j + 2, b"#}").map_or(b.len(), |e| e + 2),
            b'{' => i = scan_code(b, j + 2, b'}').map_or(b.len(), |e| e + 2),
            _ => {
                let Some(close) = scan_code(b, j + 2, b'%') else {
                    break;
                };
                i = close + 2;
                // Tag body without whitespace-control markers.
                let mut start = j + 2;
                if matches!(b.get(start), Some(b'-' | b'+')) {
                    start += 1;
                }
                let mut end = close;
                if end > start && matches!(b[end - 1], b'-' | b'+') {
                    end -= 1;
                }
                let body = &source[start..end];
                let word = first_word(body);
                let replacement = match word {
                    "raw" => {
                        // Skip to after `{% endraw %}`: nothing inside is a tag.
                        i = find_endraw(source, i).unwrap_or(b.len());
                        None
                    }
                    "for" => rewrite_for(body),
                    "generation" => Some(body.replacen("generation", "if true", 1)),
                    "endgeneration" => Some(body.replacen("endgeneration", "endif", 1)),
                    _ => None,
                };
                if let Some(new_body) = replacement {
                    out.push_str(&source[copied..start]);
                    out.push_str(&new_body);
                    copied = end;
                }
            }
        }
    }
    out.push_str(&source[copied..]);
    out
}

/// Next `{{`, `{%` or `{#` at or after `i`.
fn find_open(b: &[u8], mut i: usize) -> Option<usize> {
    while i + 1 < b.len() {
        if b[i] == b'{' && matches!(b[i + 1], b'{' | b'%' | b'#') {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Scan expression code from `i` to the closing `}}` / `%}` (returns the index of its
/// first byte), skipping string literals and bracketed sub-expressions.
fn scan_code(b: &[u8], mut i: usize, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => i = skip_string(b, i, q),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' if close == b'}' && depth == 0 && b.get(i + 1) == Some(&b'}') => return Some(i),
            b'}' => depth = depth.saturating_sub(1),
            b'%' if close == b'%' && depth == 0 && b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the closing quote of the string literal opening at `i`.
fn skip_string(b: &[u8], mut i: usize, quote: u8) -> usize {
    i += 1;
    while i < b.len() && b[i] != quote {
        if b[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    i.min(b.len())
}

fn first_word(body: &str) -> &str {
    let t = body.trim_start();
    let n = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    &t[..n]
}

fn find_endraw(source: &str, from: usize) -> Option<usize> {
    let b = source.as_bytes();
    let mut i = from;
    while let Some(j) = find(b, i, b"{%") {
        let close = find(b, j + 2, b"%}")?;
        let body = source[j + 2..close].trim_matches(|c: char| c == '-' || c == '+');
        if first_word(body) == "endraw" {
            return Some(close + 2);
        }
        i = close + 2;
    }
    None
}

/// `for TARGET in ITER [if COND] [recursive]` with ITER wrapped in the strict-iteration
/// call. jinja2 parses ITER without conditional expressions, so the first top-level
/// `if` or `recursive` ends it.
fn rewrite_for(body: &str) -> Option<String> {
    let b = body.as_bytes();
    let mut depth = 0usize;
    let mut iter_start = None;
    let mut iter_end = b.len();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => i = skip_string(b, i, q),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            c if depth == 0 && (c.is_ascii_alphabetic() || c == b'_') => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &body[start..i];
                match (iter_start, word) {
                    (None, "in") => iter_start = Some(i),
                    (Some(_), "if" | "recursive") => {
                        iter_end = start;
                        break;
                    }
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let start = iter_start?;
    let expr = body[start..iter_end].trim();
    if expr.is_empty() {
        return None; // a syntax error: let the parser report it
    }
    Some(format!(
        "{} {ITER_FN}({expr}) {}",
        &body[..start],
        &body[iter_end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_for_iterables_only() {
        assert_eq!(
            rewrite("a{%- for m in messages[1:] if m.role != 'x' -%}{{ m }}{% endfor %}"),
            "a{%- for m in __wisp_iter(messages[1:]) if m.role != 'x' -%}{{ m }}{% endfor %}"
        );
        assert_eq!(
            rewrite("{% for k, v in d.items() recursive %}"),
            "{% for k, v in __wisp_iter(d.items()) recursive %}"
        );
        assert_eq!(
            rewrite("{% for x in {'a': '%}'} %}"),
            "{% for x in __wisp_iter({'a': '%}'}) %}"
        );
        for untouched in [
            "{{ '{% for x in y %}' }}",
            "{# {% for x in y %} #}",
            "{% raw %}{% for x in y %}{% endraw %}",
            "{% if info %}{% endif %}",
            "{% for x in %}",
        ] {
            assert_eq!(rewrite(untouched), untouched);
        }
    }

    #[test]
    fn rewrites_generation_tags() {
        assert_eq!(
            rewrite("{%- generation -%}x{% endgeneration %}"),
            "{%- if true -%}x{% endif %}"
        );
    }
}
