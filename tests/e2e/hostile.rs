//! A program hostile to its probes (`fixtures/hostile`): its own panic hook that exits, a
//! `Debug` that panics, one that is slow, one that recurses through itself; and `fork`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

fn hostile(env: &[(&str, &str)]) -> Running {
    let t = build_once("hostile", &["--release"]);
    start(&t.join("lprobe/release/hostile"), env)
}

fn status(r: &Running) -> Value {
    let out = lprobe(r, &["status", "--json"]);
    let st: Value = serde_json::from_str(&stdout(&out)).expect("status json");
    st[0].clone()
}

fn still_running(r: &mut Running) {
    assert!(
        r.child.try_wait().expect("try_wait").is_none(),
        "the program exited"
    );
}

#[test]
fn a_panicking_debug_never_reaches_the_programs_exiting_panic_hook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let panic_when = dir.path().join("panic");
    let mut r = hostile(&[("HOSTILE_PANIC_WHEN", panic_when.to_str().expect("utf-8"))]);
    let out = lprobe(&r, &["arm", "fn:hostile::step", "--snapshot"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let snap = wait_records(&r, 1, "the snapshot", |v| v["kind"] == "snapshot").remove(0);
    let vars = &snap["vars"];
    let bomb = vars["bomb"].as_str().unwrap_or_default();
    assert!(bomb.contains("<panicked: bomb 1 went off>"), "{snap}");
    // A Debug recursing through its own impl, ten million levels, without brackets: cut by
    // the stack guard instead of overflowing the stack.
    let chain = vars["chain"].as_str().unwrap_or_default();
    assert!(
        chain.starts_with("---") && chain.contains("truncated"),
        "{snap}"
    );
    std::thread::sleep(Duration::from_millis(300));
    still_running(&mut r);
    // Armed again after the program's hook was installed long ago: still quiet.
    let out = lprobe(
        &r,
        &[
            "arm",
            "fn:hostile::step",
            "--log",
            "b={bomb}",
            "--max-hits",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    wait_records(&r, 5, "five logs", |v| v["kind"] == "log");
    still_running(&mut r);
    let st = status(&r);
    assert_eq!(st["runtime_panics"], 0, "{st}");
    // The program's own panic still goes to its own hook, which exits with status 3.
    std::fs::write(&panic_when, "").expect("panic file");
    let start = Instant::now();
    let code = loop {
        if let Some(s) = r.child.try_wait().expect("try_wait") {
            break s.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the program did not panic"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(3), "the program's hook ran");
}

#[test]
fn a_probe_over_its_time_budget_is_disabled_with_a_state_and_an_error() {
    let mut r = hostile(&[("LPROBE_PROBE_BUDGET_MS", "20"), ("HOSTILE_SLOW_MS", "4")]);
    let out = lprobe(
        &r,
        &[
            "arm",
            "fn:hostile::step",
            "--log",
            "s={slow}",
            "--rate",
            "1000/s",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = wait_records(&r, 1, "the error record", |v| {
        v["kind"] == "error"
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("probe disabled"))
    })
    .remove(0);
    assert!(
        err["error"]
            .as_str()
            .unwrap_or_default()
            .contains("budget of 20 ms"),
        "{err}"
    );
    // The limit is noted just after the error record is queued (its own drop would name
    // another): wait for it rather than read it once.
    let st = wait_for(Duration::from_secs(10), "the time limit in status", || {
        let st = status(&r);
        (st["probes"][0]["limit"] == "time").then_some(st)
    });
    let p = &st["probes"][0];
    assert_eq!(p["state"], "over-budget", "{st}");
    // Its sites go dormant: no more logs after a moment.
    std::thread::sleep(Duration::from_millis(500));
    let n = records(&r).iter().filter(|v| v["kind"] == "log").count();
    std::thread::sleep(Duration::from_millis(300));
    let m = records(&r).iter().filter(|v| v["kind"] == "log").count();
    assert_eq!(n, m, "the probe stopped logging");
    assert!(n < 30, "disabled within the budget: {n} logs of 4 ms");
    still_running(&mut r);
}

#[test]
fn a_forked_child_is_dormant_and_exits_promptly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let go = dir.path().join("go");
    let report = dir.path().join("report");
    let mut r = hostile(&[
        ("HOSTILE_MODE", "fork"),
        ("HOSTILE_GO", go.to_str().expect("utf-8")),
        ("HOSTILE_REPORT", report.to_str().expect("utf-8")),
    ]);
    let out = lprobe(&r, &["arm", "fn:hostile::step", "--log", "n={n}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_records(&r, 3, "the parent's logs", |v| v["kind"] == "log");
    std::fs::write(&go, "").expect("go");
    let text = wait_for(Duration::from_secs(20), "the fork report", || {
        std::fs::read_to_string(&report)
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    // "child PID exited STATUS after MS ms"
    let words: Vec<&str> = text.split_whitespace().collect();
    let child: u64 = words[1].parse().expect("pid");
    let ms: u64 = words[5].parse().expect("ms");
    assert_eq!(words[3], "0", "the child exited normally: {text}");
    // Under the runtime's exit budget (500 ms), with room for a loaded machine.
    assert!(ms < 450, "the child's exit waited: {text}");
    // The parent exits by itself, promptly.
    let start = Instant::now();
    while r.child.try_wait().expect("try_wait").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the parent hangs at exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let recs = records(&r);
    assert!(
        !recs.iter().any(|v| v["pid"] == child),
        "the child's runtime is dormant: it writes nothing"
    );
}

/// Threads the process has.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

#[test]
fn lazy_threads_start_no_runtime_thread_until_a_probe_is_armed_at_start() {
    let t = build_once("hostile", &["--release"]);
    let exe = t.join("lprobe/release/hostile");
    // Nothing armed: the program stays single-threaded and serves no socket.
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("p.sock");
    let mut child = std::process::Command::new(&exe)
        .env("LPROBE_SOCKET", &socket)
        .env("LPROBE_OUTPUT", dir.path().join("out.jsonl"))
        .env("LPROBE_THREADS", "lazy")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    std::thread::sleep(Duration::from_millis(500));
    let n = threads(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(n, 1, "no runtime thread");
    assert!(!socket.exists(), "no socket");

    // A control file that arms a probe at start: the runtime starts and works.
    let control = dir.path().join("probes.conf");
    write_control(&control, "fn:hostile::step --log \"n={n}\" --max-hits 3\n");
    let r = start(
        &exe,
        &[
            ("LPROBE_THREADS", "lazy"),
            ("LPROBE_CONTROL", control.to_str().expect("utf-8")),
        ],
    );
    wait_records(&r, 3, "the control file's logs", |v| v["kind"] == "log");
    assert!(threads(r.child.id()) > 1);
}
