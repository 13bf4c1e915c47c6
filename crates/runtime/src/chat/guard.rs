//! Memory and time guards for rendering untrusted templates.
//!
//! minijinja's fuel counts instructions, not bytes: `s ~ s` doubles a string for one
//! unit of fuel, so thirty doublings of a 100 MB string (minijinja's own cap on `'x' *
//! n`) ask for terabytes, and a loop that builds a fresh megabyte each turn burns
//! seconds on a few thousand units. The output cap sees only what reaches the final
//! output, not values, `{% set %}` captures or macro results. So every operation whose
//! result can be much larger than its operands charges a per-render byte budget first:
//!
//! * `~`, `+` and `*` are rewritten (on minijinja's parsed syntax tree, written back as
//!   source) into calls of `__wisp_cat`/`__wisp_add`/`__wisp_mul`, which refuse a
//!   result over the budget before building it and then evaluate the real operator;
//! * every printed value (`{{ … }}`, in the output or in a capture) is formatted with a
//!   limit and charged;
//! * the filters and methods that take a size from their arguments (`join`, `indent`,
//!   `replace`, `format`, `batch`, `slice`, `str.join`/`replace`/`format`) check it
//!   before running.
//!
//! The budget is [`Limits::max_output_bytes`](super::Limits) per value and 16 times that
//! for all bytes produced in a render; a sequence built by `+`/`*` may hold at most
//! `max_output_bytes / 16` items. Literal template text inside a loop is not charged:
//! it is bounded by fuel times the template's own size, which the caller controls
//! by accepting the template at all.
//!
//! The syntax-tree API is minijinja's `unstable_machinery` (pinned by the lockfile);
//! a minijinja upgrade that changes it fails to compile here rather than misbehave.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::LazyLock;

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Expression, State};

pub(crate) const CAT_FN: &str = "__wisp_cat";
pub(crate) const ADD_FN: &str = "__wisp_add";
pub(crate) const MUL_FN: &str = "__wisp_mul";

/// Produced-bytes budget of a render as a multiple of the per-value limit.
const TOTAL_FACTOR: usize = 16;

#[derive(Clone, Copy)]
struct Budget {
    /// Largest single value, in bytes.
    per_value: usize,
    /// Bytes still allowed in total.
    remaining: usize,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// The error a guard raises, found again in the error chain by the renderer.
#[derive(Debug)]
pub(crate) struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the template builds values beyond its memory budget")
    }
}

impl std::error::Error for OverBudget {}

fn over() -> Error {
    Error::new(ErrorKind::InvalidOperation, OverBudget.to_string()).with_source(OverBudget)
}

/// Installs a budget for the render on this thread; restores the previous on drop.
pub(crate) struct Scope(Option<Budget>);

impl Scope {
    pub(crate) fn new(max_output_bytes: usize) -> Scope {
        let b = Budget {
            per_value: max_output_bytes,
            remaining: max_output_bytes.saturating_mul(TOTAL_FACTOR),
        };
        Scope(BUDGET.with(|c| c.replace(Some(b))))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        BUDGET.with(|c| c.set(self.0));
    }
}

/// The most bytes one value may have now (unlimited outside a render).
fn allowance() -> usize {
    BUDGET.with(|c| c.get().map_or(usize::MAX, |b| b.per_value.min(b.remaining)))
}

/// Most items a sequence built by an operator may have.
fn max_items() -> usize {
    BUDGET.with(|c| c.get().map_or(usize::MAX, |b| (b.per_value / 16).max(1024)))
}

/// Take `bytes` from the budget, or fail if it does not have them.
pub(crate) fn charge(bytes: usize) -> Result<(), Error> {
    BUDGET.with(|c| match c.get() {
        None => Ok(()),
        Some(b) if bytes <= b.per_value && bytes <= b.remaining => {
            c.set(Some(Budget {
                remaining: b.remaining - bytes,
                ..b
            }));
            Ok(())
        }
        Some(_) => Err(over()),
    })
}

