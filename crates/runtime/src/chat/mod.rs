//! Chat templates: turn a conversation into the prompt text a model was trained on.
//!
//! Models ship a Jinja template in `tokenizer.chat_template`, written for Hugging Face
//! transformers, which renders it with Python jinja2 set up as
//! `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` plus the
//! `loopcontrols` extension, a `tojson` filter that is `json.dumps(ensure_ascii=False)`,
//! and the globals `raise_exception(msg)` and `strftime_now(fmt)`. Wisp renders the same
//! templates with minijinja configured to match:
//!
//! * Python string/dict/list methods (`.strip()`, `.items()`, …) from
//!   minijinja-contrib's `pycompat`;
//! * values print as Python's `str()` (`None`, `True`, `['a']`, `1e+16`) and `tojson`
//!   is Python's `json.dumps`, key order kept (module `python`);
//! * `map`/`select`/`reject`/`selectattr`/`rejectattr` give generator-like iterables and
//!   the `iterable`/`sequence`/`number` tests use Python's notion of those types;
//! * iterating `None` is an error and HF's `{% generation %}` tag is accepted (source
//!   rewrites, module `rewrite`).
//!
//! `tests/tests/chat_templates.rs` renders ~70 real templates against jinja2 output.
//! Known difference left: jinja2's `Markup + str` HTML-escapes the `str` (`"a"|safe +
//! x`); minijinja has no hook on `+`, so Wisp leaves `x` unescaped.
//!
//! Templates are untrusted input (they come with downloaded model files), so rendering
//! runs on a fuel budget and an output cap ([`Limits`]): a template that loops forever
//! or prints gigabytes fails with [`Error::Template`] in well under a second.
//!
//! Message content is untrusted too: [`chat_prompt_tokens`] lets control tokens come
//! only from the template's own markup and tokenizes content as plain text (modules
//! `content` and `prompt` say how and why).
//!
//! GGUFs without a template get a built-in format chosen by architecture
//! ([`ChatTemplate::from_gguf`], [`Builtin`]).

mod builtin;
mod clock;
mod content;
mod guard;
mod prompt;
mod python;
mod rewrite;

use std::collections::BTreeMap;
use std::io;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, State};

use crate::gguf::GgufHeader;
use crate::Error;

pub use builtin::Builtin;
pub use clock::DateTime;
pub use prompt::{chat_prompt_tokens, render_options, ChatPrompt};

const TEMPLATE_NAME: &str = "chat_template";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, … (passed to the template as is).
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// What a render passes to the template besides the messages.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// End with the header of an assistant turn, so the model writes the reply.
    pub add_generation_prompt: bool,
    /// The vocab's BOS/EOS token text. Many templates print `bos_token` first: when the
    /// tokenizer also adds BOS, strip it from the text ([`strip_bos`]).
    pub bos_token: String,
    pub eos_token: String,
    /// Tool (function) definitions, usually a JSON array in the OpenAI format; `None`
    /// renders as Python's `None`, as transformers passes it.
    pub tools: Option<serde_json::Value>,
    /// The instant `strftime_now` formats; `None` reads the system clock (UTC).
    pub now: Option<DateTime>,
    /// Extra template variables (a JSON object: e.g. `enable_thinking`, `documents`).
    /// The standard variables above win over keys of the same name.
    pub extra_context: Option<serde_json::Value>,
}

impl Default for RenderOptions {
    /// `add_generation_prompt: true` (the usual case: prompting for a reply), no
    /// special tokens, no tools, system clock.
    fn default() -> RenderOptions {
        RenderOptions {
            add_generation_prompt: true,
            bos_token: String::new(),
            eos_token: String::new(),
            tools: None,
            now: None,
            extra_context: None,
        }
    }
}

/// Resource limits for rendering one template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel: roughly one unit per executed instruction.
    pub fuel: u64,
    /// Maximum rendered size in bytes.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    /// 2 M instructions and 16 MiB of text. The ~70 real templates in the tests need
    /// 100–400 fuel per message and up to ~1 600 for a 4-turn chat with a tool, so 2 M
    /// covers thousands of turns, while minijinja burns through it in well under a
    /// second on a loaded phone-class core. 16 MiB is far beyond any context window.
    fn default() -> Limits {
        Limits {
            fuel: 2_000_000,
            max_output_bytes: 16 << 20,
        }
    }
}

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    source: String,
    builtin: Option<Builtin>,
    limits: Limits,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("builtin", &self.builtin)
            .field("limits", &self.limits)
            .field("source_len", &self.source.len())
            .finish()
    }
}

