//! `LPROBE_OUTPUT=tracing|log`: probe records as events of the program's own subscriber or
//! logger. `tracing-app` logs through tracing-subscriber's JSON formatter, `log-app` through
//! env_logger (with and without log's key-values); both write their log to stdout, which
//! these tests read. Probes are armed through the socket and the control file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// The 1-based line of the first line of `file` containing `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(file).expect("fixture source");
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle} not in {}", file.display()))
}

/// Waits until `f` finds something in the text of `path`.
fn wait_text<T>(path: &Path, what: &str, f: impl Fn(&str) -> Option<T>) -> T {
    wait_for(Duration::from_secs(20), what, || {
        f(&std::fs::read_to_string(path).unwrap_or_default())
    })
}

/// `lprobe status --json`'s object for the one process.
fn status(r: &Running) -> Value {
    let out = lprobe(r, &["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("status is JSON");
    v[0].clone()
}

/// The events of target `lprobe` among tracing-subscriber's JSON lines.
fn lprobe_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "lprobe")
        .collect()
}

/// A JSON-text field of an event, parsed.
fn json_field(v: &Value, name: &str) -> Value {
    let text = v["fields"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is text: {v}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is JSON ({e}): {text}"))
}

#[test]
fn tracing_bridge_makes_records_events_of_the_programs_json_subscriber() {
    let target = build_once("tracing-app", &[]);
    // The sites crates depend on the tracing the workspace resolves to: built once.
    let copies: Vec<_> = std::fs::read_dir(target.join("lprobe/debug/deps"))
        .expect("deps")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("libtracing-") && n.ends_with(".rlib"))
        .collect();
    assert_eq!(copies.len(), 1, "one tracing: {copies:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let control = dir.path().join("probes");
    write_control(&control, "fn:orders::process_order --count --every 1s\n");
    let (r, out, err) = start_logged(
        &target.join("lprobe/debug/tracing-app"),
        &[
            ("LPROBE_OUTPUT", "tracing"),
            ("LPROBE_CONTROL", control.to_str().expect("utf-8 path")),
        ],
    );
    // Records made before `main` installs the subscriber would be filtered out: wait for it.
    wait_text(&out, "the program's own events", |t| {
        t.contains("\"target\":\"orders\"").then_some(())
    });
    // A bad line: an `error` record, at WARN.
    write_control(
        &control,
        "fn:orders::process_order --count --every 1s\nfn:orders::process_order --bogus\n",
    );
    let log = arm(
        &r,
        &["fn:orders::process_order", "--log", "order {order.id}"],
    );
    let snap = arm(&r, &["fn:orders::process_order", "--snapshot"]);
    let src = fixture("tracing-app").join("orders/src/lib.rs");
    let site = format!(
        "orders/src/lib.rs:{}",
        line_of(&src, "pub fn process_order")
    );
    let events = wait_text(&out, "log, snapshot, count and error events", |t| {
        let ev = lprobe_events(t);
        let has = |kind: &str| ev.iter().any(|v| v["fields"]["kind"] == kind);
        (has("log") && has("snapshot") && has("count") && has("error")).then_some(ev)
    });
    for v in &events {
        let f = &v["fields"];
        let want = if f["kind"] == "error" { "WARN" } else { "INFO" };
        assert_eq!(v["level"], want, "{v}");
        if f["kind"] != "error" {
            assert_eq!(f["site"], site.as_str(), "{v}");
            assert_eq!(f["fn"], "orders::process_order", "{v}");
        }
        match f["kind"].as_str() {
            Some("log") => {
                assert_eq!(f["probe"], log.as_str());
                assert_eq!(f["thread"], "main");
                let id = f["msg"].as_str().and_then(|m| m.strip_prefix("order "));
                assert!(id.is_some_and(|n| n.parse::<u64>().is_ok()), "{v}");
            }
            Some("snapshot") => {
                assert_eq!(f["probe"], snap.as_str());
                let order = &json_field(v, "vars")["order"];
                let id = order["id"].as_u64().expect("order.id");
                assert_eq!(order["items"], serde_json::json!([2, 3, id % 5]), "{v}");
                let stack = json_field(v, "stack");
                assert!(
                    stack[0]
                        .as_str()
                        .is_some_and(|s| s.starts_with("orders::process_order")),
                    "{v}"
                );
            }
            Some("count") => {
                let c = json_field(v, "count");
                let (n, d) = (c["count"].as_u64(), c["delta"].as_u64());
                assert!(
                    n.is_some_and(|n| n >= 1) && d.is_some_and(|d| d >= 1),
                    "{v}"
                );
                assert!(n >= d, "{v}");
            }
            Some("error") => {
                let msg = f["msg"].as_str().unwrap_or("");
                assert!(msg.contains("--bogus"), "{v}");
            }
            _ => panic!("unexpected kind: {v}"),
        }
    }
    // The program's own events come out of the same subscriber.
    let own = std::fs::read_to_string(&out).expect("stdout");
    assert!(own.contains("\"target\":\"orders\""), "{own}");
    // Nothing went to the runtime's own outputs.
    assert!(!r.output.exists() || records(&r).is_empty());
    assert!(!std::fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("\"kind\""));
    let st = status(&r);
    assert_eq!(st["output"]["to"], "tracing", "{st}");
    assert_eq!(st["output"]["panics"], 0, "{st}");
    let human = stdout(&lprobe(&r, &["status"]));
    assert!(
        human.contains("output: tracing (the program's subscriber"),
        "{human}"
    );
}

/// The `key=value` words of a log line after `prefix` (values: bare, a JSON string, or JSON).
fn key_values(line: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.rsplit(' ').next().unwrap_or(key).to_owned();
        let (value, left) = if after.starts_with(['"', '{', '[']) {
            let mut de = serde_json::Deserializer::from_str(after).into_iter::<Value>();
            let v = de.next().and_then(Result::ok).unwrap_or(Value::Null);
            (v, &after[de.byte_offset()..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (Value::String(after[..end].to_owned()), &after[end..])
        };
        out.push((key, value));
        rest = left.trim_start();
    }
    out
}

fn get<'a>(kv: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The lines of target `lprobe` in env_logger's output (`[INFO  lprobe] …`): level, text.
fn lprobe_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (head, rest) = l.strip_prefix('[')?.split_once("] ")?;
            let mut words = head.split_whitespace();
            let level = words.next()?.to_owned();
            (words.next()? == "lprobe").then(|| (level, rest.to_owned()))
        })
        .collect()
}