/// A `fmt::Write` that fails past `cap` bytes.
struct Capped {
    s: String,
    cap: usize,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.s.len() + s.len() > self.cap {
            return Err(std::fmt::Error);
        }
        self.s.push_str(s);
        Ok(())
    }
}

/// `value`'s Display text, or `None` if it passes `cap` bytes.
fn display_within(value: &Value, cap: usize) -> Option<String> {
    if let Some(s) = value.as_str() {
        return (s.len() <= cap).then(|| s.to_string());
    }
    let mut w = Capped {
        s: String::new(),
        cap,
    };
    write!(w, "{value}").ok().map(|_| w.s)
}

/// `a ~ b`.
fn cat(a: &Value, b: &Value) -> Result<Value, Error> {
    let cap = allowance();
    let left = display_within(a, cap).ok_or_else(over)?;
    let right = display_within(b, cap - left.len()).ok_or_else(over)?;
    charge(left.len() + right.len())?;
    Ok(Value::from(left + &right))
}

fn seq_len(v: &Value) -> Option<usize> {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
        .then(|| v.len())
        .flatten()
}

/// The plain operators, compiled once in an environment without the rewrite.
static PLAIN_ENV: LazyLock<Environment<'static>> = LazyLock::new(Environment::new);
static PLAIN_ADD: LazyLock<Expression<'static, 'static>> = LazyLock::new(|| {
    PLAIN_ENV
        .compile_expression("a + b")
        .expect("valid expression")
});
static PLAIN_MUL: LazyLock<Expression<'static, 'static>> = LazyLock::new(|| {
    PLAIN_ENV
        .compile_expression("a * b")
        .expect("valid expression")
});

fn plain(op: &Expression<'static, 'static>, a: &Value, b: &Value) -> Result<Value, Error> {
    op.eval(Value::from_pairs([("a", a.clone()), ("b", b.clone())]))
}

/// Both operands as `i64`, for the common integer arithmetic of loop counters.
fn ints(a: &Value, b: &Value) -> Option<(i64, i64)> {
    let int = |v: &Value| {
        v.as_i64()
            .filter(|_| v.is_integer() && v.kind() == ValueKind::Number)
    };
    Some((int(a)?, int(b)?))
}

/// `a + b`.
fn add(a: &Value, b: &Value) -> Result<Value, Error> {
    if let Some(sum) = ints(a, b).and_then(|(x, y)| x.checked_add(y)) {
        return Ok(Value::from(sum));
    }
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        charge(x.len().saturating_add(y.len()))?;
    } else if let (Some(x), Some(y)) = (seq_len(a), seq_len(b)) {
        if x.saturating_add(y) > max_items() {
            return Err(over());
        }
    }
    plain(&PLAIN_ADD, a, b)
}

/// `a * b`.
fn mul(a: &Value, b: &Value) -> Result<Value, Error> {
    if let Some(product) = ints(a, b).and_then(|(x, y)| x.checked_mul(y)) {
        return Ok(Value::from(product));
    }
    for (x, n) in [(a, b), (b, a)] {
        let Some(n) = n.as_i64().filter(|_| n.is_integer()) else {
            continue;
        };
        let n = n.max(0) as usize;
        if let Some(s) = x.as_str() {
            charge(s.len().saturating_mul(n))?;
        } else if let Some(len) = seq_len(x) {
            if len.saturating_mul(n) > max_items() {
                return Err(over());
            }
        }
    }
    plain(&PLAIN_MUL, a, b)
}

/// The function behind each rewritten operator.
pub(crate) fn add_to_environment(env: &mut Environment<'static>) {
    env.add_function(CAT_FN, |a: Value, b: Value| cat(&a, &b));
    env.add_function(ADD_FN, |a: Value, b: Value| add(&a, &b));
    env.add_function(MUL_FN, |a: Value, b: Value| mul(&a, &b));
    guard_filters(env);
}

