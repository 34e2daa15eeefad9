//! What a hit takes from the application thread ([`Captured`]: the `{:?}` text of a value, or
//! why there is none) and how the output thread turns it into JSON ([`Body`]).
//!
//! The split keeps the application thread's work to what needs the borrowed value: running
//! its `Debug` impl into a bounded buffer. Parsing that text into a structured value,
//! redacting fields, rendering templates and escaping JSON happen on `lprobe-output`, except
//! for the values a condition reads (a condition must be decided on the spot).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::template::Template;
use crate::value::{self, Limits, Value};
use crate::{json, Val};

/// Largest `{:?}` text kept for one value, and JSON written for a whole snapshot.
const MAX_VALUE_TEXT: usize = 64 * 1024;
pub(crate) const MAX_SNAPSHOT: usize = 64 * 1024;

/// One captured value, as taken on the application thread.
#[derive(Clone, Debug)]
pub(crate) enum Captured {
    /// A primitive read directly (no `Debug` formatting, no parsing).
    Prim(Value),
    /// A short string read directly, kept inline (no allocation on the application thread).
    Short(ShortStr),
    /// Complete `{:?}` text.
    Text(String),
    /// `{:?}` text cut at `MAX_VALUE_TEXT`.
    Cut(String),
    /// The type has no `Debug`: its name.
    Opaque(&'static str),
    /// `Debug` panicked: the message.
    Panicked(String),
    /// `Debug` returned an error.
    Failed(&'static str),
    /// The name is secret: nothing was formatted.
    Redacted,
}

thread_local! {
    /// The message of a panic raised while capturing, for the `<panicked: …>` marker.
    static PANIC_MSG: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps a panic message raised inside the runtime.
pub(crate) fn note_panic(msg: String) {
    let _ = PANIC_MSG.try_with(|m| *m.borrow_mut() = Some(msg));
}

/// Deepest bracket nesting formatted: a derived `Debug` of a deep structure recurses once per
/// level on the application thread's stack, so formatting stops there (the value is then
/// marked truncated). Deeper than JSON's depth limit anyway.
const MAX_NESTING: usize = 24;

/// A `fmt::Write` that stops (with an error) past a byte budget or a nesting depth.
struct Bounded {
    buf: String,
    cut: bool,
    depth: usize,
    in_str: bool,
    escaped: bool,
}

impl Bounded {
    /// Tracks bracket nesting outside string literals; false once too deep.
    fn nesting_ok(&mut self, s: &str) -> bool {
        for b in s.bytes() {
            if self.in_str {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'(' | b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > MAX_NESTING {
                        return false;
                    }
                }
                b')' | b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        true
    }
}

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if !self.nesting_ok(s) {
            self.cut = true;
            return Err(std::fmt::Error);
        }
        let room = MAX_VALUE_TEXT.saturating_sub(self.buf.len());
        if s.len() <= room {
            self.buf.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.buf.push_str(&s[..end]);
        self.cut = true;
        Err(std::fmt::Error)
    }
}

impl Captured {
    /// Runs the value's `Debug` impl (never letting a panic out), unless its name is secret.
    pub(crate) fn take(secret: bool, val: &Val<'_>) -> Captured {
        if secret {
            return Captured::Redacted;
        }
        let (dbg, type_name) = val.parts();
        let Some(dbg) = dbg else {
            return Captured::Opaque(type_name);
        };
        match scalar(dbg, type_name) {
            Some(Scalar::Str(s)) => {
                return match ShortStr::new(s) {
                    Some(short) => Captured::Short(short),
                    None => Captured::Prim(Value::Str(s.to_owned())),
                }
            }
            Some(s) => return Captured::Prim(s.to_value()),
            None => {}
        }
        let mut w = Bounded {
            buf: String::new(),
            cut: false,
            depth: 0,
            in_str: false,
            escaped: false,
        };
        match catch_unwind(AssertUnwindSafe(|| write!(w, "{dbg:?}"))) {
            Ok(_) if w.cut => Captured::Cut(w.buf),
            Ok(Ok(())) => Captured::Text(w.buf),
            Ok(Err(_)) => Captured::Failed(type_name),
            Err(_) => Captured::Panicked(
                PANIC_MSG
                    .try_with(|m| m.borrow_mut().take())
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "unknown".into()),
            ),
        }
    }

    /// The structured value, with secret fields redacted.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Captured::Prim(v) => v.clone(),
            Captured::Short(s) => Value::Str(s.as_str().to_owned()),
            Captured::Text(t) => {
                let mut v = value::parse_debug(t);
                v.redact(&is_secret);
                v
            }
            Captured::Cut(t) => {
                Value::Truncated(format!("{t}…<truncated at {} chars>", t.chars().count()))
            }
            Captured::Opaque(ty) => Value::Text(format!("<{ty}: no Debug>")),
            Captured::Panicked(msg) => Value::Text(format!("<panicked: {msg}>")),
            Captured::Failed(ty) => Value::Text(format!("<Debug of {ty} failed>")),
            Captured::Redacted => Value::Str("<redacted>".into()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Captured::Text(t) | Captured::Cut(t) | Captured::Panicked(t) => t.len(),
            Captured::Prim(Value::Str(t)) => t.len() + 2,
            Captured::Short(s) => usize::from(s.len) + 2,
            _ => 16,
        }
    }
}

/// Longest string kept inline in a [`Captured::Short`] (the size of `Captured` is set by
/// its `Value`, so this costs no space).
const SHORT: usize = 30;

/// A string of at most [`SHORT`] bytes, stored inline.
#[derive(Clone, Copy)]
pub(crate) struct ShortStr {
    len: u8,
    buf: [u8; SHORT],
}

impl ShortStr {
    fn new(s: &str) -> Option<ShortStr> {
        let mut buf = [0; SHORT];
        buf.get_mut(..s.len())?.copy_from_slice(s.as_bytes());
        Some(ShortStr {
            len: s.len() as u8,
            buf,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        // Always a whole `&str` copied in `new`; the fallback is never taken.
        std::str::from_utf8(self.buf.get(..usize::from(self.len)).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The values a record carries to the output thread, in capture order.
pub(crate) type Vals = Vec<(&'static str, Captured)>;

/// A captured primitive read in place (see [`scalar_of`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scalar<'a> {
    Int(i128),
    Float(f64),
    Bool(bool),
    Char(char),
    Str(&'a str),
}

impl Scalar<'_> {
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

/// Reads a captured value in place if it is a primitive (no `Debug`, no allocation); `None`
/// for any other type, and for a secret name (see [`is_secret`]: callers that read names
/// checked at arm time may skip that).
pub(crate) fn scalar_of<'a>(val: &Val<'a>) -> Option<Scalar<'a>> {
    let val: Val<'a> = *val;
    let (dbg, type_name) = val.parts();
    scalar(dbg?, type_name)
}

fn scalar<'a>(dbg: &'a dyn std::fmt::Debug, ty: &str) -> Option<Scalar<'a>> {
    let mut p = dbg as *const dyn std::fmt::Debug as *const ();
    let mut ty = ty;
    // Follow references: `&&u64` is a pointer to a pointer to a `u64`.
    for _ in 0..4 {
        let Some(rest) = ty.strip_prefix("&mut ").or_else(|| ty.strip_prefix('&')) else {
            break;
        };
        if rest == "str" {
            break;
        }
        // SAFETY: `ty` is the type name of the pointee of `p`, which starts with `&`: `p`
        // points at a valid, live reference (the capture borrows it for this hit).
        p = unsafe { *(p as *const *const ()) };
        ty = rest;
    }
    // SAFETY: `type_name` of a primitive is exactly its name (a user type of the same name
    // has a path), so `p` points at a live value of the matched type, borrowed for `'a`.
    // (Byte patterns: compared inline, where string patterns call memcmp per candidate.)
    unsafe {
        Some(match ty.as_bytes() {
            b"u8" => Scalar::Int((*(p as *const u8)).into()),
            b"u16" => Scalar::Int((*(p as *const u16)).into()),
            b"u32" => Scalar::Int((*(p as *const u32)).into()),
            b"u64" => Scalar::Int((*(p as *const u64)).into()),
            b"usize" => Scalar::Int((*(p as *const usize)) as i128),
            b"i8" => Scalar::Int((*(p as *const i8)).into()),
            b"i16" => Scalar::Int((*(p as *const i16)).into()),
            b"i32" => Scalar::Int((*(p as *const i32)).into()),
            b"i64" => Scalar::Int((*(p as *const i64)).into()),
            b"isize" => Scalar::Int((*(p as *const isize)) as i128),
            b"i128" => Scalar::Int(*(p as *const i128)),
            b"f32" => Scalar::Float((*(p as *const f32)).into()),
            b"f64" => Scalar::Float(*(p as *const f64)),
            b"bool" => Scalar::Bool(*(p as *const bool)),
            b"char" => Scalar::Char(*(p as *const char)),
            b"&str" => Scalar::Str(*(p as *const &'a str)),
            b"alloc::string::String" => Scalar::Str((*(p as *const String)).as_str()),
            _ => return None,
        })
    }
}

/// The kind-specific part of a record that the output thread writes (over the record's
/// values).
#[derive(Default)]
pub(crate) enum Body {
    /// Nothing more (the record's JSON is complete).
    #[default]
    None,
    /// `"msg"`: the template rendered over the values.
    Log { template: Arc<Template> },
    /// `"vars"`: every value, structured, within the limits.
    Vars { limits: Limits },
}

impl Body {
    /// Bytes this body will take, roughly (for the output budget).
    pub(crate) fn size(&self, vals: &[(&str, Captured)]) -> usize {
        match self {
            Body::None => 0,
            Body::Log { .. } | Body::Vars { .. } => {
                vals.iter().map(|(n, c)| n.len() + c.len() + 4).sum()
            }
        }
    }

    /// Appends the body's fields (`,"msg":…` or `,"vars":{…}`) to a record.
    pub(crate) fn write(self, vals: &[(&str, Captured)], out: &mut String) {
        match self {
            Body::None => {}
            Body::Log { template } => {
                let values: Vec<(&str, Value)> =
                    vals.iter().map(|(n, c)| (*n, c.to_value())).collect();
                let mut msg = String::new();
                if template.is_every_capture() {
                    crate::template::render_every(&values, &mut msg);
                } else {
                    template.render(
                        &|name| {
                            values
                                .iter()
                                .find(|(n, _)| *n == name)
                                .map(|(_, v)| v.clone())
                        },
                        &mut msg,
                    );
                }
                out.push_str(",\"msg\":");
                json::push_str(out, &msg);
            }
            Body::Vars { limits } => {
                out.push_str(",\"vars\":{");
                let start = out.len();
                for (i, (name, c)) in vals.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json::push_str(out, name);
                    out.push(':');
                    if out.len() - start > MAX_SNAPSHOT {
                        json::push_str(out, "<snapshot size limit>");
                        continue;
                    }
                    value::write_json(&c.to_value(), out, &limits);
                }
                out.push('}');
            }
        }
    }
}

/// The user's redaction pattern, `LPROBE_REDACT` (a regex, matched case-insensitively
/// anywhere in the name). Only the program's environment can set it, never a client. A pattern
/// that does not parse is reported once on stderr and then redacts every value (fail closed).
enum Extra {
    None,
    Pattern(crate::regex::Regex),
    Invalid,
}

fn extra() -> &'static Extra {
    static EXTRA: std::sync::OnceLock<Extra> = std::sync::OnceLock::new();
    EXTRA.get_or_init(|| match std::env::var("LPROBE_REDACT") {
        Ok(p) if !p.trim().is_empty() => match crate::regex::Regex::new(p.trim()) {
            Ok(r) => Extra::Pattern(r),
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "lprobe: {e}; redacting every captured value until LPROBE_REDACT is fixed"
                );
                Extra::Invalid
            }
        },
        _ => Extra::None,
    })
}

/// Whether a variable or field name is redacted: the built-in fragments (`password`,
/// `token`, …, any case), or a match of `LPROBE_REDACT`.
pub(crate) fn is_secret(name: &str) -> bool {
    if value::default_is_secret(name) {
        return true;
    }
    match extra() {
        Extra::None => false,
        Extra::Pattern(r) => r.is_match(name),
        Extra::Invalid => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ByRef;

    fn take_str(s: &str) -> Captured {
        Captured::take(false, &(&ByRef(&s) as Val<'_>))
    }

    #[test]
    fn short_strings_are_kept_inline_and_long_ones_allocated() {
        let at_limit = "é".repeat(SHORT / 2);
        assert!(matches!(take_str(&at_limit), Captured::Short(s) if s.as_str() == at_limit));
        let over = format!("{at_limit}x");
        assert!(matches!(take_str(&over), Captured::Prim(Value::Str(s)) if s == over));
        assert!(matches!(take_str(""), Captured::Short(s) if s.as_str().is_empty()));
        let c = take_str("a\"b");
        assert_eq!(c.to_value(), Value::Str("a\"b".into()));
        assert_eq!(c.len(), 5);
        // Inline text costs the capture no size: `Value` sets it.
        assert_eq!(
            std::mem::size_of::<Captured>(),
            std::mem::size_of::<Value>()
        );
    }

    #[test]
    fn secrets_match_fragments_in_any_case() {
        for n in [
            "password",
            "userPassword",
            "API_KEY",
            "x_session_id",
            "Cookie",
        ] {
            assert!(is_secret(n), "{n}");
        }
        for n in ["name", "id", "tok", "pass"] {
            assert!(!is_secret(n), "{n}");
        }
    }

    fn cap<T: std::fmt::Debug>(x: &T) -> Value {
        Captured::take(is_secret("x"), &(&ByRef(x) as Val<'_>)).to_value()
    }

    #[test]
    fn primitives_and_references_to_them_are_read_directly() {
        let n = 42u64;
        let r = &n;
        let s = String::from("hi \"there\"");
        let t: &str = "yo";
        assert_eq!(cap(&n), Value::Int(42));
        assert_eq!(cap(&r), Value::Int(42));
        assert_eq!(cap(&&r), Value::Int(42));
        assert_eq!(cap(&-7i8), Value::Int(-7));
        assert_eq!(cap(&i128::MIN), Value::Int(i128::MIN));
        assert_eq!(cap(&1.5f32), Value::Float(1.5));
        assert_eq!(cap(&true), Value::Bool(true));
        assert_eq!(cap(&'c'), Value::Char('c'));
        assert_eq!(cap(&s), Value::Str("hi \"there\"".into()));
        assert_eq!(cap(&t), Value::Str("yo".into()));
        assert_eq!(cap(&&s), Value::Str("hi \"there\"".into()));
        assert_eq!(
            cap(&Some(3u8)),
            Value::Int(3),
            "non-primitives go through Debug"
        );
    }

    #[test]
    fn deep_values_stop_formatting_at_the_nesting_limit() {
        #[derive(Debug)]
        enum T {
            Leaf,
            Node(Box<T>),
        }
        let mut t = T::Leaf;
        for _ in 0..1000 {
            t = T::Node(Box::new(t));
        }
        let c = Captured::take(is_secret("t"), &(&ByRef(&t) as Val<'_>));
        assert!(
            matches!(&c, Captured::Cut(s) if s.matches('(').count() == MAX_NESTING),
            "{c:?}"
        );
        let s = "([{\"((((((((((((((((((((((((((((\"}])".to_string();
        assert!(
            matches!(cap(&vec![s]), Value::Seq(_)),
            "brackets inside strings do not count"
        );
        // Dropping a 1000-deep chain recursively would itself be deep: unwind it by hand.
        while let T::Node(next) = t {
            t = *next;
        }
    }

    #[test]
    fn values_are_captured_and_bodies_written_off_thread() {
        let order = (7u32, "bob");
        let password = "hunter2";
        let vals = [
            Captured::take(is_secret("order"), &(&ByRef(&order) as Val<'_>)),
            Captured::take(is_secret("password"), &(&ByRef(&password) as Val<'_>)),
        ];
        let mut out = String::new();
        Body::Vars {
            limits: Limits::default(),
        }
        .write(
            &[("order", vals[0].clone()), ("password", vals[1].clone())],
            &mut out,
        );
        assert_eq!(
            out,
            r#","vars":{"order":[7,"bob"],"password":"<redacted>"}"#
        );
        let t = Arc::new(crate::template::parse("id={order.0}").expect("template"));
        let mut out = String::new();
        Body::Log { template: t }.write(&[("order", vals[0].clone())], &mut out);
        assert_eq!(out, r#","msg":"id=7""#);
    }
}
