//! Structured values parsed from `{:?}` text, with bounded JSON output, accessors and redaction.

use crate::lang::json;
use std::fmt::Write as _;

/// A value recovered from compact `Debug` output.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any integer in `i128` range.
    Int(i128),
    /// A float, including `NaN` and `inf`.
    Float(f64),
    /// A string literal, unescaped.
    Str(String),
    /// A char literal, unescaped.
    Char(char),
    /// A `Vec`, slice, array, set or tuple.
    Seq(Vec<Value>),
    /// A map `{k: v, ...}`.
    Map(Vec<(Value, Value)>),
    /// A struct with named fields `Name { f: v }` (the type name is dropped in JSON).
    Struct {
        /// The type name as printed.
        name: String,
        /// Fields in print order.
        fields: Vec<(String, Value)>,
    },
    /// A tuple struct or tuple variant such as `Ok(3)` or `UserId(5)`.
    Variant {
        /// The type or variant name as printed.
        name: String,
        /// The positional items.
        items: Vec<Value>,
    },
    /// A unit struct or unit variant such as `Red` or `Ordering::Less`.
    Unit(String),
    /// Text that did not parse, kept verbatim.
    Text(String),
    /// A marker written by the producer when it cut a value short; written as the string.
    Truncated(String),
}

/// Bounds applied by [`write_json`]; every cut is visible in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum characters of a string before it is cut.
    pub max_str: usize,
    /// Maximum items of a collection (or fields of a struct) before the rest are summarized.
    pub max_items: usize,
    /// Maximum nesting of collections before `"<depth limit>"` is written instead.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_str: 256,
            max_items: 25,
            max_depth: 5,
        }
    }
}

/// Nesting beyond this many levels is kept as raw text rather than parsed.
const MAX_PARSE_DEPTH: usize = 64;

/// Parses compact `{:?}` output; anything that does not parse becomes `Value::Text(text)`.
///
/// Inside collections and structs, an element that does not parse (for example a
/// `SocketAddr` printed as `127.0.0.1:80`) is kept as `Value::Text` of its raw text.
pub fn parse_debug(text: &str) -> Value {
    let mut p = Parser {
        s: text,
        pos: 0,
        steps: std::cell::Cell::new(PARSE_STEPS_PER_BYTE.saturating_mul(text.len()) + 1024),
    };
    p.skip_ws();
    match p.value(0) {
        Ok(v) => {
            p.skip_ws();
            if p.at_end() && p.steps.get() > 0 {
                v
            } else {
                Value::Text(text.to_string())
            }
        }
        Err(()) => Value::Text(text.to_string()),
    }
}

/// How many characters the parser may look at per byte of text. An element that does not
/// parse is read again as raw text, at each level of nesting it fails at, so text built to
/// fail deep down (fuzzing found 475 bytes that took 13 ms, 27 µs a byte: 64 KiB of it would
/// hold the output thread for seconds) would cost far more than its length; past this many
/// steps the parser gives up and the value stays text (redacted as unparsed text is).
/// Ordinary `{:?}` text takes a few steps per byte.
const PARSE_STEPS_PER_BYTE: usize = 48;

/// Whether a field, key or variable name is secret by the built-in rules: the name is
/// normalised (ASCII lowercase, `_ - $ @` removed), then compared whole with short names
/// (`pwd`, `pass`, `auth`, `pin`, `jwt`, `ssn`, …) or searched for longer fragments
/// (`password`, `secret`, `token`, `apikey`, `cookie`, `session`, …). See `redact.rs`.
#[inline]
pub fn default_is_secret(name: &str) -> bool {
    crate::lang::value::redact::builtin_is_secret(name)
}

/// Whether `hay` contains `needle` (lowercase ASCII), ignoring ASCII case, without allocating.
pub fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl Value {
    /// A short human name of this value's kind, used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Char(_) => "char",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "map",
            Value::Struct { .. } => "struct",
            Value::Variant { .. } => "tuple variant",
            Value::Unit(_) => "unit variant",
            Value::Text(_) => "text",
            Value::Truncated(_) => "truncated value",
        }
    }

    /// A struct field, a map entry with a string-like key, or a positional item (`"0"`, `"1"`…).
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct { fields, .. } => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| {
                    matches!(k, Value::Str(s) | Value::Unit(s) | Value::Text(s) if s == name)
                })
                .map(|(_, v)| v),
            Value::Variant { items, .. } | Value::Seq(items) => {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                name.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            _ => None,
        }
    }

    /// The `i`-th item of a sequence or tuple variant, or a map entry whose key is the integer `i`.
    pub fn index(&self, i: usize) -> Option<&Value> {
        match self {
            Value::Seq(items) | Value::Variant { items, .. } => items.get(i),
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Int(n) if usize::try_from(*n) == Ok(i)))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Items of a sequence/map/tuple variant, bytes of a string, fields of a struct.
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Seq(items) | Value::Variant { items, .. } => Some(items.len()),
            Value::Map(entries) => Some(entries.len()),
            // Bytes, like Rust's `str::len` (and constant time, so a condition on a long
            // string's length reads nothing of it).
            Value::Str(s) => Some(s.len()),
            Value::Struct { fields, .. } => Some(fields.len()),
            _ => None,
        }
    }

    /// Whether [`Value::len`] is zero (`None` when this value has no length).
    pub fn is_empty(&self) -> Option<bool> {
        self.len().map(|n| n == 0)
    }

    /// Names usable with [`Value::field`]: struct fields or string-like map keys.
    pub fn field_names(&self) -> Vec<&str> {
        match self {
            Value::Struct { fields, .. } => fields.iter().map(|(k, _)| k.as_str()).collect(),
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, _)| match k {
                    Value::Str(s) | Value::Unit(s) | Value::Text(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Replaces, recursively, every struct field or string-keyed map value whose name is
    /// secret, the second item of a pair whose first item is a secret name (a header list's
    /// `("authorization", "Bearer …")`), secret fields inside text that did not parse (a cut
    /// value, a custom `Debug`), and structs of the types listed in `LPROBE_REDACT_TYPES`.
    #[inline]
    pub fn redact(&mut self, is_secret: &dyn Fn(&str) -> bool) {
        self.redact_with(is_secret, crate::lang::value::redact::types());
    }

    /// [`Value::redact`] with an explicit list of redacted types.
    #[inline]
    pub(crate) fn redact_with(&mut self, is_secret: &dyn Fn(&str) -> bool, types: &[String]) {
        let secret_name = |v: &Value| match v {
            Value::Str(s) | Value::Unit(s) | Value::Text(s) => is_secret(s),
            _ => false,
        };
        match self {
            Value::Struct { name, .. } | Value::Variant { name, .. }
                if crate::lang::value::redact::printed_type_is_redacted(name, types) =>
            {
                *self = Value::Str(crate::lang::value::redact::type_marker(name));
            }
            Value::Struct { fields, .. } => {
                for (k, v) in fields {
                    if is_secret(k) {
                        *v = redacted();
                    } else {
                        v.redact_with(is_secret, types);
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    if secret_name(k) {
                        *v = redacted();
                    } else {
                        k.redact_with(is_secret, types);
                        v.redact_with(is_secret, types);
                    }
                }
            }
            Value::Seq(items) | Value::Variant { items, .. } => {
                let pair = items.len() == 2 && items.first().is_some_and(secret_name);
                for (i, v) in items.iter_mut().enumerate() {
                    if pair && i == 1 {
                        *v = redacted();
                    } else {
                        v.redact_with(is_secret, types);
                    }
                }
            }
            Value::Text(t) | Value::Truncated(t) => {
                if let Some(r) = crate::lang::value::redact::text(t, is_secret, types) {
                    *t = r;
                }
            }
            _ => {}
        }
    }
}

fn redacted() -> Value {
    Value::Str("<redacted>".into())
}

/// Writes `v` as JSON, cutting strings, collections and nesting at `limits` (visibly).
pub fn write_json(v: &Value, out: &mut String, limits: &Limits) {
    write_at(v, out, limits, 0);
}

fn write_at(v: &Value, out: &mut String, limits: &Limits, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => json::push_f64(out, *f),
        Value::Str(s) | Value::Unit(s) | Value::Text(s) => push_limited(out, s, limits.max_str),
        Value::Char(c) => json::push_str(out, c.encode_utf8(&mut [0; 4])),
        Value::Truncated(s) => json::push_str(out, s),
        _ if depth >= limits.max_depth => json::push_str(out, "<depth limit>"),
        Value::Seq(items) => write_array(items, out, limits, depth + 1),
        Value::Struct { fields, .. } => {
            out.push('{');
            for (i, (k, v)) in fields.iter().take(limits.max_items).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_limited(out, k, limits.max_str);
                out.push(':');
                write_at(v, out, limits, depth + 1);
            }
            push_more_key(out, fields.len(), limits.max_items);
            out.push('}');
        }
        Value::Variant { name, items } => {
            out.push('{');
            push_limited(out, name, limits.max_str);
            out.push(':');
            match items.as_slice() {
                [one] => write_at(one, out, limits, depth + 1),
                _ => write_array(items, out, limits, depth + 1),
            }
            out.push('}');
        }
        Value::Map(entries) => {
            if entries.iter().all(|(k, _)| key_text(k).is_some()) {
                out.push('{');
                for (i, (k, v)) in entries.iter().take(limits.max_items).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let key = key_text(k).unwrap_or_default();
                    push_limited(out, &key, limits.max_str);
                    out.push(':');
                    write_at(v, out, limits, depth + 1);
                }
                push_more_key(out, entries.len(), limits.max_items);
                out.push('}');
            } else {
                out.push('[');
                for (i, (k, v)) in entries.iter().take(limits.max_items).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    write_at(k, out, limits, depth + 1);
                    out.push(',');
                    write_at(v, out, limits, depth + 1);
                    out.push(']');
                }
                push_more_item(out, entries.len(), limits.max_items);
                out.push(']');
            }
        }
    }
}