/// Bytes a `join` of `items` with `sep` would produce, if within `cap`.
fn joined_len(items: &Value, sep: usize, cap: usize) -> Result<usize, Error> {
    let mut total = 0usize;
    for (i, item) in items.try_iter()?.enumerate() {
        let room = cap.checked_sub(total).ok_or_else(over)?;
        let len = match item.as_str() {
            Some(s) => s.len(),
            None => display_within(&item, room).ok_or_else(over)?.len(),
        };
        total = total
            .saturating_add(len)
            .saturating_add(if i > 0 { sep } else { 0 });
    }
    if total > cap {
        return Err(over());
    }
    Ok(total)
}

/// The largest integer among `args` and their keyword arguments (sizes, widths).
fn largest_size_arg(args: &[Value]) -> usize {
    let size = |v: &Value| match v.as_i64() {
        Some(n) if v.is_integer() => n.max(0) as usize,
        _ => 0,
    };
    args.iter()
        .map(|a| match a.kind() {
            ValueKind::Map => a
                .try_iter()
                .map(|keys| {
                    keys.map(|k| size(&a.get_item(&k).unwrap_or_default()))
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0),
            _ => size(a),
        })
        .max()
        .unwrap_or(0)
}

/// The largest decimal number in `s` (widths and precisions of a format string).
fn largest_number(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().unwrap_or(usize::MAX))
        .max()
        .unwrap_or(0)
}

/// Size checks in front of the filters and methods that take sizes from arguments.
fn guard_filters(env: &mut Environment<'static>) {
    use minijinja::filters;
    let join = Value::from_function(filters::join);
    env.add_filter(
        "join",
        move |state: &mut State, args: Rest<Value>| -> Result<Value, Error> {
            if let Some(items) = args.first() {
                let sep = args.get(1).and_then(|s| s.as_str()).map_or(0, str::len);
                charge(joined_len(items, sep, allowance())?)?;
            }
            join.call(state, &args)
        },
    );
    let indent = Value::from_function(filters::indent);
    env.add_filter(
        "indent",
        move |state: &mut State, args: Rest<Value>| -> Result<Value, Error> {
            if let Some((s, rest)) = args.split_first() {
                let lines = s.as_str().map_or(1, |s| s.lines().count() + 1);
                let len = s.as_str().map_or(0, str::len);
                charge(
                    lines
                        .saturating_mul(largest_size_arg(rest))
                        .saturating_add(len),
                )?;
            }
            indent.call(state, &args)
        },
    );
    let replace = Value::from_function(filters::replace);
    env.add_filter(
        "replace",
        move |state: &mut State, args: Rest<Value>| -> Result<Value, Error> {
            check_replace(&args)?;
            replace.call(state, &args)
        },
    );
    let format = Value::from_function(filters::format);
    env.add_filter(
        "format",
        move |state: &mut State, args: Rest<Value>| -> Result<Value, Error> {
            if let Some(f) = args.first().and_then(|f| f.as_str()) {
                charge(largest_number(f))?;
            }
            format.call(state, &args)
        },
    );
    for (name, f) in [
        ("batch", Value::from_function(filters::batch)),
        ("slice", Value::from_function(filters::slice)),
    ] {
        env.add_filter(
            name,
            move |state: &mut State, args: Rest<Value>| -> Result<Value, Error> {
                if largest_size_arg(args.get(1..2).unwrap_or_default()) > max_items() {
                    return Err(over());
                }
                f.call(state, &args)
            },
        );
    }
}

/// `s|replace(old, new)` or `s.replace(old, new)`: the result's size, checked.
fn check_replace(args: &[Value]) -> Result<(), Error> {
    if let [s, old, new, ..] = args {
        if let (Some(s), Some(old), Some(new)) = (s.as_str(), old.as_str(), new.as_str()) {
            let hits = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old).count()
            };
            charge(
                s.len()
                    .saturating_add(hits.saturating_mul(new.len().saturating_sub(old.len()))),
            )?;
        }
    }
    Ok(())
}