/// The error `raise_exception` throws, found again in the error chain so the caller
/// gets the template's message verbatim.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

impl ChatTemplate {
    /// Compile a Jinja chat template (a syntax error is [`Error::Template`]).
    pub fn new(source: &str) -> Result<ChatTemplate, Error> {
        ChatTemplate::compile(source, None, Limits::default())
    }

    /// A built-in format.
    pub fn builtin(format: Builtin) -> ChatTemplate {
        ChatTemplate::compile(format.source(), Some(format), Limits::default())
            .expect("built-in templates compile")
    }

    /// The model's `tokenizer.chat_template`; without one (or with llama.cpp's alias
    /// `chatml`), the built-in format for its architecture ([`Builtin::for_header`]).
    pub fn from_gguf(header: &GgufHeader) -> Result<ChatTemplate, Error> {
        match header.get_str("tokenizer.chat_template") {
            Some("chatml") => Ok(ChatTemplate::builtin(Builtin::ChatMl)),
            Some(src) if !src.trim().is_empty() => ChatTemplate::new(src),
            _ => Ok(ChatTemplate::builtin(Builtin::for_header(header))),
        }
    }

    /// The same template with other resource limits.
    pub fn with_limits(mut self, limits: Limits) -> ChatTemplate {
        self.limits = limits;
        self.env.set_fuel(Some(limits.fuel));
        self
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether this is a built-in format (the model had no template).
    pub fn is_builtin(&self) -> bool {
        self.builtin.is_some()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn compile(
        source: &str,
        builtin: Option<Builtin>,
        limits: Limits,
    ) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        configure(&mut env);
        env.set_fuel(Some(limits.fuel));
        let source_rewritten = guard::rewrite_operators(&rewrite::rewrite(source), syntax());
        env.add_template_owned(TEMPLATE_NAME, source_rewritten)
            .map_err(|e| Error::Template(format!("invalid template: {e}")))?;
        Ok(ChatTemplate {
            source: source.to_string(),
            builtin,
            limits,
            env,
        })
    }

    /// Render the conversation to prompt text.
    pub fn render(&self, messages: &[ChatMessage], opts: &RenderOptions) -> Result<String, Error> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| Error::Template(e.to_string()))?;
        let ctx = context(messages, opts)?;
        let mut out = CappedWriter {
            buf: Vec::new(),
            limit: self.limits.max_output_bytes,
            exceeded: false,
        };
        let _budget = guard::Scope::new(self.limits.max_output_bytes);
        match tmpl.render_captured_to(ctx, &mut out) {
            Ok(_) => String::from_utf8(out.buf)
                .map_err(|_| Error::Template("template produced invalid UTF-8".into())),
            Err(e) => Err(self.error(&e, out.exceeded)),
        }
    }

    fn error(&self, e: &minijinja::Error, output_exceeded: bool) -> Error {
        if output_exceeded {
            return Error::Template(format!(
                "output exceeds the limit of {} bytes",
                self.limits.max_output_bytes
            ));
        }
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(raised) = err.downcast_ref::<Raised>() {
                return Error::Template(raised.0.clone());
            }
            if err.downcast_ref::<guard::OverBudget>().is_some() {
                return Error::Template(format!(
                    "template builds values beyond its budget ({} bytes per value, {} in all)",
                    self.limits.max_output_bytes,
                    self.limits.max_output_bytes.saturating_mul(16)
                ));
            }
            cur = err.source();
        }
        if e.kind() == ErrorKind::OutOfFuel {
            return Error::Template(format!(
                "template exceeded its budget of {} steps",
                self.limits.fuel
            ));
        }
        Error::Template(e.to_string())
    }
}

