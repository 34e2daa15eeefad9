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
pub(crate) fn types() -> &'static [String] {
    static TYPES: OnceLock<Vec<String>> = OnceLock::new();
    TYPES.get_or_init(|| {
        std::env::var("LPROBE_REDACT_TYPES")
            .map(|v| parse_types(&v))
            .unwrap_or_default()
    })
}

fn parse_types(v: &str) -> Vec<String> {
    v.split(',')
        .map(|t| t.trim().trim_start_matches("::").to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `path` (`a::b::C`) is `entry` or ends with `::entry`.
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
pub(crate) fn type_is_redacted(type_name: &str, types: &[String]) -> bool {
    !types.is_empty()
        && type_name
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .filter(|p| !p.is_empty())
            .any(|p| types.iter().any(|t| path_matches(p, t)))
}

/// Whether a struct or variant name printed by `Debug` (a bare name, maybe a path) names a
/// listed type: compared by last path segment, the part a derived `Debug` prints.
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

/// The redacted form of `s`, or `None` when nothing in it is secret (see the module docs).
/// Never cuts inside a UTF-8 character: every position it cuts at is an ASCII byte.
pub(crate) fn text(s: &str, is_secret: &dyn Fn(&str) -> bool, types: &[String]) -> Option<String> {
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
        let token = match c {
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
        };
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
            Some(r#"A { k: "<redacted: Key>", n: 1, t: "<redacted: Key>", u: "<redacted: Key>""#)
        );
    }
}
