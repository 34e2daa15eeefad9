//! Arming through the Unix socket with the `lprobe` CLI, on the demo app.

use serde_json::Value;

use crate::harness::*;

fn demo() -> Running {
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    start(
        &t.join("lprobe/release/demo-app"),
        &[("DEMO_INTERVAL_MS", "20")],
    )
}

/// `lprobe snapshot LOCATION --json`: the one snapshot it waited for.
fn snapshot(r: &Running, location: &str) -> Value {
    let out = lprobe(r, &["snapshot", location, "--json", "--timeout", "20s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).expect("snapshot json")
}

#[test]
fn log_probe_renders_fields_of_captured_values() {
    let r = demo();
    let out = lprobe(
        &r,
        &[
            "arm",
            "src/main.rs:42",
            "--log",
            "order {order.id} total={total}",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let armed: Value = serde_json::from_str(stdout(&out).trim()).expect("arm --json is JSON");
    assert_eq!(armed["site"], "src/main.rs:42");
    let probe = armed["probe"].as_str().expect("probe id").to_owned();
    let logs = wait_records(&r, 3, "log records", |v| v["probe"] == probe.as_str());
    for rec in &logs {
        assert_eq!(rec["kind"], "log");
        assert_eq!(rec["fn"], "demo_app::process_order");
        assert_eq!(rec["site"], "src/main.rs:42");
        let msg = rec["msg"].as_str().expect("msg");
        let mut words = msg.split_whitespace();
        assert_eq!(words.next(), Some("order"));
        let id: u64 = words
            .next()
            .and_then(|w| w.parse().ok())
            .expect("order id is a number");
        let total = words
            .next()
            .and_then(|w| w.strip_prefix("total="))
            .expect("total");
        assert!(id > 0 && total.parse::<u64>().is_ok(), "{msg}");
        assert!(rec["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(rec["pid"].as_u64().is_some());
    }
    // Consecutive orders: ids increase by one, but for every thirteenth order, which has no
    // items and is rejected before line 42.
    let ids: Vec<u64> = logs
        .iter()
        .filter_map(|v| v["msg"].as_str()?.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert!(
        ids.windows(2)
            .all(|w| w[1] == w[0] + 1 || (w[1] == w[0] + 2 && (w[0] + 1) % 13 == 0)),
        "{ids:?}"
    );

    let off = lprobe(&r, &["disarm", &probe]);
    assert!(off.status.success(), "{}", stderr(&off));
    let status = lprobe(&r, &["status", "--json"]);
    let st: Value = serde_json::from_str(&stdout(&status)).expect("status json");
    assert_eq!(st[0]["probes"].as_array().map(Vec::len), Some(0), "{st}");
}

#[test]
fn snapshot_has_structured_values_and_a_stack() {
    let r = demo();
    let snap = snapshot(&r, "src/main.rs:57");
    assert_eq!(snap["kind"], "snapshot");
    let vars = &snap["vars"];
    let n = vars["n"].as_u64().expect("n is an integer");
    assert_eq!(vars["order"]["id"].as_u64(), Some(n), "{vars}");
    assert!(vars["order"]["customer"].is_string(), "{vars}");
    assert!(vars["order"]["items"].is_array(), "{vars}");
    assert!(vars["line"]
        .as_str()
        .is_some_and(|l| l.starts_with(&format!("order {n} "))));
    let stack = snap["stack"].as_array().expect("stack");
    assert_eq!(stack[0], "demo_app::run (src/main.rs:57)", "{stack:?}");
    assert!(stack
        .iter()
        .any(|f| f.as_str().is_some_and(|f| f.contains("src/main.rs"))));
    // One hit by default: the probe is exhausted afterwards.
    let status = lprobe(&r, &["status", "--json"]);
    let st: Value = serde_json::from_str(&stdout(&status)).expect("status json");
    assert_eq!(st[0]["probes"][0]["state"], "exhausted", "{st}");
}

/// An entry site calls the runtime through `asm!` and the runtime's register-saving
/// trampoline (`probe_runtime::hot::saving`); the unwinder must see through both, so the
/// snapshot's stack goes on from the function into its callers and up to `main`'s file.
#[test]
fn an_entry_snapshot_stack_reaches_the_functions_callers() {
    let r = demo();
    let snap = snapshot(&r, "fn:demo_app::billing::validate");
    assert_eq!(snap["fn"], "demo_app::billing::validate", "{snap}");
    assert!(snap["vars"]["order"]["id"].as_u64().is_some(), "{snap}");
    let stack = stack_of(&snap);
    // validate (its instrumented copy, named as the function), its caller, `run`, `main`.
    assert!(
        stack
            .first()
            .is_some_and(|f| f.starts_with("demo_app::billing::validate (src/billing.rs:")),
        "{stack:?}"
    );
    let at = |name: &str| stack.iter().position(|f| f.starts_with(name));
    let (caller, main) = (at("process_order"), at("main "));
    assert!(caller.is_some() && caller < main, "{stack:?}");
}

#[test]
fn count_probe_on_a_function_pattern_reports_per_function() {
    let r = demo();
    let out = lprobe(
        &r,
        &["arm", "fn:demo_app::billing::*", "--count", "--every", "1s"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = wait_records(&r, 1, "count records", |v| {
        v["kind"] == "count" && v["fn"] == "demo_app::billing::Invoice::for_order"
    });
    assert!(counts[0]["count"].as_u64().is_some_and(|c| c > 0));
    assert!(counts[0]["site"]
        .as_str()
        .is_some_and(|s| s.starts_with("src/billing.rs:")));
}

#[test]
fn bad_requests_are_refused_with_specific_errors() {
    let r = demo();
    let out = lprobe(&r, &["arm", "src/main.rs:42", "--log", "{nope}"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("'nope' is not captured at src/main.rs:42"),
        "{e}"
    );
    assert!(e.contains("order") && e.contains("total"), "{e}");

    let out = lprobe(&r, &["arm", "src/main.rs:44", "--log", "x"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("no probe site at src/main.rs:44"), "{e}");
    assert!(e.contains("--lines src/main.rs:44"), "{e}");

    let out = lprobe(&r, &["arm", "nothing.rs:1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no instrumented file matches 'nothing.rs'"));

    // Raw garbage on the socket neither crashes nor blocks the program.
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&r.socket).expect("connect");
    s.write_all(b"\xff\xfe garbage\n").expect("write");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.contains("\"ok\":false"), "{reply}");
    let ps = lprobe(&r, &["ps", "--json"]);
    assert!(ps.status.success());
}
