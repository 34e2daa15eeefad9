//! Human-readable rendering for `lprobe`: records, tables, durations.
//!
//! Everything here is lenient about the shape of what it is given: a missing or oddly typed
//! field is shown as `?` or as compact JSON rather than rejected.

use serde_json::{Map, Value};

/// Renders a table: headers (bold: the output stream strips the style when colours are off),
/// then rows, columns separated by two spaces, the last column not padded. Every line ends
/// with `\n`.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(n) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>, style: anstyle::Style| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate().take(n) {
            if i + 1 < n {
                l.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            } else {
                l.push_str(cell);
            }
        }
        out.push_str(&format!("{style}{}{style:#}", l.trim_end()));
        out.push('\n');
    };
    line(&mut headers.iter().copied(), crate::style::HEADER);
    for row in rows {
        line(&mut row.iter().map(String::as_str), anstyle::Style::new());
    }
    out
}

/// A JSON value as text for a table cell or a one-line message: strings bare (but
/// [`printable`]), null as `-`, everything else as compact JSON.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => printable(s),
        Some(other) => other.to_string(),
    }
}

/// `s` safe to print on a terminal: control characters (escape sequences, carriage returns,
/// newlines that would forge a line of output) and the bidirectional overrides that reorder
/// what is shown are written as Rust escapes (`\u{1b}`, `\n`). Program data reaches the
/// terminal through records; it must not drive the terminal.
pub fn printable(s: &str) -> String {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(unsafe_char) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The time of day of an RFC 3339 timestamp, to milliseconds: `2024-05-01T01:37:18.123456Z` →
/// `01:37:18.123`. Anything else is returned as text unchanged.
pub fn time_of_day(ts: &Value) -> String {
    let s = match ts {
        Value::String(s) => s.as_str(),
        Value::Null => return "--:--:--.---".to_string(),
        other => return other.to_string(),
    };
    let Some((_, rest)) = s.split_once(['T', 't', ' ']) else {
        return s.to_string();
    };
    // Cut the zone: `Z`, `+hh:mm` or `-hh:mm`.
    let end = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let clock = &rest[..end];
    let (hms, frac) = match clock.split_once('.') {
        Some((h, f)) => (h, f),
        None => (clock, ""),
    };
    if hms.len() != 8 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return s.to_string();
    }
    let mut ms: String = frac.chars().take(3).collect();
    while ms.len() < 3 {
        ms.push('0');
    }
    format!("{hms}.{ms}")
}

/// A nanosecond count in the most readable unit, to 3 significant digits: `850ns`, `12.5µs`,
/// `3.21ms`, `1.50s` (whole nanoseconds below 1µs; whole seconds from 1000s).
pub fn human_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return format!("{ns}ns");
    }
    let sign = if ns < 0.0 { "-" } else { "" };
    let a = ns.abs();
    if a.round() < 1e3 {
        return format!("{sign}{}ns", a.round());
    }
    for (scale, unit) in [(1e3, "µs"), (1e6, "ms"), (1e9, "s")] {
        let x = a / scale;
        let decimals = if x < 10.0 {
            2
        } else if x < 100.0 {
            1
        } else {
            0
        };
        let text = format!("{x:.decimals$}");
        // Rounding may carry into the next unit (999.6µs → 1.00ms).
        if unit == "s" || text.parse::<f64>().is_ok_and(|r| r < 1e3) {
            return format!("{sign}{text}{unit}");
        }
    }
    unreachable!("the seconds unit always returns")
}

/// The statistics of a `duration` object (`{"count","min_ns","p50_ns",…}`) as
/// `n=99 min=70ns p50=431ns p90=671ns p99=872ns max=872ns`; without `with_min`, `min` is left
/// out. With no sample yet: just `n=0`. Missing fields are skipped; a value that is not a number
/// is shown as it is.
pub fn duration_stats(d: &Value, with_min: bool) -> String {
    let mut parts = vec![format!("n={}", cell(d.get("count")))];
    if d.get("count").and_then(Value::as_u64) == Some(0) {
        return parts.remove(0);
    }
    for (key, label) in [
        ("min_ns", "min"),
        ("p50_ns", "p50"),
        ("p90_ns", "p90"),
        ("p99_ns", "p99"),
        ("max_ns", "max"),
    ] {
        if key == "min_ns" && !with_min {
            continue;
        }
        match d.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_f64() {
                Some(n) => parts.push(format!("{label}={}", human_ns(n))),
                None => parts.push(format!("{label}={}", cell(Some(v)))),
            },
        }
    }
    parts.join(" ")
}