/// Remove one leading `bos_token` from rendered text: for tokenizers that add BOS
/// themselves (`tokenizer.ggml.add_bos_token`), as llama.cpp does after rendering.
pub fn strip_bos<'a>(text: &'a str, bos_token: &str) -> &'a str {
    if bos_token.is_empty() {
        return text;
    }
    text.strip_prefix(bos_token).unwrap_or(text)
}

pub(crate) fn syntax() -> minijinja::syntax::SyntaxConfig {
    minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(false)
        .build()
        .expect("default delimiters are valid")
}

/// Set `env` up as transformers sets up jinja2.
fn configure(env: &mut Environment<'static>) {
    // jinja2 drops one trailing newline by default; so does minijinja, stated here
    // because output must match byte for byte.
    env.set_syntax(syntax());
    env.set_auto_escape_callback(|_| AutoEscape::None);
    minijinja_contrib::add_to_environment(env);
    env.set_unknown_method_callback(guard::unknown_method);
    // Print values as Python's str() does (`None`, `True`, `['a']`), within the
    // render's byte budget (module `guard`).
    env.set_formatter(|out, _state, value| {
        let mut s = String::new();
        guard::format_value(value, &mut s)?;
        out.write_str(&s).map_err(minijinja::Error::from)
    });
    env.add_filter(
        "string",
        |value: &Value| -> Result<String, minijinja::Error> {
            let mut s = String::new();
            guard::format_value(value, &mut s)?;
            Ok(s)
        },
    );
    env.add_filter("tojson", tojson);
    env.add_function(rewrite::ITER_FN, strict_iter);
    // jinja2's map/select/reject/selectattr/rejectattr return generators: iterable
    // once, no length, not JSON serializable. minijinja returns lists; wrapping them
    // as plain iterables makes `|tojson`/`|length` fail where Python fails.
    use minijinja::filters;
    env.add_filter("map", generator_filter(Value::from_function(filters::map)));
    env.add_filter(
        "select",
        generator_filter(Value::from_function(filters::select)),
    );
    env.add_filter(
        "reject",
        generator_filter(Value::from_function(filters::reject)),
    );
    env.add_filter(
        "selectattr",
        generator_filter(Value::from_function(filters::selectattr)),
    );
    env.add_filter(
        "rejectattr",
        generator_filter(Value::from_function(filters::rejectattr)),
    );
    // Python's truth for type tests: `None is iterable` is false (iterating it is a
    // TypeError), dicts and strings are sequences (they have len and []), bools are
    // numbers.
    env.add_test("iterable", |v: &Value| {
        matches!(
            v.kind(),
            ValueKind::String
                | ValueKind::Seq
                | ValueKind::Map
                | ValueKind::Iterable
                | ValueKind::Undefined
                | ValueKind::Bytes
        )
    });
    env.add_test("sequence", |v: &Value| {
        matches!(
            v.kind(),
            ValueKind::String
                | ValueKind::Seq
                | ValueKind::Map
                | ValueKind::Undefined
                | ValueKind::Bytes
        )
    });
    env.add_test("number", |v: &Value| {
        matches!(v.kind(), ValueKind::Number | ValueKind::Bool)
    });
    env.add_function(
        "raise_exception",
        |message: Option<Value>| -> Result<Value, minijinja::Error> {
            let mut msg = String::new();
            if let Some(m) = &message {
                python::py_str(m, &mut msg);
            }
            Err(
                minijinja::Error::new(ErrorKind::InvalidOperation, msg.clone())
                    .with_source(Raised(msg)),
            )
        },
    );
    // Last, so its filters replace the built-in ones they guard.
    guard::add_to_environment(env);
}

/// What every `for` loop iterates (see [`rewrite`]): the value itself, but `None` and
/// numbers fail as they do in Python.
fn strict_iter(args: Rest<Value>) -> Result<Value, minijinja::Error> {
    match args.as_slice() {
        [v] => {
            let what = match v.kind() {
                ValueKind::None => "NoneType",
                ValueKind::Bool => "bool",
                ValueKind::Number if v.is_integer() => "int",
                ValueKind::Number => "float",
                _ => return Ok(v.clone()),
            };
            Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("'{what}' object is not iterable"),
            ))
        }
        // `for x in a, b`: a tuple.
        many => Ok(Value::from(many.to_vec())),
    }
}

