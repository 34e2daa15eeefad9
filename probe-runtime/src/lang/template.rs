//! Message templates like `"order {order.id} has {order.items.len()} items"`, parsed once and rendered per hit.

use crate::lang::json;
use crate::lang::path::{self, Path};
use crate::lang::value::{self, Limits, Value};
use std::fmt::Write as _;

/// A parsed template: literal text and `{path}` holes.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    /// Renders every captured value as `name=value` (the `LPROBE_ARM_ALL=log` test mode,
    /// where each site has different names); `parts` is empty then.
    every: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Hole(Path),
}

/// Parses a template; `{{` and `}}` stand for literal braces.
pub fn parse(s: &str) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut it = s.char_indices().peekable();
    // Columns in errors are 1-based char positions.
    let col = |byte: usize| s.get(..byte).map_or(0, |p| p.chars().count()) + 1;
    while let Some((i, c)) = it.next() {
        match c {
            '{' if it.peek().map(|&(_, c)| c) == Some('{') => {
                it.next();
                lit.push('{');
            }
            '}' if it.peek().map(|&(_, c)| c) == Some('}') => {
                it.next();
                lit.push('}');
            }
            '}' => {
                return Err(format!(
                    "unmatched '}}' at column {} in template '{s}': write '}}}}' for a literal brace",
                    col(i)
                ));
            }
            '{' => {
                let start = i + 1;
                let mut end = None;
                for (j, c) in it.by_ref() {
                    match c {
                        '}' => {
                            end = Some(j);
                            break;
                        }
                        '{' => {
                            return Err(format!(
                                "unexpected '{{' at column {} inside the hole opened at column {} in template '{s}': close it with '}}' first",
                                col(j),
                                col(i)
                            ));
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    return Err(format!(
                        "unclosed '{{' at column {} in template '{s}': add '}}' after the path, or write '{{{{' for a literal brace",
                        col(i)
                    ));
                };
                let inner = s.get(start..end).unwrap_or("");
                if inner.trim().is_empty() {
                    return Err(format!(
                        "empty hole '{{}}' at column {} in template '{s}': put a variable name inside, e.g. {{x}}",
                        col(i)
                    ));
                }
                let path = path::parse(inner).map_err(|e| {
                    format!("{e} (in the hole at column {} of template '{s}')", col(i))
                })?;
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Hole(path));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(Template {
        parts,
        every: false,
    })
}

impl Template {
    /// The template that logs every value captured at the site, `name=value` each (`hit` at
    /// a site that captures nothing).
    pub fn every_capture() -> Template {
        Template {
            parts: Vec::new(),
            every: true,
        }
    }

    /// Whether this is [`Template::every_capture`]: it reads every name, not `roots()`.
    pub fn is_every_capture(&self) -> bool {
        self.every
    }

    /// Distinct root variable names used by the holes, in order of first use.
    pub fn roots(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.parts {
            if let Part::Hole(path) = p {
                if !out.contains(&path.root.as_str()) {
                    out.push(&path.root);
                }
            }
        }
        out
    }

    /// Whether the template has no holes.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Renders into `out`; each root is looked up once, and failing holes render `<error: …>`.
    /// (An [`every_capture`](Template::every_capture) template has no parts: its caller
    /// renders the values with [`render_every`].)
    pub fn render(&self, lookup: &dyn Fn(&str) -> Option<Value>, out: &mut String) {
        let mut cache: Vec<(&str, Option<Value>)> = Vec::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Hole(path) => {
                    let root = path.root.as_str();
                    let idx = match cache.iter().position(|(r, _)| *r == root) {
                        Some(i) => i,
                        None => {
                            cache.push((root, lookup(root)));
                            cache.len() - 1
                        }
                    };
                    match cache.get(idx).and_then(|(_, v)| v.as_ref()) {
                        None => {
                            let _ = write!(out, "<error: no variable '{root}' here>");
                        }
                        Some(v) => match path.eval(v) {
                            Ok(v) => push_text(out, &v),
                            Err(e) => {
                                let _ = write!(out, "<error: {e}>");
                            }
                        },
                    }
                }
            }
        }
    }
}

/// Renders the values of an [`every_capture`](Template::every_capture) template:
/// `name=value` separated by spaces, or `hit` when the site captures nothing.
pub fn render_every(values: &[(&str, Value)], out: &mut String) {
    if values.is_empty() {
        out.push_str("hit");
    }
    for (i, (name, v)) in values.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(name);
        out.push('=');
        push_text(out, v);
    }
}

