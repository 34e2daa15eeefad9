//! A minimal JSON writer: string literals, numbers and flat objects appended to a `String`;
//! and the little reading the output bridges need: an object's top-level fields as raw text
//! ([`fields`]) and a string literal's text ([`unescape`]).

use std::fmt::Write as _;

/// The bytes [`push_str`] looks at: ASCII controls, `"`, `\\`, DEL, and the lead byte of U+2028
/// and U+2029. One table load per byte for all the others.
static ATTENTION: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t[0xE2] = true;
    t
};

/// Appends `s` as a JSON string literal (with quotes), escaping as RFC 8259 requires, and the
/// line and paragraph separators (valid JSON, but they break JavaScript consumers). Copies the
/// runs between escapes whole: the output thread spends most of a record here, and a byte
/// loop with no call per character stays fast in the size-compiled runtime.
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let b = s.as_bytes();
    let (mut run, mut i) = (0, 0);
    while i < b.len() {
        if !ATTENTION[usize::from(b[i])] {
            i += 1;
            continue;
        }
        // What replaces the sequence at `i`, and its length in bytes. Every sequence matched
        // starts at a character's first byte (ASCII, or U+2028/2029's lead byte, which no
        // continuation byte equals), so the runs copied between them are whole characters.
        let (esc, len): (&str, usize) = match b[i] {
            b'"' => ("\\\"", 1),
            b'\\' => ("\\\\", 1),
            b'\n' => ("\\n", 1),
            b'\r' => ("\\r", 1),
            b'\t' => ("\\t", 1),
            c if c < 0x20 || c == 0x7f => ("", 1),
            // U+2028 and U+2029: E2 80 A8 / E2 80 A9.
            0xE2 if b.get(i + 1) == Some(&0x80) && b.get(i + 2) == Some(&0xA8) => ("\\u2028", 3),
            0xE2 if b.get(i + 1) == Some(&0x80) && b.get(i + 2) == Some(&0xA9) => ("\\u2029", 3),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(s.get(run..i).unwrap_or_default());
        if esc.is_empty() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{:04x}", b[i]);
        } else {
            out.push_str(esc);
        }
        i += len;
        run = i;
    }
    out.push_str(s.get(run..).unwrap_or_default());
    out.push('"');
}

/// Appends `f` as a JSON number; non-finite values become the strings `"NaN"`, `"inf"`, `"-inf"`.
pub fn push_f64(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("\"NaN\"");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "\"inf\"" } else { "\"-inf\"" });
    } else {
        // `{:?}` on f64 is the shortest round-tripping form and always has a `.` or exponent,
        // e.g. `1.0`, `1e-7`, `1e21`; all of these are valid JSON numbers.
        let _ = write!(out, "{f:?}");
    }
}

/// Appends an unsigned integer.
pub fn push_u64(out: &mut String, n: u64) {
    let _ = write!(out, "{n}");
}

/// Appends a signed integer.
pub fn push_i64(out: &mut String, n: i64) {
    let _ = write!(out, "{n}");
}

/// Writes one JSON object `{"k":v,...}` field by field; call [`ObjWriter::finish`] to close it.
pub struct ObjWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjWriter<'a> {
    /// Opens the object (writes `{`).
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        ObjWriter { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_str(self.out, key);
        self.out.push(':');
    }

    /// Adds a string field.
    pub fn str(&mut self, key: &str, val: &str) -> &mut Self {
        self.key(key);
        push_str(self.out, val);
        self
    }

    /// Adds a field whose value is already valid JSON text (written verbatim).
    pub fn raw(&mut self, key: &str, raw_json: &str) -> &mut Self {
        self.key(key);
        self.out.push_str(raw_json);
        self
    }

    /// Adds an unsigned integer field.
    pub fn u64(&mut self, key: &str, n: u64) -> &mut Self {
        self.key(key);
        push_u64(self.out, n);
        self
    }

    /// Adds a signed integer field.
    pub fn i64(&mut self, key: &str, n: i64) -> &mut Self {
        self.key(key);
        push_i64(self.out, n);
        self
    }

    /// Adds a float field (see [`push_f64`]).
    pub fn f64(&mut self, key: &str, f: f64) -> &mut Self {
        self.key(key);
        push_f64(self.out, f);
        self
    }

    /// Adds a boolean field.
    pub fn bool(&mut self, key: &str, b: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if b { "true" } else { "false" });
        self
    }

    /// Adds a field whose value is written by `f` (which must write exactly one JSON value).
    pub fn with(&mut self, key: &str, f: impl FnOnce(&mut String)) -> &mut Self {
        self.key(key);
        f(self.out);
        self
    }

    /// Closes the object (writes `}`).
    pub fn finish(self) {
        self.out.push('}');
    }
}

