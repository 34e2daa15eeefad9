//! `lprobe hot`: count every function's calls for a while (or read the `count` records a fleet
//! wrote) and print the most-called ones as a skip list (`fn:PATH  # calls…`), which `cargo
//! lprobe build --skip-from FILE` reads.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::build::driver::thousands;

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
    /// Where the counts come from: `pid 7 (/srv/app)`, `12 count records from 3 pids in
    /// out.jsonl`.
    pub source: String,
    /// The process counted (not for records).
    pub pid: Option<u32>,
    /// Its program (not for records).
    pub program: Option<String>,
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
    /// Only as many as it takes for their calls to make this percentage (0..=100) of all calls.
    pub percent: Option<f64>,
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
            Some(&i) => by_fn[i].calls = by_fn[i].calls.saturating_add(n),
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
    let calls: u64 = by_fn.iter().fold(0, |a, f| a.saturating_add(f.calls));
    by_fn.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.func.cmp(&b.func)));
    let called = by_fn.len();
    let mut kept = 0;
    let mut covered = 0u64;
    for f in &by_fn {
        // In percent, so that a whole percentage of a round number is reached exactly.
        let enough = keep.top.is_some_and(|n| kept >= n)
            || keep
                .percent
                .is_some_and(|p| covered as f64 * 100.0 >= p * calls as f64);
        if enough {
            break;
        }
        kept += 1;
        covered = covered.saturating_add(f.calls);
    }
    by_fn.truncate(kept);
    for f in &mut by_fn {
        f.share = f.calls as f64 / calls.max(1) as f64;
        f.per_second = window.map(|w| f.calls as f64 / w.as_secs_f64().max(1e-9));
    }
    Ok(Hot {
        source,
        pid: None,
        program: None,
        pattern: pattern.to_owned(),
        seconds: window.map(|w| w.as_secs_f64()),
        calls,
        called,
        sites: reply.get("sites").and_then(Value::as_u64),
        functions: by_fn,
    })
}

/// The `count` records of a file (JSON lines, as written to `LPROBE_OUTPUT` or shown by
/// `lprobe tail --json`), summed per function: what `lprobe hot --records` reads.
///
/// Each record's `delta` is what its probe counted at that site since its previous report,
/// so their sum is every call counted, across restarts and across processes that share a
/// pid (containers) or a probe id; a record lost to a full queue loses its delta.
#[derive(Debug, Default)]
pub struct RecordCounts {
    /// Per (function, site): the sum of the deltas.
    by_site: HashMap<(String, String), u64>,
    /// Per (pid, site): the probes that counted there.
    probes: HashMap<(u64, String), BTreeSet<String>>,
    pids: BTreeSet<u64>,
    /// Count records read (of functions matching the pattern).
    pub records: usize,
}

impl RecordCounts {
    /// Adds one line if it is a `count` record of a function matching `pattern`; other lines
    /// (the program's own output, other records, bytes that are not UTF-8) are skipped.
    pub fn add_line(&mut self, line: &[u8], pattern: &str) {
        let Ok(rec) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        if rec.get("kind").and_then(Value::as_str) != Some("count") {
            return;
        }
        let (Some(pid), Some(probe), Some(site), Some(func), Some(delta)) = (
            rec.get("pid").and_then(Value::as_u64),
            rec.get("probe").and_then(Value::as_str),
            rec.get("site").and_then(Value::as_str),
            rec.get("fn").and_then(Value::as_str),
            rec.get("delta").and_then(Value::as_u64),
        ) else {
            return;
        };
        if !probe_runtime::location::fn_matches(pattern, func) {
            return;
        }
        self.records += 1;
        self.pids.insert(pid);
        self.probes
            .entry((pid, site.to_owned()))
            .or_default()
            .insert(probe.to_owned());
        let n = self
            .by_site
            .entry((func.to_owned(), site.to_owned()))
            .or_default();
        *n = n.saturating_add(delta);
    }

