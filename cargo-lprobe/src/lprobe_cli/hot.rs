//! `lprobe hot`: count every function's calls for a while and print the most-called ones as a
//! skip list (`fn:PATH  # calls…`), which `cargo lprobe build --skip-from FILE` reads.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

use crate::driver::thousands;

/// One function's calls in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HotFn {
    #[serde(rename = "fn")]
    pub func: String,
    pub calls: u64,
    /// Of all calls counted.
    pub share: f64,
    pub per_second: f64,
    /// Where its entry site is.
    pub path: String,
    pub line: u64,
}

/// What a window counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hot {
    pub pid: u32,
    pub program: String,
    /// The `fn:` pattern counted.
    pub pattern: String,
    pub seconds: f64,
    /// Calls of all counted functions.
    pub calls: u64,
    /// Functions called at least once.
    pub called: usize,
    /// Entry sites the counting probe was armed at.
    pub sites: u64,
    /// The most-called functions, most first (at most `--top`).
    pub functions: Vec<HotFn>,
}

/// Builds a [`Hot`] from a `counts` reply (sites most-hit first), keeping the `top` functions.
/// Sites of one function path (trait impls of one type, say) are summed.
pub fn from_counts(
    reply: &Value,
    pid: u32,
    program: &str,
    pattern: &str,
    window: Duration,
    top: usize,
) -> Result<Hot> {
    let Some(Value::Array(counts)) = reply.get("counts") else {
        bail!("malformed answer to 'counts' (no \"counts\" array)");
    };
    let mut by_fn: Vec<HotFn> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for c in counts {
        let (Some(func), Some(n)) = (
            c.get("fn").and_then(Value::as_str),
            c.get("count").and_then(Value::as_u64),
        ) else {
            bail!("malformed answer to 'counts': {c}");
        };
        match index.get(func) {
            Some(&i) => by_fn[i].calls += n,
            None => {
                index.insert(func.to_owned(), by_fn.len());
                by_fn.push(HotFn {
                    func: func.to_owned(),
                    calls: n,
                    share: 0.0,
                    per_second: 0.0,
                    path: c
                        .get("path")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned(),
                    line: c.get("line").and_then(Value::as_u64).unwrap_or(0),
                });
            }
        }
    }
    let calls: u64 = by_fn.iter().map(|f| f.calls).sum();
    let seconds = window.as_secs_f64().max(1e-9);
    by_fn.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.func.cmp(&b.func)));
    let called = by_fn.len();
    by_fn.truncate(top);
    for f in &mut by_fn {
        f.share = f.calls as f64 / calls.max(1) as f64;
        f.per_second = f.calls as f64 / seconds;
    }
    Ok(Hot {
        pid,
        program: program.to_owned(),
        pattern: pattern.to_owned(),
        seconds: window.as_secs_f64(),
        calls,
        called,
        sites: reply.get("sites").and_then(Value::as_u64).unwrap_or(0),
        functions: by_fn,
    })
}

/// `1234` → `1.2k`, `3456789` → `3.5M`.
fn rate(per_second: f64) -> String {
    if per_second >= 1e9 {
        format!("{:.1}G", per_second / 1e9)
    } else if per_second >= 1e6 {
        format!("{:.1}M", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1}k", per_second / 1e3)
    } else {
        format!("{per_second:.0}")
    }
}

/// The skip list: a `#` header, then one `fn:PATH` per line with its numbers in a comment.
pub fn render(h: &Hot) -> String {
    let mut out = format!(
        "# lprobe hot: pid {} ({}), fn:{}, {:.1} s: {} calls of {} functions ({} entry sites counted)\n",
        h.pid,
        h.program,
        h.pattern,
        h.seconds,
        thousands(h.calls),
        thousands(h.called),
        thousands(h.sites)
    );
    if h.functions.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "# the {} most called; to build them without probe sites: cargo lprobe build --skip-from FILE\n",
        h.functions.len()
    ));
    let width = h
        .functions
        .iter()
        .map(|f| f.func.len() + 3)
        .max()
        .unwrap_or(0);
    for f in &h.functions {
        let pattern = format!("fn:{}", f.func);
        out.push_str(&format!(
            "{pattern:<width$}  # {} calls ({:.1}%), {}/s, {}:{}\n",
            thousands(f.calls),
            f.share * 100.0,
            rate(f.per_second),
            f.path,
            f.line
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply() -> Value {
        json!({"ok": true, "probe": "p1", "sites": 9, "hits": 1600, "counts": [
            {"path": "src/a.rs", "line": 3, "fn": "app::peek", "kind": "entry", "count": 1000},
            {"path": "src/b.rs", "line": 7, "fn": "app::Shape::area", "kind": "entry", "count": 300},
            {"path": "src/b.rs", "line": 20, "fn": "app::Shape::area", "kind": "entry", "count": 250},
            {"path": "src/main.rs", "line": 1, "fn": "app::main", "kind": "entry", "count": 50},
        ]})
    }

    #[test]
    fn sites_of_one_function_add_up_and_the_top_are_kept() {
        let h = from_counts(&reply(), 7, "app", "*", Duration::from_secs(2), 2).expect("ok");
        assert_eq!((h.calls, h.called, h.sites), (1600, 3, 9));
        let top: Vec<(&str, u64)> = h
            .functions
            .iter()
            .map(|f| (f.func.as_str(), f.calls))
            .collect();
        assert_eq!(top, [("app::peek", 1000), ("app::Shape::area", 550)]);
        assert_eq!(h.functions[1].path, "src/b.rs");
        assert_eq!(h.functions[1].line, 7);
        assert!((h.functions[0].share - 0.625).abs() < 1e-9);
        assert!((h.functions[0].per_second - 500.0).abs() < 1e-9);
    }

    #[test]
    fn the_output_is_a_skip_list() {
        let h = from_counts(&reply(), 7, "app", "*", Duration::from_secs(2), 2).expect("ok");
        let text = render(&h);
        assert_eq!(
            text,
            "# lprobe hot: pid 7 (app), fn:*, 2.0 s: 1,600 calls of 3 functions (9 entry sites counted)\n\
             # the 2 most called; to build them without probe sites: cargo lprobe build --skip-from FILE\n\
             fn:app::peek         # 1,000 calls (62.5%), 500/s, src/a.rs:3\n\
             fn:app::Shape::area  # 550 calls (34.4%), 275/s, src/b.rs:7\n"
        );
        // What `--skip-from` reads back: exactly the listed functions.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hot.skip");
        std::fs::write(&file, &text).expect("write");
        let pats = crate::skip::read_file(&file, "hot.skip").expect("a valid skip file");
        let texts: Vec<&str> = pats.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["fn:app::peek", "fn:app::Shape::area"]);
    }

    #[test]
    fn nothing_called_is_a_header_only_and_bad_replies_are_errors() {
        let h = from_counts(
            &json!({"ok": true, "sites": 4, "counts": []}),
            7,
            "app",
            "x::*",
            Duration::from_millis(500),
            20,
        )
        .expect("ok");
        assert_eq!(
            render(&h),
            "# lprobe hot: pid 7 (app), fn:x::*, 0.5 s: 0 calls of 0 functions (4 entry sites counted)\n"
        );
        let bad = |v: Value| from_counts(&v, 1, "a", "*", Duration::from_secs(1), 5).is_err();
        assert!(bad(json!({"ok": true})));
        assert!(bad(json!({"counts": [{"fn": "a::b"}]})));
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(rate(12.0), "12");
        assert_eq!(rate(40_000.0), "40.0k");
        assert_eq!(rate(3_456_789.0), "3.5M");
    }
}