/// A filter that runs `inner` and hands its result out as a generator-like iterable.
fn generator_filter(
    inner: Value,
) -> impl Fn(&mut State, Rest<Value>) -> Result<Value, minijinja::Error> + Send + Sync + 'static {
    move |state, args| {
        let items: Vec<Value> = inner.call(state, &args)?.try_iter()?.collect();
        Ok(Value::make_iterable(move || items.clone().into_iter()))
    }
}

/// HF's `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    const NAMES: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    if args.len() > NAMES.len() {
        return Err(minijinja::Error::new(
            ErrorKind::TooManyArguments,
            "tojson takes at most 4 arguments",
        ));
    }
    let mut params: [Value; 4] = Default::default();
    for (i, name) in NAMES.iter().enumerate() {
        if let Some(v) = args.get(i) {
            params[i] = v.clone();
        }
        if kwargs.has(name) {
            params[i] = kwargs.get::<Value>(name)?;
        }
    }
    kwargs.assert_all_used()?;
    let [ensure_ascii, indent, separators, sort_keys] = params;
    let indent = if indent.is_undefined() || indent.is_none() {
        None
    } else if let Some(s) = indent.as_str() {
        Some(s.to_string())
    } else if let Some(n) = indent.as_i64() {
        Some(" ".repeat(n.clamp(0, 64) as usize))
    } else {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "tojson indent must be an integer or a string",
        ));
    };
    let mut opts = python::DumpOptions::new(ensure_ascii.is_true(), indent, sort_keys.is_true());
    if !separators.is_undefined() && !separators.is_none() {
        let seps: Vec<Value> = separators.try_iter()?.collect();
        match seps.as_slice() {
            [item, key] if item.as_str().is_some() && key.as_str().is_some() => {
                opts.item_sep = item.as_str().unwrap_or_default().to_string();
                opts.key_sep = key.as_str().unwrap_or_default().to_string();
            }
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson separators must be a pair of strings",
                ))
            }
        }
    }
    python::dumps(value, &opts).map(Value::from)
}

/// The template's variables, as transformers passes them.
fn context(messages: &[ChatMessage], opts: &RenderOptions) -> Result<Value, Error> {
    let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
    match &opts.extra_context {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                ctx.insert(k.clone(), json_to_value(v));
            }
        }
        Some(_) => {
            return Err(Error::InvalidRequest(
                "extra_context must be a JSON object".into(),
            ))
        }
    }
    let msgs: Vec<Value> = messages
        .iter()
        .map(|m| {
            Value::from_pairs([
                ("role", Value::from(m.role.as_str())),
                ("content", Value::from(m.content.as_str())),
            ])
        })
        .collect();
    ctx.insert("messages".into(), Value::from(msgs));
    ctx.insert(
        "add_generation_prompt".into(),
        Value::from(opts.add_generation_prompt),
    );
    ctx.insert("bos_token".into(), Value::from(opts.bos_token.as_str()));
    ctx.insert("eos_token".into(), Value::from(opts.eos_token.as_str()));
    ctx.insert(
        "tools".into(),
        opts.tools.as_ref().map_or(Value::from(()), json_to_value),
    );
    ctx.entry("documents".into()).or_insert(Value::from(()));
    let now = opts.now.unwrap_or_else(DateTime::now_utc);
    ctx.insert(
        "strftime_now".into(),
        Value::from_function(move |fmt: &str| now.strftime(fmt)),
    );
    Ok(Value::from(ctx))
}

fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::from(a.iter().map(json_to_value).collect::<Vec<_>>()),
        serde_json::Value::Object(o) => Value::from_pairs(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), json_to_value(v))),
        ),
    }
}

/// Collects output and fails the render once it passes `limit` bytes.
struct CappedWriter {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("output limit exceeded"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// Templates are shared between threads (one per model, many sessions).
const _: () = {
    fn is_send_sync<T: Send + Sync>() {}
    #[allow(dead_code)]
    fn check() {
        is_send_sync::<ChatTemplate>();
    }
};

#[cfg(test)]
mod tests;
