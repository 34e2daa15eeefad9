//! What a hit takes from the application thread ([`Captured`]: the `{:?}` text of a value, or
//! why there is none) and how the output thread turns it into JSON ([`Body`]).
//!
//! The split keeps the application thread's work to what needs the borrowed value: running
//! its `Debug` impl into a bounded buffer. Parsing that text into a structured value,
//! redacting fields, rendering templates and escaping JSON happen on `lprobe-output`, except
//! for the values a condition reads (a condition must be decided on the spot).

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::lang::json;
use crate::lang::template::Template;
use crate::lang::value::{self, Limits, Value};
use crate::Val;

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
    /// The type is listed in `LPROBE_REDACT_TYPES`: nothing was formatted; its name.
    RedactedType(&'static str),
}

thread_local! {
    /// What this hit did once already: [`RING_TAKEN`] (wrote its values into the thread's
    /// panic ring, `flight::record`), [`FRAME_PUSHED`] (pushed its call on the thread's
    /// shadow stack, `frames::push`). One cell, cleared once per hit.
    static ONCE: Cell<u8> = const { Cell::new(0) };
}

const RING_TAKEN: u8 = 1;
const FRAME_PUSHED: u8 = 2;

/// Whether this is the first time in this hit that `what` happens (and marks it done).
fn first_in_hit(what: u8) -> bool {
    ONCE.try_with(|c| {
        let v = c.get();
        c.set(v | what);
        v & what == 0
    })
    .unwrap_or(false)
}

/// Whether this hit has not written the thread's panic ring yet (and marks it written): two
/// `--on-panic` probes armed at one site record the hit once.
pub(crate) fn first_ring_write() -> bool {
    first_in_hit(RING_TAKEN)
}

/// Whether this hit has not pushed its call on the shadow stack yet (and marks it pushed):
/// two frames probes at one site push the call once.
pub(crate) fn first_frame_push() -> bool {
    first_in_hit(FRAME_PUSHED)
}

/// Whether this hit pushed its call on the shadow stack.
pub(crate) fn frame_pushed() -> bool {
    ONCE.try_with(|c| c.get() & FRAME_PUSHED != 0)
        .unwrap_or(false)
}

/// A hit is over: the next one writes the ring again.
#[inline]
pub(crate) fn hit_done() {
    let _ = ONCE.try_with(|c| c.set(0));
}

/// Deepest bracket nesting formatted: a derived `Debug` of a deep structure recurses once per
/// level on the application thread's stack, so formatting stops there (the value is then
/// marked truncated). Deeper than JSON's depth limit anyway. This shapes the text; what keeps
/// the stack safe is [`Bounded`]'s stack guard, which does not rely on brackets.
const MAX_NESTING: usize = 24;

/// Most stack a value's formatting may use below where it started.
const MAX_FORMAT_STACK: usize = 1024 * 1024;
/// Stack kept free below the deepest formatting frame the guard allows.
const FORMAT_STACK_RESERVE: usize = 48 * 1024;

/// Thrown (with `resume_unwind`, which runs no panic hook) out of a `Debug` impl that goes on
/// writing after [`Bounded`] refused a write: formatting stops there, not only the writing.
struct Stop;

/// A `fmt::Write` that stops past a byte budget, a bracket nesting depth, or a stack depth.
///
/// Past a limit it first returns an error, which well-behaved `Debug` impls pass up (`?`),
/// ending the formatting. An impl that ignores the error and writes again is stopped by
/// unwinding out of it ([`Stop`], caught by [`format_bounded`]): a custom `Debug` that
/// recurses through its own impl (no brackets) and ignores errors cannot overflow the stack
/// nor run on. Not guarded: an impl that recurses without writing anything (nothing of the
/// runtime runs between its frames).
struct Bounded {
    buf: String,
    /// Most bytes kept.
    max: usize,
    cut: bool,
    depth: usize,
    in_str: bool,
    escaped: bool,
    /// The stack address where formatting started.
    base: usize,
    /// How far below `base` the stack may grow.
    max_stack: usize,
}

/// The current stack address (approximately: a local's).
#[inline(always)]
fn stack_here() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