    /// How many processes (by pid) wrote the records.
    pub fn pids(&self) -> usize {
        self.pids.len()
    }

    /// Sites where more than one probe of one process counted: each call there is counted
    /// once per probe.
    pub fn counted_twice(&self) -> usize {
        self.probes.values().filter(|p| p.len() > 1).count()
    }

    /// The sums as a `counts` reply (see [`from_counts`]).
    pub fn reply(&self) -> Value {
        let counts: Vec<Value> = self
            .by_site
            .iter()
            .map(|((func, site), n)| {
                let (path, line) = match site.rsplit_once(':') {
                    Some((p, l)) => (p, l.parse::<u64>().unwrap_or(0)),
                    None => (site.as_str(), 0),
                };
                json!({"fn": func, "count": n, "path": path, "line": line})
            })
            .collect();
        json!({ "counts": counts })
    }
}

/// `1 call`, `1,234 calls`.
fn plural(n: u64, word: &str) -> String {
    format!("{} {word}{}", thousands(n), if n == 1 { "" } else { "s" })
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
        ": {} of {}",
        plural(h.calls, "call"),
        plural(h.called as u64, "function")
    ));
    if let Some(n) = h.sites {
        out.push_str(&format!(" ({} entry sites counted)", thousands(n)));
    }
    out.push('\n');
    if h.functions.is_empty() {
        return out;
    }
    let (which, them) = match h.functions.len() {
        1 => ("the most called".to_owned(), "it"),
        n => (format!("the {n} most called"), "them"),
    };
    out.push_str(&format!(
        "# {which}; to build {them} without probe sites: cargo lprobe build --skip-from FILE\n"
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
            "{pattern:<width$}  # {} ({:.1}%){per_second}, {}:{}\n",
            plural(f.calls, "call"),
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

    /// The first `n` functions.
    fn top(n: usize) -> Keep {
        Keep {
            top: Some(n),
            percent: None,
        }
    }

    fn reply() -> Value {
        json!({"ok": true, "probe": "p1", "sites": 9, "hits": 1600, "counts": [
            {"path": "src/a.rs", "line": 3, "fn": "app::peek", "kind": "entry", "count": 1000},
            {"path": "src/b.rs", "line": 7, "fn": "app::Shape::area", "kind": "entry", "count": 300},
            {"path": "src/b.rs", "line": 20, "fn": "app::Shape::area", "kind": "entry", "count": 250},
            {"path": "src/main.rs", "line": 1, "fn": "app::main", "kind": "entry", "count": 50},
        ]})
    }

    fn live(reply: &Value, pattern: &str, window: Duration, n: usize) -> Hot {
        from_counts(reply, "pid 7 (app)".into(), pattern, Some(window), top(n)).expect("ok")
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
        let pats = crate::build::skip::read_file(&file, "hot.skip").expect("a valid skip file");
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
        let bad = |v: Value| from_counts(&v, String::new(), "*", None, top(5)).is_err();
        assert!(bad(json!({"ok": true})));
        assert!(bad(json!({"counts": [{"fn": "a::b"}]})));
    }

    #[test]
    fn count_records_add_up_their_deltas_across_processes_and_restarts() {
        let rec = |pid: u32, probe: &str, site: &str, func: &str, count: u64, delta: u64| {
            json!({"ts": "2026-12-03T15:40:14Z", "pid": pid, "probe": probe, "site": site,
                   "fn": func, "kind": "count", "thread": "t", "count": count, "delta": delta})
            .to_string()
        };
        let lines = [
            rec(1, "p1", "src/a.rs:3", "app::peek", 400, 400),
            rec(1, "p1", "src/a.rs:3", "app::peek", 1000, 600),
            // Another container, also pid 1 with probe p1, interleaved; then a restart.
            rec(1, "p1", "src/a.rs:3", "app::peek", 500, 500),
            rec(1, "p1", "src/a.rs:3", "app::peek", 70, 70),
            rec(1, "p1", "src/b.rs:7", "app::Shape::area", 300, 300),
            // Two functions on one line keep their own counts.
            rec(1, "p1", "src/b.rs:7", "app::Shape::new", 20, 20),
            rec(2, "p4", "src/m.rs:1", "other::main", 9000, 9000),
            r#"{"kind":"log","pid":1,"probe":"p2","site":"src/a.rs:4","fn":"app::peek","msg":"x"}"#
                .to_owned(),
            "not json".to_owned(),
        ];
        let mut rc = RecordCounts::default();
        for l in &lines {
            rc.add_line(l.as_bytes(), "app::*");
        }
        // The program's own output, not even UTF-8, is skipped.
        rc.add_line(b"\xff\xfe log line", "app::*");
        assert_eq!((rc.records, rc.pids(), rc.counted_twice()), (6, 1, 0));
        let h = from_counts(&rc.reply(), "records".into(), "app::*", None, top(10)).expect("ok");
        let top: Vec<(&str, u64, &str, u64)> = h
            .functions
            .iter()
            .map(|f| (f.func.as_str(), f.calls, f.path.as_str(), f.line))
            .collect();
        assert_eq!(
            top,
            [
                ("app::peek", 1570, "src/a.rs", 3),
                ("app::Shape::area", 300, "src/b.rs", 7),
                ("app::Shape::new", 20, "src/b.rs", 7)
            ]
        );
        assert_eq!(h.sites, None);
        assert_eq!(
            render(&h).lines().nth(2),
            Some("fn:app::peek         # 1,570 calls (83.1%), src/a.rs:3")
        );
        // A second probe of the same process on the same site counts every call again.
        rc.add_line(
            rec(1, "p9", "src/a.rs:3", "app::peek", 5, 5).as_bytes(),
            "app::*",
        );
        assert_eq!(rc.counted_twice(), 1);
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
        // 1000, 550 and 50 of 1600 calls: 62.5%, 96.875%, 100%.
        let share = |p: f64| Keep {
            top: None,
            percent: Some(p),
        };
        assert_eq!(names(share(50.0)), ["app::peek"]);
        assert_eq!(names(share(62.5)), ["app::peek"]);
        assert_eq!(names(share(90.0)), ["app::peek", "app::Shape::area"]);
        assert_eq!(names(share(96.875)).len(), 2);
        assert_eq!(names(share(100.0)).len(), 3);
        // --top still caps it.
        let both = Keep {
            top: Some(1),
            percent: Some(90.0),
        };
        assert_eq!(names(both), ["app::peek"]);
    }

    #[test]
    fn a_whole_percentage_is_reached_exactly() {
        // 55 of 100 calls is 55%: `0.55 * 100` in floating point is 55.000000000000007.
        let reply = json!({"counts": [
            {"fn": "a", "count": 55, "path": "a.rs", "line": 1},
            {"fn": "b", "count": 45, "path": "a.rs", "line": 2},
        ]});
        let keep = Keep {
            top: None,
            percent: Some(55.0),
        };
        let h = from_counts(&reply, String::new(), "*", None, keep).expect("ok");
        assert_eq!(h.functions.len(), 1);
        assert_eq!(
            render(&h).lines().next(),
            Some("# lprobe hot: , fn:*: 100 calls of 2 functions")
        );
        let one = json!({"counts": [{"fn": "a", "count": 1, "path": "a.rs", "line": 1}]});
        let h = from_counts(&one, String::new(), "*", None, keep).expect("ok");
        let text = render(&h);
        assert!(
            text.starts_with("# lprobe hot: , fn:*: 1 call of 1 function\n"),
            "{text}"
        );
        assert!(
            text.ends_with("fn:a  # 1 call (100.0%), a.rs:1\n"),
            "{text}"
        );
        assert!(
            text.contains("\n# the most called; to build it without"),
            "{text}"
        );
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(rate(12.0), "12");
        assert_eq!(rate(40_000.0), "40.0k");
        assert_eq!(rate(3_456_789.0), "3.5M");
    }
}