/// Appends `v` as template text: strings bare, scalars as their literal, compounds as compact JSON.
pub fn push_text(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "inf" } else { "-inf" }),
        Value::Float(f) => json::push_f64(out, *f),
        Value::Str(s) | Value::Unit(s) | Value::Text(s) | Value::Truncated(s) => {
            push_limited(out, s, Limits::default().max_str)
        }
        Value::Char(c) => out.push(*c),
        Value::Seq(_) | Value::Map(_) | Value::Struct { .. } | Value::Variant { .. } => {
            value::write_json(v, out, &Limits::default())
        }
    }
}

/// Appends at most `max` chars of `s`, marking any cut with `…<+N chars>`.
fn push_limited(out: &mut String, s: &str, max: usize) {
    match s.char_indices().nth(max) {
        None => out.push_str(s),
        Some((cut, _)) => {
            let (head, tail) = s.split_at_checked(cut).unwrap_or((s, ""));
            out.push_str(head);
            let _ = write!(out, "…<+{} chars>", tail.chars().count());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::value::parse_debug;

    fn render(t: &str, vars: &[(&str, &str)]) -> String {
        let t = parse(t).unwrap();
        let mut out = String::new();
        let lookup = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| parse_debug(d))
        };
        t.render(&lookup, &mut out);
        out
    }

    #[test]
    fn renders_holes_and_escapes() {
        let vars = [
            (
                "order",
                r#"Order { id: 7, who: "Ann", items: [1, 2], ok: true, tag: Some('x'), note: None, f: 1.5, st: Ready }"#,
            ),
            ("n", "-3"),
        ];
        assert_eq!(
            render(
                "order {order.id} for {order.who} has {order.items.len()} items",
                &vars
            ),
            "order 7 for Ann has 2 items"
        );
        assert_eq!(
            render(
                "{order.ok} {order.tag} {order.note} {order.f} {order.st} {n}",
                &vars
            ),
            "true x None 1.5 Ready -3"
        );
        assert_eq!(render("{{literal}} {{{n}}}", &vars), "{literal} {-3}");
        assert_eq!(render("items={order.items}", &vars), "items=[1,2]");
        assert_eq!(render("plain", &vars), "plain");
        assert_eq!(render("", &vars), "");
        assert_eq!(render("{ n }", &vars), "-3");
    }

    #[test]
    fn failing_holes_render_inline_errors() {
        let vars = [("o", "O { a: 1 }")];
        assert_eq!(
            render("x={o.b} y={missing}", &vars),
            "x=<error: no field 'b' in o (fields: a)> y=<error: no variable 'missing' here>"
        );
    }

    #[test]
    fn long_strings_are_cut_visibly() {
        let long = format!("\"{}\"", "a".repeat(300));
        let out = render("{s}", &[("s", &long)]);
        assert_eq!(out, format!("{}…<+44 chars>", "a".repeat(256)));
    }

    #[test]
    fn roots_are_distinct_in_order() {
        let t = parse("{b.x} {a} {b.y} {a.len()}").unwrap();
        assert_eq!(t.roots(), vec!["b", "a"]);
        assert!(!t.is_literal());
        assert!(parse("no holes {{}}").unwrap().is_literal());
    }

    #[test]
    fn lookup_is_called_once_per_root() {
        let t = parse("{a} {a} {a.len()}").unwrap();
        let calls = std::cell::Cell::new(0);
        let lookup = |_: &str| {
            calls.set(calls.get() + 1);
            Some(parse_debug("[1]"))
        };
        let mut out = String::new();
        t.render(&lookup, &mut out);
        assert_eq!(out, "[1] [1] 1");
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn parse_errors_say_where() {
        assert_eq!(
            parse("a } b").unwrap_err(),
            "unmatched '}' at column 3 in template 'a } b': write '}}' for a literal brace"
        );
        assert_eq!(
            parse("é {x").unwrap_err(),
            "unclosed '{' at column 3 in template 'é {x': add '}' after the path, or write '{{' for a literal brace"
        );
        assert!(parse("{}")
            .unwrap_err()
            .starts_with("empty hole '{}' at column 1"));
        assert!(parse("{a{b}}")
            .unwrap_err()
            .starts_with("unexpected '{' at column 3"));
        let e = parse("v={a..b}").unwrap_err();
        assert!(e.contains("invalid path 'a..b'"), "{e}");
        assert!(e.contains("hole at column 3"), "{e}");
    }
}
