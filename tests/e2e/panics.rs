//! Panic capture (`--on-panic`, `LPROBE_ON_PANIC=1`) on `fixtures/panic-app`: the `panic`
//! record's message, place, thread, caught flag and the last sites' values, for a plain
//! `panic!`, `unwrap()` on `None` and an index out of bounds, on the main thread, a spawned
//! thread, under `catch_unwind` and with `panic = "abort"`; the program's own hook still runs.

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// `src/main.rs:N` for the first line of the fixture containing `text`.
fn line_of(text: &str) -> String {
    let src = std::fs::read_to_string(repo().join("fixtures/panic-app/src/main.rs"))
        .expect("read fixture");
    let n = src
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no {text:?} in the fixture"));
    format!("src/main.rs:{}", n + 1)
}

/// The fixture built with every function instrumented, in `profile` (`dev` or `abort`).
fn exe(profile: &str) -> std::path::PathBuf {
    let t = build_once("panic-app", &["--entry", "all", "--profile", profile]);
    let dir = if profile == "dev" { "debug" } else { profile };
    t.join("lprobe").join(dir).join("panic-app")
}

/// Starts the fixture waiting for its go file (in `dir`), with `env` added.
fn app(profile: &str, dir: &Path, env: &[(&str, &str)]) -> Running {
    let go = dir.join("go");
    let go = go.to_str().expect("utf-8 path");
    let mut all = vec![("PANIC_GO", go)];
    all.extend_from_slice(env);
    start(&exe(profile), &all)
}

fn go(dir: &Path) {
    std::fs::write(dir.join("go"), "").expect("write go file");
}

fn exit_status(r: &mut Running) -> ExitStatus {
    wait_for(Duration::from_secs(20), "the program to exit", || {
        r.child.try_wait().expect("try_wait")
    })
}

fn panic_record(r: &Running) -> Value {
    let recs = wait_records(r, 1, "a panic record", |v| v["kind"] == "panic");
    assert_eq!(recs.len(), 1, "one record per panic: {recs:?}");
    recs.into_iter().next().expect("one")
}