/// Writes `[items]` (children at `depth`), summarizing items past the limit.
fn write_array(items: &[Value], out: &mut String, limits: &Limits, depth: usize) {
    out.push('[');
    for (i, item) in items.iter().take(limits.max_items).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_at(item, out, limits, depth);
    }
    push_more_item(out, items.len(), limits.max_items);
    out.push(']');
}

fn push_more_item(out: &mut String, len: usize, max: usize) {
    if len > max {
        if max > 0 {
            out.push(',');
        }
        json::push_str(out, &format!("<+{} more>", len - max));
    }
}

fn push_more_key(out: &mut String, len: usize, max: usize) {
    if len > max {
        if max > 0 {
            out.push(',');
        }
        json::push_str(out, "<truncated>");
        out.push(':');
        json::push_str(out, &format!("+{} more", len - max));
    }
}

/// The JSON object key for a map key, if it is a scalar that reads naturally as a key.
fn key_text(k: &Value) -> Option<String> {
    match k {
        Value::Str(s) | Value::Unit(s) | Value::Text(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Char(c) => Some(c.to_string()),
        _ => None,
    }
}

/// Writes `s` as a JSON string, cut to `max` chars with a visible `…<+N chars>` suffix.
fn push_limited(out: &mut String, s: &str, max: usize) {
    match s.char_indices().nth(max) {
        None => json::push_str(out, s),
        Some((cut, _)) => {
            let (head, tail) = s.split_at_checked(cut).unwrap_or((s, ""));
            let mut t = String::with_capacity(cut + 16);
            t.push_str(head);
            let _ = write!(t, "…<+{} chars>", tail.chars().count());
            json::push_str(out, &t);
        }
    }
}

/// Recursive-descent parser over `Debug` text; `Err(())` means "not parseable here".
struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// Characters the parser may still look at ([`PARSE_STEPS_PER_BYTE`]); at 0 it sees the
    /// end of the text everywhere, so every rule ends at once.
    steps: std::cell::Cell<usize>,
}

type PResult<T> = Result<T, ()>;

#[inline(always)]
fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

#[inline(always)]
fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