/// Seconds as a short duration: `45s`, `59m50s`, `2h05m`, `3d04h`.
pub fn human_secs(secs: f64) -> String {
    if !secs.is_finite() {
        return "-".to_string();
    }
    if secs < 0.0 {
        return "0s".to_string();
    }
    let s = secs.round() as u64;
    let (d, h, m, sec) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// Options for [`record`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordStyle {
    /// Prefix each record with `[pid]` (when records of several processes are interleaved).
    pub show_pid: bool,
}

/// The keys every record has; the rest is the kind's payload.
const COMMON: &[&str] = &["ts", "pid", "probe", "site", "fn", "kind", "thread"];

/// Renders one record for `lprobe tail` / `lprobe snapshot`. One line, except snapshots, which
/// list their variables and stack frames on the following lines. No trailing newline.
///
/// `01:37:18.123 p1 src/main.rs:42 demo_app::process  log  order 3 total=1234`
pub fn record(rec: &Value, style: RecordStyle) -> String {
    let Some(obj) = rec.as_object() else {
        return rec.to_string();
    };
    let field = |k: &str| cell(obj.get(k));
    let kind = field("kind");
    let mut head = String::new();
    if style.show_pid {
        head.push_str(&format!("[{}] ", field("pid")));
    }
    let (dim, accent) = (crate::style::DIM, crate::style::ACCENT);
    let kind_style = match kind.as_str() {
        "error" | "panic" => crate::style::ERROR,
        "snapshot" => crate::style::WARNING,
        _ => crate::style::STATUS,
    };
    head.push_str(&format!(
        "{dim}{}{dim:#} {accent}{}{accent:#} {} {}  {kind_style}{}{kind_style:#}",
        time_of_day(obj.get("ts").unwrap_or(&Value::Null)),
        field("probe"),
        field("site"),
        field("fn"),
        kind
    ));
    // Fields beyond the common ones and the kind's own, shown as `k=v` (e.g. a count's delta).
    let extras = |own: &[&str]| -> String {
        obj.iter()
            .filter(|(k, _)| !COMMON.contains(&k.as_str()) && !own.contains(&k.as_str()))
            .map(|(k, v)| format!(" {k}={}", cell(Some(v))))
            .collect()
    };
    match kind.as_str() {
        "log" => format!("{head}  {}{}", field("msg"), extras(&["msg"])),
        "count" => format!("{head}  count={}{}", field("count"), extras(&["count"])),
        "duration" => {
            // The aggregate when there is one (its p50 is `ns`), else the single measurement.
            if let Some(d) = obj.get("duration").filter(|d| d.is_object()) {
                let more = extras(&["ns", "duration"]);
                return format!("{head}  {}{more}", duration_stats(d, false));
            }
            let ns = obj.get("ns");
            let more = extras(&["ns"]);
            match ns.and_then(Value::as_f64) {
                Some(n) => format!("{head}  ns={} ({}){more}", field("ns"), human_ns(n)),
                None => format!("{head}  ns={}{more}", cell(ns)),
            }
        }
        "error" => format!("{head}  error: {}", field("error")),
        "histogram" | "gauge" => {
            let stats = obj.get(kind.as_str()).and_then(Value::as_object);
            let keys: &[&str] = if kind == "gauge" {
                &["last", "min", "max", "count"]
            } else {
                &["count", "min", "p50", "p90", "p99", "max"]
            };
            let shown: String = keys
                .iter()
                .map(|k| {
                    format!(
                        " {}={}",
                        if *k == "count" { "n" } else { k },
                        cell(stats.and_then(|m| m.get(*k)))
                    )
                })
                .collect();
            let more = extras(&["expr", kind.as_str()]);
            format!("{head}  {}{shown}{more}", field("expr"))
        }
        "panic" => {
            let caught = match obj.get("caught") {
                Some(Value::Bool(true)) => "caught",
                Some(Value::Bool(false)) if obj.get("unwinds") == Some(&Value::Bool(false)) => {
                    "aborts"
                }
                Some(Value::Bool(false)) => "not caught",
                _ => "caught: unknown",
            };
            let more = extras(&["msg", "caught", "unwinds", "col", "last", "stack"]);
            format!(
                "{head}  {}  (thread {}, {caught}){more}{}",
                field("msg"),
                field("thread"),
                panic_body(obj)
            )
        }
        "snapshot" => {
            let mut out = head;
            if let Some(t) = obj.get("thread").filter(|t| !t.is_null()) {
                out.push_str(&format!("  thread {}", cell(Some(t))));
            }
            out.push_str(&extras(&["vars", "stack", "frames", "frames_more"]));
            out.push_str(&snapshot_body(obj));
            out
        }
        _ => {
            let rest = extras(&[]);
            if rest.is_empty() {
                head
            } else {
                format!("{head} {rest}")
            }
        }
    }
}

