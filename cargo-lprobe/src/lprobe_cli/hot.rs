//! `lprobe hot`: count every function's calls for a while (or read the `count` records a fleet
//! wrote) and print the most-called ones as a skip list (`fn:PATH  # calls…`), which `cargo
//! lprobe build --skip-from FILE` reads.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::driver::thousands;

/// One function's calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HotFn {
    #[serde(rename = "fn")]
    pub func: String,
    pub calls: u64,
    /// Of all calls counted.
    pub share: f64,
    /// Calls per second of the window (unknown for records).
    pub per_second: Option<f64>,
    /// Where its entry site is.
    pub path: String,
    pub line: u64,
}

/// What was counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hot {
    /// Where the counts come from: `pid 7 (/srv/app)`, `count records of 3 processes in out.jsonl`.
    pub source: String,
    /// The `fn:` pattern counted.
    pub pattern: String,
    /// The window (unknown for records).
    pub seconds: Option<f64>,
    /// Calls of all counted functions.
    pub calls: u64,
    /// Functions called at least once.
    pub called: usize,
    /// Entry sites the counting probe was armed at (unknown for records).
    pub sites: Option<u64>,
    /// The most-called functions, most first (at most `--top`).
    pub functions: Vec<HotFn>,
}

/// Which of the counted functions to keep, most called first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keep {
    /// At most this many.
    pub top: Option<usize>,
    /// Only as many as it takes for their calls to make this fraction (0..=1) of all calls.
    pub share: Option<f64>,
}

impl Keep {
    /// The first `n` functions.
    pub fn top(n: usize) -> Keep {
        Keep {
            top: Some(n),
            share: None,
        }
    }
}

/// Builds a [`Hot`] from a `counts` reply, keeping the functions `keep` asks for. Sites of one
/// function path (trait impls of one type, say) are summed.
pub fn from_counts(
    reply: &Value,
    source: String,
    pattern: &str,
    window: Option<Duration>,
    keep: Keep,
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
                    per_second: None,
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
    by_fn.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.func.cmp(&b.func)));
    let called = by_fn.len();
    let mut kept = 0;
    let mut covered = 0u64;
    for f in &by_fn {
        let enough = keep.top.is_some_and(|n| kept >= n)
            || keep
                .share
                .is_some_and(|s| covered as f64 >= s * calls as f64);
        if enough {
            break;
        }
        kept += 1;
        covered += f.calls;
    }
    by_fn.truncate(kept);
    for f in &mut by_fn {
        f.share = f.calls as f64 / calls.max(1) as f64;
        f.per_second = window.map(|w| f.calls as f64 / w.as_secs_f64().max(1e-9));
    }
    Ok(Hot {
        source,
        pattern: pattern.to_owned(),
        seconds: window.map(|w| w.as_secs_f64()),
        calls,
        called,
        sites: reply.get("sites").and_then(Value::as_u64),
        functions: by_fn,
    })
}

