//! Python's view of template values: `json.dumps` (what Hugging Face's `tojson` filter
//! calls) and `str()`/`repr()` (what jinja2 prints for `{{ value }}` and `|string`).
//!
//! Chat templates were written against Python jinja2, so a value must print the way
//! Python prints it: `None`/`True` rather than minijinja's `none`/`true`, `['a', 'b']`
//! for lists, `1e+16` for large floats, JSON with `", "`/`": "` separators and key order
//! kept. Everything here walks minijinja values directly, never through serde, so map
//! order is the order the template (or the caller's JSON) gave.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Maximum nesting `dumps`/`repr` follow; deeper values (only constructible on purpose)
/// are an error rather than a stack overflow.
const MAX_DEPTH: usize = 256;

/// Options of Python's `json.dumps` that HF's `tojson` exposes.
pub(crate) struct DumpOptions {
    pub ensure_ascii: bool,
    /// `None`: everything on one line. `Some(s)`: newline plus `s` repeated per level.
    pub indent: Option<String>,
    pub item_sep: String,
    pub key_sep: String,
    pub sort_keys: bool,
}

impl DumpOptions {
    /// `json.dumps` defaults given an indent: separators are `(", ", ": ")` without an
    /// indent and `(",", ": ")` with one.
    pub fn new(ensure_ascii: bool, indent: Option<String>, sort_keys: bool) -> DumpOptions {
        let item_sep = if indent.is_some() { "," } else { ", " };
        DumpOptions {
            ensure_ascii,
            indent,
            item_sep: item_sep.to_string(),
            key_sep: ": ".to_string(),
            sort_keys,
        }
    }
}

fn type_error(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("Object of type {what} is not JSON serializable"),
    )
}

/// `json.dumps(value, ...)`.
pub(crate) fn dumps(value: &Value, opts: &DumpOptions) -> Result<String, Error> {
    let mut out = String::new();
    dump_value(value, opts, 0, &mut out)?;
    Ok(out)
}

fn newline_indent(opts: &DumpOptions, level: usize, out: &mut String) {
    if let Some(ind) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(ind);
        }
    }
}

fn dump_value(
    value: &Value,
    opts: &DumpOptions,
    level: usize,
    out: &mut String,
) -> Result<(), Error> {
    if level > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "maximum recursion depth exceeded while encoding a JSON object",
        ));
    }
    match value.kind() {
        ValueKind::Undefined => return Err(type_error("Undefined")),
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&number_repr(value, true)),
        ValueKind::String => dump_str(value.as_str().unwrap_or_default(), opts.ensure_ascii, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline_indent(opts, level + 1, out);
                dump_value(item, opts, level + 1, out)?;
            }
            newline_indent(opts, level, out);
            out.push(']');
        }
        ValueKind::Map => {
            let mut pairs = Vec::new();
            for key in value.try_iter()? {
                let v = value.get_item(&key)?;
                pairs.push((json_key(&key)?, v));
            }
            if opts.sort_keys {
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            if pairs.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline_indent(opts, level + 1, out);
                dump_str(k, opts.ensure_ascii, out);
                out.push_str(&opts.key_sep);
                dump_value(v, opts, level + 1, out)?;
            }
            newline_indent(opts, level, out);
            out.push('}');
        }
        ValueKind::Bytes => return Err(type_error("bytes")),
        _ => return Err(type_error(&format!("{}", value.kind()))),
    }
    Ok(())
}

/// Python converts `None`, booleans and numbers used as dict keys to strings.
fn json_key(key: &Value) -> Result<String, Error> {
    Ok(match key.kind() {
        ValueKind::String => key.as_str().unwrap_or_default().to_string(),
        ValueKind::None => "null".into(),
        ValueKind::Bool => (if key.is_true() { "true" } else { "false" }).into(),
        ValueKind::Number => number_repr(key, true),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "keys must be str, int, float, bool or None, not {}",
                    key.kind()
                ),
            ))
        }
    })
}