/// Python methods (minijinja-contrib's `pycompat`) with the same size checks.
pub(crate) fn unknown_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if value.as_str().is_some() {
        match method {
            "join" => {
                if let Some(items) = args.first() {
                    let sep = value.as_str().map_or(0, str::len);
                    charge(joined_len(items, sep, allowance())?)?;
                }
            }
            "replace" => {
                let mut all = vec![value.clone()];
                all.extend_from_slice(args);
                check_replace(&all)?;
            }
            "format" => charge(largest_number(value.as_str().unwrap_or_default()))?,
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// Format a printed value within the budget and charge it.
pub(crate) fn format_value(value: &Value, out: &mut String) -> Result<(), Error> {
    let cap = allowance();
    if !super::python::py_str_within(value, out, cap) {
        return Err(over());
    }
    charge(out.len())
}

/// Rewrite `~`, `+` and `*` in `source` into calls of the guard functions. A source
/// that does not parse is returned unchanged (compiling it reports the error).
pub(crate) fn rewrite_operators(source: &str, syntax: SyntaxConfig) -> String {
    let Ok(tree) = minijinja::machinery::parse(source, "chat_template", syntax) else {
        return source.to_string();
    };
    let mut w = Walk {
        src: source,
        found: Vec::new(),
    };
    w.stmt(&tree);
    splice(source, 0..source.len(), w.found)
}

type Range = std::ops::Range<usize>;

/// `src[range]` with the edits (disjoint, inside `range`) applied.
fn splice(src: &str, range: Range, mut edits: Vec<(Range, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(range.len() + edits.len() * 16);
    let mut copied = range.start;
    for (r, text) in edits {
        out.push_str(&src[copied..r.start]);
        out.push_str(&text);
        copied = r.end;
    }
    out.push_str(&src[copied..range.end]);
    out
}

fn span_range(span: minijinja::machinery::Span) -> Range {
    span.start_offset as usize..span.end_offset as usize
}

fn guarded(op: ast::BinOpKind) -> Option<&'static str> {
    match op {
        ast::BinOpKind::Concat => Some(CAT_FN),
        ast::BinOpKind::Add => Some(ADD_FN),
        ast::BinOpKind::Mul => Some(MUL_FN),
        _ => None,
    }
}

/// The source range of `e`, parentheses around it included. Spans are not enough on
/// their own: parentheses are not nodes, a filter's or a call's span starts at its
/// name or parenthesis, and a comparison's or conditional's at the token before it.
/// So the range is the node's own text joined with its operands', then widened over
/// parentheses until balanced.
fn expr_range(src: &str, e: &Expr) -> Range {
    let join = |a: Range, b: Range| a.start.min(b.start)..a.end.max(b.end);
    let sub = |e: &Expr| expr_range(src, e);
    let args = |r: Range, args: &[CallArg]| {
        args.iter().fold(r, |r, a| match a {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => join(r, sub(e)),
        })
    };
    let r = match e {
        Expr::Var(s) => span_range(s.span()),
        Expr::Const(s) => span_range(s.span()),
        Expr::Slice(s) => [&s.start, &s.stop, &s.step]
            .into_iter()
            .flatten()
            .fold(join(span_range(s.span()), sub(&s.expr)), |r, e| {
                join(r, sub(e))
            }),
        Expr::UnaryOp(s) => join(span_range(s.span()), sub(&s.expr)),
        Expr::BinOp(s) => join(sub(&s.left), sub(&s.right)),
        Expr::Compare(s) => s
            .ops
            .iter()
            .fold(sub(&s.expr), |r, op| join(r, sub(&op.expr))),
        Expr::IfExpr(s) => {
            let r = join(sub(&s.test_expr), sub(&s.true_expr));
            match &s.false_expr {
                Some(f) => join(r, sub(f)),
                None => r,
            }
        }
        Expr::Filter(s) => {
            let r = span_range(s.span());
            let r = match &s.expr {
                Some(e) => join(r, sub(e)),
                None => r,
            };
            args(r, &s.args)
        }
        Expr::Test(s) => args(join(span_range(s.span()), sub(&s.expr)), &s.args),
        Expr::GetAttr(s) => join(span_range(s.span()), sub(&s.expr)),
        Expr::GetItem(s) => join(
            span_range(s.span()),
            join(sub(&s.expr), sub(&s.subscript_expr)),
        ),
        Expr::Call(s) => args(join(span_range(s.span()), sub(&s.expr)), &s.args),
        Expr::List(s) => s
            .items
            .iter()
            .fold(span_range(s.span()), |r, e| join(r, sub(e))),
        Expr::Tuple(s) => s
            .items
            .iter()
            .fold(span_range(s.span()), |r, e| join(r, sub(e))),
        Expr::Map(s) => s
            .keys
            .iter()
            .chain(&s.values)
            .fold(span_range(s.span()), |r, e| join(r, sub(e))),
    };
    balance(src, r)
}

/// Widen `r` over the parentheses its text leaves open or closes (string literals
/// skipped), stepping over whitespace. Unchanged if the neighbours are not the
/// expected parentheses (the caller's result then fails to compile, loudly).
fn balance(src: &str, r: Range) -> Range {
    let b = src.as_bytes();
    let (mut depth, mut min_depth) = (0i64, 0i64);
    let mut quote: Option<u8> = None;
    let mut i = r.start;
    while i < r.end.min(b.len()) {
        let c = b[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'(' => depth += 1,
            None if c == b')' => {
                depth -= 1;
                min_depth = min_depth.min(depth);
            }
            None => {}
        }
        i += 1;
    }
    let (mut start, mut end) = (r.start, r.end);
    for _ in 0..-min_depth {
        let mut j = start;
        while j > 0 && b[j - 1].is_ascii_whitespace() {
            j -= 1;
        }
        if j == 0 || b[j - 1] != b'(' {
            return r;
        }
        start = j - 1;
    }
    for _ in 0..(depth - min_depth) {
        let mut j = end;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b')' {
            return r;
        }
        end = j + 1;
    }
    start..end
}

/// Collects the outermost guarded operators of a tree as source edits.
struct Walk<'s> {
    src: &'s str,
    found: Vec<(Range, String)>,
}

impl Walk<'_> {
    /// The source of `e` with its own guarded operators rewritten.
    fn rewritten(&self, e: &Expr) -> String {
        let mut inner = Walk {
            src: self.src,
            found: Vec::new(),
        };
        inner.expr(e);
        splice(self.src, expr_range(self.src, e), inner.found)
    }

    fn stmts(&mut self, list: &[Stmt]) {
        list.iter().for_each(|s| self.stmt(s));
    }

    fn args(&mut self, args: &[CallArg]) {
        for a in args {
            match a {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e),
            }
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
                self.expr(&f.target);
                self.expr(&f.iter);
                if let Some(e) = &f.filter_expr {
                    self.expr(e);
                }
                self.stmts(&f.body);
                self.stmts(&f.else_body);
            }
            Stmt::IfCond(c) => {
                self.expr(&c.expr);
                self.stmts(&c.true_body);
                self.stmts(&c.false_body);
            }
            Stmt::WithBlock(w) => {
                for (a, b) in &w.assignments {
                    self.expr(a);
                    self.expr(b);
                }
                self.stmts(&w.body);
            }
            Stmt::Set(x) => {
                self.expr(&x.target);
                self.expr(&x.expr);
            }
            Stmt::SetBlock(x) => {
                self.expr(&x.target);
                if let Some(f) = &x.filter {
                    self.expr(f);
                }
                self.stmts(&x.body);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled);
                self.stmts(&a.body);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter);
                self.stmts(&f.body);
            }
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => {
                self.expr(&i.expr);
                self.expr(&i.name);
            }
            Stmt::FromImport(i) => {
                self.expr(&i.expr);
                for (a, b) in &i.names {
                    self.expr(a);
                    if let Some(b) = b {
                        self.expr(b);
                    }
                }
            }
            Stmt::Extends(e) => self.expr(&e.name),
            Stmt::Include(i) => self.expr(&i.name),
            Stmt::Macro(m) => {
                m.args.iter().chain(&m.defaults).for_each(|e| self.expr(e));
                self.stmts(&m.body);
            }
            Stmt::CallBlock(c) => {
                self.expr(&c.call.expr);
                self.args(&c.call.args);
                let m = &c.macro_decl;
                m.args.iter().chain(&m.defaults).for_each(|e| self.expr(e));
                self.stmts(&m.body);
            }
            Stmt::Do(d) => {
                self.expr(&d.call.expr);
                self.args(&d.call.args);
            }
        }
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::BinOp(b) => match guarded(b.op) {
                Some(func) => {
                    let text = format!(
                        "{func}({}, {})",
                        self.rewritten(&b.left),
                        self.rewritten(&b.right)
                    );
                    self.found.push((expr_range(self.src, e), text));
                }
                None => {
                    self.expr(&b.left);
                    self.expr(&b.right);
                }
            },
            Expr::Var(_) | Expr::Const(_) => {}
            Expr::Slice(s) => {
                self.expr(&s.expr);
                for e in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(e);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::Compare(c) => {
                self.expr(&c.expr);
                c.ops.iter().for_each(|op| self.expr(&op.expr));
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr);
                self.expr(&i.true_expr);
                if let Some(f) = &i.false_expr {
                    self.expr(f);
                }
            }
            Expr::Filter(f) => {
                if let Some(e) = &f.expr {
                    self.expr(e);
                }
                self.args(&f.args);
            }
            Expr::Test(t) => {
                self.expr(&t.expr);
                self.args(&t.args);
            }
            Expr::GetAttr(g) => self.expr(&g.expr),
            Expr::GetItem(g) => {
                self.expr(&g.expr);
                self.expr(&g.subscript_expr);
            }
            Expr::Call(c) => {
                self.expr(&c.expr);
                self.args(&c.args);
            }
            Expr::List(l) => l.items.iter().for_each(|e| self.expr(e)),
            Expr::Tuple(t) => t.items.iter().for_each(|e| self.expr(e)),
            Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| self.expr(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite_operators;

    #[test]
    fn operators_become_guard_calls_with_their_operands_whole() {
        let src = "{{- 'a' + m.role + '\\n' -}}{{ (a ~ b) ~ c|upper }}{{ x * (y + 1) }}\
                   {{ (m.content | trim) + 'x' }}{% set s = a ~ b if c is defined else 'z' %}\
                   {{ '<' + (x if x is string else x | tojson) + '>' }}{{ (a == b) ~ c }}\
                   {{ l[1:2] + [f(1 * 2)] }}{{ 1 - 2 }}";
        assert_eq!(
            rewrite_operators(src, crate::chat::syntax()),
            "{{- __wisp_add(__wisp_add('a', m.role), '\\n') -}}\
             {{ __wisp_cat(__wisp_cat(a, b), c|upper) }}{{ __wisp_mul(x, __wisp_add(y, 1)) }}\
             {{ __wisp_add(m.content | trim, 'x') }}\
             {% set s = __wisp_cat(a, b) if c is defined else 'z' %}\
             {{ __wisp_add(__wisp_add('<', x if x is string else x | tojson), '>') }}\
             {{ __wisp_cat(a == b, c) }}\
             {{ __wisp_add(l[1:2], [f(__wisp_mul(1, 2))]) }}{{ 1 - 2 }}"
        );
        // Not a template: returned as is for the compiler to report.
        assert_eq!(
            rewrite_operators("{{ a ~ }}", crate::chat::syntax()),
            "{{ a ~ }}"
        );
    }
}
