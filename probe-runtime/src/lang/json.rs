//! A minimal JSON writer: string literals, numbers and flat objects appended to a `String`.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal (with quotes), escaping as RFC 8259 requires.
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            // Line/paragraph separators are valid JSON but break JavaScript consumers.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
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
}