/// A JSON string literal as Python's encoder writes it: only `"`, `\` and control
/// characters are escaped (plus all non-ASCII when `ensure_ascii`).
fn dump_str(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as Python prints it. `json` selects `json.dumps` spelling of the
/// non-finite floats (`NaN`, `Infinity`) over `repr`'s (`nan`, `inf`).
pub(crate) fn number_repr(value: &Value, json: bool) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) => float_repr(f, json),
        Err(_) => value.to_string(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, scientific notation below 1e-4
/// and from 1e16 on, always a `.0` or exponent so it reads back as a float.
pub(crate) fn float_repr(f: f64, json: bool) -> String {
    if f.is_nan() {
        return if json { "NaN" } else { "nan" }.into();
    }
    if f.is_infinite() {
        let s = if json { "Infinity" } else { "inf" };
        return if f < 0.0 { format!("-{s}") } else { s.into() };
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let s = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if exp + 1 >= n {
            format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{s}")
    } else {
        let (a, b) = digits.split_at(1);
        let m = if b.is_empty() {
            a.to_string()
        } else {
            format!("{a}.{b}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

/// Python's `str(value)`: what jinja2 prints for `{{ value }}`.
pub(crate) fn py_str(value: &Value, out: &mut String) {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::String => out.push_str(value.as_str().unwrap_or_default()),
        _ => py_repr(value, 0, out),
    }
}

/// [`py_str`] that stops once `out` passes `limit` bytes; false if it did.
pub(crate) fn py_str_within(value: &Value, out: &mut String, limit: usize) -> bool {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if out.len() + s.len() > limit {
                return false;
            }
            out.push_str(s);
        }
        _ => py_repr_within(value, 0, out, limit),
    }
    out.len() <= limit
}

/// Python's `repr(value)`: how containers print their items.
fn py_repr(value: &Value, level: usize, out: &mut String) {
    py_repr_within(value, level, out, usize::MAX)
}

/// [`py_repr`], stopping early once `out` passes `limit` (a lazy sequence may be
/// far longer than anything worth printing).
fn py_repr_within(value: &Value, level: usize, out: &mut String, limit: usize) {
    if out.len() > limit {
        return;
    }
    if level > MAX_DEPTH {
        out.push_str("...");
        return;
    }
    match value.kind() {
        ValueKind::Undefined => out.push_str("Undefined"),
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&number_repr(value, false)),
        ValueKind::String => str_repr(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = match value.try_iter() {
                Ok(it) => it,
                Err(_) => {
                    out.push_str(&value.to_string());
                    return;
                }
            };
            let tuple = value.is_tuple();
            out.push(if tuple { '(' } else { '[' });
            let mut n = 0;
            for item in items {
                if out.len() > limit {
                    return;
                }
                if n > 0 {
                    out.push_str(", ");
                }
                py_repr_within(&item, level + 1, out, limit);
                n += 1;
            }
            if tuple && n == 1 {
                out.push(',');
            }
            out.push(if tuple { ')' } else { ']' });
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(keys) = value.try_iter() {
                for (i, key) in keys.enumerate() {
                    if out.len() > limit {
                        return;
                    }
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr_within(&key, level + 1, out, limit);
                    out.push_str(": ");
                    let v = value.get_item(&key).unwrap_or_default();
                    py_repr_within(&v, level + 1, out, limit);
                }
            }
            out.push('}');
        }
        // Functions, macros, namespaces, `loop`: Python's reprs name memory addresses,
        // which no template can depend on; minijinja's own form is as good.
        _ => out.push_str(&value.to_string()),
    }
}

/// `repr(str)`: single quotes unless the text has a `'` and no `"`.
fn str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        for (f, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1e15, "1000000000000000.0"),
            (0.0, "0.0"),
        ] {
            assert_eq!(float_repr(f, false), s, "{f}");
        }
        assert_eq!(float_repr(f64::NAN, true), "NaN");
        assert_eq!(float_repr(f64::NEG_INFINITY, true), "-Infinity");
    }

    #[test]
    fn dumps_matches_python_defaults() {
        let v = Value::from_pairs([
            ("b", Value::from(vec![Value::from(1), Value::from(())])),
            ("a", Value::from("é\"\n")),
        ]);
        let opts = DumpOptions::new(false, None, false);
        assert_eq!(
            dumps(&v, &opts).unwrap(),
            r#"{"b": [1, null], "a": "é\"\n"}"#
        );
        let opts = DumpOptions::new(true, Some("  ".into()), true);
        assert_eq!(
            dumps(&v, &opts).unwrap(),
            "{\n  \"a\": \"\\u00e9\\\"\\n\",\n  \"b\": [\n    1,\n    null\n  ]\n}"
        );
        assert!(dumps(&Value::UNDEFINED, &opts).is_err());
    }

    #[test]
    fn str_matches_python() {
        let v = Value::from(vec![
            Value::from("it's"),
            Value::from(true),
            Value::from(()),
            Value::from(2.0),
        ]);
        let mut s = String::new();
        py_str(&v, &mut s);
        assert_eq!(s, r#"["it's", True, None, 2.0]"#);
    }
}