/// The top-level fields of the JSON object `s`, in order, each as its key (unescaped) and its
/// value's raw text (`"a\"b"`, `{"x":1}`, `12`). `None` when `s` is not one object: the
/// scan checks structure (strings, nesting) but not every number's or literal's form.
pub fn fields(s: &str) -> Option<Vec<(String, &str)>> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(out);
    }
    loop {
        let key_end = string_end(b, i)?;
        let key = unescape(s.get(i..key_end)?)?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        out.push((key, s.get(start..end)?));
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return (skip_ws(b, i + 1) == b.len()).then_some(out),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string literal starting at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// The end (exclusive) of the value starting at `i`: a string, an object or array (brackets
/// balanced outside strings, at most 128 deep), or a number or literal (up to a delimiter).
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth: Vec<u8> = Vec::new();
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    c @ (b'{' | b'[') => {
                        if depth.len() >= 128 {
                            return None;
                        }
                        depth.push(if c == b'{' { b'}' } else { b']' });
                    }
                    c @ (b'}' | b']') => {
                        if depth.pop() != Some(c) {
                            return None;
                        }
                        if depth.is_empty() {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The text of the JSON string literal `raw` (with its quotes); `None` if it is not one.
pub fn unescape(raw: &str) -> Option<String> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == '"' {
                return None;
            }
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hi = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut n = 0;
    for _ in 0..4 {
        n = n * 16 + chars.next()?.to_digit(16)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        let mut o = String::new();
        push_str(&mut o, x);
        o
    }

    fn f(x: f64) -> String {
        let mut o = String::new();
        push_f64(&mut o, x);
        o
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(s("plain"), r#""plain""#);
        assert_eq!(s(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(s("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(s("\u{0}\u{1f}\u{7f}"), r#""\u0000\u001f\u007f""#);
        assert_eq!(s("é😀"), "\"é😀\"");
        assert_eq!(s("\u{2028}"), r#""\u2028""#);
        assert_eq!(s(""), r#""""#);
        // Against a character-by-character reference, on runs, escapes and multi-byte
        // characters next to each other (U+2027 and U+202A share E2 80 with the separators).
        let reference = |t: &str| {
            let mut o = String::from("\"");
            for c in t.chars() {
                match c {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    '\n' => o.push_str("\\n"),
                    '\r' => o.push_str("\\r"),
                    '\t' => o.push_str("\\t"),
                    c if (c as u32) < 0x20 || c == '\u{7f}' => {
                        o.push_str(&format!("\\u{:04x}", c as u32))
                    }
                    '\u{2028}' => o.push_str("\\u2028"),
                    '\u{2029}' => o.push_str("\\u2029"),
                    c => o.push(c),
                }
            }
            o.push('"');
            o
        };
        let parts = [
            "a", "é", "😀", "\"", "\\", "\n", "\u{1}", "\u{7f}", "\u{2027}", "\u{2028}",
            "\u{2029}", "\u{202a}", "\u{80}", "€", "xyz",
        ];
        for a in parts {
            for b in parts {
                for c in parts {
                    let t = format!("{a}{b}{c}");
                    assert_eq!(s(&t), reference(&t), "{t:?}");
                }
            }
        }
    }

    #[test]
    fn floats() {
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(1.0), "1.0");
        assert_eq!(f(-0.25), "-0.25");
        assert_eq!(f(1e-7), "1e-7");
        assert_eq!(f(f64::NAN), r#""NaN""#);
        assert_eq!(f(f64::INFINITY), r#""inf""#);
        assert_eq!(f(f64::NEG_INFINITY), r#""-inf""#);
    }

    #[test]
    fn object_writer() {
        let mut o = String::new();
        let mut w = ObjWriter::new(&mut o);
        w.str("a", "x\"y")
            .raw("b", "[1,2]")
            .u64("c", u64::MAX)
            .i64("d", -3)
            .bool("e", true)
            .f64("f", 0.5)
            .with("g", |o| o.push_str("null"));
        w.finish();
        assert_eq!(
            o,
            r#"{"a":"x\"y","b":[1,2],"c":18446744073709551615,"d":-3,"e":true,"f":0.5,"g":null}"#
        );

        let mut o = String::from("x");
        ObjWriter::new(&mut o).finish();
        assert_eq!(o, "x{}");
    }

    #[test]
    fn fields_are_read_back_raw_and_strings_unescaped() {
        let mut line = String::new();
        let mut w = ObjWriter::new(&mut line);
        w.str("probe", "p1")
            .with("site", |o| o.push_str("null"))
            .str("msg", "a \"quoted\" {x}, \\ é😀\n\u{1}")
            .raw("vars", r#"{"v":[1,{"w":"]}"}],"s":"a,b"}"#)
            .u64("count", 12);
        w.finish();
        let f = fields(&line).expect("one object");
        let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["probe", "site", "msg", "vars", "count"]);
        assert_eq!(f[1].1, "null");
        assert_eq!(
            unescape(f[2].1).as_deref(),
            Some("a \"quoted\" {x}, \\ é😀\n\u{1}")
        );
        assert_eq!(f[3].1, r#"{"v":[1,{"w":"]}"}],"s":"a,b"}"#);
        assert_eq!(f[4].1, "12");
        assert_eq!(
            unescape(r#""\ud83d\ude00 \u00e9""#).as_deref(),
            Some("😀 é")
        );
        assert_eq!(fields(" { } \n"), Some(Vec::new()));
        for bad in [
            "",
            "[]",
            "{",
            r#"{"a"}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1}"#,
            r#"{"a":"x}"#,
            "{} x",
        ] {
            assert_eq!(fields(bad), None, "{bad}");
        }
        for bad in ["x", r#""a"b""#, r#""\x""#, r#""\ud800""#, r#""\u12""#] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }
}