/// The functions of the record's last sites, innermost first.
fn last_fns(rec: &Value) -> Vec<String> {
    rec["last"]
        .as_array()
        .expect("last")
        .iter()
        .map(|s| s["fn"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The loop's last iteration, innermost first: `fail` with its arguments, then the `step`s.
fn assert_last_iteration(rec: &Value, mode: &str) {
    let last = &rec["last"];
    assert_eq!(last[0]["fn"], "panic_app::fail", "{rec}");
    assert_eq!(last[0]["site"], line_of("fn fail("));
    assert_eq!(last[0]["vars"]["mode"], mode);
    assert_eq!(last[0]["vars"]["i"], 4);
    assert_eq!(last[0]["vars"]["order"]["id"], 4);
    assert_eq!(
        last[0]["vars"]["order"]["items"],
        serde_json::json!([4, 5, 6])
    );
    assert_eq!(last[0]["vars"]["order"]["note"], "note 4");
    assert_eq!(last[1]["fn"], "panic_app::step");
    assert_eq!(last[1]["vars"]["i"], 4);
    assert_eq!(last[2]["vars"]["i"], 3);
    assert!(
        last[0]["ago_us"].as_u64().expect("ago_us") <= last[1]["ago_us"].as_u64().expect("ago_us")
    );
}

#[test]
fn a_main_thread_panic_is_recorded_with_the_last_sites_and_the_programs_hook_still_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = dir.path().join("hook");
    let mark_s = mark.to_str().expect("utf-8");
    let mut r = app(
        "dev",
        dir.path(),
        &[("PANIC_MODE", "plain"), ("PANIC_HOOK_MARK", mark_s)],
    );
    let p = arm(&r, &["--on-panic"]);
    go(dir.path());
    let status = exit_status(&mut r);
    assert_eq!(status.code(), Some(101), "an uncaught panic in main");
    let rec = panic_record(&r);
    assert_eq!(rec["probe"], p.as_str());
    assert_eq!(rec["msg"], "order 4 failed at step 4");
    assert_eq!(rec["site"], line_of("\"plain\" => panic!"));
    assert_eq!(rec["fn"], "panic_app::fail");
    assert_eq!(rec["thread"], "main");
    assert_eq!(rec["caught"], false);
    assert_eq!(rec["unwinds"], true);
    // Every site the thread passed since the arming fits in the default 8 (`main`'s entry
    // came before it): run, five steps, fail.
    assert_eq!(
        last_fns(&rec),
        [
            "panic_app::fail",
            "panic_app::step",
            "panic_app::step",
            "panic_app::step",
            "panic_app::step",
            "panic_app::step",
            "panic_app::run"
        ]
    );
    assert_last_iteration(&rec, "plain");
    assert_eq!(rec["last"][6]["vars"]["n"], 5);
    let stack = stack_of(&rec);
    assert!(
        stack[0].starts_with("panic_app::fail (src/main.rs:"),
        "{stack:?}"
    );
    assert!(
        stack.iter().any(|f| f.starts_with("panic_app::run")),
        "{stack:?}"
    );
    // The program's hook ran after lprobe's (chained, not replaced).
    let hook = std::fs::read_to_string(&mark).expect("the program's hook ran");
    assert!(hook.contains("order 4 failed at step 4"), "{hook}");
}

#[test]
fn lprobe_on_panic_records_an_unwrap_in_a_spawned_thread_without_arming() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut r = app(
        "dev",
        dir.path(),
        &[
            ("LPROBE_ON_PANIC", "1"),
            ("PANIC_MODE", "unwrap"),
            ("PANIC_THREAD", "spawned"),
        ],
    );
    go(dir.path());
    let rec = panic_record(&r);
    assert_eq!(rec["msg"], "called `Option::unwrap()` on a `None` value");
    assert_eq!(rec["site"], line_of("big.unwrap()"));
    assert_eq!(rec["thread"], "worker");
    assert_eq!(rec["caught"], false);
    // The worker's own sites only: main's entry was passed on another thread.
    assert_eq!(last_fns(&rec).len(), 7, "{rec}");
    assert_eq!(
        last_fns(&rec).last().map(String::as_str),
        Some("panic_app::run")
    );
    assert_last_iteration(&rec, "unwrap");
    assert!(
        r.child.try_wait().expect("try_wait").is_none(),
        "the process lives on"
    );
    let st: Value =
        serde_json::from_str(&stdout(&lprobe(&r, &["status", "--json"]))).expect("status");
    let probe = &st[0]["probes"][0];
    assert_eq!(probe["actions"], serde_json::json!(["on-panic"]));
    assert_eq!(probe["args"], "LPROBE_ON_PANIC=1");
    assert_eq!(probe["emitted"], 1);
}

#[test]
fn an_index_out_of_bounds_under_catch_unwind_is_marked_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut r = app(
        "dev",
        dir.path(),
        &[("PANIC_MODE", "index"), ("PANIC_THREAD", "caught")],
    );
    arm(&r, &["--on-panic", "fn:panic_app::*", "--last", "3"]);
    go(dir.path());
    let rec = panic_record(&r);
    assert_eq!(
        rec["msg"],
        "index out of bounds: the len is 3 but the index is 7"
    );
    assert_eq!(rec["site"], line_of("order.items[limit]"));
    assert_eq!(rec["caught"], true, "{rec}");
    assert_eq!(
        last_fns(&rec),
        ["panic_app::fail", "panic_app::step", "panic_app::step"]
    );
    assert_last_iteration(&rec, "index");
    assert!(
        r.child.try_wait().expect("try_wait").is_none(),
        "caught: the program goes on"
    );
    // The human form.
    let text = stdout(&lprobe(&r, &["status"]));
    assert!(text.contains("on-panic"), "{text}");
}

#[test]
fn with_panic_abort_the_record_is_written_before_the_abort() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut r = app("abort", dir.path(), &[("PANIC_MODE", "plain")]);
    arm(&r, &["--on-panic"]);
    go(dir.path());
    let status = exit_status(&mut r);
    assert_eq!(status.code(), None, "killed by SIGABRT: {status:?}");
    let rec = panic_record(&r);
    assert_eq!(rec["msg"], "order 4 failed at step 4");
    assert_eq!(rec["unwinds"], false);
    assert_eq!(rec["caught"], false);
    assert_last_iteration(&rec, "plain");
}