/// Turns the `count` records in `text` (JSON lines, as written to `LPROBE_OUTPUT` or shown by
/// `lprobe tail --json`) into a `counts` reply: per process, probe and site the last
/// (highest) running count, for the functions matching `pattern`. Other lines are ignored.
/// Also returns how many processes wrote them.
pub fn counts_from_records(text: &str, pattern: &str) -> (Value, usize) {
    struct Last {
        func: String,
        count: u64,
    }
    let mut last: HashMap<(u64, String, String), Last> = HashMap::new();
    let mut pids = BTreeSet::new();
    for line in text.lines() {
        let Ok(rec) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if rec.get("kind").and_then(Value::as_str) != Some("count") {
            continue;
        }
        let (Some(pid), Some(probe), Some(site), Some(func), Some(count)) = (
            rec.get("pid").and_then(Value::as_u64),
            rec.get("probe").and_then(Value::as_str),
            rec.get("site").and_then(Value::as_str),
            rec.get("fn").and_then(Value::as_str),
            rec.get("count").and_then(Value::as_u64),
        ) else {
            continue;
        };
        if !probe_runtime::location::fn_matches(pattern, func) {
            continue;
        }
        pids.insert(pid);
        let e = last
            .entry((pid, probe.to_owned(), site.to_owned()))
            .or_insert(Last {
                func: func.to_owned(),
                count: 0,
            });
        e.count = e.count.max(count);
    }
    let counts: Vec<Value> = last
        .into_iter()
        .map(|((_, _, site), l)| {
            let (path, line) = match site.rsplit_once(':') {
                Some((p, l)) => (p.to_owned(), l.parse::<u64>().unwrap_or(0)),
                None => (site, 0),
            };
            json!({"fn": l.func, "count": l.count, "path": path, "line": line})
        })
        .collect();
    (json!({ "counts": counts }), pids.len())
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
    let mut out = format!("# lprobe hot: {}, fn:{}", h.source, h.pattern);
    if let Some(s) = h.seconds {
        out.push_str(&format!(", {s:.1} s"));
    }
    out.push_str(&format!(
        ": {} calls of {} functions",
        thousands(h.calls),
        thousands(h.called)
    ));
    if let Some(n) = h.sites {
        out.push_str(&format!(" ({} entry sites counted)", thousands(n)));
    }
    out.push('\n');
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
        let per_second = f
            .per_second
            .map(|r| format!(", {}/s", rate(r)))
            .unwrap_or_default();
        out.push_str(&format!(
            "{pattern:<width$}  # {} calls ({:.1}%){per_second}, {}:{}\n",
            thousands(f.calls),
            f.share * 100.0,
            f.path,
            f.line
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> Value {
        json!({"ok": true, "probe": "p1", "sites": 9, "hits": 1600, "counts": [
            {"path": "src/a.rs", "line": 3, "fn": "app::peek", "kind": "entry", "count": 1000},
            {"path": "src/b.rs", "line": 7, "fn": "app::Shape::area", "kind": "entry", "count": 300},
            {"path": "src/b.rs", "line": 20, "fn": "app::Shape::area", "kind": "entry", "count": 250},
            {"path": "src/main.rs", "line": 1, "fn": "app::main", "kind": "entry", "count": 50},
        ]})
    }

    fn live(reply: &Value, pattern: &str, window: Duration, top: usize) -> Hot {
        from_counts(
            reply,
            "pid 7 (app)".into(),
            pattern,
            Some(window),
            Keep::top(top),
        )
        .expect("ok")
    }

    #[test]
    fn sites_of_one_function_add_up_and_the_top_are_kept() {
        let h = live(&reply(), "*", Duration::from_secs(2), 2);
        assert_eq!((h.calls, h.called, h.sites), (1600, 3, Some(9)));
        let top: Vec<(&str, u64)> = h
            .functions
            .iter()
            .map(|f| (f.func.as_str(), f.calls))
            .collect();
        assert_eq!(top, [("app::peek", 1000), ("app::Shape::area", 550)]);
        assert_eq!(h.functions[1].path, "src/b.rs");
        assert_eq!(h.functions[1].line, 7);
        assert!((h.functions[0].share - 0.625).abs() < 1e-9);
        assert_eq!(h.functions[0].per_second, Some(500.0));
    }

    #[test]
    fn the_output_is_a_skip_list() {
        let text = render(&live(&reply(), "*", Duration::from_secs(2), 2));
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
        let h = live(
            &json!({"ok": true, "sites": 4, "counts": []}),
            "x::*",
            Duration::from_millis(500),
            20,
        );
        assert_eq!(
            render(&h),
            "# lprobe hot: pid 7 (app), fn:x::*, 0.5 s: 0 calls of 0 functions (4 entry sites counted)\n"
        );
        let bad = |v: Value| from_counts(&v, String::new(), "*", None, Keep::top(5)).is_err();
        assert!(bad(json!({"ok": true})));
        assert!(bad(json!({"counts": [{"fn": "a::b"}]})));
    }

    #[test]
    fn count_records_give_the_last_count_per_process_probe_and_site() {
        let rec = |pid: u32, probe: &str, site: &str, func: &str, count: u64| {
            json!({"ts": "2026-12-03T15:40:14Z", "pid": pid, "probe": probe, "site": site,
                   "fn": func, "kind": "count", "thread": "t", "count": count, "delta": 1})
            .to_string()
        };
        let text = [
            rec(1, "p1", "src/a.rs:3", "app::peek", 400),
            rec(1, "p1", "src/a.rs:3", "app::peek", 1000),
            rec(2, "p1", "src/a.rs:3", "app::peek", 500),
            rec(1, "p1", "src/b.rs:7", "app::Shape::area", 300),
            rec(2, "p4", "src/m.rs:1", "other::main", 9000),
            r#"{"kind":"log","pid":1,"probe":"p2","site":"src/a.rs:4","fn":"app::peek","msg":"x"}"#
                .to_owned(),
            "not json".to_owned(),
        ]
        .join("\n");
        let (reply, processes) = counts_from_records(&text, "app::*");
        assert_eq!(processes, 2);
        let h = from_counts(&reply, "records".into(), "app::*", None, Keep::top(10)).expect("ok");
        let top: Vec<(&str, u64, &str, u64)> = h
            .functions
            .iter()
            .map(|f| (f.func.as_str(), f.calls, f.path.as_str(), f.line))
            .collect();
        assert_eq!(
            top,
            [
                ("app::peek", 1500, "src/a.rs", 3),
                ("app::Shape::area", 300, "src/b.rs", 7)
            ]
        );
        assert_eq!(h.sites, None);
        assert_eq!(
            render(&h).lines().nth(2),
            Some("fn:app::peek         # 1,500 calls (83.3%), src/a.rs:3")
        );
    }

    #[test]
    fn a_share_keeps_the_fewest_functions_that_make_it() {
        let names = |keep: Keep| -> Vec<String> {
            from_counts(&reply(), String::new(), "*", None, keep)
                .expect("ok")
                .functions
                .into_iter()
                .map(|f| f.func)
                .collect()
        };
        // 1000, 550 and 50 of 1600 calls: 62.5%, 96.9%, 100%.
        let share = |s: f64| Keep {
            top: None,
            share: Some(s),
        };
        assert_eq!(names(share(0.5)), ["app::peek"]);
        assert_eq!(names(share(0.625)), ["app::peek"]);
        assert_eq!(names(share(0.9)), ["app::peek", "app::Shape::area"]);
        assert_eq!(names(share(1.0)).len(), 3);
        // --top still caps it.
        let both = Keep {
            top: Some(1),
            share: Some(0.9),
        };
        assert_eq!(names(both), ["app::peek"]);
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(rate(12.0), "12");
        assert_eq!(rate(40_000.0), "40.0k");
        assert_eq!(rate(3_456_789.0), "3.5M");
    }
}