/// Runs log-app (built in `target`) with `LPROBE_OUTPUT=log`, arms a log, a snapshot and a
/// count probe, and returns their ids and the `lprobe` lines once all three kinds are there.
fn log_app_lines(
    target: &Path,
    kinds_of: impl Fn(&str) -> String,
) -> (Running, [String; 3], Vec<(String, String)>) {
    let (r, out, _err) = start_logged(
        &target.join("lprobe/debug/log-app"),
        &[("LPROBE_OUTPUT", "log")],
    );
    let ids = [
        arm(
            &r,
            &[
                "fn:log_app::process_order",
                "--log",
                "order {id}",
                "--max-hits",
                "3",
            ],
        ),
        arm(&r, &["fn:log_app::process_order", "--snapshot"]),
        arm(
            &r,
            &["fn:log_app::process_order", "--count", "--every", "1s"],
        ),
    ];
    let lines = wait_text(&out, "log, snapshot and count lines", |t| {
        let lines = lprobe_lines(t);
        let has = |kind: &str| lines.iter().any(|(_, l)| kinds_of(l) == kind);
        (has("log") && has("snapshot") && has("count")).then_some(lines)
    });
    (r, ids, lines)
}

fn log_site() -> String {
    let src = fixture("log-app").join("src/main.rs");
    format!("src/main.rs:{}", line_of(&src, "fn process_order"))
}