/// The lines after a panic record's header: the last sites the thread passed, innermost
/// first, each with its values, then the stack. Each line starts with `\n`.
fn panic_body(obj: &Map<String, Value>) -> String {
    let mut out = String::new();
    let last = obj.get("last").and_then(Value::as_array);
    match last {
        Some(l) if !l.is_empty() => {
            out.push_str("\n  last sites, innermost first:");
            for (i, s) in l.iter().enumerate() {
                let ago = s
                    .get("ago_us")
                    .and_then(Value::as_f64)
                    .map(|us| format!("  ({} ago)", human_ns(us * 1000.0)))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "\n    {i:>2}: {} {}{ago}",
                    cell(s.get("site")),
                    cell(s.get("fn"))
                ));
                for (name, value) in vars_list(s.get("vars")) {
                    push_var(&mut out, "          ", &name, &value);
                }
            }
        }
        _ => out.push_str("\n  (no site passed on this thread since the probe was armed)"),
    }
    if let Some(Value::Array(frames)) = obj.get("stack") {
        if !frames.is_empty() {
            out.push_str("\n  stack:");
            for (i, f) in frames.iter().enumerate() {
                out.push_str(&format!("\n    {i:>2}: {}", frame(f)));
            }
        }
    }
    out
}

/// The lines after a snapshot's header: `  name = value` per variable, then `  stack:` and one
/// frame per line. Each line starts with `\n`.
fn snapshot_body(obj: &Map<String, Value>) -> String {
    let mut out = String::new();
    let vars = vars_list(obj.get("vars"));
    if vars.is_empty() {
        out.push_str("\n  (no variables captured)");
    }
    for (name, value) in vars {
        push_var(&mut out, "  ", &name, &value);
    }
    if let Some(Value::Array(frames)) = obj.get("stack") {
        if !frames.is_empty() {
            out.push_str("\n  stack:");
            for (i, f) in frames.iter().enumerate() {
                out.push_str(&format!("\n    {i:>2}: {}", frame(f)));
            }
        }
    } else if let Some(other) = obj.get("stack").filter(|v| !v.is_null()) {
        out.push_str(&format!("\n  stack: {}", cell(Some(other))));
    }
    out.push_str(&frames_body(obj));
    out
}

/// A `--frames` snapshot's callers, innermost first: `  caller 1: FN at PATH:LINE` (the line
/// the call is at, else the function's entry) and its arguments indented below.
fn frames_body(obj: &Map<String, Value>) -> String {
    let mut out = String::new();
    let Some(Value::Array(frames)) = obj.get("frames") else {
        return out;
    };
    for (i, f) in frames.iter().enumerate() {
        let site = cell(f.get("site"));
        let at = match f.get("line").and_then(Value::as_u64) {
            Some(line) => format!(
                "{}:{line}",
                site.rsplit_once(':').map_or(site.as_str(), |(p, _)| p)
            ),
            None => format!("{site} (entry)"),
        };
        out.push_str(&format!(
            "\n  caller {}: {} at {at}",
            i + 1,
            cell(f.get("fn"))
        ));
        // With --frame-locals, the values at the call's statement (arguments included).
        let vars = match f.get("locals") {
            Some(l) if !l.is_null() => l,
            _ => f.get("vars").unwrap_or(&Value::Null),
        };
        for (name, value) in vars_list(Some(vars)) {
            push_var(&mut out, "    ", &name, &value);
        }
    }
    if let Some(n) = obj.get("frames_more").and_then(Value::as_u64) {
        out.push_str(&format!("\n  (+{n} more callers)"));
    }
    out
}

/// One variable on a new line, `PAD name = value`, its value pretty-printed with its
/// continuation lines indented under the value's start.
fn push_var(out: &mut String, pad: &str, name: &str, value: &Value) {
    let prefix = format!("{pad}{name} = ");
    let indent = " ".repeat(prefix.chars().count());
    out.push('\n');
    out.push_str(&prefix);
    for (i, line) in pretty_value(value).lines().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&indent);
        }
        out.push_str(line);
    }
}