impl Bounded {
    #[inline]
    fn new(mut buf: String, max: usize) -> Bounded {
        let left = crate::hot::timing::stack_left().unwrap_or(MAX_FORMAT_STACK);
        buf.clear();
        Bounded {
            buf,
            max,
            cut: false,
            depth: 0,
            in_str: false,
            escaped: false,
            base: stack_here(),
            max_stack: left
                .saturating_sub(FORMAT_STACK_RESERVE)
                .min(MAX_FORMAT_STACK),
        }
    }

    /// Refuses a write past a limit: an error the first time, unwinding out of the `Debug`
    /// impl when it writes again after an error (it ignored it).
    fn refuse(&mut self) -> std::fmt::Result {
        if self.cut && cfg!(panic = "unwind") {
            std::panic::resume_unwind(Box::new(Stop));
        }
        self.cut = true;
        Err(std::fmt::Error)
    }

    /// Tracks bracket nesting outside string literals; false once too deep.
    #[inline]
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
    /// Reads only the part of `s` it keeps: a long piece is neither copied nor scanned past
    /// the budget.
    #[inline]
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.cut || self.base.saturating_sub(stack_here()) > self.max_stack {
            return self.refuse();
        }
        let kept = head(s, self.max.saturating_sub(self.buf.len()));
        if !self.nesting_ok(kept) {
            return self.refuse();
        }
        self.buf.push_str(kept);
        if kept.len() < s.len() {
            return self.refuse();
        }
        Ok(())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
#[inline]
fn head(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Captured {
    /// Runs the value's `Debug` impl (never letting a panic out), unless its name is secret.
    /// A long string is read up to the value limit, never copied or scanned whole on the
    /// application thread (a 20 MB body hit every few milliseconds would stall the program):
    /// only its head is formatted (a `str`'s `Debug` reads all it is given), and the value is
    /// marked cut.
    #[inline]
    pub(crate) fn take(secret: bool, val: &Val<'_>) -> Captured {
        Captured::take_into(secret, val, String::new(), MAX_VALUE_TEXT)
    }

    /// [`Captured::take`] into a buffer the caller keeps for reuse (`buf`, emptied first),
    /// keeping at most `max` bytes of text: the panic ring's slots reuse their buffers, so a
    /// hit allocates nothing once they have grown. Whatever holds text takes `buf`; a short
    /// string or a primitive leaves it unused (it is dropped: pass a spare one).
    #[inline]
    pub(crate) fn take_into(secret: bool, val: &Val<'_>, mut buf: String, max: usize) -> Captured {
        if secret {
            return Captured::Redacted;
        }
        let (dbg, type_name) = val.parts();
        if crate::lang::value::redact::type_is_redacted(
            type_name,
            crate::lang::value::redact::types(),
        ) {
            return Captured::RedactedType(type_name);
        }
        let Some(dbg) = dbg else {
            return Captured::Opaque(type_name);
        };
        match scalar(dbg, type_name) {
            Some(Scalar::Str(s)) => match ShortStr::new(s) {
                Some(short) => Captured::Short(short),
                None => {
                    buf.clear();
                    let kept = head(s, max);
                    buf.push_str(kept);
                    if kept.len() == s.len() {
                        Captured::Prim(Value::Str(buf))
                    } else {
                        // `Cut` holds `Debug` text: quote and escape what was kept.
                        buf.clear();
                        match format_bounded(&kept, type_name, buf, max) {
                            Captured::Text(mut t) | Captured::Cut(mut t) => {
                                if t.ends_with('"') && t.len() > 1 {
                                    t.pop();
                                }
                                Captured::Cut(t)
                            }
                            other => other,
                        }
                    }
                }
            },
            Some(s) => Captured::Prim(s.to_value()),
            None => format_bounded(dbg, type_name, buf, max),
        }
    }

    /// Gives back the text buffer a capture holds, if any (for reuse by [`Captured::take_into`]).
    #[inline]
    pub(crate) fn into_buffer(self) -> Option<String> {
        match self {
            Captured::Text(t) | Captured::Cut(t) | Captured::Prim(Value::Str(t)) => Some(t),
            _ => None,
        }
    }
}

/// `{:?}` of `dbg` into a [`Bounded`] buffer (`buf`, emptied; at most `max` bytes): complete,
/// cut at the limits, or what went wrong (a panic is contained).
#[inline]
fn format_bounded(
    dbg: &dyn std::fmt::Debug,
    type_name: &'static str,
    buf: String,
    max: usize,
) -> Captured {
    // User code runs next: a panic in it must reach lprobe's hook, not the program's (one
    // atomic load unless the program replaced the hook).
    crate::hot::panics::ensure();
    let mut w = Bounded::new(buf, max);
    match catch_unwind(AssertUnwindSafe(|| write!(w, "{dbg:?}"))) {
        Ok(_) if w.cut => Captured::Cut(w.buf),
        Ok(Ok(())) => Captured::Text(w.buf),
        Ok(Err(_)) => Captured::Failed(type_name),
        Err(p) if p.is::<Stop>() => Captured::Cut(w.buf),
        Err(_) => Captured::Panicked(
            crate::hot::panics::take_panic_message().unwrap_or_else(|| "unknown".into()),
        ),
    }
}

impl Captured {
    /// The structured value, with secret fields redacted (also in text that did not parse,
    /// and in a cut value's text, as far as it goes).
    #[inline]
    pub(crate) fn to_value(&self) -> Value {
        self.to_value_with(crate::lang::value::redact::types())
    }

    /// [`Captured::to_value`] with an explicit list of redacted types.
    #[inline]
    fn to_value_with(&self, types: &[String]) -> Value {
        let text = |t: &str| crate::lang::value::redact::text(t, &is_secret, types);
        match self {
            Captured::Prim(v) => v.clone(),
            Captured::Short(s) => Value::Str(s.as_str().to_owned()),
            Captured::Text(t) => {
                let mut v = value::parse_debug(t);
                v.redact_with(&is_secret, types);
                if crate::lang::value::redact::listed_types_escaped(t, &v, types) {
                    return Value::Str(
                        "<redacted: a listed type's value was not told apart>".to_owned(),
                    );
                }
                v
            }
            Captured::Cut(t) => {
                // The count is of the text as captured, before any redaction.
                let n = t.chars().count();
                let t = text(t).unwrap_or_else(|| t.clone());
                Value::Truncated(format!("{t}…<truncated at {n} chars>"))
            }
            Captured::Opaque(ty) => Value::Text(format!("<{ty}: no Debug>")),
            Captured::Panicked(msg) => {
                let msg = text(msg).unwrap_or_else(|| msg.clone());
                Value::Text(format!("<panicked: {msg}>"))
            }
            Captured::Failed(ty) => Value::Text(format!("<Debug of {ty} failed>")),
            Captured::Redacted => Value::Str("<redacted>".into()),
            Captured::RedactedType(ty) => Value::Str(crate::lang::value::redact::type_marker(
                ty.trim_start_matches("&mut ").trim_start_matches('&'),
            )),
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
    #[inline]
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

pub(crate) use crate::lang::value::Scalar;

/// Reads a captured value in place if it is a primitive (no `Debug`, no allocation); `None`
/// for any other type, and for a secret name (see [`is_secret`]: callers that read names
/// checked at arm time may skip that).
#[inline]
pub(crate) fn scalar_of<'a>(val: &Val<'a>) -> Option<Scalar<'a>> {
    let val: Val<'a> = *val;
    let (dbg, type_name) = val.parts();
    if crate::lang::value::redact::type_is_redacted(type_name, crate::lang::value::redact::types())
    {
        return None;
    }
    scalar(dbg?, type_name)
}

#[inline]
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
                    crate::lang::template::render_every(&values, &mut msg);
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
    Pattern(crate::lang::regex::Regex),
    Invalid,
}

fn extra() -> &'static Extra {
    static EXTRA: std::sync::OnceLock<Extra> = std::sync::OnceLock::new();
    EXTRA.get_or_init(|| match std::env::var("LPROBE_REDACT") {
        Ok(p) if !p.trim().is_empty() => match crate::lang::regex::Regex::new(p.trim()) {
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

/// Whether a variable or field name is redacted: the built-in names (see
/// [`value::default_is_secret`]), or a match of `LPROBE_REDACT`.
#[inline]
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
    fn plain_copies_and_references_are_captures_read_like_the_struct_forms() {
        // What generated code writes: `&{n}` (a copy), `&&s` (a reference), `&&*m` (a
        // shared reborrow of a `&mut` binding).
        let (n, s, mut v) = (42u64, String::from("hi"), vec![1u8, 2]);
        let m = &mut v;
        let vals: [Val<'_>; 4] = [&{ n }, &&s, &&*m, &{ "str" }];
        let read: Vec<Option<Scalar<'_>>> = vals.iter().map(scalar_of).collect();
        assert_eq!(read[0], Some(Scalar::Int(42)));
        assert_eq!(read[1], Some(Scalar::Str("hi")));
        assert_eq!(read[2], None);
        assert_eq!(read[3], Some(Scalar::Str("str")));
        assert_eq!(
            Captured::take(false, &vals[2]).to_value(),
            Value::Seq(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(vals[1].parts().1, "&alloc::string::String");
        assert_eq!(
            Captured::take(false, &vals[0]).to_value(),
            Captured::take(false, &(&crate::ByCopy(n) as Val<'_>)).to_value()
        );
    }

    #[test]
    fn a_long_string_is_read_up_to_the_limit_never_whole() {
        let big = "é".repeat(5_000_000) + "tail";
        let v: Val<'_> = &crate::ByCopy(big.as_str());
        let c = Captured::take(false, &v);
        let Captured::Cut(text) = &c else {
            panic!("a long string is cut: {c:?}")
        };
        assert!(
            text.len() <= MAX_VALUE_TEXT && text.starts_with("\"éé"),
            "{}",
            text.len()
        );
        assert!(!text.contains("tail"));
        let Value::Truncated(shown) = c.to_value() else {
            panic!("truncated")
        };
        assert!(
            shown.contains("<truncated at"),
            "{}",
            &shown[shown.len() - 40..]
        );
        // Escapes make the text longer than the string: still cut at the limit.
        let ctrl = "\u{1}".repeat(200_000);
        let v: Val<'_> = &crate::ByCopy(ctrl.as_str());
        let Captured::Cut(text) = Captured::take(false, &v) else {
            panic!("cut")
        };
        assert!(text.len() <= MAX_VALUE_TEXT);
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
            "pass",
            "x-api-key",
        ] {
            assert!(is_secret(n), "{n}");
        }
        for n in ["name", "id", "tok", "passenger", "author"] {
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

    /// A `Debug` that recurses through its own impl, writing no bracket, ignoring errors.
    struct Chain(u64);

    impl std::fmt::Debug for Chain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            if self.0 == 0 {
                return f.write_str("end");
            }
            let _ = f.write_str("-");
            let pad = [0u8; 256];
            std::hint::black_box(&pad);
            Chain(self.0 - 1).fmt(f)
        }
    }

    /// Like [`Chain`], but passes errors up (`?`), as derived impls do.
    struct PoliteChain(u64);

    impl std::fmt::Debug for PoliteChain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            if self.0 == 0 {
                return f.write_str("end");
            }
            write!(f, "{}>", self.0 % 10)?;
            let pad = [0u8; 256];
            std::hint::black_box(&pad);
            PoliteChain(self.0 - 1).fmt(f)
        }
    }

    #[test]
    fn a_recursive_debug_without_brackets_cannot_overflow_the_stack() {
        // A small thread stack: without a guard that does not count brackets, a million levels
        // overflow it (the process dies).
        let (rude, polite) = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(|| {
                (
                    Captured::take(false, &(&ByRef(&Chain(1_000_000)) as Val<'_>)),
                    Captured::take(false, &(&ByRef(&PoliteChain(1_000_000)) as Val<'_>)),
                )
            })
            .expect("spawn")
            .join()
            .expect("no overflow, no panic");
        for c in [rude, polite] {
            let Captured::Cut(text) = &c else {
                panic!("cut at the stack guard: {c:?}")
            };
            assert!(!text.ends_with("end"), "stopped early");
            assert!(
                text.len() < MAX_VALUE_TEXT,
                "stopped by the stack, not the size"
            );
            assert!(matches!(c.to_value(), Value::Truncated(_)));
        }
    }

    #[test]
    fn a_debug_that_ignores_the_size_limit_is_stopped() {
        /// Writes forever, ignoring every error.
        struct Endless;
        impl std::fmt::Debug for Endless {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                loop {
                    let _ = f.write_str("xxxxxxxx");
                }
            }
        }
        let c = Captured::take(false, &(&ByRef(&Endless) as Val<'_>));
        assert!(
            matches!(&c, Captured::Cut(t) if t.len() == MAX_VALUE_TEXT),
            "{:?}",
            c.len()
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
        let t = Arc::new(crate::lang::template::parse("id={order.0}").expect("template"));
        let mut out = String::new();
        Body::Log { template: t }.write(&[("order", vals[0].clone())], &mut out);
        assert_eq!(out, r#","msg":"id=7""#);
    }

    /// Every way a record can show a captured value: snapshot JSON (with limits wide enough
    /// to show everything, and the defaults), and log lines (every capture, and one hole).
    fn every_output(c: &Captured) -> Vec<String> {
        let vals = [("x", c.clone())];
        let mut outs = Vec::new();
        for limits in [
            Limits {
                max_str: 1 << 20,
                max_items: 1 << 20,
                max_depth: 1000,
            },
            Limits::default(),
        ] {
            let mut out = String::new();
            Body::Vars { limits }.write(&vals, &mut out);
            outs.push(out);
        }
        for t in [
            crate::lang::template::Template::every_capture(),
            crate::lang::template::parse("x={x}").expect("template"),
        ] {
            let mut out = String::new();
            Body::Log {
                template: Arc::new(t),
            }
            .write(&vals, &mut out);
            outs.push(out);
        }
        outs
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Account {
        name: String,
        db_password: String,
        history: Vec<u32>,
    }

    #[test]
    fn a_cut_value_keeps_its_secret_fields_redacted() {
        let a = Account {
            name: "ann".into(),
            db_password: "hunter2-very-secret".into(),
            history: (0..40_000).collect(),
        };
        let c = Captured::take(is_secret("account"), &(&ByRef(&a) as Val<'_>));
        assert!(
            matches!(&c, Captured::Cut(t) if t.contains("hunter2")),
            "cut"
        );
        let outs = every_output(&c);
        for out in &outs {
            assert!(!out.contains("hunter2"), "{}", &out[..out.len().min(300)]);
            assert!(
                out.contains(r#"db_password: \"<redacted>\""#),
                "{}",
                &out[..300]
            );
        }
        assert!(
            outs[0].ends_with("…<truncated at 65536 chars>\"}"),
            "marked cut"
        );
        // Cut by depth, the secret before the deep part.
        let d = G::Struct(
            "Deep".into(),
            vec![
                ("token".into(), G::Str("tok-SECRET".into())),
                ("tree".into(), G::Int(1).nest(30)),
            ],
        );
        let c = Captured::take(false, &(&ByRef(&d) as Val<'_>));
        assert!(
            matches!(&c, Captured::Cut(t) if t.contains("tok-SECRET")),
            "{c:?}"
        );
        for out in every_output(&c) {
            assert!(!out.contains("tok-SECRET"), "{out}");
        }
    }

    #[test]
    fn header_pairs_with_secret_names_are_redacted() {
        let headers: Vec<(String, String)> = vec![
            ("accept".into(), "*/*".into()),
            ("Authorization".into(), "Bearer SECRET-1".into()),
            ("x-api-key".into(), "SECRET-2".into()),
            ("author".into(), "ann".into()),
        ];
        let c = Captured::take(false, &(&ByRef(&headers) as Val<'_>));
        assert!(matches!(c, Captured::Text(_)));
        let v = c.to_value();
        let mut js = String::new();
        value::write_json(&v, &mut js, &Limits::default());
        assert_eq!(
            js,
            r#"[["accept","*/*"],["Authorization","<redacted>"],["x-api-key","<redacted>"],["author","ann"]]"#
        );
        // The same list, cut: redacted in the text as far as it goes.
        let mut long = headers.clone();
        long.extend((0..3000).map(|i| (format!("h{i}"), "v".repeat(20))));
        long.push(("cookie".into(), "SECRET-3".into()));
        let c = Captured::take(false, &(&ByRef(&long) as Val<'_>));
        assert!(matches!(c, Captured::Cut(_)));
        for out in every_output(&c) {
            assert!(!out.contains("SECRET"), "{}", &out[..300]);
        }
    }

    #[test]
    fn values_of_redacted_types_are_never_shown() {
        let c = Captured::RedactedType("&app::auth::Key");
        assert_eq!(
            c.to_value(),
            Value::Str("<redacted: app::auth::Key>".into())
        );
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Key(&'static str);
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            k: Key,
            n: u8,
        }
        let h = Holder {
            k: Key("SECRET"),
            n: 1,
        };
        let c = Captured::take(false, &(&ByRef(&h) as Val<'_>));
        let v = c.to_value_with(&["auth::Key".to_owned()]);
        let mut js = String::new();
        value::write_json(&v, &mut js, &Limits::default());
        assert_eq!(js, r#"{"k":"<redacted: Key>","n":1}"#);
        let cut = Captured::Cut("Holder { k: Key(\"SEC".into());
        let v = cut.to_value_with(&["Key".to_owned()]);
        assert!(
            matches!(&v, Value::Truncated(t) if t.starts_with("Holder { k: \"<redacted: Key>\"")),
            "{v:?}"
        );
    }

    /// A listed type printed in a value's text but not found as a value of its own by the
    /// parser (a misreading) redacts the whole value: the check fails closed.
    #[test]
    fn a_listed_type_the_parser_did_not_find_redacts_the_whole_value() {
        use crate::lang::value::redact::listed_types_escaped;
        let types = ["auth::Keyring".to_owned()];
        let parsed = |t: &str| {
            let mut v = value::parse_debug(t);
            v.redact_with(&is_secret, &types);
            v
        };
        // Found: marked, nothing escaped.
        let ok = r#"Outer { k: Keyring { key: "s3" }, g: Keyring<u8>(7), n: 1 }"#;
        assert!(!listed_types_escaped(ok, &parsed(ok), &types));
        // The same text against a parse that lost one of them (as a misreading would).
        let lost = parsed(r#"Outer { k: Keyring { key: "s3" }, g: Other(7), n: 1 }"#);
        assert!(listed_types_escaped(ok, &lost, &types));
        // A mention in a string counts too (over-redaction, the safe side); a name inside a
        // longer word does not.
        let note = r#"Note { t: "Keyring { lost }", u: MyKeyring(1) }"#;
        assert!(listed_types_escaped(note, &parsed(note), &types));
        let word = r#"Note { u: MyKeyring(1), v: Keyrings }"#;
        assert!(!listed_types_escaped(word, &parsed(word), &types));
        // Through `Captured`: the whole value is one marker.
        let v = Captured::Text(note.into()).to_value_with(&types);
        assert!(
            matches!(&v, Value::Str(s) if s.starts_with("<redacted: ")),
            "{v:?}"
        );
    }

    /// A small PRNG (xorshift64*), so the property test needs no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len())]
        }
    }

    /// A random value, printed as derived `Debug` impls print (through std's builders).
    enum G {
        Struct(String, Vec<(String, G)>),
        Tuple(String, Vec<G>),
        List(Vec<G>),
        Map(Vec<(String, G)>),
        Str(String),
        Int(i64),
        Big(u32),
        Some(Box<G>),
    }

    impl std::fmt::Debug for G {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                G::Struct(n, fields) => {
                    let mut s = f.debug_struct(n);
                    for (k, v) in fields {
                        s.field(k, v);
                    }
                    s.finish()
                }
                G::Tuple(n, items) => {
                    let mut t = f.debug_tuple(n);
                    for v in items {
                        t.field(v);
                    }
                    t.finish()
                }
                G::List(items) => f.debug_list().entries(items).finish(),
                G::Map(entries) => f
                    .debug_map()
                    .entries(entries.iter().map(|(k, v)| (k, v)))
                    .finish(),
                G::Str(s) => std::fmt::Debug::fmt(s, f),
                G::Int(i) => std::fmt::Debug::fmt(i, f),
                G::Big(n) => f.debug_list().entries(0..*n).finish(),
                G::Some(v) => f.debug_tuple("Some").field(v).finish(),
            }
        }
    }

    const PLAIN: [&str; 9] = [
        "name",
        "id",
        "history",
        "passenger",
        "author",
        "note",
        "data",
        "spin",
        "compass",
    ];
    const SECRET_NAMES: [&str; 22] = [
        "password",
        "db_password",
        "DbPassword",
        "x-api-key",
        "apiKey",
        "token",
        "AccessToken",
        "pwd",
        "pass",
        "auth",
        "Authorization",
        "client_secret",
        "session_id",
        "Set-Cookie",
        "jwt",
        "ssn",
        "pin",
        "cvv",
        "private_key",
        "credentials",
        "$bearer",
        "otp",
    ];

    /// A random value of at most `depth` levels; `deep` values are chains past the nesting
    /// limit, `Big` lists are past the size limit.
    fn gen(r: &mut Rng, depth: usize) -> G {
        let leaf = depth == 0 || r.below(4) == 0;
        if leaf {
            return match r.below(6) {
                0 => G::Big(r.below(20_000) as u32),
                1 | 2 => G::Int(r.next() as i64 % 1000),
                3 => G::Str(r.pick(&PLAIN).to_owned()),
                _ => G::Str(format!("v{}: {}, \"x\"", r.below(99), r.pick(&PLAIN))),
            };
        }
        let n = r.below(4);
        match r.below(6) {
            0 => G::Struct(
                "S".into(),
                (0..n)
                    .map(|_| (r.pick(&PLAIN).to_owned(), gen(r, depth - 1)))
                    .collect(),
            ),
            1 => G::Tuple(
                if r.below(2) == 0 {
                    String::new()
                } else {
                    "T".into()
                },
                (0..n).map(|_| gen(r, depth - 1)).collect(),
            ),
            2 => G::List((0..n).map(|_| gen(r, depth - 1)).collect()),
            3 => G::Map(
                (0..n)
                    .map(|_| (r.pick(&PLAIN).to_owned(), gen(r, depth - 1)))
                    .collect(),
            ),
            4 => G::Some(Box::new(gen(r, depth - 1))),
            _ => {
                // Past the nesting limit.
                let mut g = G::Int(1);
                for _ in 0..30 {
                    g = G::List(vec![g]);
                }
                g
            }
        }
    }

    /// Something holding the secret: a secret-named field or key, or a header pair.
    fn holder(r: &mut Rng, secret: &str) -> (Option<String>, G) {
        let value = match r.below(3) {
            0 => G::Str(secret.to_owned()),
            1 => G::Some(Box::new(G::Str(secret.to_owned()))),
            _ => G::Struct(
                "Inner".into(),
                vec![("name".into(), G::Str(secret.to_owned()))],
            ),
        };
        let name = r.pick(&SECRET_NAMES).to_owned();
        match r.below(3) {
            0 => (Some(name), value),
            1 => (None, G::Map(vec![(name, value)])),
            _ => (None, G::Tuple(String::new(), vec![G::Str(name), value])),
        }
    }

    /// Puts the holder somewhere in `g` (or around it).
    fn plant(r: &mut Rng, g: G, secret: &str) -> G {
        let (name, h) = holder(r, secret);
        let mut fields = vec![(r.pick(&PLAIN).to_owned(), g)];
        let at = r.below(2);
        fields.insert(at, (name.unwrap_or_else(|| "headers".into()), h));
        // Often something big or deep after it, so the text is cut past the secret.
        if r.below(2) == 0 {
            let tail = if r.below(2) == 0 {
                G::Big(20_000)
            } else {
                gen(r, 1).nest(30)
            };
            fields.push(("history".into(), tail));
        }
        let top = G::Struct("Top".into(), fields);
        match r.below(3) {
            0 => G::List(vec![G::Int(1), top]),
            1 => G::Some(Box::new(top)),
            _ => top,
        }
    }

    impl G {
        fn nest(self, n: usize) -> G {
            (0..n).fold(self, |g, _| G::List(vec![g]))
        }
    }

    #[test]
    fn property_secrets_never_reach_any_output() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut cut, mut whole) = (0, 0);
        for case in 0..400 {
            let secret = format!("S3CRET{:08x}", r.next() as u32);
            let depth = r.below(5);
            let base = gen(&mut r, depth);
            let g = plant(&mut r, base, &secret);
            let c = Captured::take(false, &(&ByRef(&g) as Val<'_>));
            match &c {
                Captured::Cut(_) => cut += 1,
                Captured::Text(_) => whole += 1,
                other => panic!("case {case}: {other:?}"),
            }
            for out in every_output(&c) {
                assert!(
                    !out.contains("S3CRET"),
                    "case {case}: secret in {}",
                    &out[..out.len().min(2000)]
                );
            }
        }
        // Both kinds were exercised.
        assert!(cut > 50 && whole > 50, "cut {cut}, whole {whole}");
    }
}