// The parser runs on application threads for a condition on a field, and on the output thread
// for every record. Instrumented programs compile this crate for size and the hit path's
// `#[inline]` functions again at the program's level (see `hot`); the parser's methods stay
// size-compiled (a copy at full optimization costs 13 KB in every binary), and its one-line
// helpers are `#[inline(always)]` so that the size-compiled parser does not call them.
impl<'a> Parser<'a> {
    #[inline(always)]
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    #[inline(always)]
    fn slice(&self, start: usize) -> &'a str {
        self.s.get(start..self.pos).unwrap_or("")
    }

    #[inline(always)]
    fn peek(&self) -> Option<char> {
        let left = self.steps.get();
        if left == 0 {
            return None;
        }
        self.steps.set(left - 1);
        self.rest().chars().next()
    }

    #[inline(always)]
    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    #[inline(always)]
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    #[inline(always)]
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    #[inline(always)]
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn value(&mut self, depth: usize) -> PResult<Value> {
        if depth > MAX_PARSE_DEPTH {
            return Err(());
        }
        match self.peek().ok_or(())? {
            '"' => self.string().map(Value::Str),
            '\'' => self.char_lit().map(Value::Char),
            '[' => {
                self.pos += 1;
                self.items(']', depth).map(Value::Seq)
            }
            '(' => {
                self.pos += 1;
                self.items(')', depth).map(Value::Seq)
            }
            '{' => {
                self.pos += 1;
                self.braces(depth)
            }
            c if c == '-' || c.is_ascii_digit() => self.number(),
            c if is_ident_start(c) => self.named(depth),
            _ => Err(()),
        }
    }

    /// Comma-separated items up to `close` (the opener is already consumed).
    fn items(&mut self, close: char, depth: usize) -> PResult<Vec<Value>> {
        let mut out = Vec::new();
        self.skip_ws();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(self.item(depth + 1, close, false)?);
            self.skip_ws();
            if self.eat(close) {
                return Ok(out);
            }
            if !self.eat(',') {
                return Err(());
            }
            self.skip_ws();
            if self.eat(close) {
                return Ok(out); // trailing comma, as in `(1,)`
            }
        }
    }

    /// One element: a parsed value if it ends cleanly, else its raw text.
    fn item(&mut self, depth: usize, close: char, key: bool) -> PResult<Value> {
        let start = self.pos;
        if let Ok(v) = self.value(depth) {
            let save = self.pos;
            self.skip_ws();
            let clean = match self.peek() {
                Some(',') => true,
                Some(':') => key,
                Some(c) => c == close,
                None => false,
            };
            self.pos = save;
            if clean {
                return Ok(v);
            }
        }
        self.pos = start;
        self.raw(close, key)
    }

    /// Raw text up to a top-level `,`, `close` (or `: ` for keys), balancing brackets.
    fn raw(&mut self, close: char, key: bool) -> PResult<Value> {
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            let c = self.peek().ok_or(())?;
            if depth == 0
                && (c == ',' || c == close || (key && c == ':' && self.peek2() == Some(' ')))
            {
                break;
            }
            match c {
                '"' => {
                    self.string()?;
                    continue;
                }
                '\'' => {
                    // A char literal (`'"'` must not open a string); else a lone quote, as in
                    // a lifetime (`&'static str`).
                    let save = self.pos;
                    if self.char_lit().is_ok() {
                        continue;
                    }
                    self.pos = save;
                }
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth = depth.checked_sub(1).ok_or(())?,
                _ => {}
            }
            self.pos += c.len_utf8();
        }
        let text = self.slice(start).trim_end();
        if text.is_empty() {
            return Err(());
        }
        Ok(Value::Text(text.to_string()))
    }

    /// After `{`: a map `{k: v}`, a set `{a, b}` or the empty map `{}`.
    fn braces(&mut self, depth: usize) -> PResult<Value> {
        self.skip_ws();
        if self.eat('}') {
            return Ok(Value::Map(Vec::new()));
        }
        let first = self.item(depth + 1, '}', true)?;
        self.skip_ws();
        if self.peek() == Some(':') {
            let mut entries = Vec::new();
            let mut key = first;
            loop {
                if !self.eat(':') {
                    return Err(());
                }
                self.skip_ws();
                let v = self.item(depth + 1, '}', false)?;
                entries.push((key, v));
                self.skip_ws();
                if self.eat('}') {
                    return Ok(Value::Map(entries));
                }
                if !self.eat(',') {
                    return Err(());
                }
                self.skip_ws();
                if self.eat('}') {
                    return Ok(Value::Map(entries));
                }
                key = self.item(depth + 1, '}', true)?;
                self.skip_ws();
            }
        }
        let mut items = vec![first];
        loop {
            if self.eat('}') {
                return Ok(Value::Seq(items));
            }
            if !self.eat(',') {
                return Err(());
            }
            self.skip_ws();
            if self.eat('}') {
                return Ok(Value::Seq(items));
            }
            items.push(self.item(depth + 1, '}', false)?);
            self.skip_ws();
        }
    }

    fn ident(&mut self) -> PResult<&'a str> {
        let start = self.pos;
        match self.peek() {
            Some(c) if is_ident_start(c) => self.pos += c.len_utf8(),
            _ => return Err(()),
        }
        while let Some(c) = self.peek() {
            if !is_ident_char(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        Ok(self.slice(start))
    }

    /// `a::b::C` plus an optional balanced `<...>` suffix (as in `PhantomData<u8>`).
    fn path_name(&mut self) -> PResult<&'a str> {
        let start = self.pos;
        self.ident()?;
        while self.rest().starts_with("::") {
            let save = self.pos;
            self.pos += 2;
            if self.ident().is_err() {
                self.pos = save;
                break;
            }
        }
        if self.peek() == Some('<') {
            let save = self.pos;
            let mut depth = 0usize;
            loop {
                match self.bump() {
                    Some('<') => depth += 1,
                    Some('>') => {
                        depth -= 1; // ok: depth >= 1 here, the first char seen was '<'
                        if depth == 0 {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => {
                        self.pos = save;
                        break;
                    }
                }
            }
        }
        Ok(self.slice(start))
    }

    /// A keyword, a unit, a tuple variant `Name(..)` or a struct `Name { .. }`.
    fn named(&mut self, depth: usize) -> PResult<Value> {
        let name = self.path_name()?;
        match name {
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            "None" => return Ok(Value::Null),
            "NaN" => return Ok(Value::Float(f64::NAN)),
            "inf" => return Ok(Value::Float(f64::INFINITY)),
            _ => {}
        }
        if self.eat('(') {
            let mut items = self.items(')', depth)?;
            if name == "Some" && items.len() == 1 {
                return items.pop().ok_or(());
            }
            return Ok(Value::Variant {
                name: name.to_string(),
                items,
            });
        }
        let save = self.pos;
        self.skip_ws();
        if self.eat('{') {
            return self.struct_body(name, depth);
        }
        self.pos = save;
        Ok(Value::Unit(name.to_string()))
    }

    /// After `Name {`: `f: v, g: w }`, possibly ending in `.. }`.
    fn struct_body(&mut self, name: &str, depth: usize) -> PResult<Value> {
        let mut fields = Vec::new();
        loop {
            self.skip_ws();
            if self.eat('}') {
                break;
            }
            if self.rest().starts_with("..") {
                self.pos += 2;
                self.skip_ws();
                if self.eat('}') {
                    break;
                }
                return Err(());
            }
            let field = self.ident()?;
            self.skip_ws();
            if !self.eat(':') {
                return Err(());
            }
            self.skip_ws();
            let v = self.item(depth + 1, '}', false)?;
            fields.push((field.to_string(), v));
            self.skip_ws();
            if self.eat('}') {
                break;
            }
            if !self.eat(',') {
                return Err(());
            }
        }
        Ok(Value::Struct {
            name: name.to_string(),
            fields,
        })
    }

    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// An integer, a float, `-inf`, or a number with a unit suffix (`1.5s`, `10ms`) as text.
    fn number(&mut self) -> PResult<Value> {
        let start = self.pos;
        self.eat('-');
        if self.rest().starts_with("inf") {
            self.pos += 3;
            if self.peek().is_some_and(is_ident_char) {
                return Err(());
            }
            return Ok(Value::Float(f64::NEG_INFINITY));
        }
        if self.digits() == 0 {
            return Err(());
        }
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek2().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.digits();
            is_float = true;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.pos;
            self.pos += 1;
            if !self.eat('-') {
                self.eat('+');
            }
            if self.digits() > 0 {
                is_float = true;
            } else {
                self.pos = save;
            }
        }
        if self.peek().is_some_and(|c| c.is_alphabetic()) {
            while self.peek().is_some_and(is_ident_char) {
                self.bump();
            }
            return Ok(Value::Text(self.slice(start).to_string()));
        }
        let text = self.slice(start);
        if !is_float {
            if let Ok(i) = text.parse::<i128>() {
                return Ok(Value::Int(i));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Ok(Value::Text(text.to_string())),
        }
    }

    fn string(&mut self) -> PResult<String> {
        if !self.eat('"') {
            return Err(());
        }
        let mut out = String::new();
        loop {
            match self.bump().ok_or(())? {
                '"' => return Ok(out),
                '\\' => out.push(self.escape()?),
                c => out.push(c),
            }
        }
    }

    fn char_lit(&mut self) -> PResult<char> {
        if !self.eat('\'') {
            return Err(());
        }
        let c = match self.bump().ok_or(())? {
            '\\' => self.escape()?,
            '\'' => return Err(()),
            c => c,
        };
        if !self.eat('\'') {
            return Err(());
        }
        Ok(c)
    }

    /// The char after a backslash in a string or char literal.
    fn escape(&mut self) -> PResult<char> {
        Ok(match self.bump().ok_or(())? {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '0' => '\0',
            '\\' => '\\',
            '"' => '"',
            '\'' => '\'',
            'x' => {
                let hi = self.bump().and_then(|c| c.to_digit(16)).ok_or(())?;
                let lo = self.bump().and_then(|c| c.to_digit(16)).ok_or(())?;
                char::from_u32(hi * 16 + lo).ok_or(())?
            }
            'u' => {
                if !self.eat('{') {
                    return Err(());
                }
                let mut n: u32 = 0;
                let mut count = 0;
                loop {
                    let c = self.bump().ok_or(())?;
                    if c == '}' {
                        break;
                    }
                    count += 1;
                    if count > 6 {
                        return Err(());
                    }
                    n = n * 16 + c.to_digit(16).ok_or(())?;
                }
                if count == 0 {
                    return Err(());
                }
                char::from_u32(n).ok_or(())?
            }
            _ => return Err(()),
        })
    }
}

pub(crate) mod redact {
    //! What is secret, and redaction of text that did not parse as a whole (a `Debug` text cut at
    //! the size or depth limit, or an element printed by a custom `Debug`).
    //!
    //! **Names.** A name is normalised the way Datadog's scanner does it (ASCII lowercase, `_ - $ @`
    //! removed: `X-Api-Key`, `x_api_key` and `xApiKey` are all `xapikey`) and then compared:
    //! - [`WHOLE`]: the whole normalised name (`pwd`, `pass`, `auth`, `pin`, `jwt`…), so that
    //!   `passenger`, `author`, `spin` or `compass` stay visible;
    //! - [`FRAGMENTS`]: anywhere in the normalised name (`password`, `token`, `secret`, `apikey`…,
    //!   which also makes the suffix rules `*password`, `*token`, `*secret`: `dbPassword`,
    //!   `refresh_token`, `client-secret`). These were the whole list before; they still match
    //!   where they did.
    //!
    //! **Types.** `LPROBE_REDACT_TYPES` (comma-separated type names or `::`-path suffixes, e.g.
    //! `Credentials,auth::Key`): a captured value whose type is, or contains, one of them is never
    //! formatted (`<redacted: TYPE>`); a struct or tuple struct of that name met inside another
    //! value's `Debug` text is replaced the same way (compared by last path segment, the only part
    //! `Debug` prints).
    //!
    //! **Text.** [`text`] scans `Debug`-like text as far as it goes: after a secret name followed by
    //! `:` or `=` (struct fields, map keys, `key=value` text) the value is replaced up to its end
    //! (a top-level `,` or an unmatched closing bracket, string literals and brackets balanced), or
    //! up to the end of the text when the text ends first (a cut value); in a tuple or list whose
    //! first item is a secret name (`("authorization", "Bearer …")`), the second item is replaced.

    use std::sync::OnceLock;

    /// Secret when the whole normalised name is one of these.
    const WHOLE: [&str; 22] = [
        "pwd",
        "pass",
        "auth",
        "bearer",
        "jwt",
        "ssn",
        "pin",
        "otp",
        "cvv",
        "cvv2",
        "cvc",
        "creds",
        "signature",
        "xforwardedfor",
        "xapikey",
        "setcookie",
        "sessionid",
        "accesstoken",
        "refreshtoken",
        "privatekey",
        "authorization",
        "credentials",
    ];

    /// Secret when the normalised name contains one of these.
    const FRAGMENTS: [&str; 15] = [
        "password",
        "passwd",
        "passphrase",
        "passcode",
        "secret",
        "token",
        "apikey",
        "authorization",
        "cookie",
        "credential",
        "privatekey",
        "session",
        "creditcard",
        "cardnumber",
        "bearer",
    ];

    /// Longest name normalised without allocating.
    const NAME_BUF: usize = 64;

    /// Whether `name` is secret by the built-in rules (see the module docs).
    #[inline]
    pub(crate) fn builtin_is_secret(name: &str) -> bool {
        let mut buf = [0u8; NAME_BUF];
        let mut heap = Vec::new();
        let mut n = 0;
        for &b in name.as_bytes() {
            if matches!(b, b'_' | b'-' | b'$' | b'@') {
                continue;
            }
            let b = b.to_ascii_lowercase();
            match buf.get_mut(n) {
                Some(slot) => *slot = b,
                None => {
                    if heap.is_empty() {
                        heap.extend_from_slice(&buf);
                    }
                    heap.push(b);
                }
            }
            n += 1;
        }
        let norm: &[u8] = if heap.is_empty() {
            buf.get(..n).unwrap_or(&[])
        } else {
            &heap
        };
        WHOLE.iter().any(|w| w.as_bytes() == norm)
            || FRAGMENTS
                .iter()
                .any(|f| norm.windows(f.len()).any(|w| w == f.as_bytes()))
    }

    /// `LPROBE_REDACT_TYPES`, parsed once (entries without a leading `::`, empty ones dropped).
    #[inline]
    pub(crate) fn types() -> &'static [String] {
        static TYPES: OnceLock<Vec<String>> = OnceLock::new();
        TYPES.get_or_init(|| {
            std::env::var("LPROBE_REDACT_TYPES")
                .map(|v| parse_types(&v))
                .unwrap_or_default()
        })
    }

    #[inline]
    pub(crate) fn parse_types(v: &str) -> Vec<String> {
        v.split(',')
            .map(|t| t.trim().trim_start_matches("::").to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// Whether `path` (`a::b::C`) is `entry` or ends with `::entry`.
    #[inline]
    fn path_matches(path: &str, entry: &str) -> bool {
        match path.strip_suffix(entry) {
            Some("") => true,
            Some(head) => head.ends_with("::"),
            None => false,
        }
    }

    /// Whether a value of the type named `type_name` (as `std::any::type_name` spells it) must not
    /// be formatted: one of the paths it mentions (itself, a generic argument, a referent) is
    /// listed in `types`.
    #[inline]
    pub(crate) fn type_is_redacted(type_name: &str, types: &[String]) -> bool {
        !types.is_empty()
            && type_name
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .filter(|p| !p.is_empty())
                .any(|p| types.iter().any(|t| path_matches(p, t)))
    }

    /// Whether a struct or variant name printed by `Debug` (a bare name, maybe a path) names a
    /// listed type: compared by last path segment, the part a derived `Debug` prints.
    #[inline]
    pub(crate) fn printed_type_is_redacted(printed: &str, types: &[String]) -> bool {
        if types.is_empty() {
            return false;
        }
        let last = |s: &str| {
            let s = s.split('<').next().unwrap_or(s);
            s.rsplit("::").next().unwrap_or(s).trim().to_owned()
        };
        let name = last(printed);
        !name.is_empty() && types.iter().any(|t| last(t) == name)
    }

    /// The marker a value of a redacted type is replaced by.
    pub(crate) fn type_marker(name: &str) -> String {
        format!("<redacted: {name}>")
    }

    /// Whether `text` (a value's `{:?}`) prints a value of a listed type that `v` (its parse,
    /// redacted) does not show as a marker: a type's name as a word followed by `{` or `(`
    /// appears more often in the text than markers of it in the value. The parser is a
    /// heuristic over arbitrary `Debug` output; when it took a listed type's fields for
    /// another value's (fuzzing found one such misreading), this fails closed and the caller
    /// redacts the whole value. Text that merely mentions `Name {` inside a string is redacted
    /// too: over-redaction, the safe side.
    pub(crate) fn listed_types_escaped(text: &str, v: &super::Value, types: &[String]) -> bool {
        use super::Value;
        fn markers(v: &Value, name: &str) -> usize {
            match v {
                Value::Str(s) => usize::from(
                    s.strip_prefix("<redacted: ")
                        .and_then(|m| m.strip_suffix('>'))
                        .is_some_and(|m| printed_type_is_redacted(m, &[name.to_owned()])),
                ),
                Value::Seq(items) | Value::Variant { items, .. } => {
                    items.iter().map(|i| markers(i, name)).sum()
                }
                Value::Struct { fields, .. } => fields.iter().map(|(_, f)| markers(f, name)).sum(),
                Value::Map(entries) => entries
                    .iter()
                    .map(|(k, e)| markers(k, name) + markers(e, name))
                    .sum(),
                _ => 0,
            }
        }
        let b = text.as_bytes();
        types.iter().any(|t| {
            let name = t.rsplit("::").next().unwrap_or(t);
            if name.is_empty() {
                return false;
            }
            let printed = text
                .match_indices(name)
                .filter(|(at, _)| {
                    let before = at.checked_sub(1).and_then(|i| b.get(i));
                    let word_start =
                        before.is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
                    let after = text.get(at + name.len()..).unwrap_or("");
                    let after = after.strip_prefix('<').map_or(after, |_| {
                        // Generic arguments, as in `Keyring<u8> { .. }`.
                        after.split_once('>').map_or("", |(_, rest)| rest)
                    });
                    word_start && matches!(after.trim_start().as_bytes().first(), Some(b'{' | b'('))
                })
                .count();
            printed > markers(v, name)
        })
    }

    /// A bracket the scanner is inside.
    struct Frame {
        /// `(`/`[`: a tuple or list (the pair rule applies); `{`: a struct, map or set.
        seq: bool,
        /// Items of this frame already ended by a top-level `,`.
        item: usize,
        /// The current item so far is exactly one name token (its range), else `None`.
        only_name: Option<(usize, usize)>,
        /// The current item has seen a token other than whitespace.
        started: bool,
    }

    fn is_name_byte(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b >= 0x80
    }

    /// The index after the string literal opening at `i` (a `"`), or `None` if it never closes.
    fn string_end(b: &[u8], i: usize) -> Option<usize> {
        let mut j = i + 1;
        while let Some(&c) = b.get(j) {
            match c {
                b'\\' => j += 2,
                b'"' => return Some(j + 1),
                _ => j += 1,
            }
        }
        None
    }

    /// The index after a char literal opening at `i` (a `'`), if it is one (`'a'`, `'\''`,
    /// `'\u{301}'`, `'é'`).
    fn char_end(b: &[u8], i: usize) -> Option<usize> {
        match b.get(i + 1)? {
            b'\\' => {
                let mut j = i + 3;
                while j < b.len() && j < i + 14 {
                    if b.get(j) == Some(&b'\'') {
                        return Some(j + 1);
                    }
                    j += 1;
                }
                None
            }
            b'\'' => None,
            &c => {
                let len = match c {
                    0..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 2 + len)
            }
        }
    }

    /// Where the value starting at `start` ends: at a top-level `,` or unmatched closing bracket
    /// (and, for `key=value` text, at top-level whitespace, `&` or `;`), with trailing whitespace
    /// left out; `None` when the text ends first (a cut value: replace up to the end).
    fn value_end(b: &[u8], start: usize, eq: bool) -> Option<usize> {
        let mut depth = 0usize;
        let mut j = start;
        while let Some(&c) = b.get(j) {
            match c {
                b'"' => {
                    j = string_end(b, j)?;
                    continue;
                }
                b'\'' => {
                    if let Some(e) = char_end(b, j) {
                        j = e;
                        continue;
                    }
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => break,
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 => break,
                b' ' | b'\t' | b'\n' | b'&' | b';' if eq && depth == 0 && j > start => break,
                _ => {}
            }
            j += 1;
        }
        if j >= b.len() {
            return None;
        }
        while j > start && b.get(j - 1).is_some_and(u8::is_ascii_whitespace) {
            j -= 1;
        }
        Some(j)
    }

    /// The token at `i` (its first byte `c`) that may be a name: a string literal (its
    /// contents, and where it ends, `None` if unterminated) or an identifier path (`a::b`).
    fn name_token(b: &[u8], i: usize, c: u8) -> Option<(usize, usize, Option<usize>)> {
        match c {
            b'"' => Some((
                i + 1,
                string_end(b, i).map_or(b.len(), |e| e - 1),
                string_end(b, i),
            )),
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let mut j = i;
                loop {
                    while b.get(j).is_some_and(|&c| is_name_byte(c)) {
                        j += 1;
                    }
                    if b.get(j) == Some(&b':')
                        && b.get(j + 1) == Some(&b':')
                        && b.get(j + 2).is_some_and(|&c| is_name_byte(c))
                    {
                        j += 2;
                        continue;
                    }
                    break;
                }
                Some((i, j, Some(j)))
            }
            _ => None,
        }
    }

    /// The redacted form of `s`, or `None` when nothing in it is secret (see the module docs).
    /// Never cuts inside a UTF-8 character: every position it cuts at is an ASCII byte.
    pub(crate) fn text(
        s: &str,
        is_secret: &dyn Fn(&str) -> bool,
        types: &[String],
    ) -> Option<String> {
        let b = s.as_bytes();
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut frames: Vec<Frame> = Vec::new();
        // The name token just before (only whitespace since), for `name:` / `name=`.
        let mut last_name: Option<(usize, usize)> = None;
        let mut i = 0;
        // Replaces `s[from..to]` (to = None: the rest) by `with`; returns where to go on.
        let mut replace = |from: usize, to: Option<usize>, with: &str| -> usize {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(s.get(copied..from).unwrap_or(""));
            o.push_str(with);
            copied = to.unwrap_or(b.len());
            copied
        };
        while let Some(&c) = b.get(i) {
            // Tokens that may be names: string literals and identifiers (paths).
            let token = name_token(b, i, c);
            if let Some((from, to, end)) = token {
                let name = s.get(from..to).unwrap_or("");
                // A struct or tuple struct of a redacted type: the whole value goes.
                if c != b'"' && !types.is_empty() && printed_type_is_redacted(name, types) {
                    let mut k = to;
                    while b.get(k) == Some(&b' ') {
                        k += 1;
                    }
                    if matches!(b.get(k), Some(b'{' | b'(')) {
                        // From the opener, the value ends after its matching closer.
                        let stop = value_end(b, k, false).filter(|&e| e > k);
                        i = replace(from, stop, &format!("\"{}\"", type_marker(name)));
                        last_name = None;
                        if let Some(f) = frames.last_mut() {
                            f.only_name = None;
                            f.started = true;
                        }
                        continue;
                    }
                }
                if let Some(f) = frames.last_mut() {
                    f.only_name = if f.started { None } else { Some((from, to)) };
                    f.started = true;
                }
                last_name = Some((from, to));
                match end {
                    Some(e) => i = e,
                    None => break, // an unterminated string: nothing after it
                }
                continue;
            }
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => {
                    i += 1;
                    continue;
                }
                b':' | b'=' => {
                    let sep_ok = if c == b':' {
                        b.get(i + 1) != Some(&b':') && (i == 0 || b.get(i - 1) != Some(&b':'))
                    } else {
                        b.get(i + 1) != Some(&b'=')
                    };
                    if let (Some((from, to)), true) = (last_name, sep_ok) {
                        if is_secret(s.get(from..to).unwrap_or("")) {
                            let mut start = i + 1;
                            while b.get(start) == Some(&b' ') {
                                start += 1;
                            }
                            let end = value_end(b, start, c == b'=');
                            i = replace(start, end, "\"<redacted>\"");
                            last_name = None;
                            if let Some(f) = frames.last_mut() {
                                f.only_name = None;
                            }
                            continue;
                        }
                    }
                }
                b'\'' => {
                    if let Some(e) = char_end(b, i) {
                        i = e;
                        last_name = None;
                        if let Some(f) = frames.last_mut() {
                            f.only_name = None;
                            f.started = true;
                        }
                        continue;
                    }
                }
                b'(' | b'[' | b'{' => {
                    if let Some(f) = frames.last_mut() {
                        f.only_name = None;
                        f.started = true;
                    }
                    frames.push(Frame {
                        seq: c != b'{',
                        item: 0,
                        only_name: None,
                        started: false,
                    });
                }
                b')' | b']' | b'}' => {
                    frames.pop();
                    if let Some(f) = frames.last_mut() {
                        f.only_name = None;
                    }
                }
                b',' => {
                    let pair = frames.last().is_some_and(|f| f.seq && f.item == 0)
                        && frames
                            .last()
                            .and_then(|f| f.only_name)
                            .is_some_and(|(from, to)| is_secret(s.get(from..to).unwrap_or("")));
                    if let Some(f) = frames.last_mut() {
                        f.item += 1;
                        f.only_name = None;
                        f.started = false;
                    }
                    if pair {
                        let mut start = i + 1;
                        while b.get(start) == Some(&b' ') {
                            start += 1;
                        }
                        let end = value_end(b, start, false);
                        i = replace(start, end, "\"<redacted>\"");
                        last_name = None;
                        if let Some(f) = frames.last_mut() {
                            f.started = true;
                        }
                        continue;
                    }
                }
                _ => {
                    if let Some(f) = frames.last_mut() {
                        f.only_name = None;
                        f.started = true;
                    }
                }
            }
            last_name = None;
            i += 1;
        }
        let mut o = out?;
        o.push_str(s.get(copied..).unwrap_or(""));
        Some(o)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn red(s: &str) -> String {
            text(s, &builtin_is_secret, &[]).unwrap_or_else(|| s.to_owned())
        }

        #[test]
        fn names_are_normalised_and_compared_whole_or_by_fragment() {
            for n in [
                "password",
                "userPassword",
                "db_password",
                "API_KEY",
                "x-api-key",
                "X-Api-Key",
                "privateKey",
                "private_key",
                "pwd",
                "PASS",
                "creds",
                "auth",
                "Authorization",
                "bearer",
                "jwt",
                "ssn",
                "pin",
                "otp",
                "cvv",
                "signature",
                "x-forwarded-for",
                "Set-Cookie",
                "session_id",
                "x_session_id",
                "access_token",
                "refreshToken",
                "client$secret",
                "credit_card_number",
                "cardNumber",
                "credentials",
                "$password@",
            ] {
                assert!(builtin_is_secret(n), "{n}");
            }
            for n in [
                "passenger",
                "author",
                "spin",
                "compass",
                "name",
                "id",
                "tok",
                "pinned",
                "authority",
                "",
            ] {
                assert!(!builtin_is_secret(n), "{n}");
            }
            let long = format!("{}Password", "x".repeat(100));
            assert!(builtin_is_secret(&long));
        }

        #[test]
        fn types_match_by_path_suffix() {
            let t = parse_types(" Credentials, ::auth::Key ,,");
            assert_eq!(t, vec!["Credentials".to_owned(), "auth::Key".to_owned()]);
            assert!(type_is_redacted("&app::Credentials", &t));
            assert!(type_is_redacted("alloc::vec::Vec<app::auth::Key>", &t));
            assert!(type_is_redacted("Credentials", &t));
            assert!(!type_is_redacted("app::MyCredentials", &t));
            assert!(!type_is_redacted("app::other::Key", &t));
            assert!(!type_is_redacted("app::Credentials", &[]));
            assert!(printed_type_is_redacted("Key", &t));
            assert!(printed_type_is_redacted("Credentials", &t));
            assert!(!printed_type_is_redacted("Keys", &t));
        }

        #[test]
        fn text_fields_are_redacted_as_far_as_the_text_goes() {
            assert_eq!(
                red(r#"Account { name: "ann", db_password: "hunter2", history: [1, 2, 3"#),
                r#"Account { name: "ann", db_password: "<redacted>", history: [1, 2, 3"#
            );
            // Cut inside the secret: replaced up to the end.
            assert_eq!(
                red(r#"Account { name: "ann", db_password: "hunt"#),
                r#"Account { name: "ann", db_password: "<redacted>""#
            );
            assert_eq!(
                red(r#"A { token: Some(Tok { v: [1, 2"#),
                r#"A { token: "<redacted>""#
            );
            // Unquoted values of a custom `Debug`, and `key=value` text.
            assert_eq!(
                red("Conn { peer: 127.0.0.1:80, password: hunter2, up: true }"),
                r#"Conn { peer: 127.0.0.1:80, password: "<redacted>", up: true }"#
            );
            assert_eq!(
                red("url?user=ann&token=abc123&x=1 pwd=zz"),
                r#"url?user=ann&token="<redacted>"&x=1 pwd="<redacted>""#
            );
            // Map keys, and header pairs.
            assert_eq!(
                red(r#"{"X-Api-Key": "k1", "accept": "*/*"}"#),
                r#"{"X-Api-Key": "<redacted>", "accept": "*/*"}"#
            );
            assert_eq!(
                red(r#"[("authorization", "Bearer abc"), ("accept", "x"), ("x-api-key", "k"#),
                r#"[("authorization", "<redacted>"), ("accept", "x"), ("x-api-key", "<redacted>""#
            );
            // Strings, chars and paths are not names followed by a separator.
            assert_eq!(
                red(r#"S { note: "password: x", c: ':', p: a::token::B, q: '"' }"#),
                r#"S { note: "password: x", c: ':', p: a::token::B, q: '"' }"#
            );
            assert_eq!(text("no secrets [1, 2]", &builtin_is_secret, &[]), None);
            // Multi-byte text around a redaction.
            assert_eq!(
                red("é { pass: \"ü\", ö: 1 }"),
                "é { pass: \"<redacted>\", ö: 1 }"
            );
        }

        #[test]
        fn text_values_of_redacted_types_are_replaced() {
            let t = parse_types("Key");
            assert_eq!(
                text(
                    r#"A { k: Key { v: "s" }, n: 1, t: Key("x"), u: Key { w: [1"#,
                    &builtin_is_secret,
                    &t
                )
                .as_deref(),
                Some(
                    r#"A { k: "<redacted: Key>", n: 1, t: "<redacted: Key>", u: "<redacted: Key>""#
                )
            );
        }
    }
}

/// A captured primitive read in place (`hot::capture::scalar_of`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scalar<'a> {
    Int(i128),
    Float(f64),
    Bool(bool),
    Char(char),
    Str(&'a str),
}

impl Scalar<'_> {
    #[inline]
    pub(crate) fn to_value(self) -> Value {
        match self {
            Scalar::Int(i) => Value::Int(i),
            Scalar::Float(f) => Value::Float(f),
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Char(c) => Value::Char(c),
            Scalar::Str(s) => Value::Str(s.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Raw text (an element that does not parse) with a char literal holding a double quote:
    /// the quote opens no string, so what follows keeps its structure (fuzzing found a
    /// `LPROBE_REDACT_TYPES` struct after `('"', …)` read as part of a string, its fields then
    /// taken for another struct's and written unredacted).
    #[test]
    fn a_quote_in_a_char_literal_opens_no_string_in_raw_text() {
        use super::Value;
        // `u`'s value does not end cleanly (`extra`), so it is read again as raw text.
        let text = r#"[(T { u: ('"', 1) extra }, Keyring { key: "s3cr3t" })]"#;
        let Value::Seq(items) = super::parse_debug(text) else {
            panic!("not a list: {:?}", super::parse_debug(text));
        };
        let Some(Value::Seq(pair)) = items.first() else {
            panic!("not a pair: {items:?}");
        };
        assert!(
            matches!(pair.get(1), Some(Value::Struct { name, .. }) if name == "Keyring"),
            "{pair:?}"
        );
    }

    /// Text built to fail deep down is read again at every level it fails at: the parser's
    /// step budget ends that (the value stays text), while deep ordinary values still parse.
    #[test]
    fn parsing_is_bounded_by_steps_and_deep_values_still_parse() {
        // The shape fuzzing found: variants opened and never closed as values, with commas
        // and generics that make each level fall back to raw text.
        let unit = "k(r(Er<\u{0}E)K>,Er(:-E)K>,r<\u{0}E)K>,(r(Er<\u{0}E)K>,Er(Eqr(qE<\u{0}E)K>,";
        let hostile = unit.repeat(4);
        let mut p = super::Parser {
            s: &hostile,
            pos: 0,
            steps: std::cell::Cell::new(usize::MAX),
        };
        let _ = p.value(0);
        let unbounded = usize::MAX - p.steps.get();
        let budget = super::PARSE_STEPS_PER_BYTE * hostile.len() + 1024;
        assert!(
            unbounded > budget,
            "the input is hostile: {unbounded} steps"
        );
        let mut p = super::Parser {
            s: &hostile,
            pos: 0,
            steps: std::cell::Cell::new(budget),
        };
        let _ = p.value(0);
        assert_eq!(p.steps.get(), 0, "the budget stopped it");
        assert!(matches!(
            super::parse_debug(&hostile),
            super::Value::Text(_)
        ));
        // Thirty levels of ordinary nesting parse, well within the budget.
        let mut deep = String::from("1");
        for i in 0..30 {
            deep = format!("Node {{ id: {i}, child: Some({deep}), tags: [\"a\", \"b\"] }}");
        }
        match super::parse_debug(&deep) {
            super::Value::Struct { name, .. } => assert_eq!(name, "Node"),
            v => panic!("deep value did not parse: {v:?}"),
        }
    }

    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    fn p(s: &str) -> Value {
        parse_debug(s)
    }

    fn dbg<T: std::fmt::Debug>(t: T) -> Value {
        parse_debug(&format!("{t:?}"))
    }

    fn js(v: &Value) -> String {
        let mut o = String::new();
        write_json(v, &mut o, &Limits::default());
        o
    }

    fn jl(v: &Value, max_str: usize, max_items: usize, max_depth: usize) -> String {
        let mut o = String::new();
        let l = Limits {
            max_str,
            max_items,
            max_depth,
        };
        write_json(v, &mut o, &l);
        o
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Order {
        id: u64,
        customer: String,
        items: Vec<Item>,
        state: State,
        note: Option<String>,
        paid: bool,
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Item {
        sku: &'static str,
        qty: i32,
        price: f64,
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    enum State {
        Ready,
        Held(u8, char),
        Moved { to: (i8, i8) },
    }

    #[derive(Debug)]
    struct UserId(#[allow(dead_code)] u32);

    #[test]
    fn scalars() {
        assert_eq!(p("42"), Value::Int(42));
        assert_eq!(p("-7"), Value::Int(-7));
        assert_eq!(dbg(u128::MAX), Value::Float(u128::MAX as f64));
        assert_eq!(dbg(i128::MIN), Value::Int(i128::MIN));
        assert_eq!(p("1.5"), Value::Float(1.5));
        assert_eq!(p("1e-7"), Value::Float(1e-7));
        assert_eq!(p("-2.5E3"), Value::Float(-2500.0));
        assert!(matches!(p("NaN"), Value::Float(f) if f.is_nan()));
        assert_eq!(p("inf"), Value::Float(f64::INFINITY));
        assert_eq!(p("-inf"), Value::Float(f64::NEG_INFINITY));
        assert_eq!(p("true"), Value::Bool(true));
        assert_eq!(p("false"), Value::Bool(false));
        assert_eq!(p("None"), Value::Null);
        assert_eq!(p("Some(3)"), Value::Int(3));
        assert_eq!(p("()"), Value::Seq(vec![]));
        assert_eq!(p("  5  "), Value::Int(5));
    }

    #[test]
    fn strings_and_chars() {
        assert_eq!(dbg("a\"b\\c\n\t\r\0'"), s("a\"b\\c\n\t\r\0'"));
        assert_eq!(p(r#""\u{1F600}""#), s("😀"));
        assert_eq!(dbg("e\u{301}"), s("e\u{301}"));
        assert_eq!(dbg('a'), Value::Char('a'));
        assert_eq!(dbg('\n'), Value::Char('\n'));
        assert_eq!(dbg('\''), Value::Char('\''));
        assert_eq!(p(r"'\u{301}'"), Value::Char('\u{301}'));
        assert_eq!(
            p(r#""unterminated"#),
            Value::Text(r#""unterminated"#.into())
        );
        assert_eq!(p(r#""\q""#), Value::Text(r#""\q""#.into()));
        assert_eq!(p(r#""\u{110000}""#), Value::Text(r#""\u{110000}""#.into()));
    }

    #[test]
    fn collections() {
        assert_eq!(
            dbg(vec![1, 2, 3]),
            Value::Seq(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
        );
        assert_eq!(
            dbg((1, "x", 'c')),
            Value::Seq(vec![Value::Int(1), s("x"), Value::Char('c')])
        );
        assert_eq!(dbg((5,)), Value::Seq(vec![Value::Int(5)]));
        let m: BTreeMap<&str, i32> = [("a", 1), ("b", 2)].into();
        assert_eq!(
            dbg(&m),
            Value::Map(vec![(s("a"), Value::Int(1)), (s("b"), Value::Int(2))])
        );
        let set: BTreeSet<i32> = [3, 4].into();
        assert_eq!(dbg(&set), Value::Seq(vec![Value::Int(3), Value::Int(4)]));
        assert_eq!(dbg(HashMap::<u8, u8>::new()), Value::Map(vec![]));
        assert_eq!(p("[]"), Value::Seq(vec![]));
        let nested: Vec<Vec<Option<i32>>> = vec![vec![Some(1), None], vec![]];
        assert_eq!(js(&dbg(nested)), "[[1,null],[]]");
    }

    #[test]
    fn structs_and_enums() {
        let o = Order {
            id: 7,
            customer: "Ann".into(),
            items: vec![Item {
                sku: "A-1",
                qty: 2,
                price: 9.5,
            }],
            state: State::Held(3, 'x'),
            note: None,
            paid: false,
        };
        let v = dbg(&o);
        assert_eq!(
            js(&v),
            r#"{"id":7,"customer":"Ann","items":[{"sku":"A-1","qty":2,"price":9.5}],"state":{"Held":[3,"x"]},"note":null,"paid":false}"#
        );
        match &v {
            Value::Struct { name, fields } => {
                assert_eq!(name, "Order");
                assert_eq!(fields.len(), 6);
            }
            other => panic!("not a struct: {other:?}"),
        }
        assert_eq!(dbg(State::Ready), Value::Unit("Ready".into()));
        assert_eq!(js(&dbg(State::Moved { to: (-1, 2) })), r#"{"to":[-1,2]}"#);
        assert_eq!(
            dbg(UserId(5)),
            Value::Variant {
                name: "UserId".into(),
                items: vec![Value::Int(5)]
            }
        );
        let ok: Result<u8, String> = Ok(3);
        assert_eq!(js(&dbg(ok)), r#"{"Ok":3}"#);
        assert_eq!(dbg(std::cmp::Ordering::Less), Value::Unit("Less".into()));
        assert_eq!(p("Ordering::Less"), Value::Unit("Ordering::Less".into()));
        assert_eq!(
            p("Name { f: 1, .. }"),
            Value::Struct {
                name: "Name".into(),
                fields: vec![("f".into(), Value::Int(1))]
            }
        );
        assert_eq!(
            p("Name { .. }"),
            Value::Struct {
                name: "Name".into(),
                fields: vec![]
            }
        );
        assert_eq!(
            dbg(std::marker::PhantomData::<u8>),
            Value::Unit("PhantomData<u8>".into())
        );
    }

    #[test]
    fn durations_and_unparseable_parts() {
        assert_eq!(
            dbg(std::time::Duration::from_millis(1500)),
            Value::Text("1.5s".into())
        );
        assert_eq!(p("10ms"), Value::Text("10ms".into()));
        assert_eq!(p("3µs"), Value::Text("3µs".into()));
        let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            p(&format!("Conn {{ peer: {addr:?}, up: true }}")),
            Value::Struct {
                name: "Conn".into(),
                fields: vec![
                    ("peer".into(), Value::Text("127.0.0.1:8080".into())),
                    ("up".into(), Value::Bool(true)),
                ]
            }
        );
        let m: BTreeMap<std::net::SocketAddr, u8> = [(addr, 1)].into();
        assert_eq!(
            dbg(&m),
            Value::Map(vec![(Value::Text("127.0.0.1:8080".into()), Value::Int(1))])
        );
        for bad in [
            "",
            "hello world",
            "[1, 2",
            "{a: }",
            "Foo(",
            "1 2",
            "\"a\" x",
            ")",
            "-",
            "'ab'",
        ] {
            assert_eq!(p(bad), Value::Text(bad.into()), "{bad:?}");
        }
    }

    #[test]
    fn hostile_input_does_not_overflow_or_hang() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let v = p(&deep);
        // Past the parse depth the rest is kept as text, and JSON output is depth-limited.
        assert_eq!(js(&v), r#"[[[[["<depth limit>"]]]]]"#);
        let open = "([{".repeat(50_000);
        assert_eq!(p(&open), Value::Text(open.clone()));
        let junk = "\"\\".repeat(10_000);
        assert_eq!(p(&junk), Value::Text(junk.clone()));
    }

    #[test]
    fn json_truncation_is_visible() {
        assert_eq!(jl(&s("héllo"), 2, 25, 5), r#""hé…<+3 chars>""#);
        assert_eq!(jl(&s("abc"), 3, 25, 5), r#""abc""#);
        let seq = Value::Seq((0..5).map(Value::Int).collect());
        assert_eq!(jl(&seq, 256, 2, 5), r#"[0,1,"<+3 more>"]"#);
        assert_eq!(jl(&seq, 256, 0, 5), r#"["<+5 more>"]"#);
        let st = p("S { a: 1, b: 2, c: 3 }");
        assert_eq!(jl(&st, 256, 1, 5), r#"{"a":1,"<truncated>":"+2 more"}"#);
        assert_eq!(jl(&st, 256, 25, 0), r#""<depth limit>""#);
        let nested = p("[[1], 2]");
        assert_eq!(jl(&nested, 256, 25, 1), r#"["<depth limit>",2]"#);
        assert_eq!(js(&Value::Truncated("<cut>".into())), r#""<cut>""#);
        assert_eq!(js(&Value::Float(f64::NAN)), r#""NaN""#);
        assert_eq!(js(&Value::Char('"')), r#""\"""#);
    }

    #[test]
    fn json_maps_and_variants() {
        assert_eq!(js(&p("{1: 2, 'c': 3, Red: 4}")), r#"{"1":2,"c":3,"Red":4}"#);
        assert_eq!(js(&p("{(1, 2): 3}")), "[[[1,2],3]]");
        assert_eq!(js(&p("Pair(1, \"a\")")), r#"{"Pair":[1,"a"]}"#);
        assert_eq!(js(&p("Empty()")), r#"{"Empty":[]}"#);
        assert_eq!(js(&p("Ordering::Less")), r#""Ordering::Less""#);
    }

    #[test]
    fn accessors() {
        let v =
            p(r#"Order { id: 7, items: [Item { qty: 2 }], tag: Tag(9, "x"), m: {"k": 1, 3: 4} }"#);
        assert_eq!(v.field("id"), Some(&Value::Int(7)));
        assert_eq!(v.field("nope"), None);
        let items = v.field("items").unwrap();
        assert_eq!(items.len(), Some(1));
        assert_eq!(items.index(0).unwrap().field("qty"), Some(&Value::Int(2)));
        assert_eq!(items.index(1), None);
        let tag = v.field("tag").unwrap();
        assert_eq!(tag.field("1"), Some(&s("x")));
        assert_eq!(tag.field("+1"), None);
        assert_eq!(tag.index(0), Some(&Value::Int(9)));
        let m = v.field("m").unwrap();
        assert_eq!(m.field("k"), Some(&Value::Int(1)));
        assert_eq!(m.index(3), Some(&Value::Int(4)));
        assert_eq!(m.field_names(), vec!["k"]);
        assert_eq!(v.field_names(), vec!["id", "items", "tag", "m"]);
        assert_eq!(v.len(), Some(4));
        // Bytes, as Rust's `str::len` says.
        assert_eq!(s("héllo").len(), Some(6));
        assert_eq!(s("").is_empty(), Some(true));
        assert_eq!(Value::Int(1).len(), None);
        assert_eq!(p("(1, 2)").field("1"), Some(&Value::Int(2)));
    }

    #[test]
    fn redaction() {
        let mut v = p(
            r#"Login { user: "ann", Password: "hunter2", inner: Cfg { api_key: Key("k") }, h: {"Authorization": "Bearer x", "x": 1} }"#,
        );
        v.redact(&default_is_secret);
        assert_eq!(
            js(&v),
            r#"{"user":"ann","Password":"<redacted>","inner":{"api_key":"<redacted>"},"h":{"Authorization":"<redacted>","x":1}}"#
        );
        assert!(default_is_secret("SESSION_ID"));
        assert!(default_is_secret("db_passwd"));
        assert!(!default_is_secret("username"));
    }
}