/// The variables of a snapshot as `(name, value)`, accepting an object `{name: value}`, an array
/// of `{name, value}` objects or an array of `[name, value]` pairs.
fn vars_list(v: Option<&Value>) -> Vec<(String, Value)> {
    match v {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(m) if m.contains_key("name") => (
                    cell(m.get("name")),
                    m.get("value").cloned().unwrap_or(Value::Null),
                ),
                Value::Array(pair) if pair.len() == 2 => (cell(pair.first()), pair[1].clone()),
                other => (format!("#{i}"), other.clone()),
            })
            .collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![("vars".to_string(), other.clone())],
    }
}

/// A captured value for display: JSON, indented when it is a structure (strings stay quoted, so
/// `"3"` and `3` differ).
pub fn pretty_value(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => {
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        }
        _ => v.to_string(),
    }
}

/// One stack frame: a string as it is, or `fn at file:line:col` from an object.
pub fn frame(f: &Value) -> String {
    let Some(m) = f.as_object() else {
        return cell(Some(f));
    };
    let pick = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| m.get(*k).filter(|v| !v.is_null()))
            .map(|v| cell(Some(v)))
    };
    let func = pick(&["fn", "function", "name", "symbol"]);
    let file = pick(&["file", "path", "filename"]);
    let line = pick(&["line", "lineno"]);
    let col = pick(&["col", "column", "colno"]);
    let mut loc = file.unwrap_or_default();
    if !loc.is_empty() {
        if let Some(l) = line {
            loc.push(':');
            loc.push_str(&l);
            if let Some(c) = col {
                loc.push(':');
                loc.push_str(&c);
            }
        }
    }
    match (func, loc.is_empty()) {
        (Some(f), false) => format!("{f} at {loc}"),
        (Some(f), true) => f,
        (None, false) => loc,
        (None, true) => f.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_data_cannot_drive_the_terminal() {
        let evil = "ok\u{1b}[2J\u{1b}]0;pwned\u{7}\r\nfake 01:00:00 p9 log\u{202e}gnp.exe";
        let shown = cell(Some(&Value::String(evil.into())));
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(!shown.contains('\u{202e}'));
        assert_eq!(
            shown,
            "ok\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\r\\nfake 01:00:00 p9 log\\u{202e}gnp.exe"
        );
        // A log record's message is a cell too.
        let rec = serde_json::json!({"ts": "2024-05-01T01:37:18.123Z", "probe": "p1", "site": "s:1",
            "fn": "f", "kind": "log", "msg": evil});
        let line = record(&rec, RecordStyle::default());
        // lprobe's own colours aside, the message adds no escape character and no line.
        let plain = record(
            &serde_json::json!({"ts": "2024-05-01T01:37:18.123Z", "probe": "p1", "site": "s:1",
                "fn": "f", "kind": "log", "msg": "ok"}),
            RecordStyle::default(),
        );
        let escs = |l: &str| l.matches('\u{1b}').count();
        assert_eq!(escs(&line), escs(&plain), "{line:?}");
        assert!(
            !line.contains('\n') && line.ends_with("gnp.exe"),
            "{line:?}"
        );
        assert_eq!(
            cell(Some(&Value::String("plain text".into()))),
            "plain text"
        );
    }
    use serde_json::json;

    /// What a stream with colours off shows (`anstream` strips the styles).
    fn strip(s: &str) -> String {
        anstream::adapter::strip_str(s).to_string()
    }

    fn plain(v: Value) -> String {
        strip(&record(&v, RecordStyle::default()))
    }

    #[test]
    fn log_record() {
        let r = json!({"ts":"2024-05-01T01:37:18.123456789Z","pid":123,"probe":"p1",
            "site":"src/main.rs:42","fn":"demo_app::process","kind":"log","thread":"main",
            "msg":"order 3 total=1234"});
        assert_eq!(
            plain(r.clone()),
            "01:37:18.123 p1 src/main.rs:42 demo_app::process  log  order 3 total=1234"
        );
        assert_eq!(
            strip(&record(&r, RecordStyle { show_pid: true })),
            "[123] 01:37:18.123 p1 src/main.rs:42 demo_app::process  log  order 3 total=1234"
        );
    }

    #[test]
    fn count_duration_error_records() {
        let base = |kind: &str, k: &str, v: Value| {
            let mut r = json!({"ts":"2024-05-01T01:37:18Z","pid":1,"probe":"p2",
                "site":"src/a.rs:7","fn":"a::f","kind":kind,"thread":"worker"});
            r[k] = v;
            plain(r)
        };
        assert_eq!(
            base("count", "count", json!(5)),
            "01:37:18.000 p2 src/a.rs:7 a::f  count  count=5"
        );
        let mut r = json!({"ts":"2024-05-01T01:37:18Z","probe":"p2","site":"s:1","fn":"f",
            "kind":"count","count":7,"delta":3});
        assert_eq!(
            plain(r.clone()),
            "01:37:18.000 p2 s:1 f  count  count=7 delta=3"
        );
        r["kind"] = json!("log");
        r["msg"] = json!("hi");
        assert_eq!(plain(r), "01:37:18.000 p2 s:1 f  log  hi count=7 delta=3");
        assert_eq!(
            base("duration", "ns", json!(1234567)),
            "01:37:18.000 p2 src/a.rs:7 a::f  duration  ns=1234567 (1.23ms)"
        );
        assert_eq!(
            base("error", "error", json!("unknown variable `x` in --if")),
            "01:37:18.000 p2 src/a.rs:7 a::f  error  error: unknown variable `x` in --if"
        );
        assert_eq!(
            base("weird", "extra", json!([1])),
            "01:37:18.000 p2 src/a.rs:7 a::f  weird  extra=[1]"
        );
    }

    #[test]
    fn duration_record_shows_the_aggregate() {
        let r = json!({"ts":"2024-05-01T01:37:18Z","probe":"p1","site":"src/billing.rs:98",
            "fn":"demo_app::billing::Invoice::total","kind":"duration","thread":"lprobe-control",
            "ns":431,"duration":{"count":99,"min_ns":70,"p50_ns":431,"p90_ns":671,"p99_ns":872,
            "max_ns":872}});
        assert_eq!(
            plain(r),
            "01:37:18.000 p1 src/billing.rs:98 demo_app::billing::Invoice::total  duration  \
             n=99 p50=431ns p90=671ns p99=872ns max=872ns"
        );
        let r = json!({"kind":"duration","ns":5,"duration":{"count":3,"p50_ns":12500,
            "p90_ns":2500000,"p99_ns":"?","max_ns":3.2e9},"extra":1});
        assert_eq!(
            plain(r),
            "--:--:--.--- - - -  duration  n=3 p50=12.5µs p90=2.50ms p99=? max=3.20s extra=1"
        );
    }

    #[test]
    fn duration_stats_line() {
        let d = json!({"count":99,"min_ns":70,"p50_ns":431,"p90_ns":671,"p99_ns":872,
            "max_ns":1_234_567});
        assert_eq!(
            duration_stats(&d, true),
            "n=99 min=70ns p50=431ns p90=671ns p99=872ns max=1.23ms"
        );
        assert_eq!(
            duration_stats(&d, false),
            "n=99 p50=431ns p90=671ns p99=872ns max=1.23ms"
        );
        assert_eq!(duration_stats(&json!({"count":0,"min_ns":0}), true), "n=0");
    }

    #[test]
    fn snapshot_record() {
        let r = json!({"ts":"2024-05-01T01:37:18.1+02:00","pid":1,"probe":"p3",
            "site":"src/main.rs:42","fn":"demo_app::process","kind":"snapshot","thread":"main",
            "vars":{"order":{"id":3},"total":1234,"tags":["a","b"]},
            "stack":[{"fn":"demo_app::process","file":"src/main.rs","line":42},
                     "demo_app::main"]});
        assert_eq!(
            plain(r),
            "01:37:18.100 p3 src/main.rs:42 demo_app::process  snapshot  thread main\n\
             \x20 order = {\n\
             \x20           \"id\": 3\n\
             \x20         }\n\
             \x20 tags = [\n\
             \x20          \"a\",\n\
             \x20          \"b\"\n\
             \x20        ]\n\
             \x20 total = 1234\n\
             \x20 stack:\n\
             \x20    0: demo_app::process at src/main.rs:42\n\
             \x20    1: demo_app::main"
        );
        let r = json!({"kind":"snapshot","vars":[{"name":"x","value":1},["y","2"]]});
        assert_eq!(
            plain(r),
            "--:--:--.--- - - -  snapshot\n  x = 1\n  y = \"2\""
        );
    }

    #[test]
    fn non_object_record_is_shown_raw() {
        assert_eq!(plain(json!([1, 2])), "[1,2]");
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(
            time_of_day(&json!("2024-05-01T01:37:18.123456Z")),
            "01:37:18.123"
        );
        assert_eq!(
            time_of_day(&json!("2024-05-01T23:59:59-05:00")),
            "23:59:59.000"
        );
        assert_eq!(time_of_day(&json!("yesterday")), "yesterday");
        assert_eq!(time_of_day(&json!(17)), "17");
        assert_eq!(human_ns(0.0), "0ns");
        assert_eq!(human_ns(850.0), "850ns");
        assert_eq!(human_ns(999.4), "999ns");
        assert_eq!(human_ns(999.6), "1.00µs");
        assert_eq!(human_ns(1_500.0), "1.50µs");
        assert_eq!(human_ns(12_500.0), "12.5µs");
        assert_eq!(human_ns(123_456.0), "123µs");
        assert_eq!(human_ns(999_999.0), "1.00ms");
        assert_eq!(human_ns(3_214_000.0), "3.21ms");
        assert_eq!(human_ns(2_000_000_000.0), "2.00s");
        assert_eq!(human_ns(42e9), "42.0s");
        assert_eq!(human_ns(1234e9), "1234s");
        assert_eq!(human_ns(-1_500.0), "-1.50µs");
        assert_eq!(human_secs(45.0), "45s");
        assert_eq!(human_secs(3590.0), "59m50s");
        assert_eq!(human_secs(7500.0), "2h05m");
        assert_eq!(human_secs(90_000.0), "1d01h");
        assert_eq!(human_secs(-1.0), "0s");
    }

    #[test]
    fn table_layout() {
        let t = table(
            &["PID", "PROGRAM", "SITES"],
            &[
                vec!["123".into(), "/a/demo-app".into(), "42".into()],
                vec!["7".into(), "/b".into(), "".into()],
            ],
        );
        assert_eq!(
            strip(&t),
            "PID  PROGRAM      SITES\n123  /a/demo-app  42\n7    /b\n"
        );
        // With colours: the header line is bold, the rows as they are.
        assert!(
            t.starts_with("\u{1b}[1mPID  PROGRAM      SITES\u{1b}[0m\n123"),
            "{t:?}"
        );
    }

    #[test]
    fn record_kinds_are_coloured_and_errors_red() {
        let r = json!({"ts":"2024-05-01T01:37:18.123Z","probe":"p1","site":"a.rs:1",
            "fn":"f","kind":"error","error":"boom"});
        let styled = record(&r, RecordStyle::default());
        assert!(
            styled.contains(&format!("{}error", crate::style::ERROR)),
            "{styled:?}"
        );
    }

    #[test]
    fn a_panic_record_shows_the_message_the_last_sites_and_the_stack() {
        let r = json!({"ts":"2024-05-01T01:37:18.123Z","pid":7,"probe":"p2",
            "site":"src/main.rs:30","col":9,"fn":"app::fail","kind":"panic","thread":"worker",
            "msg":"called `Option::unwrap()` on a `None` value","unwinds":true,"caught":false,
            "last":[{"site":"src/main.rs:28","fn":"app::fail","ago_us":12,
                     "vars":{"i":4,"order":{"id":4,"items":[4,5]}}},
                    {"site":"src/main.rs:20","fn":"app::step","ago_us":1500,"vars":{"i":4}}],
            "stack":["app::fail (src/main.rs:30)","app::run (src/main.rs:41)"]});
        let text = plain(r.clone());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "01:37:18.123 p2 src/main.rs:30 app::fail  panic  called `Option::unwrap()` on a `None` value  (thread worker, not caught)"
        );
        assert_eq!(lines[1], "  last sites, innermost first:");
        assert_eq!(lines[2], "     0: src/main.rs:28 app::fail  (12.0µs ago)");
        assert_eq!(lines[3], "          i = 4");
        assert_eq!(lines[4], "          order = {");
        assert!(
            text.contains("     1: src/main.rs:20 app::step  (1.50ms ago)"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "  stack:\n     0: app::fail (src/main.rs:30)\n     1: app::run (src/main.rs:41)"
            ),
            "{text}"
        );
        let mut caught = r.clone();
        caught["caught"] = json!(true);
        assert!(plain(caught).contains("(thread worker, caught)"));
    }
}