#[test]
fn log_bridge_without_key_values_writes_the_fields_in_the_message() {
    let target = build_once("log-app", &[]);
    let kind = |l: &str| {
        get(&key_values(l), "kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (r, [log, snap, count], lines) = log_app_lines(&target, kind);
    let site = log_site();
    for (level, line) in &lines {
        assert_eq!(level, "INFO", "{line}");
        let kv = key_values(line);
        let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
        let field = |k: &str| get(&kv, k).cloned().unwrap_or(Value::Null);
        assert_eq!(field("site"), site.as_str(), "{line}");
        assert_eq!(field("fn"), "log_app::process_order", "{line}");
        match field("kind").as_str() {
            Some("log") => {
                assert_eq!(
                    keys,
                    ["probe", "site", "fn", "kind", "thread", "msg"],
                    "{line}"
                );
                assert_eq!(field("probe"), log.as_str());
                assert_eq!(field("thread"), "main");
                let msg = field("msg");
                let id = msg.as_str().and_then(|m| m.strip_prefix("order "));
                assert!(id.is_some_and(|n| n.parse::<u64>().is_ok()), "{line}");
            }
            Some("snapshot") => {
                assert_eq!(field("probe"), snap.as_str());
                let vars = field("vars");
                let id = vars["id"].as_u64().expect("id");
                assert_eq!(vars["items"], serde_json::json!([2, 3, id % 5]), "{line}");
                assert!(field("stack").is_array(), "{line}");
            }
            Some("count") => {
                assert_eq!(field("probe"), count.as_str());
                assert!(
                    field("count")["count"].as_u64().is_some_and(|n| n >= 1),
                    "{line}"
                );
            }
            _ => panic!("unexpected line: {line}"),
        }
    }
    assert_eq!(status(&r)["output"]["to"], "log");
}

#[test]
fn log_bridge_with_key_values_passes_the_fields_as_key_values() {
    // A copy of its own: the `kv` build must not replace the plain one other tests run.
    let base = target_dir("log-app-kv");
    let ws = base.join("ws");
    let _ = std::fs::remove_dir_all(&ws);
    private_copy("log-app", &ws);
    let out = cargo_lprobe_in(&ws, &base.join("target"), &["build", "--features", "kv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let target: PathBuf = base.join("target");
    let manifest = std::fs::read_to_string(target.join("lprobe/sites/log-app/Cargo.toml"))
        .expect("sites manifest");
    assert!(manifest.contains("features = [\"kv\"]"), "{manifest}");
    // env_logger writes key-values after the message: `order 4 probe=p1 site=… kind=log …`.
    let kind = |l: &str| {
        get(&key_values(l), "kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (_r, [log, _snap, count], lines) = log_app_lines(&target, kind);
    let site = log_site();
    for (level, line) in &lines {
        assert_eq!(level, "INFO", "{line}");
        let kv = key_values(line);
        let field = |k: &str| get(&kv, k).cloned().unwrap_or(Value::Null);
        assert_eq!(field("site"), site.as_str(), "{line}");
        assert_eq!(field("msg"), Value::Null, "the text is the message: {line}");
        match field("kind").as_str() {
            Some("log") => {
                assert_eq!(field("probe"), log.as_str());
                let text = line.split(" probe=").next().unwrap_or("");
                let id = text.strip_prefix("order ");
                assert!(id.is_some_and(|n| n.parse::<u64>().is_ok()), "{line}");
            }
            Some("snapshot") => {
                assert!(line.starts_with("snapshot probe="), "{line}");
                assert!(field("vars")["id"].is_u64(), "{line}");
            }
            Some("count") => {
                assert_eq!(field("probe"), count.as_str());
                assert!(field("count")["delta"].is_u64(), "{line}");
            }
            _ => panic!("unexpected line: {line}"),
        }
    }
}

#[test]
fn asking_for_a_bridge_the_program_lacks_is_one_error_line_and_json_on_stderr() {
    // log-app uses log, not tracing.
    let target = build_once("log-app", &[]);
    let (r, out, err) = start_logged(
        &target.join("lprobe/debug/log-app"),
        &[("LPROBE_OUTPUT", "tracing")],
    );
    let probe = arm(
        &r,
        &[
            "fn:log_app::process_order",
            "--log",
            "order {id}",
            "--max-hits",
            "2",
        ],
    );
    let recs = wait_text(&err, "JSON records on stderr", |t| {
        let recs: Vec<Value> = t
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["probe"] == probe.as_str())
            .collect();
        (recs.len() == 2).then_some(recs)
    });
    assert!(recs
        .iter()
        .all(|v| v["kind"] == "log" && v["fn"] == "log_app::process_order"));
    let text = std::fs::read_to_string(&err).expect("stderr");
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("LPROBE_OUTPUT"))
        .collect();
    assert_eq!(said.len(), 1, "{text}");
    for part in [
        "LPROBE_OUTPUT=tracing, but no package of this program",
        "depends on tracing",
        "writing records as JSON lines to stderr instead",
        "add tracing to [dependencies]",
    ] {
        assert!(said[0].contains(part), "{part}: {}", said[0]);
    }
    let st = status(&r);
    assert_eq!(st["output"]["to"], "stderr", "{st}");
    assert!(
        st["output"]["fallback"]
            .as_str()
            .is_some_and(|f| f == said[0]),
        "{st}"
    );
    // The program's own log has no probe records.
    let own = std::fs::read_to_string(&out).expect("stdout");
    assert!(own.contains("started") && !own.contains(&probe), "{own}");
}

#[test]
fn records_the_programs_logger_filters_out_are_counted_and_said_once() {
    let target = build_once("log-app", &[]);
    let (r, _out, err) = start_logged(
        &target.join("lprobe/debug/log-app"),
        &[("LPROBE_OUTPUT", "log"), ("RUST_LOG", "warn")],
    );
    arm(
        &r,
        &[
            "fn:log_app::process_order",
            "--log",
            "order {id}",
            "--max-hits",
            "3",
        ],
    );
    let st = wait_for(Duration::from_secs(20), "3 filtered records", || {
        let st = status(&r);
        (st["output"]["filtered"].as_u64() == Some(3)).then_some(st)
    });
    assert_eq!(st["dropped_total"], 0, "filtered is not a drop: {st}");
    let text = std::fs::read_to_string(&err).expect("stderr");
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("does not take target 'lprobe'"))
        .collect();
    assert_eq!(said.len(), 1, "{text}");
    assert!(said[0].contains("RUST_LOG=lprobe=info"), "{}", said[0]);
}
